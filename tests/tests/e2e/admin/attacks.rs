//! The attacks of a thief with a copy of a revoked administrator's home:
//! through the CLI, with the key material against the portal, against sshd,
//! on mail, and as a would-be issuer of S/MIME and OpenPGP material.

use std::path::Path;
use std::process::Command;

use mesh_account::store::Store;
use mesh_core::objects::AccountKeys;
use mesh_tests::{Device, Sshd};

use super::{copy_home, ok, online_keys, s, view, Account, ADDR, MAIL};

/// Each write a thief tries with its own fresh copy of the stolen home (the
/// first refusal would wipe a copy): all refused.
pub(super) fn cli_writes_refused(acc: &Account, stolen: &Device, victim: &str) {
    let d = Device::new(&acc.dir.0, "newcomer");
    let w = d.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &acc.portal.url,
        "--name",
        "tablet",
    ]);
    let attempts: [&[&str]; 4] = [
        &["device", "pin"],
        &["device", "revoke", victim],
        &["device", "accept", w.trim()],
        &["ssh", "principals", "evil"],
    ];
    for (i, args) in attempts.iter().enumerate() {
        let t = copy_home(stolen, &acc.dir.path(&format!("attempt-{i}")));
        let o = t.run(args);
        assert!(!o.status.success(), "the stolen copy ran {args:?}");
    }
}

/// The portal, written to with the copied key material directly: a
/// transaction whose checkpoint and access list the old epoch's key signs
/// (from the stolen device, and from a new device through the recovery
/// path), and the recovery read signed with it. All refused. And an
/// administrator's transaction that starts an epoch without an access list.
pub(super) fn raw_portal_writes_refused(
    acc: &Account,
    stolen: &Device,
    old: &AccountKeys,
    admin: &Device,
) {
    use mesh_account::client::{sign_request, Client};
    use mesh_core::envelope::Signed;
    use mesh_core::portal::{self as p, store as st, AccessList, DeviceState, StoreUpdate};
    std::env::set_var("MESH_KEYSTORE", "file");
    let client = Client::new(&acc.portal.url).expect("client");
    let c_state = mesh_account::account(&Store::open(&acc.c.home, false).expect("c")).expect("c");
    let mut list: AccessList = c_state
        .access
        .as_ref()
        .expect("list")
        .unverified_object("list")
        .expect("list");
    list.serial += 1;
    for d in list.devices.iter_mut() {
        d.state = if d.name == "laptop" {
            DeviceState::Revoked
        } else {
            DeviceState::Active
        };
    }
    let forged = Signed::sign_object(p::ct::ACCESS_LIST, &list, &old.admin_sign);
    let access = StoreUpdate {
        store: st::ACCESS.into(),
        expected: c_state.history.position(st::ACCESS).index,
        delta: None,
        envelopes: vec![forged],
    };
    let cp = c_state.history.next(
        &acc.udf,
        std::slice::from_ref(&access),
        mesh_plugins::now(),
        None,
    );
    let checkpoint = StoreUpdate {
        store: st::CHECKPOINT.into(),
        expected: c_state.history.serial(),
        delta: None,
        envelopes: vec![Signed::sign_object(p::ct::CHECKPOINT, &cp, &old.admin_sign)],
    };
    let body = serde_json::to_value(p::TransactRequest {
        updates: vec![access, checkpoint],
    })
    .expect("json");
    let b = mesh_account::state::device_keys(&Store::open(&stolen.home, false).expect("b"))
        .expect("keys");
    let b_udf = stolen.json(&["account", "show"])["device"]
        .as_str()
        .expect("udf")
        .to_string();
    let fresh = mesh_core::objects::DeviceBaseKeys::generate();
    for (who, udf, key) in [
        ("the stolen device", b_udf.as_str(), &b.authenticate),
        ("a new device", &fresh.udf(), &fresh.authenticate),
    ] {
        let req = sign_request(p::tx::TRANSACT, &acc.udf, udf, body.clone(), key);
        let e = client
            .post::<_, serde_json::Value>(p::tx::TRANSACT, &req)
            .expect_err(who);
        assert!(e.code().is_some(), "{who}: {e}");
    }
    let read = serde_json::to_value(p::DownloadRequest {
        select: Vec::new(),
        changes: false,
    })
    .expect("json");
    let req = sign_request(
        p::tx::DOWNLOAD,
        &acc.udf,
        &fresh.udf(),
        read,
        &old.admin_sign,
    );
    let e = client
        .post::<_, serde_json::Value>(p::tx::DOWNLOAD, &req)
        .expect_err("the recovery read with the old key");
    assert_eq!(e.code(), Some(p::code::NOT_AUTHORIZED), "{e}");

    // A remaining administrator may not start an epoch without a list.
    let current = online_keys(admin, &acc.udf);
    let (a_state, a_keys) = {
        let a_store = Store::open(&admin.home, false).expect("a");
        let st = mesh_account::account(&a_store).expect("a");
        (
            st,
            mesh_account::state::device_keys(&a_store).expect("keys"),
        )
    };
    let next = current.next_epoch();
    let epoch = next
        .epoch_entry(Default::default(), &[next.admin_encrypt.public_key()])
        .expect("epoch");
    let cp = a_state
        .history
        .next(&acc.udf, &[], mesh_plugins::now(), Some(epoch));
    let body = serde_json::json!({"Updates": [{"Store": "Checkpoint", "Expected": a_state.history.serial(),
        "Envelopes": [Signed::sign_object(p::ct::CHECKPOINT, &cp, &current.admin_sign)]}]});
    let a_udf = admin.json(&["account", "show"])["device"]
        .as_str()
        .expect("udf")
        .to_string();
    let req = sign_request(
        p::tx::TRANSACT,
        &acc.udf,
        &a_udf,
        body,
        &a_keys.authenticate,
    );
    let e = client
        .post::<_, serde_json::Value>(p::tx::TRANSACT, &req)
        .expect_err("an epoch without a list");
    assert!(
        e.to_string().contains("carries the next access list"),
        "{e}"
    );
}

/// The SSH attack with the copied key material: a certificate for `root`
/// minted with the old epoch's CA, offered to servers set up as the README
/// says. Returns whether a server with the old CA and no KRL would take it
/// (the attack is real).
pub(super) fn minted_certificate_refused(acc: &Account, old: &AccountKeys, old_ca_line: &str) {
    let dir = &acc.dir;
    let key = dir.path("thief_ed25519");
    ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f", s(&key)])
            .output()
            .expect("ssh-keygen"),
        "keygen",
    );
    let public = ssh_key::PublicKey::read_openssh_file(&key.with_extension("pub")).expect("pub");
    let now = mesh_plugins::now();
    let cert = mesh_ssh::cert::issue(
        &old.online_ed25519(mesh_ssh::channel::CA_KEY),
        &mesh_ssh::cert::CertRequest {
            key: public.key_data().clone(),
            serial: 7,
            key_id: "thief".into(),
            principals: vec!["root".into()],
            valid_after: now - 300,
            valid_before: now + 3600,
        },
    )
    .expect("mint");
    std::fs::write(
        dir.path("thief_ed25519-cert.pub"),
        cert.to_openssh().expect("cert"),
    )
    .expect("cert");
    // The server side as a timer keeps it: CA and KRL from the verified history.
    let ca = dir.path("ca.pub");
    let krl = dir.path("krl");
    let (url, udf) = (&acc.portal.url, &acc.udf);
    acc.c.ok(&[
        "ssh",
        "ca",
        "--account",
        udf,
        "--portal",
        url,
        "--output",
        s(&ca),
        "--cache",
        s(&dir.path("ca-cache")),
    ]);
    acc.c.ok(&[
        "ssh",
        "krl",
        "--account",
        udf,
        "--portal",
        url,
        "--output",
        s(&krl),
        "--cache",
        s(&dir.path("krl-cache")),
    ]);
    assert_ne!(
        std::fs::read_to_string(&ca).expect("ca").trim(),
        old_ca_line.trim()
    );
    let stale_ca = dir.path("stale-ca.pub");
    std::fs::write(&stale_ca, old_ca_line).expect("stale ca");
    let safe = mesh_tests::SafeBin::copy("mesh");
    let principals = format!(
        "AuthorizedPrincipalsCommand {} ssh authorized-principals --account {udf} --portal {url} --user %u --cert %k",
        safe.path.display()
    );
    let keys = format!(
        "AuthorizedKeysCommand {} ssh authorized-keys --account {udf} --portal {url} --user %u",
        safe.path.display()
    );
    let servers: [(&str, Vec<String>); 5] = [
        (
            "keys command",
            vec![keys, "AuthorizedKeysCommandUser root".into()],
        ),
        (
            "new CA and KRL",
            vec![
                format!("TrustedUserCAKeys {}", ca.display()),
                format!("RevokedKeys {}", krl.display()),
            ],
        ),
        (
            "old CA file, new KRL",
            vec![
                format!("TrustedUserCAKeys {}", stale_ca.display()),
                format!("RevokedKeys {}", krl.display()),
            ],
        ),
        (
            "old CA file, principals command",
            vec![
                format!("TrustedUserCAKeys {}", stale_ca.display()),
                principals,
                "AuthorizedPrincipalsCommandUser root".into(),
            ],
        ),
        (
            "old CA file alone (no Mesh check)",
            vec![format!("TrustedUserCAKeys {}", stale_ca.display())],
        ),
    ];
    // The member's own key and certificate: what the servers do accept.
    let agent = mesh_tests::RunningAgent::start(&acc.c);
    let c_key = dir.path("c-key.pub");
    let c_cert = dir.path("c-cert.pub");
    std::fs::write(&c_key, acc.c.ok(&["ssh", "public-key"])).expect("key");
    std::fs::write(&c_cert, acc.c.ok(&["ssh", "cert"])).expect("cert");
    for (i, (name, lines)) in servers.into_iter().enumerate() {
        let mut extra = vec!["AuthorizedKeysFile none".to_string()];
        extra.extend(lines);
        let sshd = Sshd::start(&dir.path(&format!("sshd-{i}")), &extra);
        let o = Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &sshd.port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", sshd.known_hosts.display()))
            .arg("-i")
            .arg(&key)
            .args(["root@127.0.0.1", "echo", "mesh-login-thief"])
            .output()
            .expect("ssh");
        let logged_in = String::from_utf8_lossy(&o.stdout).contains("mesh-login-thief");
        // Without any Mesh check the old CA is still trusted: the control.
        let want = name.starts_with("old CA file alone");
        if name == "keys command" {
            assert!(
                sshd.logs_in(&agent.sock, &c_key),
                "{name}: the member's key"
            );
        }
        if name == "new CA and KRL" {
            assert!(
                sshd.logs_in(&agent.sock, &c_cert),
                "{name}: the member's certificate"
            );
        }
        assert_eq!(
            logged_in,
            want,
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Mail to the account after the revocation: S/MIME (openssl sends) and
/// OpenPGP (sq sends). The stolen copy opens neither, with the CLI or with
/// its raw keys; `reader`, an administrator that remains, opens both.
pub(super) fn new_mail_unreadable(
    acc: &Account,
    stolen: &Device,
    reader: &Device,
    old: &AccountKeys,
) {
    let dir = &acc.dir;
    std::fs::write(dir.path("msg.txt"), MAIL).expect("msg");
    std::fs::write(
        dir.path("enc.pem"),
        acc.c.ok(&["smime", "cert", "--encryption"]),
    )
    .expect("enc");
    ok(
        Command::new("openssl")
            .args([
                "cms",
                "-encrypt",
                "-binary",
                "-aes256",
                "-in",
                s(&dir.path("msg.txt")),
            ])
            .args(["-out", s(&dir.path("mail.p7m")), s(&dir.path("enc.pem"))])
            .output()
            .expect("openssl"),
        "openssl encrypt",
    );
    assert_eq!(
        reader.ok(&["smime", "decrypt", "--input", s(&dir.path("mail.p7m"))]),
        MAIL
    );
    let t = copy_home(stolen, &dir.path("mail-smime"));
    assert!(!t
        .run(&["smime", "decrypt", "--input", s(&dir.path("mail.p7m"))])
        .status
        .success());

    std::fs::write(
        dir.path("current.asc"),
        acc.c.ok(&["pgp", "cert", "--armor"]),
    )
    .expect("cert");
    ok(
        Command::new("sq")
            .args(["encrypt", "--recipient-cert", s(&dir.path("current.asc"))])
            .args([
                "--output",
                s(&dir.path("mail.pgp")),
                s(&dir.path("msg.txt")),
            ])
            .output()
            .expect("sq"),
        "sq encrypt",
    );
    let sq_decrypt = |secret: &Path| {
        Command::new("sq")
            .args([
                "decrypt",
                "--recipient-key",
                s(secret),
                s(&dir.path("mail.pgp")),
            ])
            .output()
            .expect("sq")
    };
    reader.ok(&[
        "pgp",
        "export-secret",
        "--output",
        s(&dir.path("reader.pgp")),
    ]);
    assert_eq!(
        ok(sq_decrypt(&dir.path("reader.pgp")), "reader decrypts"),
        MAIL
    );
    let t = copy_home(stolen, &dir.path("mail-pgp"));
    t.ok(&[
        "pgp",
        "export-secret",
        "--output",
        s(&dir.path("thief.pgp")),
    ]);
    assert!(!sq_decrypt(&dir.path("thief.pgp")).status.success());

    // The raw keys: the current epochs of both shared keys are wrapped to
    // no key the copy holds (its device key, every administrator key).
    let v = view(&acc.c);
    let smime = mesh_smime::channel::encryption_epochs(&v).expect("epochs");
    let pgp = v
        .apps::<mesh_pgp::channel::PgpSubkey>("pgp-enc:")
        .expect("pgp");
    let pgp_last = pgp
        .iter()
        .map(|(_, k)| k)
        .max_by_key(|k| k.epoch)
        .expect("pgp epoch");
    std::env::set_var("MESH_KEYSTORE", "file");
    let dev = mesh_account::state::device_keys(&Store::open(&stolen.home, false).expect("store"))
        .expect("device keys");
    let mut held = vec![dev.encrypt.public_key()];
    held.extend(old.openers().iter().map(|k| k.public_key()));
    for k in &held {
        assert!(!smime.last().expect("smime epoch").key.is_for(k));
        assert!(!pgp_last.key.is_for(k));
    }
}

/// What the copy can sign or certify is not vouched for by the account's
/// current CA or certificate (while the old ones would have vouched).
pub(super) fn vouches_for_nothing(
    acc: &Account,
    stolen: &Device,
    old: &AccountKeys,
    old_ca: &Path,
    old_pgp: &Path,
) {
    let dir = &acc.dir;
    // S/MIME: a certificate for a key of the thief's, from the old CA.
    let key = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).expect("key");
    let sec1 = key.verifying_key().to_encoded_point(false);
    let now = mesh_plugins::now() as i64;
    let pem = mesh_smime::signing_certificate(
        &mesh_smime::P256Signer::new(old.online_p256(mesh_smime::channel::CA_KEY)),
        &mesh_smime::P256Public::new(sec1.as_bytes()).expect("public"),
        &mesh_smime::SigningCert {
            address: ADDR,
            device_name: "thief",
            serial: 7,
            not_before: now - 300,
            not_after: now + 86400,
            urls: None,
        },
    )
    .expect("mint");
    std::fs::write(dir.path("thief.pem"), pem).expect("pem");
    std::fs::write(dir.path("ca.pem"), acc.c.ok(&["smime", "ca"])).expect("ca");
    std::fs::write(dir.path("c.pem"), acc.c.ok(&["smime", "cert"])).expect("c cert");
    let verify = |ca: &Path, cert: &str| {
        Command::new("openssl")
            .args([
                "verify",
                "-purpose",
                "smimesign",
                "-CAfile",
                s(ca),
                s(&dir.path(cert)),
            ])
            .output()
            .expect("openssl")
            .status
            .success()
    };
    assert!(
        verify(&dir.path("ca.pem"), "c.pem"),
        "the current CA vouches for C"
    );
    assert!(
        verify(old_ca, "thief.pem"),
        "the old CA would vouch for the thief"
    );
    assert!(
        !verify(&dir.path("ca.pem"), "thief.pem"),
        "the current CA does not"
    );

    // OpenPGP: a signature with the copy's signing subkey.
    let t = copy_home(stolen, &dir.path("sign-pgp"));
    t.ok(&[
        "pgp",
        "export-secret",
        "--output",
        s(&dir.path("thief-sign.pgp")),
    ]);
    // GnuPG signs with the one signing subkey whose secret the copy holds
    // (the others are stubs).
    let g = crate::host::private_dir(&dir.0, "thief-gnupg");
    let gpg = |args: &[&str]| {
        Command::new("gpg")
            .arg("--homedir")
            .arg(&g)
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
    ok(
        gpg(&["--import", s(&dir.path("thief-sign.pgp"))]),
        "gpg import",
    );
    let listing = ok(gpg(&["--with-colons", "--list-secret-keys"]), "gpg list");
    let lines: Vec<&str> = listing.lines().collect();
    let usable = lines
        .iter()
        .position(|l| {
            let f: Vec<&str> = l.split(':').collect();
            f[0] == "ssb" && f.get(11).is_some_and(|c| c.contains('s')) && f.get(14) != Some(&"#")
        })
        .expect("a signing subkey with its secret");
    let fpr = lines[usable + 1]
        .split(':')
        .nth(9)
        .expect("fpr")
        .to_string();
    ok(
        gpg(&[
            "--local-user",
            &format!("{fpr}!"),
            "--detach-sign",
            "--output",
            s(&dir.path("msg.sig")),
            s(&dir.path("msg.txt")),
        ]),
        "gpg sign",
    );
    let sq_verify = |cert: &Path| {
        Command::new("sq")
            .args([
                "verify",
                "--signer-cert",
                s(cert),
                "--detached",
                s(&dir.path("msg.sig")),
            ])
            .arg(dir.path("msg.txt"))
            .output()
            .expect("sq")
            .status
            .success()
    };
    assert!(sq_verify(old_pgp), "the old certificate would vouch");
    assert!(
        !sq_verify(&dir.path("current.asc")),
        "the current one does not"
    );
}
