//! `mesh ssh`: this device's key and certificate, and what servers use.
//! The channel's own subcommand, mounted by the host through the SDK
//! ([`ChannelCommand`]). What only the host has comes through
//! [`CommandContext`]: the verified view, sync, an administrator's publish
//! of a policy change, and the readers of an account's public history
//! that servers run (`authorized-keys`, `krl --account`, `ca --output`,
//! `allowed-signers`), which stay in the agent with the account's replica.

use std::path::PathBuf;

use clap::{FromArgMatches, Subcommand};
use mesh_plugins::cli::parse_duration;
use mesh_plugins::command::Lookup;
use mesh_plugins::{ChannelCommand, CommandContext, CommandError};

mod run;

pub use self::run::run;

/// `mesh ssh`, as the SDK mounts it.
#[derive(Debug, Default)]
pub struct SshCommand;

impl ChannelCommand for SshCommand {
    fn command(&self) -> clap::Command {
        SshCmd::augment_subcommands(clap::Command::new("ssh"))
            .about("SSH: this device's key and certificate, and what servers use")
            .subcommand_required(true)
            .arg_required_else_help(true)
    }

    fn run(&self, m: &clap::ArgMatches, ctx: &dyn CommandContext) -> Result<(), CommandError> {
        let cmd =
            SshCmd::from_arg_matches(m).map_err(|e| CommandError::new(e.to_string(), None))?;
        run(ctx, cmd)
    }
}

/// `mesh ssh`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum SshCmd {
    /// Print this device's SSH public key.
    PublicKey,
    /// Print this device's SSH certificate.
    Cert,
    /// Print the account's CA line for sshd's TrustedUserCAKeys.
    Ca {
        /// On a server: the account's profile UDF (pinned); with --portal
        /// and --output, fetch the current CA from the verified history
        /// (it changes when an administrator is revoked).
        #[arg(long, requires_all = ["portal", "output"])]
        account: Option<String>,
        /// On a server: the portal's URL.
        #[arg(long, requires = "account")]
        portal: Option<String>,
        /// On a server: the TrustedUserCAKeys file (replaced atomically when the CA changed).
        #[arg(long, requires = "account")]
        output: Option<PathBuf>,
        /// On a server: the verified history, so that a portal that rolls the account back is refused.
        #[arg(long, requires = "account")]
        cache: Option<PathBuf>,
    },
    /// Write an OpenSSH KRL of every revoked or replaced device key and certificate (for RevokedKeys).
    ///
    /// On a device: from its own verified view. On a server, with --account
    /// and --portal: the KRL the account published, verified, never
    /// replacing a newer one with an older one.
    Krl {
        /// The KRL file (replaced atomically).
        #[arg(long)]
        output: PathBuf,
        /// On a server: the account's profile UDF (pinned).
        #[arg(long, requires = "portal")]
        account: Option<String>,
        /// On a server: the portal's URL.
        #[arg(long, requires = "account")]
        portal: Option<String>,
        /// On a server: a private directory where the verified history is
        /// kept, so that a portal that rolls the account back is refused.
        #[arg(long, requires = "account")]
        cache: Option<PathBuf>,
    },
    /// Write git's allowed signers (gpg.ssh.allowedSignersFile): every key a device of the account ever had, valid from its issue until its rotation or revocation.
    ///
    /// Principals are DEVICE@ADDRESS and ADDRESS; a cert-authority line per
    /// administrator epoch's CA. Read from the portal's verified public
    /// history: this device's account, or, with --account and --portal,
    /// any account's (on a server or a CI runner).
    AllowedSigners {
        /// The file (replaced atomically); standard output without it.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also write a KRL of the keys revoked devices held, for
        /// gpg.ssh.revocationFile (not `mesh ssh krl`'s, which also revokes
        /// rotated-away keys and would refuse their older commits).
        #[arg(long)]
        krl: Option<PathBuf>,
        /// The account's profile UDF (pinned).
        #[arg(long, requires = "portal")]
        account: Option<String>,
        /// The portal's URL.
        #[arg(long, requires = "account")]
        portal: Option<String>,
        /// The verified history `mesh ssh krl --cache` keeps: a portal
        /// behind it is refused.
        #[arg(long, requires = "account")]
        cache: Option<PathBuf>,
    },
    /// Print authorized_keys lines for every active device (for sshd's AuthorizedKeysCommand).
    AuthorizedKeys {
        #[command(flatten)]
        lookup: LookupArgs,
        /// The login name (sshd's %u): nothing is printed unless it is one of the account's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Print the login name when a certificate is for an active device (for sshd's AuthorizedPrincipalsCommand).
    AuthorizedPrincipals {
        #[command(flatten)]
        lookup: LookupArgs,
        /// The login name (sshd's %u).
        #[arg(long)]
        user: String,
        /// The certificate, base64 (sshd's %k).
        #[arg(long)]
        cert: String,
    },
    /// Whether every use of a device's Mesh key asks first, through SSH_ASKPASS (administrators).
    Confirm {
        /// on or off.
        state: Toggle,
    },
    /// Set the login names certificates are valid for (administrators); re-issues every certificate.
    Principals {
        /// Login names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Certificate validity (e.g. 30d).
        #[arg(long, value_parser = parse_duration)]
        validity: Option<u64>,
    },
    /// Which key each host accepts, as the agent learned it (listed first to that host).
    ///
    /// Without a subcommand: every host key fingerprint, the identity
    /// offered first to it, and when it was learned or pinned.
    Hosts {
        #[command(subcommand)]
        action: Option<HostsCmd>,
    },
    /// Show or set the account's SSH policy (administrators set it).
    #[command(subcommand)]
    Policy(SshPolicyCmd),
}

/// `mesh ssh policy`.
#[derive(Debug, Subcommand)]
pub enum SshPolicyCmd {
    /// What agents do with requests over forwarded hops (`ssh -A`); no option: show it.
    Forwarding {
        /// Signatures that are not logins (git commits, ssh-keygen -Y sign): refuse (default), confirm or allow.
        #[arg(long, value_enum)]
        sign: Option<ActionArg>,
        /// Forwarded logins: allow (default), confirm or refuse.
        #[arg(long, value_enum)]
        login: Option<ActionArg>,
        /// Only for destinations this ssh pattern-list matches (host key fingerprint SHA256:…, or a host certificate's principal).
        #[arg(long, requires = "login")]
        destination: Option<String>,
        /// Drop every per-destination rule first.
        #[arg(long)]
        reset: bool,
    },
    /// Short-lived certificates: one per window of LIFETIME (e.g. 24h, at least 10m), the coming ones held at the portal until their window; `off`: back to the validity. No argument: show it.
    CertLifetime {
        /// The window length (e.g. 24h), or off.
        #[arg(value_parser = parse_lifetime)]
        lifetime: Option<LifetimeArg>,
        /// How far ahead windows are issued (default 7d).
        #[arg(long, value_parser = parse_duration, requires = "lifetime")]
        ahead: Option<u64>,
    },
}

/// A certificate lifetime, or off.
#[derive(Debug, Clone, Copy)]
pub struct LifetimeArg(pub Option<u64>);

fn parse_lifetime(s: &str) -> Result<LifetimeArg, String> {
    if s == "off" {
        return Ok(LifetimeArg(None));
    }
    parse_duration(s).map(|d| LifetimeArg(Some(d)))
}

/// What an agent does with a request the forwarding policy covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ActionArg {
    /// Sign.
    Allow,
    /// Ask the user (SSH_ASKPASS) first.
    Confirm,
    /// Refuse.
    Refuse,
}

impl From<ActionArg> for crate::forward::Action {
    fn from(a: ActionArg) -> Self {
        match a {
            ActionArg::Allow => Self::Allow,
            ActionArg::Confirm => Self::Confirm,
            ActionArg::Refuse => Self::Refuse,
        }
    }
}

/// `mesh ssh hosts` subcommands (they edit the home's ssh-hosts.json; a
/// running agent takes the change within a second).
#[derive(Debug, Subcommand)]
pub enum HostsCmd {
    /// Offer KEY_FP first to the host HOST_KEY_FP, whatever the agent learns.
    Pin {
        /// The host key's SHA-256 fingerprint (`ssh-keygen -lf`, `ssh -v`).
        host: String,
        /// The identity's SHA-256 fingerprint (`ssh-add -l`).
        key: String,
    },
    /// Forget what was learned or pinned for a host.
    Forget {
        /// The host key's SHA-256 fingerprint.
        host: String,
    },
}

/// Where a server finds the account, and how long a cached answer serves.
#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    /// The account's profile UDF (pinned: everything is verified up to it).
    #[arg(long)]
    pub account: String,
    /// The portal's URL.
    #[arg(long)]
    pub portal: String,
    /// Keep the last verified answer here, for when the portal is unreachable.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// How old a cached answer may be before this fails closed.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub max_stale: u64,
}

impl LookupArgs {
    pub fn lookup(&self) -> Lookup<'_> {
        Lookup {
            profile_udf: &self.account,
            portal: &self.portal,
            cache: self.cache.as_deref(),
            max_stale: self.max_stale,
        }
    }
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Toggle {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
