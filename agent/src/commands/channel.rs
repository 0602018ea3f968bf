//! A channel's own subcommand (`mesh files …`, mounted by
//! `mesh_agent::channel_cli`): what the host hands it.

use std::path::PathBuf;

use anyhow::Result;
use mesh_plugins::command::ViewFn;
use mesh_plugins::{ChannelCommand, CommandContext, CommandError};

/// The host's side of a channel's subcommand.
struct Context {
    home: PathBuf,
    json: bool,
}

impl CommandContext for Context {
    fn home(&self) -> &std::path::Path {
        &self.home
    }

    fn json(&self) -> bool {
        self.json
    }

    fn with_view(&self, f: ViewFn<'_>) -> Result<(), CommandError> {
        // The host's failures (the home, the account) keep their hints;
        // the channel's own come back as they were.
        let mut inner = None;
        let r = super::with_view(&self.home, |dh, v| {
            f(dh, v).map_err(|e| {
                inner = Some(e);
                anyhow::anyhow!("the channel failed")
            })
        });
        match (r, inner) {
            (_, Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
            (Err(e), None) => Err(CommandError::new(format!("{e:#}"), super::hint_of(&e))),
        }
    }
}

/// Run a channel's subcommand; `all` holds the global options.
pub(crate) fn run(
    channel: &dyn ChannelCommand,
    sub: &clap::ArgMatches,
    all: &clap::ArgMatches,
) -> Result<()> {
    let ctx = Context {
        home: all
            .get_one::<PathBuf>("home")
            .cloned()
            .unwrap_or_else(mesh_account::store::default_home),
        json: all.get_flag("json"),
    };
    channel.run(sub, &ctx).map_err(anyhow::Error::new)
}
