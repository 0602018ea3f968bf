//! The unauthenticated `Public` read (issue 21): a store selected twice
//! is refused, and a read takes its page by the entries' sizes before it
//! reads them, so the portal never holds more than the page (16 MiB) and
//! one entry, however large the store's entries.

use mesh_tests::raw::{connect_from, post};
use mesh_tests::{Backend, Device, PortalProc, Scratch, Val};

use super::ADDR;

fn public(url: &str, select: &[&str]) -> (u16, String) {
    let select: Vec<serde_json::Value> = select
        .iter()
        .map(|s| serde_json::json!({"Store": s, "Index": 0}))
        .collect();
    let body = serde_json::json!({"AccountAddress": ADDR, "Select": select}).to_string();
    post(
        connect_from("127.0.0.1", url),
        "/mesh/v1/Public",
        body.as_bytes(),
    )
}

/// The portal's peak resident memory (kB).
fn peak_kb(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

fn a_public_read_selects_each_store_once_within_its_budget(backend: Backend) {
    let dir = Scratch::new("public-reads");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    Device::create_account(&dir.0, ADDR, &portal.url);
    // Each case: the selection, the status, what the answer says.
    let cases: [(&[&str], u16, &str); 4] = [
        (&["Access", "Access"], 400, "selected twice"),
        (&["Checkpoint"; 7], 400, "selected twice"),
        (&["Device", "Access", "Device"], 400, "selected twice"),
        (&["Device", "Access", "Checkpoint"], 200, "Updates"),
    ];
    for (select, status, says) in cases {
        let (got, body) = public(&portal.url, select);
        let short: String = body.chars().take(300).collect();
        assert_eq!(got, status, "{select:?}: {short}");
        assert!(body.contains(says), "{select:?}: {short}");
    }
    // 257 entries of 1 MiB in the Device store (written in the database:
    // a public read does not verify what it serves).
    let db = &portal.db;
    let account = db.row("SELECT udf FROM accounts", &[])[0].text();
    let last = db.row("SELECT MAX(idx) FROM entries WHERE store = 'Device'", &[])[0].int();
    let pad = format!("{{\"Pad\":\"{}\"}}", "0".repeat(1 << 20));
    db.execute(
        "INSERT INTO entries (account, store, idx, data) VALUES ($1, 'Device', $2, $3)",
        &[(&account).into(), Val::Int(last + 1), pad.into()],
    );
    for i in 2..=257i64 {
        db.execute(
            "INSERT INTO entries (account, store, idx, data)
             SELECT account, store, $1, data FROM entries WHERE store = 'Device' AND idx = $2",
            &[Val::Int(last + i), Val::Int(last + 1)],
        );
    }
    let before = peak_kb(portal.pid());
    let (status, body) = public(&portal.url, &["Device"]);
    assert_eq!(status, 200);
    let grown_mb = (peak_kb(portal.pid()) - before) / 1024;
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
    let device = &answer["Updates"][0];
    let n = device["Entries"].as_array().map_or(0, Vec::len);
    assert!(
        device["Partial"].as_bool() == Some(true) && n <= 17,
        "{n} entries"
    );
    assert!(body.len() < 18 << 20, "an answer of {} bytes", body.len());
    // Reading the 257 entries (257 MiB) before cutting the page grew it by
    // more than that; the page and its answer are about 16 MiB each.
    eprintln!("a public read of 257 MiB of entries: {n} entries, peak +{grown_mb} MB");
    assert!(
        grown_mb < 128,
        "the portal's peak memory grew by {grown_mb} MB"
    );
}

mesh_tests::on_both_backends!(a_public_read_selects_each_store_once_within_its_budget);
