//! One verified view of the account, shared by every plugin of a command.
//!
//! Built once per command from the envelopes the device keeps: the profile
//! is checked against the pinned UDF, the access list and every catalog and
//! application entry against the profile's administrator key. Plugins read
//! parsed objects and never verify the same signature again.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_core::access_memo::AccessMemo;
use mesh_core::authority::AdminEpoch;
use mesh_core::envelope::Signed;
use mesh_core::keys::{KeyData, PublicKey};
use mesh_core::memo::EnvelopeMemo;
use mesh_core::objects::{
    ct as oct, CatalogedApplication, CatalogedDevice, ConnectionDevice, ProfileAccount,
    ProfileDevice, Role,
};
use mesh_core::portal::{AccessEntry, AccessList, DeviceState};
use serde::de::DeserializeOwned;

use crate::PluginError;

/// A device's latest catalog entry, verified.
#[derive(Clone, Debug)]
pub struct DeviceEntry {
    /// The catalog entry.
    pub catalog: CatalogedDevice,
    /// Its connection (combined public keys, roles, epoch).
    pub connection: ConnectionDevice,
    /// The device's own profile (base keys, S/MIME signing key).
    pub profile: ProfileDevice,
}

impl DeviceEntry {
    /// Verify a catalog entry signed by the administrators of `profile`.
    pub fn verify(env: &Signed, profile: &ProfileAccount) -> Result<DeviceEntry, PluginError> {
        let catalog: CatalogedDevice = env.verify_object(
            "catalog entry",
            oct::CATALOGED_DEVICE,
            &profile.history_signers(),
        )?;
        DeviceEntry::from_catalog(catalog, profile)
    }

    /// Parse an entry that was verified when it was kept (a device's own
    /// state, a server's private cache): no signature is checked again, so
    /// that building a view costs no signature per device.
    pub fn trusted(env: &Signed) -> Result<Arc<DeviceEntry>, PluginError> {
        if let Some(d) = PARSED.get(env) {
            return Ok(d);
        }
        let d = Arc::new(Self::parse_trusted(env)?);
        PARSED.put(env, d.clone());
        Ok(d)
    }

    fn parse_trusted(env: &Signed) -> Result<DeviceEntry, PluginError> {
        let catalog: CatalogedDevice = env.unverified_object("catalog entry")?;
        let connection: ConnectionDevice =
            catalog.connection_device.unverified_object("connection")?;
        let device: ProfileDevice = catalog.profile_device.unverified_object("device profile")?;
        DeviceEntry::assemble(catalog, connection, device)
    }

    fn assemble(
        catalog: CatalogedDevice,
        connection: ConnectionDevice,
        device: ProfileDevice,
    ) -> Result<DeviceEntry, PluginError> {
        if connection.device_udf != catalog.device_udf || device.udf() != catalog.device_udf {
            return Err(PluginError::Untrusted(format!(
                "catalog entry {} names another device's connection or profile",
                catalog.local_name
            )));
        }
        Ok(DeviceEntry {
            catalog,
            connection,
            profile: device,
        })
    }

    /// Parse a catalog entry the host itself just made (no outer signature
    /// to check); the connection is still verified.
    pub fn from_catalog(
        catalog: CatalogedDevice,
        profile: &ProfileAccount,
    ) -> Result<DeviceEntry, PluginError> {
        let connection = ConnectionDevice::verify(&catalog.connection_device, profile)?;
        let device = ProfileDevice::verify(&catalog.profile_device)?;
        DeviceEntry::assemble(catalog, connection, device)
    }
}

/// Access lists verified, per process: the host's memo, handed to core as
/// an argument (core keeps none). Kept across commands for the daemon,
/// which rebuilds its view after every sync of a list that rarely changes
/// (390 kB at 1,000 devices); few, as a list of 1,000 devices is about
/// 1 MB here. A hit is exact (`mesh_core::access_memo`).
pub static ACCESS_LISTS: AccessMemo = AccessMemo::new(3);

/// Catalog entries parsed by [`DeviceEntry::trusted`], per process. A
/// command builds at most two views (issue 24); this memo is for the
/// daemon, which builds one after every sync: at 1,000 devices parsing
/// every entry again was most of a sync (72 ms).
/// About 40 MB at most (an entry is some 7 kB, parsed about as much).
static PARSED: EnvelopeMemo<Arc<DeviceEntry>> = EnvelopeMemo::new(3072);

/// Application entries parsed for a view (verified when they were kept),
/// the same way and for the same reason: at 1,000 devices there are some
/// 1,100.
static PARSED_APPS: EnvelopeMemo<(String, Arc<serde_json::Value>)> = EnvelopeMemo::new(4096);

/// An application entry's uid and data: verified against `admin` when
/// given; otherwise (verified when it was kept) parsed once per process.
fn app_entry(
    env: &Signed,
    admin: Option<&[PublicKey]>,
) -> Result<(String, Arc<serde_json::Value>), PluginError> {
    if admin.is_none() {
        if let Some(kept) = PARSED_APPS.get(env) {
            return Ok(kept);
        }
    }
    let app: CatalogedApplication = match admin {
        Some(admin) => env.verify_object("application entry", oct::CATALOGED_APPLICATION, admin),
        None => env.unverified_object("application entry"),
    }
    .map_err(|e| PluginError::Untrusted(format!("application entry: {e}")))?;
    let kept = (app.uid, Arc::new(app.data));
    PARSED_APPS.put(env, kept.clone());
    Ok(kept)
}

/// The co-generated keys a device's new connection replaces (a rotation):
/// each slot's old key when the new connection has another or none. They
/// stay revoked (the SSH channel's KRL names its own). The one rule for
/// the view's projection, the device's kept state and the test account;
/// it names no channel.
pub fn superseded(old: &ConnectionDevice, new: &ConnectionDevice) -> Vec<KeyData> {
    old.slots
        .names()
        .filter_map(|n| {
            let was = old.slots.key(n).ok().flatten()?;
            let now = new.slots.key(n).ok().flatten();
            (now.map(|k| k.key) != Some(was.key)).then_some(was)
        })
        .collect()
}

/// The account as this device knows it, verified.
#[derive(Clone, Debug)]
pub struct AccountView {
    /// The account's address.
    pub address: String,
    /// The pinned profile UDF.
    pub profile_udf: String,
    /// The verified profile.
    pub profile: ProfileAccount,
    /// The current access list (none before the first one is seen).
    pub access: Option<AccessList>,
    /// The latest catalog entry per device UDF.
    pub devices: BTreeMap<String, Arc<DeviceEntry>>,
    /// The latest data per application entry uid.
    pub applications: BTreeMap<String, Arc<serde_json::Value>>,
    /// Devices' co-generated keys replaced by rotation (they stay revoked).
    pub superseded: Vec<KeyData>,
}

impl AccountView {
    /// Verify everything up to `pinned` (the profile UDF).
    pub fn verify<'a>(
        pinned: &str,
        profile: &Signed,
        epochs: &[AdminEpoch],
        access: Option<&Signed>,
        devices: impl IntoIterator<Item = &'a Signed>,
        applications: impl IntoIterator<Item = &'a Signed>,
    ) -> Result<AccountView, PluginError> {
        Self::build(pinned, profile, epochs, access, devices, applications, true)
    }

    /// The view of entries verified when they were kept (a device's state,
    /// a server's private cache). The profile and the access list are still
    /// verified (one signature each); catalog and application entries are
    /// parsed without checking their signatures again, so that a view costs
    /// no signature per device.
    pub fn from_verified<'a>(
        pinned: &str,
        profile: &Signed,
        epochs: &[AdminEpoch],
        access: Option<&Signed>,
        devices: impl IntoIterator<Item = &'a Signed>,
        applications: impl IntoIterator<Item = &'a Signed>,
    ) -> Result<AccountView, PluginError> {
        Self::build(
            pinned,
            profile,
            epochs,
            access,
            devices,
            applications,
            false,
        )
    }

    fn build<'a>(
        pinned: &str,
        profile: &Signed,
        epochs: &[AdminEpoch],
        access: Option<&Signed>,
        devices: impl IntoIterator<Item = &'a Signed>,
        applications: impl IntoIterator<Item = &'a Signed>,
        check: bool,
    ) -> Result<AccountView, PluginError> {
        let untrusted =
            |what: &str, e: mesh_core::Error| PluginError::Untrusted(format!("{what}: {e}"));
        // As of the verified history: the current administrator epoch's keys.
        let profile = ProfileAccount::verify(profile, pinned)
            .map_err(|e| untrusted("account profile", e))?
            .with_epochs(epochs);
        let access = access
            .map(|a| {
                AccessList::verify_memo(a, &profile, &ACCESS_LISTS)
                    .map_err(|e| untrusted("access list", e))
            })
            .transpose()?;
        let mut view = AccountView {
            address: profile.account_address.clone(),
            profile_udf: pinned.to_string(),
            access,
            devices: BTreeMap::new(),
            applications: BTreeMap::new(),
            superseded: Vec::new(),
            profile,
        };
        for env in devices {
            let d = if check {
                Arc::new(DeviceEntry::verify(env, &view.profile)?)
            } else {
                DeviceEntry::trusted(env)?
            };
            view.devices.insert(d.catalog.device_udf.clone(), d);
        }
        view.check_bound()?;
        let admin = view.profile.history_signers();
        for env in applications {
            let (uid, data) = app_entry(env, check.then_some(&admin[..]))?;
            view.applications.insert(uid, data);
        }
        Ok(view)
    }

    /// Catalog entries are bound to the access list: an active device's
    /// latest entry carries the authentication key (and so the epoch) the
    /// access list names. A stale entry served as the latest (which would
    /// bring back a rotated-away SSH key) is refused.
    fn check_bound(&self) -> Result<(), PluginError> {
        for a in self.access.iter().flat_map(|l| &l.devices) {
            if a.state != DeviceState::Active {
                continue;
            }
            let Some(d) = self.devices.get(&a.device_udf) else {
                continue;
            };
            if d.connection.authentication != a.authentication {
                return Err(PluginError::Untrusted(format!(
                    "the catalog entry of {} carries epoch {} keys, the access list epoch {}: a stale entry",
                    a.name, d.connection.authentication.epoch, a.authentication.epoch
                )));
            }
        }
        Ok(())
    }

    /// The access list's serial (0 before there is one).
    pub fn serial(&self) -> u64 {
        self.access.as_ref().map(|a| a.serial).unwrap_or(0)
    }

    /// Every access entry, in the list's order.
    pub fn entries(&self) -> &[AccessEntry] {
        self.access
            .as_ref()
            .map(|a| a.devices.as_slice())
            .unwrap_or(&[])
    }

    /// Active devices with `role` that have a catalog entry.
    pub fn active(&self, role: &Role) -> Vec<(&AccessEntry, &DeviceEntry)> {
        self.entries()
            .iter()
            .filter(|e| e.state == DeviceState::Active && e.roles.contains(role))
            .filter_map(|e| self.devices.get(&e.device_udf).map(|d| (e, &**d)))
            .collect()
    }

    /// Revoked devices that have a catalog entry.
    pub fn revoked(&self) -> Vec<(&AccessEntry, &DeviceEntry)> {
        self.entries()
            .iter()
            .filter(|e| e.state == DeviceState::Revoked)
            .filter_map(|e| self.devices.get(&e.device_udf).map(|d| (e, &**d)))
            .collect()
    }

    /// The access entry of a device.
    pub fn entry(&self, device_udf: &str) -> Option<&AccessEntry> {
        self.access.as_ref().and_then(|a| a.device(device_udf))
    }

    /// The parsed data of an application entry.
    pub fn app<T: DeserializeOwned>(&self, uid: &str) -> Result<Option<T>, PluginError> {
        self.applications
            .get(uid)
            .map(|v| {
                T::deserialize(&**v)
                    .map_err(|e| PluginError::Untrusted(format!("application entry {uid}: {e}")))
            })
            .transpose()
    }

    /// Every application entry whose uid starts with `prefix`, parsed.
    pub fn apps<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>, PluginError> {
        self.applications
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| {
                T::deserialize(&**v)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| PluginError::Untrusted(format!("application entry {k}: {e}")))
            })
            .collect()
    }

    /// The view after the host's own new entries (a projection, to compute
    /// the plugins' entries for the same transaction).
    pub fn set_access(&mut self, list: AccessList) {
        self.access = Some(list);
    }

    /// See [`AccountView::set_access`].
    pub fn put_device(&mut self, d: DeviceEntry) {
        if let Some(old) = self.devices.get(&d.catalog.device_udf) {
            self.superseded
                .extend(superseded(&old.connection, &d.connection));
        }
        self.devices
            .insert(d.catalog.device_udf.clone(), Arc::new(d));
    }

    /// See [`AccountView::set_access`].
    pub fn put_app(&mut self, uid: String, data: serde_json::Value) {
        self.applications.insert(uid, Arc::new(data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::objects::{
        AccountKeys, ConnectionDevice, DeviceBaseKeys, DeviceDescription, Role,
    };
    use mesh_core::portal::AccessEntry;

    /// A catalog entry of `device` at `epoch`, and its connection.
    fn entry(admin: &AccountKeys, device: &Signed, epoch: u32) -> (Signed, ConnectionDevice) {
        let p = ProfileDevice::verify(device).expect("device profile");
        let issued = ConnectionDevice::issue(admin, &p, &[Role::named("ssh")], epoch, 0, &[])
            .expect("issue");
        let conn: ConnectionDevice = issued.connection.unverified_object("c").expect("c");
        let cat = CatalogedDevice {
            device_udf: p.udf(),
            local_name: "phone".into(),
            profile_device: device.clone(),
            connection_device: issued.connection,
            activation_account: issued.activation,
        };
        let env = Signed::sign_object(oct::CATALOGED_DEVICE, &cat, &admin.admin_sign);
        (env, conn)
    }

    /// A stale catalog entry (epoch 1) beside an access list that names the
    /// rotated key (epoch 2) is refused, verified or from the local state.
    #[test]
    fn a_catalog_entry_must_carry_the_access_lists_key() {
        let root = mesh_core::objects::RootKeys::generate();
        let admin = AccountKeys::generate(&root.profile_udf());
        let profile = root.profile(
            "alice@example.com",
            "https://portal",
            None,
            &admin,
            Default::default(),
            None,
        );
        let device = DeviceBaseKeys::generate()
            .profile(
                DeviceDescription {
                    name: "phone".into(),
                    platform: String::new(),
                },
                &[],
            )
            .expect("profile");
        let (old, _) = entry(&admin, &device, 1);
        let (new, conn) = entry(&admin, &device, 2);
        let list = AccessList {
            profile_udf: admin.profile_udf(),
            serial: 2,
            issued: 0,
            devices: vec![AccessEntry {
                device_udf: conn.device_udf.clone(),
                name: "phone".into(),
                authentication: conn.authentication.clone(),
                roles: vec![Role::named("ssh")],
                state: DeviceState::Active,
                extra: Default::default(),
            }],
            extra: Default::default(),
        };
        let access =
            Signed::sign_object(mesh_core::portal::ct::ACCESS_LIST, &list, &admin.admin_sign);
        let pinned = admin.profile_udf();
        let none: [&Signed; 0] = [];
        AccountView::verify(&pinned, &profile, &[], Some(&access), [&new], none).expect("current");
        for stale in [
            AccountView::verify(&pinned, &profile, &[], Some(&access), [&old], none),
            AccountView::from_verified(&pinned, &profile, &[], Some(&access), [&old], none),
        ] {
            let e = stale.expect_err("stale").to_string();
            assert!(e.contains("epoch 1 keys, the access list epoch 2"), "{e}");
        }
    }

    /// A parsed entry is served again only for the same envelope, byte for
    /// byte: another envelope under the same signature is parsed as itself.
    #[test]
    fn parsed_entries_are_served_only_to_the_same_envelope() {
        let root = mesh_core::objects::RootKeys::generate();
        let admin = AccountKeys::generate(&root.profile_udf());
        let device = DeviceBaseKeys::generate()
            .profile(
                DeviceDescription {
                    name: "phone".into(),
                    platform: String::new(),
                },
                &[],
            )
            .expect("profile");
        let (env, conn) = entry(&admin, &device, 1);
        let first = DeviceEntry::trusted(&env).expect("parses");
        let again = DeviceEntry::trusted(&env).expect("parses");
        assert!(Arc::ptr_eq(&first, &again), "a hit");
        assert_eq!(again.connection, conn);
        // The same signature over another entry (another name): parsed as
        // what it says, not served from the memo.
        let mut cat: CatalogedDevice = env.unverified_object("c").expect("c");
        cat.local_name = "stolen".into();
        let mut forged = Signed::sign_object(oct::CATALOGED_DEVICE, &cat, &admin.admin_sign);
        forged.signatures = env.signatures.clone();
        let other = DeviceEntry::trusted(&forged).expect("parses");
        assert_eq!(other.catalog.local_name, "stolen");
        assert_eq!(
            DeviceEntry::trusted(&env)
                .expect("parses")
                .catalog
                .local_name,
            "phone"
        );
        // A payload that does not parse is refused, memo or not.
        let mut broken = env.clone();
        broken.payload = broken.payload[..broken.payload.len() / 2].into();
        assert!(DeviceEntry::trusted(&broken).is_err());
    }

    /// Application entries the same way: a hit is the same envelope; a
    /// verified read checks the signature, memo or not.
    #[test]
    fn parsed_applications_are_served_only_to_the_same_envelope() {
        let root = mesh_core::objects::RootKeys::generate();
        let admin = AccountKeys::generate(&root.profile_udf());
        let app = |data: serde_json::Value| CatalogedApplication {
            uid: "ssh".into(),
            data,
            serve: None,
        };
        let env = Signed::sign_object(
            oct::CATALOGED_APPLICATION,
            &app(serde_json::json!({"Principals": ["alice"]})),
            &admin.admin_sign,
        );
        let (uid, first) = app_entry(&env, None).expect("parses");
        let (_, again) = app_entry(&env, None).expect("parses");
        assert_eq!(uid, "ssh");
        assert!(Arc::ptr_eq(&first, &again), "a hit");
        let mut forged = Signed::sign_object(
            oct::CATALOGED_APPLICATION,
            &app(serde_json::json!({"Principals": ["root"]})),
            &admin.admin_sign,
        );
        forged.signatures = env.signatures.clone();
        let (_, other) = app_entry(&forged, None).expect("parses as itself");
        assert_eq!(other["Principals"][0], "root");
        let keys = [admin.admin_sign.public_key()];
        assert!(
            app_entry(&forged, Some(&keys)).is_err(),
            "its signature fails"
        );
        assert!(app_entry(&env, Some(&keys)).is_ok());
    }
}
