//! Test doubles for channels: an in-memory device ([`FakeDevice`], a
//! [`DeviceHost`]) and an account without a portal ([`TestAccount`]) that
//! builds a verified [`AccountView`] for devices with given roles, so that
//! a channel's [`Plugin::entries`], `apply` and `wipe` have unit tests
//! without gpg, NSS or a running portal.
//!
//! Everything is real but the transport: the account's root and
//! administrator keys are generated, devices are issued connections and
//! activations as an administrator issues them, the access list and the
//! catalog and application entries are signed, and [`TestAccount::view`]
//! verifies them with [`AccountView::verify`] as a device does.
//!
//! Channel crates enable it for their tests only:
//!
//! ```toml
//! [dev-dependencies]
//! mesh-plugins = { workspace = true, features = ["testing"] }
//! ```
//!
//! and then (see [`crate::example`] for a whole channel tested this way):
//!
//! ```ignore
//! let mut account = TestAccount::new(&[&MyPlugin]);
//! let phone = account.join("phone", &[MY_ROLE]);
//! let out = account.sync(&MyPlugin, &Event::Created)?; // computed and published
//! assert!(account.entries(&MyPlugin, &Event::Periodic)?.is_empty()); // all current
//! account.revoke(&phone);
//! ```
//!
//! Tests only: keys are fresh for each account and nothing is zeroized
//! beyond what core's key types do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use mesh_core::authority::RootKeys;
use mesh_core::derive::Seed;
use mesh_core::envelope::Signed;
use mesh_core::keys::KeyData;
use mesh_core::objects::{
    complete_activation, ct as oct, AccountKeys, ActivationKeys, CatalogedApplication,
    CatalogedDevice, ConnectionDevice, DeviceBaseKeys, DeviceDescription, DeviceKeys,
    ProfileAccount, ProfileDevice, Role, Slot,
};
use mesh_core::portal::{AccessEntry, AccessList, DeviceState};

use crate::{AccountView, AppEntry, DeviceHost, Event, Plugin, PluginError};

// A fake host for channels' subcommands (`mesh CHANNEL …`).
mod context;
pub use context::FakeContext;

/// The test account's address.
pub const ADDRESS: &str = "alice@example.com";

/// A device in memory: its home is a fresh temporary directory (removed
/// when it is dropped), its keys are generated and combined with the
/// activation the [`TestAccount`] issued, its local records are a map.
pub struct FakeDevice {
    home: PathBuf,
    name: String,
    udf: String,
    base: Seed,
    activation: Seed,
    epoch: u32,
    local: Mutex<BTreeMap<String, serde_json::Value>>,
    // What a portal holds for it (Hold), released by the clock.
    held: Mutex<Vec<mesh_core::held::Held>>,
}

impl std::fmt::Debug for FakeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDevice")
            .field("name", &self.name)
            .field("udf", &self.udf)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// A fresh 0700 directory under the system's temporary directory.
fn temp_home(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "mesh-fake-device-{}-{n}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    dir
}

impl FakeDevice {
    /// The device's base keys, as its seed derives them.
    fn base(&self) -> DeviceBaseKeys {
        DeviceBaseKeys::from_seed(self.base.clone())
            .unwrap_or_else(|_| unreachable!("a device seed"))
    }

    /// Its key epoch (0 until [`TestAccount::rotate`]).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Hold `entries` for it, as a portal's Hold does (PROTOCOL.md §17).
    pub fn hold(&self, entries: &[mesh_core::held::Held]) {
        if let Ok(mut h) = self.held.lock() {
            h.extend_from_slice(entries);
        }
    }

    /// Its local records (what channels recorded with `set_local`).
    pub fn records(&self) -> BTreeMap<String, serde_json::Value> {
        self.local.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

impl DeviceHost for FakeDevice {
    fn home(&self) -> &Path {
        &self.home
    }

    fn device_udf(&self) -> &str {
        &self.udf
    }

    fn device_name(&self) -> &str {
        &self.name
    }

    fn keys(&self) -> Result<DeviceKeys, PluginError> {
        let act = ActivationKeys::derive(&self.activation, self.epoch)?;
        Ok(DeviceKeys::combine(&self.base(), &act))
    }

    fn base_keys(&self) -> Result<DeviceBaseKeys, PluginError> {
        Ok(self.base())
    }

    fn local(&self, plugin: &str) -> Option<serde_json::Value> {
        self.local.lock().ok()?.get(plugin).cloned()
    }

    fn set_local(
        &self,
        plugin: &str,
        value: Option<&serde_json::Value>,
    ) -> Result<(), PluginError> {
        let mut m = self
            .local
            .lock()
            .map_err(|_| PluginError::Internal("a test poisoned the local records".into()))?;
        match value {
            Some(v) => m.insert(plugin.to_string(), v.clone()),
            None => m.remove(plugin),
        };
        Ok(())
    }

    /// As a portal's Released: the entries after `index` whose time has
    /// come, up to the first that has not.
    fn released(&self, index: u64) -> Result<mesh_core::held::ReleasedResponse, PluginError> {
        let held = self
            .held
            .lock()
            .map_err(|_| PluginError::Internal("a test poisoned the held entries".into()))?;
        let t = crate::now();
        let entries = held
            .iter()
            .enumerate()
            .map(|(i, h)| (i as u64 + 1, h))
            .skip_while(|(i, _)| *i <= index)
            .take_while(|(_, h)| h.not_before <= t)
            .map(|(i, h)| mesh_core::held::Released {
                index: i,
                not_before: h.not_before,
                data: h.data.clone(),
            })
            .collect();
        Ok(mesh_core::held::ReleasedResponse {
            entries,
            partial: false,
        })
    }
}

/// An account without a portal: its keys, its signed profile, access list
/// and catalog, and the application entries published so far. Each life
/// cycle step ([`join`](Self::join), [`rotate`](Self::rotate),
/// [`revoke`](Self::revoke)) makes a new access list version, as an
/// administrator's transaction does; channels' entries are published with
/// [`publish`](Self::publish) or [`sync`](Self::sync).
pub struct TestAccount {
    admin: AccountKeys,
    profile: Signed,
    profile_udf: String,
    account: ProfileAccount,
    access: AccessList,
    catalog: BTreeMap<String, Signed>,
    apps: BTreeMap<String, Signed>,
    superseded: Vec<KeyData>,
    // The plugins' device key slots (as the host collects them).
    slots: Vec<Slot>,
}

impl std::fmt::Debug for TestAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAccount")
            .field("serial", &self.access.serial)
            .field("devices", &self.catalog.len())
            .field("apps", &self.apps.len())
            .finish_non_exhaustive()
    }
}

impl TestAccount {
    /// A new account at [`ADDRESS`] (described as "Alice"), its profile
    /// carrying what `plugins` claim (as the host asks them at creation),
    /// and an empty access list (serial 1, no device).
    pub fn new(plugins: &[&dyn Plugin]) -> TestAccount {
        let root = RootKeys::generate();
        let admin = AccountKeys::generate(&root.profile_udf());
        let mut slots: Vec<Slot> = Vec::new();
        for s in plugins.iter().flat_map(|p| p.slots()) {
            if !slots.iter().any(|o| o.name == s.name) {
                slots.push(*s);
            }
        }
        let claims = crate::claims_of(plugins.iter().copied(), &admin)
            .unwrap_or_else(|e| panic!("the channels' claims: {e}"));
        let profile = root.profile(
            ADDRESS,
            "https://portal.invalid",
            Some("Alice".into()),
            &admin,
            claims,
            None,
        );
        let account = ProfileAccount::verify_self_signed(&profile).expect("a fresh profile");
        let profile_udf = account.udf();
        TestAccount {
            access: AccessList {
                profile_udf: profile_udf.clone(),
                serial: 1,
                devices: Vec::new(),
                issued: crate::now(),
                extra: Default::default(),
            },
            admin,
            profile,
            profile_udf,
            account,
            catalog: BTreeMap::new(),
            apps: BTreeMap::new(),
            superseded: Vec::new(),
            slots,
        }
    }

    /// The administrators' keys (what [`Plugin::entries`] is given).
    pub fn admin(&self) -> &AccountKeys {
        &self.admin
    }

    /// The verified profile.
    pub fn profile(&self) -> &ProfileAccount {
        &self.account
    }

    /// A new access list version (the serial moves on, as in a transaction).
    fn bump(&mut self) {
        self.access.serial += 1;
        self.access.issued = crate::now();
    }

    /// Issue `device` a connection at `epoch` with `roles` and catalog it;
    /// returns the activation seed and the connection.
    fn issue(&mut self, base: &DeviceBaseKeys, name: &str, roles: &[Role], epoch: u32) -> Seed {
        let description = DeviceDescription {
            name: name.into(),
            platform: "test".into(),
        };
        let env = base
            .profile(description, &self.slots)
            .expect("a device profile");
        let p = ProfileDevice::verify(&env).expect("a fresh device profile");
        let issued =
            ConnectionDevice::issue(&self.admin, &p, roles, epoch, crate::now(), &self.slots)
                .expect("issue a connection");
        let conn = ConnectionDevice::verify(&issued.connection, &self.account).expect("connection");
        let (_, act) = complete_activation(&self.account, base, &issued.activation, &conn)
            .expect("the device completes its activation");
        let cat = CatalogedDevice {
            device_udf: p.udf(),
            local_name: name.into(),
            profile_device: env,
            connection_device: issued.connection,
            activation_account: issued.activation,
        };
        let signed = Signed::sign_object(oct::CATALOGED_DEVICE, &cat, &self.admin.admin_sign);
        if let Some(old) = self.catalog.insert(p.udf(), signed) {
            let old: CatalogedDevice = old.unverified_object("catalog entry").expect("ours");
            let old: ConnectionDevice = old
                .connection_device
                .unverified_object("connection")
                .expect("ours");
            // A rotated key stays revoked (the host records it the same way).
            self.superseded.extend(crate::view::superseded(&old, &conn));
        }
        let entry = AccessEntry {
            device_udf: p.udf(),
            name: name.into(),
            authentication: conn.authentication,
            roles: conn.roles,
            state: DeviceState::Active,
            extra: Default::default(),
        };
        match self
            .access
            .devices
            .iter_mut()
            .find(|e| e.device_udf == p.udf())
        {
            Some(e) => *e = entry,
            None => self.access.devices.push(entry),
        }
        self.bump();
        Seed::from_udf(&act.activation_key).expect("an activation seed")
    }

    /// A new device named `name` joins with `roles` (the first device of a
    /// real account gets [`Role::ADMIN`] and every channel's role; here the
    /// test says which).
    pub fn join(&mut self, name: &str, roles: &[Role]) -> FakeDevice {
        let base = DeviceBaseKeys::generate();
        let activation = self.issue(&base, name, roles, 0);
        FakeDevice {
            home: temp_home(name),
            name: name.into(),
            udf: base.udf(),
            base: base.seed().clone(),
            activation,
            epoch: 0,
            local: Mutex::new(BTreeMap::new()),
            held: Mutex::new(Vec::new()),
        }
    }

    /// The device's keys move to the next epoch (same roles).
    pub fn rotate(&mut self, device: &mut FakeDevice) {
        let roles = self
            .access
            .device(&device.udf)
            .map(|e| e.roles.clone())
            .unwrap_or_default();
        let epoch = device.epoch + 1;
        device.activation = self.issue(&device.base(), &device.name.clone(), &roles, epoch);
        device.epoch = epoch;
    }

    /// The device is revoked (it stays in the list and the catalog).
    pub fn revoke(&mut self, device: &FakeDevice) {
        if let Some(e) = self
            .access
            .devices
            .iter_mut()
            .find(|e| e.device_udf == device.udf)
        {
            e.state = DeviceState::Revoked;
        }
        self.bump();
    }

    /// Publish entries a channel computed (signed by the administrator, as
    /// the host appends them in its transaction).
    pub fn publish(&mut self, entries: &[AppEntry]) {
        for e in entries {
            let app = CatalogedApplication {
                uid: e.uid.clone(),
                data: e.data.clone(),
                serve: None,
            };
            let signed =
                Signed::sign_object(oct::CATALOGED_APPLICATION, &app, &self.admin.admin_sign);
            self.apps.insert(e.uid.clone(), signed);
        }
    }

    /// The account as a device verifies it: profile, signed access list,
    /// catalog and application entries, every signature checked.
    pub fn view(&self) -> AccountView {
        let access = Signed::sign_object(
            mesh_core::portal::ct::ACCESS_LIST,
            &self.access,
            &self.admin.admin_sign,
        );
        let mut view = AccountView::verify(
            &self.profile_udf,
            &self.profile,
            &[],
            Some(&access),
            self.catalog.values(),
            self.apps.values(),
        )
        .unwrap_or_else(|e| panic!("the test account's view: {e}"));
        view.superseded = self.superseded.clone();
        view
    }

    /// What `plugin` would publish for `event` now (nothing is published).
    pub fn entries(
        &self,
        plugin: &dyn Plugin,
        event: &Event,
    ) -> Result<Vec<AppEntry>, PluginError> {
        plugin.entries(event, &self.view(), &self.admin)
    }

    /// An administrator's sync for `event`: the entries `plugin` computes,
    /// published. Returns them.
    pub fn sync(
        &mut self,
        plugin: &dyn Plugin,
        event: &Event,
    ) -> Result<Vec<AppEntry>, PluginError> {
        let out = self.entries(plugin, event)?;
        self.publish(&out);
        Ok(out)
    }

    /// The data of every published entry whose uid starts with `prefix`.
    pub fn published(&self, prefix: &str) -> BTreeMap<String, serde_json::Value> {
        self.view()
            .applications
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), (**v).clone()))
            .collect()
    }
}

/// The uids of some entries, sorted (what most assertions compare).
pub fn uids(entries: &[AppEntry]) -> Vec<String> {
    let mut v: Vec<String> = entries.iter().map(|e| e.uid.clone()).collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceEntry;
    use mesh_core::objects::SlotKind;

    const PHONE: Role = Role::named("phone-things");
    const KEY: Slot = Slot {
        name: "PhoneKey",
        kind: SlotKind::Combined,
    };

    /// A channel with a co-generated device key slot.
    #[derive(Debug)]
    struct Keyed;

    impl Plugin for Keyed {
        fn name(&self) -> &'static str {
            "keyed"
        }
        fn role(&self) -> Option<Role> {
            Some(PHONE)
        }
        fn slots(&self) -> &'static [Slot] {
            &[KEY]
        }
        fn entries(
            &self,
            _: &Event,
            _: &AccountView,
            _: &AccountKeys,
        ) -> Result<Vec<AppEntry>, PluginError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn devices_join_rotate_and_revoke_in_a_verified_view() {
        let mut account = TestAccount::new(&[&Keyed]);
        let laptop = account.join("laptop", &[Role::ADMIN, PHONE]);
        let mut phone = account.join("phone", &[PHONE]);
        let view = account.view();
        assert_eq!(view.serial(), 3);
        assert_eq!(view.active(&PHONE).len(), 2);
        assert_eq!(view.active(&Role::ADMIN).len(), 1);
        // The device's keys are the ones its connection names.
        let keys = phone.keys().expect("keys");
        let d = &view.devices[phone.device_udf()];
        assert_eq!(keys.encrypt.public_key(), d.connection.encryption.key);
        assert_eq!(phone.device_name(), "phone");
        assert!(phone.home().is_dir());

        let slot = |d: &DeviceEntry| {
            d.connection
                .slots
                .key(KEY.name)
                .expect("typed")
                .expect("slot")
        };
        let before = slot(d);
        account.rotate(&mut phone);
        let view = account.view();
        let d = &view.devices[phone.device_udf()];
        let after = slot(d);
        assert_eq!(
            phone
                .keys()
                .expect("keys")
                .ed25519(&KEY)
                .expect("key")
                .public_key(),
            after.key
        );
        assert_eq!(after.epoch, 1);
        assert_ne!(after.key, before.key);

        account.revoke(&phone);
        let view = account.view();
        assert_eq!(view.active(&PHONE).len(), 1);
        assert_eq!(view.revoked().len(), 1);
        assert_eq!(view.revoked()[0].0.device_udf, phone.device_udf());
        drop(laptop);
    }

    #[test]
    fn local_records_and_home() {
        let mut account = TestAccount::new(&[]);
        let d = account.join("tablet", &[]);
        assert_eq!(d.local("x"), None);
        d.set_local("x", Some(&serde_json::json!({"a": 1})))
            .expect("set");
        assert_eq!(d.local("x"), Some(serde_json::json!({"a": 1})));
        d.set_local("x", None).expect("remove");
        assert!(d.records().is_empty());
        let home = d.home().to_path_buf();
        drop(d);
        assert!(!home.exists(), "the home goes with the device");
    }
}
