//! Mail signed before an administrator was revoked (issue 22.6): the
//! signer's certificate chains to the account's CA of the earlier epoch,
//! which the account keeps as retired; `verify` accepts it and names that
//! CA. `verify --ca` works on a machine with no account. A CA that was
//! never the account's is still refused.

use std::process::Command;

use mesh_tests::{require_tool, workspace_bin, Device};

use super::{account, s, ADDR};

#[test]
fn mail_signed_before_an_administrator_revocation_verifies_under_the_retired_ca() {
    if !require_tool("openssl") {
        return;
    }
    let acc = account("retired-ca", true);
    let p = |n: &str| acc.dir.path(n);
    std::fs::write(p("msg.txt"), "Content-Type: text/plain\r\n\r\nbefore\r\n").expect("msg");
    // The phone (a member) signs; the CA of epoch 0 is saved as a mail
    // client would have it.
    acc.c.ok(&[
        "smime",
        "sign",
        "--input",
        s(&p("msg.txt")),
        "--output",
        s(&p("old.eml")),
    ]);
    let old_ca = acc.c.ok(&["smime", "ca"]);
    std::fs::write(p("ca0.pem"), &old_ca).expect("ca0");

    // An administrator revoked: epoch 1, a new CA; the phone syncs.
    acc.a.ok(&["device", "revoke", "desktop"]);
    acc.c.ok(&["sync"]);
    assert_ne!(acc.c.ok(&["smime", "ca"]), old_ca, "a new CA");

    for d in [&acc.c, &acc.a] {
        let o = d.run(&["smime", "verify", "--input", s(&p("old.eml"))]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), ADDR);
        assert!(
            err.contains("signed under the account's CA of epoch 0 (retired 20"),
            "{err}"
        );
        let j = d.json(&["smime", "verify", "--input", s(&p("old.eml"))]);
        let retired = j["signers"][0]["retired_ca"].as_str().unwrap_or_default();
        assert!(retired.starts_with("the account's CA of epoch 0"), "{j}");
    }
    // Mail signed now is under the current CA, and says nothing more.
    acc.c.ok(&[
        "smime",
        "sign",
        "--input",
        s(&p("msg.txt")),
        "--output",
        s(&p("new.eml")),
    ]);
    let o = acc.c.run(&["smime", "verify", "--input", s(&p("new.eml"))]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("retired"), "{err}");

    // A CA that was never the account's: still refused.
    std::fs::write(p("other.txt"), "Content-Type: text/plain\r\n\r\nother\r\n").expect("other");
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .current_dir(&acc.dir.0)
            .args(args)
            .output()
            .expect("openssl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&[
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
        "/CN=alice@example.com",
        "-addext",
        "subjectAltName=email:alice@example.com",
        "-keyout",
        "other.key",
        "-out",
        "other.pem",
    ]);
    run(&[
        "cms",
        "-sign",
        "-nodetach",
        "-binary",
        "-outform",
        "DER",
        "-in",
        "other.txt",
        "-signer",
        "other.pem",
        "-inkey",
        "other.key",
        "-out",
        "other.der",
    ]);
    let e = acc
        .c
        .fails(&["smime", "verify", "--input", s(&p("other.der"))]);
    assert!(
        e.contains("untrusted signer") && !e.contains("good signature"),
        "{e}"
    );
}

/// `verify --ca` on a machine with no Mesh account (before: "this device
/// is not connected to an account").
#[test]
fn smime_verify_with_ca_works_on_a_machine_with_no_account() {
    let dir = mesh_tests::Scratch::new("verify-no-account");
    let portal = mesh_tests::PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let p = |n: &str| dir.path(n);
    std::fs::write(p("msg.txt"), "Content-Type: text/plain\r\n\r\nhello\r\n").expect("msg");
    a.ok(&[
        "smime",
        "sign",
        "--input",
        s(&p("msg.txt")),
        "--output",
        s(&p("signed.eml")),
    ]);
    std::fs::write(p("ca.pem"), a.ok(&["smime", "ca"])).expect("ca");
    // A machine with no Mesh account: a fresh, empty MESH_HOME.
    let empty = p("empty-home");
    std::fs::create_dir_all(&empty).expect("empty");
    let stranger = |args: &[&str]| {
        Command::new(workspace_bin("mesh"))
            .args(args)
            .env("MESH_HOME", &empty)
            .env("MESH_KEYSTORE", "file")
            .output()
            .expect("mesh")
    };
    let o = stranger(&[
        "smime",
        "verify",
        "--ca",
        s(&p("ca.pem")),
        "--input",
        s(&p("signed.eml")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), ADDR);
    assert!(err.contains("good signature by"), "{err}");
    // Without --ca nothing there trusts the account's CA.
    let o = stranger(&["smime", "verify", "--input", s(&p("signed.eml"))]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("untrusted signer") && err.contains("hint:"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&empty).expect("dir").count(),
        0,
        "verify wrote into the empty home"
    );
    // A home that was never made (`--home` to nowhere) is the same.
    let nowhere = Device::new(&dir.0, "never-made");
    let out = nowhere.ok(&[
        "smime",
        "verify",
        "--ca",
        s(&p("ca.pem")),
        "--input",
        s(&p("signed.eml")),
    ]);
    assert_eq!(out.trim(), ADDR);
    assert!(!nowhere.home.exists());
}
