//! History a portal cannot rewrite (issue: a lying portal cannot undo a
//! revocation). A lying portal in front of a real one rewrites what real
//! clients download; an edited database plays a portal whose storage was
//! changed. Every case must be refused with an error that blames the
//! portal, and leave the victim's state as it was.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mesh_core::portal::store as st;
use mesh_tests::liar::LyingPortal;
use mesh_tests::{eventually, Backend, Device, PortalDb, PortalProc, RunningAgent, Scratch, Val};
use serde_json::Value;

mod rewrite;
use rewrite::*;

const ADDR: &str = "alice@example.com";

/// Signed material a liar can replay: older entries of the account, and
/// another account's (valid, but not this account's).
#[derive(Debug, Clone, Default)]
struct Olds {
    access1: Value,
    device1: Value,
    published1: Value,
    checkpoint1: Value,
    other_profile: Value,
    other_checkpoint: Value,
    other_published: Value,
}

struct World {
    dir: Scratch,
    portal: PortalProc,
    liar: LyingPortal,
    a: Device,
    c: Device,
    udf: String,
    olds: Olds,
}

fn entry(db: &PortalDb, account: &str, store: &str, index: i64) -> Value {
    if store == st::ACCESS {
        return serde_json::from_str(&db.access_list(account, index)).expect("json");
    }
    let raw = db.row(
        "SELECT data FROM entries WHERE account = $1 AND store = $2 AND idx = $3",
        &[account.into(), store.into(), index.into()],
    )[0]
    .text();
    serde_json::from_str(&raw).expect("json")
}

/// An account with an administrator `a`, a revoked `phone` and a member
/// `c` that syncs through the liar and has seen the revocation; then two
/// changes (`c` has not seen them) that give it something to download.
fn world(tag: &str, backend: Backend) -> World {
    let dir = Scratch::new(tag);
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let liar = LyingPortal::start(&portal.url);
    let a = Device::new(&dir.0, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    let udf = a.create(ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &liar.url, "tablet");
    a.ok(&["device", "revoke", "phone"]);
    c.ok(&["sync"]);
    let z = Device::new(&dir.0, "z");
    z.ok(&["device", "init", "--name", "zed"]);
    let zudf = z.create("zed@example.com", &portal.url);
    z.ok(&["ssh", "principals", "zed"]);
    let p = &portal.db;
    let profile = p.row(
        "SELECT profile FROM accounts WHERE udf = $1",
        &[(&zudf).into()],
    )[0]
    .text();
    let olds = Olds {
        access1: entry(p, &udf, st::ACCESS, 1),
        device1: entry(p, &udf, st::DEVICE, 1),
        published1: entry(p, &udf, st::PUBLISHED, 1),
        checkpoint1: entry(p, &udf, st::CHECKPOINT, 1),
        other_profile: serde_json::from_str(&profile).expect("profile"),
        other_checkpoint: entry(p, &zudf, st::CHECKPOINT, 1),
        other_published: entry(p, &zudf, st::PUBLISHED, 1),
    };
    a.ok(&["ssh", "principals", "alice", "carol"]);
    a.ok(&["ssh", "confirm", "on"]);
    World {
        dir,
        portal,
        liar,
        a,
        c,
        udf,
        olds,
    }
}

type Lie = fn(&Olds, &mut Value) -> bool;

/// What a device's `mesh sync` downloads, rewritten.
fn device_cases() -> Vec<(&'static str, Lie, &'static str)> {
    vec![
        (
            "withholds the newest entry",
            |_, v| drop_newest(v, st::PUBLISHED),
            "withheld",
        ),
        (
            "withholds the newest checkpoint",
            |_, v| drop_newest(v, st::CHECKPOINT),
            "past the",
        ),
        (
            "leaves a store out of its answer",
            |_, v| {
                let u = v["Updates"].as_array_mut().expect("updates");
                let n = u.len();
                u.retain(|x| x["Store"] != st::PUBLISHED);
                u.len() < n
            },
            "withheld",
        ),
        (
            "replays an old entry as the newest",
            |o, v| newest_is(v, st::PUBLISHED, &o.published1),
            "not the history",
        ),
        (
            "replays an old catalog entry as a new one",
            |o, v| append(v, st::DEVICE, &o.device1),
            "past the",
        ),
        (
            "replays the first access list after the revoking one",
            |o, v| append(v, st::ACCESS, &o.access1),
            "refusing what the portal returned",
        ),
        (
            "alters the bytes of an access list's change",
            |_, v| {
                with_delta(v, |d| {
                    let Some(e) = d["Edits"]
                        .as_array_mut()
                        .and_then(|e| e.iter_mut().find(|e| e.get("Insert").is_some()))
                    else {
                        return;
                    };
                    let b = e["Insert"].as_str().unwrap_or_default().to_string();
                    let flipped = if b.starts_with('e') { "f" } else { "e" };
                    e["Insert"] = format!("{flipped}{}", &b[1..]).into();
                })
            },
            "signature",
        ),
        (
            "stretches a change past the list it changes",
            |_, v| with_delta(v, |d| d["Edits"][0]["Keep"] = u64::MAX.into()),
            "reaches past the end",
        ),
        (
            "sends a change and a whole entry at once",
            |o, v| newest_is_also(v, &o.access1),
            "only a whole entry",
        ),
        (
            "sends a change for a catalog entry",
            |_, v| {
                let Some(d) = entries(v, st::ACCESS)
                    .and_then(|e| e.iter().find_map(|x| x.get("Delta").cloned()))
                else {
                    return false;
                };
                let Some(e) = entries(v, st::PUBLISHED).and_then(|e| e.last_mut()) else {
                    return false;
                };
                *e = serde_json::json!({"Index": e["Index"], "Delta": d});
                true
            },
            "only a whole entry",
        ),
        (
            "reorders two entries",
            |_, v| swap_two_newest(v, st::PUBLISHED),
            "not the history",
        ),
        (
            "reorders two checkpoints",
            |_, v| swap_two_newest(v, st::CHECKPOINT),
            "serial",
        ),
        (
            "renumbers an entry",
            |_, v| {
                let Some(e) = entries(v, st::PUBLISHED).and_then(|e| e.last_mut()) else {
                    return false;
                };
                e["Index"] = (e["Index"].as_u64().unwrap_or(0) + 1).into();
                true
            },
            "expected entry",
        ),
        (
            "serves an entry twice",
            |_, v| {
                let Some(e) = entries(v, st::PUBLISHED) else {
                    return false;
                };
                let Some(last) = e.last().cloned() else {
                    return false;
                };
                e.push(last);
                true
            },
            "expected entry",
        ),
        (
            "says the access list store is behind the device",
            |_, v| say_behind(v, st::ACCESS),
            "rolled the Access store back",
        ),
        (
            "says the checkpoints are behind the device",
            |_, v| say_behind(v, st::CHECKPOINT),
            "rolled the Checkpoint store back",
        ),
        (
            "serves another account's checkpoint",
            |o, v| newest_is(v, st::CHECKPOINT, &o.other_checkpoint),
            "not authorized",
        ),
        (
            "replays the first checkpoint at a new index",
            |o, v| newest_is(v, st::CHECKPOINT, &o.checkpoint1),
            "serial 1",
        ),
        (
            "serves another account's entry",
            |o, v| newest_is(v, st::PUBLISHED, &o.other_published),
            "not authorized",
        ),
        (
            "substitutes another account's profile",
            |o, v| {
                v["EnvelopedProfileAccount"] = o.other_profile.clone();
                true
            },
            "account profile",
        ),
        (
            "alters a signed payload",
            |_, v| {
                let Some(e) = entries(v, st::PUBLISHED).and_then(|e| e.last_mut()) else {
                    return false;
                };
                let p = e["Envelope"]["Payload"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let flipped = if p.starts_with('e') { "f" } else { "e" };
                e["Envelope"]["Payload"] = format!("{flipped}{}", &p[1..]).into();
                true
            },
            "refusing what the portal returned",
        ),
        (
            "says more follow with nothing",
            |_, v| {
                let Some(u) = update(v, st::PUBLISHED) else {
                    return false;
                };
                u["Partial"] = true.into();
                u["Entries"] = Value::Array(Vec::new());
                true
            },
            "more follow",
        ),
        (
            "says more follow for ever",
            |_, v| {
                let Some(u) = update(v, st::APPLICATION) else {
                    return false;
                };
                u["Partial"] = true.into();
                true
            },
            "more follow",
        ),
        (
            "moves an entry to another store",
            |_, v| {
                let Some(moved) = entries(v, st::PUBLISHED).and_then(|e| e.pop()) else {
                    return false;
                };
                let Some(app) = entries(v, st::APPLICATION) else {
                    return false;
                };
                let next = app.last().and_then(|e| e["Index"].as_u64()).unwrap_or(0) + 1;
                app.push(serde_json::json!({"Index": next, "Envelope": moved["Envelope"]}));
                true
            },
            "refusing what the portal returned",
        ),
    ]
}

/// Run `case` with the liar rewriting `tx` answers; the case must apply.
fn lying(w: &World, txs: &'static [&'static str], lie: Lie) -> Arc<AtomicBool> {
    let applied = Arc::new(AtomicBool::new(false));
    let (flag, olds) = (applied.clone(), w.olds.clone());
    w.liar.lie(move |tx, v| {
        if txs.contains(&tx) && lie(&olds, v) {
            flag.store(true, Ordering::SeqCst);
        }
    });
    applied
}

fn a_lying_portal_is_refused_and_nothing_changes(backend: Backend) {
    let w = world("history-liar", backend);
    // A device joins: `c` downloads the next access list as a change.
    Device::new(&w.dir.0, "w").join(&w.a, ADDR, &w.portal.url, "watch");
    let state = w.c.home.join("state.json");
    let mut count = 0;
    for (name, lie, want) in device_cases() {
        let before = std::fs::read(&state).expect("state");
        let applied = lying(&w, &["Download"], lie);
        let e = w.c.fails(&["sync"]);
        assert!(
            applied.load(Ordering::SeqCst),
            "{name}: the lie was not told"
        );
        assert!(e.contains(want), "{name}: {e}");
        assert!(e.contains("hint:"), "{name}: {e}");
        assert_eq!(
            std::fs::read(&state).expect("state"),
            before,
            "{name}: state changed"
        );
        count += 1;
    }
    count += servers_refuse(&w);
    assert!(count >= 31, "{count} cases");
    // Told the truth again, every victim reads it.
    w.liar.honest();
    w.c.ok(&["sync"]);
    // A portal from before access lists as changes refuses the request
    // member; the device asks again for whole lists and reads on.
    w.liar.before("Changes");
    Device::new(&w.dir.0, "v").join(&w.a, ADDR, &w.portal.url, "visor");
    assert!(w.c.ok(&["sync"]).contains("visor"));
    w.liar.honest();
    let cache = w.dir.path("cache");
    let keys = authorized_keys(&w, Some(&cache));
    assert_eq!(
        keys.lines().count(),
        4,
        "laptop, tablet, watch and visor, not the phone: {keys}"
    );
    cache_is_trusted_only_when_private(&w, &cache);
}

/// The cache's fetch time is signed by nothing: a cache others can write
/// is not read, and a fetch time in the future is refused.
fn cache_is_trusted_only_when_private(w: &World, cache: &PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |m| std::fs::set_permissions(cache, std::fs::Permissions::from_mode(m));
    mode(0o777).expect("chmod");
    let e = String::from_utf8_lossy(&authorized_keys_cmd(w, Some(cache)).stderr).to_string();
    assert!(
        e.contains("writable by others") && e.contains("hint:"),
        "{e}"
    );
    mode(0o700).expect("chmod");
    let file = std::fs::read_dir(cache)
        .expect("cache")
        .flatten()
        .next()
        .expect("file")
        .path();
    mesh_tests::set_cache_fetched(&file, mesh_account::client::now() + 86_400);
    let e = String::from_utf8_lossy(&authorized_keys_cmd(w, Some(cache)).stderr).to_string();
    assert!(e.contains("in the future"), "{e}");
}

/// A cache written before format 2 (the entries alone, one object) is
/// read: its history stays the lower bound, and the next answer writes it
/// in format 2 (the header with the derived answer, then the entries).
fn an_old_cache_keeps_its_lower_bound(w: &World, cache: &PathBuf, file: &PathBuf) -> usize {
    w.liar.honest();
    let raw = std::fs::read_to_string(file).expect("cache");
    let (header, entries) = raw.split_once('\n').expect("format 2: two lines");
    assert!(header.starts_with(r#"{"format":2,"#), "{header}");
    std::fs::write(file, entries.trim_end()).expect("format 1");
    let old = std::fs::read(file).expect("cache");
    let applied = lying(w, &["Public"], |_, v| say_behind(v, st::ACCESS));
    let o = authorized_keys_cmd(w, Some(cache));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        applied.load(Ordering::SeqCst),
        "format 1: the lie was not told"
    );
    assert!(
        !o.status.success() && o.stdout.is_empty(),
        "format 1: printed keys"
    );
    assert!(e.contains("rolled the Access store back"), "format 1: {e}");
    assert_eq!(
        std::fs::read(file).expect("cache"),
        old,
        "format 1: cache changed"
    );
    w.liar.honest();
    assert_eq!(authorized_keys(w, Some(cache)).lines().count(), 3);
    let raw = std::fs::read_to_string(file).expect("cache");
    assert!(
        raw.starts_with(r#"{"format":2,"#),
        "not rewritten: {raw:.80}"
    );
    1
}

fn authorized_keys_cmd(w: &World, cache: Option<&PathBuf>) -> std::process::Output {
    let mut args = vec![
        "ssh".to_string(),
        "authorized-keys".into(),
        "--account".into(),
        w.udf.clone(),
        "--portal".into(),
        w.liar.url.clone(),
    ];
    if let Some(c) = cache {
        args.extend(["--cache".into(), c.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.a.run(&args)
}

fn authorized_keys(w: &World, cache: Option<&PathBuf>) -> String {
    let o = authorized_keys_cmd(w, cache);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// sshd's `AuthorizedKeysCommand` (with a cache that saw the revocation,
/// and fresh) and the KRL fetch, lied to. Returns the number of cases.
fn servers_refuse(w: &World) -> usize {
    w.liar.honest();
    let cache = w.dir.path("cache");
    std::fs::create_dir(&cache).expect("cache dir");
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("mode");
    authorized_keys(w, Some(&cache));
    let cached = std::fs::read_dir(&cache)
        .expect("cache")
        .flatten()
        .next()
        .expect("cache file")
        .path();
    let cases: Vec<(&str, bool, Lie, &str)> = vec![
        (
            "cached: says the access lists are behind",
            true,
            |_, v| say_behind(v, st::ACCESS),
            "rolled the Access store back",
        ),
        (
            "cached: replays the first access list as the newest",
            true,
            |o, v| append(v, st::ACCESS, &o.access1),
            "refusing what the portal returned",
        ),
        (
            "fresh: withholds the revoking access list",
            false,
            |_, v| drop_newest(v, st::ACCESS),
            "withheld",
        ),
        (
            "fresh: serves the first access list in its place",
            false,
            |o, v| newest_is(v, st::ACCESS, &o.access1),
            // A fresh server downloads only the newest list (from the head
            // the checkpoint before it signs): the chain refuses it.
            "not the history",
        ),
        (
            "fresh: serves an old catalog entry as the latest",
            false,
            |o, v| newest_is(v, st::DEVICE, &o.device1),
            "not the history",
        ),
    ];
    let mut n = 0;
    for (name, with_cache, lie, want) in cases {
        let before = std::fs::read(&cached).expect("cache");
        let applied = lying(w, &["Public"], lie);
        let o = authorized_keys_cmd(w, with_cache.then_some(&cache));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            applied.load(Ordering::SeqCst),
            "{name}: the lie was not told"
        );
        assert!(
            !o.status.success() && o.stdout.is_empty(),
            "{name}: printed keys"
        );
        assert!(e.contains(want) && e.contains("hint:"), "{name}: {e}");
        assert_eq!(
            std::fs::read(&cached).expect("cache"),
            before,
            "{name}: cache changed"
        );
        n += 1;
    }
    n += an_old_cache_keeps_its_lower_bound(w, &cache, &cached);
    // The KRL a server fetches: never an older or withheld one.
    let krl = w.dir.path("revoked.krl");
    w.liar.honest();
    let args = [
        "ssh",
        "krl",
        "--account",
        &w.udf,
        "--portal",
        &w.liar.url,
        "--output",
    ];
    let mut full = args.to_vec();
    let krl_s = krl.display().to_string();
    full.push(&krl_s);
    w.a.ok(&full);
    let krl_cases: Vec<(&str, Lie, &str)> = vec![
        (
            "KRL: withholds the newest published entry",
            |_, v| drop_newest(v, st::PUBLISHED),
            "withheld",
        ),
        (
            "KRL: serves an older published entry as the newest",
            |o, v| newest_is(v, st::PUBLISHED, &o.published1),
            "not the history",
        ),
    ];
    for (name, lie, want) in krl_cases {
        let before = std::fs::read(&krl).expect("krl");
        let applied = lying(w, &["Public"], lie);
        let e = w.a.fails(&full);
        assert!(
            applied.load(Ordering::SeqCst),
            "{name}: the lie was not told"
        );
        assert!(e.contains(want), "{name}: {e}");
        assert_eq!(
            std::fs::read(&krl).expect("krl"),
            before,
            "{name}: KRL changed"
        );
        n += 1;
    }
    // With its cache, the fetch also refuses a rollback.
    w.liar.honest();
    let krl_cache = w.dir.path("krl-cache");
    let cache_s = krl_cache.display().to_string();
    let mut cached = full.clone();
    cached.extend(["--cache", cache_s.as_str()]);
    w.a.ok(&cached);
    let before = std::fs::read(&krl).expect("krl");
    let applied = lying(w, &["Public"], |_, v| say_behind(v, st::PUBLISHED));
    let e = w.a.fails(&cached);
    assert!(applied.load(Ordering::SeqCst));
    assert!(e.contains("rolled the Published store back"), "{e}");
    assert_eq!(std::fs::read(&krl).expect("krl"), before, "KRL changed");
    n + 1
}

/// The daemon of a device that saw the revocation, lied to by Status and
/// Download alike: it reports the refusal and keeps its state.
fn the_daemon_refuses_a_rollback_and_keeps_its_state(backend: Backend) {
    let w = world("history-daemon", backend);
    let agent = RunningAgent::start(&w.c);
    let state = w.c.home.join("state.json");
    assert!(eventually(20, || w.c.json(&["agent", "status"])
        ["last_error"]
        .is_null()));
    w.c.ok(&["sync"]);
    let before = std::fs::read(&state).expect("state");
    let applied = lying(&w, &["Status", "Download"], |_, v| {
        let mut told = false;
        if let Some(s) = v.get_mut("Stores").and_then(Value::as_array_mut) {
            for x in s.iter_mut() {
                x["Index"] = 0.into();
            }
            told = true;
        }
        told | say_behind(v, st::ACCESS)
    });
    // Something for the daemon to hear of.
    w.a.ok(&["ssh", "confirm", "off"]);
    assert!(
        eventually(30, || {
            w.c.json(&["agent", "status"])["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("rolled the Access store back"))
        }),
        "{}",
        w.c.json(&["agent", "status"])
    );
    assert!(applied.load(Ordering::SeqCst));
    assert_eq!(
        std::fs::read(&state).expect("state"),
        before,
        "state changed"
    );
    drop(agent);
    // Told the truth, the device reads on; the phone stays revoked.
    w.liar.honest();
    let list = w.c.json(&["device", "list"]);
    let phone = list
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["name"] == "phone")
        .cloned()
        .expect("phone");
    assert_eq!(phone["state"], "revoked", "{phone}");
    let _ = &w.portal;
}

/// Run SQL on the real portal's database (a portal whose storage was
/// changed under it), on either backend.
fn edit(w: &World, sql: &str, params: &[Val]) {
    w.portal.db.execute(sql, params);
}

/// Every victim that saw the revocation refuses what the edited portal
/// serves, with `want` in its error, and keeps its state.
fn victims_refuse(w: &World, cache: &PathBuf, want: &str) {
    let state = w.c.home.join("state.json");
    let before = std::fs::read(&state).expect("state");
    let cached: Vec<Vec<u8>> = std::fs::read_dir(cache)
        .expect("cache")
        .flatten()
        .map(|f| std::fs::read(f.path()).expect("cache file"))
        .collect();
    let e = w.c.fails(&["sync"]);
    assert!(e.contains(want) && e.contains("hint:"), "device: {e}");
    let o = authorized_keys_cmd(w, Some(cache));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && o.stdout.is_empty(),
        "cache: printed keys"
    );
    assert!(e.contains(want), "cache: {e}");
    assert!(
        // A database edit wakes no held long-poll: up to one wait (20 s).
        eventually(45, || w.c.json(&["agent", "status"])["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(want))),
        "daemon: {}",
        w.c.json(&["agent", "status"])
    );
    assert_eq!(
        std::fs::read(&state).expect("state"),
        before,
        "device state"
    );
    let after: Vec<Vec<u8>> = std::fs::read_dir(cache)
        .expect("cache")
        .flatten()
        .map(|f| std::fs::read(f.path()).expect("cache file"))
        .collect();
    assert_eq!(after, cached, "cache changed");
}

fn an_edited_database_cannot_undo_a_revocation(backend: Backend) {
    let w = world("history-db", backend);
    w.c.ok(&["sync"]);
    let _agent = RunningAgent::start(&w.c);
    let cache = w.dir.path("cache");
    mesh_account::store::make_private_dir(&cache).expect("cache dir");
    let keys = authorized_keys(&w, Some(&cache));
    assert_eq!(keys.lines().count(), 2, "{keys}");
    let (udf, db) = (w.udf.as_str(), &w.portal.db);
    // Access 1: created, 2: phone, 3: tablet, 4: the revocation.
    let revoking = entry(db, udf, st::ACCESS, 4);
    let phone_active = entry(db, udf, st::ACCESS, 3);

    // The revoking entry removed from the database.
    let del = "DELETE FROM entries WHERE account = $1 AND store = 'Access' AND idx = 4";
    edit(&w, del, &[udf.into()]);
    victims_refuse(&w, &cache, "rolled the Access store back to 3");
    // A fresh server (no cache) sees the checkpoint sign an entry that is gone.
    let o = authorized_keys_cmd(&w, None);
    assert!(!o.status.success() && o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("withheld"));
    let ins = "INSERT INTO entries (account, store, idx, data) VALUES ($1, 'Access', $2, $3)";
    edit(
        &w,
        ins,
        &[udf.into(), Val::Int(4), revoking.to_string().into()],
    );
    assert!(eventually(20, || w.c.json(&["agent", "status"])
        ["last_error"]
        .is_null()));

    // An older entry (the phone still active) served as the latest.
    edit(
        &w,
        ins,
        &[udf.into(), Val::Int(5), phone_active.to_string().into()],
    );
    victims_refuse(&w, &cache, "refusing what the portal returned");
    let o = authorized_keys_cmd(&w, None);
    assert!(!o.status.success() && o.stdout.is_empty());
    edit(
        &w,
        "DELETE FROM entries WHERE account = $1 AND store = 'Access' AND idx = 5",
        &[udf.into()],
    );
    // Restored, everyone reads on, and the phone stays revoked.
    w.c.ok(&["sync"]);
    assert!(eventually(20, || w.c.json(&["agent", "status"])
        ["last_error"]
        .is_null()));
    assert_eq!(authorized_keys(&w, Some(&cache)).lines().count(), 2);
}

mesh_tests::on_both_backends!(
    a_lying_portal_is_refused_and_nothing_changes,
    the_daemon_refuses_a_rollback_and_keeps_its_state,
    an_edited_database_cannot_undo_a_revocation,
);
