//! Portal benchmarks (docs/BENCHMARKS.md):
//! 1. time to connect a device end to end on loopback, through the `mesh`
//!    CLI as a user runs it (request, accept on the administrator, sync);
//! 2. sync throughput with many devices syncing at once: each client owns
//!    one connected device and sends freshly signed Download requests (what
//!    `mesh sync` sends when nothing changed), one at a time per client.
//!
//! Run: `cargo build --release --bins && cargo bench -p mesh-tests --bench portal`
//! (`MESH_BENCH_DEVICES`, `MESH_BENCH_REQUESTS` change the sizes).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mesh_account as account;
use mesh_account::client::Client;
use mesh_account::store::Store;
use mesh_core::portal::{self as p, store as st};
use mesh_tests::{Device, PortalProc, Scratch};

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    std::env::set_var("MESH_KEYSTORE", "file");
    let dir = Scratch::new("bench");
    let portal = PortalProc::start(&dir.path("portal"));
    let admin = Device::new(&dir.0, "admin");
    admin.ok(&[
        "account",
        "create",
        "bench@example.com",
        "--portal",
        &portal.url,
        "--recovery",
        &admin.kit(),
    ]);

    // 1. Connect end to end through the CLI.
    let rounds = env_usize("MESH_BENCH_CONNECTS", 20);
    let mut connect = Vec::new();
    for i in 0..rounds {
        let d = Device::new(&dir.0, &format!("cli-{i}"));
        d.ok(&["device", "init", "--name", &format!("cli-{i}")]);
        let t = Instant::now();
        let w = d.ok(&[
            "device",
            "request",
            "bench@example.com",
            "--portal",
            &portal.url,
        ]);
        admin.ok(&["device", "accept", w.trim()]);
        d.ok(&["sync"]);
        connect.push(t.elapsed());
    }
    connect.sort();
    println!(
        "connect (CLI: request + accept + sync), {rounds} devices: p50 {} p99 {} max {}",
        ms(pct(&connect, 0.5)),
        ms(pct(&connect, 0.99)),
        ms(pct(&connect, 1.0))
    );

    // 2. Many devices, connected with a PIN through the library (faster set-up).
    let devices = env_usize("MESH_BENCH_DEVICES", 64);
    let mut admin_store = Store::open(&admin.home, false).expect("admin store");
    let (pin, _) = account::admin::new_pin(
        &mut admin_store,
        &mesh_agent::host(),
        &[mesh_core::objects::Role::named("ssh")],
        3600,
    )
    .expect("pin");
    drop(admin_store);
    let mut homes = Vec::new();
    for i in 0..devices {
        let home = dir.path(&format!("dev-{i}"));
        let mut s = Store::open(&home, true).expect("store");
        // Each PIN works once: register one per device.
        let pin_i = if i == 0 {
            pin.clone()
        } else {
            let mut a = Store::open(&admin.home, false).expect("admin");
            account::admin::new_pin(
                &mut a,
                &mesh_agent::host(),
                &[mesh_core::objects::Role::named("ssh")],
                3600,
            )
            .expect("pin")
            .0
        };
        account::join::request(
            &mut s,
            "bench@example.com",
            &portal.url,
            Some(&format!("dev-{i}")),
            Some(&pin_i),
            &mesh_agent::host().slots(),
        )
        .expect("request");
        {
            let mut a = Store::open(&admin.home, false).expect("admin");
            account::sync::sync(&mut a, &mesh_agent::host()).expect("admin sync");
        }
        account::sync::sync(&mut s, &mesh_agent::host()).expect("device sync");
        homes.push(home);
    }
    // Bring every device up to date, so that the measured syncs find nothing new.
    for home in &homes {
        let mut s = Store::open(home, false).expect("store");
        account::sync::sync(&mut s, &mesh_agent::host()).expect("sync");
    }
    let per_client = env_usize("MESH_BENCH_REQUESTS", 400);
    for clients in [1usize, 8, 32, 64].into_iter().filter(|c| *c <= devices) {
        let barrier = Arc::new(Barrier::new(clients));
        let mut handles = Vec::new();
        let started = Instant::now();
        for home in homes.iter().take(clients) {
            let home = home.clone();
            let url = portal.url.clone();
            let barrier = barrier.clone();
            handles.push(std::thread::spawn(move || {
                let store = Store::open(&home, false).expect("store");
                let a = account::account(&store).expect("account");
                let keys = account::state::device_keys(&store).expect("keys");
                let dev = store.state().device.as_ref().expect("device").udf.clone();
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
                let mut lat = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let t = Instant::now();
                    let _: p::DownloadResponse = client
                        .signed(
                            p::tx::DOWNLOAD,
                            &a.profile_udf,
                            &dev,
                            body.clone(),
                            &keys.authenticate,
                        )
                        .expect("download");
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut all: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        let wall = started.elapsed();
        all.sort();
        println!(
            "sync (signed Download, nothing new), {clients} clients x {per_client}: {:.0} req/s, p50 {} p99 {}",
            all.len() as f64 / wall.as_secs_f64(),
            ms(pct(&all, 0.5)),
            ms(pct(&all, 0.99))
        );
    }
    println!("devices in the account: {}", devices + rounds + 1);
}
