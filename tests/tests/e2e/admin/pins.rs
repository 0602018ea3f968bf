//! A PIN is a bearer credential: it must not outlive the administrator
//! epoch that minted it. The thief on an administrator mints one before
//! anyone notices, the owner revokes that administrator (or recovers with
//! the kit), and the thief's fresh home asks with the PIN: refused. And a
//! used PIN spelled otherwise is refused too.

use mesh_tests::Device;

use super::{account, Account, ADDR};

/// A fresh home asks to join with `pin` (read on standard input).
fn request_with_pin(acc: &Account, home: &str, name: &str, pin: &str) -> Device {
    let t = Device::new(&acc.dir.0, home);
    let witness = t.ok_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            &acc.portal.url,
            "--name",
            name,
            "--pin",
            "--no-wait",
        ],
        pin,
    );
    // Kept beside the home, for the check of what the administrator keeps.
    std::fs::write(t.home.with_extension("witness"), witness).expect("witness");
    t
}

/// `admin`'s next routine sync refuses `name`'s request, and `name` is no
/// device of the account; the device learns why.
fn refused_at_next_sync(admin: &Device, thief: &Device, name: &str, why: &str) {
    let r = admin.json(&["sync"]);
    let refused = r["pin_refused"].as_array().expect("pin_refused");
    assert!(
        refused
            .iter()
            .any(|x| x[0] == name && x[1].as_str().is_some_and(|s| s.contains(why))),
        "{r}"
    );
    assert!(
        r["auto_accepted"].as_array().is_some_and(|a| a.is_empty()),
        "{r}"
    );
    let names = admin.ok(&["device", "list"]);
    assert!(!names.contains(name), "{names}");
    // Answered, the stranger's request is not kept in the state (its
    // witness is in the request alone).
    let state = std::fs::read_to_string(admin.home.join("state.json")).expect("state");
    let witness = std::fs::read_to_string(thief.home.with_extension("witness")).expect("witness");
    assert!(
        !state.contains(witness.trim()),
        "the refused request is kept"
    );
    let e = thief.fails(&["sync"]);
    assert!(e.contains(why), "{e}");
}

/// The PIN a device's `mesh device pin` prints.
fn mint(d: &Device, roles: &str, expires: &str) -> String {
    d.ok(&["device", "pin", "--roles", roles, "--expires", expires])
        .trim()
        .to_string()
}

#[test]
fn a_pin_minted_by_an_administrator_revoked_since_admits_nobody() {
    let acc = account("pin-revoked-admin", true);
    // No PIN outlives a day: the thief's ten-year PIN is refused at once.
    let e = acc.b.fails(&[
        "device",
        "pin",
        "--roles",
        "admin,ssh",
        "--expires",
        "3650d",
    ]);
    assert!(e.contains("1 s to 24 h") && e.contains("hint:"), "{e}");
    let pin = mint(&acc.b, "admin,ssh,pgp,smime", "1d");
    // A PIN minted by A before the revocation is as void as B's: every PIN
    // of the epoch goes with it.
    let own = mint(&acc.a, "ssh", "1h");
    acc.a.ok(&["device", "revoke", "desktop"]);
    let thief = request_with_pin(&acc, "thief", "evil", &pin);
    refused_at_next_sync(&acc.a, &thief, "evil", "void");
    let late = request_with_pin(&acc, "late", "late", &own);
    refused_at_next_sync(&acc.a, &late, "late", "void");
    // A PIN of the new epoch still works.
    let fresh = mint(&acc.a, "ssh", "1h");
    let ok = request_with_pin(&acc, "ok", "tablet", &fresh);
    let r = acc.a.json(&["sync"]);
    assert_eq!(r["auto_accepted"][0], "tablet", "{r}");
    ok.ok(&["sync"]);
}

#[test]
fn a_pin_minted_before_a_recovery_admits_nobody() {
    let acc = account("pin-recovered", false);
    let pin = mint(&acc.a, "admin,ssh,pgp,smime", "1d");
    let owner = Device::new(&acc.dir.0, "owner");
    super::recover_revoking_laptop(&acc, &owner);
    let thief = request_with_pin(&acc, "thief", "evil", &pin);
    refused_at_next_sync(&owner, &thief, "evil", "void");
}

/// Once used, a PIN is used under every spelling of its id: the same PIN
/// with its id in lower case and without dashes (what a device that knows
/// the PIN can send) is refused, and nothing is added.
#[test]
fn a_used_pin_spelled_otherwise_is_refused() {
    use mesh_core::portal as p;
    use mesh_core::{b64, pin};
    let acc = account("pin-spelling", false);
    let text = mint(&acc.a, "ssh", "1h");
    let first = request_with_pin(&acc, "first", "tablet", &text);
    acc.a.ok(&["sync"]);
    first.ok(&["sync"]);

    let second = Device::new(&acc.dir.0, "second");
    second.ok(&["device", "init", "--name", "again"]);
    let store = mesh_account::store::Store::open(&second.home, false).expect("store");
    let base = mesh_account::device::base_keys(&store).expect("keys");
    let dev = store.state().device.clone().expect("device");
    let salted = pin::salted_pin(&text, pin::ACTION_DEVICE).expect("salted");
    let id = pin::pin_id(&salted, ADDR).expect("id");
    let digest = mesh_account::entries::payload_digest(&dev.profile);
    let client = mesh_account::client::Client::new(&acc.portal.url).expect("client");
    for (i, spelled) in [
        id.to_lowercase().replace('-', ""),
        id.to_lowercase(),
        id.replace('-', ""),
    ]
    .into_iter()
    .enumerate()
    {
        // A valid witness: without the spelling check, this is accepted.
        let nonce = [i as u8 + 1; 16];
        let w = pin::pin_witness(&salted, ADDR, &nonce, &digest).expect("witness");
        let body = serde_json::to_value(p::RequestConnection {
            account_address: ADDR.into(),
            profile_device: dev.profile.clone(),
            client_nonce: b64::encode(&nonce),
            pin_id: Some(spelled.clone()),
            pin_witness: Some(b64::encode(&w)),
        })
        .expect("json");
        let env = mesh_account::client::sign_request(
            p::tx::CONNECT,
            "",
            &dev.udf,
            body,
            &base.authenticate,
        );
        client
            .post::<_, serde_json::Value>(p::tx::CONNECT, &env)
            .expect("the portal records the request");
        let r = acc.a.json(&["sync"]);
        assert!(
            r["auto_accepted"].as_array().is_some_and(|a| a.is_empty()),
            "{spelled}: {r}"
        );
        let refused = r["pin_refused"].to_string();
        assert!(refused.contains("not spelled as"), "{spelled}: {r}");
    }
    let list = acc.a.ok(&["device", "list"]);
    assert!(list.contains("tablet") && !list.contains("again"), "{list}");
}

/// A PIN record of this epoch that no administrator key opens (encrypted
/// to a stranger's key, signed by the administrators) is skipped and
/// reported: it does not stop the PIN requests behind it, nor the sync.
#[test]
fn a_pin_record_no_key_opens_is_skipped_and_reported() {
    use mesh_core::envelope::{Encrypted, Signed};
    use mesh_core::portal::{self as p, store as st, MessagePin, StoreUpdate};
    let acc = account("pin-unreadable", false);
    acc.a.ok(&["sync"]);
    let stranger = mesh_core::keys::AgreementKey::generate();
    super::times::raw_write(
        &acc.udf,
        &acc.portal.url,
        &acc.a,
        mesh_plugins::now(),
        |state, keys| {
            let rec = MessagePin {
                pin_id: "AAAA-BBBB".into(),
                salted_pin: String::from("x").into(),
                roles: Vec::new(),
                expires: mesh_plugins::now() + 60,
                automatic: true,
                issuer: None,
                epoch: Some(keys.epoch()),
            };
            let enc = Encrypted::encrypt_object(p::ct::MESSAGE_PIN, &rec, &[stranger.public_key()])
                .expect("encrypt");
            StoreUpdate {
                store: st::LOCAL.into(),
                expected: state.history.position(st::LOCAL).index,
                delta: None,
                envelopes: vec![Signed::sign_object(
                    p::ct::MESSAGE_PIN,
                    &enc,
                    &keys.admin_sign,
                )],
            }
        },
    )
    .expect("written");
    let pin = mint(&acc.a, "ssh", "1h");
    let d = request_with_pin(&acc, "d", "tablet", &pin);
    let r = acc.a.json(&["sync"]);
    assert_eq!(r["auto_accepted"][0], "tablet", "{r}");
    let warned = r["warnings"].to_string();
    assert!(
        warned.contains("PIN record") && warned.contains("hint:"),
        "{r}"
    );
    d.ok(&["sync"]);
}

/// `device request --pin` waits by default and says for what: an
/// administrator device that syncs (its running agent accepts the
/// request). With none online it stops at the timeout, and both it and
/// `sync` name the remedy; the administrator's next sync lets it complete.
#[test]
fn a_pin_request_waits_for_an_administrator_device_to_sync() {
    let acc = account("pin-wait", false);
    let url = &acc.portal.url;
    // No administrator online: the wait ends with what it waited for.
    let pin = mint(&acc.a, "ssh", "10m");
    let t = Device::new(&acc.dir.0, "t");
    let o = t.run_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            url,
            "--name",
            "tablet",
            "--pin",
            "--timeout",
            "2s",
        ],
        &pin,
    );
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("waiting up to 2s for an administrator device to sync")
            && said.contains("is waiting for an administrator device to sync")
            && said.contains("hint:")
            && said.contains("mesh agent start")
            && !said.contains("mesh device accept"),
        "{said}"
    );
    let e = t.fails(&["sync"]);
    assert!(
        e.contains("mesh agent start") && !e.contains("device accept"),
        "{e}"
    );
    acc.a.ok(&["sync"]);
    t.ok(&["sync"]);
    assert!(t.ok(&["device", "list"]).contains("tablet"));

    // An administrator's agent is running: the request completes by itself.
    let _agent = mesh_tests::RunningAgent::start(&acc.a);
    let pin = mint(&acc.a, "ssh", "10m");
    let w = Device::new(&acc.dir.0, "w");
    let o = w.run_input(
        &[
            "device", "request", ADDR, "--portal", url, "--name", "watch", "--pin",
        ],
        &pin,
    );
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("accepted; this device is now part of"),
        "{said}"
    );
    assert!(w.ok(&["device", "list"]).contains("watch"));
}
