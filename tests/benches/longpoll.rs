//! Push by long-poll (docs/BENCHMARKS.md): N devices' agents waiting at
//! once in a held Status request; the portal's memory while they wait, and
//! how long after an administrator's change they are all answered.
//!
//! Run: `cargo build --release --bins && cargo bench -p mesh-tests --bench longpoll`
//! (`MESH_BENCH_WAITERS` sets N, default 1000).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mesh_account::client::Client;
use mesh_account::store::Store;
use mesh_core::portal::{self as p, store as st};
use mesh_tests::{Device, PortalProc, Scratch};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    std::env::set_var("MESH_KEYSTORE", "file");
    let n: usize = std::env::var("MESH_BENCH_WAITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = Scratch::new("bench-longpoll");
    let portal = PortalProc::start(&dir.path("portal"));
    let admin = Device::create_account(&dir.0, "bench@example.com", &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&admin, "bench@example.com", &portal.url, "phone");
    let store = Store::open(&b.home, false).expect("store");
    let a = mesh_account::account(&store).expect("account");
    let keys = mesh_account::state::device_keys(&store).expect("keys");
    let dev = store.state().device.as_ref().expect("device").udf.clone();
    drop(store);
    let known: Vec<p::StoreIndex> = [st::ACCESS, st::DEVICE, st::APPLICATION, st::PUBLISHED]
        .iter()
        .map(|s| p::StoreIndex {
            store: s.to_string(),
            index: a.indices.get(*s).copied().unwrap_or(0),
        })
        .collect();
    let body = serde_json::to_value(p::StatusRequest {
        wait: p::MAX_WAIT,
        known,
        applied: None,
    })
    .expect("json");
    let idle = rss_kib(portal.pid());
    let client = Arc::new(Client::new(&portal.url).expect("client"));
    let keys = Arc::new(keys);
    let ready = Arc::new(Barrier::new(n + 1));
    let mut handles = Vec::new();
    for _ in 0..n {
        let (client, keys, body, ready) =
            (client.clone(), keys.clone(), body.clone(), ready.clone());
        let (profile, dev) = (a.profile_udf.clone(), dev.clone());
        handles.push(
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    ready.wait();
                    let r: Result<p::StatusResponse, _> =
                        client.signed(p::tx::STATUS, &profile, &dev, body, &keys.authenticate);
                    (Instant::now(), r.is_ok())
                })
                .expect("thread"),
        );
    }
    ready.wait();
    // Let every request reach the portal and be held (a bench, not a test:
    // the portal offers no count of its waiters).
    std::thread::sleep(Duration::from_secs(5));
    let waiting = rss_kib(portal.pid());
    let t = Instant::now();
    admin.ok(&["ssh", "principals", "root", "bench"]);
    let committed = t.elapsed();
    let mut wake: Vec<Duration> = Vec::new();
    let mut failed = 0;
    for h in handles {
        let (at, ok) = h.join().expect("join");
        if ok {
            wake.push(at.saturating_duration_since(t));
        } else {
            failed += 1;
        }
    }
    wake.sort();
    let pct = |q: f64| {
        wake.get(((q * wake.len() as f64).ceil() as usize).clamp(1, wake.len().max(1)) - 1)
            .copied()
            .unwrap_or_default()
    };
    println!("long-poll, {n} waiting devices: portal RSS idle {idle} KiB, while waiting {waiting} KiB ({:.1} KiB per waiter)", (waiting.saturating_sub(idle)) as f64 / n as f64);
    println!(
        "change committed after {:.0} ms (the CLI command); waiters answered: p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms after the command started; {failed} failed",
        committed.as_secs_f64() * 1000.0,
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        pct(1.0).as_secs_f64() * 1000.0
    );
}
