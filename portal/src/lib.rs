//! `mesh-portal`: the Mesh service. Devices join, sync and are revoked
//! through it. It stores only signed objects and end-to-end encrypted
//! data; clients verify whatever it returns up to the account's profile
//! UDF, so the portal is not trusted with anything it could forge.
//!
//! `serve` runs it on a listener (plain HTTP only on loopback, else TLS
//! through rustls) until a shutdown signal; the `mesh-portal` binary and
//! `mesh quickstart` both use it.
#![forbid(unsafe_code)]

mod changes;
mod history;
pub mod limits;
pub mod server;
pub mod storage;
mod stores;
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
    witness: Option<Arc<witness::Witness>>,
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
            witness: None,
        })
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
        let mut app = server::router(self.storage, timeouts.request);
        if let Some(w) = self.witness {
            app = app.merge(witness::router(w));
        }
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let (tcp, _) = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok(v) => v,
                    // Transient accept errors (EMFILE, ECONNABORTED) must not stop the service.
                    Err(_) => continue,
                },
                _ = &mut shutdown => break,
            };
            // Past the cap a connection is closed at once, not queued.
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                continue;
            };
            // Small JSON answers must not wait for Nagle and delayed ACKs.
            let _ = tcp.set_nodelay(true);
            let (tls, app, watcher) = (self.tls.clone(), app.clone(), graceful.watcher());
            tokio::spawn(async move {
                let _permit = permit;
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let mut builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                // A client that sends its request head slowly is cut off.
                builder
                    .http1()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(timeouts.handshake);
                match tls {
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(timeouts.handshake, acceptor.accept(tcp)).await
                        else {
                            return;
                        };
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = watcher.watch(builder.serve_connection(io, svc)).await;
                    }
                    None => {
                        let io = hyper_util::rt::TokioIo::new(tcp);
                        let _ = watcher.watch(builder.serve_connection(io, svc)).await;
                    }
                }
            });
        }
        let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
        Ok(())
    }
}

/// Most connections served at once (each held long-poll is one).
pub const MAX_CONNECTIONS: usize = 16_384;

/// How long a client may take: to finish a TLS handshake, to send a
/// request head, to send a whole request and get its answer.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TLS handshake and request head (each).
    pub handshake: std::time::Duration,
    /// A whole request, body and long-poll included.
    pub request: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            handshake: std::time::Duration::from_secs(10),
            request: limits::REQUEST_TIMEOUT,
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
