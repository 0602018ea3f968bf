//! A stolen administrator (issue 11): what a copy of a revoked device's
//! home can still do. So far: revocation is irreversible.

use mesh_tests::{Device, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

/// Copy a device's home, as a thief with the disk would.
fn copy_home(from: &Device, to: &std::path::Path) -> Device {
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(&from.home)
        .arg(to)
        .output()
        .expect("cp");
    assert!(o.status.success());
    Device {
        home: to.to_path_buf(),
    }
}

#[test]
fn a_revoked_device_never_rejoins() {
    let dir = Scratch::new("irreversible");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    let thief = copy_home(&b, &dir.path("thief"));
    a.ok(&["device", "revoke", "phone"]);
    // The copy forgets the account and asks again with the same device keys.
    let state = thief.home.join("state.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    v["account"] = serde_json::Value::Null;
    std::fs::write(&state, v.to_string()).expect("write");
    let e = thief.fails(&["device", "request", ADDR, "--portal", &portal.url]);
    assert!(e.contains("a revoked device never rejoins"), "{e}");
    let pending = a.json(&["device", "pending"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(0), "{pending}");
}
