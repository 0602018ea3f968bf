//! The plugin host: one verified view per command, one portal transaction
//! per account event, and the device side of every channel (apply, wipe).

use std::path::Path;

use mesh_core::held::{self, ReleasedResponse};
use mesh_core::objects::{AccountKeys, DeviceBaseKeys, DeviceKeys, Role, Slot};
use mesh_plugins::{AccountView, Actions, DeviceHost, Plugin, PluginError};

use crate::error::Result;
use crate::state::{account, device_keys, device_udf, AccountState};
use crate::store::Store;

/// The channels a host drives, in order.
#[derive(Debug, Default)]
pub struct Host {
    plugins: Vec<Box<dyn Plugin>>,
}

impl Host {
    /// A host for these channels.
    pub fn new(plugins: Vec<Box<dyn Plugin>>) -> Host {
        Host { plugins }
    }

    /// The channels.
    pub fn plugins(&self) -> &[Box<dyn Plugin>] {
        &self.plugins
    }

    /// What the channels claim for `admin`'s epoch: written in a new
    /// account's profile and in each new administrator epoch's record.
    pub fn claims(&self, admin: &AccountKeys) -> Result<mesh_plugins::Claims> {
        Ok(mesh_plugins::claims_of(
            self.plugins.iter().map(|p| &**p),
            admin,
        )?)
    }

    /// Every role these channels serve, and the administrator's: what the
    /// first device of an account, and a recovered one, is granted.
    pub fn roles(&self) -> Vec<Role> {
        let mut r = vec![Role::ADMIN];
        r.extend(self.plugins.iter().filter_map(|p| p.role()));
        r.sort();
        r.dedup();
        r
    }

    /// Every device key slot these channels own, in their order: what a
    /// new device's profile carries and what a connection combines.
    pub fn slots(&self) -> Vec<Slot> {
        let mut out: Vec<Slot> = Vec::new();
        for s in self.plugins.iter().flat_map(|p| p.slots()) {
            if !out.iter().any(|o| o.name == s.name) {
                out.push(*s);
            }
        }
        out
    }

    /// The verified view of a state, with every channel's own checks.
    pub fn view(&self, a: &AccountState) -> Result<AccountView> {
        let v = view_of(a)?;
        for pl in &self.plugins {
            pl.verify(&v)?;
        }
        Ok(v)
    }
}

/// The verified view of a state (without the channels' own checks). Every
/// entry in the state was verified when it was kept (`pull`): its
/// signatures are not checked again, so a view costs no signature per
/// device.
pub fn view_of(a: &AccountState) -> Result<AccountView> {
    crate::count::add(crate::count::What::View);
    let mut v = AccountView::from_verified(
        &a.profile_udf,
        &a.profile,
        &a.history.epochs,
        a.access.as_ref(),
        a.devices.values().map(|e| &**e),
        a.applications.values().map(|e| &**e),
    )?;
    v.superseded = a.superseded.clone();
    Ok(v)
}

/// The view of the account kept in `store`.
pub fn view(store: &Store, host: &Host) -> Result<AccountView> {
    host.view(&account(store)?)
}

/// The device side of the host, over the store.
#[derive(Debug)]
pub struct StoreHost<'a> {
    store: &'a Store,
    udf: String,
    name: String,
}

impl<'a> StoreHost<'a> {
    /// The host of the device whose store this is.
    pub fn new(store: &'a Store) -> Result<StoreHost<'a>> {
        Ok(StoreHost {
            udf: device_udf(store)?,
            name: crate::device::name(store),
            store,
        })
    }

    /// Keys that cannot be had: wiped (revoked), or another failure
    /// (a keyring that does not answer), named as it is.
    fn key_error(&self, detail: String) -> PluginError {
        if self.store.wiped() {
            PluginError::Wiped
        } else {
            PluginError::Internal(detail)
        }
    }

    fn record(&self, plugin: &str) -> std::path::PathBuf {
        self.store
            .home()
            .join("plugins")
            .join(format!("{plugin}.json"))
    }
}

impl DeviceHost for StoreHost<'_> {
    fn home(&self) -> &Path {
        self.store.home()
    }

    fn device_udf(&self) -> &str {
        &self.udf
    }

    fn device_name(&self) -> &str {
        &self.name
    }

    fn keys(&self) -> std::result::Result<DeviceKeys, PluginError> {
        device_keys(self.store).map_err(|e| self.key_error(e.to_string()))
    }

    fn base_keys(&self) -> std::result::Result<DeviceBaseKeys, PluginError> {
        crate::device::base_keys(self.store).map_err(|e| self.key_error(e.to_string()))
    }

    fn local(&self, plugin: &str) -> Option<serde_json::Value> {
        let raw = std::fs::read(self.record(plugin)).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    fn set_local(
        &self,
        plugin: &str,
        value: Option<&serde_json::Value>,
    ) -> std::result::Result<(), PluginError> {
        let path = self.record(plugin);
        match value {
            Some(v) => {
                crate::store::make_private_dir(self.store.home().join("plugins").as_path())
                    .map_err(|e| PluginError::Internal(e.to_string()))?;
                crate::store::write_atomic(&path, &serde_json::to_vec(v).unwrap_or_default())
                    .map_err(|e| PluginError::Internal(e.to_string()))
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(PluginError::io(path.display())(e))
                }
                _ => Ok(()),
            },
        }
    }

    fn released(&self, index: u64) -> std::result::Result<ReleasedResponse, PluginError> {
        let portal = |e: String| PluginError::Portal(e);
        let a = account(self.store).map_err(|e| portal(e.to_string()))?;
        let key = device_keys(self.store).map_err(|e| self.key_error(e.to_string()))?;
        let client = crate::client::Client::new(&a.portal).map_err(|e| portal(e.to_string()))?;
        client
            .signed(
                held::TX_RELEASED,
                &a.profile_udf,
                &self.udf,
                serde_json::to_value(held::ReleasedRequest { index }).unwrap_or_default(),
                &key.authenticate,
            )
            .map_err(|e| portal(e.to_string()))
    }
}

/// Device side: every channel brings what it provisioned here up to the
/// account. A channel's failure is reported, not fatal: the others still run.
pub fn apply(
    store: &Store,
    host: &Host,
) -> Result<Vec<(String, std::result::Result<Actions, PluginError>)>> {
    apply_to(store, host, &account(store)?)
}

/// [`apply`] over `a`, the store's state as the caller just read or saved it.
pub(crate) fn apply_to(
    store: &Store,
    host: &Host,
    a: &AccountState,
) -> Result<Vec<(String, std::result::Result<Actions, PluginError>)>> {
    apply_view(store, host, &host.view(a)?)
}

/// [`apply`] with `view`, the verified view of the store's state as the
/// caller holds it.
pub(crate) fn apply_view(
    store: &Store,
    host: &Host,
    view: &AccountView,
) -> Result<Vec<(String, std::result::Result<Actions, PluginError>)>> {
    let dh = StoreHost::new(store)?;
    Ok(host
        .plugins()
        .iter()
        .map(|pl| (pl.name().to_string(), pl.apply(&dh, view)))
        .collect())
}

/// Every channel removes what it put on this device (after a proven
/// revocation). Failures are collected; the wipe goes on.
pub(crate) fn wipe_channels(store: &Store, host: &Host) -> Vec<String> {
    let Ok(dh) = StoreHost::new(store) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pl in host.plugins() {
        match pl.wipe(&dh) {
            Ok(actions) => out.extend(actions),
            Err(e) => out.push(format!("{}: {e}", pl.name())),
        }
    }
    out
}
