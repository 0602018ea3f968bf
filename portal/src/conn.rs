//! Each connection: its source's cap, a first-byte and idle timer, TLS,
//! and HTTP/1.1 (PROTOCOL.md §10, "Connections").
//!
//! The clients (`reqwest` built without its `http2` feature, the agent,
//! `authorized-keys`, the KRL timer) speak HTTP/1.1 only, and the TLS
//! configuration offers no ALPN, so the portal serves HTTP/1.1 only: an
//! HTTP/2 preface is refused as a malformed HTTP/1 request instead of
//! opening a second protocol with timers of its own to keep.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The address a request came from, in each request's extensions (for the
/// per-source limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

/// The source a limit counts: an IPv4 address, or the /64 of an IPv6 one
/// (one host holds a whole /64).
pub(crate) fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
    }
}

/// Open connections per source, capped.
#[derive(Debug)]
pub(crate) struct Sources {
    open: Mutex<std::collections::HashMap<IpAddr, usize>>,
    max: usize,
}

impl Sources {
    pub(crate) fn new(max: usize) -> Arc<Sources> {
        Arc::new(Sources {
            open: Mutex::default(),
            max,
        })
    }

    /// A place for one more connection from `ip`, or `None` at the cap.
    pub(crate) fn enter(self: &Arc<Sources>, ip: IpAddr) -> Option<SourceSlot> {
        let src = source(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(src).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            sources: self.clone(),
            src,
        })
    }
}

/// One connection's place in its source's count, given back on drop.
#[derive(Debug)]
pub(crate) struct SourceSlot {
    sources: Arc<Sources>,
    src: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.src) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.src);
            }
        }
    }
}

/// When a connection last moved a byte, and how many of its requests are
/// being answered (a held long-poll is quiet but not idle).
#[derive(Debug)]
pub(crate) struct Activity {
    born: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }

    /// Resolves once the connection has had no request in flight and
    /// moved no byte for `limit`: from its start (the first byte must come
    /// within it) and between requests.
    pub(crate) async fn idle(&self, limit: Duration) {
        loop {
            let quiet = self.quiet_for();
            let busy = self.busy.load(Ordering::Relaxed) > 0;
            if !busy && quiet >= limit {
                return;
            }
            let wait = if busy { limit } else { limit - quiet };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request being answered; its end counts as activity.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Activity>);

impl Busy {
    pub(crate) fn enter(act: &Arc<Activity>) -> Busy {
        act.busy.fetch_add(1, Ordering::Relaxed);
        act.touch();
        Busy(act.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket (or TLS stream) that notes each byte it moves.
#[derive(Debug)]
pub(crate) struct Tracked<T> {
    pub(crate) io: T,
    pub(crate) act: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.act.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.act.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.act.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The router as one connection serves it: each request carries the
/// peer's address and counts as activity until it is answered.
#[derive(Clone, Debug)]
pub(crate) struct Service {
    pub(crate) app: axum::Router,
    pub(crate) peer: Peer,
    pub(crate) act: Arc<Activity>,
}

type Answer = Result<axum::response::Response, std::convert::Infallible>;

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Service {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        use tower::ServiceExt;
        req.extensions_mut().insert(self.peer);
        let busy = Busy::enter(&self.act);
        let app = self.app.clone();
        Box::pin(async move {
            let _busy = busy;
            app.oneshot(req).await
        })
    }
}

/// Whether an accept error means the process (or system) is out of
/// descriptors or memory: the accept loop then waits instead of spinning.
pub(crate) fn exhausted(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let Some(code) = e.raw_os_error() else {
        return false;
    };
    let errno = Errno::from_raw_os_error(code);
    errno == Errno::MFILE
        || errno == Errno::NFILE
        || errno == Errno::NOBUFS
        || errno == Errno::NOMEM
}

/// How long the accept loop waits after running out of descriptors.
pub(crate) const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(100);

/// Raise the soft limit of open files to the hard limit; returns the
/// limit now in force (or the error: the portal serves on either way).
pub fn raise_open_files() -> io::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        )
        .map_err(io::Error::from)?;
    }
    Ok(lim.maximum.unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_counted_and_capped_per_address_or_64() {
        let s = Sources::new(2);
        let ip = |t: &str| t.parse::<IpAddr>().expect("ip");
        let a = s.enter(ip("192.0.2.1")).expect("first");
        let _b = s.enter(ip("::ffff:192.0.2.1")).expect("the same, mapped");
        assert!(s.enter(ip("192.0.2.1")).is_none(), "the third is refused");
        assert!(s.enter(ip("192.0.2.2")).is_some(), "another source");
        let _c = s.enter(ip("2001:db8::1")).expect("v6");
        let _d = s.enter(ip("2001:db8::2:2")).expect("same /64");
        assert!(
            s.enter(ip("2001:db8::ffff")).is_none(),
            "a /64 is one source"
        );
        drop(a);
        assert!(
            s.enter(ip("192.0.2.1")).is_some(),
            "a closed one frees its place"
        );
    }
}
