//! Errors of a channel, classified by who is at fault.

/// What went wrong in a channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// Data the portal served does not verify (the portal, or its database, is at fault).
    #[error("refusing what the portal returned: {0}")]
    Untrusted(String),
    /// A local file the user gave is not what it should be.
    #[error("{0}")]
    BadInput(String),
    /// Something the account does not have yet.
    #[error("{0}")]
    NotFound(String),
    /// A tool this channel drives (gpg, certutil, pk12util) failed or is missing.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// The program.
        tool: String,
        /// What it said.
        detail: String,
        /// What the user can do: the channel knows its tool, the SDK does not.
        hint: &'static str,
    },
    /// This device's own keys are gone (it was revoked and wiped).
    #[error("this device holds no keys (it was revoked and wiped)")]
    Wiped,
    /// Core (crypto, parsing).
    #[error(transparent)]
    Core(#[from] mesh_core::Error),
    /// A local file.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// This device has no key in a slot the channel owns: its profile or
    /// its connection was made by a client without the channel.
    #[error("this device has no key in slot {slot}: {detail}")]
    NoSlotKey {
        /// The slot's name.
        slot: &'static str,
        /// Where it is missing.
        detail: String,
    },
    /// The portal could not be asked, or refused (a held entry's release).
    #[error("the portal: {0}")]
    Portal(String),
    /// A bug or a limit of the channel's own code.
    #[error("{0}")]
    Internal(String),
}

impl PluginError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PluginError::Untrusted(_) => {
                "the portal (or its database) returned data that is not signed by this account; local state was kept as it was".into()
            }
            PluginError::Tool { hint, .. } if !hint.is_empty() => (*hint).into(),
            PluginError::NotFound(_) => "an administrator's `mesh sync` publishes it; then run `mesh sync` here".into(),
            PluginError::Portal(_) => "nothing was changed here; the next sync asks again".into(),
            PluginError::Wiped => "this home was revoked; join again with a new home".into(),
            PluginError::NoSlotKey { .. } => "a client without this channel made the device or its connection: when the device's profile has the key, an administrator's `mesh device rotate` adds it to the connection; else join again from a new home with this client".into(),
            _ => return None,
        })
    }

    /// An error for a file at `path`.
    pub fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> PluginError {
        let what = what.to_string();
        move |source| PluginError::Io { what, source }
    }
}
