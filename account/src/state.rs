//! What a device keeps of its account, and the keys it derives from it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use mesh_core::authority::{OnlineSeeds, CT_ONLINE_SEEDS};
use mesh_core::derive::Seed;
use mesh_core::envelope::Signed;
use mesh_core::objects::{
    AccountKeys, ActivationKeys, ConnectionDevice, DeviceKeys, ProfileAccount, Role, Slot,
};
use mesh_core::portal::{AccessList, InboundRequest, StoreUpdate};
use serde::{Deserialize, Serialize};

use crate::device::{self, DeviceError};
use crate::envelopes;
use crate::error::{AccountError, Result};
use crate::store::{Store, StoreError};

/// Where this device stands with its account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Membership {
    /// Asked to join; no answer yet.
    Pending,
    /// A connected device.
    Member,
    /// Revoked (secrets wiped).
    Revoked,
}

/// A connection request this device sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// Request id.
    pub request_id: String,
    /// The witness.
    pub witness: String,
}

/// What this device knows of its account. Every envelope here was verified
/// up to `profile_udf` before it was kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// Address.
    pub address: String,
    /// Portal URL.
    pub portal: String,
    /// The pinned profile UDF.
    pub profile_udf: String,
    /// The signed profile.
    pub profile: Signed,
    /// Where this device stands.
    pub membership: Membership,
    /// This device's roles.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// This device's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Signed>,
    /// The request, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingRequest>,
    /// Last index of each store.
    #[serde(default)]
    pub indices: BTreeMap<String, u64>,
    // The envelopes live in files of their own (`envelopes.rs`): they are
    // read here only from states written before those files.
    /// The current access list.
    #[serde(default, skip_serializing)]
    pub access: Option<Signed>,
    /// Latest catalog entry per device UDF.
    #[serde(default, skip_serializing)]
    pub devices: BTreeMap<String, Arc<Signed>>,
    /// Latest application entry per id.
    #[serde(default, skip_serializing)]
    pub applications: BTreeMap<String, Arc<Signed>>,
    /// Administrators: connection requests received.
    #[serde(default)]
    pub inbound: Vec<InboundRequest>,
    /// Administrators: request ids answered.
    #[serde(default)]
    pub answered: BTreeSet<String>,
    /// Administrators: PINs registered (signed, encrypted to the administrators).
    #[serde(default)]
    pub pins: Vec<Signed>,
    /// Administrators: PIN ids used.
    #[serde(default)]
    pub pins_used: BTreeSet<String>,
    /// Co-generated keys replaced by rotation (they stay revoked; the
    /// SSH channel's KRL names its own). Stored under its first name.
    #[serde(default, rename = "superseded_ssh")]
    pub superseded: Vec<mesh_core::keys::KeyData>,
    /// The verified history: the lower bound of every later answer.
    #[serde(default)]
    pub history: mesh_core::history::History,
    /// What the channels removed when this device was revoked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wiped: Vec<String>,
    /// The profile as last verified for this state (never stored).
    #[serde(skip)]
    pub(crate) verified: VerifiedProfile,
}

/// The profile envelope of an [`AccountState`] as last verified up to the
/// pinned UDF: a command verifies its profile once, and again only when
/// the portal serves another envelope. A value the state owns: nothing
/// outlives it, and two states that differ only here are equal.
#[derive(Default)]
pub struct VerifiedProfile(Mutex<Option<(Signed, ProfileAccount)>>);

impl VerifiedProfile {
    /// `env` verified up to `pinned` (kept: the state's profile is the
    /// last envelope verified).
    pub(crate) fn verify(&self, env: &Signed, pinned: &str) -> Result<ProfileAccount> {
        if let Some((kept, p)) = self.0.lock().ok().as_deref().and_then(Option::as_ref) {
            if kept == env {
                return Ok(p.clone());
            }
        }
        crate::count::add(crate::count::What::Profile);
        let p = ProfileAccount::verify(env, pinned)
            .map_err(|e| AccountError::Untrusted(format!("account profile: {e}")))?;
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some((env.clone(), p.clone()));
        }
        Ok(p)
    }
}

impl Clone for VerifiedProfile {
    fn clone(&self) -> Self {
        let kept = self.0.lock().ok().and_then(|k| k.clone());
        VerifiedProfile(Mutex::new(kept))
    }
}

impl PartialEq for VerifiedProfile {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for VerifiedProfile {}

impl std::fmt::Debug for VerifiedProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifiedProfile")
    }
}

impl AccountState {
    /// The administrators' heartbeat promise, if they made one (a verified
    /// published entry; PROTOCOL.md §10.7).
    pub fn heartbeat(&self) -> Option<mesh_core::freshness::Heartbeat> {
        mesh_core::freshness::Heartbeat::from_entry(
            self.applications.get(mesh_core::freshness::UID)?,
        )
    }

    /// Administrators: when the promised heartbeat is due (the newest
    /// checkpoint half the promise old).
    pub(crate) fn heartbeat_due(&self) -> Option<u64> {
        let h = self.heartbeat()?;
        let c = self.history.checkpoint.as_ref()?;
        self.roles
            .contains(&Role::ADMIN)
            .then(|| c.issued.saturating_add(h.every / 2))
    }

    /// A member's check of the newest checkpoint against that promise
    /// (administrators keep it instead: their sync writes the heartbeat).
    pub(crate) fn check_fresh(&self, now: u64) -> Result<()> {
        let (Some(h), Some(c)) = (self.heartbeat(), &self.history.checkpoint) else {
            return Ok(());
        };
        if self.roles.contains(&Role::ADMIN) {
            return Ok(());
        }
        h.check(c.issued, now).map_err(AccountError::Stale)
    }

    /// A new account state with nothing downloaded yet.
    pub(crate) fn empty(
        address: String,
        portal: String,
        profile_udf: String,
        profile: Signed,
        membership: Membership,
    ) -> Self {
        AccountState {
            address,
            portal,
            profile_udf,
            profile,
            membership,
            roles: Vec::new(),
            connection: None,
            pending: None,
            indices: BTreeMap::new(),
            access: None,
            devices: BTreeMap::new(),
            applications: BTreeMap::new(),
            inbound: Vec::new(),
            answered: BTreeSet::new(),
            pins: Vec::new(),
            pins_used: BTreeSet::new(),
            superseded: Vec::new(),
            history: Default::default(),
            wiped: Vec::new(),
            verified: Default::default(),
        }
    }

    /// The verified profile, as of the verified history: its
    /// administrator keys, SSH CA and OpenPGP fingerprint are the current
    /// administrator epoch's.
    pub fn profile(&self) -> Result<ProfileAccount> {
        let p = self.verified.verify(&self.profile, &self.profile_udf)?;
        Ok(self.history.profile(&p))
    }

    /// The serial of the access list held, from its payload alone (no
    /// signature check: the list was verified when it was kept).
    pub(crate) fn access_list_serial(&self) -> Option<u64> {
        serial_in(self.access.as_ref()?).ok()
    }

    /// The verified access list.
    pub fn access_list(&self) -> Result<Option<AccessList>> {
        let profile = self.profile()?;
        self.access
            .as_ref()
            .map(|a| {
                AccessList::verify_memo(a, &profile, &mesh_plugins::view::ACCESS_LISTS)
                    .map_err(|e| AccountError::Untrusted(e.to_string()))
            })
            .transpose()
    }

    pub(crate) fn index(&self, store: &str) -> u64 {
        self.indices.get(store).copied().unwrap_or(0)
    }

    /// Entries to append to `store`, expected at the index this state knows.
    pub(crate) fn append(&self, store: &str, envelopes: Vec<Signed>) -> StoreUpdate {
        StoreUpdate {
            store: store.into(),
            expected: self.index(store),
            delta: None,
            envelopes,
        }
    }
}

/// Read the account state of a store: its header, and the envelopes
/// file the header names (states written before the split hold the
/// envelopes inline).
pub fn account(store: &Store) -> Result<AccountState> {
    crate::count::add(crate::count::What::State);
    let mut a: AccountState = read(store)?;
    let at: Stored = read(store)?;
    if let Some(name) = at.envelopes {
        let e = envelopes::read(store.home(), &name)?;
        a.access = e.access;
        a.devices = e.devices;
        a.applications = e.applications;
    }
    Ok(a)
}

/// What the header carries besides the account state's own fields.
#[derive(Deserialize, Serialize)]
struct Stored {
    /// The envelopes file (`envelopes.rs`).
    #[serde(default)]
    envelopes: Option<String>,
    /// The access list's serial (what the quick check reports).
    #[serde(default)]
    access_serial: Option<u64>,
    /// Administrators: when the heartbeat they promised is due (what the
    /// periodic sync checks before it skips a quiet account).
    #[serde(default)]
    heartbeat_due: Option<u64>,
}

/// The store's account state, read as `T` (the whole state, or its header).
fn read<T: serde::de::DeserializeOwned>(store: &Store) -> Result<T> {
    let v = store
        .state()
        .account
        .as_ref()
        .ok_or(AccountError::NoAccount)?;
    serde_json::from_str(v.get()).map_err(|e| {
        AccountError::Store(StoreError::Corrupt {
            path: store.home().join("state.json"),
            detail: e.to_string(),
        })
    })
}

/// The few fields of the account state a sync needs before it knows
/// whether anything changed. Read without building the envelopes (the
/// parser skips them): at 1,000 devices the state is 8 MB, its header a
/// few hundred bytes.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub portal: String,
    pub profile_udf: String,
    pub membership: Membership,
    #[serde(default)]
    pub indices: BTreeMap<String, u64>,
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The access list's serial, from its payload alone (states written
    /// before the envelopes had their own file).
    #[serde(default, deserialize_with = "serial_of")]
    access: Option<u64>,
    #[serde(default)]
    access_serial: Option<u64>,
    /// See [`Stored`].
    #[serde(default)]
    pub heartbeat_due: Option<u64>,
}

impl Header {
    /// The serial of the access list this device holds.
    pub(crate) fn serial(&self) -> Option<u64> {
        self.access_serial.or(self.access)
    }

    pub(crate) fn index(&self, store: &str) -> u64 {
        self.indices.get(store).copied().unwrap_or(0)
    }
}

fn serial_of<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    let Some(env) = Option::<Signed>::deserialize(d)? else {
        return Ok(None);
    };
    serial_in(&env).map(Some).map_err(serde::de::Error::custom)
}

/// The `Serial` of an access list's payload, without parsing the list.
fn serial_in(env: &Signed) -> serde_json::Result<u64> {
    #[derive(Deserialize)]
    struct Serial {
        #[serde(rename = "Serial")]
        serial: u64,
    }
    serde_json::from_slice::<Serial>(&env.payload).map(|s| s.serial)
}

/// The header of a store's account state.
pub(crate) fn header(store: &Store) -> Result<Header> {
    read(store)
}

pub(crate) fn save_account(store: &mut Store, a: &AccountState) -> Result<()> {
    let corrupt = |e: serde_json::Error| {
        AccountError::Store(StoreError::Corrupt {
            path: store.home().join("state.json"),
            detail: e.to_string(),
        })
    };
    // The manifest the header names now (none in a new or old-layout state).
    let previous = read::<Stored>(store).ok().and_then(|s| s.envelopes);
    let written = envelopes::write(
        store.home(),
        envelopes::EnvelopesRef {
            access: a.access.as_ref(),
            devices: &a.devices,
            applications: &a.applications,
        },
        previous.as_deref(),
    )?;
    // The header: the envelopes are not serialized (`skip_serializing`).
    let mut v = serde_json::to_value(a).map_err(corrupt)?;
    let stored = Stored {
        envelopes: Some(written.name.clone()),
        access_serial: a.access_list_serial(),
        heartbeat_due: a.heartbeat_due(),
    };
    if let (Some(m), serde_json::Value::Object(s)) = (
        v.as_object_mut(),
        serde_json::to_value(stored).map_err(corrupt)?,
    ) {
        m.extend(s);
    }
    store.state_mut().account = Some(serde_json::value::to_raw_value(&v).map_err(corrupt)?);
    store.save_state()?;
    envelopes::prune(store.home(), &written);
    Ok(())
}

/// This device's combined keys (from its base seed and activation).
pub fn device_keys(store: &Store) -> Result<DeviceKeys> {
    let base = device::base_keys(store)?;
    let secrets = store.secrets()?;
    let act = secrets
        .activation_seed
        .as_ref()
        .ok_or(AccountError::Device(DeviceError::Wiped))?;
    let seed = Seed::from_udf(act)?;
    Ok(DeviceKeys::combine(
        &base,
        &ActivationKeys::derive(&seed, secrets.activation_epoch)?,
    ))
}

/// This administrator's online keys of the account's current epoch. When
/// the verified history started an epoch this device does not hold yet, its
/// seeds are taken from the epoch's entry (wrapped to this device) and kept.
pub(crate) fn admin_keys(store: &mut Store, a: &AccountState) -> Result<AccountKeys> {
    let not_admin = || AccountError::NotAdmin(a.address.clone());
    if !a.roles.contains(&Role::ADMIN) {
        return Err(not_admin());
    }
    let profile = a.profile()?;
    let held = store.secrets()?.online_seeds.ok_or_else(not_admin)?;
    if let Ok(keys) = held.keys(&profile) {
        return Ok(keys);
    }
    let latest = a.history.epochs.last().ok_or_else(|| {
        AccountError::Untrusted("the stored administrator seeds are not this account's".into())
    })?;
    let mine = device_keys(store)?;
    let seeds: OnlineSeeds = latest
        .seeds
        .decrypt_object("administrator seeds", CT_ONLINE_SEEDS, &mine.encrypt)
        .map_err(|_| {
            AccountError::usage(
                format!(
                    "this device does not hold administrator epoch {} of {}",
                    latest.number, a.address
                ),
                "an administrator that was revoked or lost the role holds no new epoch; ask another administrator",
            )
        })?;
    let keys = seeds.keys(&profile).map_err(|e| {
        AccountError::Untrusted(format!("administrator epoch {}: {e}", latest.number))
    })?;
    let mut secrets = store.secrets()?;
    secrets.online_seeds = Some(seeds);
    store.save_secrets(&secrets)?;
    Ok(keys)
}

/// An activation's administrator seeds, checked to give keys of this
/// account (of whichever epoch it is in: checked against the history when
/// used, by [`admin_keys`]).
pub(crate) fn checked_seeds(profile_udf: &str, seeds: &OnlineSeeds) -> Result<OnlineSeeds> {
    let mut parsed = std::collections::BTreeMap::new();
    for (e, seed) in &seeds.seeds {
        parsed.insert(*e, Seed::from_udf(seed)?);
    }
    AccountKeys::from_seeds(profile_udf, parsed).map_err(|e| {
        AccountError::Untrusted(format!("the activation's administrator seeds: {e}"))
    })?;
    Ok(seeds.clone())
}

pub(crate) fn device_udf(store: &Store) -> Result<String> {
    Ok(store
        .state()
        .device
        .as_ref()
        .ok_or(DeviceError::NoDevice)?
        .udf
        .clone())
}

pub(crate) fn ensure_device(store: &mut Store, name: Option<&str>, slots: &[Slot]) -> Result<()> {
    if store.state().device.is_none() {
        let n = name
            .map(str::to_string)
            .unwrap_or_else(device::default_name);
        device::init(store, &n, slots)?;
    }
    Ok(())
}

/// The verified public key data of a device's connection (for plugins).
pub fn connection(a: &AccountState) -> Result<Option<ConnectionDevice>> {
    let profile = a.profile()?;
    a.connection
        .as_ref()
        .map(|c| {
            ConnectionDevice::verify(c, &profile)
                .map_err(|e| AccountError::Untrusted(e.to_string()))
        })
        .transpose()
}
