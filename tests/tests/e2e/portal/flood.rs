//! A third party who knows only the account's address (issue 21): Connect
//! requests, however many and however large, cannot fill the account, and
//! the administrator still revokes a stolen device.

use mesh_account::client::{sign_request, Client, ClientError};
use mesh_core::objects::{DeviceBaseKeys, DeviceDescription};
use mesh_core::portal as p;
use mesh_tests::{Backend, PortalDb, PortalProc, Scratch};

use super::{account_with_member, ADDR};

/// What an anonymous client sends: a fresh device key of its own, and a
/// Connect whose client nonce has `nonce` bytes, padded by `pad` bytes, with
/// a made-up PIN (the administrator's sync refuses it, which frees the
/// pending cap for the next wave).
fn connect(client: &Client, nonce: usize, pad: usize) -> Result<serde_json::Value, ClientError> {
    let base = DeviceBaseKeys::generate();
    let description = DeviceDescription {
        name: "flood".into(),
        platform: "x".repeat(pad),
    };
    let profile = base
        .profile(description, &mesh_agent::host().slots())
        .expect("profile");
    let udf = mesh_core::objects::ProfileDevice::verify(&profile)
        .expect("profile")
        .udf();
    let body = p::RequestConnection {
        account_address: ADDR.into(),
        profile_device: profile,
        client_nonce: mesh_core::b64::encode(&vec![7u8; nonce]),
        pin_id: Some("NOSUCHPIN".into()),
        pin_witness: Some(mesh_core::b64::encode(&[1u8; 32])),
    };
    let body = serde_json::to_value(body).expect("json");
    let env = sign_request(p::tx::CONNECT, "", &udf, body, &base.authenticate);
    client.post(p::tx::CONNECT, &env)
}

/// Pending requests the portal holds for the account: count and bytes.
fn pool(db: &PortalDb) -> (i64, i64) {
    let r = db.row(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM requests WHERE data IS NOT NULL",
        &[],
    );
    (r[0].int(), r[1].int())
}

fn account_bytes(db: &PortalDb) -> i64 {
    db.row(
        "SELECT bytes FROM accounts WHERE address = $1",
        &[ADDR.into()],
    )[0]
    .int()
}

fn a_connect_flood_cannot_stop_a_revocation(backend: Backend) {
    let dir = Scratch::new("connect-flood");
    let data = dir.path("portal");
    let portal = PortalProc::on_with(backend, &data, &["--connects-per-minute", "1000"]);
    let (a, b) = account_with_member(&dir.0, &portal);
    let client = Client::new(&portal.url).expect("client");
    let bytes_before = account_bytes(&portal.db);
    // Each case: (name, nonce bytes, padding, requests, accepted, refusal).
    let cases: [(&str, usize, usize, usize, usize, &str); 4] = [
        ("a 64-byte client nonce", 64, 0, 1, 0, "must be 16 to 32"),
        ("a 1 KiB client nonce", 1024, 0, 1, 0, "must be 16 to 32"),
        ("a 64 KiB request", 16, 64 << 10, 1, 0, "413"),
        ("40 requests", 32, 0, 40, 32, p::code::TOO_MANY_PENDING),
    ];
    for wave in 0..2 {
        for (name, nonce, pad, n, want, says) in cases {
            let results: Vec<_> = (0..n).map(|_| connect(&client, nonce, pad)).collect();
            let kept = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(kept, want, "wave {wave}, {name}");
            for e in results.iter().filter_map(|r| r.as_ref().err()) {
                assert!(e.to_string().contains(says), "wave {wave}, {name}: {e}");
            }
        }
        let (held, held_bytes) = pool(&portal.db);
        assert_eq!(held, 32, "wave {wave}: the pool holds its cap");
        assert!(
            u64::try_from(held_bytes).expect("bytes") <= p::MAX_PENDING_BYTES,
            "wave {wave}: {held_bytes} bytes pending"
        );
        // The administrator's sync refuses every made-up PIN: the pool
        // drops what was answered, the next wave meets the cap again.
        let out = a.ok(&["sync"]);
        assert!(out.contains("NOSUCHPIN") || out.contains("PIN"), "{out}");
        assert_eq!(pool(&portal.db).0, 0, "wave {wave}: answered, dropped");
    }
    // What third parties sent is not the account's: its bytes grew by the
    // administrator's own answers only (two waves of 32 refusals).
    let grown = account_bytes(&portal.db) - bytes_before;
    assert!(grown < 64 * 4096, "the account grew by {grown} bytes");
    let state = std::fs::metadata(a.home.join("state.json")).expect("state");
    assert!(
        state.len() < 1 << 20,
        "the administrator's state is {} bytes",
        state.len()
    );

    // The account at its quota: the administrator's own writes are refused
    // without saying what it holds; a revocation still passes.
    let db = portal.db.clone();
    let listen = portal.url.trim_start_matches("http://").to_string();
    portal.stop();
    let held = account_bytes(&db);
    let limit = (held + 100).to_string();
    let _portal = PortalProc::start_db(&db, &listen, &["--max-account-bytes", &limit]);
    let e = a.fails(&["ssh", "principals", "root", "alice"]);
    assert!(
        e.contains(p::code::QUOTA_EXCEEDED) || e.contains("limit of bytes"),
        "{e}"
    );
    assert!(
        !e.contains(&held.to_string()) && !e.contains(&limit),
        "no byte count: {e}"
    );
    a.ok(&["device", "revoke", "phone"]);
    let e = b.fails(&["sync"]);
    assert!(e.contains("revoked") && e.contains("wiped"), "{e}");
    let e = b.fails(&["sync"]);
    assert!(e.contains("revoked"), "the phone stays refused: {e}");
}

mesh_tests::on_both_backends!(a_connect_flood_cannot_stop_a_revocation);

/// A request too large for its route is answered 413 with `Connection:
/// close`: the portal does not read the rest, so a client must not send
/// its next request on that connection.
#[test]
fn a_request_too_large_closes_its_connection_and_says_so() {
    use std::io::{Read, Write};
    let dir = Scratch::new("too-large");
    let portal = PortalProc::start(&dir.path("portal"));
    let addr = portal.url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let body = vec![b'A'; 64 << 10];
    let head = format!(
        "POST /mesh/v1/Connect HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    let _ = s.write_all(&body); // the portal may stop reading: that is the point
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 413"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
}
