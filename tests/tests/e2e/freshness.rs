//! A portal that answers but serves the account as it was (frozen before
//! a revocation) is found out when the administrators promised a
//! heartbeat (PROTOCOL.md §10.7): every reader refuses a newest checkpoint
//! older than twice the promise, and an administrator's sync keeps it.
//!
//! Time is moved with `faketime` on the reader (and the administrator),
//! less than the portal's 300 s request window, so that signed requests
//! still pass: a promise of 2 minutes is broken 4 minutes on.

use std::process::{Command, Output};

use mesh_tests::{require_tool, workspace_bin, Device, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

/// `mesh ARGS` on `home`, its clock `ahead` seconds on.
fn later(home: &std::path::Path, ahead: u64, args: &[&str]) -> Output {
    Command::new("faketime")
        .arg("-f")
        .arg(format!("+{ahead}"))
        .arg(workspace_bin("mesh"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("MESH_KEYSTORE", "file")
        .output()
        .expect("faketime mesh")
}

fn refused_as_stale(o: &Output, what: &str) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{what} accepted a stale account: {e}");
    assert!(
        e.contains("newest checkpoint is") && e.contains("hint:"),
        "{what}: {e}"
    );
}

#[test]
fn a_frozen_account_is_refused_once_its_heartbeat_is_overdue() {
    if !require_tool("faketime") {
        return;
    }
    let dir = Scratch::new("heartbeat");
    let portal = PortalProc::start(&dir.path("portal"));
    let url = portal.url.clone();
    let a = Device::create_account(&dir.0, ADDR, &url);
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("udf")
        .to_string();
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &url, "phone");
    let e = a.fails(&["account", "heartbeat", "30s"]);
    assert!(e.contains("shortest") && e.contains("hint:"), "{e}");
    a.ok(&["account", "heartbeat", "2m"]);
    c.ok(&["sync"]);
    let server = dir.path("server");
    let cache = dir.path("cache");
    let keys = |ahead: u64| {
        later(
            &server,
            ahead,
            &[
                "ssh",
                "authorized-keys",
                "--account",
                &udf,
                "--portal",
                &url,
                "--cache",
                cache.to_str().expect("path"),
            ],
        )
    };
    let now = keys(0);
    assert!(
        now.status.success(),
        "{}",
        String::from_utf8_lossy(&now.stderr)
    );

    // Four minutes on, nothing new: twice the promise is past.
    refused_as_stale(&later(&c.home, 270, &["sync"]), "the member");
    refused_as_stale(&keys(270), "the cached server");
    let ca = dir.path("ca.pub");
    let fresh_server = later(
        &dir.path("fresh"),
        270,
        &[
            "ssh",
            "ca",
            "--account",
            &udf,
            "--portal",
            &url,
            "--output",
            ca.to_str().expect("path"),
        ],
    );
    refused_as_stale(&fresh_server, "a fresh server");
    assert!(!ca.exists(), "a stale account's CA was installed");

    // An administrator's sync a minute on keeps the promise: a heartbeat.
    let o = later(&a.home, 70, &["sync"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (what, o) in [
        ("the member", later(&c.home, 270, &["sync"])),
        ("the server", keys(270)),
    ] {
        assert!(
            o.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // And `off` takes the promise back.
    a.ok(&["account", "heartbeat", "off"]);
    c.ok(&["sync"]);
    let o = later(&c.home, 290, &["sync"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
