//! The template channel on a test account: what every channel's tests
//! check, for create, join, rotate and revoke.

use super::*;
use crate::testing::{uids, FakeDevice, TestAccount};

/// Which epochs `device` opens with its current keys.
fn opens(view: &AccountView, device: &FakeDevice) -> Vec<u32> {
    let keys = device.keys().expect("keys");
    epochs(view)
        .expect("epochs")
        .iter()
        .filter(|e| e.key.decrypt(CT_NOTES_KEY, &keys.encrypt).is_ok())
        .map(|e| e.epoch)
        .collect()
}

/// The secret of `epoch`, as the administrators open it.
fn secret(account: &TestAccount, epoch: u32) -> Vec<u8> {
    let k = &epochs(&account.view()).expect("epochs")[epoch as usize];
    account
        .admin()
        .open(&k.key, CT_NOTES_KEY)
        .expect("opens")
        .to_vec()
}

fn created() -> (TestAccount, FakeDevice) {
    let mut account = TestAccount::new(&[&NotesPlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    let out = account.sync(&NotesPlugin, &Event::Created).expect("create");
    let mut want = vec![
        format!("{APP_DEVICE}{}", laptop.device_udf()),
        format!("{APP_KEY}0"),
    ];
    want.sort();
    assert_eq!(uids(&out), want);
    (account, laptop)
}

#[test]
fn create_publishes_once_then_nothing() {
    let (account, laptop) = created();
    let view = account.view();
    NotesPlugin.verify(&view).expect("verifies");
    assert_eq!(opens(&view, &laptop), vec![0]);
    let public = account.published(APP_DEVICE);
    assert_eq!(public.len(), 1);
    // All current: a sync publishes nothing.
    let again = account
        .entries(&NotesPlugin, &Event::Periodic)
        .expect("again");
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_device_joins_and_applies_the_same_secret() {
    let (mut account, _laptop) = created();
    let phone = account.join("phone", &[ROLE]);
    let other = account.join("kiosk", &[]);
    let event = Event::Joined {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&NotesPlugin, &event).expect("join");
    let mut want = vec![
        format!("{APP_DEVICE}{}", phone.device_udf()),
        format!("{APP_KEY}0"),
    ];
    want.sort();
    assert_eq!(uids(&out), want, "re-wrapped, not re-keyed");
    let view = account.view();
    assert_eq!(opens(&view, &phone), vec![0]);
    assert!(opens(&view, &other).is_empty(), "no role, no secret");
    assert_eq!(
        NotesPlugin.apply(&phone, &view).expect("apply"),
        vec!["notes key epoch 0"]
    );
    assert!(NotesPlugin.apply(&phone, &view).expect("again").is_empty());
    assert!(NotesPlugin.apply(&other, &view).expect("none").is_empty());
    assert!(account
        .entries(&NotesPlugin, &event)
        .expect("again")
        .is_empty());
}

#[test]
fn a_rotated_device_keeps_its_epochs_under_its_new_key() {
    let (mut account, _laptop) = created();
    let mut phone = account.join("phone", &[ROLE]);
    account.sync(&NotesPlugin, &Event::Periodic).expect("join");
    let before = secret(&account, 0);
    account.rotate(&mut phone);
    let event = Event::Rotated {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&NotesPlugin, &event).expect("rotate");
    let mut want = vec![
        format!("{APP_DEVICE}{}", phone.device_udf()),
        format!("{APP_KEY}0"),
    ];
    want.sort();
    assert_eq!(uids(&out), want, "its new signature key, the same secret");
    assert_eq!(opens(&account.view(), &phone), vec![0]);
    assert_eq!(secret(&account, 0), before);
    NotesPlugin.verify(&account.view()).expect("verifies");
}

#[test]
fn a_revoked_device_is_marked_and_gets_no_new_epoch() {
    let (mut account, laptop) = created();
    let phone = account.join("phone", &[ROLE]);
    account.sync(&NotesPlugin, &Event::Periodic).expect("join");
    NotesPlugin.apply(&phone, &account.view()).expect("apply");
    account.revoke(&phone);
    let event = Event::Revoked {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&NotesPlugin, &event).expect("revoke");
    let mut want = vec![
        format!("{APP_DEVICE}{}", phone.device_udf()),
        format!("{APP_KEY}1"),
    ];
    want.sort();
    assert_eq!(
        uids(&out),
        want,
        "epoch 0 stays as it is: the phone keeps it"
    );
    let view = account.view();
    let entry: NotesDevice = view
        .app(&format!("{APP_DEVICE}{}", phone.device_udf()))
        .expect("parses")
        .expect("kept");
    assert!(entry.revoked, "servers learn it");
    assert_eq!(opens(&view, &phone), vec![0], "what it had, nothing new");
    assert_eq!(opens(&view, &laptop), vec![0, 1]);
    assert_ne!(secret(&account, 1), secret(&account, 0));
    assert!(account
        .entries(&NotesPlugin, &event)
        .expect("again")
        .is_empty());
    // On the revoked device, the signed proof leads the host to wipe.
    assert_eq!(
        NotesPlugin.wipe(&phone).expect("wipe"),
        vec!["notes key record removed"]
    );
    assert!(phone.records().is_empty());
    assert!(NotesPlugin.wipe(&phone).expect("again").is_empty());
}

#[test]
fn verify_refuses_an_entry_for_another_key() {
    let (mut account, laptop) = created();
    let uid = format!("{APP_DEVICE}{}", laptop.device_udf());
    let forged = NotesDevice {
        name: "laptop".into(),
        signature_key: "MAAA-not-its-key".into(),
        revoked: false,
    };
    account.publish(&[AppEntry::public(uid, &forged)]);
    let e = NotesPlugin.verify(&account.view()).expect_err("refused");
    assert!(e.to_string().contains("another key"), "{e}");
}
