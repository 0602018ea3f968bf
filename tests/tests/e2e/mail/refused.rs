//! Tampered, truncated and mismatched messages are refused, each with
//! its reason and a hint (one table).

use super::Mail;

/// Flip one byte of `file` at `at` (from the end if negative) into `out`.
fn flip(m: &Mail, file: &str, at: isize, out: &str) {
    let mut b = std::fs::read(m.p(file)).expect("read");
    let i = if at < 0 {
        b.len() - at.unsigned_abs()
    } else {
        at.unsigned_abs()
    };
    b[i] ^= 0x01;
    std::fs::write(m.p(out), b).expect("write");
}

#[test]
fn mail_tampered_truncated_and_mismatched_messages_are_refused_with_the_reason() {
    let Some(m) = Mail::new("mail-bad") else {
        return;
    };
    let mesh = |args: &[&str]| m.a.ok(args);
    mesh(&[
        "smime",
        "sign",
        "--input",
        &m.ps("msg.txt"),
        "--output",
        &m.ps("signed.eml"),
    ]);
    mesh(&[
        "smime",
        "sign",
        "--der",
        "--input",
        &m.ps("msg.txt"),
        "--output",
        &m.ps("signed.der"),
    ]);
    mesh(&[
        "smime",
        "encrypt",
        "--gcm",
        "--der",
        "--input",
        &m.ps("msg.txt"),
        "--output",
        &m.ps("gcm.der"),
    ]);
    m.openssl(&[
        "cms",
        "-encrypt",
        "-aes-256-cbc",
        "-binary",
        "-outform",
        "DER",
        "-in",
        "msg.txt",
        "-out",
        "cbc.der",
        "enc.pem",
    ]);
    m.openssl(&[
        "cms", "-encrypt", "-des3", "-binary", "-outform", "DER", "-in", "msg.txt", "-out",
        "des3.der", "enc.pem",
    ]);
    // Another CA, its signer, and a stranger's encryption certificate.
    m.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Other CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-keyout",
        "other.key",
        "-out",
        "other.pem",
    ]);
    m.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=bob",
        "-addext",
        "subjectAltName=email:bob@example.org",
        "-keyout",
        "bob.key",
        "-out",
        "bob.csr",
    ]);
    m.openssl(&[
        "x509",
        "-req",
        "-in",
        "bob.csr",
        "-CA",
        "other.pem",
        "-CAkey",
        "other.key",
        "-days",
        "1",
        "-copy_extensions",
        "copy",
        "-out",
        "bob.pem",
    ]);
    m.openssl(&[
        "cms",
        "-sign",
        "-nodetach",
        "-binary",
        "-outform",
        "DER",
        "-in",
        "msg.txt",
        "-signer",
        "bob.pem",
        "-inkey",
        "bob.key",
        "-out",
        "bob.der",
    ]);
    // Bob again, over a SHA-1 digest: refused even with his CA given.
    m.openssl(&[
        "cms",
        "-sign",
        "-nodetach",
        "-binary",
        "-md",
        "sha1",
        "-outform",
        "DER",
        "-in",
        "msg.txt",
        "-signer",
        "bob.pem",
        "-inkey",
        "bob.key",
        "-out",
        "sha1.der",
    ]);
    m.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=carol",
        "-keyout",
        "carol.key",
        "-out",
        "carol.pem",
    ]);
    m.openssl(&[
        "cms",
        "-encrypt",
        "-aes-256-cbc",
        "-binary",
        "-outform",
        "DER",
        "-in",
        "msg.txt",
        "-out",
        "carol.der",
        "carol.pem",
    ]);
    std::fs::write(m.p("plain.txt"), "just words\n").expect("plain");
    std::fs::write(
        m.p("text.eml"),
        "Subject: hi\nContent-Type: text/plain\n\nhi\n",
    )
    .expect("text");
    // The tampered and truncated variants.
    let signed = std::fs::read_to_string(m.p("signed.eml")).expect("signed");
    std::fs::write(
        m.p("altered.eml"),
        signed.replacen("second line", "second lime", 1),
    )
    .expect("altered");
    std::fs::write(m.p("truncated.eml"), &signed[..signed.len() * 2 / 3]).expect("truncated");
    let der = std::fs::read(m.p("signed.der")).expect("der");
    std::fs::write(m.p("truncated.der"), &der[..der.len() - 40]).expect("truncated");
    flip(&m, "signed.der", -10, "badsig.der");
    flip(&m, "gcm.der", -3, "badtag.der");
    // The RSA-wrapped key: the 256 bytes before the content's AlgorithmIdentifier.
    let cbc = std::fs::read(m.p("cbc.der")).expect("cbc");
    let data_oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
    ];
    let at = cbc
        .windows(11)
        .rposition(|w| w == data_oid)
        .expect("id-data");
    flip(
        &m,
        "cbc.der",
        isize::try_from(at).expect("i") - 40,
        "badkey.der",
    );

    let table: &[(&str, &str, &[&str])] = &[
        ("verify", "altered.eml", &["does not match its digest"]),
        ("verify", "truncated.eml", &["damaged"]),
        ("verify", "truncated.der", &["damaged message", "truncated"]),
        (
            "verify",
            "badsig.der",
            &["bad signature", "does not verify"],
        ),
        (
            "verify",
            "bob.der",
            &["untrusted signer", "CN=bob", "does not chain"],
        ),
        ("verify", "plain.txt", &["not a MIME message"]),
        (
            "verify",
            "text.eml",
            &["not an S/MIME message (Content-Type: text/plain)"],
        ),
        ("verify", "cbc.der", &["not signed"]),
        ("decrypt", "signed.der", &["not encrypted"]),
        (
            "decrypt",
            "carol.der",
            &["not encrypted to this account's encryption certificate"],
        ),
        // One error for both: no oracle (mail/oracle.rs has the table).
        (
            "decrypt",
            "badkey.der",
            &["does not decrypt with this account's key"],
        ),
        (
            "decrypt",
            "badtag.der",
            &["does not decrypt with this account's key"],
        ),
        (
            "decrypt",
            "des3.der",
            &["unsupported content encryption 3DES-CBC"],
        ),
    ];
    for (verb, file, reasons) in table {
        let e = m.a.fails(&["smime", verb, "--input", &m.ps(file)]);
        for r in *reasons {
            assert!(e.contains(r), "{verb} {file}: want {r:?} in {e}");
        }
        assert!(e.contains("\nhint: "), "{verb} {file}: no hint in {e}");
    }
    // Given the other CA, Bob's signature verifies, and his address is printed.
    let o = m.a.ok(&[
        "smime",
        "verify",
        "--ca",
        &m.ps("other.pem"),
        "--input",
        &m.ps("bob.der"),
    ]);
    assert_eq!(o.trim(), "bob@example.org");
    let e = m.a.fails(&[
        "smime",
        "verify",
        "--ca",
        &m.ps("other.pem"),
        "--input",
        &m.ps("sha1.der"),
    ]);
    assert!(e.contains("SHA-1") && e.contains("\nhint: "), "{e}");
}
