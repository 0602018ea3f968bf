//! `mesh-account`: the account life cycle of a Mesh device, and the host
//! that drives the channels through the plugin SDK (`mesh-plugins`).
//!
//! It knows no channel: the `mesh` binary hands it the plugins. Each
//! account event an administrator makes (accept, revoke, rotate, recover,
//! a policy change, a routine sync) is one portal transaction carrying the
//! life-cycle entries and every channel's entries ([`host`]).
//!
//! Modules depend one way: `store`, `client`, `device`, `error` ← `state`
//! ← `host` (the channels, the view, the device side) ← `pull` (download,
//! verify, adopt rotations, wipe on a proven revocation) ← `event` (one
//! transaction per administrator event) ← `entries`, `admin` ← `join`,
//! `recover` ← `sync`.
//!
//! Trust: the portal is not trusted. The account profile is pinned by its
//! UDF when the device joins (the witness comparison or the PIN
//! authenticates that first contact); everything downloaded afterwards is
//! verified up to that profile before any of it is kept. A sync either
//! verifies and keeps everything it downloaded, or keeps nothing.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit_log;
pub mod audit_sync;
pub mod chronicle;
pub mod client;
pub mod count;
pub mod device;
pub mod entries;
mod envelopes;
pub mod error;
pub mod event;
pub mod host;
pub mod join;
pub mod pager;
pub mod pull;
pub mod recover;
mod replica;
pub mod revoke;
pub mod roles;
mod session;
pub mod state;
pub mod store;
pub mod sync;
pub mod witness;

pub use error::AccountError;
pub use host::{Host, StoreHost};
pub use state::{account, AccountState, Membership};
