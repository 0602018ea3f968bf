//! A channel's own subcommand (`mesh files …`): the channel describes it
//! with clap and runs it; the host mounts it in the `mesh` command line
//! (help, completions and manual pages included) and hands it what only
//! the host has: the device's home, `--json`, and the verified view.
//!
//! Optional: a channel without a subcommand leaves [`crate::Plugin::command`]
//! at its default and compiles unchanged.

use std::path::Path;

use crate::{AccountView, DeviceHost, PluginError};

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
}

/// What [`CommandContext::with_view`] runs.
pub type ViewFn<'a> = &'a mut dyn FnMut(&dyn DeviceHost, &AccountView) -> Result<(), CommandError>;

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
