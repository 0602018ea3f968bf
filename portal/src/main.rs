//! `mesh-portal`: run the Mesh service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mesh_portal::storage::{Backend, Limits};
use mesh_portal::{Portal, SourceLimits, TlsFiles};

/// The Mesh portal: accounts, device catalogs and spools over HTTP(S), in
/// SQLite or PostgreSQL.
///
/// A portal need not be trusted: devices and servers verify everything it
/// serves up to the account's profile. `mesh-portal serve --help` lists its
/// limits (connections, rates, quotas) and `--bind` (who may create
/// accounts).
#[derive(Debug, Parser)]
#[command(name = "mesh-portal", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve until SIGTERM or SIGINT. Prints the URL on standard output once listening.
    Serve(Box<Serve>),
    /// Print a one-time invitation code for `--bind invite` (making the
    /// key file on first use); hand it to the one person who may create an
    /// account.
    Invite(InviteArgs),
    /// Print the manual page (or write one page per command to a directory).
    Man {
        /// Write `mesh-portal.1` and one page per command into this directory.
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
}

/// Who may create accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BindPolicy {
    /// Anyone who reaches the portal (within the per-source rate and --max-accounts).
    Open,
    /// Only with a code from `mesh-portal invite`.
    Invite,
}

#[derive(Debug, clap::Args)]
struct InviteArgs {
    /// The invitation key file (0600; made if missing); the same one
    /// `serve --invite-key` reads.
    #[arg(long, value_name = "FILE")]
    invite_key: PathBuf,
    /// How long the code is valid (e.g. 1h, 7d; at most 30d).
    #[arg(long, default_value = "7d", value_parser = parse_secs)]
    expires: u64,
}

/// `30m`, `1h`, `7d`, or seconds.
fn parse_secs(s: &str) -> Result<u64, String> {
    let (n, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (30m, 1h, 7d)"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("'{s}': the unit is s, m, h or d")),
    };
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!("'{s}' is not a usable duration")),
        Some(v) if v > mesh_core::invite::MAX_LIFETIME => {
            Err(format!("'{s}' is longer than an invitation may live (30d)"))
        }
        Some(v) => Ok(v),
    }
}

#[derive(Debug, clap::Args)]
struct Serve {
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
    /// Most accounts this portal holds.
    #[arg(long, default_value_t = Limits::default().max_accounts)]
    max_accounts: u64,
    /// Most bytes of entries one account may hold (connection requests
    /// from others are not counted; a revocation may pass it by an eighth, at least 64 KiB).
    #[arg(long, default_value_t = Limits::default().max_account_bytes)]
    max_account_bytes: u64,
    /// Most bytes of the devices' signature audit logs one account may
    /// hold (apart from --max-account-bytes: a log never takes what a
    /// revocation needs).
    #[arg(long, default_value_t = Limits::default().max_audit_bytes)]
    max_audit_bytes: u64,
    /// Seconds a client gets for a TLS handshake and for a request head.
    #[arg(long, default_value_t = 10)]
    handshake_timeout: u64,
    /// Seconds a whole request may take (more than the 20 s long-poll).
    #[arg(long, default_value_t = mesh_portal::limits::REQUEST_TIMEOUT.as_secs())]
    request_timeout: u64,
    /// Seconds a connection may stay silent with no request in flight:
    /// before its first byte, and between requests.
    #[arg(long, default_value_t = mesh_portal::Timeouts::default().idle.as_secs())]
    idle_timeout: u64,
    /// Connections one source (an IPv4 address, an IPv6 /64) may hold open.
    #[arg(long, default_value_t = SourceLimits::default().connections)]
    max_connections_per_source: usize,
    /// Connect requests one source may send a minute.
    #[arg(long, default_value_t = SourceLimits::default().connects_per_minute)]
    connects_per_minute: u32,
    /// Bind requests (account creations) one source may send a minute.
    #[arg(long, default_value_t = SourceLimits::default().binds_per_minute)]
    binds_per_minute: u32,
    /// Also be a witness (PROTOCOL.md §10.6): cosign the checkpoints of
    /// accounts whose profile names this portal's witness key, kept
    /// with its memory of each account in DIR.
    #[arg(long, value_name = "DIR")]
    witness: Option<std::path::PathBuf>,
    /// Who may create accounts: anyone, or only with an invitation code.
    #[arg(long, value_enum, default_value = "open")]
    bind: BindPolicy,
    /// The invitation key file (`mesh-portal invite` makes it); with `--bind invite`.
    #[arg(long, value_name = "FILE", required_if_eq("bind", "invite"))]
    invite_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = match Cli::parse().command {
        Command::Serve(args) => args,
        Command::Invite(i) => return invite(&i),
        Command::Man { output } => return man(output.as_deref()),
    };
    // Each connection is a descriptor: the soft limit (often 1,024) would
    // stop the portal long before its connection cap.
    if let Err(e) = mesh_portal::conn::raise_open_files() {
        eprintln!("mesh-portal: warning: cannot raise the open-file limit: {e}");
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mesh-portal: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(*args))
}

async fn serve(args: Serve) -> ExitCode {
    let secs = std::time::Duration::from_secs;
    let timeouts = mesh_portal::Timeouts {
        handshake: secs(args.handshake_timeout),
        request: secs(args.request_timeout),
        idle: secs(args.idle_timeout),
    };
    let sources = SourceLimits {
        connections: args.max_connections_per_source,
        connects_per_minute: args.connects_per_minute,
        binds_per_minute: args.binds_per_minute,
    };
    let limits = Limits {
        max_accounts: args.max_accounts,
        max_account_bytes: args.max_account_bytes,
        max_audit_bytes: args.max_audit_bytes,
        ..Limits::default()
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let backend = match (args.database, args.data) {
        (Some(url), _) => Backend::Postgres(url),
        (None, Some(dir)) => Backend::Sqlite(dir),
        (None, None) => {
            eprintln!("mesh-portal: error: give --data DIR or --database URL");
            return ExitCode::FAILURE;
        }
    };
    let portal = match Portal::bind_on(args.listen, &backend, tls, limits).await {
        Ok(p) => p.with_timeouts(timeouts).with_sources(sources),
        Err(e) => {
            eprintln!("mesh-portal: error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            return ExitCode::FAILURE;
        }
    };
    let portal = match (args.bind, &args.invite_key) {
        (BindPolicy::Invite, Some(file)) => match mesh_portal::invite::InviteKey::load(file) {
            Ok(k) => portal.with_invites(k),
            Err(e) => {
                eprintln!("mesh-portal: error: {e}");
                eprintln!("hint: {}", e.hint());
                return ExitCode::FAILURE;
            }
        },
        _ => portal,
    };
    let portal = match args.witness {
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
}

/// `mesh-portal invite`: one code on standard output.
fn invite(args: &InviteArgs) -> ExitCode {
    match mesh_portal::invite::InviteKey::load_or_make(&args.invite_key) {
        Ok(k) => {
            let now = mesh_portal::api::now();
            println!("{}", k.mint(now, args.expires));
            eprintln!(
                "mesh-portal: a one-time invitation code, valid for {} s: `mesh account create … --invite` reads it on standard input",
                args.expires
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mesh-portal: error: {e}");
            eprintln!("hint: {}", e.hint());
            ExitCode::FAILURE
        }
    }
}

/// `mesh-portal man`: the manual pages, from the command line itself.
fn man(output: Option<&std::path::Path>) -> ExitCode {
    use clap::CommandFactory;
    use std::io::Write;
    let cmd = Cli::command();
    let render = |c: clap::Command| {
        let mut page = Vec::new();
        clap_mangen::Man::new(c).render(&mut page).map(|_| page)
    };
    let Some(dir) = output else {
        return match render(cmd).and_then(|p| std::io::stdout().write_all(&p)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mesh-portal: error: {e}");
                ExitCode::FAILURE
            }
        };
    };
    let mut pages = vec![("mesh-portal".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("mesh-portal-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    let written = std::fs::create_dir_all(dir).and_then(|_| {
        for (name, c) in &pages {
            std::fs::write(dir.join(format!("{name}.1")), render(c.clone())?)?;
        }
        Ok(())
    });
    match written {
        Ok(()) => {
            eprintln!(
                "mesh-portal: wrote {} manual pages to {}",
                pages.len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "mesh-portal: error: cannot write the manual pages to {}: {e}",
                dir.display()
            );
            eprintln!("hint: check that the directory can be created and written by this user");
            ExitCode::FAILURE
        }
    }
}
