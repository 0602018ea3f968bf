//! `entries()` of the files channel without a portal: a view built from a
//! fresh profile, and the epoch policy over named holders.

use std::collections::BTreeMap;

use mesh_core::authority::RootKeys;
use mesh_core::objects::ProfileAccount;

use super::*;

fn account() -> (AccountView, AccountKeys) {
    let root = RootKeys::generate();
    let keys = AccountKeys::generate(&root.profile_udf());
    let env = root.profile(
        "alice@example.com",
        "https://portal",
        None,
        &keys,
        None,
        None,
    );
    let profile = ProfileAccount::verify_self_signed(&env).expect("profile");
    let view = AccountView {
        address: "alice@example.com".into(),
        profile_udf: profile.udf(),
        profile,
        access: None,
        devices: BTreeMap::new(),
        applications: BTreeMap::new(),
        superseded_ssh: Vec::new(),
    };
    (view, keys)
}

/// The epochs after publishing `out` over `now`.
fn publish(now: &[FileKeyEpoch], out: Vec<AppEntry>) -> Vec<FileKeyEpoch> {
    let mut by: BTreeMap<u32, FileKeyEpoch> = now.iter().map(|e| (e.epoch, e.clone())).collect();
    for a in out {
        assert!(a.uid.starts_with(APP_FILES_KEY) && !a.public, "{}", a.uid);
        let e: FileKeyEpoch = serde_json::from_value(a.data).expect("entry");
        assert_eq!(a.uid, format!("{APP_FILES_KEY}{}", e.epoch));
        by.insert(e.epoch, e);
    }
    by.into_values().collect()
}

/// Which epochs `k` opens, checking each secret against the published key.
fn opens(epochs: &[FileKeyEpoch], k: &AgreementKey) -> Vec<u32> {
    epochs
        .iter()
        .filter_map(|e| {
            let s = e.key.decrypt(CT_FILE_KEY, k).ok()?;
            let secret: [u8; 32] = s[..].try_into().expect("32 bytes");
            let public = AgreementKey::from_bytes(&secret).public_key();
            assert_eq!(public, e.public_key().expect("key"), "epoch {}", e.epoch);
            Some(e.epoch)
        })
        .collect()
}

#[test]
fn a_new_account_gets_epoch_0_once_for_the_administrators_and_escrow() {
    let (mut view, admin) = account();
    let out = FilesPlugin
        .entries(&Event::Created, &view, &admin)
        .expect("entries");
    assert_eq!(out.len(), 1);
    for e in &out {
        view.put_app(e.uid.clone(), e.data.clone());
    }
    let now = epochs(&view).expect("epochs");
    assert_eq!(opens(&now, &admin.admin_encrypt), vec![0]);
    let held = &now[0].holders;
    assert!(held.contains_key(shared::ADMIN) && held.contains_key(shared::ESCROW));
    // Nothing changed: a sync publishes nothing.
    let again = FilesPlugin
        .entries(&Event::Periodic, &view, &admin)
        .expect("entries");
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn every_device_holds_the_key_a_revoked_one_keeps_only_old_epochs() {
    let (view, admin) = account();
    let (phone, tablet, laptop) = (
        AgreementKey::generate(),
        AgreementKey::generate(),
        AgreementKey::generate(),
    );
    let mut t = targets(&view, &admin);
    t.insert("phone".into(), phone.public_key());
    t.insert("tablet".into(), tablet.public_key());
    let e = publish(&[], file_entries(&[], &t, &admin).expect("create"));
    assert_eq!(opens(&e, &tablet), vec![0]);
    assert!(file_entries(&e, &t, &admin).expect("keep").is_empty());

    // The tablet is revoked: a new epoch, for the others only; epoch 0 stays.
    t.remove("tablet");
    let out = file_entries(&e, &t, &admin).expect("revoke");
    assert_eq!(out.len(), 1, "only the new epoch");
    let e = publish(&e, out);
    assert_eq!(opens(&e, &tablet), vec![0]);
    assert_eq!(opens(&e, &phone), vec![0, 1]);
    assert_eq!(opens(&e, &admin.admin_encrypt), vec![0, 1]);

    // The phone's keys rotate: both epochs re-wrapped to its new key, same secrets.
    let phone2 = AgreementKey::generate();
    t.insert("phone".into(), phone2.public_key());
    let e2 = publish(&e, file_entries(&e, &t, &admin).expect("rotate"));
    assert_eq!(opens(&e2, &phone2), vec![0, 1]);
    assert_eq!(e2[1].public, e[1].public, "re-wrapped, not re-keyed");

    // A laptop joins: the current epoch only.
    t.insert("laptop".into(), laptop.public_key());
    let e3 = publish(&e2, file_entries(&e2, &t, &admin).expect("join"));
    assert_eq!(opens(&e3, &laptop), vec![1]);
}
