//! A channel's own subcommand (`mesh files …`, `mesh ssh …`, mounted by
//! `mesh_agent::channel_cli`): what the host hands it. The services that
//! need the binary's error hints are here; the servers' readers are
//! `mesh_agent::channel_host`.

use std::path::PathBuf;

use anyhow::Result;
use mesh_account::store::{Store, StoreError};
use mesh_plugins::command::{AccountRef, PublishFn, ServerReads, ViewFn};
use mesh_plugins::{ChannelCommand, CommandContext, CommandError};

/// The host's side of a channel's subcommand.
struct Context {
    home: PathBuf,
    json: bool,
    servers: mesh_agent::channel_host::Servers,
}

/// A host failure as `mesh` prints it: every cause, and the hint.
fn host_err(e: anyhow::Error) -> CommandError {
    CommandError::new(format!("{e:#}"), super::hint_of(&e))
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
            (Err(e), None) => Err(host_err(e)),
        }
    }

    fn has_account(&self) -> Result<bool, CommandError> {
        let store = match Store::open(&self.home, false) {
            Ok(s) => s,
            Err(StoreError::NoStore(_)) => return Ok(false),
            Err(e) => return Err(host_err(e.into())),
        };
        match mesh_account::account(&store) {
            Ok(_) => Ok(true),
            Err(mesh_account::AccountError::NoAccount) => Ok(false),
            Err(e) => Err(host_err(e.into())),
        }
    }

    fn account(&self) -> Result<AccountRef, CommandError> {
        let a = Store::open(&self.home, false)
            .map_err(anyhow::Error::from)
            .and_then(|s| Ok(mesh_account::account(&s)?))
            .map_err(host_err)?;
        Ok(AccountRef {
            profile_udf: a.profile_udf,
            portal: a.portal,
        })
    }

    fn sync(&self) -> Result<(), CommandError> {
        let mut store = Store::open(&self.home, false).map_err(|e| host_err(e.into()))?;
        mesh_account::sync::sync(&mut store, &mesh_agent::host())
            .map(drop)
            .map_err(|e| host_err(e.into()))
    }

    fn publish(&self, build: PublishFn<'_>) -> Result<(), CommandError> {
        let mut store = Store::open(&self.home, false).map_err(|e| host_err(e.into()))?;
        mesh_account::admin::publish(&mut store, &mesh_agent::host(), build)
            .map_err(|e| host_err(e.into()))
    }

    fn nudge_agent(&self) {
        let _ = mesh_agent::daemon::query(&self.home, "sync");
    }

    fn servers(&self) -> Result<&dyn ServerReads, CommandError> {
        Ok(&self.servers)
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
        servers: mesh_agent::channel_host::Servers,
    };
    channel.run(sub, &ctx).map_err(anyhow::Error::new)
}
