//! Scale benchmark (issue 14, docs/BENCHMARKS.md "Scale"): accounts of N
//! devices on each backend; for each, the time, bytes on the wire, HTTP
//! requests and (PostgreSQL) SQL statements of
//! (a) a device's sync when nothing changed, (b) a sync after one change,
//! (c) `mesh ssh authorized-keys` cold and with its cache,
//! (d) `mesh device revoke`, (e) the agent's idle quick check (one Status);
//! then signed-request throughput on one and two portal processes.
//!
//! Run: `tests/bench/scale.sh` (sizes: `MESH_SCALE_SIZES=10,100`;
//! `MESH_SCALE_BACKENDS=sqlite` or `postgres`; `MESH_SCALE_KEEP=DIR` builds the SQLite
//! accounts once into DIR and reuses them in later runs; `MESH_SCALE_OPS=b` or
//! `=a,e` measures only those operations; `MESH_PERF_CTL` profiles them, see
//! `perf_control`; `MESH_SCALE_REQUESTS` sets the throughput's requests per
//! client, 300 by default).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mesh_account as account;
use mesh_account::client::Client;
use mesh_account::store::Store;
use mesh_account::sync::Converge;
use mesh_core::portal::{self as p, store as st};
use mesh_tests::{Backend, PortalProc, Scratch};

/// A TCP proxy that counts bytes both ways and HTTP requests.
#[derive(Clone)]
struct Meter {
    url: String,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

impl Meter {
    /// A meter on `port` (0: any free port) in front of `target`.
    fn start_on(target: &str, port: u16) -> Meter {
        let addr = target.trim_start_matches("http://").to_string();
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let m = Meter {
            url: format!("http://{}", l.local_addr().expect("addr")),
            up: Arc::default(),
            down: Arc::default(),
            requests: Arc::default(),
        };
        let mm = m.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let Ok(s) = TcpStream::connect(&addr) else {
                    continue;
                };
                let _ = (c.set_nodelay(true), s.set_nodelay(true));
                let (c2, s2) = (c.try_clone().expect("clone"), s.try_clone().expect("clone"));
                let (up, req) = (mm.up.clone(), mm.requests.clone());
                std::thread::spawn(move || pipe(c, s, &up, Some(&req)));
                let down = mm.down.clone();
                std::thread::spawn(move || pipe(s2, c2, &down, None));
            }
        });
        m
    }

    fn read(&self) -> (u64, u64, u64) {
        (
            self.up.load(Ordering::SeqCst),
            self.down.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
        )
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, n: &AtomicU64, req: Option<&AtomicU64>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                n.fetch_add(k as u64, Ordering::SeqCst);
                if let Some(r) = req {
                    let hits = buf[..k].windows(5).filter(|w| w == b"POST ").count();
                    r.fetch_add(hits as u64, Ordering::SeqCst);
                }
                if to.write_all(&buf[..k]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// What one measured operation cost: median time, and per operation the
/// bytes up and down, requests and statements.
struct Cost {
    median: Duration,
    up: u64,
    down: u64,
    requests: u64,
    statements: Option<u64>,
}

fn statements(backend: Backend) -> Option<u64> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => mesh_tests::pg::server().map(|s| s.statements() as u64),
    }
}

/// Run `op` `reps` times (each after `prepare`, untimed and unmetered).
fn measure(
    backend: Backend,
    meter: &Meter,
    reps: usize,
    mut prepare: impl FnMut(usize),
    mut op: impl FnMut(usize),
) -> Cost {
    let mut times = Vec::new();
    let (mut up, mut down, mut reqs, mut stmts) = (0, 0, 0, 0);
    for i in 0..reps {
        prepare(i);
        let (u0, d0, r0) = meter.read();
        let s0 = statements(backend);
        perf_control("enable");
        let t = Instant::now();
        op(i);
        times.push(t.elapsed());
        perf_control("disable");
        let (u1, d1, r1) = meter.read();
        up += u1 - u0;
        down += d1 - d0;
        reqs += r1 - r0;
        if let (Some(a), Some(b)) = (s0, statements(backend)) {
            stmts += b - a;
        }
    }
    times.sort();
    let n = reps as u64;
    Cost {
        median: times[times.len() / 2],
        up: up / n,
        down: down / n,
        requests: reqs / n,
        statements: (backend == Backend::Postgres).then_some(stmts / n),
    }
}

/// With `MESH_PERF_CTL=CTL,ACK` (two fifos), profile only the measured
/// operations: `perf record -D -1 --control fifo:CTL,ACK -- <bench>`.
fn perf_control(command: &str) {
    let Some(fifos) = std::env::var_os("MESH_PERF_CTL") else {
        return;
    };
    let fifos = fifos.to_string_lossy().into_owned();
    let (ctl, ack) = fifos.split_once(',').expect("MESH_PERF_CTL=CTL,ACK");
    let mut c = std::fs::OpenOptions::new()
        .write(true)
        .open(ctl)
        .expect("ctl");
    writeln!(c, "{command}").expect("perf control");
    let mut answer = [0u8; 5];
    std::fs::File::open(ack)
        .and_then(|mut a| a.read_exact(&mut answer))
        .expect("perf ack");
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    }
}

fn row(backend: Backend, devices: usize, what: &str, c: &Cost) {
    println!(
        "| {} | {devices} | {what} | {:.2} ms | {} | {} | {} | {} |",
        backend_name(backend),
        c.median.as_secs_f64() * 1000.0,
        c.up,
        c.down,
        c.requests,
        c.statements
            .map(|s| s.to_string())
            .unwrap_or_else(|| "–".into())
    );
}

/// Measure, and print the row; a failure is printed as the row instead.
fn attempt(backend: Backend, n: usize, what: &str, f: impl FnOnce() -> Cost) -> Option<()> {
    // MESH_SCALE_OPS=b,c measures only those operations (a profile of one).
    if let Ok(ops) = std::env::var("MESH_SCALE_OPS") {
        let letter = what.get(1..2).unwrap_or_default();
        if !ops.split(',').any(|o| o.trim() == letter) {
            return None;
        }
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(c) => {
            row(backend, n, what, &c);
            Some(())
        }
        Err(e) => {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let why = why
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or(&why)
                .to_string();
            println!(
                "| {backend:?} | {n} | {what} | FAILED: {} | | | | |",
                why.trim()
            );
            None
        }
    }
}

fn mesh(home: &Path, args: &[&str]) -> String {
    let o = std::process::Command::new(mesh_tests::workspace_bin("mesh"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("MESH_KEYSTORE", "file")
        .output()
        .expect("mesh");
    assert!(
        o.status.success(),
        "mesh {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const ADDR: &str = "scale@example.com";

/// An account of `n` devices behind a meter: (admin home, probe home, other homes, profile UDF).
fn account_of(dir: &Scratch, url: &str, n: usize) -> (PathBuf, PathBuf, Vec<PathBuf>, String) {
    let host = mesh_agent::host();
    let slots = host.slots();
    let admin = dir.path("admin");
    let kit = ["1", "2", "3"].map(|i| dir.path(&format!("admin.kit-{i}")).display().to_string());
    let kit = &kit.join(",");
    let udf = mesh(
        &admin,
        &[
            "account",
            "create",
            ADDR,
            "--portal",
            url,
            "--recovery",
            kit,
        ],
    )
    .trim()
    .to_string();
    let mut homes = Vec::new();
    let started = Instant::now();
    for i in 1..n {
        let home = dir.path(&format!("d{i}"));
        let mut s = Store::open(&home, true).expect("store");
        let r = account::join::request(&mut s, ADDR, url, Some(&format!("d{i}")), None, &slots)
            .expect("request");
        let mut a = Store::open(&admin, false).expect("admin");
        account::admin::accept(&mut a, &host, &r.request_id, &[mesh_ssh::channel::ROLE])
            .expect("accept");
        if i == 1 {
            account::sync::sync(&mut s, &host).expect("probe completes");
        }
        homes.push(home);
        if i % 100 == 0 {
            eprintln!("  {i} devices, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    let probe = homes.remove(0);
    // The probe catches up once (the whole history), then is current.
    let t = Instant::now();
    let mut s = Store::open(&probe, false).expect("probe");
    account::sync::sync(&mut s, &host).expect("probe sync");
    eprintln!(
        "  account of {n} devices made in {:.1} s; the probe caught up in {:.2} s",
        started.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    (admin, probe, homes, udf)
}

/// Most bytes of entries the bench's account may hold: before issue 24
/// every access list version was stored whole, and 1,000 devices held
/// about 280 MB of them (more than the portal's default quota of 256 MiB).
/// Kept so that accounts built by older portals can be measured.
const BENCH_ACCOUNT_BYTES: &str = "4294967296";

/// What the portal's database holds for the account (issue 24), one row of
/// the storage table: the account's bytes as the quota counts them, its
/// Access store as stored and whole (how portals before issue 24 stored
/// it), and the database's size.
fn storage(backend: Backend, n: usize, db: &mesh_tests::PortalDb) -> String {
    let r = db.row(
        "SELECT CAST((SELECT SUM(bytes) FROM accounts) AS BIGINT),
                CAST((SELECT COALESCE(SUM(length(data)), 0) FROM entries) AS BIGINT),
                CAST((SELECT COALESCE(SUM(length(data)), 0) FROM entries WHERE store = 'Access') AS BIGINT),
                CAST((SELECT COALESCE(SUM(COALESCE(whole_len, length(data))), 0)
                      FROM entries WHERE store = 'Access') AS BIGINT),
                (SELECT COUNT(*) FROM entries WHERE store = 'Access')",
        &[],
    );
    let (quota, all, access, whole, lists) =
        (r[0].int(), r[1].int(), r[2].int(), r[3].int(), r[4].int());
    let file = match db {
        mesh_tests::PortalDb::Sqlite(d) => ["portal.sqlite", "portal.sqlite-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(d.join(f)).ok())
            .map(|m| m.len() as i64)
            .sum(),
        mesh_tests::PortalDb::Postgres(_) => {
            db.row("SELECT pg_database_size(current_database())", &[])[0].int()
        }
    };
    let mb = |b: i64| format!("{:.2} MB", b as f64 / 1e6);
    format!(
        "| {} | {n} | {lists} | {} | {} | {} | {} | {} |",
        backend_name(backend),
        mb(quota),
        mb(access),
        mb(whole),
        mb(all - access + whole),
        mb(file)
    )
}

/// Where an account of `n` devices lives: a new scratch directory, or with
/// `MESH_SCALE_KEEP=DIR` (SQLite only) `DIR/sqlite-N`, built by the first
/// run and reused by later ones, so that the measurements can be repeated
/// with new binaries without building a 1,000-device account again.
struct Place {
    dir: Scratch,
    kept: bool,
    /// Runs made on a kept account before this one (names new devices and
    /// picks devices to revoke that earlier runs did not).
    run: usize,
}

impl Place {
    fn new(backend: Backend, n: usize) -> Place {
        let keep = std::env::var_os("MESH_SCALE_KEEP").filter(|_| backend == Backend::Sqlite);
        let Some(keep) = keep else {
            return Place {
                dir: Scratch::new("scale"),
                kept: false,
                run: 0,
            };
        };
        let d = PathBuf::from(keep).join(format!("sqlite-{n}"));
        std::fs::create_dir_all(&d).expect("keep dir");
        let run = std::fs::read_to_string(d.join("runs"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Place {
            dir: Scratch(d),
            kept: true,
            run,
        }
    }

    fn ready(&self) -> Option<(u16, String)> {
        let r = std::fs::read_to_string(self.dir.path("ready")).ok()?;
        let (port, udf) = r.trim().split_once(' ')?;
        Some((port.parse().ok()?, udf.to_string()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.kept {
            let _ = std::fs::write(self.dir.path("runs"), format!("{}", self.run + 1));
            // Kept: the scratch directory must outlive this run.
            std::mem::forget(std::mem::replace(&mut self.dir, Scratch(PathBuf::new())));
        }
    }
}

/// The account of `n` devices, built or (kept) reused: (admin, probe, others, udf).
fn account_at(place: &Place, meter: &Meter, n: usize) -> (PathBuf, PathBuf, Vec<PathBuf>, String) {
    let dir = &place.dir;
    if let Some((_, udf)) = place.ready() {
        let others = (2..n).map(|i| dir.path(&format!("d{i}"))).collect();
        eprintln!(
            "  reusing the account of {n} devices in {}",
            dir.0.display()
        );
        // The probe catches up with what earlier runs changed (untimed).
        let t = Instant::now();
        let mut s = Store::open(&dir.path("d1"), false).expect("probe");
        account::sync::sync(&mut s, &mesh_agent::host()).expect("probe sync");
        eprintln!(
            "  the probe caught up in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        return (dir.path("admin"), dir.path("d1"), others, udf);
    }
    let made = account_of(dir, &meter.url, n);
    if place.kept {
        let port = meter.url.rsplit(':').next().unwrap_or_default();
        std::fs::write(dir.path("ready"), format!("{port} {}", made.3)).expect("ready");
    }
    made
}

fn scale(backend: Backend, n: usize) -> String {
    let place = Place::new(backend, n);
    let dir = &place.dir;
    // Every device of the account connects from this address: past the
    // portal's default of 30 Connects a minute, building it waited.
    let quota = [
        "--max-account-bytes",
        BENCH_ACCOUNT_BYTES,
        "--connects-per-minute",
        "1000000",
    ];
    let portal = PortalProc::on_with(backend, &dir.path("portal"), &quota);
    let meter = Meter::start_on(&portal.url, place.ready().map_or(0, |r| r.0));
    let (admin, probe, others, udf) = account_at(&place, &meter, n);
    let host = mesh_agent::host();
    let slots = host.slots();
    let run = place.run;

    // (a) nothing changed: the agent's periodic sync (the channels run only
    // when something changed), then `mesh sync` run by hand (every
    // channel's pass, what repairs a change made by hand).
    let sync_as = |converge: Converge| {
        let mut s = Store::open(&probe, false).expect("probe");
        let r = account::sync::sync_with(&mut s, &host, converge).expect("sync");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        r
    };
    sync_as(Converge::Always);
    attempt(backend, n, "(a) sync, nothing changed", || {
        measure(
            backend,
            &meter,
            20,
            |_| {},
            |_| assert!(sync_as(Converge::WhenChanged).skipped),
        )
    });
    attempt(
        backend,
        n,
        "(a) the same, every channel's pass (`mesh sync`)",
        || {
            measure(
                backend,
                &meter,
                10,
                |_| {},
                |_| assert!(!sync_as(Converge::Always).skipped),
            )
        },
    );
    // (b) one change: a device joins (its access list, catalog entry and
    // the channels' entries for it). `mesh ssh principals`, the obvious
    // one-line change, is refused past ~60 devices (see BENCHMARKS.md).
    attempt(backend, n, "(b) sync after one change", || {
        measure(
            backend,
            &meter,
            5,
            |i| {
                let name = format!("new{run}x{i}");
                let home = dir.path(&name);
                let mut s = Store::open(&home, true).expect("store");
                let r = account::join::request(&mut s, ADDR, &meter.url, Some(&name), None, &slots)
                    .expect("request");
                // The administrator is another device: in this process it
                // would leave the new list verified in the probe's memos.
                mesh(
                    &admin,
                    &["device", "accept", &r.request_id, "--roles", "ssh"],
                );
            },
            // What the agent runs once its quick check saw the change.
            |_| assert!(!sync_as(Converge::Always).skipped),
        )
    });
    // (c) authorized-keys, cold then cached.
    let cache = dir.path("cache");
    mesh_account::store::make_private_dir(&cache).expect("cache");
    let cache_s = cache.display().to_string();
    let ak = |with_cache: bool| {
        let mut args = vec![
            "ssh",
            "authorized-keys",
            "--account",
            &udf,
            "--portal",
            &meter.url,
        ];
        if with_cache {
            args.extend(["--cache", &cache_s]);
        }
        let out = mesh(&admin, &args);
        assert!(out.lines().count() >= n.min(2), "{out}");
    };
    attempt(backend, n, "(c) ssh authorized-keys, cold", || {
        measure(backend, &meter, 5, |_| {}, |_| ak(false))
    });
    attempt(backend, n, "(c) ssh authorized-keys, cached", || {
        ak(true);
        measure(backend, &meter, 10, |_| {}, |_| ak(true))
    });
    // (d) revoke (three devices that never synced).
    let names: Vec<String> = others
        .iter()
        .rev()
        .skip(3 * run)
        .take(3)
        .map(|h| {
            h.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    attempt(backend, n, "(d) device revoke", || {
        measure(
            backend,
            &meter,
            names.len(),
            |_| {},
            |i| {
                mesh(&admin, &["device", "revoke", &names[i]]);
            },
        )
    });
    {
        let mut s = Store::open(&probe, false).expect("probe");
        account::sync::sync(&mut s, &host).expect("sync");
    }
    // (e) the agent's idle quick check.
    let view = {
        let s = Store::open(&probe, false).expect("probe");
        account::sync::quick_view(&s).expect("view")
    };
    attempt(backend, n, "(e) agent quick check (Status)", || {
        measure(
            backend,
            &meter,
            50,
            |_| {},
            |_| {
                assert!(!view.changed(0).expect("status"));
            },
        )
    });
    storage(backend, n, &portal.db)
}

/// Signed Downloads (what a sync sends when nothing changed) from
/// `clients` threads, spread over `urls`; returns requests per second.
fn throughput(urls: &[String], devices: &[PathBuf], clients: usize) -> f64 {
    // MESH_SCALE_REQUESTS: per client (the CI smoke run sends a few).
    let per_client: usize = std::env::var("MESH_SCALE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let home = devices[i % devices.len()].clone();
            let url = urls[i % urls.len()].clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                // Read what the requests need, and close the store (its
                // lock), before the clients that share a device start.
                let (a, keys, dev) = {
                    let store = Store::open(&home, false).expect("store");
                    let a = account::account(&store).expect("account");
                    let keys = account::state::device_keys(&store).expect("keys");
                    let dev = store.state().device.as_ref().expect("device").udf.clone();
                    (a, keys, dev)
                };
                let select: Vec<p::StoreIndex> = [st::ACCESS, st::DEVICE, st::APPLICATION]
                    .iter()
                    .map(|s| p::StoreIndex {
                        store: s.to_string(),
                        index: a.indices.get(*s).copied().unwrap_or(0),
                    })
                    .collect();
                let body = serde_json::to_value(p::DownloadRequest {
                    select,
                    changes: false,
                })
                .expect("json");
                let client = Client::new(&url).expect("client");
                barrier.wait();
                for _ in 0..per_client {
                    let _: p::DownloadResponse = client
                        .signed(
                            p::tx::DOWNLOAD,
                            &a.profile_udf,
                            &dev,
                            body.clone(),
                            &keys.authenticate,
                        )
                        .expect("download");
                }
            })
        })
        .collect();
    barrier.wait();
    let t = Instant::now();
    for h in handles {
        h.join().expect("client");
    }
    (clients * per_client) as f64 / t.elapsed().as_secs_f64()
}

fn throughputs(backend: Backend) {
    let dir = Scratch::new("scale-tp");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let (_, probe, _, _) = account_of(&dir, &portal.url, 9);
    let mut devices = vec![probe];
    // Eight synced devices for the clients.
    let host = mesh_agent::host();
    let slots = host.slots();
    for i in 0..7 {
        let home = dir.path(&format!("t{i}"));
        let mut s = Store::open(&home, true).expect("store");
        let r = account::join::request(
            &mut s,
            ADDR,
            &portal.url,
            Some(&format!("t{i}")),
            None,
            &slots,
        )
        .expect("request");
        let mut a = Store::open(&dir.path("admin"), false).expect("admin");
        account::admin::accept(&mut a, &host, &r.request_id, &[mesh_ssh::channel::ROLE])
            .expect("accept");
        account::sync::sync(&mut s, &host).expect("sync");
        devices.push(home);
    }
    for d in &devices {
        let mut s = Store::open(d, false).expect("store");
        account::sync::sync(&mut s, &host).expect("sync");
    }
    let one = [portal.url.clone()];
    for clients in [1, 8, 32] {
        let r = throughput(&one, &devices, clients);
        println!(
            "| {:?} | 1 process | {clients} clients | {r:.0} req/s |",
            backend
        );
    }
    if backend == Backend::Postgres {
        let second = PortalProc::start_db(&portal.db, "127.0.0.1:0", &[]);
        let two = [portal.url.clone(), second.url.clone()];
        for clients in [8, 32] {
            let r = throughput(&two, &devices, clients);
            println!(
                "| {:?} | 2 processes | {clients} clients | {r:.0} req/s |",
                backend
            );
        }
    }
}

fn main() {
    std::env::set_var("MESH_KEYSTORE", "file");
    let sizes: Vec<usize> = std::env::var("MESH_SCALE_SIZES")
        .unwrap_or_else(|_| "10,100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    // MESH_SCALE_BACKENDS=sqlite or =postgres runs one backend (e.g. at
    // 1,000 devices, where building each account takes minutes).
    let only = std::env::var("MESH_SCALE_BACKENDS").ok();
    let mut backends = Vec::new();
    if only.as_deref() != Some("postgres") {
        backends.push(Backend::Sqlite);
    }
    if only.as_deref() != Some("sqlite") && Backend::postgres_available() {
        backends.push(Backend::Postgres);
    }
    if std::env::var_os("MESH_SCALE_SKIP_OPS").is_none() {
        println!("| backend | devices | operation | median | bytes up | bytes down | requests | SQL statements |");
        println!("|---|---|---|---|---|---|---|---|");
        let mut stored = Vec::new();
        for &n in &sizes {
            for &b in &backends {
                stored.push(scale(b, n));
            }
        }
        println!();
        println!("| backend | devices | access lists | account bytes (quota) | Access stored | Access whole | all entries whole (before issue 24) | database size |");
        println!("|---|---|---|---|---|---|---|---|");
        for line in stored {
            println!("{line}");
        }
    }
    if std::env::var_os("MESH_SCALE_SKIP_THROUGHPUT").is_none() {
        println!();
        println!("| backend | processes | clients | signed Downloads |");
        println!("|---|---|---|---|");
        for &b in &backends {
            throughputs(b);
        }
    }
}
