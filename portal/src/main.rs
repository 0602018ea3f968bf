//! `mesh-portal`: run the Mesh service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
        /// Directory of the embedded SQLite store.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// TLS certificate chain (PEM); required off loopback.
        #[arg(long, requires = "tls_key", value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert", value_name = "FILE")]
        tls_key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Cli {
        command:
            Command::Serve {
                listen,
                data,
                tls_cert,
                tls_key,
            },
    } = Cli::parse();
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
        let portal = match Portal::bind(listen, &data, tls).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("mesh-portal: error: {e}");
                if let Some(h) = e.hint() {
                    eprintln!("hint: {h}");
                }
                return ExitCode::FAILURE;
            }
        };
        println!("{}", portal.url());
        eprintln!(
            "mesh-portal: serving {} from {}",
            portal.url(),
            data.display()
        );
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
