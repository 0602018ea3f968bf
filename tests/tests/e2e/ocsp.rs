//! A stolen laptop's S/MIME certificate is refused by correspondents too
//! (issue 28): the certificate names the portal's OCSP responder and CRL,
//! whose answers the account signed ahead; a revocation's `revoked`
//! answer is in the same transaction as the revocation.

use std::path::Path;
use std::process::Command;

use mesh_tests::{eventually, require_tool, Device, PortalProc, Scratch};

use crate::portal::pki::http;

const ADDR: &str = "alice@example.com";

fn openssl(args: &[&str], dir: &Path) -> String {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn openssl_ocsp_says_good_then_revoked_and_the_crl_lists_the_serial() {
    if !require_tool("openssl") {
        return;
    }
    let dir = Scratch::new("ocsp");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    std::fs::write(dir.path("cert.pem"), b.ok(&["smime", "cert"])).expect("cert");
    std::fs::write(dir.path("ca.pem"), a.ok(&["smime", "ca"])).expect("ca");

    // The certificate names the account's portal for both.
    let url = openssl(&["x509", "-in", "cert.pem", "-noout", "-ocsp_uri"], &dir.0);
    let url = url.trim().to_string();
    assert!(
        url.starts_with(&format!("{}/pki/", portal.url)) && url.ends_with("/ocsp"),
        "{url}"
    );
    let ask = || {
        openssl(
            &[
                "ocsp",
                "-issuer",
                "ca.pem",
                "-cert",
                "cert.pem",
                "-url",
                &url,
                "-CAfile",
                "ca.pem",
                "-no_nonce",
            ],
            &dir.0,
        )
    };
    let said = ask();
    assert!(said.contains("cert.pem: good"), "{said}");
    assert!(said.contains("Response verify OK"), "{said}");

    // Revoked: the portal has the `revoked` answer as soon as the
    // revocation is in (one transaction).
    a.ok(&["device", "revoke", "phone"]);
    let mut said = String::new();
    assert!(
        eventually(2, || {
            said = ask();
            said.contains("cert.pem: revoked")
        }),
        "{said}"
    );
    assert!(said.contains("Response verify OK"), "{said}");
    assert!(said.contains("keyCompromise"), "{said}");

    // The CRL at the certificate's distribution point lists its serial.
    let dp = openssl(
        &[
            "x509",
            "-in",
            "cert.pem",
            "-noout",
            "-ext",
            "crlDistributionPoints",
        ],
        &dir.0,
    );
    let crl_url = dp
        .split_whitespace()
        .find_map(|w| w.strip_prefix("URI:"))
        .expect("a distribution point")
        .to_string();
    let path = crl_url.strip_prefix(&portal.url).expect("at the portal");
    let (status, head, body) = http(&portal.url, "GET", path, None, b"");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("application/pkix-crl"), "{head}");
    std::fs::write(dir.path("crl.der"), body).expect("crl");
    let crl = openssl(
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
        &dir.0,
    );
    let serial = openssl(&["x509", "-in", "cert.pem", "-noout", "-serial"], &dir.0);
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    assert!(
        crl.to_uppercase().contains(&serial.to_uppercase()),
        "{serial} not in\n{crl}"
    );
    // And it verifies under the account's CA.
    let verified = openssl(
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-CAfile", "ca.pem",
        ],
        &dir.0,
    );
    assert!(verified.contains("verify OK"), "{verified}");
}
