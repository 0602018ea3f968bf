//! The host services a channel's subcommand gets through
//! [`mesh_plugins::CommandContext`] that live in this crate: the readers
//! of an account's public history that servers run (`mesh ssh
//! authorized-keys`, `krl --account`, `ca --output`, `allowed-signers`,
//! `pgp install --account`). They stay here because they use the
//! account's replica, pager and the server's cache ([`crate::servers`]),
//! which a channel crate cannot depend on.

use std::path::Path;

use mesh_account::AccountError;
use mesh_plugins::command::{Fetched, Lookup, ServerReads, Signers};
use mesh_plugins::{AccountView, CommandError};

/// [`ServerReads`] by [`crate::servers`] and [`crate::git_signers`].
#[derive(Debug, Default)]
pub struct Servers;

/// An account error as the host prints it, with its hint.
fn err(e: AccountError) -> CommandError {
    let hint = e.hint();
    CommandError::of(&e, hint)
}

fn json(v: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

impl ServerReads for Servers {
    fn public_view(&self, l: &Lookup<'_>) -> Result<AccountView, CommandError> {
        crate::servers::public_view(l).map_err(err)
    }

    fn authorized_keys(
        &self,
        l: &Lookup<'_>,
        user: Option<&str>,
    ) -> Result<Vec<String>, CommandError> {
        crate::servers::authorized_keys(l, user).map_err(err)
    }

    fn authorized_principals(
        &self,
        l: &Lookup<'_>,
        user: &str,
        cert: &str,
    ) -> Result<Vec<String>, CommandError> {
        crate::servers::authorized_principals(l, user, cert).map_err(err)
    }

    fn fetch_ca(&self, l: &Lookup<'_>, output: &Path) -> Result<Fetched, CommandError> {
        let f = crate::servers::fetch_ca(l.profile_udf, l.portal, output, l.cache).map_err(err)?;
        Ok(Fetched {
            replaced: f.replaced,
            number: f.epoch.into(),
            json: json(&f),
        })
    }

    fn fetch_krl(&self, l: &Lookup<'_>, output: &Path) -> Result<Fetched, CommandError> {
        let f = crate::servers::fetch_krl(l.profile_udf, l.portal, output, l.cache).map_err(err)?;
        Ok(Fetched {
            replaced: f.replaced,
            number: f.version,
            json: json(&f),
        })
    }

    fn allowed_signers(&self, l: &Lookup<'_>, krl: Option<&Path>) -> Result<Signers, CommandError> {
        let w = crate::git_signers::write(l.profile_udf, l.portal, l.cache, krl).map_err(err)?;
        Ok(Signers {
            text: w.text,
            keys: w.keys,
            cas: w.cas,
            revoked: w.revoked,
        })
    }
}
