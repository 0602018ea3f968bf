//! The portal and the device life cycle (issue: portal and onboarding).

use std::path::Path;

use mesh_account::store::Store;
use mesh_core::portal as p;
use mesh_tests::{Backend, Device, PortalProc, Scratch};

mod audit;
mod flood;
mod invite;
pub(crate) mod pki;
mod reads;
mod refused;
mod stored;
mod upload;

const ADDR: &str = "alice@example.com";

/// An account with an administrator `a` and a connected member `b`.
fn account_with_member(dir: &Path, portal: &PortalProc) -> (Device, Device) {
    let a = Device::new(dir, "a");
    let b = Device::new(dir, "b");
    a.ok(&["device", "init", "--name", "laptop"]);
    a.ok(&[
        "account",
        "create",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "Alice",
        "--recovery",
        &a.kit(),
    ]);
    let witness = b.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "phone",
    ]);
    let pending = a.ok(&["device", "pending"]);
    assert!(
        pending.contains(witness.trim()) && pending.contains("phone"),
        "{pending}"
    );
    a.ok(&["device", "accept", witness.trim()]);
    let out = b.ok(&["sync"]);
    assert!(out.contains("connection completed"), "{out}");
    (a, b)
}

fn devices(d: &Device) -> Vec<(String, String, Vec<String>)> {
    let v = d.json(&["device", "list"]);
    v.as_array()
        .expect("list")
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap_or_default().to_string(),
                x["state"].as_str().unwrap_or_default().to_string(),
                x["roles"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn secrets_of(d: &Device) -> mesh_account::store::Secrets {
    std::env::set_var("MESH_KEYSTORE", "file");
    Store::open(&d.home, false)
        .expect("open store")
        .secrets()
        .expect("secrets")
}

fn create_connect_accept_pin_reject_revoke(backend: Backend) {
    let dir = Scratch::new("life");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let (a, b) = account_with_member(&dir.0, &portal);

    // account show on both.
    let sa = a.json(&["account", "show"]);
    let sb = b.json(&["account", "show"]);
    assert_eq!(sa["profile_udf"], sb["profile_udf"]);
    assert!(sa["profile_udf"].as_str().expect("udf").starts_with("MBQ"));
    assert_eq!(
        sa["roles"],
        serde_json::json!(["admin", "pgp", "smime", "ssh"])
    );
    assert_eq!(sb["roles"], serde_json::json!(["pgp", "smime", "ssh"]));

    // PIN: accepted at the administrator's next sync without asking.
    let pin = a.ok(&["device", "pin", "--roles", "ssh", "--expires", "10m"]);
    let c = Device::new(&dir.0, "c");
    c.ok_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--name",
            "tablet",
            "--pin",
            "--no-wait",
        ],
        pin.trim(),
    );
    // The administrator is told: `device pending` answers PIN requests and says so.
    let o = a.run(&["device", "pending"]);
    let told = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && told.contains("mesh: accepted by PIN: tablet"),
        "{told}"
    );
    c.ok(&["sync"]);
    assert_eq!(
        c.json(&["account", "show"])["roles"],
        serde_json::json!(["ssh"])
    );
    // The PIN works once.
    let c2 = Device::new(&dir.0, "c2");
    c2.ok_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--name",
            "again",
            "--pin",
            "--no-wait",
        ],
        pin.trim(),
    );
    let out = a.ok(&["sync"]);
    assert!(
        out.contains("refused a PIN request from again: the PIN was used already"),
        "{out}"
    );
    // The device is told why, and stops waiting.
    let e = c2.fails(&["sync"]);
    assert!(
        e.contains("rejected this device's request: the PIN was used already"),
        "{e}"
    );
    assert!(
        e.contains("hint: ask an administrator for a new PIN"),
        "{e}"
    );
    // An expired PIN is refused with that reason.
    let issued = a.json(&["device", "pin", "--expires", "1s"]);
    let expired = issued["pin"].as_str().expect("pin").to_string();
    let until = issued["expires"].as_u64().expect("expires");
    // Wait for the condition itself: the clock past the PIN's expiry.
    assert!(mesh_tests::eventually(5, || mesh_account::client::now() >= until));
    let c5 = Device::new(&dir.0, "c5");
    c5.ok_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--name",
            "late",
            "--pin",
            "--no-wait",
        ],
        expired.trim(),
    );
    let out = a.ok(&["sync"]);
    assert!(
        out.contains("refused a PIN request from late: the PIN has expired"),
        "{out}"
    );
    let e = c5.fails(&["sync"]);
    assert!(
        e.contains("rejected this device's request: the PIN has expired"),
        "{e}"
    );

    // A wrong PIN is not accepted either; a malformed one is an error.
    let c3 = Device::new(&dir.0, "c3");
    let wrong = a.ok(&["key", "nonce"]).replacen('N', "A", 1);
    let e = c3.fails_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--pin",
            "--no-wait",
        ],
        "not-a-pin\n",
    );
    assert!(e.contains("the PIN is not valid"), "{e}");
    // The old form, a PIN on the command line, is refused with a hint.
    let e = c3.fails(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--no-wait",
        "--pin",
        wrong.trim(),
    ]);
    assert!(
        e.contains("visible to other users") && e.contains("hint:"),
        "{e}"
    );
    c3.ok_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--pin",
            "--no-wait",
        ],
        wrong.trim(),
    );
    let out = a.ok(&["sync"]);
    assert!(!out.contains("accepted by PIN"), "{out}");
    assert!(out.contains("the PIN is wrong"), "{out}");
    let e = c3.fails(&["sync"]);
    assert!(
        e.contains("rejected this device's request: the PIN is wrong"),
        "{e}"
    );

    // Reject.
    let d = Device::new(&dir.0, "d");
    let w = d.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "intruder",
    ]);
    a.ok(&["device", "reject", w.trim()]);
    let e = d.fails(&["sync"]);
    assert!(e.contains("rejected"), "{e}");
    assert!(!a.ok(&["device", "pending"]).contains("intruder"));

    // List on every device: the same signed list.
    let list = devices(&b);
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|(_, state, _)| state == "active"));
    assert_eq!(devices(&a), list);

    // Revoke the phone: the portal refuses it, it learns so and wipes itself.
    assert!(secrets_of(&b).activation_seed.is_some());
    a.ok(&["device", "revoke", "phone"]);
    let e = b.fails(&["sync"]);
    assert!(
        e.contains("revoked from account alice@example.com") && e.contains("wiped"),
        "{e}"
    );
    let s = secrets_of(&b);
    assert!(s.device_seed.is_none() && s.activation_seed.is_none() && s.online_seeds.is_none());
    assert_eq!(b.json(&["account", "show"])["membership"], "revoked");
    let e = b.fails(&["sync"]);
    assert!(e.contains("revoked"), "{e}");
    // Others see it revoked; the rest stay active.
    let list = devices(&c);
    assert!(list.contains(&(
        "phone".into(),
        "revoked".into(),
        vec!["pgp".into(), "smime".into(), "ssh".into()]
    )));
    assert!(list.contains(&("tablet".into(), "active".into(), vec!["ssh".into()])));
    // An administrator cannot revoke itself, nor an unknown device.
    assert!(a.fails(&["device", "revoke", "laptop"]).contains("itself"));
    assert!(a
        .fails(&["device", "revoke", "nosuch"])
        .contains("no device named"));
    // A member cannot administer.
    assert!(c
        .fails(&["device", "revoke", "laptop"])
        .contains("not an administrator"));
}

fn recovery_kit_and_recover(backend: Backend) {
    let dir = Scratch::new("escrow");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let (a, b) = account_with_member(&dir.0, &portal);
    let profile = a.json(&["account", "show"])["profile_udf"].clone();
    // `account create` wrote the kit: 3 shares, one per private file, with
    // what to do with them; the device keeps no copy of the root.
    let files = a.kit_files();
    assert_eq!(files.len(), 3);
    let mut shares = Vec::new();
    for f in &files {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(f).expect("kit").permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(f).expect("kit");
        assert!(text.contains("mesh account recover"), "{text}");
        shares.push(text.lines().last().expect("share").to_string());
    }
    for d in &a.kit_dirs()[..3] {
        let kit_dir = std::fs::metadata(d).expect("kit dir");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&kit_dir.permissions()) & 0o777,
            0o700
        );
    }
    assert!(
        !grep_tree(&a.home, &shares[0]),
        "a share of the root is in the administrator's home"
    );
    // A kit is written once; no device can make another.
    let e = a.fails(&["account", "escrow", "--threshold", "2", "--shares", "3"]);
    assert!(
        e.contains("no device holds the root") && e.contains("hint:"),
        "{e}"
    );
    let e = Device::new(&dir.0, "again").fails(&[
        "account",
        "create",
        "carol@example.com",
        "--portal",
        &portal.url,
        "--recovery",
        &a.kit(),
    ]);
    assert!(e.contains("written once"), "{e}");

    // Fewer than the quorum.
    let r = Device::new(&dir.0, "r");
    let e = r.fails_input(
        &["account", "recover", ADDR, "--portal", &portal.url],
        &shares[0],
    );
    assert!(e.contains("1 share(s) given, 2 needed"), "{e}");
    // The old form, shares on the command line, is refused with a hint.
    let e = r.fails(&[
        "account",
        "recover",
        ADDR,
        "--portal",
        &portal.url,
        &shares[0],
        &shares[1],
    ]);
    assert!(
        e.contains("visible to other users") && e.contains("hint:"),
        "{e}"
    );
    // Shares of another account.
    let other = Device::new(&dir.0, "other");
    other.ok(&[
        "account",
        "create",
        "bob@example.com",
        "--portal",
        &portal.url,
        "--recovery",
        &other.kit_n(2),
        "--threshold",
        "2",
    ]);
    let bob: Vec<String> = other
        .kit_files()
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let e = r.fails(&[
        "account",
        "recover",
        ADDR,
        "--portal",
        &portal.url,
        "--from",
        &bob[0],
        "--from",
        &bob[1],
    ]);
    assert!(e.contains("but alice@example.com is account"), "{e}");
    assert!(
        e.contains("hint: use the recovery shares of this address"),
        "{e}"
    );

    // A point the history does not have, or no time at all: refused,
    // nothing kept.
    let (f0, f2) = (
        files[0].display().to_string(),
        files[2].display().to_string(),
    );
    for (since, want) in [
        ("@0", "no checkpoint that early"),
        ("yesterday", "not an RFC 3339 time"),
        ("1969-12-31T00:00:00Z", "before 1970"),
    ] {
        let e = r.fails(&[
            "account",
            "recover",
            ADDR,
            "--portal",
            &portal.url,
            "--from",
            &f2,
            "--from",
            &f0,
            "--since",
            since,
        ]);
        assert!(e.contains(want), "{since}: {e}");
    }

    // The right shares (two kit files) rebuild the account; this device is
    // an administrator.
    r.ok(&[
        "account",
        "recover",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "new-laptop",
        "--from",
        &files[2].display().to_string(),
        "--from",
        &files[0].display().to_string(),
    ]);
    let show = r.json(&["account", "show"]);
    assert_eq!(show["profile_udf"], profile);
    assert_eq!(show["roles"][0], "admin");
    // The devices that were connected stay connected.
    b.ok(&["sync"]);
    let names: Vec<String> = devices(&b)
        .into_iter()
        .filter(|d| d.1 == "active")
        .map(|d| d.0)
        .collect();
    assert_eq!(names, vec!["laptop", "phone", "new-laptop"]);
    // The recovered administrator can administer.
    let w = Device::new(&dir.0, "w");
    let wit = w.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "watch",
    ]);
    r.ok(&["device", "accept", wit.trim()]);
    w.ok(&["sync"]);
}

/// Whether any file under `dir` contains `needle`.
fn grep_tree(dir: &std::path::Path, needle: &str) -> bool {
    std::fs::read_dir(dir).expect("dir").any(|e| {
        let p = e.expect("entry").path();
        if p.is_dir() {
            grep_tree(&p, needle)
        } else {
            std::fs::read(&p)
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        }
    })
}

fn two_administrators_writing_at_once_lose_no_update(backend: Backend) {
    let dir = Scratch::new("concurrent");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);
    let a2 = Device::new(&dir.0, "a2");
    let w = a2.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "admin2",
    ]);
    a.ok(&["device", "accept", w.trim(), "--roles", "admin,ssh"]);
    a2.ok(&["sync"]);
    assert_eq!(a2.json(&["account", "show"])["roles"][0], "admin");
    for round in 0..3 {
        let d1 = Device::new(&dir.0, &format!("d1-{round}"));
        let d2 = Device::new(&dir.0, &format!("d2-{round}"));
        let w1 = d1.ok(&[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--name",
            &format!("one-{round}"),
        ]);
        let w2 = d2.ok(&[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--name",
            &format!("two-{round}"),
        ]);
        a.ok(&["sync"]);
        a2.ok(&["sync"]);
        let spawn = |d: &Device, w: &str| {
            d.command(&["device", "accept", w.trim()])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        };
        let (p1, p2) = (spawn(&a, &w1), spawn(&a2, &w2));
        for p in [p1, p2] {
            let o = p.wait_with_output().expect("wait");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        d1.ok(&["sync"]);
        d2.ok(&["sync"]);
    }
    let names: Vec<String> = devices(&a).into_iter().map(|d| d.0).collect();
    for round in 0..3 {
        assert!(names.contains(&format!("one-{round}")), "{names:?}");
        assert!(names.contains(&format!("two-{round}")), "{names:?}");
    }
    assert_eq!(names.len(), 2 + 6);
}

fn request_wait_and_complete(backend: Backend) {
    use std::io::BufRead;
    let dir = Scratch::new("wait");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);

    // `device complete` before the answer: pending, said clearly.
    let b = Device::new(&dir.0, "b");
    let w = b.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "b",
    ]);
    let e = b.fails(&["device", "complete"]);
    assert!(
        e.contains("waiting for an administrator to accept it")
            && e.contains("hint:")
            && e.contains("mesh device accept WITNESS"),
        "{e}"
    );
    a.ok(&["device", "accept", w.trim()]);
    b.ok(&["device", "complete"]);
    assert_eq!(b.json(&["account", "show"])["membership"], "member");

    // `--wait` prints the witness, then returns once an administrator accepts.
    let c = Device::new(&dir.0, "c");
    let mut child = c
        .command(&[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--name",
            "c",
            "--wait",
            "--timeout",
            "60s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut witness = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut witness)
        .expect("witness");
    a.ok(&["device", "accept", witness.trim()]);
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("accepted; this device is now part of"),
        "{err}"
    );
    assert_eq!(c.json(&["account", "show"])["membership"], "member");
}

fn unanswered_connection_requests_are_capped(backend: Backend) {
    let dir = Scratch::new("flood");
    let portal = PortalProc::on_with(
        backend,
        &dir.path("portal"),
        &["--connects-per-minute", "100"],
    );
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);
    std::env::set_var("MESH_KEYSTORE", "file");
    for i in 0..p::MAX_PENDING {
        let mut s = Store::open(&dir.path(&format!("flood-{i}")), true).expect("store");
        let slots = mesh_agent::host().slots();
        mesh_account::join::request(&mut s, ADDR, &portal.url, Some("flood"), None, &slots)
            .expect("request");
    }
    let extra = Device::new(&dir.0, "extra");
    let e = extra.fails(&["device", "request", ADDR, "--portal", &portal.url]);
    assert!(
        e.contains("TooManyPending") && e.contains("unanswered connection requests"),
        "{e}"
    );
    // Answering one makes room again.
    let pending = a.json(&["device", "pending"]);
    let first = pending[0]["request_id"].as_str().expect("id").to_string();
    a.ok(&["device", "reject", &first]);
    extra.ok(&["device", "request", ADDR, "--portal", &portal.url]);
}

mesh_tests::on_both_backends!(
    create_connect_accept_pin_reject_revoke,
    recovery_kit_and_recover,
    two_administrators_writing_at_once_lose_no_update,
    request_wait_and_complete,
    unanswered_connection_requests_are_capped,
);
