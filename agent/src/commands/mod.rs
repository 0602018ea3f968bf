//! One module per command group; what they share is here: output, errors
//! with hints, input files, and the verified view of the account.

pub(crate) mod account;
pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod channel;
pub(crate) mod device;
pub(crate) mod local;
#[cfg(feature = "quickstart")]
pub(crate) mod quickstart;
pub(crate) mod secrets;
#[cfg(unix)]
pub(crate) mod ssh_agent;
pub(crate) mod wsl;

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use mesh_account::device::DeviceError;
use mesh_account::store::{Store, StoreError};
use mesh_account::{AccountError, StoreHost};
use mesh_core::objects::Role;
use mesh_core::Error as CoreError;
use mesh_plugins::{AccountView, PluginError};

/// The roles named.
pub(crate) fn roles(list: &[crate::cli::RoleArg]) -> Result<Vec<Role>> {
    Ok(list.iter().map(|r| r.0.clone()).collect())
}

/// The roles named, or every role of this build's channels but admin.
pub(crate) fn roles_or_channels(list: &[crate::cli::RoleArg]) -> Result<Vec<Role>> {
    if list.is_empty() {
        let mut all = mesh_agent::host().roles();
        all.retain(|r| *r != Role::ADMIN);
        return Ok(all);
    }
    roles(list)
}

/// An error with a hint for the user.
#[derive(Debug)]
pub(crate) struct Hinted {
    message: String,
    hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

pub(crate) fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

pub(crate) fn hint_of(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            return Some(h.hint.clone());
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return s.hint();
        }
        if let Some(d) = cause.downcast_ref::<DeviceError>() {
            return d.hint();
        }
        if let Some(a) = cause.downcast_ref::<AccountError>() {
            return a.hint();
        }
        if let Some(p) = cause.downcast_ref::<PluginError>() {
            return p.hint();
        }
        if let Some(c) = cause.downcast_ref::<mesh_plugins::CommandError>() {
            return c.hint().map(str::to_string);
        }
        if let Some(k) = cause.downcast_ref::<mesh_agent::recovery::KitError>() {
            return Some(k.hint());
        }
        if let Some(d) = cause.downcast_ref::<mesh_agent::daemon::DaemonError>() {
            return d.hint();
        }
        #[cfg(unix)]
        if let Some(s) = cause.downcast_ref::<mesh_agent::ssh_agent_cmd::SshAgentError>() {
            return s.hint();
        }
        if let Some(a) = cause.downcast_ref::<mesh_agent::autostart::AutostartError>() {
            return a.hint();
        }
        if let Some(r) = cause.downcast_ref::<mesh_agent::ssh_agent_relay::RelayError>() {
            return r.hint();
        }
        #[cfg(unix)]
        if let Some(w) = cause.downcast_ref::<mesh_agent::wsl_bridge::WslBridgeError>() {
            return w.hint();
        }
        if let Some(a) = cause.downcast_ref::<mesh_account::audit_log::AuditLogError>() {
            return a.hint();
        }
        if let Some(CoreError::Shares(_)) = cause.downcast_ref::<CoreError>() {
            return Some("check the shares against what was printed; give more than the quorum to find a wrong one".into());
        }
    }
    // A file the user named could not be read or written.
    e.chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .and_then(|io| mesh_plugins::command::io_hint(io.kind()))
        .map(str::to_string)
}

/// Run `f` with this device's verified view of its account.
pub(crate) fn with_view<T>(
    home: &std::path::Path,
    f: impl FnOnce(&StoreHost, &AccountView) -> Result<T>,
) -> Result<T> {
    with_view_of(&Store::open(home, false)?, f)
}

/// [`with_view`] on an open store.
pub(crate) fn with_view_of<T>(
    store: &Store,
    f: impl FnOnce(&StoreHost, &AccountView) -> Result<T>,
) -> Result<T> {
    let a = mesh_account::account(store)?;
    if a.membership == mesh_account::Membership::Revoked {
        return Err(AccountError::Revoked(a.address).into());
    }
    let view = mesh_agent::host().view(&a)?;
    let dh = StoreHost::new(store)?;
    f(&dh, &view)
}

/// Print a result: JSON when asked, else the text.
pub(crate) fn emit(json_mode: bool, value: serde_json::Value, text: &str) {
    if json_mode {
        out!("{value}");
    } else if !text.is_empty() {
        out!("{text}");
    }
}

pub(crate) fn read_input(file: &PathBuf) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("reading standard input")?;
    } else {
        data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    Ok(data)
}

/// Write to standard output; a closed pipe (`mesh … | head`) ends the
/// program quietly, as `out!` does.
pub(crate) fn print_bytes(data: &[u8]) -> Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(data).and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r.context("writing standard output")?),
    }
}
