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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

/// The liar: it remembers the entries of every store it forwards and,
/// once `forever` is set, says 'more follow' of every store of every
/// Download and Public answer, serving the entries it last saw where the
/// portal has none.
fn more_for_ever(liar: &LyingPortal) -> Arc<AtomicBool> {
    let forever = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    let on = forever.clone();
    liar.lie(move |tx, v| {
        if tx != "Download" && tx != "Public" {
            return;
        }
        let mut seen = seen.lock().expect("seen");
        let updates = v.get_mut("Updates").and_then(Value::as_array_mut);
        for u in updates.into_iter().flatten() {
            let store = u["Store"].as_str().unwrap_or_default().to_string();
            let empty = u["Entries"].as_array().is_none_or(Vec::is_empty);
            if !empty {
                seen.insert(store, u["Entries"].clone());
            } else if on.load(Ordering::SeqCst) {
                if let Some(old) = seen.get(&store) {
                    u["Entries"] = old.clone();
                }
            }
            if on.load(Ordering::SeqCst) {
                u["Partial"] = true.into();
            }
        }
    });
    forever
}

#[test]
fn a_portal_that_says_more_for_ever_is_refused_by_every_paged_read() {
    let dir = Scratch::new("pager");
    let portal = PortalProc::start(&dir.path("portal"));
    let liar = LyingPortal::start(&portal.url);
    let forever = more_for_ever(&liar);
    // An administrator and a member that both use the liar, and a server
    // that reads the account through it.
    let a = Device::new(&dir.0, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    let udf = a.create(ADDR, &liar.url);
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &liar.url, "tablet");
    a.ok(&["ssh", "principals", "alice"]);
    c.ok(&["sync"]);
    let kit: Vec<String> = a
        .kit_files()
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let server = Device::new(&dir.0, "server");
    std::fs::create_dir_all(&server.home).expect("server home");
    let out = |n: &str| server.home.join(n).display().to_string();
    let (krl, ca, cache) = (out("revoked.krl"), out("ca.pub"), out("cache"));
    let l = liar.url.as_str();
    let look = ["--account", udf.as_str(), "--portal", l];
    // The owner's fresh home (a recovery initialises one it is given).
    let fresh = Device::new(&dir.0, "spare");
    fresh.ok(&["device", "init", "--name", "spare"]);
    let cases: Vec<(&str, &Device, Vec<&str>)> = vec![
        ("a device's sync", &c, vec!["sync"]),
        ("an administrator's sync", &a, vec!["sync"]),
        (
            "a recovery's public read",
            &fresh,
            vec![
                "account", "recover", ADDR, "--portal", l, "--name", "spare", "--from", &kit[0],
                "--from", &kit[1],
            ],
        ),
        (
            "the account's history",
            &server,
            vec!["account", "history", ADDR, "--portal", l, "--account", &udf],
        ),
        (
            "authorized-keys",
            &server,
            [&["ssh", "authorized-keys"][..], &look, &["--user", "alice"]].concat(),
        ),
        (
            "authorized-principals",
            &server,
            [
                &["ssh", "authorized-principals"][..],
                &look,
                &["--user", "alice", "--cert", "AAAA"],
            ]
            .concat(),
        ),
        (
            "krl",
            &server,
            [
                &["ssh", "krl", "--output", &krl, "--cache", &cache][..],
                &look,
            ]
            .concat(),
        ),
        (
            "ca",
            &server,
            [&["ssh", "ca", "--output", &ca][..], &look].concat(),
        ),
        (
            "allowed-signers",
            &server,
            [&["ssh", "allowed-signers"][..], &look].concat(),
        ),
    ];
    // Every case is run and judged; the failures are listed together.
    let mut failed = Vec::new();
    for (i, (name, dev, args)) in cases.iter().enumerate() {
        // Something new for every reader: a change the liar passes.
        forever.store(false, Ordering::SeqCst);
        a.ok(&["ssh", "principals", "alice", &format!("user{i}")]);
        forever.store(true, Ordering::SeqCst);
        let before = snapshot(&dev.home);
        let (status, e) = run_bounded(dev, &dir.0, args);
        let named = format!("the portal at {l} is at fault");
        let wrong = if status != Some(false) {
            format!("not refused within {BOUND} s (status {status:?})")
        } else if !(e.contains(&named) && e.contains("more follow")) {
            "the refusal does not name the portal as at fault for paging".into()
        } else if !(e.contains("hint:") && e.contains("nothing was saved")) {
            "no hint".into()
        } else if snapshot(&dev.home) != before {
            "the home changed".into()
        } else {
            continue;
        };
        failed.push(format!("{name}: {wrong}: {e}"));
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // Told the truth again, every reader reads.
    forever.store(false, Ordering::SeqCst);
    c.ok(&["sync"]);
    a.ok(&["sync"]);
    let keys = server.ok(&[&["ssh", "authorized-keys"][..], &look, &["--user", "alice"]].concat());
    assert_eq!(keys.lines().count(), 2, "{keys}");
}
