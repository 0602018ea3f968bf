//! The Audit transaction (issue 25, PROTOCOL.md §16) as a device, an
//! anonymous client and a stolen, flooding device send it: what does not
//! follow the device's store is refused and nothing is stored; a batch
//! sent again is answered as before; the audit logs have a limit of their
//! own, so a device that fills it takes nothing from the account's quota
//! and the administrator's revoke still goes through.

use mesh_account::client::{Client, ClientError};
use mesh_account::store::Store;
use mesh_core::audit::{self, CT_SEALED_BATCH};
use mesh_core::envelope::Encrypted;
use mesh_core::keys::AgreementKey;
use mesh_core::objects::DeviceKeys;
use mesh_core::portal::code;
use mesh_tests::raw::{connect_from, post};
use mesh_tests::{Backend, PortalProc, Scratch};
use serde_json::{json, Value};

use super::account_with_member;

const AUDIT_LIMIT: u64 = 60_000;

struct Sender {
    client: Client,
    account: String,
    device: String,
    keys: DeviceKeys,
}

impl Sender {
    fn send(&self, up: &Value) -> Result<Value, ClientError> {
        self.client.signed(
            audit::TX,
            &self.account,
            &self.device,
            up.clone(),
            &self.keys.authenticate,
        )
    }
}

/// An upload whose sealed batch holds `size` bytes (the portal cannot open it).
fn upload(index: u64, first: u64, count: u64, size: usize, ct: &str) -> Value {
    let to = AgreementKey::from_bytes(&[7; 32]).public_key();
    let sealed = Encrypted::encrypt(ct, &vec![1u8; size], &[to]).expect("seal");
    json!({"Index": index, "First": first, "Count": count, "Sealed": sealed})
}

fn stored(portal: &PortalProc) -> i64 {
    portal.db.row(
        "SELECT COUNT(*) FROM entries WHERE store LIKE 'Audit:%'",
        &[],
    )[0]
    .int()
}

fn account_bytes(portal: &PortalProc) -> i64 {
    portal.db.row("SELECT bytes FROM accounts", &[])[0].int()
}

fn refused(r: Result<Value, ClientError>, what: &str) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{what}: taken ({v})"),
    }
}

fn the_audit_transaction_keeps_each_store_in_order_and_within_its_own_limit(backend: Backend) {
    let dir = Scratch::new("audit-tx");
    let limit = AUDIT_LIMIT.to_string();
    let portal = PortalProc::on_with(backend, &dir.path("portal"), &["--max-audit-bytes", &limit]);
    let (a, b) = account_with_member(&dir.0, &portal);
    std::env::set_var("MESH_KEYSTORE", "file");
    let shown = b.json(&["account", "show"]);
    let b_dev = Sender {
        client: Client::new(&portal.url).expect("client"),
        account: shown["profile_udf"].as_str().expect("udf").into(),
        device: shown["device"].as_str().expect("device").into(),
        keys: mesh_account::state::device_keys(&Store::open(&b.home, false).expect("store"))
            .expect("keys"),
    };
    let bytes = account_bytes(&portal);

    // (what, upload, the refusal's code)
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "index 0",
            upload(0, 0, 1, 10, CT_SEALED_BATCH),
            code::BAD_REQUEST,
        ),
        (
            "no records",
            upload(1, 0, 0, 10, CT_SEALED_BATCH),
            code::BAD_REQUEST,
        ),
        (
            "1,025 records",
            upload(1, 0, 1025, 10, CT_SEALED_BATCH),
            code::BAD_REQUEST,
        ),
        (
            "sealed as something else",
            upload(1, 0, 1, 10, "MeshOther"),
            code::BAD_REQUEST,
        ),
        (
            "an index past the next",
            upload(2, 0, 1, 10, CT_SEALED_BATCH),
            code::CONFLICT,
        ),
    ];
    for (what, up, want) in &cases {
        let e = b_dev.send(up).expect_err(what);
        assert_eq!(e.code(), Some(*want), "{what}: {e}");
        assert_eq!(stored(&portal), 0, "{what}: something was stored");
    }
    // No signature at all, and a body past the bound.
    let anon = upload(1, 0, 1, 10, CT_SEALED_BATCH).to_string();
    let (status, _) = post(
        connect_from("127.0.0.1", &portal.url),
        "/mesh/v1/Audit",
        anon.as_bytes(),
    );
    assert_eq!(status, 400, "an unsigned upload");
    let big = upload(1, 0, 1, audit::MAX_BODY, CT_SEALED_BATCH);
    let e = refused(b_dev.send(&big), "an oversized body");
    assert!(e.contains("413"), "{e}");
    assert_eq!(stored(&portal), 0);

    // The first batch, then the same one again (an answer lost): one entry.
    let first = upload(1, 0, 3, 100, CT_SEALED_BATCH);
    assert_eq!(b_dev.send(&first).expect("first")["Index"], 1);
    assert_eq!(b_dev.send(&first).expect("again")["Index"], 1);
    assert_eq!(stored(&portal), 1);
    let other = upload(1, 0, 3, 101, CT_SEALED_BATCH);
    let e = b_dev.send(&other).expect_err("another batch at index 1");
    assert_eq!(e.code(), Some(code::CONFLICT), "{e}");
    assert_eq!(stored(&portal), 1);

    // A device reads its own audit store (to count what the portal holds)
    // but not another device's: those are the administrators'.
    let read = |store: String| {
        b_dev.client.signed::<Value>(
            mesh_core::portal::tx::DOWNLOAD,
            &b_dev.account,
            &b_dev.device,
            json!({"Select": [{"Store": store, "Index": 0}]}),
            &b_dev.keys.authenticate,
        )
    };
    let own = read(audit::store_of(&b_dev.device)).expect("its own store");
    assert_eq!(
        own["Updates"][0]["Entries"].as_array().map(Vec::len),
        Some(1)
    );
    let a_udf = a.json(&["account", "show"])["device"]
        .as_str()
        .expect("udf")
        .to_string();
    let e = read(audit::store_of(&a_udf)).expect_err("a member read another's audit store");
    assert!(e.to_string().contains("only administrators"), "{e}");

    // A stolen device fills its audit log to the limit: refused past it,
    // the account's own bytes untouched, and the administrator revokes it.
    let mut index = 2;
    let full = loop {
        match b_dev.send(&upload(index, index * 3, 3, 15_000, CT_SEALED_BATCH)) {
            Ok(_) => index += 1,
            Err(e) => break e,
        }
        assert!(index < 20, "the audit limit was never reached");
    };
    assert_eq!(full.code(), Some(code::QUOTA_EXCEEDED), "{full}");
    assert_eq!(stored(&portal), index as i64 - 1);
    assert_eq!(
        account_bytes(&portal),
        bytes,
        "audit batches counted in the account's bytes"
    );
    a.ok(&["device", "revoke", "phone"]);
    let e = refused(
        b_dev.send(&upload(index, index * 3, 1, 10, CT_SEALED_BATCH)),
        "revoked",
    );
    assert!(e.contains(code::DEVICE_REVOKED), "{e}");
}

mesh_tests::on_both_backends!(
    the_audit_transaction_keeps_each_store_in_order_and_within_its_own_limit
);
