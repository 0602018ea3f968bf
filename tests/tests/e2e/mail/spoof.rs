//! The signature-spoofing layout (issue 22.4): a `multipart/signed` whose
//! signature carries content of its own. The part a mail client shows is
//! not what the signature covers; Mesh refuses it, as OpenSSL does, and
//! still verifies the real detached form.

use super::{s, text, Mail, ADDR};

/// A multipart/signed: `shown` as the first part, `sig` (DER) as the
/// application/pkcs7-signature part.
fn multipart_signed(shown: &str, sig: &[u8]) -> String {
    let b = "----spoofed-boundary";
    let body = data_encoding::BASE64.encode(sig);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64"))
        .collect();
    format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"{b}\"\r\n\r\n\
         --{b}\r\n{shown}\r\n--{b}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
         Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n\
         {}\r\n--{b}--\r\n",
        lines.join("\r\n")
    )
}

#[test]
fn mail_multipart_signed_with_an_encapsulating_signature_is_refused() {
    let Some(m) = Mail::new("mail-spoof") else {
        return;
    };
    // The account's own key signs content A, encapsulated (-nodetach).
    std::fs::write(
        m.p("a.txt"),
        "Content-Type: text/plain\r\n\r\nPay 10 EUR to Bob.\r\n",
    )
    .expect("a");
    m.openssl(&[
        "cms",
        "-sign",
        "-nodetach",
        "-binary",
        "-outform",
        "DER",
        "-in",
        "a.txt",
        "-signer",
        "sign.pem",
        "-inkey",
        "ec.pem",
        "-out",
        "a.der",
    ]);
    let sig = std::fs::read(m.p("a.der")).expect("a.der");
    // What a mail client shows: content B.
    let shown = "Content-Type: text/plain\r\n\r\nPay 10000 EUR to Mallory.\r\n";
    std::fs::write(m.p("spoof.eml"), multipart_signed(shown, &sig)).expect("spoof");
    // OpenSSL refuses it too: the reference behaviour.
    let o = std::process::Command::new("openssl")
        .current_dir(&m.dir.0)
        .args([
            "smime",
            "-verify",
            "-CAfile",
            "ca.pem",
            "-in",
            "spoof.eml",
            "-out",
            "ossl.out",
        ])
        .output()
        .expect("openssl");
    assert!(!o.status.success(), "openssl accepted it: {}", text(&o));

    let out = m.p("spoof.out");
    let o = m.a.run(&[
        "smime",
        "verify",
        "--input",
        &m.ps("spoof.eml"),
        "--output",
        s(&out),
    ]);
    let said = text(&o);
    assert!(!o.status.success(), "verified: {said}");
    assert!(
        said.contains("carries its own content") && said.contains("not detached"),
        "{said}"
    );
    assert!(said.contains("\nhint: "), "{said}");
    assert!(
        !said.contains("good signature") && !said.contains(ADDR),
        "reported as verified: {said}"
    );
    assert!(
        std::fs::read(&out).map_or(true, |b| b.is_empty()),
        "content written"
    );
    let j =
        m.a.run(&["--json", "smime", "verify", "--input", &m.ps("spoof.eml")]);
    assert!(!j.status.success(), "{}", text(&j));

    // The real detached form of the same content still verifies, and the
    // same encapsulated signature alone (application/pkcs7-mime) does too.
    m.openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-outform",
        "DER",
        "-in",
        "a.txt",
        "-signer",
        "sign.pem",
        "-inkey",
        "ec.pem",
        "-out",
        "detached.der",
    ]);
    let detached = std::fs::read(m.p("detached.der")).expect("detached");
    let a = std::fs::read_to_string(m.p("a.txt")).expect("a");
    std::fs::write(m.p("real.eml"), multipart_signed(&a, &detached)).expect("real");
    let (who, content, said) = m.verify("real.eml");
    assert_eq!(who.trim(), ADDR);
    assert_eq!(content, a, "{said}");
    assert_eq!(m.verify("a.der").0.trim(), ADDR);
    // The hostile message with the shown part equal to the signed one is
    // refused as well: the layout, not the text, is the fault.
    std::fs::write(m.p("same.eml"), multipart_signed(&a, &sig)).expect("same");
    let e =
        m.a.fails(&["smime", "verify", "--input", &m.ps("same.eml")]);
    assert!(e.contains("carries its own content"), "{e}");
}
