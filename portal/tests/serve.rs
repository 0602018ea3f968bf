//! The `mesh-portal` binary: listening rules, health, and clean shutdown.
//! (The transactions are exercised end to end in `tests/`.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mesh-portal-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn refuses_plain_http_off_loopback() {
    let o = Command::new(env!("CARGO_BIN_EXE_mesh-portal"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(scratch("plain"))
        .output()
        .expect("run");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{e}");
    assert!(
        e.contains("mesh-portal: error: refusing plain HTTP on 0.0.0.0:0"),
        "{e}"
    );
    assert!(e.contains("hint: give --tls-cert and --tls-key"), "{e}");
    let o = Command::new(env!("CARGO_BIN_EXE_mesh-portal"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "x.pem",
            "--data",
        ])
        .arg(scratch("half"))
        .output()
        .expect("run");
    assert!(
        !o.status.success(),
        "a certificate without a key is refused"
    );
}

#[test]
fn serves_health_answers_bad_requests_and_stops_on_sigterm() {
    let data = scratch("health");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh-portal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut url = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut url)
        .expect("url");
    let addr = url.trim().trim_start_matches("http://").to_string();

    let http = |req: &str| -> String {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.write_all(req.as_bytes()).expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    };
    let r = http("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("ok\n"), "{r}");
    let body = "{not json";
    let r = http(&format!(
        "POST /mesh/v1/Status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(
        r.contains("\"Error\":\"BadRequest\"") && r.contains("request envelope"),
        "{r}"
    );
    assert!(
        data.join("portal.sqlite").is_file(),
        "embedded store created"
    );

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(
        child.wait().expect("wait").success(),
        "clean exit on SIGTERM"
    );
    let _ = std::fs::remove_dir_all(&data);
}
