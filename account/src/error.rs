//! Errors of the account layer.

use crate::client::ClientError;
use crate::device::DeviceError;
use crate::store::StoreError;

/// Errors of the account layer, each naming what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Device layer.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Store layer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Portal.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Core (crypto, parsing).
    #[error(transparent)]
    Core(#[from] mesh_core::Error),
    /// A channel.
    #[error(transparent)]
    Plugin(#[from] mesh_plugins::PluginError),
    /// A paged read the portal would keep going for ever.
    #[error(transparent)]
    Pager(#[from] crate::pager::PagerError),
    /// Something the portal returned does not verify.
    #[error("refusing what the portal returned: {0}")]
    Untrusted(String),
    /// The portal served a history the administrators did not sign.
    #[error("refusing what the portal returned: {0}")]
    History(mesh_core::history::HistoryError),
    /// No account on this device.
    #[error("this device is not connected to an account")]
    NoAccount,
    /// Already connected.
    #[error("this device already belongs to account {0}")]
    HasAccount(String),
    /// Needs the administrator role.
    #[error("this device is not an administrator of {0}")]
    NotAdmin(String),
    /// Revoked.
    #[error("this device was revoked from account {0}; its secrets have been wiped")]
    Revoked(String),
    /// Not yet accepted (the second field: the request carries a PIN).
    #[error("{}", pending_message(.0, *.1))]
    Pending(String, bool),
    /// Rejected, with the administrator's reason when it gave one.
    #[error("the administrator of {0} rejected this device's request{reason}", reason = .1.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Rejected(String, Option<String>),
    /// A pending request or device that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// No pending request has this witness or id.
    #[error("no pending request with witness or id {0}")]
    UnknownRequest(String),
    /// No device of the account has this name or UDF.
    #[error("no {1}device named {0}")]
    UnknownDevice(String, &'static str),
    /// Bad argument, with what to do instead.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The portal's answer was lost and it cannot be asked now.
    #[error(
        "the outcome is unknown: the portal's answer was lost ({0}) and it cannot be asked now"
    )]
    OutcomeUnknown(String),
    /// The account's witness could not be asked (PROTOCOL.md §10.6).
    #[error("the account's witness at {url} could not confirm the portal's history: {reason}")]
    Witness {
        /// The witness.
        url: String,
        /// What happened.
        reason: String,
    },
    /// A write committed at the portal that the witness has not confirmed.
    #[error("{0}: the change was committed at the portal, but until the witness confirms it a portal restored from a backup could undo it")]
    Unwitnessed(Box<AccountError>),
    /// The account's newest checkpoint is older than its administrators
    /// promised (PROTOCOL.md §10.7).
    #[error("refusing what the portal returned: {0}")]
    Stale(String),
    /// Too many concurrent writers.
    #[error("the account changed under every retry (another administrator is writing); try again")]
    Busy,
}

// Not a `#[from]`: the message carries the detail, and a source would
// print it twice.
impl From<mesh_core::history::HistoryError> for AccountError {
    fn from(e: mesh_core::history::HistoryError) -> AccountError {
        AccountError::History(e)
    }
}

// A page the replica refused: its history as `History`, an entry as
// `Untrusted` (both blame the portal).
impl From<mesh_core::replica::ReplicaError> for AccountError {
    fn from(e: mesh_core::replica::ReplicaError) -> AccountError {
        match e {
            mesh_core::replica::ReplicaError::History(h) => AccountError::History(h),
            other => AccountError::Untrusted(other.to_string()),
        }
    }
}

impl AccountError {
    /// A bad argument and what to do instead.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> AccountError {
        AccountError::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            AccountError::Device(e) => return e.hint(),
            AccountError::Plugin(e) => return e.hint(),
            AccountError::Pager(e) => e.hint(),
            AccountError::Rejected(_, Some(_)) => {
                "ask an administrator for a new PIN (`mesh device pin`), then run `mesh device request` again (with another `--name` if the reason is the name)".into()
            }
            AccountError::Revoked(_) => {
                "this home can no longer be used; join the account again from a new home".into()
            }
            AccountError::Store(e) => return e.hint(),
            AccountError::Client(ClientError::BadUrl { .. }) => {
                "give the portal's URL as its operator wrote it, e.g. https://portal.example.com (plain http only on loopback: http://127.0.0.1:8461)".into()
            }
            AccountError::Client(ClientError::Unreachable { .. }) => {
                "check the portal URL and that the portal is running".into()
            }
            AccountError::Client(e) if e.code() == Some(mesh_core::portal::code::QUOTA_EXCEEDED) => {
                "the portal's operator sets its quotas (mesh-portal serve --max-accounts, --max-account-bytes); ask them, or use another portal".into()
            }
            AccountError::Client(e) if e.code() == Some(mesh_core::portal::code::INVITE_REQUIRED) => {
                "this portal creates accounts by invitation only: ask its operator for a code (`mesh-portal invite`) and give it on standard input (`echo \"$CODE\" | mesh account create … --invite`); a refused code is used up".into()
            }
            AccountError::Client(e) if e.code() == Some(mesh_core::portal::code::TOO_MANY_PENDING) => {
                "an administrator answers the waiting requests first (`mesh device pending`, then accept or reject); then ask again".into()
            }
            AccountError::UnknownRequest(_) => {
                "`mesh device pending` lists the requests waiting for an answer, with their witnesses".into()
            }
            AccountError::UnknownDevice(..) => {
                "`mesh device list` shows the account's devices, their names and UDFs".into()
            }
            AccountError::Busy => "run the command again".into(),
            AccountError::Stale(_) => {
                "bring an administrator device online (its agent writes the heartbeat), or ask the portal's operator whether it serves the account as it is; nothing new was applied here"
                    .into()
            }
            AccountError::Witness { .. } => {
                "nothing new was applied; check that the witness named in the account's profile is running and reaches the portal, then sync again"
                    .into()
            }
            AccountError::Unwitnessed(_) => {
                "run `mesh sync` once the witness answers: it asks the witness again; do not run the command again".into()
            }
            AccountError::OutcomeUnknown(_) => {
                "when the portal is back, `mesh device list` shows whether it took effect; running the same command again is safe"
                    .into()
            }
            AccountError::Usage { hint, .. } => hint.clone(),
            AccountError::NoAccount => {
                "create one with `mesh account create` or join one with `mesh device request`".into()
            }
            AccountError::HasAccount(_) => "use another --home for another account".into(),
            AccountError::NotAdmin(_) => "run this on an administrator device".into(),
            AccountError::Pending(_, true) => {
                "a request with a PIN is accepted by an administrator device when it syncs: its agent (`mesh agent start`) does so every few seconds, or run `mesh sync` there; then `mesh sync` here completes the connection".into()
            }
            AccountError::Pending(_, false) => {
                "on an administrator device, `mesh device pending` shows the request and its witness; compare the witness, then `mesh device accept WITNESS`".into()
            }
            AccountError::History(_) => {
                "the portal (or its database) served an account history that its administrators did not sign: nothing was changed here; tell the portal's operator, and do not trust what it serves until it is restored"
                    .into()
            }
            AccountError::Untrusted(_) => {
                "the portal (or its database) returned data that is not signed by this account; local state was kept as it was"
                    .into()
            }
            _ => return None,
        })
    }
}

fn pending_message(address: &str, pin: bool) -> String {
    if pin {
        format!("the connection request to {address} (with a PIN) is waiting for an administrator device to sync")
    } else {
        format!("the connection request to {address} is waiting for an administrator to accept it")
    }
}

/// Results of the account layer.
pub type Result<T> = std::result::Result<T, AccountError>;
