//! A portal restored from a backup taken before an administrator was
//! revoked, and the revoked administrator's copy writing on it: a fork of
//! the account that every reader which has not seen the revocation would
//! follow. With a witness named in the profile (PROTOCOL.md §10.6) each
//! reader asks it, and refuses the branch: a device that was offline
//! during the revocation (and is not wiped by the branch's forged proof),
//! a server whose cache predates the revocation, a fresh server and the
//! KRL timer, each set up as the README tells servers to be.

use std::process::Command;

use mesh_tests::{free_port, Device, PortalProc, Scratch};

use super::times::raw_revoke;
use super::{copy_home, ADDR};

fn cp(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    let o = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .expect("cp");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `mesh ARGS` on a server (its own home; no account), with output.
fn server(dir: &Scratch, args: &[&str]) -> std::process::Output {
    Device::new(&dir.0, "server").run(args)
}

#[test]
fn a_restored_portal_and_a_revoked_administrators_copy_fork_nothing() {
    let dir = Scratch::new("fork");
    let data = dir.path("portal");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut portal = PortalProc::start_on(&data, &listen, &[]);
    let url = portal.url.clone();
    let w = dir.path("witness");
    let wit = PortalProc::start_with(
        &dir.path("witness-portal"),
        &["--witness", w.to_str().expect("path")],
    );

    let a = Device::new(&dir.0, "a");
    let kit = a.kit();
    a.ok(&[
        "account",
        "create",
        ADDR,
        "--portal",
        &url,
        "--device",
        "laptop",
        "--recovery",
        &kit,
        "--witness",
        &wit.url,
    ]);
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("udf")
        .to_string();
    a.ok(&["ssh", "principals", "root"]);
    let b = Device::new(&dir.0, "b");
    let wb = b.ok(&[
        "device", "request", ADDR, "--portal", &url, "--name", "desktop",
    ]);
    a.ok(&[
        "device",
        "accept",
        wb.trim(),
        "--roles",
        "admin,ssh,pgp,smime",
    ]);
    b.ok(&["sync"]);
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &url, "phone");

    // A server's cache from before the revocation.
    let cache = dir.path("cache");
    let keys = |who: &str| {
        server(
            &dir,
            &[
                "ssh",
                "authorized-keys",
                "--account",
                &udf,
                "--portal",
                &url,
                "--cache",
                cache.to_str().expect("path"),
                "--user",
                who,
            ],
        )
    };
    let before = keys("root");
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    let b_key = b.ok(&["ssh", "public-key"]);
    let b_key = b_key.split_whitespace().nth(1).expect("key").to_string();
    assert!(String::from_utf8_lossy(&before.stdout).contains(&b_key));

    // The backup, and the thief's copy of B, both from before the revocation.
    b.ok(&["sync"]);
    portal.stop();
    let snapshot = dir.path("snapshot");
    cp(&data, &snapshot);
    let thief = copy_home(&b, &dir.path("thief"));
    portal = PortalProc::start_on(&data, &listen, &[]);

    a.ok(&["device", "revoke", "desktop"]);
    let krl = dir.path("revoked.krl");
    let krl_args = |out: &std::path::Path| {
        vec![
            "ssh".to_string(),
            "krl".into(),
            "--account".into(),
            udf.clone(),
            "--portal".into(),
            url.clone(),
            "--output".into(),
            out.display().to_string(),
        ]
    };
    let argv = krl_args(&krl);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let o = server(&dir, &argv);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let krl_bytes = std::fs::read(&krl).expect("krl");

    // The portal restored from the backup; the thief writes on it with
    // the old epoch's key: the phone revoked, a forged proof for it.
    portal.stop();
    let real = dir.path("real");
    cp(&data, &real);
    cp(&snapshot, &data);
    portal = PortalProc::start_on(&data, &listen, &[]);
    raw_revoke(&udf, &url, &thief, "phone", mesh_plugins::now())
        .expect("the restored portal takes it");

    let says_branch = |o: &std::process::Output, what: &str| {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what} followed the branch: {e}");
        assert!(e.contains("witness") && e.contains("hint:"), "{what}: {e}");
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(&b_key),
            "{what} served B's key"
        );
    };
    // The phone was offline during the revocation: it refuses the branch
    // and its forged proof, and keeps its keys.
    let o = c.run(&["sync"]);
    says_branch(&o, "the offline phone");
    assert!(
        c.ok(&["ssh", "public-key"]).contains("ssh-ed25519"),
        "the phone was wiped"
    );
    // A server whose cache predates the revocation.
    says_branch(&keys("root"), "the cached server");
    // A fresh server: the CA, the principals.
    let ca = dir.path("ca.pub");
    let o = server(
        &dir,
        &[
            "ssh",
            "ca",
            "--account",
            &udf,
            "--portal",
            &url,
            "--output",
            ca.to_str().expect("path"),
        ],
    );
    says_branch(&o, "ssh ca");
    assert!(!ca.exists(), "the branch's CA was installed");
    let o = server(
        &dir,
        &[
            "ssh",
            "authorized-principals",
            "--account",
            &udf,
            "--portal",
            &url,
            "--user",
            "root",
            "--cert",
            "AAAA",
        ],
    );
    says_branch(&o, "authorized-principals");
    // The KRL timer keeps the real KRL.
    let o = server(&dir, &argv);
    says_branch(&o, "the KRL timer");
    assert_eq!(
        std::fs::read(&krl).expect("krl"),
        krl_bytes,
        "the KRL was replaced"
    );

    // The real portal back: every reader follows the real history.
    portal.stop();
    cp(&real, &data);
    let _portal = PortalProc::start_on(&data, &listen, &[]);
    c.ok(&["sync"]);
    let list = c.ok(&["device", "list"]);
    let desktop = list
        .lines()
        .find(|l| l.contains("desktop"))
        .expect("desktop");
    assert!(desktop.contains("revoked"), "{list}");
    let o = keys("root");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stdout).contains(&b_key));
    drop(wit);
}
