//! The answers as a real client reads them: `openssl ocsp -respin`.

use super::*;
use crate::x509::{P256Public, SigningCert};

/// openssl on PATH (a failure under CI=true, else the test is skipped).
/// A Windows build of these tests (run under Wine in CI for the
/// certificate store) has no openssl peer: the Linux run checks with it.
pub(crate) fn have_openssl() -> bool {
    if cfg!(windows) {
        eprintln!("skipping: the openssl peer runs on the Linux side");
        return false;
    }
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is required under CI=true but is not installed"
        );
        eprintln!("skipping: openssl is not installed");
    }
    found
}

fn ca_key(b: u8) -> P256Signer {
    P256Signer::new(p256::ecdsa::SigningKey::from_slice(&[b; 32]).expect("key"))
}

/// A CA and a device certificate it issued: (CA PEM, cert PEM).
fn issued(ca: &P256Signer) -> (String, String) {
    let ca_pem = crate::x509::ca_certificate(ca, "alice@example.com").expect("ca");
    let device = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).expect("key");
    let point = device.verifying_key().to_encoded_point(false);
    let public = P256Public::new(point.as_bytes()).expect("point");
    let t = i64::try_from(mesh_plugins::now()).expect("now");
    let cert = crate::x509::signing_certificate(
        ca,
        &public,
        &SigningCert {
            address: "alice@example.com",
            device_name: "laptop",
            serial: 0x00ab_cdef_0123,
            not_before: t - 300,
            not_after: t + 86400,
            urls: None,
        },
    )
    .expect("cert");
    (ca_pem, cert)
}

/// What `openssl ocsp -respin` says of `cert` (stdout and stderr).
pub(crate) fn openssl_says(ca_pem: &str, cert_pem: &str, resp: &[u8], tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("mesh-ocsp-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("ca.pem"), ca_pem).expect("ca");
    std::fs::write(dir.join("cert.pem"), cert_pem).expect("cert");
    std::fs::write(dir.join("resp.der"), resp).expect("resp");
    let out = std::process::Command::new("openssl")
        .current_dir(&dir)
        .args(["ocsp", "-respin", "resp.der", "-issuer", "ca.pem"])
        .args(["-cert", "cert.pem", "-CAfile", "ca.pem"])
        .output()
        .expect("openssl");
    std::fs::remove_dir_all(&dir).ok();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn now() -> i64 {
    i64::try_from(mesh_plugins::now()).expect("now")
}

#[test]
fn a_good_answer_verifies_in_openssl() {
    if !have_openssl() {
        return;
    }
    let ca = ca_key(7);
    let (ca_pem, cert) = issued(&ca);
    let der = |p: &str| crate::x509::pem_to_der(p).expect("der");
    let a = response(&ca, &der(&ca_pem), &der(&cert), Status::Good, now(), 86400).expect("ocsp");
    assert_eq!(a.serial, "abcdef0123");
    let said = openssl_says(&ca_pem, &cert, &a.response, "good");
    assert!(said.contains("Response verify OK"), "{said}");
    assert!(said.contains("cert.pem: good"), "{said}");
    // The issuer key hash the portal indexes is the one in the request.
    let ca_cert = Certificate::from_der(&der(&ca_pem)).expect("ca");
    assert_eq!(
        a.issuer_key_hash,
        data_encoding::HEXLOWER.encode(&key_hash(&ca_cert))
    );
}

#[test]
fn a_revoked_answer_says_key_compromise() {
    if !have_openssl() {
        return;
    }
    let ca = ca_key(7);
    let (ca_pem, cert) = issued(&ca);
    let der = |p: &str| crate::x509::pem_to_der(p).expect("der");
    let st = Status::Revoked {
        when: now() - 10,
        compromised: true,
    };
    let a = response(&ca, &der(&ca_pem), &der(&cert), st, now(), 3600).expect("ocsp");
    let said = openssl_says(&ca_pem, &cert, &a.response, "revoked");
    assert!(said.contains("Response verify OK"), "{said}");
    assert!(said.contains("cert.pem: revoked"), "{said}");
    assert!(said.contains("keyCompromise"), "{said}");
}

/// Another account's CA cannot answer for this one's certificate.
#[test]
fn an_answer_signed_by_another_ca_is_refused() {
    if !have_openssl() {
        return;
    }
    let (ours, other) = (ca_key(7), ca_key(8));
    let (ca_pem, cert) = issued(&ours);
    let other_pem = crate::x509::ca_certificate(&other, "alice@example.com").expect("ca");
    let der = |p: &str| crate::x509::pem_to_der(p).expect("der");
    // The other CA's answer for our certificate (CertID names its key).
    let a = response(
        &other,
        &der(&other_pem),
        &der(&cert),
        Status::Good,
        now(),
        60,
    )
    .expect("ocsp");
    let said = openssl_says(&ca_pem, &cert, &a.response, "other");
    assert!(!said.contains("Response verify OK"), "{said}");
}
