//! `mesh-plugins`: the plugin SDK, the contract between the host (the
//! account life cycle in `mesh-account`, driven by the `mesh` binary) and a
//! channel (ssh-agent, OpenPGP, S/MIME).
//!
//! A channel turns the account into what one tool needs. The host drives it
//! with [`Event`]s and hands it one [`AccountView`], verified once up to the
//! profile UDF:
//!
//! - administrator side, [`Plugin::entries`]: the Application entries the
//!   channel needs for the state *after* the event, computed without I/O.
//!   The host puts them in the same portal transaction as the life-cycle
//!   entries (access list, device catalog), so every account event is one
//!   transaction: the portal holds the old state or the new one.
//! - [`Plugin::verify`]: checks of the entries the channel owns.
//! - device side, [`Plugin::apply`]: bring what the channel provisioned on
//!   this device (GnuPG homes, NSS databases) up to the view.
//! - [`Plugin::wipe`]: on a signed revocation proof, remove everything the
//!   channel put on this device.
//!
//! Shared secrets (mail decryption keys) follow one epoch policy, written
//! once in [`shared`].
//!
//! To write a channel, start from [`example`], a complete one with its
//! tests; [`testing`] (the `testing` feature, for `[dev-dependencies]`)
//! gives each channel a fake device and an account without a portal, so
//! that `entries()`, `apply` and `wipe` have unit tests without the tools
//! the channel drives.
#![forbid(unsafe_code)]

pub mod cli;
pub mod command;
pub mod error;
// The template channel (read it first to write one); compiled for docs,
// tests and the `testing` feature.
#[cfg(any(test, doc, feature = "testing"))]
pub mod example;
pub mod host;
pub mod platform;
pub mod shared;
// Test doubles for channels' unit tests (the `testing` feature).
#[cfg(any(test, doc, feature = "testing"))]
pub mod testing;
pub mod view;

pub use command::{ChannelCommand, CommandContext, CommandError};
pub use error::PluginError;
pub use host::DeviceHost;
pub use mesh_core::claims::Claims;
pub use mesh_core::held::Held;
pub use view::{AccountView, DeviceEntry};

use mesh_core::objects::{AccountKeys, Role, Slot};
use serde::{Deserialize, Serialize};

/// What happened to the account. Plugins compute their entries for the
/// state after it; most derive what they need from the view alone (the
/// state, not the event, decides), and use the event for reporting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The account was created; the first device is its administrator.
    Created,
    /// A device joined (accepted by witness or PIN).
    Joined {
        /// Its device UDF.
        device: String,
    },
    /// A device got keys of a new epoch.
    Rotated {
        /// Its device UDF.
        device: String,
    },
    /// A device was revoked.
    Revoked {
        /// Its device UDF.
        device: String,
    },
    /// The account was recovered onto a new administrator device.
    Recovered,
    /// An administrator's routine sync (renewals), or a policy change.
    Periodic,
}

/// One Application entry a plugin asks the host to publish: `uid` names
/// it (the plugin owns the uids with its prefix), `data` is JSON (secrets in
/// it are encrypted envelopes). The host signs it with the administrator
/// key and appends it to the Application store, or, when `public`, to the
/// Published store that servers read without being devices of the account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEntry {
    /// The entry's unique id, e.g. `ssh-cert:<device UDF>`.
    pub uid: String,
    /// Its data.
    pub data: serde_json::Value,
    /// For servers too (the Published store).
    #[serde(default)]
    pub public: bool,
}

impl AppEntry {
    /// An entry from any serializable value.
    pub fn new<T: Serialize>(uid: impl Into<String>, data: &T) -> AppEntry {
        AppEntry {
            uid: uid.into(),
            data: serde_json::to_value(data).unwrap_or_default(),
            public: false,
        }
    }

    /// An entry servers read too (the Published store).
    pub fn public<T: Serialize>(uid: impl Into<String>, data: &T) -> AppEntry {
        AppEntry {
            public: true,
            ..AppEntry::new(uid, data)
        }
    }
}

/// Entries a channel asks the portal to hold for one device
/// ([`Plugin::held`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldBatch {
    /// The device UDF whose store they go to.
    pub device: String,
    /// The entries, each with the time from which the portal releases it.
    pub entries: Vec<mesh_core::held::Held>,
    /// Application entries that record the batch as sent, published in
    /// the event's transaction once the portal holds it.
    pub record: Vec<AppEntry>,
}

/// What one plugin did on a device, for the report a command prints.
pub type Actions = Vec<String>;

/// A channel. The host holds a list of them and calls each for every event.
pub trait Plugin: std::fmt::Debug + Send + Sync {
    /// Short name used in commands, reports and local records (`ssh`, `pgp`, `smime`).
    fn name(&self) -> &'static str;

    /// The device role this channel defines (a name it owns, as data in
    /// access lists: [`Role`]); `None` when it serves every active device
    /// whatever its roles (files). The host grants the first device of an
    /// account, and a recovered one, every channel's role.
    fn role(&self) -> Option<Role>;

    /// The device key slots this channel owns (names it owns, as data in
    /// device profiles and connections: [`Slot`]). The host asks every new
    /// device for a key in each and combines the co-generated ones when it
    /// issues a connection.
    fn slots(&self) -> &'static [Slot] {
        &[]
    }

    /// Application uids that hold the user's decisions (a policy), not
    /// what the channel derives from the account: a recovery that turns the
    /// account back to a time before a theft restores them.
    fn policy_uids(&self) -> &'static [&'static str] {
        &[]
    }

    /// One of this channel's policy entries (a uid of
    /// [`Plugin::policy_uids`]) in a few words for a person reading the
    /// account's history (`ssh principals root,deploy`); `None`: not one
    /// worth a line.
    fn describe_policy(&self, _uid: &str, _data: &serde_json::Value) -> Option<String> {
        None
    }

    /// What this channel claims, by its own names, for the keys `admin`
    /// (a new account's profile, a new administrator epoch's record: its
    /// CA's public key, its primary's fingerprint). The host collects them
    /// ([`claims_of`]); readers find them in the verified profile
    /// (`view.profile.claims`).
    fn claims(&self, _admin: &AccountKeys, _claims: &mut Claims) -> Result<(), PluginError> {
        Ok(())
    }

    /// Administrator side: the entries this channel needs for the state
    /// after `event`, given the view that already includes the event's
    /// life-cycle entries. No I/O. Returns nothing when all is current, so
    /// that a sync with nothing new publishes nothing.
    fn entries(
        &self,
        event: &Event,
        view: &AccountView,
        admin: &AccountKeys,
    ) -> Result<Vec<AppEntry>, PluginError>;

    /// Administrator side, after [`Plugin::entries`]: entries for the
    /// portal to hold and hand one device only from a time on (PROTOCOL.md
    /// §17), e.g. certificates for coming windows that must not reach the
    /// device before their window. The host sends them (an administrator's
    /// `Hold`) before the event's transaction, and puts each batch's
    /// `record` entries (what says they were sent) in that transaction: a
    /// failure sends them again rather than skips them. The data must
    /// authenticate itself: the portal is trusted only for the timing.
    fn held(
        &self,
        _event: &Event,
        _view: &AccountView,
        _admin: &AccountKeys,
    ) -> Result<Vec<HeldBatch>, PluginError> {
        Ok(Vec::new())
    }

    /// Check the entries this channel owns (beyond the administrator
    /// signature the view already checked).
    fn verify(&self, _view: &AccountView) -> Result<(), PluginError> {
        Ok(())
    }

    /// What this channel did for `event`, from the account before and
    /// after it: the report an administrator reads (`mesh device revoke`).
    fn describe(&self, _event: &Event, _before: &AccountView, _after: &AccountView) -> Vec<String> {
        Vec::new()
    }

    /// Device side: bring what this channel provisioned on the device up to
    /// the view. Returns what it did.
    fn apply(&self, _device: &dyn DeviceHost, _view: &AccountView) -> Result<Actions, PluginError> {
        Ok(Vec::new())
    }

    /// Device side: a time from which this channel needs [`Plugin::apply`]
    /// again even when the account does not move (a held entry due from
    /// the portal); the host's periodic sync then runs every channel.
    fn due(&self, _device: &dyn DeviceHost) -> Option<u64> {
        None
    }

    /// The device was revoked (the host checked the signed proof): remove
    /// every secret this channel put anywhere. Returns what it removed.
    fn wipe(&self, _device: &dyn DeviceHost) -> Result<Actions, PluginError> {
        Ok(Vec::new())
    }

    /// The channel's own subcommand (`mesh files …`), mounted by the host
    /// in its command line; `None`: it has none.
    fn command(&self) -> Option<&dyn ChannelCommand> {
        None
    }
}

/// Seconds since the Unix epoch (certificate validity, entry times).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every channel's claims for the keys `admin`: what the host writes in a
/// new account's profile and in a new administrator epoch's record.
pub fn claims_of<'a>(
    plugins: impl IntoIterator<Item = &'a dyn Plugin>,
    admin: &AccountKeys,
) -> Result<Claims, PluginError> {
    let mut claims = Claims::new();
    for p in plugins {
        p.claims(admin, &mut claims)?;
    }
    Ok(claims)
}
