//! A rotation after an administrator epoch changed (an administrator
//! revoked, or the account recovered): the rotated device, which has not
//! seen the new epoch, learns its key from the public checkpoints and
//! switches to its new keys; the administrator's own command succeeds.
//! Then the rotated member works with real peers: it logs in through sshd
//! with its new certificate, signs with gpg, and decrypts S/MIME mail.

use std::process::Command;

use mesh_tests::{can_run_sshd, require_tool, Device, RunningAgent, Sshd};

use super::{account, ok, s, Account};

fn tools() -> bool {
    can_run_sshd() && ["gpg", "openssl"].iter().all(|t| require_tool(t))
}

/// Rotate the phone from `admin`; the phone's next sync takes the new
/// key, which servers then list instead of the old one.
fn rotation_takes(acc: &Account, admin: &Device) {
    let old = acc.c.ok(&["ssh", "public-key"]);
    admin.ok(&["device", "rotate", "phone"]);
    let r = acc.c.json(&["sync"]);
    assert_eq!(r["rotated"], true, "{r}");
    let new = acc.c.ok(&["ssh", "public-key"]);
    assert_ne!(old, new, "the phone kept its old key");
    let keys = Device::new(&acc.dir.0, "server").ok(&[
        "ssh",
        "authorized-keys",
        "--account",
        &acc.udf,
        "--portal",
        &acc.portal.url,
    ]);
    let body = |k: &str| k.split_whitespace().nth(1).expect("key").to_string();
    assert!(
        keys.contains(&body(&new)) && !keys.contains(&body(&old)),
        "{keys}"
    );
    acc.c.ok(&["sync"]);
    works_with_real_peers(acc);
}

/// The rotated phone: an sshd that trusts the account's current CA (from
/// the verified history) lets its new certificate in; gpg signs with its
/// subkey and a fresh home verifies it; mail openssl encrypts to the
/// account decrypts on it.
fn works_with_real_peers(acc: &Account) {
    let (dir, url, udf) = (&acc.dir, &acc.portal.url, &acc.udf);
    let ca = dir.path("rotated-ca.pub");
    acc.c.ok(&[
        "ssh",
        "ca",
        "--account",
        udf,
        "--portal",
        url,
        "--output",
        s(&ca),
    ]);
    let cert = dir.path("rotated-cert.pub");
    std::fs::write(&cert, acc.c.ok(&["ssh", "cert"])).expect("cert");
    let sshd = Sshd::start(
        &dir.path("rotated-sshd"),
        &[
            "AuthorizedKeysFile none".into(),
            format!("TrustedUserCAKeys {}", ca.display()),
        ],
    );
    let agent = RunningAgent::start(&acc.c);
    assert!(
        sshd.logs_in(&agent.sock, &cert),
        "ssh with the new certificate"
    );
    drop(agent);

    let g = crate::host::private_dir(&dir.0, "rotated-gnupg");
    let v = crate::host::private_dir(&dir.0, "rotated-verifier");
    acc.c.ok(&["pgp", "install", "--gnupghome", s(&g)]);
    let msg = dir.path("rotated-msg");
    std::fs::write(&msg, "signed after the rotation\n").expect("msg");
    let gpg = |home: &std::path::Path, args: &[&str]| {
        Command::new("gpg")
            .arg("--homedir")
            .arg(home)
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .expect("gpg")
    };
    let sig = dir.path("rotated-msg.sig");
    ok(
        gpg(&g, &["--detach-sign", "--output", s(&sig), s(&msg)]),
        "gpg sign",
    );
    let pubcert = dir.path("rotated-cert.asc");
    std::fs::write(&pubcert, acc.c.ok(&["pgp", "cert", "--armor"])).expect("pgp cert");
    ok(gpg(&v, &["--import", s(&pubcert)]), "gpg import");
    let o = gpg(&v, &["--status-fd", "1", "--verify", s(&sig), s(&msg)]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("GOODSIG"),
        "gpg verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for h in [&g, &v] {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(h)
            .args(["--kill", "all"])
            .output();
    }

    let enc = dir.path("rotated-enc.pem");
    std::fs::write(&enc, acc.c.ok(&["smime", "cert", "--encryption"])).expect("enc");
    let mail = dir.path("rotated-mail");
    std::fs::write(&mail, "encrypted after the rotation\n").expect("mail");
    let der = dir.path("rotated-mail.der");
    ok(
        Command::new("openssl")
            .args([
                "cms",
                "-encrypt",
                "-aes-256-cbc",
                "-binary",
                "-outform",
                "DER",
                "-in",
            ])
            .arg(&mail)
            .arg("-out")
            .arg(&der)
            .arg(&enc)
            .output()
            .expect("openssl"),
        "openssl encrypt",
    );
    assert_eq!(
        acc.c.ok(&["smime", "decrypt", "--input", s(&der)]),
        "encrypted after the rotation\n"
    );
}

#[test]
fn a_rotation_after_an_administrator_revocation_takes() {
    if !tools() {
        return;
    }
    let acc = account("rotate-after-revoke", true);
    acc.a.ok(&["device", "revoke", "desktop"]);
    rotation_takes(&acc, &acc.a);
}

#[test]
fn a_rotation_after_a_recovery_takes() {
    if !tools() {
        return;
    }
    let acc = account("rotate-after-recovery", false);
    let owner = Device::new(&acc.dir.0, "owner");
    super::recover_revoking_laptop(&acc, &owner);
    rotation_takes(&acc, &owner);
}
