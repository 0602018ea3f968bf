//! A lying portal (issue: a lying portal cannot undo a revocation): what
//! a device refuses when the portal answers for someone else.

use mesh_tests::{Device, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

#[test]
fn a_portal_that_substitutes_the_profile_in_the_pin_flow_is_refused() {
    let dir = Scratch::new("hostile-pin");
    let real = PortalProc::start(&dir.path("real"));
    let a = Device::create_account(&dir.0, ADDR, &real.url);
    let pin = a.ok(&["device", "pin"]);
    // The hostile portal holds another account of the same address, whose
    // administrator accepts whatever asks.
    let hostile = PortalProc::start(&dir.path("hostile"));
    let m = Device::new(&dir.0, "mallory");
    m.ok(&[
        "account",
        "create",
        ADDR,
        "--portal",
        &hostile.url,
        "--device",
        "evil",
        "--recovery",
        &m.kit(),
    ]);
    let d = Device::new(&dir.0, "d");
    let w = d.ok_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            &hostile.url,
            "--name",
            "new",
            "--pin",
            "--no-wait",
        ],
        pin.trim(),
    );
    m.ok(&["device", "accept", w.trim()]);
    let e = d.fails(&["sync"]);
    assert!(e.contains("does not prove the PIN"), "{e}");
    assert!(e.contains("refusing what the portal returned"), "{e}");
    // Nothing was kept: no activation, no keys of that account.
    let show = d.json(&["account", "show"]);
    assert_eq!(show["membership"], "pending", "{show}");
    assert_eq!(show["roles"], serde_json::json!([]), "{show}");
    assert!(d.fails(&["ssh", "public-key"]).contains("error"));

    // With the real portal the same PIN works, and the proof holds.
    let d2 = Device::new(&dir.0, "d2");
    d2.ok_input(
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            &real.url,
            "--name",
            "new",
            "--pin",
            "--no-wait",
        ],
        pin.trim(),
    );
    a.ok(&["sync"]);
    d2.ok(&["sync"]);
    assert_eq!(d2.json(&["account", "show"])["membership"], "member");
}

/// What a real portal publishes for a real account: its profile UDF and
/// the signed profile, for a fake portal to serve.
fn real_account(dir: &std::path::Path, portal: &PortalProc) -> (String, serde_json::Value) {
    let a = Device::create_account(dir, ADDR, &portal.url);
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("udf")
        .to_string();
    let client = mesh_account::client::Client::new(&portal.url).expect("client");
    let r: serde_json::Value = client
        .post("Public", &serde_json::json!({"ProfileUdf": udf}))
        .expect("public");
    (udf, r["EnvelopedProfileAccount"].clone())
}

#[test]
fn a_portal_that_redirects_loops_or_floods_is_refused_within_seconds() {
    use mesh_tests::proxy::FakePortal;
    let dir = Scratch::new("hostile-bounds");
    let portal = PortalProc::start(&dir.path("portal"));
    let (udf, profile) = real_account(&dir.0, &portal);
    let looping = serde_json::to_vec(&serde_json::json!({
        "EnvelopedProfileAccount": profile,
        "Updates": [{"Store": "Access", "Entries": [], "Partial": true}],
    }))
    .expect("json");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "redirect",
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            "a portal never redirects",
        ),
        ("loop", FakePortal::json("200 OK", &looping), "is at fault: it answered 'more follow'"),
        ("flood", FakePortal::json("200 OK", &vec![b' '; 40 << 20]), "larger than"),
    ];
    let d = Device::new(&dir.0, "server");
    for (name, answer, expect) in cases {
        let fake = FakePortal::start(move |_| answer.clone());
        let t = std::time::Instant::now();
        let e = d.fails(&[
            "ssh",
            "authorized-keys",
            "--account",
            &udf,
            "--portal",
            &fake.url,
            "--user",
            "alice",
        ]);
        assert!(e.contains(expect), "{name}: {e}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{name}: took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn requests_with_extreme_times_or_nonces_are_refused_and_the_portal_keeps_serving() {
    use mesh_core::portal as p;
    let dir = Scratch::new("hostile-requests");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let show = a.json(&["account", "show"]);
    let (udf, dev) = (
        show["profile_udf"].as_str().expect("udf"),
        show["device"].as_str().expect("dev"),
    );
    let keys = {
        let store = mesh_account::store::Store::open(&a.home, false).expect("store");
        mesh_account::state::device_keys(&store).expect("keys")
    };
    let client = mesh_account::client::Client::new(&portal.url).expect("client");
    let now = mesh_account::client::now();
    let b64 = |n: usize| mesh_core::b64::encode(&vec![7u8; n]);
    let cases: Vec<(&str, u64, String, &str, &str)> = vec![
        (
            "time at u64::MAX",
            u64::MAX,
            b64(16),
            p::code::REPLAY,
            "freshness window",
        ),
        ("time zero", 0, b64(16), p::code::REPLAY, "freshness window"),
        (
            "time an hour ahead",
            now + 3600,
            b64(16),
            p::code::REPLAY,
            "freshness window",
        ),
        (
            "short nonce",
            now,
            b64(8),
            p::code::BAD_REQUEST,
            "shorter than 128 bits",
        ),
        (
            "oversized nonce",
            now,
            b64(1024),
            p::code::BAD_REQUEST,
            "longer than 32 bytes",
        ),
    ];
    for (name, time, nonce, code, says) in cases {
        let req = p::Request {
            account: udf.to_string(),
            device: dev.to_string(),
            time,
            nonce,
            transaction: p::tx::STATUS.into(),
            body: serde_json::json!({}),
        };
        let env =
            mesh_core::envelope::Signed::sign_object(p::ct::REQUEST, &req, &keys.authenticate);
        let e = client
            .post::<_, serde_json::Value>(p::tx::STATUS, &env)
            .expect_err(name);
        assert_eq!(e.code(), Some(code), "{name}: {e}");
        assert!(e.to_string().contains(says), "{name}: {e}");
    }
    // Still serving, and nothing changed for the device.
    a.ok(&["sync"]);
}

#[test]
fn a_connect_for_no_account_costs_the_portal_no_nonce() {
    use mesh_core::portal as p;
    let dir = Scratch::new("hostile-connect");
    let portal = PortalProc::start(&dir.path("portal"));
    let d = Device::new(&dir.0, "stranger");
    d.ok(&["device", "init", "--name", "stranger"]);
    let store = mesh_account::store::Store::open(&d.home, false).expect("store");
    let base = mesh_account::device::base_keys(&store).expect("keys");
    let dev = store.state().device.clone().expect("device");
    let body = serde_json::to_value(p::RequestConnection {
        account_address: "nobody@example.com".into(),
        profile_device: dev.profile.clone(),
        client_nonce: mesh_core::b64::encode(&[9u8; 16]),
        pin_id: None,
        pin_witness: None,
    })
    .expect("json");
    let env =
        mesh_account::client::sign_request(p::tx::CONNECT, "", &dev.udf, body, &base.authenticate);
    let client = mesh_account::client::Client::new(&portal.url).expect("client");
    // The same request twice: unknown both times, never a replay, so its
    // nonce was not kept.
    for _ in 0..2 {
        let e = client
            .post::<_, serde_json::Value>(p::tx::CONNECT, &env)
            .expect_err("no account");
        assert_eq!(e.code(), Some(p::code::UNKNOWN_ACCOUNT), "{e}");
    }
}

/// Quotas hold inside the transaction that would pass them: a second
/// account past `--max-accounts`, a transaction past `--max-account-bytes`
/// (nothing written), and at most 32 pending requests however many
/// devices ask at once.
fn the_portal_enforces_its_quotas_inside_each_transaction(backend: mesh_tests::Backend) {
    let dir = Scratch::new("quotas");
    let data = dir.path("portal");
    let portal = PortalProc::on_with(
        backend,
        &data,
        &["--max-accounts", "1", "--connects-per-minute", "100"],
    );
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    let e = b.fails(&[
        "account",
        "create",
        "bob@example.com",
        "--portal",
        &portal.url,
        "--recovery",
        &b.kit(),
    ]);
    assert!(
        e.contains("limit of 1 accounts") && e.contains("hint:"),
        "{e}"
    );
    // The kit was written before Bind; the refusal took it back.
    assert!(
        b.kit_dirs().iter().all(|d| !d.exists()),
        "a kit for a root no account uses"
    );
    // An address that has an account is refused before any kit is written.
    let c = Device::new(&dir.0, "c");
    let e = c.fails(&[
        "account",
        "create",
        ADDR,
        "--portal",
        &portal.url,
        "--recovery",
        &c.kit(),
    ]);
    assert!(e.contains("already has an account"), "{e}");
    assert!(c.kit_dirs().iter().all(|d| !d.exists()));

    let children: Vec<_> = (0..40)
        .map(|i| {
            let name = format!("d{i}");
            Device::new(&dir.0, &name)
                .command(&[
                    "device",
                    "request",
                    ADDR,
                    "--portal",
                    &portal.url,
                    "--name",
                    &name,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    let kept = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(kept, 32, "pending requests kept");
    for o in outs.iter().filter(|o| !o.status.success()) {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("unanswered connection requests"), "{e}");
    }
    let pending = a.json(&["device", "pending"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(32), "{pending}");

    // The byte quota: the same portal again, its limit just above what the
    // account holds; the next administrator event does not fit.
    let db = portal.db.clone();
    let held = || -> (i64, i64) {
        let r = db.row(
            "SELECT bytes, (SELECT COUNT(*) FROM entries) FROM accounts",
            &[],
        );
        (r[0].int(), r[1].int())
    };
    let (bytes, entries) = held();
    let listen = portal.url.trim_start_matches("http://").to_string();
    portal.stop();
    let limit = (bytes + 200).to_string();
    let _portal = PortalProc::start_db(&db, &listen, &["--max-account-bytes", &limit]);
    let e = a.fails(&["ssh", "principals", "root", "alice"]);
    assert!(e.contains("limit of bytes per account"), "{e}");
    assert!(
        !e.contains(&bytes.to_string()) && !e.contains(&limit),
        "{e}"
    );
    assert_eq!(held(), (bytes, entries), "nothing was written");
}

/// A request head that never ends, and a body that never comes, are cut
/// off by the portal's timeouts.
#[test]
fn slow_clients_are_cut_off() {
    let dir = Scratch::new("slow");
    let portal = PortalProc::start_with(
        &dir.path("portal"),
        &["--handshake-timeout", "1", "--request-timeout", "2"],
    );
    assert!(mesh_tests::closed_by_peer(
        &portal.url,
        b"POST /mesh/v1/Status HTTP/1.1\r\nHost: x\r\n"
    ));
    assert!(mesh_tests::closed_by_peer(
        &portal.url,
        b"POST /mesh/v1/Status HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"
    ));
    // The portal serves on.
    Device::create_account(&dir.0, ADDR, &portal.url);
}

mesh_tests::on_both_backends!(the_portal_enforces_its_quotas_inside_each_transaction);
