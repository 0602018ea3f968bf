//! `mesh device roles` (issue 22.7): an existing device's roles change in
//! one transaction; the device switches at its next sync; giving up the
//! administrator role starts a new administrator epoch.

use mesh_tests::Device;

use super::{account, online_keys, view};

fn roles_of(by: &Device, name: &str) -> Vec<String> {
    let list = by.json(&["device", "list"]);
    list.as_array()
        .expect("list")
        .iter()
        .find(|d| d["name"] == name)
        .map(|d| {
            d["roles"]
                .as_array()
                .expect("roles")
                .iter()
                .map(|r| r.as_str().expect("role").to_string())
                .collect()
        })
        .expect("device")
}

#[test]
fn a_member_becomes_an_administrator_and_gives_it_up() {
    let acc = account("roles", false);
    let r = acc.a.json(&[
        "device", "roles", "phone", "--add", "admin", "--remove", "smime",
    ]);
    assert_eq!(
        r["roles"],
        serde_json::json!(["admin", "pgp", "ssh"]),
        "{r}"
    );
    assert_eq!(r["admin_epoch"], serde_json::Value::Null, "{r}");
    // The phone switches at its next sync and can act as an administrator.
    assert_eq!(acc.c.json(&["sync"])["rotated"], true);
    assert_eq!(roles_of(&acc.c, "phone"), ["admin", "pgp", "ssh"]);
    acc.c.ok(&["device", "pin"]);
    let epoch0 = view(&acc.a).profile.epoch();

    // Giving it up: a new administrator epoch the phone does not hold.
    let before = online_keys(&acc.c, &acc.udf);
    let r = acc
        .a
        .json(&["device", "roles", "phone", "--remove", "admin"]);
    assert_eq!(r["admin_epoch"], epoch0 + 1, "{r}");
    acc.c.ok(&["sync"]);
    assert_eq!(roles_of(&acc.c, "phone"), ["pgp", "ssh"]);
    assert_eq!(view(&acc.c).profile.epoch(), epoch0 + 1);
    let err = acc.c.fails(&["device", "pin"]);
    assert!(err.contains("not an administrator"), "{err}");
    // The seeds it held sign nothing the account now accepts.
    assert_ne!(
        before.admin_sign.public_key(),
        view(&acc.a).profile.administrator_signature.key
    );
    // The administrator goes on in the new epoch.
    acc.a.ok(&["device", "rotate", "phone"]);
    acc.c.ok(&["sync"]);
}

#[test]
fn role_changes_that_would_lose_something_are_refused_and_write_nothing() {
    let acc = account("roles-refused", false);
    let serial = || view(&acc.a).serial();
    let start = serial();
    let cases: &[(&[&str], &str)] = &[
        (&["phone"], "no role to change"),
        (
            &["phone", "--add", "pgp", "--remove", "pgp"],
            "both added and removed",
        ),
        (&["laptop", "--remove", "admin"], "this device itself"),
        (
            &["tablet", "--add", "admin"],
            "no active device named tablet",
        ),
        (&["phone", "--add", "root"], "invalid value"),
    ];
    for (args, want) in cases {
        let mut full = vec!["device", "roles"];
        full.extend_from_slice(args);
        let err = acc.a.fails(&full);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            err.contains("hint:") || *want == "invalid value",
            "{args:?}: {err}"
        );
        assert_eq!(serial(), start, "{args:?} wrote something");
    }
    // The phone refuses administrator work, and a no-op writes nothing.
    let err = acc.c.fails(&["device", "roles", "laptop", "--add", "pgp"]);
    assert!(err.contains("not an administrator"), "{err}");
    let r = acc.a.json(&["device", "roles", "phone", "--add", "ssh"]);
    assert_eq!(r["epoch"], serde_json::Value::Null, "{r}");
    assert_eq!(serial(), start);
}
