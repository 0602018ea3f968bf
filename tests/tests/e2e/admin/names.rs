//! Device names are how people and `device revoke NAME` tell devices
//! apart (issue 22.11): a second active device of the same name is
//! refused, by witness and by PIN, with a hint; nothing is written.

use mesh_tests::Device;

use super::{account, view, ADDR};

#[test]
fn a_second_active_device_of_the_same_name_is_refused() {
    let acc = account("names", false);
    let url = &acc.portal.url;
    let serial = view(&acc.a).serial();
    // By witness: the administrator's accept is refused, and writes nothing.
    let d = Device::new(&acc.dir.0, "d");
    let w = d.ok(&[
        "device", "request", ADDR, "--portal", url, "--name", "phone",
    ]);
    let e = acc.a.fails(&["device", "accept", w.trim()]);
    assert!(
        e.contains("already has an active device named phone")
            && e.contains("hint:")
            && e.contains("--name"),
        "{e}"
    );
    assert_eq!(view(&acc.a).serial(), serial);
    acc.a.ok(&["device", "reject", w.trim()]);

    // By PIN: the request is refused with the reason, which the device reads.
    let pin = acc.a.ok(&["device", "pin"]);
    let p = Device::new(&acc.dir.0, "p");
    p.ok_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            url,
            "--name",
            "phone",
            "--pin",
            "--no-wait",
        ],
        pin.trim(),
    );
    let r = acc.a.json(&["sync"]);
    let refused = r["pin_refused"].to_string();
    assert!(
        refused.contains("already has an active device named phone"),
        "{r}"
    );
    let e = p.fails(&["sync"]);
    assert!(
        e.contains("already has an active device named phone"),
        "{e}"
    );
    assert_eq!(view(&acc.a).serial(), serial);

    // Once the old phone is revoked, the name is free again.
    acc.a.ok(&["device", "revoke", "phone"]);
    let n = Device::new(&acc.dir.0, "n");
    n.join(&acc.a, ADDR, url, "phone");
    let list = acc.a.ok(&["device", "list"]);
    assert_eq!(
        list.lines().filter(|l| l.starts_with("phone ")).count(),
        2,
        "{list}"
    );
}
