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
    a.ok(&["account", "create", ADDR, "--portal", &portal.url]);
    let b = Device::new(&dir.0, "b");
    let w = b.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "phone",
    ]);
    a.ok(&["device", "accept", w.trim()]);
    b.ok(&["sync"]);
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
