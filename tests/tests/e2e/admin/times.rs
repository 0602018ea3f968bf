//! Times the thief cannot choose: a checkpoint is dated by its signer, so
//! a thief holding the only administrator's keys would date its revocation
//! of the phone before the owner's `recover --since`. The portal binds the
//! date to its clock and to the chain's order; the recovery resolves the
//! point to a serial and shows what it turns back, first as a dry run.

use mesh_account::client::{sign_request, Client};
use mesh_account::store::Store;
use mesh_core::envelope::Signed;
use mesh_core::portal::{self as p, store as st, AccessList, DeviceState, StoreUpdate};
use mesh_tests::Device;

use super::{account, copy_home, online_keys, Account, ADDR};

/// The thief's raw transaction on the stolen laptop (still the account's
/// administrator): the next access list with the phone revoked, under a
/// checkpoint dated `issued`.
fn revoke_phone_dated(acc: &Account, thief: &Device, issued: u64) -> Result<(), String> {
    thief.ok(&["sync"]);
    raw_revoke(&acc.udf, &acc.portal.url, thief, "phone", issued)
}

/// A raw transaction with `thief`'s administrator keys, from where its
/// state stands (no sync): the next access list with `name` revoked,
/// under a checkpoint dated `issued`.
pub(super) fn raw_revoke(
    udf: &str,
    url: &str,
    thief: &Device,
    name: &str,
    issued: u64,
) -> Result<(), String> {
    raw_write(udf, url, thief, issued, |state, keys| {
        let mut list: AccessList = state
            .access
            .as_ref()
            .expect("list")
            .unverified_object("list")
            .expect("list");
        list.serial += 1;
        for d in list.devices.iter_mut().filter(|d| d.name == name) {
            d.state = DeviceState::Revoked;
        }
        StoreUpdate {
            store: st::ACCESS.into(),
            expected: state.history.position(st::ACCESS).index,
            delta: None,
            envelopes: vec![Signed::sign_object(
                p::ct::ACCESS_LIST,
                &list,
                &keys.admin_sign,
            )],
        }
    })
}

/// One raw administrator transaction with `admin`'s keys, from where its
/// state stands (no sync): the update `build` makes, under a checkpoint
/// dated `issued`.
pub(super) fn raw_write(
    udf: &str,
    url: &str,
    admin: &Device,
    issued: u64,
    build: impl FnOnce(&mesh_account::AccountState, &mesh_core::objects::AccountKeys) -> StoreUpdate,
) -> Result<(), String> {
    std::env::set_var("MESH_KEYSTORE", "file");
    let keys = online_keys(admin, udf);
    let store = Store::open(&admin.home, false).expect("store");
    let state = mesh_account::account(&store).expect("state");
    let auth = mesh_account::state::device_keys(&store).expect("device keys");
    let me = store.state().device.clone().expect("device").udf;
    let update = build(&state, &keys);
    let mut cp = state
        .history
        .next(udf, std::slice::from_ref(&update), 0, None);
    cp.issued = issued;
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
    let body = serde_json::to_value(p::TransactRequest {
        updates: vec![update, checkpoint],
    })
    .expect("json");
    let req = sign_request(p::tx::TRANSACT, udf, &me, body, &auth.authenticate);
    Client::new(url)
        .expect("client")
        .post::<_, serde_json::Value>(p::tx::TRANSACT, &req)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn last_serial(d: &Device, url: &str) -> u64 {
    let l = d.json(&["account", "history", ADDR, "--portal", url]);
    l.as_array().and_then(|l| l.last()).expect("history")["serial"]
        .as_u64()
        .expect("serial")
}

#[test]
fn a_thief_cannot_date_its_checkpoint_before_the_owners_point() {
    let acc = account("times", false);
    let url = acc.portal.url.clone();
    let owner = Device::new(&acc.dir.0, "owner");
    let trusted = last_serial(&owner, &url);
    let last_issued = mesh_account::account(&Store::open(&acc.a.home, false).expect("a"))
        .expect("a")
        .history
        .checkpoint
        .expect("a checkpoint")
        .issued;
    let thief = copy_home(&acc.a, &acc.dir.path("thief"));
    let now = mesh_plugins::now();
    for (what, issued, says) in [
        ("a week back", now - 7 * 86_400, "from the portal's clock"),
        (
            "before the checkpoint it follows",
            last_issued - 1,
            "before the checkpoint it follows",
        ),
        ("an hour ahead", now + 3600, "from the portal's clock"),
    ] {
        let e = revoke_phone_dated(&acc, &thief, issued).expect_err(what);
        assert!(e.contains(says), "{what}: {e}");
        assert_eq!(last_serial(&owner, &url), trusted, "{what}: written");
    }
    // Dated now, the same transaction is the thief's to make.
    revoke_phone_dated(&acc, &thief, mesh_plugins::now()).expect("dated now");
    assert_eq!(last_serial(&owner, &url), trusted + 1);

    // The owner sees what `--since` turns back before anything is written.
    let kit: Vec<String> = acc
        .a
        .kit_files()
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let since = format!("@{trusted}");
    let args = |dry: bool| {
        let mut v = vec![
            "account", "recover", ADDR, "--portal", &url, "--name", "spare", "--from", &kit[0],
            "--from", &kit[1], "--since", &since, "--revoke", "laptop",
        ];
        if dry {
            v.push("--dry-run");
        }
        v
    };
    let o = owner.run(&args(true));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("resolves to checkpoint @{trusted}"))
            && err.contains(&format!("@{}", trusted + 1))
            && err.contains("active again (revoked since): phone")
            && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(last_serial(&owner, &url), trusted + 1, "a dry run wrote");
    assert!(owner.fails(&["account", "show"]).contains("hint:"));
    let o = owner.run(&args(false));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("turned back 1 checkpoint"), "{err}");
    acc.c.ok(&["sync"]);
    let list = acc.c.ok(&["device", "list"]);
    let phone = list.lines().find(|l| l.contains("phone")).expect("phone");
    assert!(phone.contains("active"), "{list}");
}
