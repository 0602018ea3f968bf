//! A TCP proxy between real clients and a real portal that plays the
//! faults of a network or a crash: it drops a chosen request before the
//! portal sees it, or drops the portal's answer after the portal committed.
//! It also counts the transactions that pass, so a test can assert that
//! an account event is one transaction.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy does to the next request of the armed kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection before the portal sees the request (the
    /// client's process, or the network, died before sending).
    DropRequest,
    /// Forward the request, let the portal commit, then close the
    /// connection instead of answering (the answer was lost).
    DropResponse,
    /// As `DropResponse`, then refuse every connection until `heal` (the
    /// portal went away right after it committed).
    DropResponseThenDown,
}

#[derive(Debug, Default)]
struct State {
    armed: Option<(String, Fault)>,
    seen: Vec<String>,
    down: bool,
}

/// A running proxy; it stops with the test process.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    /// The URL clients use instead of the portal's.
    pub url: String,
    state: Arc<Mutex<State>>,
}

fn request_of(chunk: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(chunk.get(..64.min(chunk.len()))?);
    let rest = text.strip_prefix("POST /mesh/v1/")?;
    Some(rest.split(' ').next()?.to_string())
}

impl FaultProxy {
    /// Listen on a free loopback port and forward to `portal_url` (http).
    pub fn start(portal_url: &str) -> FaultProxy {
        let target = portal_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if st.lock().expect("state").down {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let st = st.clone();
                std::thread::spawn(move || relay(client, server, st));
            }
        });
        FaultProxy { url, state }
    }

    /// The next `transaction` request (e.g. "Transact") gets `fault`, once.
    pub fn arm(&self, transaction: &str, fault: Fault) {
        self.state.lock().expect("state").armed = Some((transaction.to_string(), fault));
    }

    /// Forward connections again after `DropResponseThenDown`.
    pub fn heal(&self) {
        self.state.lock().expect("state").down = false;
    }

    /// Forget what was seen.
    pub fn reset(&self) {
        self.state.lock().expect("state").seen.clear();
    }

    /// How many `transaction` requests reached the proxy since the last reset.
    pub fn count(&self, transaction: &str) -> usize {
        self.state
            .lock()
            .expect("state")
            .seen
            .iter()
            .filter(|t| *t == transaction)
            .count()
    }
}

fn relay(mut client: TcpStream, server: TcpStream, st: Arc<Mutex<State>>) {
    let suppress = Arc::new(AtomicBool::new(false));
    let (mut s_read, mut c_write) = (
        server.try_clone().expect("clone"),
        client.try_clone().expect("clone"),
    );
    let sup = suppress.clone();
    let back = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            let n = match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if sup.load(Ordering::SeqCst) {
                // The portal answered: the client never hears it.
                break;
            }
            if c_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_write.shutdown(Shutdown::Both);
    });
    let mut server = server;
    let mut buf = [0u8; 65536];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(tx) = request_of(&buf[..n]) {
            let mut s = st.lock().expect("state");
            s.seen.push(tx.clone());
            if s.armed.as_ref().is_some_and(|(t, _)| *t == tx) {
                let (_, fault) = s.armed.take().expect("armed");
                match fault {
                    Fault::DropRequest => {
                        let _ = client.shutdown(Shutdown::Both);
                        let _ = server.shutdown(Shutdown::Both);
                        break;
                    }
                    Fault::DropResponse => suppress.store(true, Ordering::SeqCst),
                    Fault::DropResponseThenDown => {
                        suppress.store(true, Ordering::SeqCst);
                        s.down = true;
                    }
                }
            }
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// A fake portal: answers every request with what `answer` returns for its
/// path (a whole HTTP response), one request per connection. It plays a
/// portal that lies in ways no real one can be made to.
#[derive(Debug, Clone)]
pub struct FakePortal {
    /// Its URL.
    pub url: String,
}

impl FakePortal {
    /// Listen on a free loopback port.
    pub fn start(answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> FakePortal {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake portal");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let path = read_request(&mut c).unwrap_or_default();
                    let _ = c.write_all(&answer(&path));
                    let _ = c.shutdown(Shutdown::Both);
                });
            }
        });
        FakePortal { url }
    }

    /// An HTTP response with a JSON body.
    pub fn json(status: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }
}

/// Read one request (headers and a Content-Length body); return its path.
fn read_request(c: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 65536 {
        if c.read(&mut byte).ok()? == 0 {
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
    let mut body = vec![0u8; len.min(1 << 20)];
    c.read_exact(&mut body).ok()?;
    head.split_whitespace().nth(1).map(str::to_string)
}
