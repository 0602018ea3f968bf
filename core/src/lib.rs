//! `mesh-core`: the sans-io heart of Mesh.
//!
//! UDF fingerprints, key derivation from secret seeds, key co-generation,
//! Shamir escrow shares, the Mesh objects (profiles, activations,
//! connections, catalog entries) and the signed and encrypted envelopes
//! that carry them. No tokio, no files, no network: every function takes
//! bytes or values and returns values, so the portal, the agent and the
//! plugins share one implementation. The wire forms are in `PROTOCOL.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod audit;
pub mod authority;
pub mod b64;
pub mod claims;
pub mod ct;
pub mod derive;
pub mod envelope;
mod error;
pub mod freshness;
pub mod held;
pub mod history;
pub mod invite;
pub mod keys;
pub mod memo;
pub mod montgomery;
pub mod objects;
pub mod pin;
pub mod portal;
pub mod profile;
pub mod replica;
pub mod role;
pub mod serve;
pub mod shamir;
pub mod slot;
pub mod udf;
pub mod witness;

pub use error::Error;

/// The old paths of the access list's memo and changes (now
/// [`access::memo`], [`access::delta`]), kept so that callers stay as
/// they are.
pub use access::{delta as changes, memo as access_memo};

#[cfg(test)]
mod vectors;
