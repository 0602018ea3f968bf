//! Access lists uploaded as changes (issue 24, PROTOCOL.md §10.3): the
//! portal rebuilds the whole list from the one it holds and checks it as an
//! entry sent whole; a change that does not rebuild, or rebuilds a list
//! whose signature fails, is refused and nothing is stored. An
//! administrator whose portal predates changes sends the list whole.

use mesh_account::client::{sign_request, Client};
use mesh_account::store::Store;
use mesh_core::changes::{AccessDelta, Edit};
use mesh_core::envelope::Signed;
use mesh_core::objects::AccountKeys;
use mesh_core::portal::{self as p, store as st, AccessList, DeviceState, StoreUpdate};
use mesh_tests::liar::LyingPortal;
use mesh_tests::{Backend, Device, PortalDb, PortalProc, Scratch};

use super::ADDR;

/// The administrator's online keys (the file keystore of the tests).
pub(super) fn online_keys(d: &Device, profile_udf: &str) -> AccountKeys {
    std::env::set_var("MESH_KEYSTORE", "file");
    let seeds = Store::open(&d.home, false)
        .expect("store")
        .secrets()
        .expect("secrets")
        .online_seeds
        .expect("an administrator's seeds");
    let parsed = seeds
        .seeds
        .iter()
        .map(|(e, s)| (*e, mesh_core::derive::Seed::from_udf(s).expect("seed")))
        .collect();
    AccountKeys::from_seeds(profile_udf, parsed).expect("keys")
}

/// What an administrator's revoke of `phone` sends: the next list whole
/// (signed with `key`), the access update, and the checkpoint after it.
struct Revoke {
    base: Signed,
    next: Signed,
    access: StoreUpdate,
    checkpoint: StoreUpdate,
}

fn revoke_of(a: &Device, udf: &str) -> Revoke {
    let state = mesh_account::account(&Store::open(&a.home, false).expect("a")).expect("a");
    let keys = online_keys(a, udf);
    let base = state.access.clone().expect("a list");
    let mut list: AccessList = base.unverified_object("list").expect("list");
    list.serial += 1;
    for d in list.devices.iter_mut().filter(|d| d.name == "phone") {
        d.state = DeviceState::Revoked;
    }
    let next = Signed::sign_object(p::ct::ACCESS_LIST, &list, &keys.admin_sign);
    let access = StoreUpdate {
        store: st::ACCESS.into(),
        expected: state.history.position(st::ACCESS).index,
        delta: None,
        envelopes: vec![next.clone()],
    };
    let cp = state.history.next(
        udf,
        std::slice::from_ref(&access),
        mesh_plugins::now(),
        None,
    );
    let checkpoint = StoreUpdate {
        store: st::CHECKPOINT.into(),
        expected: state.history.serial(),
        delta: None,
        envelopes: vec![Signed::sign_object(
            p::ct::CHECKPOINT,
            &cp,
            &keys.admin_sign,
        )],
    };
    Revoke {
        base,
        next,
        access,
        checkpoint,
    }
}

/// Post a Transact of `updates` as device `a`; the status and the answer.
pub(super) fn transact(
    portal: &str,
    a: &Device,
    udf: &str,
    updates: Vec<StoreUpdate>,
) -> (u16, String) {
    let keys =
        mesh_account::state::device_keys(&Store::open(&a.home, false).expect("a")).expect("keys");
    let dev = a.json(&["account", "show"])["device"]
        .as_str()
        .expect("udf")
        .to_string();
    let body = serde_json::to_value(p::TransactRequest { updates }).expect("json");
    let req = sign_request(p::tx::TRANSACT, udf, &dev, body, &keys.authenticate);
    match Client::new(portal)
        .expect("client")
        .post::<_, serde_json::Value>(p::tx::TRANSACT, &req)
    {
        Ok(v) => (200, v.to_string()),
        Err(e) => (
            match e.code() {
                Some(p::code::BAD_REQUEST) => 400,
                Some(p::code::NOT_AUTHORIZED) => 403,
                Some(p::code::CONFLICT) => 409,
                _ => 0,
            },
            e.to_string(),
        ),
    }
}

fn edit(keep: u64, skip: u64, insert: &[u8]) -> Edit {
    Edit {
        keep,
        skip,
        insert: insert.to_vec(),
    }
}

fn rows(db: &PortalDb) -> i64 {
    db.row("SELECT COUNT(*) FROM entries", &[])[0].int()
}

fn access_lists_upload_as_changes(backend: Backend) {
    let dir = Scratch::new("upload-changes");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let liar = LyingPortal::start(&portal.url);
    let a = Device::create_account(&dir.0, ADDR, &liar.url);
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("profile")
        .to_string();
    Device::new(&dir.0, "b").join(&a, ADDR, &liar.url, "phone");
    let r = revoke_of(&a, &udf);
    let good = mesh_core::changes::between(&r.base, &r.next, None).expect("a change");
    let len = r.base.payload.len() as u64;
    // The change with its first insert's bytes altered: it rebuilds a list
    // the signature does not cover.
    let mut forged = good.clone();
    if let Some(e) = forged.edits.iter_mut().find(|e| !e.insert.is_empty()) {
        e.insert[0] ^= 1;
    }
    let with = |edits: Vec<Edit>| AccessDelta {
        edits,
        signatures: r.next.signatures.clone(),
    };
    let as_change = |d: AccessDelta, expected: u64, store: &str| {
        let mut u = r.access.clone();
        u.envelopes.clear();
        u.delta = Some(d);
        u.expected = expected;
        u.store = store.into();
        vec![u, r.checkpoint.clone()]
    };
    let at = r.access.expected;
    let cases: [(&str, Vec<StoreUpdate>, u16, &str); 6] = [
        (
            "overruns the list",
            as_change(with(vec![edit(len + 1, 0, b"")]), at, st::ACCESS),
            400,
            "reaches past",
        ),
        (
            "underruns the list",
            as_change(with(vec![edit(len - 5, 0, b"")]), at, st::ACCESS),
            400,
            "unaccounted",
        ),
        (
            "against a stale index",
            as_change(good.clone(), at - 1, st::ACCESS),
            409,
            "against entry",
        ),
        (
            "rebuilds a list its signature does not cover",
            as_change(forged, at, st::ACCESS),
            403,
            "signature",
        ),
        (
            "too many edits",
            as_change(
                with(vec![Edit::default(); mesh_core::changes::MAX_EDITS + 1]),
                at,
                st::ACCESS,
            ),
            400,
            "at most",
        ),
        (
            "changes the Device store",
            as_change(good.clone(), 0, st::DEVICE),
            400,
            "only access lists",
        ),
    ];
    let before = rows(&portal.db);
    for (what, updates, status, says) in cases {
        let (got, answer) = transact(&portal.url, &a, &udf, updates);
        assert_eq!(got, status, "{what}: {answer}");
        assert!(answer.contains(says), "{what}: {answer}");
        assert_eq!(rows(&portal.db), before, "{what}: something was stored");
    }
    // The right change is stored as the whole list it makes.
    let (got, answer) = transact(&portal.url, &a, &udf, as_change(good, at, st::ACCESS));
    assert_eq!(got, 200, "{answer}");
    let b = Device::new(&dir.0, "b");
    assert!(!b.run(&["sync"]).status.success(), "the phone is revoked");
    a.ok(&["sync"]);
    // A portal from before changes refuses the member: the administrator
    // sends the list whole, and the device is in.
    liar.before("Delta");
    Device::new(&dir.0, "c").join(&a, ADDR, &portal.url, "tablet");
    assert!(liar.refused() >= 1, "no change was sent");
    let listed = a.ok(&["device", "list"]);
    assert!(listed.contains("tablet"), "{listed}");
}

mesh_tests::on_both_backends!(access_lists_upload_as_changes);
