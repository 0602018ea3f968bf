//! `mesh-agent`: the `mesh` command and the per-device agent.
//!
//! This library holds what the binary and the tests share: the device
//! store, the device life cycle on top of it, and (with the portal and
//! agent issues) the portal client, sync and the plugin host. The binary
//! in `main.rs` is the CLI; it alone uses `anyhow`.
#![forbid(unsafe_code)]

pub mod account;
pub mod client;
pub mod daemon;
pub mod device;
pub mod pgp;
pub mod quickstart;
pub mod smime;
pub mod ssh;
pub mod store;
