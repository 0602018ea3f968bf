//! The stolen-laptop drill (issue: stolen-laptop drill), server side: a
//! real sshd set up both ways the README shows, login names enforced,
//! revocations seen at the next login, and a fetched KRL that works while
//! the portal is down.

use std::path::{Path, PathBuf};
use std::process::Command;

use mesh_tests::{
    can_run_sshd, eventually, require_tool, Device, PortalProc, RunningAgent, SafeBin, Scratch,
    Sshd,
};

use crate::host::{
    cmsutil_decrypts, encryption_cert, gpg, private_dir, smime_mail, stop_gpg, MAIL,
};

const ADDR: &str = "alice@example.com";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{}\n", text.trim())).expect("write");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn revoked_in(krl: &Path, key: &Path) -> bool {
    let q = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(krl)
        .arg(key)
        .output()
        .expect("ssh-keygen -Q");
    String::from_utf8_lossy(&q.stdout).contains("REVOKED")
}

/// The two server setups of the README: keys through
/// `AuthorizedKeysCommand … --user %u`, and certificates through
/// `TrustedUserCAKeys` + `AuthorizedPrincipalsCommand … --user %u --cert %k`.
fn servers(dir: &Path, mesh: &Path, udf: &str, portal: &str, ca: &Path) -> (Sshd, Sshd) {
    let keys = Sshd::start(
        &dir.join("sshd-keys"),
        &[
            "AuthorizedKeysFile none".into(),
            format!(
                "AuthorizedKeysCommand {} ssh authorized-keys --account {udf} --portal {portal} --user %u",
                mesh.display()
            ),
            "AuthorizedKeysCommandUser root".into(),
        ],
    );
    let certs = Sshd::start(
        &dir.join("sshd-certs"),
        &[
            "AuthorizedKeysFile none".into(),
            format!("TrustedUserCAKeys {}", ca.display()),
            format!(
                "AuthorizedPrincipalsCommand {} ssh authorized-principals --account {udf} --portal {portal} --user %u --cert %k",
                mesh.display()
            ),
            "AuthorizedPrincipalsCommandUser root".into(),
        ],
    );
    (keys, certs)
}

#[test]
fn servers_see_login_names_and_revocations_both_ways_and_from_a_fetched_krl() {
    if !can_run_sshd() || !require_tool("gpg") || !require_tool("cmsutil") {
        return;
    }
    let dir = Scratch::new("drill-ssh");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("udf")
        .to_string();
    let (b, c) = (Device::new(&dir.0, "b"), Device::new(&dir.0, "c"));
    b.join(&a, ADDR, &portal.url, "phone");
    c.join(&a, ADDR, &portal.url, "tablet");
    let safe = SafeBin::copy("mesh");
    let ca = write(&dir.0, "ca.pub", &a.ok(&["ssh", "ca"]));
    let (keys, certs) = servers(&dir.0, &safe.path, &udf, &portal.url, &ca);
    // Every device provisioned GnuPG and NSS, and runs its agent.
    let homes: Vec<(PathBuf, PathBuf)> = ["a", "b", "c"]
        .iter()
        .map(|h| {
            (
                private_dir(&dir.0, &format!("{h}-gnupg")),
                dir.path(&format!("{h}-nss")),
            )
        })
        .collect();
    for (d, (g, n)) in [&a, &b, &c].iter().zip(&homes) {
        d.ok(&["pgp", "install", "--gnupghome", s(g)]);
        d.ok(&["smime", "install", "--nssdb", s(n)]);
    }
    let revoked_subkeys = |g: &Path| {
        let o = gpg(g, &["--with-colons", "-k"]).output().expect("gpg");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("sub:r:"))
            .count()
    };
    let before: Vec<usize> = homes.iter().map(|(g, _)| revoked_subkeys(g)).collect();
    let enc_before = encryption_cert(&c, &dir.path("enc-old.pem"));
    let _ag_a = RunningAgent::start(&a);
    let (ag_b, ag_c) = (RunningAgent::start(&b), RunningAgent::start(&c));
    let key_b = write(&dir.0, "b.pub", &b.ok(&["ssh", "public-key"]));
    let key_c = write(&dir.0, "c.pub", &c.ok(&["ssh", "public-key"]));
    let cert_b = write(&dir.0, "b-cert.pub", &b.ok(&["ssh", "cert"]));

    // The tests log in as root, which is not one of the account's login
    // names yet (the default is "alice"): refused both ways.
    assert!(
        !keys.logs_in(&ag_b.sock, &key_b),
        "a user outside the principals logged in with a key"
    );
    assert!(
        !certs.logs_in(&ag_b.sock, &cert_b),
        "a user outside the principals logged in with a certificate"
    );

    a.ok(&["ssh", "principals", "root", "alice"]);
    b.ok(&["sync"]);
    c.ok(&["sync"]);
    let cert_b = write(&dir.0, "b-cert.pub", &b.ok(&["ssh", "cert"]));
    let cert_c = write(&dir.0, "c-cert.pub", &c.ok(&["ssh", "cert"]));
    assert!(ag_b.identities().contains("(ED25519-CERT)"));
    for (sock, key, cert) in [(&ag_b.sock, &key_b, &cert_b), (&ag_c.sock, &key_c, &cert_c)] {
        assert!(keys.logs_in(sock, key), "key login");
        assert!(certs.logs_in(sock, cert), "certificate login");
    }

    // The thief's copy of the phone's disk, taken before the revocation
    // (the phone's own agent wipes it and exits).
    let thief = Device {
        home: dir.path("b-thief"),
    };
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&b.home)
        .arg(&thief.home)
        .status()
        .expect("cp");
    assert!(cp.success());
    a.ok(&["device", "revoke", "phone"]);
    // The next login: refused both ways for the phone, the tablet still in.
    assert!(!keys.logs_in(&ag_b.sock, &key_b), "revoked key logged in");
    assert!(
        !certs.logs_in(&ag_b.sock, &cert_b),
        "revoked certificate logged in"
    );
    assert!(keys.logs_in(&ag_c.sock, &key_c) && certs.logs_in(&ag_c.sock, &cert_c));
    // The phone's agent wipes and exits; the others' GnuPG shows its subkey
    // revoked and their NSS databases read mail to the new encryption key.
    assert!(
        eventually(10, || ag_b.exited() && !ag_b.sock.exists()),
        "{}",
        ag_b.log()
    );
    for (i, (g, _)) in homes.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert!(
            eventually(10, || revoked_subkeys(g) > before[i]),
            "GnuPG home {i}"
        );
    }
    assert!(eventually(10, || encryption_cert(
        &c,
        &dir.path("enc-new.pem")
    ) != enc_before));
    std::fs::write(dir.path("msg.txt"), MAIL).expect("msg");
    smime_mail(
        &dir.path("enc-new.pem"),
        &dir.path("new.p7m"),
        &dir.path("msg.txt"),
    );
    for i in [0, 2] {
        let nss = &homes[i].1;
        assert!(
            eventually(10, || cmsutil_decrypts(nss, &dir.path("new.p7m"))),
            "NSS database {i}"
        );
    }
    stop_gpg(&homes.iter().map(|(g, _)| g.as_path()).collect::<Vec<_>>());

    // A server that cannot reach the portal at login: the KRL the account
    // published, fetched and verified.
    let krl = dir.path("revoked.krl");
    let fetched = a.json(&[
        "ssh",
        "krl",
        "--account",
        &udf,
        "--portal",
        &portal.url,
        "--output",
        s(&krl),
    ]);
    assert_eq!(fetched["replaced"], true, "{fetched}");
    assert!(revoked_in(&krl, &key_b) && revoked_in(&krl, &cert_b));
    assert!(!revoked_in(&krl, &key_c) && !revoked_in(&krl, &cert_c));
    let again = a.json(&[
        "ssh",
        "krl",
        "--account",
        &udf,
        "--portal",
        &portal.url,
        "--output",
        s(&krl),
    ]);
    assert_eq!(
        again["replaced"], false,
        "the same version is kept: {again}"
    );
    // A newer KRL in the file is never replaced by an older one.
    let mut newer = std::fs::read(&krl).expect("krl");
    newer[12..20].copy_from_slice(&999u64.to_be_bytes());
    let newer_file = dir.path("newer.krl");
    std::fs::write(&newer_file, &newer).expect("write");
    let e = a.fails(&[
        "ssh",
        "krl",
        "--account",
        &udf,
        "--portal",
        &portal.url,
        "--output",
        s(&newer_file),
    ]);
    assert!(
        e.contains("newer than the portal's") && e.contains("keeping it"),
        "{e}"
    );
    assert_eq!(std::fs::read(&newer_file).expect("kept"), newer);

    let offline = Sshd::start(
        &dir.path("sshd-offline"),
        &[
            "AuthorizedKeysFile none".into(),
            format!("TrustedUserCAKeys {}", ca.display()),
            format!("RevokedKeys {}", krl.display()),
        ],
    );
    drop(portal);
    // The copy's agent cannot learn of the revocation: it serves the
    // phone's key and certificate; the KRL refuses them.
    let ag_thief = RunningAgent::start(&thief);
    assert!(
        !offline.logs_in(&ag_thief.sock, &cert_b),
        "revoked certificate logged in with the portal down"
    );
    assert!(offline.log_has("revoked by file"));
    assert!(
        offline.logs_in(&ag_c.sock, &cert_c),
        "the tablet still logs in with the portal down"
    );
}
