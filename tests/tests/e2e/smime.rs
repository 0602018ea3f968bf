//! S/MIME (first part of its issue): the account's CA and per-device
//! signing certificates, checked by OpenSSL and NSS.

use std::process::Command;

use mesh_tests::{require_tool, Device, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run");
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn ca_and_device_signing_certificates_validate_in_openssl_and_nss() {
    if !require_tool("openssl") || !require_tool("certutil") {
        return;
    }
    let dir = Scratch::new("smime");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    a.create(ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    // A device without the smime role gets no certificate.
    let c = Device::new(&dir.0, "c");
    let w = c.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "server",
    ]);
    a.ok(&["device", "accept", w.trim(), "--roles", "ssh"]);
    c.ok(&["sync"]);
    assert!(c.fails(&["smime", "cert"]).contains("smime role"));

    let ca = dir.path("ca.pem");
    std::fs::write(&ca, b.ok(&["smime", "ca"])).expect("ca");
    assert_eq!(
        a.ok(&["smime", "ca"]),
        b.ok(&["smime", "ca"]),
        "one CA for the account"
    );
    let (ca_s, a_s, b_s) = (
        ca.to_str().expect("p"),
        dir.path("a.pem"),
        dir.path("b.pem"),
    );
    std::fs::write(&a_s, a.ok(&["smime", "cert"])).expect("a");
    std::fs::write(&b_s, b.ok(&["smime", "cert"])).expect("b");
    let out = run(Command::new("openssl")
        .args(["verify", "-purpose", "smimesign", "-CAfile", ca_s])
        .arg(&a_s)
        .arg(&b_s));
    assert!(
        out.contains(&format!("{}: OK", a_s.display()))
            && out.contains(&format!("{}: OK", b_s.display())),
        "{out}"
    );
    let text = run(Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "extendedKeyUsage,subjectAltName,keyUsage",
            "-in",
        ])
        .arg(&b_s));
    assert!(
        text.contains("E-mail Protection")
            && text.contains("email:alice@example.com")
            && text.contains("Digital Signature"),
        "{text}"
    );
    assert_ne!(
        std::fs::read(&a_s).expect("a"),
        std::fs::read(&b_s).expect("b"),
        "per-device certificates"
    );

    // NSS, as Thunderbird keeps it: the CA trusted for e-mail, the device certificate valid for signing.
    let db = dir.path("nssdb");
    std::fs::create_dir_all(&db).expect("db");
    let sql = format!("sql:{}", db.display());
    run(Command::new("certutil").args(["-N", "-d", &sql, "--empty-password"]));
    run(Command::new("certutil").args([
        "-A", "-d", &sql, "-n", "mesh-ca", "-t", "C,C,C", "-a", "-i", ca_s,
    ]));
    run(Command::new("certutil")
        .args(["-A", "-d", &sql, "-n", "phone", "-t", ",,", "-a", "-i"])
        .arg(&b_s));
    let v = run(Command::new("certutil").args(["-V", "-d", &sql, "-n", "phone", "-u", "S"]));
    assert!(v.contains("certificate is valid"), "{v}");
}

#[test]
fn shared_encryption_certificate_pkcs12_exports_and_rotation_on_revoke() {
    if !require_tool("openssl") || !require_tool("pk12util") || !require_tool("certutil") {
        return;
    }
    let dir = Scratch::new("p12");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    let ca = dir.path("ca.pem");
    std::fs::write(&ca, a.ok(&["smime", "ca"])).expect("ca");
    let enc = dir.path("enc.pem");
    std::fs::write(&enc, b.ok(&["smime", "cert", "--encryption"])).expect("enc");
    assert_eq!(
        a.ok(&["smime", "cert", "--encryption"]),
        b.ok(&["smime", "cert", "--encryption"]),
        "one encryption certificate"
    );
    let out = run(Command::new("openssl")
        .args(["verify", "-purpose", "smimeencrypt", "-CAfile"])
        .arg(&ca)
        .arg(&enc));
    assert!(out.contains(": OK"), "{out}");
    let text = run(Command::new("openssl")
        .args(["x509", "-noout", "-ext", "keyUsage", "-in"])
        .arg(&enc));
    assert!(text.contains("Key Encipherment"), "{text}");

    let pw = dir.path("pw");
    std::fs::write(&pw, "correct horse\n").expect("pw");
    let pw_s = pw.to_str().expect("p");
    let (modern, legacy) = (dir.path("b.p12"), dir.path("b-legacy.p12"));
    b.ok(&[
        "smime",
        "export",
        "--output",
        modern.to_str().expect("p"),
        "--password-file",
        pw_s,
    ]);
    b.ok(&[
        "smime",
        "export",
        "--output",
        legacy.to_str().expect("p"),
        "--password-file",
        pw_s,
        "--profile",
        "legacy",
    ]);
    let info = run(Command::new("openssl")
        .args([
            "pkcs12",
            "-info",
            "-noout",
            "-passin",
            &format!("file:{pw_s}"),
            "-in",
        ])
        .arg(&modern));
    assert!(
        info.contains("MAC: sha256") && info.contains("PBES2, PBKDF2, AES-256-CBC"),
        "{info}"
    );
    let info = run(Command::new("openssl")
        .args([
            "pkcs12",
            "-legacy",
            "-info",
            "-noout",
            "-passin",
            &format!("file:{pw_s}"),
            "-in",
        ])
        .arg(&legacy));
    assert!(
        info.contains("MAC: sha1") && info.contains("pbeWithSHA1And3-KeyTripleDES-CBC"),
        "{info}"
    );
    let keys = run(Command::new("openssl")
        .args([
            "pkcs12",
            "-nocerts",
            "-nodes",
            "-passin",
            &format!("file:{pw_s}"),
            "-in",
        ])
        .arg(&modern));
    assert_eq!(
        keys.matches("BEGIN PRIVATE KEY").count(),
        2,
        "signing and encryption keys"
    );
    // NSS imports both profiles, as Thunderbird does.
    for (i, f) in [&modern, &legacy].into_iter().enumerate() {
        let db = dir.path(&format!("nss{i}"));
        std::fs::create_dir_all(&db).expect("db");
        let sql = format!("sql:{}", db.display());
        run(Command::new("certutil").args(["-N", "-d", &sql, "--empty-password"]));
        run(Command::new("certutil")
            .args(["-A", "-d", &sql, "-n", "mesh-ca", "-t", "C,C,C", "-a", "-i"])
            .arg(&ca));
        let o = run(Command::new("pk12util")
            .args(["-d", &sql, "-W", "correct horse", "-K", "", "-i"])
            .arg(f));
        assert!(o.contains("PKCS12 IMPORT SUCCESSFUL"), "{o}");
        let l = run(Command::new("certutil").args(["-L", "-d", &sql]));
        // p12-keystore names certificate bags by subject: NSS shows these
        // nicknames (`mesh smime install` renames them).
        assert!(
            l.contains("CN=alice@example.com (encryption epoch 0)")
                && l.contains("CN=alice@example.com (phone)"),
            "{l}"
        );
    }
    // `mesh smime install` does the same into a Thunderbird-style database.
    let tb = dir.path("thunderbird");
    b.ok(&["smime", "install", "--nssdb", tb.to_str().expect("p")]);
    let sql = format!("sql:{}", tb.display());
    let l = run(Command::new("certutil").args(["-L", "-d", &sql]));
    assert!(
        l.contains("Mesh personal CA")
            && l.contains(" ,C, ")
            && l.contains("alice@example.com (encryption epoch 0)")
            && l.contains("alice@example.com (signing)"),
        "{l}"
    );
    let keys = run(Command::new("certutil").args(["-K", "-d", &sql]));
    assert_eq!(
        keys.lines().filter(|l| l.starts_with('<')).count(),
        2,
        "{keys}"
    );
    assert!(
        !b.home.join(".smime-install.p12").exists(),
        "no PKCS#12 left behind"
    );
    // No empty passwords, no unknown profiles.
    std::fs::write(&pw, "\n").expect("pw");
    let e = b.fails(&[
        "smime",
        "export",
        "--output",
        dir.path("x.p12").to_str().expect("p"),
        "--password-file",
        pw_s,
    ]);
    assert!(e.contains("empty password") && e.contains("hint:"), "{e}");
    assert!(!dir.path("x.p12").exists(), "nothing half-written");
    std::fs::write(&pw, "x\n").expect("pw");
    let e = b.fails(&[
        "smime",
        "export",
        "--output",
        dir.path("x.p12").to_str().expect("p"),
        "--password-file",
        pw_s,
        "--profile",
        "rc2",
    ]);
    assert!(
        e.contains("invalid value 'rc2'") && e.contains("hint: possible values: modern, legacy"),
        "{e}"
    );

    // Revoking the phone rotates the shared encryption certificate and puts
    // its signing certificate in the CRL.
    let phone_cert = dir.path("phone.pem");
    std::fs::write(&phone_cert, b.ok(&["smime", "cert"])).expect("phone");
    let laptop_cert = dir.path("laptop.pem");
    std::fs::write(&laptop_cert, a.ok(&["smime", "cert"])).expect("laptop");
    a.ok(&["device", "revoke", "phone"]);
    let crl = dir.path("crl.pem");
    a.ok(&["smime", "crl", "--output", crl.to_str().expect("p")]);
    let check = |cert: &std::path::Path| {
        Command::new("openssl")
            .args(["verify", "-crl_check", "-CRLfile"])
            .arg(&crl)
            .arg("-CAfile")
            .arg(&ca)
            .arg(cert)
            .output()
            .expect("openssl")
    };
    let o = check(&phone_cert);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !o.status.success() && text.contains("certificate revoked"),
        "{text}"
    );
    let o = check(&laptop_cert);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = check(&enc);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !o.status.success() && text.contains("certificate revoked"),
        "old encryption certificate: {text}"
    );
    let new_enc = a.ok(&["smime", "cert", "--encryption"]);
    assert_ne!(new_enc, std::fs::read_to_string(&enc).expect("old"));
    let new_path = dir.path("enc2.pem");
    std::fs::write(&new_path, &new_enc).expect("new");
    let out = run(Command::new("openssl")
        .args(["verify", "-purpose", "smimeencrypt", "-CAfile"])
        .arg(&ca)
        .arg(&new_path));
    assert!(out.contains(": OK"), "{out}");
    // Mail to the old certificate still decrypts on the remaining device; new mail goes to the new key.
    std::fs::write(dir.path("m"), "old mail\n").expect("m");
    run(Command::new("openssl")
        .args([
            "cms",
            "-encrypt",
            "-aes-256-cbc",
            "-binary",
            "-outform",
            "DER",
            "-in",
        ])
        .arg(dir.path("m"))
        .arg("-out")
        .arg(dir.path("old.der"))
        .arg(&enc));
    assert_eq!(
        a.ok(&[
            "smime",
            "decrypt",
            "--input",
            dir.path("old.der").to_str().expect("p")
        ]),
        "old mail\n"
    );
    let new_mail = a.ok(&[
        "smime",
        "encrypt",
        "--der",
        "--input",
        dir.path("m").to_str().expect("p"),
        "--output",
        dir.path("new.der").to_str().expect("p"),
    ]);
    let _ = new_mail;
    assert_eq!(
        a.ok(&[
            "smime",
            "decrypt",
            "--input",
            dir.path("new.der").to_str().expect("p")
        ]),
        "old mail\n"
    );
    // The remaining device exports the new key.
    a.ok(&[
        "smime",
        "export",
        "--output",
        dir.path("a.p12").to_str().expect("p"),
        "--password-file",
        pw_s,
    ]);
}

#[test]
fn cms_sign_verify_encrypt_decrypt_with_openssl_and_nss() {
    if !require_tool("openssl") || !require_tool("cmsutil") || !require_tool("pk12util") {
        return;
    }
    let dir = Scratch::new("cms");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    let p = |n: &str| dir.path(n);
    let s = |x: &std::path::Path| x.to_str().expect("path").to_string();
    std::fs::write(p("ca.pem"), a.ok(&["smime", "ca"])).expect("ca");
    std::fs::write(p("enc.pem"), a.ok(&["smime", "cert", "--encryption"])).expect("enc");
    std::fs::write(p("b.pem"), b.ok(&["smime", "cert"])).expect("b");
    std::fs::write(p("msg"), "a message for every device\n").expect("msg");
    std::fs::write(p("pw"), "pw\n").expect("pw");
    b.ok(&[
        "smime",
        "export",
        "--output",
        &s(&p("b.p12")),
        "--password-file",
        &s(&p("pw")),
    ]);
    // The exported keys as PEM, one file per key type.
    let keys = run(Command::new("openssl")
        .args([
            "pkcs12",
            "-nocerts",
            "-nodes",
            "-passin",
            &format!("file:{}", s(&p("pw"))),
            "-in",
        ])
        .arg(p("b.p12")));
    let blocks: Vec<String> = keys
        .split("-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .map(|b| {
            format!(
                "-----BEGIN PRIVATE KEY-----{}",
                b.split("-----END PRIVATE KEY-----").next().unwrap_or("")
            ) + "-----END PRIVATE KEY-----\n"
        })
        .collect();
    assert_eq!(blocks.len(), 2);
    for (i, k) in blocks.iter().enumerate() {
        std::fs::write(p(&format!("k{i}.pem")), k).expect("key");
    }
    let is_rsa = |i: usize| {
        run(Command::new("openssl")
            .args(["pkey", "-noout", "-text", "-in"])
            .arg(p(&format!("k{i}.pem"))))
        .contains("2048 bit")
    };
    let (rsa_key, ec_key) = if is_rsa(0) {
        (p("k0.pem"), p("k1.pem"))
    } else {
        (p("k1.pem"), p("k0.pem"))
    };

    // mesh signs; OpenSSL verifies.
    b.ok(&[
        "smime",
        "sign",
        "--der",
        "--input",
        &s(&p("msg")),
        "--output",
        &s(&p("signed.der")),
    ]);
    let out = run(Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-CAfile",
            &s(&p("ca.pem")),
            "-in",
        ])
        .arg(p("signed.der")));
    assert!(
        out.contains("CMS Verification successful") && out.contains("a message for every device"),
        "{out}"
    );
    // OpenSSL signs with the exported key; mesh verifies (on the other device).
    run(Command::new("openssl")
        .args([
            "cms",
            "-sign",
            "-nodetach",
            "-outform",
            "DER",
            "-md",
            "sha256",
            "-signer",
            &s(&p("b.pem")),
            "-inkey",
            &s(&ec_key),
            "-in",
            &s(&p("msg")),
            "-out",
        ])
        .arg(p("osigned.der")));
    let o = a
        .command(&[
            "smime",
            "verify",
            "--input",
            &s(&p("osigned.der")),
            "--output",
            &s(&p("osigned.out")),
        ])
        .output()
        .expect("verify");
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout) == "alice@example.com\n");
    assert_eq!(
        std::fs::read_to_string(p("osigned.out")).expect("content"),
        "a message for every device\r\n",
        "OpenSSL signs text in canonical form"
    );
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("good signature by CN=alice@example.com (phone)"));
    // A modified message is refused.
    let mut bad = std::fs::read(p("signed.der")).expect("signed");
    let i = bad
        .windows(9)
        .position(|w| w == b"a message")
        .expect("content");
    bad[i] ^= 1;
    std::fs::write(p("bad.der"), bad).expect("bad");
    assert!(a
        .fails(&["smime", "verify", "--input", &s(&p("bad.der"))])
        .contains("does not match its digest"));

    // OpenSSL encrypts to the account; both devices decrypt.
    run(Command::new("openssl")
        .args([
            "cms",
            "-encrypt",
            "-aes-256-cbc",
            "-binary",
            "-outform",
            "DER",
            "-in",
            &s(&p("msg")),
            "-out",
            &s(&p("enc.der")),
        ])
        .arg(p("enc.pem")));
    for d in [&a, &b] {
        assert_eq!(
            d.ok(&["smime", "decrypt", "--input", &s(&p("enc.der"))]),
            "a message for every device\n"
        );
    }
    // mesh encrypts; OpenSSL and NSS decrypt with the exported key.
    a.ok(&[
        "smime",
        "encrypt",
        "--der",
        "--input",
        &s(&p("msg")),
        "--output",
        &s(&p("menc.der")),
    ]);
    let out = run(Command::new("openssl")
        .args([
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            &s(&p("menc.der")),
            "-recip",
            &s(&p("enc.pem")),
            "-inkey",
        ])
        .arg(&rsa_key));
    assert!(out.contains("a message for every device"), "{out}");

    let db = p("nss");
    b.ok(&["smime", "install", "--nssdb", &s(&db)]);
    let sql = format!("sql:{}", db.display());
    let out = run(Command::new("cmsutil")
        .args(["-D", "-d", &sql, "-p", "", "-i"])
        .arg(p("menc.der")));
    assert!(out.contains("a message for every device"), "{out}");
    let out = run(Command::new("cmsutil")
        .args(["-D", "-d", &sql, "-h", "2", "-n", "-i"])
        .arg(p("signed.der")));
    assert!(out.contains("signer0.status=GoodSignature"), "{out}");
}

#[test]
fn an_organisations_ca_can_issue_the_signing_certificate() {
    if !require_tool("openssl") {
        return;
    }
    let dir = Scratch::new("csr");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    a.create(ADDR, &portal.url);
    let p = |n: &str| dir.path(n);
    let s = |x: &std::path::Path| x.to_str().expect("path").to_string();
    std::fs::write(p("req.csr"), a.ok(&["smime", "csr"])).expect("csr");
    let text = run(Command::new("openssl")
        .args(["req", "-noout", "-verify", "-text", "-in"])
        .arg(p("req.csr")));
    assert!(
        text.contains("alice@example.com (laptop)") && text.contains("email:alice@example.com"),
        "{text}"
    );
    // An organisation's CA issues the certificate.
    run(Command::new("openssl").args([
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
        "/O=Example Corp/CN=Example Corp CA",
        "-keyout",
        &s(&p("org.key")),
        "-out",
        &s(&p("org.pem")),
    ]));
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &s(&p("req.csr")),
        "-CA",
        &s(&p("org.pem")),
        "-CAkey",
        &s(&p("org.key")),
        "-CAcreateserial",
        "-days",
        "1",
        "-copy_extensions",
        "copy",
        "-out",
        &s(&p("issued.pem")),
    ]));
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(p("issued.pem")).expect("issued"),
        std::fs::read_to_string(p("org.pem")).expect("org")
    );
    std::fs::write(p("bundle.pem"), bundle).expect("bundle");
    // A certificate for another key is refused.
    let e = a.fails(&["smime", "import-cert", &s(&p("org.pem"))]);
    assert!(e.contains("not for this device's signing key"), "{e}");
    a.ok(&["smime", "import-cert", &s(&p("bundle.pem"))]);
    assert!(a.ok(&["smime", "cert"]).contains(
        &std::fs::read_to_string(p("issued.pem"))
            .expect("issued")
            .lines()
            .nth(1)
            .expect("line")
            .to_string()
    ));
    // Messages it signs verify under the organisation's CA.
    std::fs::write(p("msg"), "signed under Example Corp\n").expect("msg");
    a.ok(&[
        "smime",
        "sign",
        "--der",
        "--input",
        &s(&p("msg")),
        "--output",
        &s(&p("signed.der")),
    ]);
    let out = run(Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-CAfile",
            &s(&p("org.pem")),
            "-in",
        ])
        .arg(p("signed.der")));
    assert!(out.contains("CMS Verification successful"), "{out}");
}
