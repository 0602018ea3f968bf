//! `mesh-portal`: the Mesh service. Devices join, sync and are revoked
//! through it; it stores only signed objects and end-to-end encrypted data,
//! and every client verifies what it returns up to the account's profile UDF.
//!
//! The service itself (HTTP, SQLite, the transactions of PROTOCOL.md) is
//! the subject of the portal issue; this crate holds its place in the
//! dependency graph: it depends on `mesh-core` only.
#![forbid(unsafe_code)]

/// The protocol version this portal speaks (PROTOCOL.md).
pub const PROTOCOL_VERSION: &str = "mesh/1";
