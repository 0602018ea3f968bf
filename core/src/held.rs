//! Held entries (PROTOCOL.md §17): what an administrator gives the portal
//! for one device to release at a time, and what the device reads back.
//! The portal knows no channel: it keeps each entry's `Data` as it came
//! and hands it over once the portal's clock passes its `NotBefore`. The
//! data authenticates itself (a channel signs it); the portal is trusted
//! only for the timing.

use serde::{Deserialize, Serialize};

/// The administrator's transaction that appends held entries.
pub const TX_HOLD: &str = "Hold";
/// The device's transaction that reads its released entries.
pub const TX_RELEASED: &str = "Released";
/// What the name of a device's held store starts with.
pub const STORE_PREFIX: &str = "Held:";
/// Entries in one Hold, at most.
pub const MAX_ENTRIES: usize = 256;
/// Bytes of one entry's data (as JSON), at most.
pub const MAX_ENTRY: usize = 16 * 1024;
/// Largest Hold request body the portal takes (all entries and the envelope).
pub const MAX_BODY: usize = 6 << 20;
/// Entries one Released answer carries, at most.
pub const MAX_RELEASED: usize = 256;

/// The store that holds `device`'s entries: `Held:<device UDF>`.
pub fn store_of(device: &str) -> String {
    format!("{STORE_PREFIX}{device}")
}

/// One entry as held: released once the portal's clock is at `NotBefore`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Seconds since the Unix epoch.
    #[serde(rename = "NotBefore")]
    pub not_before: u64,
    /// Any JSON, kept as it came.
    #[serde(rename = "Data")]
    pub data: serde_json::Value,
}

/// An administrator's Hold request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hold {
    /// The device whose store the entries go to.
    #[serde(rename = "Device")]
    pub device: String,
    /// The entries, in the order they are appended.
    #[serde(rename = "Entries")]
    pub entries: Vec<Held>,
}

/// The portal's answer to Hold: the store's last index after it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HoldAck {
    /// The index of the last entry appended.
    #[serde(rename = "Index")]
    pub index: u64,
}

/// A device's Released request: its entries after `Index`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReleasedRequest {
    /// The last index the device has read (0: none).
    #[serde(rename = "Index")]
    pub index: u64,
}

/// One released entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// Its index in the device's store.
    #[serde(rename = "Index")]
    pub index: u64,
    /// When it was released.
    #[serde(rename = "NotBefore")]
    pub not_before: u64,
    /// Its data.
    #[serde(rename = "Data")]
    pub data: serde_json::Value,
}

/// The portal's answer to Released.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReleasedResponse {
    /// The released entries after the index asked, in index order, up to
    /// the first one not yet released.
    #[serde(rename = "Entries")]
    pub entries: Vec<Released>,
    /// More released entries follow (ask again from the last index).
    #[serde(rename = "Partial", default)]
    pub partial: bool,
}
