//! Mail as real clients send it (issue: mail formats): `mesh smime`
//! reads what NSS (Thunderbird's engine) and OpenSSL write, whole messages
//! and bare CMS in BER, DER and PEM; and what it writes verifies and
//! decrypts in OpenSSL and in NSS against a database `mesh smime install`
//! filled. Refusals name their reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mesh_tests::{require_tool, Device, PortalProc, Scratch};

mod epochs;
mod oracle;
mod refused;
mod spoof;

const ADDR: &str = "alice@example.com";
const BODY: &str = "Hello S/MIME\r\nsecond line\r\n";
/// The nicknames `mesh smime install` gives (PROTOCOL.md §12).
const ENC_NICK: &str = "alice@example.com (encryption epoch 0)";
const SIGN_NICK: &str = "alice@example.com (signing)";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run");
    assert!(o.status.success(), "{cmd:?}: {}", text(&o));
    text(&o)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// An account with S/MIME keys, their PEM files, and an NSS database
/// `mesh smime install` filled.
struct Mail {
    dir: Scratch,
    _portal: PortalProc,
    a: Device,
    nss: String,
}

impl Mail {
    fn new(tag: &str) -> Option<Mail> {
        if !["openssl", "cmsutil", "certutil", "pk12util"]
            .iter()
            .all(|t| require_tool(t))
        {
            return None;
        }
        let dir = Scratch::new(tag);
        let portal = PortalProc::start(&dir.path("portal"));
        let a = Device::create_account(&dir.0, ADDR, &portal.url);
        let p = |n: &str| dir.path(n);
        std::fs::write(p("ca.pem"), a.ok(&["smime", "ca"])).expect("ca");
        std::fs::write(p("sign.pem"), a.ok(&["smime", "cert"])).expect("sign");
        std::fs::write(p("enc.pem"), a.ok(&["smime", "cert", "--encryption"])).expect("enc");
        std::fs::write(p("pw"), "pw\n").expect("pw");
        std::fs::write(
            p("msg.txt"),
            format!("Content-Type: text/plain\r\n\r\n{BODY}"),
        )
        .expect("msg");
        a.ok(&[
            "smime",
            "export",
            "--output",
            s(&p("a.p12")),
            "--password-file",
            s(&p("pw")),
        ]);
        let keys = run(Command::new("openssl")
            .args(["pkcs12", "-nocerts", "-nodes", "-passin", "pass:pw", "-in"])
            .arg(p("a.p12")));
        for block in keys.split("-----BEGIN PRIVATE KEY-----").skip(1) {
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----{}-----END PRIVATE KEY-----\n",
                block
                    .split("-----END PRIVATE KEY-----")
                    .next()
                    .unwrap_or("")
            );
            let f = p("k.pem");
            std::fs::write(&f, &pem).expect("key");
            let info = run(Command::new("openssl")
                .args(["pkey", "-noout", "-text", "-in"])
                .arg(&f));
            let name = if info.contains("2048 bit") {
                "rsa.pem"
            } else {
                "ec.pem"
            };
            std::fs::rename(&f, p(name)).expect("rename");
        }
        let db = p("nss");
        a.ok(&["smime", "install", "--nssdb", s(&db)]);
        Some(Mail {
            nss: format!("sql:{}", db.display()),
            dir,
            _portal: portal,
            a,
        })
    }

    fn p(&self, n: &str) -> PathBuf {
        self.dir.path(n)
    }

    fn ps(&self, n: &str) -> String {
        s(&self.p(n)).to_string()
    }

    fn openssl(&self, args: &[&str]) -> String {
        run(Command::new("openssl").current_dir(&self.dir.0).args(args))
    }

    fn cmsutil(&self, args: &[&str]) -> Output {
        Command::new("cmsutil")
            .current_dir(&self.dir.0)
            .args(["-d", &self.nss])
            .args(args)
            .output()
            .expect("cmsutil")
    }

    /// `mesh smime verify`: (stdout, the content written, stderr).
    fn verify(&self, file: &str) -> (String, String, String) {
        let out = self.p("verified.out");
        let _ = std::fs::remove_file(&out);
        let o = self.a.run(&[
            "smime",
            "verify",
            "--input",
            &self.ps(file),
            "--output",
            s(&out),
        ]);
        assert!(o.status.success(), "verify {file}: {}", text(&o));
        (
            String::from_utf8_lossy(&o.stdout).to_string(),
            std::fs::read_to_string(&out).expect("content"),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    }

    fn decrypt(&self, file: &str) -> (String, String) {
        let o = self.a.run(&["smime", "decrypt", "--input", &self.ps(file)]);
        assert!(o.status.success(), "decrypt {file}: {}", text(&o));
        (
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    }
}

/// The body of a MIME message (after the first blank line), base64-decoded.
fn mime_body(file: &Path) -> Vec<u8> {
    let m = std::fs::read_to_string(file).expect("mime");
    let body = m
        .split_once("\r\n\r\n")
        .or_else(|| m.split_once("\n\n"))
        .expect("a header block")
        .1;
    let clean: String = body.split_ascii_whitespace().collect();
    data_encoding::BASE64
        .decode(clean.as_bytes())
        .expect("base64")
}

/// The two parts of a multipart/signed message: the signed entity and the signature (DER).
fn signed_parts(file: &Path) -> (Vec<u8>, Vec<u8>) {
    let m = std::fs::read_to_string(file).expect("mime");
    let b = m
        .split("boundary=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("boundary");
    let delim = format!("\r\n--{b}");
    // preamble, the signed entity, the signature, the epilogue.
    let parts: Vec<&str> = m.split(&delim).collect();
    assert_eq!(parts.len(), 4, "{m}");
    let first = parts[1].strip_prefix("\r\n").expect("first");
    let sig = parts[2].strip_prefix("\r\n").expect("sig");
    let tmp = file.with_extension("p7s.eml");
    std::fs::write(&tmp, sig).expect("sig");
    (first.as_bytes().to_vec(), mime_body(&tmp))
}

#[test]
fn mail_from_nss_and_openssl_verifies_and_decrypts() {
    let Some(m) = Mail::new("mail-in") else {
        return;
    };
    let sign = |args: &[&str], out: &str| {
        let mut a = vec!["-d", &m.nss, "-p", "", "-i", "msg.txt", "-o", out];
        a.extend_from_slice(args);
        let o = Command::new("cmsutil")
            .current_dir(&m.dir.0)
            .args(&a)
            .output()
            .expect("cmsutil");
        assert!(o.status.success(), "{}", text(&o));
    };
    // NSS signs (BER, indefinite lengths, the signer's certificate twice).
    sign(&["-S", "-N", SIGN_NICK, "-G", "-P"], "nss-signed.p7m");
    assert_eq!(
        std::fs::read(m.p("nss-signed.p7m")).expect("p7m")[1],
        0x80,
        "BER"
    );
    let (who, content, said) = m.verify("nss-signed.p7m");
    assert_eq!(who.trim(), ADDR);
    assert_eq!(content, format!("Content-Type: text/plain\r\n\r\n{BODY}"));
    assert!(
        said.contains("good signature by CN=alice@example.com (laptop)"),
        "{said}"
    );
    // NSS encrypts (BER, AES-CBC, the encrypted content in pieces).
    let o = m.cmsutil(&["-E", "-r", ENC_NICK, "-i", "msg.txt", "-o", "nss-enc.p7m"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(m.decrypt("nss-enc.p7m").0.ends_with(BODY));
    // NSS signs, then encrypts the signed message: both layers unwrap.
    let o = m.cmsutil(&[
        "-E",
        "-r",
        ENC_NICK,
        "-i",
        "nss-signed.p7m",
        "-o",
        "nss-signenc.p7m",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (clear, said) = m.decrypt("nss-signenc.p7m");
    assert!(
        clear.ends_with(BODY) && said.contains("good signature by"),
        "{clear}{said}"
    );
    assert_eq!(
        m.verify("nss-signenc.p7m").0.trim(),
        ADDR,
        "verify decrypts on the way"
    );

    // OpenSSL: multipart/signed (S/MIME), streamed BER, PEM.
    m.openssl(&[
        "smime",
        "-sign",
        "-in",
        "msg.txt",
        "-signer",
        "sign.pem",
        "-inkey",
        "ec.pem",
        "-out",
        "ossl-signed.eml",
    ]);
    let (who, content, _) = m.verify("ossl-signed.eml");
    assert_eq!(
        (who.trim(), content.as_str()),
        (
            ADDR,
            format!("Content-Type: text/plain\r\n\r\n{BODY}").as_str()
        )
    );
    m.openssl(&[
        "cms",
        "-sign",
        "-stream",
        "-nodetach",
        "-binary",
        "-outform",
        "DER",
        "-in",
        "msg.txt",
        "-signer",
        "sign.pem",
        "-inkey",
        "ec.pem",
        "-out",
        "ossl-stream.der",
    ]);
    assert_eq!(
        std::fs::read(m.p("ossl-stream.der")).expect("der")[1],
        0x80,
        "BER"
    );
    assert_eq!(m.verify("ossl-stream.der").0.trim(), ADDR);
    m.openssl(&[
        "cms",
        "-sign",
        "-nodetach",
        "-binary",
        "-outform",
        "PEM",
        "-in",
        "msg.txt",
        "-signer",
        "sign.pem",
        "-inkey",
        "ec.pem",
        "-out",
        "ossl-signed.pem",
    ]);
    assert_eq!(m.verify("ossl-signed.pem").0.trim(), ADDR);
    // OpenSSL encrypts: AES-256-GCM (AuthEnvelopedData) and RSA-OAEP key transport.
    m.openssl(&[
        "cms",
        "-encrypt",
        "-aes-256-gcm",
        "-in",
        "msg.txt",
        "-out",
        "ossl-gcm.eml",
        "enc.pem",
    ]);
    assert!(m.decrypt("ossl-gcm.eml").0.ends_with(BODY));
    m.openssl(&[
        "cms",
        "-encrypt",
        "-aes-256-cbc",
        "-recip",
        "enc.pem",
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-in",
        "msg.txt",
        "-out",
        "ossl-oaep.eml",
    ]);
    assert!(m.decrypt("ossl-oaep.eml").0.ends_with(BODY));
    m.openssl(&[
        "cms",
        "-encrypt",
        "-aes-128-cbc",
        "-recip",
        "enc.pem",
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-in",
        "msg.txt",
        "-outform",
        "PEM",
        "-out",
        "ossl-oaep256.pem",
    ]);
    assert!(m.decrypt("ossl-oaep256.pem").0.ends_with(BODY));
    // OpenSSL signs, then encrypts the signed message.
    m.openssl(&[
        "smime",
        "-encrypt",
        "-aes256",
        "-in",
        "ossl-signed.eml",
        "-out",
        "ossl-signenc.eml",
        "enc.pem",
    ]);
    let (clear, said) = m.decrypt("ossl-signenc.eml");
    assert!(
        clear.ends_with(BODY) && said.contains("good signature by"),
        "{clear}{said}"
    );
    // Encrypted, then signed: the signature is checked, then the content decrypts.
    m.openssl(&[
        "smime",
        "-sign",
        "-in",
        "ossl-gcm.eml",
        "-signer",
        "sign.pem",
        "-inkey",
        "ec.pem",
        "-out",
        "ossl-encsign.eml",
    ]);
    let (clear, said) = m.decrypt("ossl-encsign.eml");
    assert!(
        clear.ends_with(BODY) && said.contains("good signature by"),
        "{clear}{said}"
    );
}

#[test]
fn mail_mesh_writes_verifies_and_decrypts_in_openssl_and_nss() {
    let Some(m) = Mail::new("mail-out") else {
        return;
    };
    std::fs::write(
        m.p("mail.eml"),
        format!(
            "From: {ADDR}\nTo: bob@example.com\nSubject: quarterly\nContent-Type: text/plain\n\n{}",
            BODY.replace("\r\n", "\n")
        ),
    )
    .expect("mail");
    let mesh = |args: &[&str]| m.a.ok(args);
    mesh(&[
        "smime",
        "sign",
        "--input",
        &m.ps("mail.eml"),
        "--output",
        &m.ps("signed.eml"),
    ]);
    mesh(&[
        "smime",
        "sign",
        "--opaque",
        "--input",
        &m.ps("mail.eml"),
        "--output",
        &m.ps("opaque.eml"),
    ]);
    mesh(&[
        "smime",
        "encrypt",
        "--input",
        &m.ps("mail.eml"),
        "--output",
        &m.ps("enc.eml"),
    ]);
    mesh(&[
        "smime",
        "encrypt",
        "--gcm",
        "--input",
        &m.ps("mail.eml"),
        "--output",
        &m.ps("gcm.eml"),
    ]);
    let signed = std::fs::read_to_string(m.p("signed.eml")).expect("signed");
    assert!(
        signed.starts_with(&format!("From: {ADDR}\r\nTo: bob@example.com\r\nSubject: quarterly\r\nMIME-Version: 1.0\r\n"))
            && signed.contains("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;"),
        "{signed}"
    );
    assert!(std::fs::read_to_string(m.p("opaque.eml"))
        .expect("o")
        .contains("smime-type=signed-data"));
    assert!(std::fs::read_to_string(m.p("enc.eml"))
        .expect("e")
        .contains("smime-type=enveloped-data"));
    assert!(std::fs::read_to_string(m.p("gcm.eml"))
        .expect("g")
        .contains("smime-type=authEnveloped-data"));

    // OpenSSL verifies both signed forms and decrypts both encrypted ones.
    for f in ["signed.eml", "opaque.eml"] {
        for tool in ["smime", "cms"] {
            let out = m.openssl(&[tool, "-verify", "-CAfile", "ca.pem", "-in", f]);
            assert!(
                out.contains("Verification successful") && out.contains("second line"),
                "{tool} {f}: {out}"
            );
        }
    }
    let out = m.openssl(&[
        "smime", "-decrypt", "-in", "enc.eml", "-recip", "enc.pem", "-inkey", "rsa.pem",
    ]);
    assert!(out.contains("second line"), "{out}");
    let out = m.openssl(&[
        "cms", "-decrypt", "-in", "gcm.eml", "-recip", "enc.pem", "-inkey", "rsa.pem",
    ]);
    assert!(out.contains("second line"), "{out}");
    let info = m.openssl(&["cms", "-cmsout", "-print", "-in", "enc.eml"]);
    assert!(
        info.contains("aes-256-cbc") && info.contains("rsaEncryption"),
        "{info}"
    );

    // NSS, against the database `mesh smime install` filled.
    let (content, sig) = signed_parts(&m.p("signed.eml"));
    std::fs::write(m.p("signed.content"), &content).expect("c");
    std::fs::write(m.p("signed.p7s"), &sig).expect("s");
    let o = m.cmsutil(&[
        "-D",
        "-i",
        "signed.p7s",
        "-c",
        "signed.content",
        "-h",
        "2",
        "-n",
    ]);
    assert!(
        text(&o).contains("signer0.status=GoodSignature"),
        "{}",
        text(&o)
    );
    for (f, der) in [
        ("opaque.eml", "opaque.p7m"),
        ("enc.eml", "enc.p7m"),
        ("gcm.eml", "gcm.p7m"),
    ] {
        std::fs::write(m.p(der), mime_body(&m.p(f))).expect("der");
    }
    let o = m.cmsutil(&["-D", "-i", "opaque.p7m", "-h", "2"]);
    assert!(
        text(&o).contains("signer0.status=GoodSignature") && text(&o).contains("second line"),
        "{}",
        text(&o)
    );
    let o = m.cmsutil(&["-D", "-p", "", "-i", "enc.p7m"]);
    assert!(
        o.status.success() && text(&o).contains("second line"),
        "{}",
        text(&o)
    );
    // NSS 3.87 (Debian 12) has no AuthEnvelopedData: it refuses OpenSSL's
    // AES-GCM mail just as it refuses ours.
    m.openssl(&[
        "cms",
        "-encrypt",
        "-aes-256-gcm",
        "-binary",
        "-outform",
        "DER",
        "-in",
        "msg.txt",
        "-out",
        "ossl-gcm.p7m",
        "enc.pem",
    ]);
    for f in ["gcm.p7m", "ossl-gcm.p7m"] {
        let o = m.cmsutil(&["-D", "-p", "", "-i", f]);
        assert!(
            o.status.success() && text(&o).contains("second line")
                || text(&o).contains("SEC_ERROR_UNRECOGNIZED_OID"),
            "{f}: {}",
            text(&o)
        );
    }

    // And mesh reads its own: sign then encrypt, layer by layer.
    mesh(&[
        "smime",
        "encrypt",
        "--input",
        &m.ps("signed.eml"),
        "--output",
        &m.ps("signenc.eml"),
    ]);
    let (clear, said) = m.decrypt("signenc.eml");
    assert!(
        clear.ends_with(BODY) && said.contains("good signature by"),
        "{clear}{said}"
    );
    m.openssl(&[
        "smime",
        "-decrypt",
        "-in",
        "signenc.eml",
        "-recip",
        "enc.pem",
        "-inkey",
        "rsa.pem",
        "-out",
        "inner.eml",
    ]);
    let out = m.openssl(&["smime", "-verify", "-CAfile", "ca.pem", "-in", "inner.eml"]);
    assert!(out.contains("Verification successful"), "{out}");
    for f in ["signed.eml", "opaque.eml"] {
        assert_eq!(m.verify(f).0.trim(), ADDR);
    }
    // The bare forms are still there.
    mesh(&[
        "smime",
        "sign",
        "--der",
        "--input",
        &m.ps("msg.txt"),
        "--output",
        &m.ps("bare.der"),
    ]);
    let out = m.openssl(&[
        "cms", "-verify", "-inform", "DER", "-CAfile", "ca.pem", "-in", "bare.der",
    ]);
    assert!(out.contains("CMS Verification successful"), "{out}");
}

#[test]
fn mail_install_trusts_the_ca_for_email_and_exports_each_certificate_once() {
    let Some(m) = Mail::new("mail-install") else {
        return;
    };
    let l = run(Command::new("certutil").args(["-L", "-d", &m.nss]));
    let ca = l
        .lines()
        .find(|l| l.starts_with("Mesh personal CA"))
        .expect("the CA");
    assert_eq!(ca.split_whitespace().last(), Some(",C,"), "{l}");
    let certs = m.openssl(&["pkcs12", "-nokeys", "-passin", "pass:pw", "-in", "a.p12"]);
    let blocks: Vec<&str> = certs.split("-----BEGIN CERTIFICATE-----").skip(1).collect();
    let mut unique = blocks.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(blocks.len(), 3, "signing, encryption, CA: {certs}");
    assert_eq!(unique.len(), blocks.len(), "a certificate twice: {certs}");
}

#[test]
fn mail_install_says_what_it_does_only_when_it_is_slow() {
    let Some(m) = Mail::new("mail-slow") else {
        return;
    };
    let quick = m.a.run(&["smime", "install", "--nssdb", &m.ps("quick")]);
    assert!(quick.status.success(), "{}", text(&quick));
    assert!(!text(&quick).contains("importing into"), "{}", text(&quick));
    // A certutil that takes 1.5 s, first on PATH.
    let bin = m.p("slowbin");
    std::fs::create_dir_all(&bin).expect("bin");
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v certutil"])
            .output()
            .expect("sh")
            .stdout,
    )
    .expect("utf8");
    let shim = bin.join("certutil");
    std::fs::write(
        &shim,
        format!("#!/bin/sh\nsleep 1.5\nexec {} \"$@\"\n", real.trim()),
    )
    .expect("shim");
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let slow =
        m.a.command(&["smime", "install", "--nssdb", &m.ps("slow")])
            .env("PATH", path)
            .output()
            .expect("install");
    assert!(slow.status.success(), "{}", text(&slow));
    let err = String::from_utf8_lossy(&slow.stderr);
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.starts_with("mesh: importing into the NSS database")),
        "{err}"
    );
}
