//! This device's identity: its seed, base keys and signed profile.

use mesh_core::derive::Seed;
use mesh_core::objects::{DeviceBaseKeys, DeviceDescription, Slot};
use zeroize::Zeroizing;

use crate::store::{DeviceState, Store, StoreError};

/// Errors of the device layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Store error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Core error.
    #[error(transparent)]
    Core(#[from] mesh_core::Error),
    /// The store has a device already.
    #[error("this home already holds device {udf} ({name})")]
    Exists {
        /// Its UDF.
        udf: String,
        /// Its name.
        name: String,
    },
    /// The store has no device yet.
    #[error("this home holds no device yet")]
    NoDevice,
    /// The device's secrets are gone (wiped after revocation).
    #[error("this device's secrets are gone (it was revoked and wiped)")]
    Wiped,
}

impl DeviceError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            DeviceError::Store(e) => e.hint(),
            DeviceError::Exists { .. } => Some("use another --home for another device".into()),
            DeviceError::NoDevice => Some("run `mesh device init` first".into()),
            _ => None,
        }
    }
}

/// The local host name, as a default device name.
pub fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "device".into())
}

/// Create this device: a fresh seed, its base keys and signed profile,
/// with a key in each of the channels' `slots` ([`crate::Host::slots`]).
pub fn init(store: &mut Store, name: &str, slots: &[Slot]) -> Result<DeviceState, DeviceError> {
    if let Some(d) = &store.state().device {
        return Err(DeviceError::Exists {
            udf: d.udf.clone(),
            name: d.name.clone(),
        });
    }
    let base = DeviceBaseKeys::generate();
    let profile = base.profile(
        DeviceDescription {
            name: name.to_string(),
            platform: std::env::consts::OS.to_string(),
        },
        slots,
    )?;
    let dev = DeviceState {
        udf: base.udf(),
        name: name.to_string(),
        profile,
    };
    let mut secrets = store.secrets()?;
    secrets.device_seed = Some(base.seed().to_udf());
    // Secrets first: a crash between the two writes leaves an unused seed,
    // never a profile whose keys are lost.
    store.save_secrets(&secrets)?;
    store.state_mut().device = Some(dev.clone());
    store.save_state()?;
    Ok(dev)
}

/// This device's base keys, from the stored seed.
pub fn base_keys(store: &Store) -> Result<DeviceBaseKeys, DeviceError> {
    if store.state().device.is_none() {
        return Err(DeviceError::NoDevice);
    }
    let seed: Zeroizing<String> = store.secrets()?.device_seed.ok_or(DeviceError::Wiped)?;
    Ok(DeviceBaseKeys::from_seed(Seed::from_udf(&seed)?)?)
}

/// This device's name (empty before `init`).
pub fn name(store: &Store) -> String {
    store
        .state()
        .device
        .as_ref()
        .map(|d| d.name.clone())
        .unwrap_or_default()
}
