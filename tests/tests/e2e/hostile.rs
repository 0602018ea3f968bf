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
    ]);
    let d = Device::new(&dir.0, "d");
    let w = d.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &hostile.url,
        "--name",
        "new",
        "--pin",
        pin.trim(),
    ]);
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
    d2.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &real.url,
        "--name",
        "new",
        "--pin",
        pin.trim(),
    ]);
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
        ("loop", FakePortal::json("200 OK", &looping), "'more follow' with no entries"),
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
