//! `mesh-portal`: run the Mesh service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mesh_portal::storage::{Backend, Limits};
use mesh_portal::{Portal, TlsFiles};

/// The Mesh service (portal).
#[derive(Debug, Parser)]
#[command(name = "mesh-portal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve until SIGTERM or SIGINT. Prints the URL on standard output once listening.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8461")]
        listen: SocketAddr,
        /// Directory of the embedded SQLite store (the default store).
        #[arg(long, value_name = "DIR", required_unless_present = "database")]
        data: Option<PathBuf>,
        /// A PostgreSQL database instead (postgres://USER[:PASSWORD]@HOST[:PORT]/DB);
        /// several portal processes may serve one. Its schema is created or
        /// migrated at start.
        #[arg(
            long,
            value_name = "URL",
            env = "MESH_PORTAL_DATABASE",
            conflicts_with = "data"
        )]
        database: Option<String>,
        /// TLS certificate chain (PEM); required off loopback.
        #[arg(long, requires = "tls_key", value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert", value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Most accounts this portal holds (anyone may create one).
        #[arg(long, default_value_t = Limits::default().max_accounts)]
        max_accounts: u64,
        /// Most bytes of entries one account may hold.
        #[arg(long, default_value_t = Limits::default().max_account_bytes)]
        max_account_bytes: u64,
        /// Seconds a client gets for a TLS handshake and for a request head.
        #[arg(long, default_value_t = 10)]
        handshake_timeout: u64,
        /// Seconds a whole request may take (more than the 20 s long-poll).
        #[arg(long, default_value_t = mesh_portal::limits::REQUEST_TIMEOUT.as_secs())]
        request_timeout: u64,
        /// Also be a witness (PROTOCOL.md §10.6): cosign the checkpoints of
        /// accounts whose profile names this portal's witness key, kept
        /// with its memory of each account in DIR.
        #[arg(long, value_name = "DIR")]
        witness: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let Cli {
        command:
            Command::Serve {
                listen,
                data,
                database,
                tls_cert,
                tls_key,
                max_accounts,
                max_account_bytes,
                handshake_timeout,
                request_timeout,
                witness,
            },
    } = Cli::parse();
    let timeouts = mesh_portal::Timeouts {
        handshake: std::time::Duration::from_secs(handshake_timeout),
        request: std::time::Duration::from_secs(request_timeout),
    };
    let limits = Limits {
        max_accounts,
        max_account_bytes,
        ..Limits::default()
    };
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mesh-portal: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let backend = match (database, data) {
            (Some(url), _) => Backend::Postgres(url),
            (None, Some(dir)) => Backend::Sqlite(dir),
            (None, None) => {
                eprintln!("mesh-portal: error: give --data DIR or --database URL");
                return ExitCode::FAILURE;
            }
        };
        let portal = match Portal::bind_on(listen, &backend, tls, limits).await {
            Ok(p) => p.with_timeouts(timeouts),
            Err(e) => {
                eprintln!("mesh-portal: error: {e}");
                if let Some(h) = e.hint() {
                    eprintln!("hint: {h}");
                }
                return ExitCode::FAILURE;
            }
        };
        let portal = match witness {
            None => portal,
            Some(dir) => match portal.with_witness(&dir) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("mesh-portal: error: {e}");
                    eprintln!("hint: give --witness a directory only this portal writes; keep its witness.key");
                    return ExitCode::FAILURE;
                }
            },
        };
        println!("{}", portal.url());
        let from = match &backend {
            Backend::Sqlite(dir) => dir.display().to_string(),
            Backend::Postgres(url) => mesh_portal::storage::redact(url),
        };
        eprintln!("mesh-portal: serving {} from {from}", portal.url());
        match portal.run(mesh_portal::shutdown_signal()).await {
            Ok(()) => {
                eprintln!("mesh-portal: stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mesh-portal: error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
