//! A channel's own subcommand (`mesh files …`): the channel describes it
//! with clap and runs it; the host mounts it in the `mesh` command line
//! (help, completions and manual pages included) and hands it what only
//! the host has: the device's home, `--json`, and the verified view.
//!
//! Optional: a channel without a subcommand leaves [`crate::Plugin::command`]
//! at its default and compiles unchanged.

use std::path::Path;

use crate::{AccountView, AppEntry, DeviceHost, PluginError};

/// A channel's subcommand.
pub trait ChannelCommand: Send + Sync {
    /// The subcommand, named as the user types it (`files`), with its
    /// arguments and help. The host adds `--home` and `--json` (global).
    fn command(&self) -> clap::Command;

    /// Run it: `matches` are the subcommand's own (those of
    /// [`ChannelCommand::command`]).
    fn run(&self, matches: &clap::ArgMatches, ctx: &dyn CommandContext)
        -> Result<(), CommandError>;
}

/// What the host hands a channel's subcommand.
pub trait CommandContext {
    /// This device's home (`--home`, else `MESH_HOME`, else the default).
    fn home(&self) -> &Path;

    /// `--json`: print results as JSON.
    fn json(&self) -> bool;

    /// Run `f` with this device and its account's verified view (the host
    /// opens the home, refuses a revoked device, and verifies the account
    /// once).
    fn with_view(&self, f: ViewFn<'_>) -> Result<(), CommandError>;

    // Host services: what a subcommand needs that only the host (the
    // account's store, its portal, its agent) has. Each defaults to a
    // refusal, so a host or a test double offers only what it has.

    /// Whether this home holds an account (`false`: no home, or a home
    /// with no account yet); for commands that also work without one.
    fn has_account(&self) -> Result<bool, CommandError> {
        Err(not_offered("has_account"))
    }

    /// This home's account: its profile UDF and portal, as stored (no
    /// portal is asked).
    fn account(&self) -> Result<AccountRef, CommandError> {
        Err(not_offered("account"))
    }

    /// Pull what changed at the portal, verify it and act on it (`mesh
    /// sync`), so that what follows reads the newest state.
    fn sync(&self) -> Result<(), CommandError> {
        Err(not_offered("sync"))
    }

    /// Administrators: publish the entries `build` computes from the
    /// account's verified view, in one transaction (a policy change).
    /// `build`'s own error is returned as the host's failure; a channel
    /// that needs it as it was keeps it in its closure.
    fn publish(&self, build: PublishFn<'_>) -> Result<(), CommandError> {
        let _ = build;
        Err(not_offered("publish"))
    }

    /// Ask a running agent of this home to sync now, so that it takes a
    /// published change at once (best effort: others take it at their
    /// next sync).
    fn nudge_agent(&self) {}

    /// Reads of any account's public, verified history, for servers
    /// (`--account UDF --portal URL`), by the host's replica and pager.
    fn servers(&self) -> Result<&dyn ServerReads, CommandError> {
        Err(not_offered("servers"))
    }
}

/// What [`CommandContext::with_view`] runs.
pub type ViewFn<'a> = &'a mut dyn FnMut(&dyn DeviceHost, &AccountView) -> Result<(), CommandError>;

/// What [`CommandContext::publish`] runs: the entries to publish.
pub type PublishFn<'a> = &'a dyn Fn(&AccountView) -> Result<Vec<AppEntry>, PluginError>;

/// This home's account, as [`CommandContext::account`] gives it.
#[derive(Clone, Debug)]
pub struct AccountRef {
    /// The account's profile UDF.
    pub profile_udf: String,
    /// Its portal's URL.
    pub portal: String,
}

/// Where a server finds an account and how long a cached answer serves.
#[derive(Clone, Copy, Debug)]
pub struct Lookup<'a> {
    /// The account's profile UDF (pinned: everything is verified up to it).
    pub profile_udf: &'a str,
    /// The portal's URL.
    pub portal: &'a str,
    /// The last verified answer, for when the portal is unreachable.
    pub cache: Option<&'a Path>,
    /// How old (seconds) a cached answer may be before the lookup fails closed.
    pub max_stale: u64,
}

/// A file a server keeps current from the account's published history
/// (`mesh ssh ca --output`, `mesh ssh krl --account`).
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Whether the file was written (else it was current already).
    pub replaced: bool,
    /// The administrator epoch (CA) or the KRL version it holds.
    pub number: u64,
    /// The host's report of it, printed as is with `--json`.
    pub json: serde_json::Value,
}

/// git's allowed signers of an account (`mesh ssh allowed-signers`).
#[derive(Clone, Debug)]
pub struct Signers {
    /// The allowed-signers file.
    pub text: String,
    /// Device key lines.
    pub keys: usize,
    /// cert-authority lines.
    pub cas: usize,
    /// Keys in the KRL written (when one was asked for).
    pub revoked: usize,
}

/// The host's readers of an account's public history (a replica that
/// verifies every page, a bounded pager, the server's cache), for the
/// commands servers run. Each refuses a portal that lies or rolls back.
pub trait ServerReads {
    /// The account's verified public view.
    fn public_view(&self, l: &Lookup<'_>) -> Result<AccountView, CommandError>;
    /// sshd's AuthorizedKeysCommand: a line per active device key.
    fn authorized_keys(
        &self,
        l: &Lookup<'_>,
        user: Option<&str>,
    ) -> Result<Vec<String>, CommandError>;
    /// sshd's AuthorizedPrincipalsCommand: `user` when `cert` is an active device's.
    fn authorized_principals(
        &self,
        l: &Lookup<'_>,
        user: &str,
        cert: &str,
    ) -> Result<Vec<String>, CommandError>;
    /// The current CA line into `output` (its `number` is the epoch).
    fn fetch_ca(&self, l: &Lookup<'_>, output: &Path) -> Result<Fetched, CommandError>;
    /// The published KRL into `output` (its `number` is the version).
    fn fetch_krl(&self, l: &Lookup<'_>, output: &Path) -> Result<Fetched, CommandError>;
    /// git's allowed signers; with `krl`, the revoked devices' keys there too.
    fn allowed_signers(&self, l: &Lookup<'_>, krl: Option<&Path>) -> Result<Signers, CommandError>;
}

fn not_offered(what: &str) -> CommandError {
    CommandError::new(
        format!("this host does not offer `{what}` to channels' subcommands"),
        None,
    )
}

/// A subcommand's failure: what happened and, when there is something to
/// do about it, a hint (printed as `hint:`).
#[derive(Debug)]
pub struct CommandError {
    message: String,
    hint: Option<String>,
}

impl CommandError {
    /// An error with a message and an optional hint.
    pub fn new(message: impl Into<String>, hint: Option<String>) -> CommandError {
        CommandError {
            message: message.into(),
            hint,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl CommandError {
    /// `e` as the host prints an error: its message, then each cause after
    /// a colon; the hint is `hint`, else the error's own (a channel's), else
    /// what to do about a file that could not be used.
    pub fn of(e: &(dyn std::error::Error + 'static), hint: Option<String>) -> CommandError {
        let mut message = e.to_string();
        let (mut found, mut io) = (hint, None);
        let (mut next, mut first) = (Some(e), true);
        while let Some(c) = next {
            if !std::mem::take(&mut first) {
                message.push_str(&format!(": {c}"));
            }
            if let Some(p) = c.downcast_ref::<PluginError>() {
                found = found.or_else(|| p.hint());
            }
            io = io.or_else(|| c.downcast_ref::<std::io::Error>().map(|e| e.kind()));
            next = c.source();
        }
        let hint = found.or_else(|| io.and_then(io_hint).map(str::to_string));
        CommandError { message, hint }
    }
}

/// What to do about a file that could not be used (as the host says it).
pub fn io_hint(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::NotFound => "check the path: no such file or directory",
        K::PermissionDenied => "check the file's permissions: this user must be able to read it (or write, for an output)",
        K::IsADirectory => "give a file, not a directory",
        K::AlreadyExists => "choose another path, or remove the one in the way",
        _ => return None,
    })
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

impl From<PluginError> for CommandError {
    fn from(e: PluginError) -> CommandError {
        CommandError::new(e.to_string(), e.hint())
    }
}
