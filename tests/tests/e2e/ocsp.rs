//! A stolen laptop's S/MIME certificate is refused by correspondents too
//! (issue 28): the certificate names the portal's OCSP responder and CRL,
//! whose answers the account signed ahead; a revocation's `revoked`
//! answer is in the same transaction as the revocation.

use std::path::Path;
use std::process::Command;

use mesh_tests::proxy::FakePortal;
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

/// `openssl ocsp` for `cert` under `ca` against `url`, the clock moved by
/// `ahead` (libfaketime, e.g. "+2h"), its answer kept in `save`.
fn ask_at(
    dir: &Path,
    ca: &str,
    cert: &str,
    url: &str,
    ahead: Option<&str>,
    save: Option<&str>,
) -> String {
    let mut args = vec![
        "ocsp",
        "-issuer",
        ca,
        "-cert",
        cert,
        "-url",
        url,
        "-CAfile",
        ca,
        "-no_nonce",
    ];
    if let Some(s) = save {
        args.extend(["-respout", s]);
    }
    let mut c = match ahead {
        Some(t) => {
            let mut c = Command::new("faketime");
            c.args(["-f", t, "openssl"]);
            c
        }
        None => Command::new("openssl"),
    };
    let o = c
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("openssl ocsp");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Against a fake portal that serves chosen bytes for every OCSP request
/// (table-driven): another account's answer is refused; a portal that
/// withholds the `revoked` answer can serve the older `good` one, and
/// openssl takes it until that answer's nextUpdate and no longer.
#[test]
fn a_fake_portals_answers_are_refused_or_bounded_by_their_next_update() {
    if !require_tool("openssl") || !require_tool("faketime") {
        return;
    }
    let dir = Scratch::new("ocsp-fake");
    let portal = PortalProc::start(&dir.path("portal"));
    // Answers valid for an hour, so that the bound is near.
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    a.ok(&["smime", "policy", "ocsp-validity", "1h"]);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    let c = Device::create_account(&dir.path("other"), "carol@example.org", &portal.url);
    let d = Device::new(&dir.path("other"), "d");
    d.join(&c, "carol@example.org", &portal.url, "tablet");
    for (name, dev, what) in [
        ("ca.pem", &a, "ca"),
        ("cert.pem", &b, "cert"),
        ("other-ca.pem", &c, "ca"),
        ("other-cert.pem", &d, "cert"),
    ] {
        std::fs::write(dir.path(name), dev.ok(&["smime", what])).expect("pem");
    }
    let url_of = |cert: &str| {
        openssl(&["x509", "-in", cert, "-noout", "-ocsp_uri"], &dir.0)
            .trim()
            .to_string()
    };
    // What the honest portal said: b's `good`, and d's answer under
    // the other account's CA.
    let said = ask_at(
        &dir.0,
        "ca.pem",
        "cert.pem",
        &url_of("cert.pem"),
        None,
        Some("good.der"),
    );
    assert!(said.contains("cert.pem: good"), "{said}");
    let said = ask_at(
        &dir.0,
        "other-ca.pem",
        "other-cert.pem",
        &url_of("other-cert.pem"),
        None,
        Some("other.der"),
    );
    assert!(said.contains("other-cert.pem: good"), "{said}");
    a.ok(&["device", "revoke", "phone"]);

    let serve = |bytes: Vec<u8>| {
        FakePortal::start(move |_| {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            )
            .into_bytes();
            r.extend_from_slice(&bytes);
            r
        })
    };
    let good = std::fs::read(dir.path("good.der")).expect("good");
    let other = std::fs::read(dir.path("other.der")).expect("other");
    // (what the fake serves, the clock, whether openssl takes `good`)
    let cases: [(&str, &[u8], Option<&str>, bool); 3] = [
        ("another account's answer", &other, None, false),
        (
            "the withheld revocation's older good answer, before its nextUpdate",
            &good,
            None,
            true,
        ),
        (
            "the same answer past its nextUpdate",
            &good,
            Some("+2h"),
            false,
        ),
    ];
    for (what, bytes, ahead, taken) in cases {
        let fake = serve(bytes.to_vec());
        let said = ask_at(
            &dir.0,
            "ca.pem",
            "cert.pem",
            &format!("{}/ocsp", fake.url),
            ahead,
            None,
        );
        let accepted = said.contains("cert.pem: good")
            && said.contains("Response verify OK")
            && !said.contains("WARNING: Status times invalid");
        assert_eq!(accepted, taken, "{what}:\n{said}");
    }
}
