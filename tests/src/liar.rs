//! A lying portal: an HTTP proxy between real clients and a real portal
//! that forwards every request and hands the portal's JSON answer to a
//! test's rewrite before the client sees it. It drops, reorders, replays,
//! renumbers, substitutes and loops what the real portal said: everything
//! a compromised portal can do without the account's keys.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A rewrite of one answer: the transaction name (`Download`, `Public`,
/// `Status`, …) and the answer's JSON body, changed in place.
pub type Rewrite = Arc<dyn Fn(&str, &mut serde_json::Value) + Send + Sync>;

/// A running lying portal; it stops with the test process.
#[derive(Clone)]
pub struct LyingPortal {
    /// The URL clients use instead of the portal's.
    pub url: String,
    rewrite: Arc<Mutex<Option<Rewrite>>>,
    unknown: Arc<Mutex<Option<String>>>,
    lose: Arc<Mutex<Option<String>>>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for LyingPortal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LyingPortal")
            .field("url", &self.url)
            .finish()
    }
}

/// Most bytes of one request or answer the proxy reads.
const MAX: usize = 64 << 20;

impl LyingPortal {
    /// Listen on a free loopback port, in front of `portal_url` (http).
    pub fn start(portal_url: &str) -> LyingPortal {
        let target = portal_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind liar");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let rewrite: Arc<Mutex<Option<Rewrite>>> = Arc::new(Mutex::new(None));
        let unknown: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let lose: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let refused: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (rw, un, lo) = (rewrite.clone(), unknown.clone(), lose.clone());
        let rf = refused.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (rw, un, lo, target) = (rw.clone(), un.clone(), lo.clone(), target.clone());
                let rf = rf.clone();
                std::thread::spawn(move || {
                    if serve(client, &target, &rw, &un, &lo) {
                        rf.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        LyingPortal {
            url,
            rewrite,
            unknown,
            lose,
            refused,
        }
    }

    /// From now on, forward `tx` requests but lose the portal's answer
    /// (the connection closes with nothing): a timeout after the portal
    /// committed, as the client sees it.
    pub fn lose_answer(&self, tx: &str) {
        *self.lose.lock().expect("lose") = Some(tx.to_string());
    }

    /// From now on, play a portal from before the request member `member`:
    /// a request that carries it is refused as a bad request (`400`), as
    /// an older portal's strict parser does.
    pub fn before(&self, member: &str) {
        *self.unknown.lock().expect("unknown") = Some(member.to_string());
    }

    /// How many requests were refused as naming the member of [`Self::before`].
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// From now on, answers go through `f`.
    pub fn lie(&self, f: impl Fn(&str, &mut serde_json::Value) + Send + Sync + 'static) {
        *self.rewrite.lock().expect("rewrite") = Some(Arc::new(f));
    }

    /// From now on, answers pass unchanged.
    pub fn honest(&self) {
        *self.rewrite.lock().expect("rewrite") = None;
        *self.lose.lock().expect("lose") = None;
    }
}

/// One request per connection: forward it, rewrite the answer, close.
/// True when it was refused as an older portal's.
fn serve(
    mut client: TcpStream,
    target: &str,
    rewrite: &Mutex<Option<Rewrite>>,
    unknown: &Mutex<Option<String>>,
    lose: &Mutex<Option<String>>,
) -> bool {
    let Some((head, body)) = read_message(&mut client) else {
        return false;
    };
    let member = unknown.lock().expect("unknown").clone();
    if let Some(m) = member.filter(|m| request_names(&body, m)) {
        let out = serde_json::json!({
            "Error": "BadRequest",
            "Reason": format!("request: unknown field `{m}`"),
        })
        .to_string();
        let reply = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
            out.len()
        );
        let _ = client.write_all(reply.as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        return true;
    }
    let tx = head
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let Ok(mut server) = TcpStream::connect(target) else {
        return false;
    };
    // Every request on its own connection, so that an answer is one read.
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
        + "\r\nConnection: close\r\n\r\n";
    if server.write_all(head.as_bytes()).is_err() || server.write_all(&body).is_err() {
        return false;
    }
    let Some((ans_head, ans_body)) = read_message(&mut server) else {
        return false;
    };
    if lose.lock().expect("lose").as_deref() == Some(tx.as_str()) {
        let _ = client.shutdown(Shutdown::Both);
        return false;
    }
    let status = ans_head
        .lines()
        .next()
        .unwrap_or("HTTP/1.1 502 Bad Gateway");
    let f = rewrite.lock().expect("rewrite").clone();
    let out = match (f, serde_json::from_slice::<serde_json::Value>(&ans_body)) {
        (Some(f), Ok(mut v)) => {
            f(&tx, &mut v);
            serde_json::to_vec(&v).unwrap_or_default()
        }
        _ => ans_body,
    };
    let reply = format!(
        "{status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        out.len()
    );
    let _ = client.write_all(reply.as_bytes());
    let _ = client.write_all(&out);
    let _ = client.shutdown(Shutdown::Both);
    false
}

/// Whether a request's body (a signed envelope) names `member` in its
/// signed payload.
fn request_names(body: &[u8], member: &str) -> bool {
    let payload = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["Payload"].as_str().map(str::to_string))
        .and_then(|p| data_encoding::BASE64URL_NOPAD.decode(p.as_bytes()).ok())
        .unwrap_or_default();
    let needle = format!("\"{member}\"");
    payload
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Read an HTTP/1.1 message: the head, and a Content-Length body.
fn read_message(c: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 65536 || c.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(MAX)];
    c.read_exact(&mut body).ok()?;
    Some((head.trim_end().to_string(), body))
}
