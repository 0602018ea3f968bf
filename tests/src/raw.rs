//! Raw clients for the portal's bounds: sockets from a chosen loopback
//! source (Linux routes all of 127.0.0.0/8 to the loopback interface), a
//! request written by hand, and how long the portal takes to close.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The `host:port` of a portal URL.
pub fn addr_of(url: &str) -> SocketAddr {
    url.rsplit('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("a portal URL ends with host:port")
}

/// A connection to the portal at `url` from the address `source`.
pub fn connect_from(source: &str, url: &str) -> TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let from: SocketAddr = format!("{source}:0").parse().expect("source address");
    sock.bind(&from.into()).expect("bind the source");
    sock.connect(&addr_of(url).into()).expect("connect");
    sock.into()
}

/// Read until the portal closes the connection: how long that took, or
/// `None` when it was still open after `bound` (a blocking read with a
/// timeout, not a sleep). Whatever the portal sends first (an error
/// answer) is read on to the close.
pub fn closed_within(s: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = bound.checked_sub(start.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed())
            }
            Err(_) => return None,
        }
    }
}

/// POST `body` to `path` on `s` (HTTP/1.1, the connection closed after):
/// the status and the answer's body.
pub fn post(mut s: TcpStream, path: &str, body: &[u8]) -> (u16, String) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: portal\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}
