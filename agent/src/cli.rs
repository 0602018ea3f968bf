//! The command line: every command and option, in one place (completions
//! and man pages are generated from it).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use mesh_core::udf;
// Shared with the channels' subcommands (`mesh ssh principals --validity`).
pub(crate) use mesh_plugins::cli::parse_duration;

/// Environment variables, in `--help` and the manual page.
const ENVIRONMENT: &str = "Environment:
  MESH_HOME       this device's home, when --home is not given
  MESH_KEYSTORE   where a new home keeps its store key: `os` (the OS keyring, the default)
                  or `file` (a 0600 file in the home); an existing home keeps its own
  MESH_PORTAL_CA  a PEM file of a CA to trust for https portals, besides the system's

Start with `mesh quickstart`; `mesh COMMAND --help` tells more; `mesh man --output DIR` writes the manual pages.";

/// Mesh: your public keys on all your devices.
///
/// Each device runs `mesh`. It holds that device's keys, derived from your
/// Mesh profile, and hands them to the tools you use: ssh (through
/// SSH_AUTH_SOCK), GnuPG and S/MIME mail. Devices join, sync and are
/// revoked through a portal that need not be trusted: everything it stores
/// is signed, and every device verifies it.
#[derive(Debug, Parser)]
#[command(
    name = "mesh",
    version,
    propagate_version = true,
    after_help = ENVIRONMENT
)]
pub(crate) struct Cli {
    /// This device's home directory (default: $MESH_HOME, else the platform's data directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The whole command line: the built-in commands and every channel's own
/// (`mesh files …`, agent/src/channel_cli.rs), for parsing, completions
/// and manual pages alike.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory as _;
    mesh_agent::channel_cli::mount(Cli::command(), &mesh_agent::host())
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start Mesh on an embedded default: a local portal, an account and two devices.
    #[cfg(feature = "quickstart")]
    Quickstart {
        /// Where the demo portal and device homes live.
        #[arg(long, default_value = "mesh-quickstart", value_name = "DIR")]
        dir: PathBuf,
        /// The embedded portal's address.
        #[arg(long, default_value = "127.0.0.1:8461")]
        listen: std::net::SocketAddr,
        /// The demo account's address.
        #[arg(long, default_value = "alice@example.com")]
        address: String,
        /// Show it working, then stop (instead of serving until Ctrl-C).
        #[arg(long)]
        once: bool,
    },
    /// Show this device's home, key store and identity.
    Status,
    /// Fingerprints of data.
    #[command(subcommand)]
    Hash(HashCmd),
    /// Random values, secret seeds and escrow shares.
    #[command(subcommand)]
    Key(KeyCmd),
    /// The account: create, show, history, heartbeat, recover.
    #[command(subcommand)]
    Account(AccountCmd),
    /// This device and the account's other devices.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Pull what changed at the portal, verify it, and act on it.
    Sync,
    /// The log of every signature the agents made or refused (administrators: every device's).
    Audit(AuditArgs),
    /// The background agent: ssh-agent socket, control socket, sync.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// ssh-agent(1) on the Mesh agent: the same options, output and COMMAND mode.
    #[command(name = "ssh-agent")]
    #[cfg(unix)]
    SshAgent(SshAgentArgs),
    /// Relay one ssh-agent connection between standard input/output and the agent (the Windows half of the WSL bridge).
    ///
    /// Copies standard input to the agent's endpoint and the agent's
    /// answers to standard output until either side closes: one ssh-agent
    /// connection per process. `mesh agent wsl-bridge` inside WSL runs it on
    /// Windows (`mesh.exe ssh-agent-relay`, through WSL's interop) for each
    /// connection. Bytes are copied, not parsed: the agent checks every
    /// message, as for any client.
    #[command(name = "ssh-agent-relay")]
    SshAgentRelay(SshAgentRelayArgs),
    /// Print a shell completion script.
    // Listed after the channels' own commands (agent/src/channel_cli.rs).
    #[command(display_order = 900)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (or write one page per command to a directory).
    #[command(display_order = 901)]
    Man {
        /// Write mesh.1 and mesh-COMMAND.1 pages here instead of printing mesh.1.
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
}

/// `mesh audit`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AuditArgs {
    /// Only records since TIME: an RFC 3339 time (2026-12-07T09:00:00Z) or a DURATION ago (90s, 30m, 24h, 7d).
    #[arg(long, value_name = "TIME|DURATION", value_parser = parse_audit_since)]
    pub since: Option<AuditSince>,
    /// Only this device's records (by its name); administrators see every device's.
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// This device's own log file, even on an administrator device.
    #[arg(long)]
    pub local: bool,
    #[command(subcommand)]
    pub command: Option<AuditCmd>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Check every device's chain at the portal (administrators), or this device's log file.
    Verify {
        /// This device's own log file, even on an administrator device.
        #[arg(long)]
        local: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum HashCmd {
    /// Print the UDF of a file's content ("-" for standard input).
    Udf {
        /// The file, or "-".
        file: PathBuf,
        /// Content type bound into the fingerprint.
        #[arg(long, default_value = "application/octet-stream")]
        content_type: String,
        /// Use SHA-3-512 instead of SHA-2-512.
        #[arg(long)]
        sha3: bool,
        /// Precision in bits (100 to 440, rounded up to a multiple of 20).
        #[arg(long, default_value_t = udf::DEFAULT_BITS)]
        bits: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCmd {
    /// Print a fresh nonce UDF (N).
    Nonce {
        /// Random bits.
        #[arg(long, default_value_t = 128)]
        bits: usize,
    },
    /// Print a fresh symmetric key UDF (E).
    Secret {
        /// Random bits.
        #[arg(long, default_value_t = 256)]
        bits: usize,
    },
    /// Print a fresh secret seed UDF (Z) for key derivation.
    Seed {
        /// What the seed derives.
        #[arg(long = "type", value_enum, default_value_t = SeedKind::Ed25519)]
        kind: SeedKind,
        /// Random bits.
        #[arg(long, default_value_t = 256)]
        bits: usize,
    },
    /// Split a secret (hex, read from standard input or --from) into N shares, any K of which recover it.
    Share {
        /// Shares needed to recover (2 to 15).
        #[arg(long)]
        threshold: u8,
        /// Shares to make (threshold to 15).
        #[arg(long)]
        shares: u8,
        /// Read the secret from this file instead of standard input.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Refused: a secret on the command line is visible to other users.
        #[arg(hide = true)]
        secret: Option<String>,
    },
    /// Recover a secret from S-UDF shares, one per line on standard input (or --from); give more than the quorum to check them.
    Recover {
        /// Read the shares from this file instead of standard input.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Refused: shares on the command line are visible to other users.
        #[arg(hide = true)]
        shares: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCmd {
    /// Create an account at a portal, with this device as its first administrator.
    Create {
        /// The account's address, user@domain.
        address: String,
        /// The portal's URL.
        #[arg(long)]
        portal: String,
        /// A display name for the account.
        #[arg(long)]
        name: Option<String>,
        /// A name for this, the first, device (default: the host name).
        #[arg(long)]
        device: Option<String>,
        /// Where the recovery kit goes: one directory per share, comma-separated
        /// (one 0600 file each; e.g. three USB sticks), none inside a Mesh home
        /// and no two in one place; or `-` to print it. The account's root is
        /// in these shares only: no device keeps it.
        #[arg(
            long,
            value_name = "DIR,DIR,…|-",
            value_delimiter = ',',
            required = true
        )]
        recovery: Vec<String>,
        /// Shares needed to recover (2 to 15).
        #[arg(long, default_value_t = 2)]
        threshold: u8,
        /// Shares to make (default: one per --recovery directory; 3 with `-`).
        #[arg(long)]
        shares: Option<u8>,
        /// A witness (another portal run with `mesh-portal serve --witness`)
        /// that cosigns the account's history; every device and server then
        /// asks it, and refuses a portal restored from an older backup.
        /// Named in the root-signed profile: it cannot be changed later.
        #[arg(long, value_name = "URL")]
        witness: Option<String>,
        /// Read an invitation code (from the portal's operator, `mesh-portal
        /// invite`) on standard input: for a portal that creates accounts by
        /// invitation only.
        #[arg(long, num_args = 0..=1, default_missing_value = "-", value_name = "-")]
        invite: Option<String>,
    },
    /// Show the account, this device and its roles.
    Show,
    /// List the account's checkpoints (public): when each was made and what it changed; what `account recover --since @SERIAL` names.
    History {
        /// The account's address.
        address: String,
        /// The portal's URL.
        #[arg(long)]
        portal: String,
        /// The account's profile UDF (from a device, or the kit's account), to pin.
        #[arg(long)]
        account: Option<String>,
    },
    /// Refused: no device holds the account's root (the recovery kit from `account create` does).
    #[command(hide = true)]
    Escrow {
        /// Shares needed to recover (2 to 15).
        #[arg(long)]
        threshold: u8,
        /// Shares to make.
        #[arg(long)]
        shares: u8,
    },
    /// Promise a checkpoint at least this often (e.g. 1h, 1d), or `off`
    /// (administrators): the agents of administrator devices write one when
    /// the newest is half that old, and every device and server refuses an
    /// account whose newest checkpoint is twice that old (a portal serving
    /// a frozen account).
    Heartbeat {
        /// A duration, or `off`.
        #[arg(value_name = "DURATION|off", value_parser = parse_heartbeat)]
        every: Heartbeat,
    },
    /// Take the account back with its recovery shares (standard input, or --from files) on a fresh home: this device becomes an administrator of a new epoch (new administrator keys and CAs), the named devices revoked; --since turns the rest back to how it stood before the theft.
    Recover {
        /// The account's address.
        address: String,
        /// The portal's URL.
        #[arg(long)]
        portal: String,
        /// A name for this device.
        #[arg(long)]
        name: Option<String>,
        /// Read the shares from these files (one share each, as the kit wrote them) instead of standard input.
        #[arg(long)]
        from: Vec<PathBuf>,
        /// Revoke this device (name or UDF): the stolen one, or one a thief added. Repeatable.
        #[arg(long)]
        revoke: Vec<String>,
        /// Turn the account back to how it stood then (before the theft):
        /// an RFC 3339 time (`2026-11-28T09:00:00Z`) or a checkpoint serial
        /// (`@12`). Devices revoked since are active again, devices added since
        /// are revoked, login names and other policies are restored.
        #[arg(long, value_name = "TIME|@SERIAL", value_parser = parse_since)]
        since: Option<mesh_account::recover::Since>,
        /// Read and verify the account with the shares, print what --since
        /// would turn back, and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Refused: shares on the command line are visible to other users.
        #[arg(hide = true)]
        shares: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCmd {
    /// Create this device's seed and profile in its home.
    Init {
        /// A name for this device (default: the host name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Ask to join an account; prints the witness to compare on an administrator device.
    Request {
        /// The account's address.
        address: String,
        /// The portal's URL.
        #[arg(long)]
        portal: String,
        /// A name for this device (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Read a one-time PIN from `mesh device pin` on standard input: the request is accepted without asking.
        #[arg(long, num_args = 0..=1, default_missing_value = "-", value_name = "-")]
        pin: Option<String>,
        /// Wait for the answer, then complete (the default with --pin: an
        /// administrator device accepts it when it syncs).
        #[arg(long)]
        wait: bool,
        /// Return once the request is sent (with --pin too); `mesh sync` completes later.
        #[arg(long, conflicts_with = "wait")]
        no_wait: bool,
        /// How long the wait lasts.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: u64,
    },
    /// List connection requests waiting for an answer (administrators).
    Pending,
    /// Accept a request by its witness or id (administrators).
    Accept {
        /// Witness or request id.
        which: String,
        /// Roles to grant (default: every role but admin).
        #[arg(long, value_delimiter = ',', value_parser = role_arg())]
        roles: Vec<RoleArg>,
    },
    /// Reject a request by its witness or id (administrators).
    Reject {
        /// Witness or request id.
        which: String,
    },
    /// Print a one-time PIN; a request carrying it is accepted at the next sync (administrators).
    Pin {
        /// Roles the device will get (default: every role but admin).
        #[arg(long, value_delimiter = ',', value_parser = role_arg())]
        roles: Vec<RoleArg>,
        /// How long the PIN is valid (e.g. 30m, 1h, 2d).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        expires: u64,
    },
    /// Finish this device's connection once it is accepted (also done by `mesh sync`).
    Complete,
    /// List the account's devices.
    List,
    /// Revoke a device by name or UDF (administrators).
    Revoke {
        /// Name or device UDF.
        which: String,
        /// Then wait until every other device applied it (default 30s), and report each one's time.
        #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "30s", value_parser = parse_duration)]
        wait: Option<u64>,
    },
    /// Give a device new keys at the next epoch, keeping its identity (administrators).
    Rotate {
        /// Name or device UDF.
        which: String,
    },
    /// Change a device's roles, in one transaction (administrators).
    ///
    /// The device gets new keys with the new roles and switches at its next
    /// sync, as after `rotate`. Removing `admin` starts a new administrator
    /// epoch, as revoking an administrator does; the account keeps at least
    /// one administrator.
    Roles {
        /// Name or device UDF.
        which: String,
        /// Roles to add.
        #[arg(long, value_delimiter = ',', value_parser = role_arg())]
        add: Vec<RoleArg>,
        /// Roles to remove.
        #[arg(long, value_delimiter = ',', value_parser = role_arg())]
        remove: Vec<RoleArg>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCmd {
    /// Run the agent in the foreground.
    Run {
        /// Seconds between syncs with the portal.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        interval: u64,
        /// Log every signature in the device's audit log (`mesh audit`).
        #[arg(long, value_enum, default_value_t = Switch::On)]
        audit: Switch,
    },
    /// Start the agent in the background; returns once its socket accepts connections.
    Start {
        /// Seconds between syncs with the portal.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        interval: u64,
        /// Log every signature in the device's audit log (`mesh audit`).
        #[arg(long, value_enum, default_value_t = Switch::On)]
        audit: Switch,
    },
    /// Stop the running agent.
    Stop,
    /// Show the agent: socket, account, keys held, last sync, portal reachable.
    Status,
    /// Print `SSH_AUTH_SOCK=…; export SSH_AUTH_SOCK;` for `eval`.
    Env,
    /// Start the agent at logon (this user; no administrator rights).
    ///
    /// Linux: a systemd user unit in $XDG_CONFIG_HOME/systemd/user running
    /// `mesh --home HOME agent run`, enabled and started with `systemctl
    /// --user` where a user manager is reachable (else it says what to run).
    /// Windows: the value "Mesh agent" under
    /// HKCU\Software\Microsoft\Windows\CurrentVersion\Run running
    /// `mesh.exe --home HOME agent start`. macOS: a launchd agent in
    /// ~/Library/LaunchAgents. A home other than the default gets its own
    /// registration. Installing again updates it (e.g. the binary moved);
    /// one of the same name that is not Mesh's for this home is refused.
    Install,
    /// Remove what `mesh agent install` registered (and stop its agent, under systemd).
    Uninstall,
    /// Inside WSL: an SSH_AUTH_SOCK whose connections reach the Mesh agent on Windows.
    ///
    /// Listens on a Unix socket; each connection runs the relay command (by
    /// default `mesh.exe ssh-agent-relay`, which WSL's interop starts on
    /// Windows, where it opens the agent's pipe \\.\pipe\openssh-ssh-agent)
    /// and copies bytes both ways; the relay is killed when the connection
    /// closes, and its standard error is passed on, prefixed. Prints
    /// `SSH_AUTH_SOCK=…; export SSH_AUTH_SOCK;` once it listens (JSON with
    /// --json) and serves in the foreground until SIGTERM or Ctrl-C, then
    /// removes its socket.
    ///
    /// The socket is 0600 and its directory must be writable by this user
    /// alone (a missing one is made 0700); another user's socket, or one
    /// something answers on, is refused; a stale one of this user's is
    /// replaced. Only this user's connections are served.
    #[cfg(unix)]
    WslBridge(WslBridgeArgs),
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// What a secret seed derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SeedKind {
    /// An Ed25519 key.
    Ed25519,
    /// An X25519 key.
    X25519,
    /// A device profile.
    Device,
    /// An account profile.
    Account,
}

/// A device role: `admin` or one that a channel of this build serves.
/// The list comes from the channels (`Host::roles`): a new channel adds
/// no line here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleArg(pub(crate) mesh_core::objects::Role);

fn role_arg() -> impl clap::builder::TypedValueParser<Value = RoleArg> {
    use clap::builder::TypedValueParser as _;
    let names: Vec<String> = mesh_agent::host()
        .roles()
        .iter()
        .map(|r| r.name().to_owned())
        .collect();
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|s| mesh_core::objects::Role::parse(&s).map(RoleArg))
}

/// `mesh account heartbeat`'s argument: a duration, or no promise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat(pub Option<u64>);

fn parse_heartbeat(s: &str) -> std::result::Result<Heartbeat, String> {
    if s == "off" {
        return Ok(Heartbeat(None));
    }
    parse_duration(s).map(|d| Heartbeat(Some(d)))
}

/// `mesh audit --since`: a time, or how long ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuditSince {
    /// Seconds since the Unix epoch.
    Time(u64),
    /// Seconds before now.
    Ago(u64),
}

impl AuditSince {
    /// The time it names, given the time now.
    pub(crate) fn at(self, now: u64) -> u64 {
        match self {
            AuditSince::Time(t) => t,
            AuditSince::Ago(d) => now.saturating_sub(d),
        }
    }
}

fn parse_audit_since(s: &str) -> Result<AuditSince, String> {
    if let Ok(d) = parse_duration(s) {
        return Ok(AuditSince::Ago(d));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            format!("'{s}' is neither an RFC 3339 time (2026-12-07T09:00:00Z) nor a duration (24h)")
        })?;
    u64::try_from(t.unix_timestamp())
        .map(AuditSince::Time)
        .map_err(|_| format!("'{s}' is before 1970"))
}

/// `--since`: an RFC 3339 time, or `@` and a checkpoint serial.
fn parse_since(s: &str) -> Result<mesh_account::recover::Since, String> {
    use mesh_account::recover::Since;
    if let Some(n) = s.strip_prefix('@') {
        return n
            .parse()
            .map(Since::Serial)
            .map_err(|_| format!("'{s}' is not @ and a checkpoint serial"));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("'{s}' is not an RFC 3339 time ({e}), nor @SERIAL"))?;
    u64::try_from(t.unix_timestamp())
        .map(Since::Time)
        .map_err(|_| format!("'{s}' is before 1970"))
}

/// A number of seconds as a person writes it (`90s`, `5m`, `2h`, `1d`).
pub(crate) fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// ssh-agent(1)'s command line. `eval "$(mesh ssh-agent -s)"` starts an
/// agent in the background and sets SSH_AUTH_SOCK and SSH_AGENT_PID;
/// `mesh ssh-agent COMMAND` runs COMMAND with them set and the agent exits
/// when it does, with its status. Where the home has an account, the
/// device's Mesh key and certificate are served too. A link named
/// `ssh-agent` to the mesh binary runs this.
#[derive(Debug, clap::Args)]
pub(crate) struct SshAgentArgs {
    /// Bind the agent to this Unix socket (default: $TMPDIR/ssh-XXXXXXXXXX/agent.<pid>).
    #[arg(short = 'a', value_name = "BIND_ADDRESS")]
    pub bind_address: Option<PathBuf>,
    /// Print C-shell commands (the default when $SHELL ends in csh).
    #[arg(short = 'c', conflicts_with = "sh")]
    pub csh: bool,
    /// Print Bourne shell commands.
    #[arg(short = 's')]
    pub sh: bool,
    /// Debug: stay in the foreground and tell on standard error what happens.
    #[arg(short = 'd', conflicts_with = "foreground")]
    pub debug: bool,
    /// Stay in the foreground.
    #[arg(short = 'D')]
    pub foreground: bool,
    /// Kill the agent SSH_AGENT_PID names.
    #[arg(short = 'k')]
    pub kill: bool,
    /// Fingerprint hash in prompts: sha256 (default) or sha512.
    #[arg(short = 'E', value_name = "FINGERPRINT_HASH")]
    pub hash: Option<String>,
    /// allow-remote-pkcs11, no-restrict-websafe, forward-sign=ACTION, forward-login=[PATTERNS:]ACTION.
    #[arg(short = 'O', value_name = "OPTION")]
    pub option: Vec<String>,
    /// PKCS#11 providers that may be loaded, as an ssh pattern-list (default: /usr/lib*/*,/usr/local/lib*/*).
    #[arg(short = 'P', value_name = "ALLOWED_PROVIDERS")]
    pub allowed_providers: Option<String>,
    /// Default lifetime of added keys: seconds or a time like 1h30m.
    #[arg(short = 't', value_name = "LIFE")]
    pub life: Option<String>,
    /// The background process of a daemonized agent (internal).
    #[arg(long, hide = true)]
    pub serve_child: bool,
    /// The socket directory it removes when it exits (internal).
    #[arg(long, hide = true, requires = "serve_child")]
    pub socket_dir: Option<PathBuf>,
    /// COMMAND's pid: exit when it does (internal).
    #[arg(long, hide = true, requires = "serve_child")]
    pub parent_pid: Option<u32>,
    /// Run this with SSH_AUTH_SOCK and SSH_AGENT_PID set; the agent exits when it does.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = false,
        value_name = "COMMAND"
    )]
    pub command: Vec<std::ffi::OsString>,
}

/// `mesh ssh-agent-relay` (issue 26).
#[derive(Debug, clap::Args)]
pub(crate) struct SshAgentRelayArgs {
    /// The agent's endpoint (default: on Windows the named pipe
    /// \\.\pipe\openssh-ssh-agent, elsewhere $SSH_AUTH_SOCK).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::ffi::OsString>,
}

/// `mesh agent wsl-bridge` (issue 26).
#[cfg(unix)]
#[derive(Debug, clap::Args)]
pub(crate) struct WslBridgeArgs {
    /// The socket to listen on (default: $XDG_RUNTIME_DIR/mesh/wsl-ssh-agent.sock, else HOME/run/wsl-ssh-agent.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The relay to run for each connection, split into words as a shell splits them.
    #[arg(long, value_name = "COMMAND", default_value = mesh_agent::wsl_bridge::DEFAULT_RELAY)]
    pub relay: String,
    /// Connections served at once; past it new ones are closed (each is a relay process).
    #[arg(long, value_name = "N", default_value_t = mesh_agent::wsl_bridge::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_connections: u16,
}
