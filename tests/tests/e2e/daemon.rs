//! The agent's life and log (issue 22.9): a revoked device's agent wipes
//! its home and exits; sync errors, revocations and administrator epoch
//! changes are in its log with their times, and `mesh agent status` shows
//! the last error with its time.

use mesh_tests::{eventually, log_lines, Device, PortalProc, RunningAgent, Scratch};

const ADDR: &str = "alice@example.com";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn a_revoked_devices_agent_wipes_its_home_logs_it_and_exits() {
    let dir = Scratch::new("agent-revoked");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    let ag = RunningAgent::start(&b);
    assert!(b.json(&["agent", "status"])["mesh_keys"].as_u64() > Some(0));

    a.ok(&["device", "revoke", "phone"]);
    // Its long-poll learns of it at once: it wipes, says so, and exits.
    assert!(
        eventually(15, || ag.exited()),
        "still running: {}",
        ag.log()
    );
    assert!(!ag.sock.exists(), "its ssh socket is left behind");
    let said = log_lines(
        &ag.log(),
        &["revoked from alice@example.com", "wiped", "exiting"],
    );
    assert_eq!(said.len(), 1, "{}", ag.log());
    assert!(!ag.log().contains("stopped"), "{}", ag.log());
    // The home is wiped; asked about its agent, it says why none runs.
    let st = b.json(&["account", "show"]);
    assert_eq!(st["membership"], "revoked", "{st}");
    let e = b.fails(&["agent", "status"]);
    assert!(e.contains("was revoked") && e.contains("hint:"), "{e}");
}

#[test]
fn sync_errors_and_epoch_changes_are_logged_with_times_and_shown_by_status() {
    let dir = Scratch::new("agent-log");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    let w = b.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "desktop",
    ]);
    a.ok(&["device", "accept", w.trim(), "--roles", "admin,ssh"]);
    b.ok(&["sync"]);
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &portal.url, "phone");
    let ag = RunningAgent::start(&c);
    assert!(eventually(15, || {
        let st = c.json(&["agent", "status"]);
        st["epoch"] == 0 && st["last_sync"].is_u64()
    }));

    // An administrator revoked: a new epoch, in the member's log.
    a.ok(&["device", "revoke", "desktop"]);
    assert!(
        eventually(15, || !log_lines(
            &ag.log(),
            &["administrator epoch changed from 0 to 1"]
        )
        .is_empty()),
        "{}",
        ag.log()
    );
    assert_eq!(
        log_lines(&ag.log(), &["device desktop was revoked"]).len(),
        1
    );
    assert_eq!(c.json(&["agent", "status"])["epoch"], 1);

    // The portal goes away: the error, with its time, in the status (JSON
    // and text) and, once, in the log.
    let t0 = now();
    drop(portal);
    let unreachable = |st: &serde_json::Value| {
        st["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach the portal"))
    };
    assert!(eventually(30, || unreachable(
        &c.json(&["agent", "status"])
    )));
    let st = c.json(&["agent", "status"]);
    let at = st["last_error_at"].as_u64().expect("the error's time");
    assert!(t0 <= at && at <= now(), "{st}");
    assert_eq!(st["portal_reachable"], false);
    let text = c.ok(&["agent", "status"]);
    assert!(
        text.contains("error:    ") && text.contains("cannot reach the portal"),
        "{text}"
    );
    assert!(text.contains("since 20") && text.contains("log:"), "{text}");
    let failed = log_lines(
        &ag.log(),
        &["sync failed", "cannot reach the portal", "hint:"],
    );
    assert_eq!(failed.len(), 1, "{}", ag.log());
}
