//! What the portal and the devices refuse: entries edited in the
//! database, replayed requests, revoked devices, other accounts' keys and
//! bad input (split from `portal.rs`).

use mesh_account::client::{sign_request, Client};
use mesh_account::store::Store;
use mesh_core::portal::{self as p, store as st};
use mesh_tests::{Backend, Device, PortalDb, PortalProc, Scratch, Val};

use super::{account_with_member, secrets_of, ADDR};

/// Modify the payload of a stored entry: the signature no longer verifies.
/// An access list stored as a change is written whole, tampered. Returns
/// the row as it was (data, `whole_len` or -1).
fn tamper(db: &PortalDb, store: &str, index: i64) -> (String, i64) {
    let row = db.row(
        "SELECT account, data, COALESCE(whole_len, -1) FROM entries WHERE store = $1 AND idx = $2",
        &[store.into(), index.into()],
    );
    let (account, raw, len) = (row[0].text(), row[1].text(), row[2].int());
    let whole = if store == st::ACCESS {
        db.access_list(&account, index)
    } else {
        raw.clone()
    };
    let mut env: serde_json::Value = serde_json::from_str(&whole).expect("json");
    let payload = data_encoding::BASE64URL_NOPAD
        .decode(env["Payload"].as_str().expect("payload").as_bytes())
        .expect("b64");
    let changed = String::from_utf8(payload)
        .expect("utf8")
        .replace("tablet", "tablEt");
    env["Payload"] = data_encoding::BASE64URL_NOPAD
        .encode(changed.as_bytes())
        .into();
    db.execute(
        "UPDATE entries SET data = $1, whole_len = NULL WHERE account = $2 AND store = $3 AND idx = $4",
        &[
            env.to_string().into(),
            account.into(),
            store.into(),
            index.into(),
        ],
    );
    (raw, len)
}

fn restore(db: &PortalDb, store: &str, index: i64, (raw, len): &(String, i64)) {
    db.execute(
        "UPDATE entries SET data = $1, whole_len = NULLIF(CAST($2 AS BIGINT), -1) WHERE store = $3 AND idx = $4",
        &[raw.into(), Val::Int(*len), store.into(), Val::Int(index)],
    );
}

fn tampered_portal_entries_are_refused_and_nothing_is_lost(backend: Backend) {
    let dir = Scratch::new("tamper");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let (a, b) = account_with_member(&dir.0, &portal);
    let c = Device::new(&dir.0, "c");
    let w = c.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "tablet",
    ]);
    a.ok(&["device", "accept", w.trim()]);
    // b has not seen the third access list yet; the portal's database is changed under it.
    let state_before = std::fs::read(b.home.join("state.json")).expect("state");
    let raw = tamper(&portal.db, st::ACCESS, 3);
    let e = b.fails(&["sync"]);
    assert!(
        e.contains("refusing what the portal returned: Access entry 3"),
        "{e}"
    );
    assert!(e.contains("hint:"), "{e}");
    assert_eq!(
        std::fs::read(b.home.join("state.json")).expect("state"),
        state_before,
        "local state intact"
    );
    assert!(secrets_of(&b).activation_seed.is_some());
    // The same for a catalog entry, seen by a device syncing from scratch.
    restore(&portal.db, st::ACCESS, 3, &raw);
    let raw_dev = tamper(&portal.db, st::DEVICE, 3);
    let e = b.fails(&["sync"]);
    assert!(e.contains("Device entry 3"), "{e}");
    restore(&portal.db, st::DEVICE, 3, &raw_dev);
    let out = b.ok(&["sync"]);
    assert!(out.contains("new device: tablet"), "{out}");
}

fn keys_of(d: &Device) -> mesh_core::objects::DeviceKeys {
    std::env::set_var("MESH_KEYSTORE", "file");
    let store = Store::open(&d.home, false).expect("store");
    mesh_account::state::device_keys(&store).expect("keys")
}

fn replays_revoked_devices_other_accounts_and_bad_input_are_refused(backend: Backend) {
    let dir = Scratch::new("refuse");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let (a, b) = account_with_member(&dir.0, &portal);
    let other = Device::new(&dir.0, "other");
    let bob = other.json(&[
        "account",
        "create",
        "bob@example.com",
        "--portal",
        &portal.url,
        "--recovery",
        &other.kit(),
    ]);
    let alice = a.json(&["account", "show"]);
    let client = Client::new(&portal.url).expect("client");
    let bk = keys_of(&b);
    let b_udf = b.json(&["account", "show"])["device"]
        .as_str()
        .expect("udf")
        .to_string();
    let alice_udf = alice["profile_udf"].as_str().expect("udf");
    let status = sign_request(
        p::tx::STATUS,
        alice_udf,
        &b_udf,
        serde_json::json!({}),
        &bk.authenticate,
    );

    // A fresh request works; the same bytes again are a replay.
    let _: p::StatusResponse = client.post(p::tx::STATUS, &status).expect("first");
    let e = client
        .post::<_, serde_json::Value>(p::tx::STATUS, &status)
        .expect_err("replay");
    assert_eq!(e.code(), Some(p::code::REPLAY), "{e}");

    // A device of one account asking about another.
    let bob_udf = bob["profile_udf"].as_str().expect("udf");
    let req = sign_request(
        p::tx::STATUS,
        bob_udf,
        &b_udf,
        serde_json::json!({}),
        &bk.authenticate,
    );
    let e = client
        .post::<_, serde_json::Value>(p::tx::STATUS, &req)
        .expect_err("other account");
    assert_eq!(e.code(), Some(p::code::NOT_AUTHORIZED), "{e}");
    assert!(e.to_string().contains("is not a device of account"), "{e}");

    // Signed with a key the access list does not name.
    let ak = keys_of(&a);
    let req = sign_request(
        p::tx::STATUS,
        alice_udf,
        &b_udf,
        serde_json::json!({}),
        &ak.authenticate,
    );
    let e = client
        .post::<_, serde_json::Value>(p::tx::STATUS, &req)
        .expect_err("wrong key");
    assert_eq!(e.code(), Some(p::code::NOT_AUTHENTICATED), "{e}");

    // A member may not write the account's stores.
    let req = sign_request(
        p::tx::TRANSACT,
        alice_udf,
        &b_udf,
        serde_json::json!({"Updates": []}),
        &bk.authenticate,
    );
    let e = client
        .post::<_, serde_json::Value>(p::tx::TRANSACT, &req)
        .expect_err("member write");
    assert_eq!(e.code(), Some(p::code::NOT_AUTHORIZED), "{e}");

    // An administrator's transaction past the entry cap is refused whole.
    let a_udf = a.json(&["account", "show"])["device"]
        .as_str()
        .expect("udf")
        .to_string();
    let junk = mesh_core::envelope::Signed::sign("Junk", b"x".to_vec(), &[&ak.sign]);
    let update = serde_json::json!({"Store": "Application", "Expected": 0,
        "Envelopes": vec![junk; p::MAX_UPDATES + 1]});
    let body = serde_json::json!({ "Updates": [update] });
    let req = sign_request(p::tx::TRANSACT, alice_udf, &a_udf, body, &ak.authenticate);
    let e = client
        .post::<_, serde_json::Value>(p::tx::TRANSACT, &req)
        .expect_err("too many");
    assert!(e.to_string().contains("at most 4096 entries"), "{e}");

    // Administrator-signed entries with no checkpoint, with two, or with
    // one that another account signed: refused whole.
    let seeds = secrets_of(&a).online_seeds.expect("administrator seeds");
    let parsed = seeds
        .seeds
        .iter()
        .map(|(e, s)| (*e, mesh_core::derive::Seed::from_udf(s).expect("seed")))
        .collect();
    let admin = mesh_core::objects::AccountKeys::from_seeds(alice_udf, parsed).expect("keys");
    let app = serde_json::json!({"Uid": "x", "Data": 1});
    let entry = mesh_core::envelope::Signed::sign_object(
        mesh_core::objects::ct::CATALOGED_APPLICATION,
        &app,
        &admin.admin_sign,
    );
    let other_keys = mesh_core::objects::AccountKeys::generate("MOTHER");
    let foreign = mesh_core::envelope::Signed::sign_object(
        p::ct::CHECKPOINT,
        &mesh_core::history::History::default().next(&other_keys.profile_udf(), &[], 0, None),
        &other_keys.admin_sign,
    );
    for (checkpoints, want) in [
        (vec![], "exactly one checkpoint"),
        (
            vec![foreign.clone(), foreign.clone()],
            "exactly one checkpoint",
        ),
        (vec![foreign], "checkpoint:"),
    ] {
        let body = serde_json::json!({ "Updates": [
            {"Store": "Application", "Expected": 0, "Envelopes": [entry.clone()]},
            {"Store": "Checkpoint", "Expected": 0, "Envelopes": checkpoints},
        ]});
        let req = sign_request(p::tx::TRANSACT, alice_udf, &a_udf, body, &ak.authenticate);
        let e = client
            .post::<_, serde_json::Value>(p::tx::TRANSACT, &req)
            .expect_err(want);
        assert!(e.to_string().contains(want), "{want}: {e}");
    }

    // A device outside the account may not read its stores, whatever
    // device key signs (only the administrator key opens the recovery read).
    let other_udf = other.json(&["account", "show"])["device"]
        .as_str()
        .expect("udf")
        .to_string();
    for key in [&keys_of(&other).authenticate, &bk.authenticate] {
        let body = serde_json::to_value(p::DownloadRequest {
            select: Vec::new(),
            changes: false,
        })
        .expect("json");
        let req = sign_request(p::tx::DOWNLOAD, alice_udf, &other_udf, body, key);
        let e = client
            .post::<_, serde_json::Value>(p::tx::DOWNLOAD, &req)
            .expect_err("outsider read");
        assert_eq!(e.code(), Some(p::code::NOT_AUTHORIZED), "{e}");
    }

    // Malformed, unknown and oversized requests get a 4xx with a reason.
    let e = client
        .post::<_, serde_json::Value>(p::tx::STATUS, &serde_json::json!({"x": 1}))
        .expect_err("junk");
    assert_eq!(e.code(), Some(p::code::BAD_REQUEST), "{e}");
    let req = sign_request(
        p::tx::STATUS,
        "MBQA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA",
        &b_udf,
        serde_json::json!({}),
        &bk.authenticate,
    );
    let e = client
        .post::<_, serde_json::Value>(p::tx::STATUS, &req)
        .expect_err("unknown");
    assert_eq!(e.code(), Some(p::code::UNKNOWN_ACCOUNT), "{e}");
    let big = serde_json::json!({"Payload": "A".repeat(p::MAX_BODY + 10)});
    let e = client
        .post::<_, serde_json::Value>(p::tx::STATUS, &big)
        .expect_err("big");
    assert!(
        matches!(
            e,
            mesh_account::client::ClientError::Refused { status: 413, .. }
        ),
        "{e}"
    );
    let req = sign_request(
        p::tx::DOWNLOAD,
        alice_udf,
        &b_udf,
        serde_json::json!({}),
        &bk.authenticate,
    );
    let e = client
        .post::<_, serde_json::Value>(p::tx::STATUS, &req)
        .expect_err("wrong transaction");
    assert!(e.to_string().contains("sent to Status"), "{e}");

    // None of that changed anything: b syncs to the same state.
    let before = std::fs::read(b.home.join("state.json")).expect("state");
    b.ok(&["sync"]);
    let after = std::fs::read(b.home.join("state.json")).expect("state");
    assert_eq!(before, after);

    // Revoked: its requests are refused with the signed proof.
    a.ok(&["device", "revoke", "phone"]);
    let req = sign_request(
        p::tx::STATUS,
        alice_udf,
        &b_udf,
        serde_json::json!({}),
        &bk.authenticate,
    );
    let e = client
        .post::<_, serde_json::Value>(p::tx::STATUS, &req)
        .expect_err("revoked");
    assert_eq!(e.code(), Some(p::code::DEVICE_REVOKED), "{e}");
    match e {
        mesh_account::client::ClientError::Refused { access_list, .. } => {
            assert!(access_list.is_some())
        }
        other => panic!("{other}"),
    }
}

mesh_tests::on_both_backends!(
    tampered_portal_entries_are_refused_and_nothing_is_lost,
    replays_revoked_devices_other_accounts_and_bad_input_are_refused,
);
