//! What the portal serves for an account (issue 28, PROTOCOL.md §18): the
//! `Serve` member of a Published entry, appended by a real transaction,
//! indexed in the same database transaction and served back over HTTP to
//! real OCSP requests (`openssl ocsp -reqout`). The portal signs nothing:
//! the bytes the account stored come back, an unknown certificate gets
//! `unauthorized` (6), garbage `malformedRequest` (1); a Serve member that
//! is too large or malformed refuses its whole transaction.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use mesh_account::store::Store;
use mesh_core::envelope::Signed;
use mesh_core::objects::CatalogedApplication;
use mesh_core::portal::{self as p, store as st, StoreUpdate};
use mesh_core::serve::{Serve, ServedFile, ServedOcsp};
use mesh_tests::{Backend, Device, PortalProc, Scratch};

use super::upload::{online_keys, transact};
use super::ADDR;

const UNAUTHORIZED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x06];
const MALFORMED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x01];

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A throwaway CA and two certificates it issued (serial 0x8f01020304,
/// whose DER has a leading zero, and 0x1234), and the CA's DER.
fn pki(dir: &Path) -> Vec<u8> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=Test CA",
                "-days",
                "2",
            ],
        ]
        .concat(),
    );
    for (name, serial) in [("cert", "0x8f01020304"), ("other", "0x1234")] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            dir,
            &[
                &["req"][..],
                &ec,
                &["-keyout", &key, "-out", &csr, "-subj", "/CN=leaf"],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "1",
                "-out",
                &pem,
            ],
        );
    }
    openssl(dir, &["x509", "-in", "ca.pem", "-outform", "DER"])
}

/// SHA-1 of the CA's subjectPublicKey (a P-256 point: the last 65 bytes
/// of its SubjectPublicKeyInfo), computed apart from openssl's request.
fn issuer_key_hash(dir: &Path) -> String {
    let spki = openssl(dir, &["x509", "-in", "ca.pem", "-pubkey", "-noout"]);
    std::fs::write(dir.join("ca.pub"), spki).expect("write");
    let der = openssl(dir, &["pkey", "-pubin", "-in", "ca.pub", "-outform", "DER"]);
    std::fs::write(dir.join("ca.point"), &der[der.len() - 65..]).expect("write");
    let h = openssl(dir, &["dgst", "-sha1", "-binary", "ca.point"]);
    data_encoding::HEXLOWER.encode(&h)
}

/// `openssl ocsp -reqout` for `cert` (extra flags: `-sha256`).
fn request(dir: &Path, cert: &str, extra: &[&str]) -> Vec<u8> {
    let out = format!("{cert}-{}.req", extra.len());
    // A digest flag applies to the -cert options after it.
    let args = [
        &["ocsp"][..],
        extra,
        &[
            "-issuer",
            "ca.pem",
            "-cert",
            cert,
            "-no_nonce",
            "-reqout",
            &out,
        ],
    ];
    openssl(dir, &args.concat());
    std::fs::read(dir.join(out)).expect("request")
}

/// One HTTP/1.1 exchange: status, headers (lowercase names), body.
pub(crate) fn http(
    url: &str,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let host = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    let ct = ct
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{ct}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("send");
    let _ = s.write_all(body);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
    let status = head[9..12].parse().expect("status");
    (status, head, got[end + 4..].to_vec())
}

/// Where an entry carries its Serve member: `Data.Serve` (what writers
/// use) or the top-level member (read the same).
#[derive(Clone, Copy)]
enum At {
    Data,
    Top,
}

/// Append one Published entry carrying `serve` (and its checkpoint) as
/// the administrator `a`: the status and the answer.
fn publish(portal: &str, a: &Device, udf: &str, serve: Serve, at: At) -> (u16, String) {
    let state = mesh_account::account(&Store::open(&a.home, false).expect("a")).expect("a");
    let keys = online_keys(a, udf);
    let app = match at {
        At::Data => CatalogedApplication {
            uid: "status-test".into(),
            data: serde_json::json!({ "Serve": serve }),
            serve: None,
        },
        At::Top => CatalogedApplication {
            uid: "status-test".into(),
            data: serde_json::json!({}),
            serve: Some(serve),
        },
    };
    let published = StoreUpdate {
        store: st::PUBLISHED.into(),
        expected: state.history.position(st::PUBLISHED).index,
        delta: None,
        envelopes: vec![Signed::sign_object(
            mesh_core::ct::CATALOGED_APPLICATION,
            &app,
            &keys.admin_sign,
        )],
    };
    let cp = state.history.next(
        udf,
        std::slice::from_ref(&published),
        mesh_plugins::now(),
        None,
    );
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
    transact(portal, a, udf, vec![published, checkpoint])
}

fn answer(key: &str, serial: &str, next_update: u64, der: &[u8]) -> ServedOcsp {
    ServedOcsp {
        issuer_key_hash: key.into(),
        serial: serial.into(),
        next_update,
        response: data_encoding::BASE64.encode(der),
    }
}

/// GET form of an OCSP request: base64, URL-encoded.
fn get_path(udf: &str, der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let enc = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("/pki/{udf}/ocsp/{enc}")
}

/// POST an OCSP request to the account's responder.
fn post_ocsp(portal: &PortalProc, udf: &str, der: &[u8]) -> (u16, String, Vec<u8>) {
    let path = format!("/pki/{udf}/ocsp");
    http(&portal.url, "POST", &path, Some(OCSP_REQUEST), der)
}

const OCSP_REQUEST: &str = "application/ocsp-request";

fn the_portal_serves_what_published_entries_carry(backend: Backend) {
    if !mesh_tests::require_tool("openssl") {
        return;
    }
    let dir = Scratch::new("pki-serve");
    let certs = dir.path("certs");
    std::fs::create_dir_all(&certs).expect("dir");
    let ca_der = pki(&certs);
    let key = issuer_key_hash(&certs);
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("profile")
        .to_string();
    // Any DER stands for the signed answer: the portal is the transport.
    let stored = openssl(&certs, &["x509", "-in", "cert.pem", "-outform", "DER"]);
    let next = mesh_plugins::now() + 3600;
    let serve = Serve {
        files: vec![ServedFile {
            name: "test.crl".into(),
            content_type: "application/pkix-crl".into(),
            body: data_encoding::BASE64.encode(&ca_der),
        }],
        ocsp: vec![answer(&key, "8f01020304", next, &stored)],
    };
    let (code, out) = publish(&portal.url, &a, &udf, serve, At::Data);
    assert_eq!(code, 200, "{out}");
    // The administrator's state follows: each refused transaction below
    // would otherwise be one the portal accepts.
    a.ok(&["sync"]);

    let req = request(&certs, "cert.pem", &[]);
    served_back(&portal, &udf, &certs, &ca_der, &req, &stored);
    hostile_requests(&portal, &udf, &certs, &req);
    refused_serves(&portal, &a, &udf, &key, &stored);

    // The latest answer for a certificate wins (a top-level member is read too).
    let newer = [0x30, 0x03, 0x0a, 0x01, 0x00];
    let serve = Serve {
        ocsp: vec![answer(&key, "8f01020304", next, &newer)],
        ..Default::default()
    };
    assert_eq!(publish(&portal.url, &a, &udf, serve, At::Top).0, 200);
    assert_eq!(post_ocsp(&portal, &udf, &req).2, newer);
}

/// The file and the answer come back as stored, by POST and GET, with
/// their content types and the answer's cache lifetime; openssl, as a
/// correspondent's client, hears `unauthorized` for another certificate.
fn served_back(
    portal: &PortalProc,
    udf: &str,
    certs: &Path,
    file: &[u8],
    req: &[u8],
    stored: &[u8],
) {
    let path = format!("/pki/{udf}/test.crl");
    let (s, head, body) = http(&portal.url, "GET", &path, None, b"");
    assert_eq!((s, body.as_slice()), (200, file), "{head}");
    assert!(
        head.contains("content-type: application/pkix-crl"),
        "{head}"
    );

    let (s, head, body) = post_ocsp(portal, udf, req);
    assert_eq!((s, body.as_slice()), (200, stored), "{head}");
    assert!(
        head.contains("content-type: application/ocsp-response"),
        "{head}"
    );
    let age: u64 = head
        .split("cache-control: max-age=")
        .nth(1)
        .and_then(|r| r.split("\r\n").next())
        .and_then(|v| v.trim().parse().ok())
        .expect("max-age");
    assert!((3500..=3600).contains(&age), "{age}");
    let (s, _, body) = http(&portal.url, "GET", &get_path(udf, req), None, b"");
    assert_eq!((s, body.as_slice()), (200, stored));

    request(certs, "other.pem", &[]);
    let url = format!("{}/pki/{udf}/ocsp", portal.url);
    let o = Command::new("openssl")
        .args([
            "ocsp",
            "-reqin",
            "other.pem-0.req",
            "-url",
            &url,
            "-noverify",
        ])
        .current_dir(certs)
        .output()
        .expect("openssl");
    let said = String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).to_string();
    assert!(said.contains("unauthorized (6)"), "{said}");
}

/// What comes back: an OCSP answer (200, these bytes) or an HTTP status.
enum Want {
    Der(&'static [u8]),
    Status(u16),
}

/// What is sent (what, method, path, content type, body) and what comes back.
type Case<'a> = (&'a str, &'a str, String, Option<&'a str>, Vec<u8>, Want);

/// Table-driven: what anyone may send to the public paths.
fn hostile_requests(portal: &PortalProc, udf: &str, certs: &Path, good: &[u8]) {
    use Want::*;
    let other = request(certs, "other.pem", &[]);
    let sha256 = request(certs, "cert.pem", &["-sha256"]);
    let ocsp = format!("/pki/{udf}/ocsp");
    let (foreign, req) = ("/pki/MAAAA-BBBBB-CCCCC", Some(OCSP_REQUEST));
    let cut = good[..good.len() - 3].to_vec();
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("unknown serial", "POST", ocsp.clone(), req, other.clone(), Der(UNAUTHORIZED)),
        ("unknown serial by GET", "GET", get_path(udf, &other), None, vec![], Der(UNAUTHORIZED)),
        ("a SHA-256 CertID", "POST", ocsp.clone(), req, sha256, Der(UNAUTHORIZED)),
        ("another account", "POST", format!("{foreign}/ocsp"), req, good.to_vec(), Der(UNAUTHORIZED)),
        ("garbage", "POST", ocsp.clone(), req, b"hello".to_vec(), Der(MALFORMED)),
        ("truncated", "POST", ocsp.clone(), req, cut, Der(MALFORMED)),
        ("garbage by GET", "GET", format!("{ocsp}/%21%21%21"), None, vec![], Der(MALFORMED)),
        ("an oversized body", "POST", ocsp.clone(), req, vec![0x30; 17 << 10], Status(413)),
        ("another content type", "POST", ocsp.clone(), Some("text/plain"), good.to_vec(), Status(415)),
        ("an unknown file", "GET", format!("/pki/{udf}/none.crl"), None, vec![], Status(404)),
        ("a name out of charset", "GET", format!("/pki/{udf}/TEST.CRL"), None, vec![], Status(404)),
        ("another account's file", "GET", format!("{foreign}/test.crl"), None, vec![], Status(404)),
    ];
    for (what, method, path, ct, body, want) in cases {
        let (s, head, got) = http(&portal.url, method, &path, ct, &body);
        match want {
            Der(der) => {
                assert_eq!((s, got.as_slice()), (200, der), "{what}: {head}");
                assert!(head.contains("cache-control: no-store"), "{what}: {head}");
            }
            Status(want) => assert_eq!(s, want, "{what}: {head}"),
        }
    }
}

/// Table-driven: a Serve member the portal refuses refuses its whole
/// transaction (the Published store does not move, nothing is served).
fn refused_serves(portal: &PortalProc, a: &Device, udf: &str, key: &str, der: &[u8]) {
    let next = mesh_plugins::now() + 60;
    let many: Vec<ServedOcsp> = (0..=4096u32)
        .map(|i| answer(key, &format!("{:x}", i + 0x100), next, &[0x30, 0x00]))
        .collect();
    let huge = ServedFile {
        name: "huge.crl".into(),
        content_type: "application/pkix-crl".into(),
        body: data_encoding::BASE64.encode(&vec![0x30u8; 1 << 20]),
    };
    let cases: Vec<(&str, Serve, &str)> = vec![
        (
            "4097 answers",
            Serve {
                ocsp: many,
                ..Default::default()
            },
            "4097 OCSP answers",
        ),
        (
            "over 1 MiB",
            Serve {
                files: vec![huge],
                ..Default::default()
            },
            "bytes of JSON",
        ),
        (
            "a serial with a leading zero",
            Serve {
                ocsp: vec![answer(key, "0100", next, der)],
                ..Default::default()
            },
            "Serial",
        ),
        (
            "an upper-case key hash",
            Serve {
                ocsp: vec![answer(&key.to_uppercase(), "100", next, der)],
                ..Default::default()
            },
            "IssuerKeyHash",
        ),
        (
            "a path in a name",
            Serve {
                files: vec![ServedFile {
                    name: "../x".into(),
                    content_type: "a/b".into(),
                    body: String::new(),
                }],
                ..Default::default()
            },
            "file name",
        ),
    ];
    let count = |sql: &str| portal.db.row(sql, &[])[0].int();
    let entries = "SELECT COUNT(*) FROM entries WHERE store = 'Published'";
    let before = (count(entries), count("SELECT COUNT(*) FROM served_ocsp"));
    for (what, serve, says) in cases {
        for at in [At::Data, At::Top] {
            let (code, out) = publish(&portal.url, a, udf, serve.clone(), at);
            assert_eq!(code, 400, "{what}: {out}");
            assert!(out.contains(says), "{what}: {out}");
            let after = (count(entries), count("SELECT COUNT(*) FROM served_ocsp"));
            assert_eq!(after, before, "{what}: nothing stored, nothing indexed");
        }
    }
}

mesh_tests::on_both_backends!(the_portal_serves_what_published_entries_carry);
