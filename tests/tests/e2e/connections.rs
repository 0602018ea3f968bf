//! What a connection may hold (issue 21): silent connections are cut by
//! the idle timer (plain, TLS, an HTTP/2 preface), one source holds a
//! bounded number, and a portal out of descriptors waits instead of
//! spinning. The attacker is a raw client on loopback, from its own
//! source address (127.0.0.2 and up) where the cap matters.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use mesh_tests::raw::{closed_within, connect_from, post};
use mesh_tests::{PortalProc, Scratch};

/// Well above the 2 s timer the portals below run with.
const BOUND: Duration = Duration::from_secs(15);

/// A self-signed certificate for 127.0.0.1 (the client does not check it).
fn tls_files(dir: &Scratch) -> (String, String) {
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let o = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = |p: std::path::PathBuf| p.display().to_string();
    (s(cert), s(key))
}

/// A TLS client that completes its handshake and then says nothing: its
/// log once the portal closed it (s_client exits, its output ends), or
/// `None` while still open after the bound.
fn tls_silent_closed(url: &str) -> Option<String> {
    use std::io::Read;
    let addr = url.trim_start_matches("https://");
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("s_client");
    // Its standard error ends when it exits; a bounded wait on it.
    let mut err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    let closed = rx.recv_timeout(BOUND);
    let _ = child.kill();
    let _ = child.wait();
    closed.ok()
}

#[test]
fn silent_connections_are_cut_by_the_idle_timer() {
    let dir = Scratch::new("idle");
    let timers = ["--idle-timeout", "2", "--handshake-timeout", "30"];
    let plain = PortalProc::start_with(&dir.path("plain"), &timers);
    // Each case: what the client sends before it falls silent.
    let cases: [(&str, &[u8]); 3] = [
        ("nothing at all", b""),
        ("an HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        (
            "one whole request, then nothing (keep-alive)",
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
    ];
    for (name, first) in cases {
        let mut s = connect_from("127.0.0.1", &plain.url);
        s.write_all(first).expect("write");
        assert!(
            closed_within(&mut s, BOUND).is_some(),
            "plain, {name}: still open"
        );
    }
    if !mesh_tests::require_tool("openssl") {
        return;
    }
    let (cert, key) = tls_files(&dir);
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend(timers);
    let tls = PortalProc::start_with(&dir.path("tls"), &args);
    let mut s = connect_from("127.0.0.1", &tls.url);
    assert!(
        closed_within(&mut s, BOUND).is_some(),
        "TLS, no ClientHello: still open"
    );
    let log = tls_silent_closed(&tls.url).expect("TLS, a handshake and then nothing: still open");
    assert!(
        log.contains("depth=0"),
        "the handshake completed first: {log}"
    );
}

/// Many silent sockets from one source: past its cap each is closed at
/// once, and the portal serves others meanwhile.
#[test]
fn one_source_holds_a_bounded_number_of_connections() {
    let dir = Scratch::new("per-source");
    let portal = PortalProc::start_with(
        &dir.path("portal"),
        &[
            "--idle-timeout",
            "60",
            "--max-connections-per-source",
            "200",
        ],
    );
    let held: Vec<TcpStream> = (0..200)
        .map(|_| connect_from("127.0.0.2", &portal.url))
        .collect();
    let (status, body) = post(
        connect_from("127.0.0.1", &portal.url),
        "/mesh/v1/Public",
        br#"{"AccountAddress":"nobody@example.com"}"#,
    );
    assert_eq!(status, 404, "served meanwhile: {body}");
    // The 201st from that source is closed without an answer.
    let mut extra = connect_from("127.0.0.2", &portal.url);
    assert!(
        closed_within(&mut extra, BOUND).is_some(),
        "past the cap: still open"
    );
    // Another source is not charged for it.
    let mut other = connect_from("127.0.0.3", &portal.url);
    other
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut other, &mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
}

/// CPU time (user + system, clock ticks) the process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which ends with ')'): utime is the 12th.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// Out of descriptors (`prlimit` gives the portal 64), accept fails with
/// EMFILE while the connections wait in the listen queue: the portal waits
/// for the idle timer to free some instead of spinning, and then serves
/// the request queued behind them.
#[test]
fn out_of_descriptors_the_accept_loop_waits() {
    if !mesh_tests::require_tool("prlimit") {
        return;
    }
    let dir = Scratch::new("emfile");
    let portal = PortalProc::start_under(
        &["prlimit", "--nofile=64:64", "--"],
        &dir.path("portal"),
        &["--idle-timeout", "2"],
    );
    let before = cpu_ticks(portal.pid());
    let held: Vec<TcpStream> = (0..120)
        .map(|_| connect_from("127.0.0.2", &portal.url))
        .collect();
    let (status, body) = post(
        connect_from("127.0.0.1", &portal.url),
        "/mesh/v1/Public",
        br#"{"AccountAddress":"nobody@example.com"}"#,
    );
    assert_eq!(status, 404, "served once descriptors were free: {body}");
    let used = cpu_ticks(portal.pid()) - before;
    // Spinning on EMFILE was a core's worth (100 ticks a second) for the
    // seconds the silent connections held the descriptors.
    eprintln!("out of descriptors: the portal used {used} ticks of CPU");
    assert!(used < 100, "the portal used {used} ticks of CPU");
    drop(held);
}

/// Connect and Bind are rated per source: past the rate a source is
/// answered `429 RateLimited` with `Retry-After`, and others are not.
#[test]
fn connect_and_bind_are_rated_per_source() {
    let dir = Scratch::new("rates");
    let portal = PortalProc::start_with(
        &dir.path("portal"),
        &["--connects-per-minute", "3", "--binds-per-minute", "2"],
    );
    // Each case: the transaction, its rate, an address of its own.
    let cases = [("Connect", 3, "127.0.0.2"), ("Bind", 2, "127.0.0.3")];
    for (tx, rate, source) in cases {
        let path = format!("/mesh/v1/{tx}");
        for i in 0..rate {
            let (status, body) = post(connect_from(source, &portal.url), &path, b"{}");
            assert_eq!(
                status, 400,
                "{tx} {i}: refused as malformed, not rated: {body}"
            );
        }
        let (status, body) = post(connect_from(source, &portal.url), &path, b"{}");
        assert_eq!(status, 429, "{tx}: past the rate: {body}");
        assert!(
            body.contains("RateLimited") && body.contains("a minute"),
            "{body}"
        );
        let (status, _) = post(connect_from("127.0.0.4", &portal.url), &path, b"{}");
        assert_eq!(status, 400, "{tx}: another source is not charged");
    }
}
