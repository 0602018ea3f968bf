//! Every account event after the administrator epoch changed (issue
//! 22.1): after an administrator was revoked, and after a recovery, on
//! both portal backends. Each event commits, the administrator's command
//! succeeds, and the member that was away syncs and sees it.

use mesh_tests::{Backend, Device};

use super::{account_on, recover_revoking_laptop, Account, ADDR};

#[derive(Clone, Copy, Debug)]
enum Change {
    RevokedAdministrator,
    Recovery,
}

/// A device name's row of `by`'s device list.
fn row(by: &Device, name: &str) -> serde_json::Value {
    let list = by.json(&["device", "list"]);
    list.as_array()
        .expect("list")
        .iter()
        .find(|d| d["name"] == name)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

fn every_event_after(backend: Backend, change: Change) {
    let tag = format!("epochs-{change:?}-{backend:?}").to_lowercase();
    let acc: Account = account_on(backend, &tag, true);
    let admin = match change {
        Change::RevokedAdministrator => {
            acc.a.ok(&["device", "revoke", "desktop"]);
            Device {
                home: acc.a.home.clone(),
            }
        }
        Change::Recovery => {
            let owner = Device::new(&acc.dir.0, "owner");
            recover_revoking_laptop(&acc, &owner);
            owner
        }
    };
    let url = &acc.portal.url;
    // accept (by witness)
    let t = Device::new(&acc.dir.0, "t");
    t.join(&admin, ADDR, url, "tablet");
    assert_eq!(row(&acc.c, "tablet")["state"], "active", "accept");
    // PIN join: the administrator's next sync accepts it
    let pin = admin.ok(&["device", "pin"]);
    let w = Device::new(&acc.dir.0, "w");
    w.ok_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            url,
            "--name",
            "watch",
            "--pin",
            "--no-wait",
        ],
        pin.trim(),
    );
    admin.ok(&["sync"]);
    w.ok(&["sync"]);
    assert_eq!(row(&acc.c, "watch")["state"], "active", "PIN join");
    // principals
    let before = acc.c.ok(&["ssh", "cert"]);
    admin.ok(&["ssh", "principals", "root", "deploy"]);
    // The sync says what it installed; the next has nothing new (issue 22.11).
    let said = acc.c.ok(&["sync"]);
    assert!(
        said.contains("new SSH certificate for root,deploy"),
        "{said}"
    );
    let again = acc.c.ok(&["sync"]);
    assert!(again.starts_with("up to date"), "{again}");
    assert_ne!(
        acc.c.ok(&["ssh", "cert"]),
        before,
        "principals: no new certificate"
    );
    // role change
    admin.ok(&["device", "roles", "tablet", "--remove", "smime"]);
    assert_eq!(t.json(&["sync"])["rotated"], true, "roles");
    assert_eq!(
        row(&acc.c, "tablet")["roles"],
        serde_json::json!(["pgp", "ssh"])
    );
    // rotate
    admin.ok(&["device", "rotate", "phone"]);
    assert_eq!(acc.c.json(&["sync"])["rotated"], true, "rotate");
    // revoke
    admin.ok(&["device", "revoke", "watch"]);
    let e = w.fails(&["sync"]);
    assert!(e.contains("revoked"), "{e}");
    assert_eq!(row(&acc.c, "watch")["state"], "revoked", "revoke");
    t.ok(&["sync"]);
}

fn every_event_after_an_administrator_revocation(backend: Backend) {
    every_event_after(backend, Change::RevokedAdministrator);
}

fn every_event_after_a_recovery(backend: Backend) {
    every_event_after(backend, Change::Recovery);
}

mesh_tests::on_both_backends!(
    every_event_after_an_administrator_revocation,
    every_event_after_a_recovery
);
