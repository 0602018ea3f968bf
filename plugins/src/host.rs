//! What a channel may ask of the device it runs on. The host implements
//! it over the device store; channels never open the store themselves.

use std::path::Path;

use mesh_core::held::ReleasedResponse;
use mesh_core::objects::{DeviceBaseKeys, DeviceKeys};

use crate::PluginError;

/// The device side of the host.
pub trait DeviceHost {
    /// The device's home directory (0700), for transient files.
    fn home(&self) -> &Path;

    /// This device's UDF.
    fn device_udf(&self) -> &str;

    /// This device's name.
    fn device_name(&self) -> &str;

    /// This device's combined keys at its current epoch.
    fn keys(&self) -> Result<DeviceKeys, PluginError>;

    /// This device's base keys (its own seed).
    fn base_keys(&self) -> Result<DeviceBaseKeys, PluginError>;

    /// The channel's local record (where it installed what), if any.
    fn local(&self, plugin: &str) -> Option<serde_json::Value>;

    /// Replace (or, with `None`, remove) the channel's local record, atomically.
    fn set_local(&self, plugin: &str, value: Option<&serde_json::Value>)
        -> Result<(), PluginError>;

    /// This device's held entries the portal released after `index`
    /// (PROTOCOL.md §17), one page; a host without a portal has none.
    /// Their data is as the administrator gave it, unverified.
    fn released(&self, _index: u64) -> Result<ReleasedResponse, PluginError> {
        Ok(ReleasedResponse::default())
    }
}
