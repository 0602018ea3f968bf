//! The plugin host: one verified view per command, one portal transaction
//! per account event, and the device side of every channel (apply, wipe).

use std::path::Path;

use mesh_core::envelope::Signed;
use mesh_core::objects::{
    ct as oct, AccountKeys, CatalogedApplication, CatalogedDevice, DeviceBaseKeys, DeviceKeys,
};
use mesh_core::portal::{self as p, code, store as st, tx, AccessList, StoreUpdate};
use mesh_plugins::{
    AccountView, Actions, AppEntry, DeviceEntry, DeviceHost, Event, Plugin, PluginError,
};

use crate::client::{Client, ClientError};
use crate::error::{AccountError, Result};
use crate::state::{account, admin_keys, device_keys, device_udf, AccountState};
use crate::store::Store;
use crate::sync::{handle_revoked, pull, SyncReport};

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

    /// The verified view of a state, with every channel's own checks.
    pub fn view(&self, a: &AccountState) -> Result<AccountView> {
        let mut v = view_of(a)?;
        v.superseded_ssh = a.superseded_ssh.clone();
        for pl in &self.plugins {
            pl.verify(&v)?;
        }
        Ok(v)
    }
}

/// The verified view of a state (without the channels' own checks).
pub fn view_of(a: &AccountState) -> Result<AccountView> {
    let mut v = AccountView::verify(
        &a.profile_udf,
        &a.profile,
        a.access.as_ref(),
        a.devices.values(),
        a.applications.values(),
    )?;
    v.superseded_ssh = a.superseded_ssh.clone();
    Ok(v)
}

/// The view of the account kept in `store`.
pub fn view(store: &Store, host: &Host) -> Result<AccountView> {
    host.view(&account(store)?)
}

/// What an administrator's event writes before the channels add theirs.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    /// The next access list.
    pub access: Option<Signed>,
    /// New or replaced catalog entries.
    pub devices: Vec<Signed>,
    /// Records in the administrators' Local store.
    pub local: Vec<Signed>,
    /// Application entries of the host's own (e.g. a policy the user set).
    pub apps: Vec<AppEntry>,
    /// The event the channels react to; `None` for writes that concern
    /// no channel (a PIN, a rejection).
    pub event: Option<Event>,
}

fn app_envelope(e: &AppEntry, admin: &AccountKeys) -> Signed {
    let entry = CatalogedApplication {
        uid: e.uid.clone(),
        data: e.data.clone(),
    };
    Signed::sign_object(oct::CATALOGED_APPLICATION, &entry, &admin.admin_sign)
}

/// Every store update of an event: the draft's own entries, then each
/// channel's entries for the state after them (computed on a projection
/// of the view, without I/O).
pub(crate) fn event_updates(
    host: &Host,
    a: &AccountState,
    view: &AccountView,
    admin: &AccountKeys,
    d: Draft,
) -> Result<Vec<StoreUpdate>> {
    let mut next = view.clone();
    if let Some(env) = &d.access {
        next.set_access(AccessList::verify(env, &view.profile)?);
    }
    for env in &d.devices {
        let cat: CatalogedDevice = env.unverified_object("catalog entry")?;
        next.put_device(DeviceEntry::from_catalog(cat, &view.profile)?);
    }
    let mut apps = d.apps;
    for e in &apps {
        next.put_app(e.uid.clone(), e.data.clone());
    }
    if let Some(event) = &d.event {
        for pl in host.plugins() {
            for e in pl.entries(event, &next, admin)? {
                next.put_app(e.uid.clone(), e.data.clone());
                apps.push(e);
            }
        }
    }
    let mut updates = Vec::new();
    if let Some(env) = d.access {
        updates.push(a.append(st::ACCESS, vec![env]));
    }
    if !d.devices.is_empty() {
        updates.push(a.append(st::DEVICE, d.devices));
    }
    if !apps.is_empty() {
        let envs = apps.iter().map(|e| app_envelope(e, admin)).collect();
        updates.push(a.append(st::APPLICATION, envs));
    }
    if !d.local.is_empty() {
        updates.push(a.append(st::LOCAL, d.local));
    }
    Ok(updates)
}

/// Run an administrator's event as one portal transaction: build it from
/// the freshly synced state, add every channel's entries, transact; on
/// Conflict, sync again and rebuild. No update of another administrator is
/// lost: the rebuild starts from what they wrote.
pub(crate) fn admin_event<T>(
    store: &mut Store,
    host: &Host,
    mut build: impl FnMut(&AccountState, &AccountView, &AccountKeys) -> Result<(Draft, T)>,
) -> Result<T> {
    for _ in 0..8 {
        pull(store, host, &mut SyncReport::default())?;
        let a = account(store)?;
        let admin = admin_keys(store, &a)?;
        let view = host.view(&a)?;
        let (draft, out) = build(&a, &view, &admin)?;
        let updates = event_updates(host, &a, &view, &admin, draft)?;
        if updates.is_empty() {
            return Ok(out);
        }
        let client = Client::new(&a.portal)?;
        let keys = device_keys(store)?;
        let dev_udf = device_udf(store)?;
        let r: std::result::Result<p::TransactResponse, ClientError> = client.signed(
            tx::TRANSACT,
            &a.profile_udf,
            &dev_udf,
            serde_json::to_value(p::TransactRequest { updates }).unwrap_or_default(),
            &keys.authenticate,
        );
        match r {
            Ok(_) => {
                pull(store, host, &mut SyncReport::default())?;
                return Ok(out);
            }
            Err(e) if e.code() == Some(code::CONFLICT) => continue,
            Err(e) => {
                let mut a = a;
                return Err(handle_revoked(store, host, &mut a, e));
            }
        }
    }
    Err(AccountError::Busy)
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
        device_keys(self.store).map_err(|_| PluginError::Wiped)
    }

    fn base_keys(&self) -> std::result::Result<DeviceBaseKeys, PluginError> {
        crate::device::base_keys(self.store).map_err(|_| PluginError::Wiped)
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
}

/// Device side: every channel brings what it provisioned here up to the
/// account. A channel's failure is reported, not fatal: the others still run.
pub fn apply(
    store: &Store,
    host: &Host,
) -> Result<Vec<(String, std::result::Result<Actions, PluginError>)>> {
    let a = account(store)?;
    let view = host.view(&a)?;
    let dh = StoreHost::new(store)?;
    Ok(host
        .plugins()
        .iter()
        .map(|pl| (pl.name().to_string(), pl.apply(&dh, &view)))
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
