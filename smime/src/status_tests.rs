//! The `smime-status` entry on a test account: what the portal serves,
//! produced with every change and re-signed before it runs out; read by
//! `openssl ocsp` and `openssl x509` when they are installed.

use mesh_core::objects::Role;
use mesh_plugins::testing::{uids, FakeDevice, TestAccount};
use mesh_plugins::{DeviceHost, Event};

use super::*;
use crate::entries::{SmimeCa, SmimeEncryption, APP_SMIME};
use crate::ocsp::tests::{have_openssl, openssl_says};
use crate::SmimePlugin;

fn created() -> (TestAccount, FakeDevice, Vec<AppEntry>) {
    let mut account = TestAccount::new(&[&SmimePlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    let out = account.sync(&SmimePlugin, &Event::Created).expect("create");
    (account, laptop, out)
}

fn serve_of(out: &[AppEntry]) -> Serve {
    let e = out
        .iter()
        .find(|e| e.uid == APP_STATUS)
        .unwrap_or_else(|| panic!("no {APP_STATUS} in {:?}", uids(out)));
    assert!(e.public, "a Published entry");
    serde_json::from_value::<crate::status::StatusData>(e.data.clone())
        .expect("the plan's names")
        .serve
}

fn signing_pem(view: &AccountView, d: &FakeDevice) -> String {
    let c: SmimeCert = view
        .app(&format!("smime-cert:{}", d.device_udf()))
        .expect("parses")
        .expect("published");
    c.certificate
}

fn ca_pem(view: &AccountView) -> String {
    let ca: SmimeCa = view.app(APP_SMIME).expect("parses").expect("published");
    ca.ca_certificate
}

/// The served answer for a certificate (PEM), by its serial.
fn answer_for(serve: &Serve, pem: &str) -> Vec<u8> {
    use der::Decode;
    let der = crate::x509::pem_to_der(pem).expect("der");
    let c = x509_cert::Certificate::from_der(&der).expect("cert");
    let serial = crate::ocsp::serial_hex(c.tbs_certificate.serial_number.as_bytes());
    let a = serve
        .ocsp
        .iter()
        .find(|a| a.serial == serial)
        .unwrap_or_else(|| panic!("no answer for serial {serial}"));
    data_encoding::BASE64
        .decode(a.response.as_bytes())
        .expect("base64")
}

#[test]
fn a_new_account_serves_good_answers_and_the_crl() {
    let (account, laptop, out) = created();
    let serve = serve_of(&out);
    let view = account.view();
    assert_eq!(serve.files.len(), 1);
    assert_eq!(serve.files[0].name, "smime.crl");
    assert_eq!(serve.files[0].content_type, "application/pkix-crl");
    // The laptop's signing certificate and the encryption certificate.
    assert_eq!(serve.ocsp.len(), 2);
    let t = now();
    for a in &serve.ocsp {
        assert!(a.next_update >= t + DEFAULT_OCSP_VALIDITY - 5);
        assert!(a.next_update <= t + DEFAULT_OCSP_VALIDITY + 5);
    }
    if !have_openssl() {
        return;
    }
    let (ca, cert) = (ca_pem(&view), signing_pem(&view, &laptop));
    let said = openssl_says(&ca, &cert, &answer_for(&serve, &cert), "st-good");
    assert!(said.contains("Response verify OK"), "{said}");
    assert!(said.contains("cert.pem: good"), "{said}");
    let enc: SmimeEncryption = view.app("smime-enc:0").expect("p").expect("e");
    let said = openssl_says(
        &ca,
        &enc.certificate,
        &answer_for(&serve, &enc.certificate),
        "st-enc",
    );
    assert!(said.contains("cert.pem: good"), "{said}");
}

#[test]
fn a_revocation_serves_revoked_in_the_same_event() {
    let (mut account, _laptop, _) = created();
    let phone = account.join("phone", &[ROLE]);
    account.sync(&SmimePlugin, &Event::Periodic).expect("join");
    let view = account.view();
    let (ca, phone_cert) = (ca_pem(&view), signing_pem(&view, &phone));
    let old_enc: SmimeEncryption = view.app("smime-enc:0").expect("p").expect("e");
    account.revoke(&phone);
    let event = Event::Revoked {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&SmimePlugin, &event).expect("revoke");
    let serve = serve_of(&out);
    // laptop + phone (revoked) + new encryption + old one (superseded).
    assert_eq!(serve.ocsp.len(), 4);
    if !have_openssl() {
        return;
    }
    let said = openssl_says(&ca, &phone_cert, &answer_for(&serve, &phone_cert), "st-rev");
    assert!(said.contains("Response verify OK"), "{said}");
    assert!(said.contains("cert.pem: revoked"), "{said}");
    assert!(said.contains("keyCompromise"), "{said}");
    let pem = &old_enc.certificate;
    let said = openssl_says(&ca, pem, &answer_for(&serve, pem), "st-sup");
    assert!(said.contains("cert.pem: revoked"), "{said}");
    assert!(said.contains("superseded"), "{said}");
}

#[test]
fn a_periodic_sync_with_fresh_answers_publishes_nothing() {
    let (account, _, _) = created();
    let again = account
        .entries(&SmimePlugin, &Event::Periodic)
        .expect("again");
    assert!(again.is_empty(), "{:?}", uids(&again));
}

#[test]
fn answers_past_half_their_validity_are_signed_again() {
    let (mut account, _, _) = created();
    // As if signed long ago: half the validity (less a minute) is left.
    let old = StatusData {
        next_update: now() + DEFAULT_OCSP_VALIDITY / 2 - 60,
        validity: DEFAULT_OCSP_VALIDITY,
        serve: Serve::default(),
    };
    account.publish(&[AppEntry::public(APP_STATUS, &old)]);
    let out = account
        .sync(&SmimePlugin, &Event::Periodic)
        .expect("periodic");
    assert_eq!(uids(&out), vec![APP_STATUS.to_string()]);
    let fresh: StatusData = account.view().app(APP_STATUS).expect("p").expect("s");
    assert!(fresh.next_update >= now() + DEFAULT_OCSP_VALIDITY - 5);
    assert_eq!(serve_of(&out).ocsp.len(), 2);
}

#[test]
fn the_validity_policy_is_bounded_and_re_signs_the_answers() {
    let (mut account, _, _) = created();
    let view = account.view();
    for bad in [60, 8 * 86400] {
        let e = validity_entry(&view, bad).expect_err("out of bounds");
        assert!(matches!(e, PluginError::BadInput(_)), "{e}");
    }
    account.publish(&validity_entry(&view, 3600).expect("1h"));
    let out = account
        .sync(&SmimePlugin, &Event::Periodic)
        .expect("periodic");
    assert_eq!(uids(&out), vec![APP_STATUS.to_string()]);
    for a in serve_of(&out).ocsp {
        assert!(a.next_update <= now() + 3600 + 5, "{}", a.next_update);
    }
}

/// `mesh smime reissue`: new certificates for the same keys, with both
/// addresses; the answers follow in the same transaction.
#[test]
fn reissue_issues_every_certificate_again_with_the_status_addresses() {
    let (mut account, laptop, _) = created();
    let view = account.view();
    let before = signing_pem(&view, &laptop);
    let enc0: SmimeEncryption = view.app("smime-enc:0").expect("p").expect("e");
    // Issued "earlier" than the request: the request is dated ahead.
    let mut pol = reissue_entry(&view).expect("reissue");
    pol[0].data["Reissue"] = serde_json::json!(now() + 600);
    account.publish(&pol);
    let out = account.sync(&SmimePlugin, &Event::Periodic).expect("sync");
    let laptop_uid = format!("smime-cert:{}", laptop.device_udf());
    let mut want = vec![APP_STATUS.to_string(), laptop_uid, "smime-enc:0".into()];
    want.sort();
    assert_eq!(uids(&out), want);
    let view = account.view();
    let after = signing_pem(&view, &laptop);
    assert_ne!(before, after);
    let enc1: SmimeEncryption = view.app("smime-enc:0").expect("p").expect("e");
    assert_ne!(enc0.serial, enc1.serial, "a new certificate");
    assert_eq!(enc0.key, enc1.key, "the same key, still held");
    let key = |pem: &str| {
        crate::x509::certificate_key(&crate::x509::pem_to_der(pem).expect("der")).expect("key")
    };
    assert_eq!(key(&enc0.certificate), key(&enc1.certificate));
    assert_eq!(serve_of(&out).ocsp.len(), 2);
    if !have_openssl() {
        return;
    }
    let base = format!("{}/pki/{}", view.profile.service, view.profile_udf);
    for pem in [&after, &enc1.certificate] {
        let text = x509_text(pem);
        assert!(text.contains(&format!("OCSP - URI:{base}/ocsp")), "{text}");
        assert!(text.contains(&format!("URI:{base}/smime.crl")), "{text}");
    }
}

/// `openssl x509 -text` of a certificate.
fn x509_text(pem: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
