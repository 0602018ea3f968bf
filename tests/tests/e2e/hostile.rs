//! A lying portal (issue: a lying portal cannot undo a revocation): what
//! a device refuses when the portal answers for someone else.

use mesh_tests::{Device, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

#[test]
fn a_portal_that_substitutes_the_profile_in_the_pin_flow_is_refused() {
    let dir = Scratch::new("hostile-pin");
    let real = PortalProc::start(&dir.path("real"));
    let a = Device::create_account(&dir.0, ADDR, &real.url);
    let pin = a.ok(&["device", "pin"]);
    // The hostile portal holds another account of the same address, whose
    // administrator accepts whatever asks.
    let hostile = PortalProc::start(&dir.path("hostile"));
    let m = Device::new(&dir.0, "mallory");
    m.ok(&[
        "account",
        "create",
        ADDR,
        "--portal",
        &hostile.url,
        "--device",
        "evil",
    ]);
    let d = Device::new(&dir.0, "d");
    let w = d.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &hostile.url,
        "--name",
        "new",
        "--pin",
        pin.trim(),
    ]);
    m.ok(&["device", "accept", w.trim()]);
    let e = d.fails(&["sync"]);
    assert!(e.contains("does not prove the PIN"), "{e}");
    assert!(e.contains("refusing what the portal returned"), "{e}");
    // Nothing was kept: no activation, no keys of that account.
    let show = d.json(&["account", "show"]);
    assert_eq!(show["membership"], "pending", "{show}");
    assert_eq!(show["roles"], serde_json::json!([]), "{show}");
    assert!(d.fails(&["ssh", "public-key"]).contains("error"));

    // With the real portal the same PIN works, and the proof holds.
    let d2 = Device::new(&dir.0, "d2");
    d2.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &real.url,
        "--name",
        "new",
        "--pin",
        pin.trim(),
    ]);
    a.ok(&["sync"]);
    d2.ok(&["sync"]);
    assert_eq!(d2.json(&["account", "show"])["membership"], "member");
}
