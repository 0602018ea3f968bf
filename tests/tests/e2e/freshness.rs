//! A portal that answers but serves the account as it was (frozen before
//! a revocation) is found out when the administrators promised a
//! heartbeat (PROTOCOL.md §10.7): every reader refuses a newest checkpoint
//! older than twice the promise, and an administrator's sync keeps it.
//!
//! Time is moved with `faketime`: after the promise is made, the portal
//! is restarted 45 minutes on (its data as it was: nothing newer), and the
//! readers and the administrator run 45 minutes on too, so that their
//! signed requests are fresh to it while the account's newest checkpoint
//! is 45 minutes old, past twice a 20-minute promise.

use std::process::{Command, Output};

use mesh_tests::{
    faketime_library, free_port, require_tool, workspace_bin, Device, PortalProc, RunningAgent,
    Scratch,
};

const ADDR: &str = "alice@example.com";
const LATER: &str = "+45m";

/// `mesh ARGS` on `home`, its clock 45 minutes on.
fn later(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new("faketime")
        .args(["-f", LATER])
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

fn succeeds(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_frozen_account_is_refused_once_its_heartbeat_is_overdue() {
    if !require_tool("faketime") {
        return;
    }
    let dir = Scratch::new("heartbeat");
    let data = dir.path("portal");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut portal = PortalProc::start_on(&data, &listen, &[]);
    let url = portal.url.clone();
    let a = Device::create_account(&dir.0, ADDR, &url);
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("udf")
        .to_string();
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &url, "phone");
    let e = a.fails(&["account", "heartbeat", "5m"]);
    assert!(e.contains("shortest") && e.contains("hint:"), "{e}");
    a.ok(&["account", "heartbeat", "20m"]);
    c.ok(&["sync"]);
    let server = dir.path("server");
    let cache = dir.path("cache");
    let cache = cache.to_str().expect("path");
    let keys_args = [
        "ssh",
        "authorized-keys",
        "--account",
        &udf,
        "--portal",
        &url,
        "--cache",
        cache,
    ];
    succeeds(
        &Device {
            home: server.clone(),
        }
        .run(&keys_args),
        "the server now",
    );

    // 45 minutes on, the portal has nothing newer: twice the promise is past.
    portal.stop();
    portal = PortalProc::start_under_on(&["faketime", "-f", LATER], &data, &listen, &[]);
    refused_as_stale(&later(&c.home, &["sync"]), "the member");
    refused_as_stale(&later(&server, &keys_args), "the cached server");
    let ca = dir.path("ca.pub");
    let ca_args = [
        "ssh",
        "ca",
        "--account",
        &udf,
        "--portal",
        &url,
        "--output",
        ca.to_str().expect("path"),
    ];
    refused_as_stale(&later(&dir.path("fresh"), &ca_args), "a fresh server");
    assert!(!ca.exists(), "a stale account's CA was installed");

    // The administrator's agent, at its periodic sync (nothing moved, the
    // channels' pass recent), writes the heartbeat that is due.
    // (The library, not the `faketime` wrapper, which waits for the
    // daemon `agent start` leaves running.)
    let lib = faketime_library();
    let agent = RunningAgent::start_with(&a, &[("LD_PRELOAD", &lib), ("FAKETIME", LATER)]);
    let beat = mesh_tests::eventually(30, || later(&c.home, &["sync"]).status.success());
    drop(agent);
    assert!(beat, "no heartbeat from the administrator's agent");
    succeeds(
        &later(&server, &keys_args),
        "the cached server after the heartbeat",
    );
    succeeds(
        &later(&dir.path("fresh"), &ca_args),
        "a fresh server after it",
    );

    // `off` takes the promise back.
    succeeds(&later(&a.home, &["account", "heartbeat", "off"]), "off");
    succeeds(&later(&c.home, &["sync"]), "the member, no promise");
    drop(portal);
}
