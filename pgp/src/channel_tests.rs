//! `entries()` of the OpenPGP channel on a test account (no gpg): signing
//! subkeys per `pgp` device, the shared encryption subkey's epochs, and the
//! certificate, republished only when what it says changed.

use mesh_core::objects::Role;
use mesh_plugins::testing::{uids, FakeDevice, TestAccount};
use mesh_plugins::DeviceHost;
use sequoia_openpgp::policy::StandardPolicy;

use super::*;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn key_uid(d: &FakeDevice) -> String {
    format!("pgp-key:{}", d.device_udf())
}

/// The published certificate, checked as devices check it; with the
/// number of (live, revoked) signing and encryption subkeys.
fn subkeys(view: &AccountView) -> ((usize, usize), (usize, usize)) {
    let c = crate::gnupg::check_cert(view, cert(view).expect("published").as_bytes())
        .expect("the account's, valid");
    let policy = StandardPolicy::new();
    let vc = c.with_policy(&policy, None).expect("valid now");
    let count = |sign: bool, revoked: bool| {
        vc.keys()
            .subkeys()
            .revoked(revoked)
            .filter(|k| k.for_signing() == sign)
            .count()
    };
    (
        (count(true, false), count(true, true)),
        (count(false, false), count(false, true)),
    )
}

/// Which encryption epochs `d` opens with its current keys.
fn opens(view: &AccountView, d: &FakeDevice) -> Vec<u32> {
    let keys = d.keys().expect("keys");
    encryption_subkeys(view)
        .expect("epochs")
        .iter()
        .filter(|e| e.key.decrypt(CT_PGP_KEY, &keys.encrypt).is_ok())
        .map(|e| e.epoch)
        .collect()
}

fn created() -> (TestAccount, FakeDevice) {
    let mut account = TestAccount::new(&[&PgpPlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    let out = account.sync(&PgpPlugin, &Event::Created).expect("create");
    let want = sorted(vec![key_uid(&laptop), "pgp-enc:0".into(), "pgp".into()]);
    assert_eq!(uids(&out), want);
    (account, laptop)
}

#[test]
fn a_new_account_gets_its_certificate_once() {
    let (account, laptop) = created();
    let view = account.view();
    assert_eq!(subkeys(&view), ((1, 0), (1, 0)));
    assert_eq!(opens(&view, &laptop), vec![0]);
    let again = account
        .entries(&PgpPlugin, &Event::Periodic)
        .expect("again");
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_joining_device_gets_a_subkey_and_the_same_encryption_key() {
    let (mut account, _laptop) = created();
    let phone = account.join("phone", &[ROLE]);
    let kiosk = account.join("kiosk", &[Role::named("ssh")]);
    let before = account.admin().open(
        &encryption_subkeys(&account.view()).expect("e")[0].key,
        CT_PGP_KEY,
    );
    let event = Event::Joined {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&PgpPlugin, &event).expect("join");
    let want = sorted(vec![key_uid(&phone), "pgp-enc:0".into(), "pgp".into()]);
    assert_eq!(uids(&out), want);
    let view = account.view();
    assert_eq!(subkeys(&view), ((2, 0), (1, 0)));
    assert_eq!(opens(&view, &phone), vec![0]);
    assert!(opens(&view, &kiosk).is_empty(), "no pgp role");
    let after = account
        .admin()
        .open(&encryption_subkeys(&view).expect("e")[0].key, CT_PGP_KEY);
    assert_eq!(
        before.expect("opens").to_vec(),
        after.expect("opens").to_vec()
    );
    assert!(account
        .entries(&PgpPlugin, &event)
        .expect("again")
        .is_empty());
}

#[test]
fn a_revoked_device_loses_its_subkey_and_the_encryption_key_rotates() {
    let (mut account, laptop) = created();
    let phone = account.join("phone", &[ROLE]);
    account.sync(&PgpPlugin, &Event::Periodic).expect("join");
    account.revoke(&phone);
    let event = Event::Revoked {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&PgpPlugin, &event).expect("revoke");
    assert_eq!(uids(&out), sorted(vec!["pgp-enc:1".into(), "pgp".into()]));
    let view = account.view();
    // Its signing subkey revoked; epoch 0's encryption subkey superseded.
    assert_eq!(subkeys(&view), ((1, 1), (1, 1)));
    assert_eq!(opens(&view, &phone), vec![0], "nothing new for it");
    assert_eq!(opens(&view, &laptop), vec![0, 1]);
    let published: PgpCert = view.app("pgp").expect("parses").expect("one");
    assert!(published.revoked.contains_key(phone.device_udf()));
    assert!(account
        .entries(&PgpPlugin, &event)
        .expect("again")
        .is_empty());
}

#[test]
fn a_rotated_device_gets_its_secrets_again_under_its_new_key() {
    let (mut account, _laptop) = created();
    let mut phone = account.join("phone", &[ROLE]);
    account.sync(&PgpPlugin, &Event::Periodic).expect("join");
    let cert_before = cert(&account.view()).expect("cert");
    let created_before = account
        .view()
        .app::<PgpSubkey>(&key_uid(&phone))
        .expect("parses")
        .expect("one")
        .created;
    account.rotate(&mut phone);
    let event = Event::Rotated {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&PgpPlugin, &event).expect("rotate");
    // Re-wrapped, not re-keyed: the certificate says the same.
    assert_eq!(
        uids(&out),
        sorted(vec![key_uid(&phone), "pgp-enc:0".into()])
    );
    let view = account.view();
    assert_eq!(cert(&view).expect("cert"), cert_before);
    let sub: PgpSubkey = view.app(&key_uid(&phone)).expect("parses").expect("one");
    assert_eq!(sub.created, created_before);
    let keys = phone.keys().expect("keys");
    assert!(sub.key.decrypt(CT_PGP_KEY, &keys.encrypt).is_ok());
    assert_eq!(opens(&view, &phone), vec![0]);
    assert!(account
        .entries(&PgpPlugin, &event)
        .expect("again")
        .is_empty());
}

/// A profile as the code before claims wrote it (`OpenpgpFingerprint` a
/// field of its own): the fingerprint read by its claim is the one it
/// carries, what the channel claims is the same primary (existing accounts
/// keep their certificate), and an epoch record that names none keeps it.
#[test]
fn an_old_form_profile_keeps_its_primary() {
    use mesh_core::envelope::Signed;
    use mesh_core::objects::{ct, ProfileAccount, RootKeys};
    let root = RootKeys::generate();
    let e0 = root.first_epoch();
    let env = root.profile("alice@example.com", "x", None, &e0, Claims::new(), None);
    let mut old = serde_json::to_value(env.unverified_object::<ProfileAccount>("p").expect("p"))
        .expect("json");
    let want = fingerprint(e0.seed()).expect("fingerprint");
    old["OpenpgpFingerprint"] = serde_json::json!(want);
    let env = Signed::sign_object(ct::PROFILE_ACCOUNT, &old, &root.profile);
    let profile = ProfileAccount::verify(&env, &root.profile_udf()).expect("an old profile");
    assert_eq!(profile.claims.text(FINGERPRINT_CLAIM), Some(want.as_str()));
    let mut claims = Claims::new();
    PgpPlugin.claims(&e0, &mut claims).expect("claims");
    assert_eq!(claims.text(FINGERPRINT_CLAIM), Some(want.as_str()));
    let e1 = e0.next_epoch();
    let record = e1
        .epoch_entry(Claims::new(), &[root.escrow.public_key()])
        .expect("epoch");
    let now = profile.with_epochs([&record]);
    assert_eq!(now.claims.text(FINGERPRINT_CLAIM), Some(want.as_str()));
}
