//! The bounded pager (issue 24): a lying portal in front of a real one
//! answers 'more follow' for ever (the entries it last served, again, or
//! nothing). Every paged read of the real `mesh` binary — a device's and
//! an administrator's sync, a recovery's public read, the account's
//! history, and every server reader — is refused within the bound, with
//! an error that names the portal and has a hint, and nothing changes in
//! the home.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use mesh_core::portal::store as st;
use mesh_tests::liar::LyingPortal;
use mesh_tests::{eventually, Device, PortalProc, Scratch};
use serde_json::Value;

const ADDR: &str = "alice@example.com";

/// Seconds a refused read may take (an unbounded loop never ends).
const BOUND: u64 = 60;

/// Every file under `dir` and its bytes (none: an empty map).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.insert(p.display().to_string(), b);
            }
        }
    }
    out
}

/// Run `dev`'s mesh with `args`, killed after [`BOUND`] seconds: the exit
/// status (none when it had to be killed) and its standard error.
fn run_bounded(dev: &Device, out: &Path, args: &[&str]) -> (Option<bool>, String) {
    let err = out.join("stderr");
    let mut child = dev
        .command(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("run mesh");
    let mut status = None;
    eventually(BOUND, || {
        status = child.try_wait().expect("wait").map(|s| s.success());
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (status, std::fs::read_to_string(&err).unwrap_or_default())
}

/// When the liar lies: never,
const HONEST: u8 = 0;
/// in every Download and Public answer,
const ALL: u8 = 1;
/// only in Download answers (the recovery's read, after its public one),
const DOWNLOADS: u8 = 3;
/// or only in answers of the Device store alone (a rotated device's read
/// of its new keys; the checkpoints it reads first are told honestly).
const DEVICE_ALONE: u8 = 2;

/// The liar: it remembers the entries of every store it forwards and,
/// while `mode` says so, says 'more follow' of every store of the answer,
/// serving the entries it last saw where the portal has none.
fn more_for_ever(liar: &LyingPortal) -> Arc<AtomicU8> {
    let mode = Arc::new(AtomicU8::new(HONEST));
    let seen: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    let m = mode.clone();
    liar.lie(move |tx, v| {
        if tx != "Download" && tx != "Public" {
            return;
        }
        let mut seen = seen.lock().expect("seen");
        let updates = v.get_mut("Updates").and_then(Value::as_array_mut);
        let updates: Vec<&mut Value> = updates.into_iter().flatten().collect();
        let lie = match m.load(Ordering::SeqCst) {
            ALL => true,
            DOWNLOADS => tx == "Download",
            DEVICE_ALONE => updates.len() == 1 && updates[0]["Store"] == st::DEVICE,
            _ => false,
        };
        for u in updates {
            let store = u["Store"].as_str().unwrap_or_default().to_string();
            let empty = u["Entries"].as_array().is_none_or(Vec::is_empty);
            if !empty {
                seen.insert(store, u["Entries"].clone());
            } else if lie {
                if let Some(old) = seen.get(&store) {
                    u["Entries"] = old.clone();
                }
            }
            if lie {
                u["Partial"] = true.into();
            }
        }
    });
    mode
}

/// One paged read: run as `dev` with `args` while the liar lies as
/// `lie`; the pager's refusal must name `read`.
struct Case<'a> {
    name: &'a str,
    lie: u8,
    dev: &'a Device,
    args: Vec<&'a str>,
    read: &'a str,
}

/// An administrator `a` and a member `c` that use the liar; the server
/// home; the account's UDF; the recovery kit.
fn world(dir: &Scratch, liar: &LyingPortal) -> (Device, Device, Device, String, Vec<String>) {
    let a = Device::new(&dir.0, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    let udf = a.create(ADDR, &liar.url);
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &liar.url, "tablet");
    a.ok(&["ssh", "principals", "alice"]);
    c.ok(&["sync"]);
    let kit = a
        .kit_files()
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let server = Device::new(&dir.0, "server");
    std::fs::create_dir_all(&server.home).expect("server home");
    (a, c, server, udf, kit)
}

#[test]
fn a_portal_that_says_more_for_ever_is_refused_by_every_paged_read() {
    let dir = Scratch::new("pager");
    let portal = PortalProc::start(&dir.path("portal"));
    let liar = LyingPortal::start(&portal.url);
    let mode = more_for_ever(&liar);
    let (a, c, server, udf, kit) = world(&dir, &liar);
    let out = |n: &str| server.home.join(n).display().to_string();
    let (krl, ca, cache, primed) = (out("krl"), out("ca.pub"), out("cache"), out("primed"));
    let l = liar.url.as_str();
    let look = ["--account", udf.as_str(), "--portal", l];
    let keys = |extra: &[&'static str]| -> Vec<&str> {
        [
            &["ssh", "authorized-keys"][..],
            &look,
            &["--user", "alice"],
            extra,
        ]
        .concat()
    };
    // A server whose cache holds the history reads past it (no
    // checkpoints first); the owner's fresh home for a recovery.
    std::fs::create_dir(&primed).expect("cache");
    std::fs::set_permissions(&primed, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("mode");
    server.ok(&[keys(&[]), vec!["--cache", &primed]].concat());
    let fresh = Device::new(&dir.0, "spare");
    fresh.ok(&["device", "init", "--name", "spare"]);
    let recover = [
        "account", "recover", ADDR, "--portal", l, "--name", "spare", "--from", &kit[0], "--from",
        &kit[1],
    ];
    // The device's own count first: the rotation below leaves its keys
    // behind the portal's until it syncs.
    let cases = vec![
        Case {
            name: "a device's count of its own audit log",
            lie: ALL,
            dev: &c,
            args: vec!["audit", "verify", "--local"],
            read: "a read of Audit:",
        },
        Case {
            name: "a device's sync",
            lie: ALL,
            dev: &c,
            args: vec!["sync"],
            read: "a device sync",
        },
        Case {
            name: "a rotated device's read of its new keys",
            lie: DEVICE_ALONE,
            dev: &c,
            args: vec!["sync"],
            read: "the public read of a rotation",
        },
        Case {
            name: "an administrator's sync",
            lie: ALL,
            dev: &a,
            args: vec!["sync"],
            read: "an administrator's sync",
        },
        Case {
            name: "a recovery's public read",
            lie: ALL,
            dev: &fresh,
            args: recover.to_vec(),
            read: "the public read of the account's profile",
        },
        Case {
            name: "the recovery's download",
            lie: DOWNLOADS,
            dev: &fresh,
            args: recover.to_vec(),
            read: "the recovery's read",
        },
        Case {
            name: "the account's history",
            lie: ALL,
            dev: &server,
            args: vec!["account", "history", ADDR, "--portal", l, "--account", &udf],
            read: "the public read of the account's history",
        },
        Case {
            name: "authorized-keys",
            lie: ALL,
            dev: &server,
            args: keys(&[]),
            read: "the public read of the checkpoints",
        },
        Case {
            name: "authorized-keys with its cache",
            lie: ALL,
            dev: &server,
            args: [keys(&[]), vec!["--cache", &primed]].concat(),
            read: "a server's public read",
        },
        Case {
            name: "authorized-principals",
            lie: ALL,
            dev: &server,
            args: [
                &["ssh", "authorized-principals"][..],
                &look,
                &["--user", "alice", "--cert", "AAAA"],
            ]
            .concat(),
            read: "the public read of the checkpoints",
        },
        Case {
            name: "krl",
            lie: ALL,
            dev: &server,
            args: [
                &["ssh", "krl", "--output", &krl, "--cache", &cache][..],
                &look,
            ]
            .concat(),
            read: "the public read of the checkpoints",
        },
        Case {
            name: "ca",
            lie: ALL,
            dev: &server,
            args: [&["ssh", "ca", "--output", &ca][..], &look].concat(),
            read: "the public read of the checkpoints",
        },
        Case {
            name: "an administrator's read of the audit logs",
            lie: ALL,
            dev: &a,
            args: vec!["audit", "verify"],
            read: "a read of Audit:",
        },
        Case {
            name: "allowed-signers",
            lie: ALL,
            dev: &server,
            args: [&["ssh", "allowed-signers"][..], &look].concat(),
            read: "the public read of the account's history",
        },
    ];
    // Every case is run and judged; the failures are listed together.
    let mut failed = Vec::new();
    for (i, k) in cases.iter().enumerate() {
        // Something new for every reader: a change the liar passes (the
        // rotated device: its keys rotated by the administrator).
        mode.store(HONEST, Ordering::SeqCst);
        a.ok(&["ssh", "principals", "alice", &format!("user{i}")]);
        if k.lie == DEVICE_ALONE {
            a.ok(&["device", "rotate", "tablet"]);
        }
        mode.store(k.lie, Ordering::SeqCst);
        if let Some(wrong) = judge(k, &dir, l) {
            failed.push(format!("{}: {wrong}", k.name));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // Told the truth again, every reader reads.
    mode.store(HONEST, Ordering::SeqCst);
    assert_eq!(c.json(&["sync"])["rotated"], true);
    a.ok(&["sync"]);
    assert_eq!(server.ok(&keys(&[])).lines().count(), 2);
}

/// What is wrong with how `k` ended, if anything.
fn judge(k: &Case, dir: &Scratch, portal: &str) -> Option<String> {
    let before = snapshot(&k.dev.home);
    let (status, e) = run_bounded(k.dev, &dir.0, &k.args);
    let named = format!(
        "the portal at {portal} is at fault: it answered 'more follow' to {}",
        k.read
    );
    let wrong = if status != Some(false) {
        format!("not refused within {BOUND} s (status {status:?})")
    } else if !e.contains(&named) {
        format!("the refusal does not say '{named}'")
    } else if !(e.contains("hint:") && e.contains("nothing was saved")) {
        "no hint".into()
    } else if snapshot(&k.dev.home) != before {
        "the home changed".into()
    } else {
        return None;
    };
    Some(format!("{wrong}: {e}"))
}
