//! `mesh-portal`: the Mesh service. Devices join, sync and are revoked
//! through it. It stores only signed objects and end-to-end encrypted
//! data; clients verify whatever it returns up to the account's profile
//! UDF, so the portal is not trusted with anything it could forge.
//!
//! `serve` runs it on a listener (plain HTTP only on loopback, else TLS
//! through rustls) until a shutdown signal; the `mesh-portal` binary and
//! `mesh quickstart` both use it.
#![forbid(unsafe_code)]

pub mod api;
mod audit;
mod changes;
pub mod conn;
mod held;
mod history;
pub mod invite;
pub mod limits;
mod pki;
mod rate;
pub mod server;
mod state;
mod status;
pub mod storage;
mod stores;
mod upload;
pub mod watch;
pub mod witness;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Plain HTTP asked for on a non-loopback address.
    #[error("refusing plain HTTP on {0}: it is not a loopback address")]
    PlainHttpNotLoopback(SocketAddr),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// Storage could not be opened (unreachable, newer schema).
    #[error(transparent)]
    Open(#[from] storage::OpenError),
    /// File or socket error.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS configuration error.
    #[error("TLS: {0}")]
    Tls(String),
}

impl ServeError {
    /// What the operator can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ServeError::PlainHttpNotLoopback(_) => {
                Some("give --tls-cert and --tls-key, or listen on 127.0.0.1 or [::1]")
            }
            ServeError::Open(e) => e.hint(),
            _ => None,
        }
    }
}

/// TLS certificate chain and key files (PEM).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// A bound, ready portal.
pub struct Portal {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    storage: Arc<dyn storage::Storage>,
    timeouts: Timeouts,
    sources: SourceLimits,
    witness: Option<Arc<witness::Witness>>,
    invites: Option<Arc<invite::InviteKey>>,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Portal {
    /// Open the store in `data` and bind `listen`.
    pub async fn bind(
        listen: SocketAddr,
        data: &Path,
        tls: Option<TlsFiles>,
    ) -> Result<Portal, ServeError> {
        Portal::bind_with(listen, data, tls, storage::Limits::default()).await
    }

    /// The same, with the quotas an operator chose.
    pub async fn bind_with(
        listen: SocketAddr,
        data: &Path,
        tls: Option<TlsFiles>,
        limits: storage::Limits,
    ) -> Result<Portal, ServeError> {
        let backend = storage::Backend::Sqlite(data.to_path_buf());
        Portal::bind_on(listen, &backend, tls, limits).await
    }

    /// Open `backend` (an SQLite directory or a PostgreSQL database,
    /// migrating its schema) and bind `listen`.
    pub async fn bind_on(
        listen: SocketAddr,
        backend: &storage::Backend,
        tls: Option<TlsFiles>,
        limits: storage::Limits,
    ) -> Result<Portal, ServeError> {
        if tls.is_none() && !listen.ip().is_loopback() {
            return Err(ServeError::PlainHttpNotLoopback(listen));
        }
        let acceptor = match tls {
            Some(files) => Some(tls_acceptor(&files)?),
            None => None,
        };
        if let storage::Backend::Sqlite(data) = backend {
            std::fs::create_dir_all(data).map_err(|source| ServeError::Io {
                what: format!("creating {}", data.display()),
                source,
            })?;
        }
        // The drivers block (the PostgreSQL one runs a runtime of its own).
        let b = backend.clone();
        let storage = tokio::task::spawn_blocking(move || storage::open(&b, limits))
            .await
            .map_err(|e| ServeError::Io {
                what: "opening the store".into(),
                source: std::io::Error::other(e.to_string()),
            })??;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Io {
                what: format!("binding {listen}"),
                source,
            })?;
        Ok(Portal {
            listener,
            tls: acceptor,
            storage,
            timeouts: Timeouts::default(),
            sources: SourceLimits::default(),
            witness: None,
            invites: None,
        })
    }

    /// The same portal with other per-source limits.
    pub fn with_sources(mut self, sources: SourceLimits) -> Portal {
        self.sources = sources;
        self
    }

    /// The same portal, creating accounts by invitation only: a Bind
    /// carries a code made with `key` (`mesh-portal invite`).
    pub fn with_invites(mut self, key: invite::InviteKey) -> Portal {
        self.invites = Some(Arc::new(key));
        self
    }

    /// The same portal, also a witness of the accounts that name it
    /// (PROTOCOL.md §10.6), keeping its key and memory in `dir`.
    pub fn with_witness(mut self, dir: &Path) -> Result<Portal, witness::WitnessError> {
        self.witness = Some(Arc::new(witness::Witness::open(dir)?));
        Ok(self)
    }

    /// The same portal with other timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Portal {
        self.timeouts = timeouts;
        self
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        let addr = self
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        match self.tls {
            Some(_) => format!("https://{addr}"),
            None => format!("http://{addr}"),
        }
    }

    /// Serve until `shutdown` resolves; in-flight requests finish first
    /// (for at most [`DRAIN`]).
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let timeouts = self.timeouts;
        let mut app = server::router(
            self.storage,
            timeouts.request,
            &self.sources,
            self.invites.clone(),
        );
        if let Some(w) = self.witness {
            app = app.merge(witness::router(w));
        }
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let sources = conn::Sources::new(self.sources.connections);
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok(v) => v,
                    // Out of descriptors: wait for some to close instead of
                    // spinning (the listener stays readable meanwhile).
                    Err(e) if conn::exhausted(&e) => {
                        tokio::select! {
                            _ = tokio::time::sleep(conn::EXHAUSTED_BACKOFF) => continue,
                            _ = &mut shutdown => break,
                        }
                    }
                    // Other accept errors (ECONNABORTED) concern one peer.
                    Err(_) => continue,
                },
                _ = &mut shutdown => break,
            };
            // Past either cap a connection is closed at once, not queued.
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                continue;
            };
            let Some(slot) = sources.enter(peer.ip()) else {
                continue;
            };
            // Small JSON answers must not wait for Nagle and delayed ACKs.
            let _ = tcp.set_nodelay(true);
            let one = Connection {
                tls: self.tls.clone(),
                app: app.clone(),
                peer: conn::Peer(peer.ip()),
                timeouts,
            };
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let _held = (permit, slot);
                one.serve(tcp, watcher).await;
            });
        }
        // Closed before the drain: a client that connects now is refused at
        // once, instead of waiting in the backlog of a socket nobody accepts
        // on until its timeout (a revoke while the portal goes down).
        drop(self.listener);
        let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
        Ok(())
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    peer: conn::Peer,
    timeouts: Timeouts,
}

impl Connection {
    /// Serve HTTP/1.1 (over TLS when configured) until the client closes,
    /// a timeout cuts it, or the connection stays idle for `timeouts.idle`:
    /// no first byte, no new request (the idle timer does not run while a
    /// request is answered, a long-poll included).
    async fn serve(
        self,
        tcp: tokio::net::TcpStream,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let act = conn::Activity::new();
        let io = conn::Tracked {
            io: tcp,
            act: act.clone(),
        };
        let svc = conn::Service {
            app: self.app,
            peer: self.peer,
            act: act.clone(),
        };
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .http1_only();
        // A client that sends its request head slowly is cut off.
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.timeouts.handshake);
        let (handshake, tls) = (self.timeouts.handshake, self.tls);
        let work = async move {
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) = tokio::time::timeout(handshake, acceptor.accept(io)).await
                    else {
                        return;
                    };
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = watcher.watch(builder.serve_connection(io, svc)).await;
                }
                None => {
                    let io = hyper_util::rt::TokioIo::new(io);
                    let _ = watcher.watch(builder.serve_connection(io, svc)).await;
                }
            }
        };
        tokio::select! {
            _ = work => {}
            _ = act.idle(self.timeouts.idle) => {}
        }
    }
}

/// Most connections served at once (each held long-poll is one).
pub const MAX_CONNECTIONS: usize = 16_384;

/// How long a client may take: to finish a TLS handshake, to send a
/// request head, to send a whole request and get its answer, and to say
/// anything at all.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TLS handshake and request head (each).
    pub handshake: std::time::Duration,
    /// A whole request, body and long-poll included.
    pub request: std::time::Duration,
    /// A connection that moves no byte with no request in flight: before
    /// its first byte, and between requests.
    pub idle: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            handshake: std::time::Duration::from_secs(10),
            request: limits::REQUEST_TIMEOUT,
            idle: std::time::Duration::from_secs(10),
        }
    }
}

/// What one source (an IPv4 address, an IPv6 /64) may take.
#[derive(Clone, Copy, Debug)]
pub struct SourceLimits {
    /// Connections open at once.
    pub connections: usize,
    /// Connect requests a minute (and as many at once).
    pub connects_per_minute: u32,
    /// Bind requests a minute (and as many at once).
    pub binds_per_minute: u32,
}

impl Default for SourceLimits {
    fn default() -> SourceLimits {
        SourceLimits {
            connections: 256,
            connects_per_minute: 30,
            binds_per_minute: 10,
        }
    }
}
/// Time in-flight requests get to finish at shutdown.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
