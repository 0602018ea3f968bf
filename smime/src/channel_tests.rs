//! `entries()` of the S/MIME channel on a test account (no NSS, no
//! openssl): the CA, a signing certificate per `smime` device, the shared
//! encryption key's epochs and the CRL.

use der::Decode;
use mesh_core::objects::Role;
use mesh_plugins::testing::{uids, FakeDevice, TestAccount};
use mesh_plugins::DeviceHost;

use super::*;
use crate::status::APP_STATUS;

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn cert_uid(d: &FakeDevice) -> String {
    format!("smime-cert:{}", d.device_udf())
}

/// The serials the published CRL revokes, and its number.
fn crl(view: &AccountView) -> (u64, Vec<u64>) {
    let c: SmimeCrl = view.app(APP_CRL).expect("parses").expect("published");
    let der = crate::x509::pem_to_der(&c.crl).expect("pem");
    let list = x509_cert::crl::CertificateList::from_der(&der).expect("a CRL");
    let serial = |b: &[u8]| b.iter().fold(0u64, |n, x| (n << 8) | u64::from(*x));
    let revoked = list
        .tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .iter()
        .map(|r| serial(r.serial_number.as_bytes()))
        .collect();
    (c.number, revoked)
}

/// Which encryption epochs `d` opens with its current keys.
fn opens(view: &AccountView, d: &FakeDevice) -> Vec<u32> {
    let keys = d.keys().expect("keys");
    encryption_epochs(view)
        .expect("epochs")
        .iter()
        .filter(|e| e.key.decrypt(CT_SMIME_KEY, &keys.encrypt).is_ok())
        .map(|e| e.epoch)
        .collect()
}

fn signing_cert(view: &AccountView, d: &FakeDevice) -> SmimeCert {
    view.app(&cert_uid(d)).expect("parses").expect("published")
}

fn created() -> (TestAccount, FakeDevice) {
    let mut account = TestAccount::new(&[&SmimePlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    let out = account.sync(&SmimePlugin, &Event::Created).expect("create");
    let laptop_cert = cert_uid(&laptop);
    let want = sorted(&[APP_SMIME, APP_CRL, APP_STATUS, &laptop_cert, "smime-enc:0"]);
    assert_eq!(uids(&out), want);
    (account, laptop)
}

#[test]
fn a_new_account_gets_its_ca_certificates_and_crl_once() {
    let (account, laptop) = created();
    let view = account.view();
    let ca: SmimeCa = view.app(APP_SMIME).expect("parses").expect("one");
    assert!(ca.ca_certificate.contains("BEGIN CERTIFICATE"));
    let c = signing_cert(&view, &laptop);
    let key = view.devices[laptop.device_udf()]
        .profile
        .slots
        .bytes(SLOT.name)
        .expect("typed");
    assert_eq!(Some(mesh_core::b64::decode(&c.key).expect("b64")), key);
    // The certified key is the one the device derives for its slot.
    let own = laptop.base_keys().expect("keys").p256(&SLOT).expect("slot");
    assert_eq!(
        key.as_deref(),
        Some(own.verifying_key().to_encoded_point(false).as_bytes())
    );
    assert_eq!(opens(&view, &laptop), vec![0]);
    assert_eq!(crl(&view), (view.serial(), vec![]));
    let again = account
        .entries(&SmimePlugin, &Event::Periodic)
        .expect("again");
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_joining_device_gets_a_certificate_and_the_same_key() {
    let (mut account, laptop) = created();
    let before = signing_cert(&account.view(), &laptop).serial;
    let phone = account.join("phone", &[ROLE]);
    let kiosk = account.join("kiosk", &[]);
    let event = Event::Joined {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&SmimePlugin, &event).expect("join");
    // The CRL follows the access list's serial.
    let phone_cert = cert_uid(&phone);
    assert_eq!(
        uids(&out),
        sorted(&[APP_CRL, APP_STATUS, &phone_cert, "smime-enc:0"])
    );
    let view = account.view();
    assert_eq!(signing_cert(&view, &laptop).serial, before);
    assert_eq!(opens(&view, &phone), vec![0]);
    assert!(opens(&view, &kiosk).is_empty(), "no smime role");
    assert!(view
        .app::<SmimeCert>(&cert_uid(&kiosk))
        .expect("parses")
        .is_none());
    assert!(account
        .entries(&SmimePlugin, &event)
        .expect("again")
        .is_empty());
}

#[test]
fn a_revoked_device_is_in_the_crl_and_the_key_rotates() {
    let (mut account, laptop) = created();
    let phone = account.join("phone", &[ROLE]);
    account.sync(&SmimePlugin, &Event::Periodic).expect("join");
    let view = account.view();
    let phone_serial = signing_cert(&view, &phone).serial;
    let old_enc = encryption_epochs(&view).expect("e")[0].serial;
    account.revoke(&phone);
    let event = Event::Revoked {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&SmimePlugin, &event).expect("revoke");
    assert_eq!(uids(&out), sorted(&[APP_CRL, APP_STATUS, "smime-enc:1"]));
    let view = account.view();
    let (number, mut revoked) = crl(&view);
    revoked.sort();
    let mut want = vec![phone_serial, old_enc];
    want.sort();
    assert_eq!((number, revoked), (view.serial(), want));
    assert_eq!(opens(&view, &phone), vec![0], "nothing new for it");
    assert_eq!(opens(&view, &laptop), vec![0, 1]);
    assert!(account
        .entries(&SmimePlugin, &event)
        .expect("again")
        .is_empty());
}

#[test]
fn a_rotated_device_keeps_its_certificate_and_gets_the_key_again() {
    let (mut account, _laptop) = created();
    let mut phone = account.join("phone", &[ROLE]);
    account.sync(&SmimePlugin, &Event::Periodic).expect("join");
    let before = signing_cert(&account.view(), &phone).serial;
    account.rotate(&mut phone);
    let event = Event::Rotated {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&SmimePlugin, &event).expect("rotate");
    // Its signing key is its own (not rotated): the same certificate.
    assert_eq!(uids(&out), sorted(&[APP_CRL, APP_STATUS, "smime-enc:0"]));
    let view = account.view();
    assert_eq!(signing_cert(&view, &phone).serial, before);
    assert_eq!(opens(&view, &phone), vec![0]);
    assert_eq!(crl(&view).1, Vec::<u64>::new(), "nobody revoked");
    assert!(account
        .entries(&SmimePlugin, &event)
        .expect("again")
        .is_empty());
}

#[test]
fn the_channel_declares_its_slot() {
    assert_eq!(SmimePlugin.slots(), [SLOT]);
}

/// A device made by a client without this channel has no signing key in
/// its profile: it gets no signing certificate (the others still do).
#[test]
fn a_device_without_the_smime_slot_gets_no_signing_certificate() {
    let mut account = TestAccount::new(&[]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    let view = account.view();
    assert_eq!(
        view.devices[laptop.device_udf()]
            .profile
            .slots
            .bytes(SLOT.name)
            .expect("typed"),
        None
    );
    let out = SmimePlugin
        .entries(&Event::Created, &view, account.admin())
        .expect("entries");
    assert!(!uids(&out).contains(&cert_uid(&laptop)), "{:?}", uids(&out));
    assert!(uids(&out).contains(&APP_SMIME.to_string()));
}

/// The CA the channel derives by its own name is the one core derived
/// before under "SmimeCa", in every epoch: existing accounts keep it.
#[test]
fn the_ca_key_is_the_one_existing_accounts_have() {
    use mesh_core::derive::key_name;
    use mesh_core::objects::RootKeys;
    let e0 = RootKeys::generate().first_epoch();
    for k in [e0.clone_keys(), e0.next_epoch()] {
        let old = mesh_core::keys::p256_signing_key(
            k.seed(),
            &key_name("Online", "Account", "SmimeCa", k.epoch()),
        );
        assert_eq!(k.online_p256(CA_KEY).verifying_key(), old.verifying_key());
    }
}
