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
        Default::default(),
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
        superseded: Vec::new(),
    };
    (view, keys)
}

/// What is published: the epochs and the per-device wraps.
#[derive(Clone, Default)]
struct Published {
    epochs: BTreeMap<u32, FileKeyEpoch>,
    wraps: BTreeMap<(u32, String), FileKeyWrap>,
}

impl Published {
    fn epochs(&self) -> Vec<FileKeyEpoch> {
        self.epochs.values().cloned().collect()
    }
    fn wraps(&self) -> Vec<FileKeyWrap> {
        self.wraps.values().cloned().collect()
    }
    fn entries(&self, t: &Targets, admin: &AccountKeys) -> Vec<AppEntry> {
        file_entries(&self.epochs(), &self.wraps(), t, admin).expect("entries")
    }
}

/// The state after publishing `out` over `now`.
fn publish(now: &Published, out: Vec<AppEntry>) -> Published {
    let mut p = now.clone();
    for a in out {
        assert!(!a.public, "{}", a.uid);
        if a.uid.starts_with(APP_FILES_WRAP) {
            let w: FileKeyWrap = serde_json::from_value(a.data).expect("wrap");
            assert_eq!(a.uid, format!("{APP_FILES_WRAP}{}:{}", w.epoch, w.device));
            p.wraps.insert((w.epoch, w.device.clone()), w);
        } else {
            let e: FileKeyEpoch = serde_json::from_value(a.data).expect("entry");
            assert_eq!(a.uid, format!("{APP_FILES_KEY}{}", e.epoch));
            p.epochs.insert(e.epoch, e);
        }
    }
    p
}

/// Which epochs `k` opens (through an epoch's entry or a wrap), checking
/// each secret against the published key.
fn opens(p: &Published, k: &AgreementKey) -> Vec<u32> {
    let mut out: Vec<u32> = p
        .epochs
        .values()
        .map(|e| (e.epoch, &e.key))
        .chain(p.wraps.values().map(|w| (w.epoch, &w.key)))
        .filter_map(|(epoch, key)| {
            let s = key.decrypt(CT_FILE_KEY, k).ok()?;
            let secret: [u8; 32] = s[..].try_into().expect("32 bytes");
            let public = AgreementKey::from_bytes(&secret).public_key();
            assert_eq!(
                public,
                p.epochs[&epoch].public_key().expect("key"),
                "epoch {epoch}"
            );
            Some(epoch)
        })
        .collect();
    out.sort();
    out.dedup();
    out
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
    let held = &now[0].holders;
    assert_eq!(
        held.len(),
        2,
        "the administrators and escrow only: {held:?}"
    );
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
    let e = publish(
        &Published::default(),
        Published::default().entries(&t, &admin),
    );
    assert_eq!(opens(&e, &tablet), vec![0]);
    assert_eq!(opens(&e, &admin.admin_encrypt), vec![0]);
    assert!(e.entries(&t, &admin).is_empty(), "current: nothing");

    // The tablet is revoked: a new epoch, for the others only; epoch 0 stays.
    t.remove("tablet");
    let e = publish(&e, e.entries(&t, &admin));
    assert_eq!(opens(&e, &tablet), vec![0]);
    assert_eq!(opens(&e, &phone), vec![0, 1]);
    assert_eq!(opens(&e, &admin.admin_encrypt), vec![0, 1]);
    assert!(e.entries(&t, &admin).is_empty(), "current: nothing");

    // The phone's keys rotate: both epochs re-wrapped to its new key, same secrets.
    let phone2 = AgreementKey::generate();
    t.insert("phone".into(), phone2.public_key());
    let e2 = publish(&e, e.entries(&t, &admin));
    assert_eq!(opens(&e2, &phone2), vec![0, 1]);
    assert_eq!(
        e2.epochs[&1].public, e.epochs[&1].public,
        "re-wrapped, not re-keyed"
    );

    // A laptop joins: the current epoch only, in one entry for it alone.
    t.insert("laptop".into(), laptop.public_key());
    let out = e2.entries(&t, &admin);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].uid, format!("{APP_FILES_WRAP}1:laptop"));
    let e3 = publish(&e2, out);
    assert_eq!(opens(&e3, &laptop), vec![1]);
}

/// A join costs one small entry whatever the account's size: no entry
/// wrapped to every holder again (that grew as N²).
#[test]
fn a_join_writes_one_small_entry_at_any_size() {
    let (view, admin) = account();
    let mut t = targets(&view, &admin);
    for i in 0..300 {
        t.insert(format!("d{i}"), AgreementKey::generate().public_key());
    }
    let e = publish(
        &Published::default(),
        Published::default().entries(&t, &admin),
    );
    assert_eq!(
        e.epochs[&0].holders.len(),
        302,
        "one entry for every holder"
    );
    t.insert("new".into(), AgreementKey::generate().public_key());
    let out = e.entries(&t, &admin);
    assert_eq!(out.len(), 1);
    let bytes = serde_json::to_vec(&out[0].data).expect("json").len();
    assert!(bytes < 1024, "{bytes} bytes for a join");
    // A revoke: one new epoch for the 300 others, in one entry.
    let e = publish(&e, out);
    t.remove("d7");
    let out = e.entries(&t, &admin);
    assert_eq!(out.len(), 1, "{}", out.len());
    let e = publish(&e, out);
    assert_eq!(e.epochs[&1].holders.len(), 302);
    assert!(e.entries(&t, &admin).is_empty(), "current: nothing");
}
