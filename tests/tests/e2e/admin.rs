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
    // Two copies that forget the account and ask with the same device keys:
    // one before the owner notices the theft, one after.
    let forget = |d: &Device| {
        let state = d.home.join("state.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
        v["account"] = serde_json::Value::Null;
        std::fs::write(&state, v.to_string()).expect("write");
    };
    let early = copy_home(&b, &dir.path("early"));
    let thief = copy_home(&b, &dir.path("thief"));
    forget(&early);
    forget(&thief);
    let w = early.ok(&["device", "request", ADDR, "--portal", &portal.url]);
    a.ok(&["device", "revoke", "phone"]);
    // The request made before the revocation cannot be accepted after it.
    let e = a.fails(&["device", "accept", w.trim()]);
    assert!(e.contains("a revoked device cannot join again"), "{e}");
    a.ok(&["device", "reject", w.trim()]);
    let e = thief.fails(&["device", "request", ADDR, "--portal", &portal.url]);
    assert!(e.contains("a revoked device never rejoins"), "{e}");
    let pending = a.json(&["device", "pending"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(0), "{pending}");
}
