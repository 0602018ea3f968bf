//! Several portal processes on one PostgreSQL database, sharing nothing
//! else; and a portal killed with SIGKILL in the middle of its writes, on
//! both backends (issue 14).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh_account::client::{sign_request, Client};
use mesh_account::store::Store;
use mesh_core::portal::{self as p, store as st};
use mesh_tests::{Backend, Device, PortalDb, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

fn keys_of(d: &Device) -> mesh_core::objects::DeviceKeys {
    std::env::set_var("MESH_KEYSTORE", "file");
    let store = Store::open(&d.home, false).expect("store");
    mesh_account::state::device_keys(&store).expect("keys")
}

fn device_udf(d: &Device) -> String {
    d.json(&["account", "show"])["device"]
        .as_str()
        .expect("device udf")
        .to_string()
}

/// Two processes on one new database, or `None` where PostgreSQL is missing.
fn two_portals(dir: &Scratch) -> Option<(PortalProc, PortalProc)> {
    if !Backend::postgres_available() {
        return None;
    }
    let db = PortalDb::new(Backend::Postgres, &dir.path("unused"));
    let p1 = PortalProc::start_db(&db, "127.0.0.1:0", &[]);
    let p2 = PortalProc::start_db(&db, "127.0.0.1:0", &[]);
    Some((p1, p2))
}

/// The Serial inside each stored access list, in index order.
fn access_serials(db: &PortalDb, account: &str) -> Vec<(i64, u64)> {
    db.access_lists(account)
        .into_iter()
        .map(|(idx, data)| {
            let env: serde_json::Value = serde_json::from_str(&data).expect("json");
            let payload = data_encoding::BASE64URL_NOPAD
                .decode(env["Payload"].as_str().expect("payload").as_bytes())
                .expect("b64");
            let list: p::AccessList = serde_json::from_slice(&payload).expect("access list");
            (idx, list.serial)
        })
        .collect()
}

/// Two administrators, each talking to its own portal process, accept and
/// revoke devices at the same time: no update is lost, the access list
/// serials stay dense (serial = index, no gap), and every device ends in
/// the state its last accepted transaction gave it.
#[test]
fn two_processes_two_administrators_lose_no_update() {
    let dir = Scratch::new("multi-admins");
    let Some((p1, p2)) = two_portals(&dir) else {
        return;
    };
    let a = Device::new(&dir.0, "a");
    let udf = a.create(ADDR, &p1.url);
    let a2 = Device::new(&dir.0, "a2");
    let w = a2.ok(&[
        "device", "request", ADDR, "--portal", &p2.url, "--name", "admin2",
    ]);
    a.ok(&["device", "accept", w.trim(), "--roles", "admin,ssh"]);
    a2.ok(&["sync"]);
    assert_eq!(a2.json(&["account", "show"])["roles"][0], "admin");
    let rounds = 4;
    for round in 0..rounds {
        let d1 = Device::new(&dir.0, &format!("d1-{round}"));
        let d2 = Device::new(&dir.0, &format!("d2-{round}"));
        let w1 = d1.ok(&[
            "device",
            "request",
            ADDR,
            "--portal",
            &p1.url,
            "--name",
            &format!("one-{round}"),
        ]);
        let w2 = d2.ok(&[
            "device",
            "request",
            ADDR,
            "--portal",
            &p2.url,
            "--name",
            &format!("two-{round}"),
        ]);
        a.ok(&["sync"]);
        a2.ok(&["sync"]);
        let spawn = |d: &Device, args: &[&str]| {
            d.command(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        };
        // At once, through different processes: the first administrator
        // accepts one device, the second another, and (from the second
        // round) the first revokes the device the second accepted last round.
        let mut children = vec![
            spawn(&a, &["device", "accept", w1.trim()]),
            spawn(&a2, &["device", "accept", w2.trim()]),
        ];
        if round > 0 {
            let name = format!("two-{}", round - 1);
            children.push(spawn(&a, &["device", "revoke", &name]));
        }
        for c in children {
            let o = c.wait_with_output().expect("wait");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        d1.ok(&["sync"]);
        a.ok(&["sync"]);
        a2.ok(&["sync"]);
    }
    // Every device in the state its last transaction gave it, on both sides.
    for admin in [&a, &a2] {
        let list = admin.json(&["device", "list"]);
        let state = |n: &str| {
            list.as_array()
                .expect("list")
                .iter()
                .find(|d| d["name"] == n)
                .map(|d| d["state"].as_str().unwrap_or_default().to_string())
        };
        for round in 0..rounds {
            assert_eq!(state(&format!("one-{round}")).as_deref(), Some("active"));
            let want = if round + 1 < rounds {
                "revoked"
            } else {
                "active"
            };
            assert_eq!(
                state(&format!("two-{round}")).as_deref(),
                Some(want),
                "{list}"
            );
        }
        assert_eq!(list.as_array().map(Vec::len), Some(2 + 2 * rounds));
    }
    // Serials dense: index i holds serial i, 1..=n, and so do checkpoints.
    let serials = access_serials(&p1.db, &udf);
    let n = serials.len();
    // Created, admin2, then per round two accepts and (after the first) a revocation.
    assert_eq!(n, 2 + 2 * rounds + (rounds - 1), "{serials:?}");
    for (i, (idx, serial)) in serials.iter().enumerate() {
        assert_eq!((*idx, *serial), (i as i64 + 1, i as u64 + 1), "{serials:?}");
    }
    let checkpoints = p1.db.query(
        "SELECT idx FROM entries WHERE account = $1 AND store = 'Checkpoint' ORDER BY idx",
        &[udf.as_str().into()],
    );
    for (i, r) in checkpoints.iter().enumerate() {
        assert_eq!(r[0].int(), i as i64 + 1);
    }
    // A device that syncs from scratch through either process verifies all of it.
    let fresh = Device::new(&dir.0, "fresh");
    fresh.join(&a2, ADDR, &p2.url, "fresh");
    fresh.ok(&["sync"]);
}

/// A signed request accepted by one process is a replay at the other; a
/// device held in a long-poll at one process wakes when an administrator
/// writes through the other; what a device applied, reported to one, is
/// what the other tells administrators; and the pending-request cap holds
/// over both.
#[test]
fn replays_waits_reports_and_caps_cross_processes() {
    let dir = Scratch::new("multi-cross");
    let Some((p1, p2)) = two_portals(&dir) else {
        return;
    };
    let a = Device::new(&dir.0, "a");
    let udf = a.create(ADDR, &p1.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &p2.url, "phone");
    let (bk, b_udf) = (keys_of(&b), device_udf(&b));
    let (c1, c2) = (
        Client::new(&p1.url).expect("client"),
        Client::new(&p2.url).expect("client"),
    );

    // Replay: the same bytes at the other process.
    let status = sign_request(
        p::tx::STATUS,
        &udf,
        &b_udf,
        serde_json::json!({}),
        &bk.authenticate,
    );
    let first: p::StatusResponse = c1.post(p::tx::STATUS, &status).expect("first");
    let e = c2
        .post::<_, serde_json::Value>(p::tx::STATUS, &status)
        .expect_err("replay at the other process");
    assert_eq!(e.code(), Some(p::code::REPLAY), "{e}");

    // A long-poll at p2 wakes on a write through p1, well before its 20 s.
    let known = first.stores.clone();
    let body = serde_json::to_value(p::StatusRequest {
        wait: 20,
        known: known.clone(),
        applied: Some(7),
    })
    .expect("json");
    let held = sign_request(p::tx::STATUS, &udf, &b_udf, body, &bk.authenticate);
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let r: p::StatusResponse = c2.post(p::tx::STATUS, &held).expect("held status");
        (t.elapsed(), r)
    });
    // Until the waiter's report reached the database, it has not been held.
    let ak = keys_of(&a);
    let a_udf = device_udf(&a);
    let reported = || {
        let req = sign_request(
            p::tx::STATUS,
            &udf,
            &a_udf,
            serde_json::json!({}),
            &ak.authenticate,
        );
        let r: p::StatusResponse = c1.post(p::tx::STATUS, &req).expect("admin status");
        r.applied
            .iter()
            .any(|x| x.device_udf == b_udf && x.serial == 7)
    };
    // The device's report, made at p2, is what p1 tells the administrator.
    assert!(mesh_tests::eventually(10, reported), "applied not reported");
    a.ok(&["ssh", "principals", "alice"]);
    let (took, r) = waiter.join().expect("waiter");
    assert!(took < Duration::from_secs(10), "woken after {took:?}");
    let moved = |s: &str| {
        let at = |v: &[p::StoreIndex]| v.iter().find(|x| x.store == s).map_or(0, |x| x.index);
        at(&r.stores) > at(&known)
    };
    assert!(moved(st::CHECKPOINT), "{:?}", r.stores);

    // The pending cap over both processes: 40 devices ask at once, half at each.
    let children: Vec<_> = (0..40)
        .map(|i| {
            let name = format!("d{i}");
            let url = if i % 2 == 0 { &p1.url } else { &p2.url };
            Device::new(&dir.0, &name)
                .command(&["device", "request", ADDR, "--portal", url, "--name", &name])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let kept = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .filter(|o| o.status.success())
        .count();
    assert_eq!(kept, p::MAX_PENDING as usize, "pending requests kept");
    let pending = a.json(&["device", "pending"]);
    assert_eq!(
        pending.as_array().map(Vec::len),
        Some(p::MAX_PENDING as usize)
    );
}

/// Accounts (each a Bind: one transaction over the accounts table and
/// five stores) are created by four clients at once while the portal is
/// killed with SIGKILL. After a restart on the same database, every
/// account a client was told was created is there and whole, and no
/// account is partial.
fn a_killed_portal_loses_no_acknowledged_transaction(backend: Backend) {
    let dir = Scratch::new("sigkill");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let db = portal.db.clone();
    let url = portal.url.clone();
    let first = Device::new(&dir.0, "first");
    first.create("first@example.com", &url);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, Device)>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, acked, url, root) =
                (stop.clone(), acked.clone(), url.clone(), dir.0.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let addr = format!("u{w}-{i}@example.com");
                    let d = Device::new(&root, &format!("u{w}-{i}"));
                    let o = d.run(&[
                        "account",
                        "create",
                        &addr,
                        "--portal",
                        &url,
                        "--recovery",
                        &d.kit(),
                    ]);
                    if !o.status.success() {
                        // The portal is gone: this one was not acknowledged.
                        break;
                    }
                    acked.lock().expect("acked").push((addr, d));
                }
            })
        })
        .collect();
    assert!(mesh_tests::eventually(60, || acked
        .lock()
        .expect("acked")
        .len()
        >= 8));
    let listen = url.trim_start_matches("http://").to_string();
    portal.kill();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    let acked = acked.lock().expect("acked").clone();

    let _portal = PortalProc::start_db(&db, &listen, &[]);
    let rows = db.query(
        "SELECT address, bytes,
                (SELECT COUNT(*) FROM entries e WHERE e.account = a.udf),
                (SELECT SUM(length(data)) FROM entries e WHERE e.account = a.udf)
         FROM accounts a",
        &[],
    );
    let whole = rows
        .iter()
        .find(|r| r[0].text() == "first@example.com")
        .map(|r| r[2].int())
        .expect("first account");
    // No partial transaction: each account has every entry its Bind wrote,
    // and its byte count is theirs.
    for r in &rows {
        assert_eq!(r[2].int(), whole, "{} is partial", r[0].text());
        assert_eq!(r[1].int(), r[3].int(), "{} byte count", r[0].text());
    }
    // Nothing acknowledged lost; and its device still syncs (the portal's
    // answer verifies up to the account's checkpoint).
    for (addr, _) in &acked {
        assert!(
            rows.iter().any(|r| &r[0].text() == addr),
            "{addr} was acknowledged and is gone"
        );
    }
    assert!(rows.len() > acked.len(), "no acknowledged account missing");
    let (_, last) = acked.last().expect("an acknowledged account");
    last.ok(&["sync"]);
    first.ok(&["ssh", "principals", "first"]);
}

mesh_tests::on_both_backends!(a_killed_portal_loses_no_acknowledged_transaction);

/// `--database`: migrations run at every start and change nothing the
/// second time; an unreachable database and a schema newer than the
/// binary stop the portal with the reason and a hint.
#[test]
fn the_portal_explains_an_unreachable_or_newer_database() {
    let serve = |url: &str| {
        std::process::Command::new(mesh_tests::workspace_bin("mesh-portal"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database", url])
            .output()
            .expect("mesh-portal")
    };
    let port = mesh_tests::free_port();
    let o = serve(&format!("postgres://mesh:secret@127.0.0.1:{port}/mesh"));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("mesh-portal: error: cannot reach the database at postgres://mesh:…@127.0.0.1")
            && e.contains("hint: check that PostgreSQL runs")
            && !e.contains("secret"),
        "{e}"
    );
    if !Backend::postgres_available() {
        return;
    }
    let dir = Scratch::new("schema");
    let db = PortalDb::new(Backend::Postgres, &dir.path("unused"));
    let version = || db.row("SELECT MAX(version), COUNT(*) FROM mesh_schema", &[]);
    let p1 = PortalProc::start_db(&db, "127.0.0.1:0", &[]);
    let after_first = version();
    let a = Device::create_account(&dir.0, ADDR, &p1.url);
    let listen = p1.url.trim_start_matches("http://").to_string();
    p1.stop();
    // Again: nothing migrated twice, nothing lost.
    let p2 = PortalProc::start_db(&db, &listen, &[]);
    assert_eq!(version(), after_first);
    let _ = p2;
    a.ok(&["sync"]);
    db.execute("INSERT INTO mesh_schema (version) VALUES (999)", &[]);
    let mesh_tests::PortalDb::Postgres(url) = &db else {
        unreachable!()
    };
    let o = serve(url);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("the database's schema is version 999")
            && e.contains("hint: run the mesh-portal version that migrated this database"),
        "{e}"
    );
}

/// A portal going down drains the requests it has, and refuses new
/// connections at once (issue 22.11): a revoke made meanwhile fails at
/// once with the portal named unreachable, instead of waiting in the
/// backlog of a socket nobody accepts on.
#[test]
fn a_portal_going_down_refuses_new_connections_while_it_drains() {
    use std::io::Write;
    let dir = Scratch::new("draining");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &portal.url, "phone");
    let addr = portal.url.trim_start_matches("http://").to_string();
    // A request in flight (its body not all sent) keeps the drain going.
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.write_all(
        b"POST /mesh/v1/Public HTTP/1.1\r\nHost: portal\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .expect("write");
    let pid = portal.pid().to_string();
    let alive = || {
        std::process::Command::new("kill")
            .args(["-0", &pid])
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let refused = mesh_tests::eventually(10, || {
        matches!(
            std::net::TcpStream::connect(&addr),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        )
    });
    // Still draining when the connection was refused.
    assert!(refused && alive(), "refused: {refused}");
    let e = a.fails(&["device", "revoke", "phone"]);
    assert!(
        e.contains("cannot reach the portal") && e.contains("hint:"),
        "{e}"
    );
    drop(slow);
    portal.stop();
}
