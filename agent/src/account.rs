//! The account and device life cycle: create, connect (witness or PIN),
//! accept, reject, sync, list, revoke, escrow and recover.
//!
//! Trust: the portal is not trusted. The account profile is pinned by its
//! UDF when the device joins (the witness comparison or the PIN
//! authenticates that first contact); everything downloaded afterwards is
//! verified up to that profile before any of it is kept. A sync either
//! verifies and keeps everything it downloaded, or keeps nothing.

use std::collections::{BTreeMap, BTreeSet};

use mesh_core::derive::Seed;
use mesh_core::envelope::{Encrypted, Signed};
use mesh_core::objects::{
    self, complete_activation, ct as oct, AccountKeys, ActivationKeys, CatalogedDevice,
    ConnectionDevice, DeviceKeys, ProfileAccount, ProfileDevice, Role,
};
use mesh_core::portal::{
    self as p, code, store as st, tx, AccessEntry, AccessList, ConnectResult, DeviceState,
    InboundRequest, MessagePin, RespondConnection, StoreIndex, StoreUpdate,
};
use mesh_core::{b64, pin, shamir, udf};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::client::{now, Client, ClientError};
use crate::device::{self, DeviceError};
use crate::store::{Store, StoreError};

/// Errors of the account layer, each naming what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Device layer.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Store layer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Portal.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Core (crypto, parsing).
    #[error(transparent)]
    Core(#[from] mesh_core::Error),
    /// Something the portal returned does not verify.
    #[error("refusing what the portal returned: {0}")]
    Untrusted(String),
    /// No account on this device.
    #[error("this device is not connected to an account")]
    NoAccount,
    /// Already connected.
    #[error("this device already belongs to account {0}")]
    HasAccount(String),
    /// Needs the administrator role.
    #[error("this device is not an administrator of {0}")]
    NotAdmin(String),
    /// Revoked.
    #[error("this device was revoked from account {0}; its secrets have been wiped")]
    Revoked(String),
    /// Not yet accepted.
    #[error("the connection request to {0} is still pending")]
    Pending(String),
    /// Rejected.
    #[error("the administrator of {0} rejected this device's request")]
    Rejected(String),
    /// A pending request or device that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Bad argument.
    #[error("{0}")]
    Usage(String),
    /// Too many concurrent writers.
    #[error("the account changed under every retry (another administrator is writing); try again")]
    Busy,
}

impl AccountError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            AccountError::Device(e) => return e.hint(),
            AccountError::Store(e) => return e.hint(),
            AccountError::Client(ClientError::Unreachable { .. }) => {
                "check the portal URL and that the portal is running".into()
            }
            AccountError::NoAccount => {
                "create one with `mesh account create` or join one with `mesh device request`".into()
            }
            AccountError::HasAccount(_) => "use another --home for another account".into(),
            AccountError::NotAdmin(_) => "run this on an administrator device".into(),
            AccountError::Pending(_) => {
                "an administrator runs `mesh device pending` and `mesh device accept WITNESS`".into()
            }
            AccountError::Untrusted(_) => {
                "the portal (or its database) returned data that is not signed by this account; local state was kept as it was"
                    .into()
            }
            _ => return None,
        })
    }
}

type Result<T> = std::result::Result<T, AccountError>;

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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingRequest {
    /// Request id.
    pub request_id: String,
    /// The witness.
    pub witness: String,
}

/// What this device knows of its account. Every envelope here was verified
/// up to `profile_udf` before it was kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// The current access list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Signed>,
    /// Latest catalog entry per device UDF.
    #[serde(default)]
    pub devices: BTreeMap<String, Signed>,
    /// Latest application entry per id.
    #[serde(default)]
    pub applications: BTreeMap<String, Signed>,
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
    /// SSH keys replaced by rotation (they go into KRLs).
    #[serde(default)]
    pub superseded_ssh: Vec<mesh_core::keys::KeyData>,
    /// An S/MIME signing certificate (and chain, PEM) an organisation's CA
    /// issued for this device, used instead of the account CA's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smime_external: Option<Vec<String>>,
}

impl AccountState {
    /// A new account state with nothing downloaded yet.
    fn empty(
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
            superseded_ssh: Vec::new(),
            smime_external: None,
        }
    }

    /// The verified profile.
    pub fn profile(&self) -> Result<ProfileAccount> {
        ProfileAccount::verify(&self.profile, &self.profile_udf)
            .map_err(|e| AccountError::Untrusted(e.to_string()))
    }

    /// The verified access list.
    pub fn access_list(&self) -> Result<Option<AccessList>> {
        let profile = self.profile()?;
        self.access
            .as_ref()
            .map(|a| {
                AccessList::verify(a, &profile).map_err(|e| AccountError::Untrusted(e.to_string()))
            })
            .transpose()
    }

    fn index(&self, store: &str) -> u64 {
        self.indices.get(store).copied().unwrap_or(0)
    }

    /// Entries to append to `store`, expected at the index this state knows.
    pub(crate) fn append(&self, store: &str, envelopes: Vec<Signed>) -> StoreUpdate {
        StoreUpdate {
            store: store.into(),
            expected: self.index(store),
            envelopes,
        }
    }
}

/// Read the account state of a store.
pub fn account(store: &Store) -> Result<AccountState> {
    let v = store
        .state()
        .account
        .clone()
        .ok_or(AccountError::NoAccount)?;
    serde_json::from_value(v).map_err(|e| {
        AccountError::Store(StoreError::Corrupt {
            path: store.home().join("state.json"),
            detail: e.to_string(),
        })
    })
}

fn save_account(store: &mut Store, a: &AccountState) -> Result<()> {
    store.state_mut().account = Some(serde_json::to_value(a).unwrap_or_default());
    store.save_state()?;
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

pub(crate) fn admin_keys(store: &Store, a: &AccountState) -> Result<AccountKeys> {
    if !a.roles.contains(&Role::Admin) {
        return Err(AccountError::NotAdmin(a.address.clone()));
    }
    let seed = store
        .secrets()?
        .account_seed
        .ok_or_else(|| AccountError::NotAdmin(a.address.clone()))?;
    let keys = AccountKeys::from_seed(Seed::from_udf(&seed)?)?;
    if !udf::udf_eq(&keys.profile_udf(), &a.profile_udf) {
        return Err(AccountError::Untrusted(
            "the stored account seed is for another account".into(),
        ));
    }
    Ok(keys)
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

fn ensure_device(store: &mut Store, name: Option<&str>) -> Result<()> {
    if store.state().device.is_none() {
        let n = name
            .map(str::to_string)
            .unwrap_or_else(device::default_name);
        device::init(store, &n)?;
    }
    Ok(())
}

/// Build a catalog entry and access-list entry for a device being connected.
fn connect_device(
    admin: &AccountKeys,
    device_profile_env: &Signed,
    name: &str,
    roles: &[Role],
) -> Result<(Signed, ConnectionDevice, AccessEntry, Signed)> {
    let dp = ProfileDevice::verify(device_profile_env)?;
    let issued = ConnectionDevice::issue(admin, &dp, roles, 0, now())?;
    let conn: ConnectionDevice = issued.connection.unverified_object("connection")?;
    let cataloged = CatalogedDevice {
        device_udf: dp.udf(),
        local_name: name.to_string(),
        profile_device: device_profile_env.clone(),
        connection_device: issued.connection.clone(),
        activation_account: issued.activation,
    };
    let entry = AccessEntry {
        device_udf: dp.udf(),
        name: name.to_string(),
        authentication: conn.authentication.clone(),
        roles: conn.roles.clone(),
        state: DeviceState::Active,
    };
    let cat_env = Signed::sign_object(oct::CATALOGED_DEVICE, &cataloged, &admin.admin_sign);
    Ok((cat_env, conn, entry, issued.connection))
}

fn next_access(
    admin: &AccountKeys,
    prev: Option<&AccessList>,
    edit: impl FnOnce(&mut Vec<AccessEntry>),
) -> Signed {
    let mut devices = prev.map(|a| a.devices.clone()).unwrap_or_default();
    edit(&mut devices);
    let list = AccessList {
        profile_udf: admin.profile_udf(),
        serial: prev.map(|a| a.serial + 1).unwrap_or(1),
        devices,
        issued: now(),
    };
    Signed::sign_object(p::ct::ACCESS_LIST, &list, &admin.admin_sign)
}

/// This device connected to `admin`'s account as an administrator.
struct SelfConnection {
    catalog: Signed,
    access: Signed,
    keys: DeviceKeys,
    connection: Signed,
}

/// Connect this device to `admin`'s account with every role: its catalog
/// entry, the next access list naming it, and its activation completed
/// here. The account seed and activation are saved before anything is sent,
/// so that no crash can lose them once the portal knows the account.
fn connect_self(
    store: &mut Store,
    admin: &AccountKeys,
    profile: &ProfileAccount,
    prev: Option<&AccessList>,
) -> Result<SelfConnection> {
    let dev = store.state().device.clone().ok_or(DeviceError::NoDevice)?;
    let (catalog, conn, entry, connection) =
        connect_device(admin, &dev.profile, &dev.name, &Role::ALL)?;
    let access = next_access(admin, prev, |d| d.push(entry));
    let base = device::base_keys(store)?;
    let cat: CatalogedDevice = catalog.unverified_object("catalog entry")?;
    let (keys, act) = complete_activation(profile, &base, &cat.activation_account, &conn)?;
    let mut secrets = store.secrets()?;
    secrets.account_seed = Some(admin.seed().to_udf());
    secrets.activation_seed = Some(act.activation_key.clone());
    secrets.activation_epoch = act.epoch;
    store.save_secrets(&secrets)?;
    Ok(SelfConnection {
        catalog,
        access,
        keys,
        connection,
    })
}

/// `mesh account create`: a new account with this device as its first administrator.
pub fn create(
    store: &mut Store,
    address: &str,
    portal: &str,
    name: Option<String>,
) -> Result<AccountState> {
    if let Some(a) = store
        .state()
        .account
        .as_ref()
        .and_then(|v| v.get("address"))
    {
        return Err(AccountError::HasAccount(
            a.as_str().unwrap_or_default().to_string(),
        ));
    }
    if !address.contains('@')
        || address.starts_with('@')
        || address.ends_with('@')
        || address.contains(char::is_whitespace)
    {
        return Err(AccountError::Usage(format!(
            "'{address}' is not an account address (user@domain)"
        )));
    }
    let client = Client::new(portal)?;
    ensure_device(store, None)?;
    let admin = AccountKeys::generate();
    let profile_env = admin.profile_with(
        address,
        client.url(),
        name,
        Some(
            crate::pgp::fingerprint(admin.seed())
                .map_err(|e| AccountError::Usage(e.to_string()))?,
        ),
    );
    let profile = ProfileAccount::verify(&profile_env, &admin.profile_udf())?;
    // Keep the seed before the portal knows the account: a crash after bind
    // must not lose the only copy of the account's keys.
    let me = connect_self(store, &admin, &profile, None)?;
    let (cat_env, access_env, keys, conn_env) = (me.catalog, me.access, me.keys, me.connection);

    let bind = p::BindRequest {
        profile: profile_env.clone(),
        updates: vec![
            StoreUpdate {
                store: st::ACCESS.into(),
                expected: 0,
                envelopes: vec![access_env.clone()],
            },
            StoreUpdate {
                store: st::DEVICE.into(),
                expected: 0,
                envelopes: vec![cat_env.clone()],
            },
        ],
    };
    let dev_udf = device_udf(store)?;
    let r: std::result::Result<serde_json::Value, ClientError> = client.signed(
        tx::BIND,
        &admin.profile_udf(),
        &dev_udf,
        serde_json::to_value(&bind).unwrap_or_default(),
        &keys.authenticate,
    );
    if let Err(e) = r {
        // Nothing was bound: forget the account so that the user can retry.
        let mut s = store.secrets()?;
        s.account_seed = None;
        s.activation_seed = None;
        store.save_secrets(&s)?;
        return Err(e.into());
    }
    let a = AccountState {
        roles: Role::ALL.to_vec(),
        connection: Some(conn_env),
        indices: BTreeMap::from([(st::ACCESS.to_string(), 1), (st::DEVICE.to_string(), 1)]),
        access: Some(access_env),
        devices: BTreeMap::from([(dev_udf, cat_env)]),
        ..AccountState::empty(
            address.to_string(),
            client.url().to_string(),
            admin.profile_udf(),
            profile_env,
            Membership::Member,
        )
    };
    save_account(store, &a)?;
    // The first device's SSH and S/MIME certificates.
    crate::ssh::maintain(store)?;
    crate::smime::maintain(store)?;
    crate::pgp::maintain(store)?;
    account(store)
}

/// What `mesh device request` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RequestOutcome {
    /// The witness to compare on an administrator device.
    pub witness: String,
    /// The account's profile UDF (pinned now).
    pub profile_udf: String,
    /// Request id.
    pub request_id: String,
}

fn payload_digest(env: &Signed) -> Vec<u8> {
    sha2::Sha512::digest(&env.payload).to_vec()
}

/// `mesh device request`: ask to join an account.
pub fn request(
    store: &mut Store,
    address: &str,
    portal: &str,
    name: Option<&str>,
    pin_text: Option<&str>,
) -> Result<RequestOutcome> {
    if let Ok(a) = account(store) {
        return Err(AccountError::HasAccount(a.address));
    }
    let client = Client::new(portal)?;
    ensure_device(store, name)?;
    let base = device::base_keys(store)?;
    let dev = store.state().device.clone().ok_or(DeviceError::NoDevice)?;
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let (pin_id, pin_witness) = match pin_text {
        None => (None, None),
        Some(pt) => {
            let salted = Zeroizing::new(
                pin::salted_pin(pt, pin::ACTION_DEVICE)
                    .map_err(|e| AccountError::Usage(format!("the PIN is not valid: {e}")))?,
            );
            let id = pin::pin_id(&salted, address)?;
            let w = pin::pin_witness(&salted, address, &nonce, &payload_digest(&dev.profile))?;
            (Some(id), Some(b64::encode(&w)))
        }
    };
    let body = p::RequestConnection {
        account_address: address.to_string(),
        profile_device: dev.profile.clone(),
        client_nonce: b64::encode(&nonce),
        pin_id,
        pin_witness,
    };
    let resp: p::ConnectResponse = client.signed(
        tx::CONNECT,
        "",
        &dev.udf,
        serde_json::to_value(&body).unwrap_or_default(),
        &base.authenticate,
    )?;
    let profile = ProfileAccount::verify_self_signed(&resp.profile)
        .map_err(|e| AccountError::Untrusted(e.to_string()))?;
    if profile.account_address.to_lowercase() != address.to_lowercase() {
        return Err(AccountError::Untrusted(format!(
            "asked for {address}, the portal answered with the profile of {}",
            profile.account_address
        )));
    }
    let server_nonce = b64::decode(&resp.server_nonce)?;
    let device_profile = ProfileDevice::verify(&dev.profile)?;
    let witness = pin::witness(
        &profile.value(),
        &server_nonce,
        &device_profile.value(),
        &nonce,
    );
    if !udf::udf_eq(&witness, &resp.witness) {
        return Err(AccountError::Untrusted(
            "the portal's witness does not match the one computed here".into(),
        ));
    }
    let a = AccountState {
        pending: Some(PendingRequest {
            request_id: resp.request_id.clone(),
            witness: witness.clone(),
        }),
        ..AccountState::empty(
            address.to_string(),
            client.url().to_string(),
            profile.udf(),
            resp.profile,
            Membership::Pending,
        )
    };
    save_account(store, &a)?;
    Ok(RequestOutcome {
        witness,
        profile_udf: a.profile_udf,
        request_id: resp.request_id,
    })
}

/// What a sync changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// This device's connection completed.
    pub completed: bool,
    /// Devices seen for the first time.
    pub new_devices: Vec<String>,
    /// Devices newly revoked.
    pub revoked_devices: Vec<String>,
    /// Requests accepted automatically by PIN.
    pub auto_accepted: Vec<String>,
    /// New pending requests (administrators).
    pub new_requests: Vec<String>,
    /// Entries downloaded.
    pub entries: usize,
    /// Administrators: SSH certificates issued or renewed.
    pub certificates: usize,
    /// This device's keys were rotated and it now uses the new ones.
    pub rotated: bool,
}

/// Complete a pending connection: poll the portal once.
pub fn complete(store: &mut Store) -> Result<bool> {
    let mut a = account(store)?;
    let Some(pending) = a.pending.clone() else {
        return Ok(false);
    };
    let client = Client::new(&a.portal)?;
    let base = device::base_keys(store)?;
    let dev_udf = device_udf(store)?;
    let body = p::CompleteRequest {
        account_address: a.address.clone(),
        request_id: pending.request_id.clone(),
    };
    let resp: p::CompleteResponse = client.signed(
        tx::COMPLETE,
        "",
        &dev_udf,
        serde_json::to_value(&body).unwrap_or_default(),
        &base.authenticate,
    )?;
    let profile = a.profile()?;
    match resp.result {
        ConnectResult::Pending => Err(AccountError::Pending(a.address)),
        ConnectResult::Reject | ConnectResult::Accept => {
            let env = resp.response.ok_or_else(|| {
                AccountError::Untrusted("an answer without its signed response".into())
            })?;
            let rc: RespondConnection = env
                .verify_object(
                    "connection response",
                    p::ct::RESPOND_CONNECTION,
                    &[profile.administrator_signature.key],
                )
                .map_err(|e| AccountError::Untrusted(format!("connection response: {e}")))?;
            if rc.request_id != pending.request_id {
                return Err(AccountError::Untrusted(
                    "the response answers another request".into(),
                ));
            }
            if rc.result == ConnectResult::Reject {
                store.state_mut().account = None;
                store.save_state()?;
                return Err(AccountError::Rejected(a.address));
            }
            let cat_env = rc.cataloged_device.ok_or_else(|| {
                AccountError::Untrusted("an acceptance without the device's catalog entry".into())
            })?;
            let cat: CatalogedDevice = cat_env
                .verify_object(
                    "catalog entry",
                    oct::CATALOGED_DEVICE,
                    &[profile.administrator_signature.key],
                )
                .map_err(|e| AccountError::Untrusted(format!("catalog entry: {e}")))?;
            let conn = ConnectionDevice::verify(&cat.connection_device, &profile)
                .map_err(|e| AccountError::Untrusted(format!("connection: {e}")))?;
            if !udf::udf_eq(&conn.device_udf, &dev_udf) {
                return Err(AccountError::Untrusted(
                    "the connection is for another device".into(),
                ));
            }
            let (_, act) = complete_activation(&profile, &base, &cat.activation_account, &conn)
                .map_err(|e| AccountError::Untrusted(format!("activation: {e}")))?;
            let mut secrets = store.secrets()?;
            secrets.activation_seed = Some(act.activation_key.clone());
            secrets.activation_epoch = act.epoch;
            if let Some(seed) = &act.account_seed {
                // An administrator: check the seed really is this account's.
                let keys = AccountKeys::from_seed(Seed::from_udf(seed)?)?;
                if !udf::udf_eq(&keys.profile_udf(), &a.profile_udf) {
                    return Err(AccountError::Untrusted(
                        "the activation carries another account's seed".into(),
                    ));
                }
                secrets.account_seed = Some(seed.clone());
            }
            store.save_secrets(&secrets)?;
            a.membership = Membership::Member;
            a.roles = conn.roles.clone();
            a.connection = Some(cat.connection_device.clone());
            a.pending = None;
            save_account(store, &a)?;
            Ok(true)
        }
    }
}

/// Verified view of downloaded entries, applied to a copy of the state.
fn apply_entries(
    a: &mut AccountState,
    profile: &ProfileAccount,
    updates: &[p::StoreEntries],
    report: &mut SyncReport,
) -> Result<()> {
    let admin = [profile.administrator_signature.key];
    let mut access = a.access_list()?;
    let known_revoked: BTreeSet<String> = access
        .as_ref()
        .map(|l| {
            l.devices
                .iter()
                .filter(|d| d.state == DeviceState::Revoked)
                .map(|d| d.device_udf.clone())
                .collect()
        })
        .unwrap_or_default();
    for up in updates {
        let mut expect = a.index(&up.store) + 1;
        for e in &up.entries {
            let name = format!("{} entry {}", up.store, e.index);
            if e.index != expect {
                return Err(AccountError::Untrusted(format!(
                    "{name}: expected entry {expect}"
                )));
            }
            expect += 1;
            let untrusted = |detail: String| AccountError::Untrusted(format!("{name}: {detail}"));
            match up.store.as_str() {
                st::INBOUND => {
                    let ib: InboundRequest = serde_json::from_value(e.envelope.clone())
                        .map_err(|x| untrusted(x.to_string()))?;
                    let req: p::Request = ib
                        .request
                        .unverified_object("request")
                        .map_err(|x| untrusted(x.to_string()))?;
                    let rc: p::RequestConnection =
                        serde_json::from_value(req.body).map_err(|x| untrusted(x.to_string()))?;
                    let dp = ProfileDevice::verify(&rc.profile_device)
                        .map_err(|x| untrusted(x.to_string()))?;
                    ib.request
                        .verify(p::ct::REQUEST, &[dp.authentication.key])
                        .map_err(|x| untrusted(x.to_string()))?;
                    // The witness binds both profiles and both nonces: recompute it.
                    let w = pin::witness(
                        &profile.value(),
                        &b64::decode(&ib.server_nonce).map_err(|x| untrusted(x.to_string()))?,
                        &dp.value(),
                        &b64::decode(&rc.client_nonce).map_err(|x| untrusted(x.to_string()))?,
                    );
                    if !udf::udf_eq(&w, &ib.witness) {
                        return Err(untrusted("witness does not match the request".into()));
                    }
                    report.new_requests.push(ib.witness.clone());
                    a.inbound.push(ib);
                }
                store_name => {
                    let env: Signed = serde_json::from_value(e.envelope.clone())
                        .map_err(|x| untrusted(x.to_string()))?;
                    match store_name {
                        st::ACCESS => {
                            let list = AccessList::verify(&env, profile)
                                .map_err(|x| untrusted(x.to_string()))?;
                            if let Some(prev) = &access {
                                if list.serial != prev.serial + 1 {
                                    return Err(untrusted(format!(
                                        "access list serial {} after {}",
                                        list.serial, prev.serial
                                    )));
                                }
                            }
                            access = Some(list);
                            a.access = Some(env);
                        }
                        st::DEVICE => {
                            let cat: CatalogedDevice = env
                                .verify_object("catalog entry", oct::CATALOGED_DEVICE, &admin)
                                .map_err(|x| untrusted(x.to_string()))?;
                            ConnectionDevice::verify(&cat.connection_device, profile)
                                .map_err(|x| untrusted(x.to_string()))?;
                            if !a.devices.contains_key(&cat.device_udf) {
                                report.new_devices.push(cat.local_name.clone());
                            }
                            // A rotated key stays revocable: remember the one it replaces.
                            if let Some(old) = a.devices.insert(cat.device_udf.clone(), env) {
                                let prev: CatalogedDevice =
                                    old.unverified_object("catalog entry")?;
                                let prev_conn: ConnectionDevice =
                                    prev.connection_device.unverified_object("connection")?;
                                let new_conn: ConnectionDevice =
                                    cat.connection_device.unverified_object("connection")?;
                                if prev_conn.ssh.key != new_conn.ssh.key {
                                    a.superseded_ssh.push(prev_conn.ssh);
                                }
                            }
                        }
                        st::APPLICATION => {
                            let app: objects::CatalogedApplication = env
                                .verify_object(
                                    "application entry",
                                    oct::CATALOGED_APPLICATION,
                                    &admin,
                                )
                                .map_err(|x| untrusted(x.to_string()))?;
                            a.applications.insert(app.uid, env);
                        }
                        st::LOCAL => {
                            env.verify(&env.content_type, &admin)
                                .map_err(|x| untrusted(x.to_string()))?;
                            match env.content_type.as_str() {
                                p::ct::RESPOND_CONNECTION => {
                                    let rc: RespondConnection =
                                        env.unverified_object("response")
                                            .map_err(|x| untrusted(x.to_string()))?;
                                    a.answered.insert(rc.request_id);
                                    if let Some(pid) = rc.pin_id {
                                        a.pins_used.insert(pid);
                                    }
                                }
                                p::ct::MESSAGE_PIN => a.pins.push(env),
                                other => {
                                    return Err(untrusted(format!("unknown record type {other}")))
                                }
                            }
                        }
                        other => return Err(untrusted(format!("unknown store {other}"))),
                    }
                }
            }
            report.entries += 1;
        }
        a.indices.insert(up.store.clone(), expect - 1);
    }
    if let Some(list) = &access {
        for d in &list.devices {
            if d.state == DeviceState::Revoked && !known_revoked.contains(&d.device_udf) {
                report.revoked_devices.push(d.name.clone());
            }
        }
    }
    Ok(())
}

/// If the portal says this device is revoked, check its proof; if it
/// holds, wipe the secrets and remember the revocation.
fn handle_revoked(store: &mut Store, a: &mut AccountState, err: ClientError) -> AccountError {
    let ClientError::Refused {
        code: c,
        access_list: Some(proof),
        ..
    } = &err
    else {
        return err.into();
    };
    if c != code::DEVICE_REVOKED {
        return err.into();
    }
    let Ok(profile) = a.profile() else {
        return err.into();
    };
    let Ok(dev_udf) = device_udf(store) else {
        return err.into();
    };
    let revoked = AccessList::verify(proof, &profile)
        .ok()
        .and_then(|l| l.device(&dev_udf).map(|d| d.state == DeviceState::Revoked))
        .unwrap_or(false);
    if !revoked {
        return AccountError::Untrusted(
            "the portal says this device is revoked but cannot prove it".into(),
        );
    }
    wipe(store, a, proof)
}

fn wipe(store: &mut Store, a: &mut AccountState, proof: &Signed) -> AccountError {
    if let Err(e) = store.wipe_secrets() {
        return e.into();
    }
    a.membership = Membership::Revoked;
    a.access = Some(proof.clone());
    a.roles.clear();
    if let Err(e) = save_account(store, a) {
        return e;
    }
    AccountError::Revoked(a.address.clone())
}

/// `mesh sync`: complete a pending connection, download and verify what is
/// new, and (administrators) accept requests that carry a valid PIN.
pub fn sync(store: &mut Store) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let a = account(store)?;
    match a.membership {
        Membership::Revoked => return Err(AccountError::Revoked(a.address)),
        Membership::Pending => {
            report.completed = complete(store)?;
        }
        Membership::Member => {}
    }
    pull(store, &mut report)?;
    let a = account(store)?;
    if a.roles.contains(&Role::Admin) {
        report.auto_accepted = accept_by_pin(store)?;
        if !report.auto_accepted.is_empty() {
            pull(store, &mut SyncReport::default())?;
        }
        report.certificates = crate::ssh::maintain(store)?
            + crate::smime::maintain(store)?
            + crate::pgp::maintain(store)?;
        // Report only the requests that still wait for an answer.
        let a = account(store)?;
        report.new_requests.retain(|w| {
            a.inbound
                .iter()
                .any(|i| &i.witness == w && !a.answered.contains(&i.request_id))
        });
    }
    Ok(report)
}

fn pull(store: &mut Store, report: &mut SyncReport) -> Result<()> {
    match pull_once(store, report) {
        // Our key is not the one the access list names: an administrator
        // may have rotated this device's keys. Adopt the new activation (if
        // there is one, signed by the administrators) and try again.
        Err(AccountError::Client(e)) if e.code() == Some(code::NOT_AUTHENTICATED) => {
            if adopt_rotation(store)? {
                report.rotated = true;
                pull_once(store, report)
            } else {
                Err(AccountError::Client(e))
            }
        }
        other => other,
    }
}

/// Look for a newer connection of this device in the public catalog and,
/// when its activation (encrypted to this device, signed by the
/// administrators) gives keys of a later epoch, switch to them.
fn adopt_rotation(store: &mut Store) -> Result<bool> {
    let mut a = account(store)?;
    let profile = a.profile()?;
    let me = device_udf(store)?;
    let client = Client::new(&a.portal)?;
    let mut index = 0;
    let mut latest: Option<(Signed, CatalogedDevice)> = None;
    loop {
        let r: p::DownloadResponse = client.post(
            "Public",
            &p::PublicRequest {
                account_address: None,
                profile_udf: Some(a.profile_udf.clone()),
                select: vec![StoreIndex {
                    store: st::DEVICE.into(),
                    index,
                }],
            },
        )?;
        let Some(u) = r.updates.into_iter().next() else {
            break;
        };
        for e in &u.entries {
            index = e.index;
            let env: Signed = serde_json::from_value(e.envelope.clone())
                .map_err(|x| AccountError::Untrusted(x.to_string()))?;
            let cat: CatalogedDevice = env
                .verify_object(
                    "catalog entry",
                    oct::CATALOGED_DEVICE,
                    &[profile.administrator_signature.key],
                )
                .map_err(|x| AccountError::Untrusted(format!("Device entry {}: {x}", e.index)))?;
            if udf::udf_eq(&cat.device_udf, &me) {
                latest = Some((env, cat));
            }
        }
        if !u.partial {
            break;
        }
    }
    let Some((env, cat)) = latest else {
        return Ok(false);
    };
    let conn = ConnectionDevice::verify(&cat.connection_device, &profile)
        .map_err(|e| AccountError::Untrusted(e.to_string()))?;
    let current = store.secrets()?.activation_epoch;
    if conn.authentication.epoch <= current {
        return Ok(false);
    }
    let base = device::base_keys(store)?;
    let (_, act) = complete_activation(&profile, &base, &cat.activation_account, &conn)
        .map_err(|e| AccountError::Untrusted(format!("rotated activation: {e}")))?;
    let mut secrets = store.secrets()?;
    secrets.activation_seed = Some(act.activation_key.clone());
    secrets.activation_epoch = act.epoch;
    store.save_secrets(&secrets)?;
    a.connection = Some(cat.connection_device.clone());
    a.roles = conn.roles.clone();
    a.devices.insert(me, env);
    save_account(store, &a)?;
    Ok(true)
}

fn pull_once(store: &mut Store, report: &mut SyncReport) -> Result<()> {
    let mut a = account(store)?;
    let client = Client::new(&a.portal)?;
    let keys = device_keys(store)?;
    let dev_udf = device_udf(store)?;
    let admin = a.roles.contains(&Role::Admin);
    let mut next = a.clone();
    loop {
        let select: Vec<StoreIndex> = st::ALL
            .iter()
            .filter(|s| admin || !matches!(**s, st::INBOUND | st::LOCAL))
            .map(|s| StoreIndex {
                store: s.to_string(),
                index: next.index(s),
            })
            .collect();
        let r: std::result::Result<p::DownloadResponse, ClientError> = client.signed(
            tx::DOWNLOAD,
            &a.profile_udf,
            &dev_udf,
            serde_json::to_value(p::DownloadRequest { select }).unwrap_or_default(),
            &keys.authenticate,
        );
        let resp = match r {
            Ok(v) => v,
            Err(e) => return Err(handle_revoked(store, &mut a, e)),
        };
        let profile = ProfileAccount::verify(&resp.profile, &a.profile_udf)
            .map_err(|e| AccountError::Untrusted(format!("account profile: {e}")))?;
        apply_entries(&mut next, &profile, &resp.updates, report)?;
        next.profile = resp.profile;
        if !resp.updates.iter().any(|u| u.partial) {
            break;
        }
    }
    // Our own standing, from the verified list.
    if let Some(list) = next.access_list()? {
        if let Some(me) = list.device(&dev_udf) {
            if me.state == DeviceState::Revoked {
                let proof = next.access.clone().unwrap_or_else(|| a.profile.clone());
                return Err(wipe(store, &mut next, &proof));
            }
            next.roles = me.roles.clone();
        }
    }
    save_account(store, &next)?;
    Ok(())
}

/// A pending request as `mesh device pending` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PendingView {
    /// Witness.
    pub witness: String,
    /// Device name.
    pub name: String,
    /// Device UDF.
    pub device: String,
    /// Request id.
    pub request_id: String,
    /// Carries a PIN.
    pub pin: bool,
}

fn request_parts(ib: &InboundRequest) -> Result<(p::RequestConnection, ProfileDevice)> {
    let req: p::Request = ib.request.unverified_object("request")?;
    let rc: p::RequestConnection =
        serde_json::from_value(req.body).map_err(|e| AccountError::Untrusted(e.to_string()))?;
    let dp = ProfileDevice::verify(&rc.profile_device)?;
    Ok((rc, dp))
}

/// Requests without an answer.
pub fn pending(store: &mut Store) -> Result<Vec<PendingView>> {
    let a = account(store)?;
    if !a.roles.contains(&Role::Admin) {
        return Err(AccountError::NotAdmin(a.address));
    }
    let mut out = Vec::new();
    for ib in a
        .inbound
        .iter()
        .filter(|i| !a.answered.contains(&i.request_id))
    {
        let (rc, dp) = request_parts(ib)?;
        out.push(PendingView {
            witness: ib.witness.clone(),
            name: dp.description.name.clone(),
            device: dp.udf(),
            request_id: ib.request_id.clone(),
            pin: rc.pin_id.is_some(),
        });
    }
    Ok(out)
}

/// Run an administrator's write: build updates from the freshly synced
/// state and transact; on Conflict, sync again and rebuild. No update of
/// another administrator is lost: the rebuild starts from what they wrote.
pub(crate) fn admin_write<T>(
    store: &mut Store,
    mut build: impl FnMut(&AccountState, &AccountKeys) -> Result<(Vec<StoreUpdate>, T)>,
) -> Result<T> {
    for _ in 0..8 {
        pull(store, &mut SyncReport::default())?;
        let a = account(store)?;
        let admin = admin_keys(store, &a)?;
        let (updates, out) = build(&a, &admin)?;
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
                pull(store, &mut SyncReport::default())?;
                return Ok(out);
            }
            Err(e) if e.code() == Some(code::CONFLICT) => continue,
            Err(e) => {
                let mut a = a;
                return Err(handle_revoked(store, &mut a, e));
            }
        }
    }
    Err(AccountError::Busy)
}

fn find_request<'a>(a: &'a AccountState, which: &str) -> Result<&'a InboundRequest> {
    a.inbound
        .iter()
        .filter(|i| !a.answered.contains(&i.request_id))
        .find(|i| udf::udf_eq(&i.witness, which) || udf::udf_eq(&i.request_id, which))
        .ok_or_else(|| {
            AccountError::NotFound(format!("no pending request with witness or id {which}"))
        })
}

fn accept_updates(
    a: &AccountState,
    admin: &AccountKeys,
    ib: &InboundRequest,
    roles: &[Role],
    pin_id: Option<String>,
) -> Result<(Vec<StoreUpdate>, String)> {
    let (_, dp) = request_parts(ib)?;
    let req: p::Request = ib.request.unverified_object("request")?;
    let rc: p::RequestConnection =
        serde_json::from_value(req.body).map_err(|e| AccountError::Untrusted(e.to_string()))?;
    let name = dp.description.name.clone();
    let (cat_env, _, entry, _) = connect_device(admin, &rc.profile_device, &name, roles)?;
    let prev = a.access_list()?;
    let access_env = next_access(admin, prev.as_ref(), |d| {
        d.retain(|x| !udf::udf_eq(&x.device_udf, &entry.device_udf));
        d.push(entry);
    });
    let response = RespondConnection {
        request_id: ib.request_id.clone(),
        result: ConnectResult::Accept,
        cataloged_device: Some(cat_env.clone()),
        pin_id,
    };
    let resp_env = Signed::sign_object(p::ct::RESPOND_CONNECTION, &response, &admin.admin_sign);
    Ok((
        vec![
            a.append(st::ACCESS, vec![access_env]),
            a.append(st::DEVICE, vec![cat_env]),
            a.append(st::LOCAL, vec![resp_env]),
        ],
        name,
    ))
}

/// `mesh device accept`.
pub fn accept(store: &mut Store, which: &str, roles: &[Role]) -> Result<String> {
    let name = admin_write(store, |a, admin| {
        let ib = find_request(a, which)?.clone();
        accept_updates(a, admin, &ib, roles, None)
    })?;
    // Its certificates, so that it has them when it completes.
    crate::ssh::maintain(store)?;
    crate::smime::maintain(store)?;
    crate::pgp::maintain(store)?;
    Ok(name)
}

/// `mesh device reject`.
pub fn reject(store: &mut Store, which: &str) -> Result<String> {
    admin_write(store, |a, admin| {
        let ib = find_request(a, which)?;
        let (_, dp) = request_parts(ib)?;
        let response = RespondConnection {
            request_id: ib.request_id.clone(),
            result: ConnectResult::Reject,
            cataloged_device: None,
            pin_id: None,
        };
        let env = Signed::sign_object(p::ct::RESPOND_CONNECTION, &response, &admin.admin_sign);
        Ok((vec![a.append(st::LOCAL, vec![env])], dp.description.name))
    })
}

/// `mesh device pin`: register a one-time PIN; returns it.
pub fn new_pin(store: &mut Store, roles: &[Role], valid_for: u64) -> Result<(String, u64)> {
    let pin_text = pin::new_pin();
    let expires = now() + valid_for;
    let a = account(store)?;
    let admin = admin_keys(store, &a)?;
    let salted = Zeroizing::new(pin::salted_pin(&pin_text, pin::ACTION_DEVICE)?);
    let record = MessagePin {
        pin_id: pin::pin_id(&salted, &a.address)?,
        salted_pin: salted,
        roles: roles.to_vec(),
        expires,
        automatic: true,
    };
    let enc = Encrypted::encrypt_object(
        p::ct::MESSAGE_PIN,
        &record,
        &[admin.admin_encrypt.public_key()],
    )?;
    let env = Signed::sign_object(p::ct::MESSAGE_PIN, &enc, &admin.admin_sign);
    admin_write(store, |a, _| {
        Ok((vec![a.append(st::LOCAL, vec![env.clone()])], ()))
    })?;
    Ok((pin_text, expires))
}

/// Accept every pending request that carries a valid, unused, unexpired PIN.
fn accept_by_pin(store: &mut Store) -> Result<Vec<String>> {
    let mut accepted = Vec::new();
    loop {
        let a = account(store)?;
        let admin = admin_keys(store, &a)?;
        let mut candidate = None;
        for ib in a
            .inbound
            .iter()
            .filter(|i| !a.answered.contains(&i.request_id))
        {
            let (rc, dp) = request_parts(ib)?;
            let (Some(id), Some(w)) = (&rc.pin_id, &rc.pin_witness) else {
                continue;
            };
            if a.pins_used.contains(id) {
                continue;
            }
            for penv in &a.pins {
                let enc: Encrypted = penv.unverified_object("PIN record")?;
                let rec: MessagePin =
                    enc.decrypt_object("PIN record", p::ct::MESSAGE_PIN, &admin.admin_encrypt)?;
                if !udf::udf_eq(&rec.pin_id, id) || rec.expires < now() || !rec.automatic {
                    continue;
                }
                let nonce = b64::decode(&rc.client_nonce)?;
                let want = pin::pin_witness(
                    &rec.salted_pin,
                    &a.address,
                    &nonce,
                    &payload_digest(&rc.profile_device),
                )?;
                let got = b64::decode(w)?;
                if subtle::ConstantTimeEq::ct_eq(&want[..], &got[..]).into() {
                    candidate = Some((
                        ib.request_id.clone(),
                        rec.roles.clone(),
                        id.clone(),
                        dp.description.name.clone(),
                    ));
                    break;
                }
            }
            if candidate.is_some() {
                break;
            }
        }
        let Some((rid, roles, pin_id, name)) = candidate else {
            break;
        };
        admin_write(store, |a, admin| {
            let ib = a
                .inbound
                .iter()
                .find(|i| i.request_id == rid)
                .cloned()
                .ok_or_else(|| AccountError::NotFound(rid.clone()))?;
            if a.answered.contains(&rid) || a.pins_used.contains(&pin_id) {
                return Ok((Vec::new(), ()));
            }
            accept_updates(a, admin, &ib, &roles, Some(pin_id.clone())).map(|(u, _)| (u, ()))
        })?;
        accepted.push(name);
    }
    Ok(accepted)
}

/// A device as `mesh device list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// Name.
    pub name: String,
    /// Device UDF.
    pub device: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// active or revoked.
    pub state: String,
    /// This device.
    pub this: bool,
}

/// Every device of the account.
pub fn list(store: &Store) -> Result<Vec<DeviceView>> {
    let a = account(store)?;
    let me = device_udf(store)?;
    let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
    Ok(list
        .devices
        .iter()
        .map(|d| DeviceView {
            name: d.name.clone(),
            device: d.device_udf.clone(),
            roles: d.roles.clone(),
            state: match d.state {
                DeviceState::Active => "active".into(),
                DeviceState::Revoked => "revoked".into(),
            },
            this: udf::udf_eq(&d.device_udf, &me),
        })
        .collect())
}

/// `mesh device revoke NAME|UDF`.
pub fn revoke(store: &mut Store, which: &str) -> Result<String> {
    let me = device_udf(store)?;
    let name = admin_write(store, |a, admin| {
        let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
        let matches: Vec<&AccessEntry> = list
            .devices
            .iter()
            .filter(|d| d.name == which || udf::udf_eq(&d.device_udf, which))
            .collect();
        let target = match matches.as_slice() {
            [] => return Err(AccountError::NotFound(format!("no device named {which}"))),
            [one] => (*one).clone(),
            _ => {
                return Err(AccountError::Usage(format!(
                    "{} devices are named {which}; give the device UDF",
                    matches.len()
                )))
            }
        };
        if udf::udf_eq(&target.device_udf, &me) {
            return Err(AccountError::Usage(
                "refusing to revoke this device itself; revoke it from another administrator"
                    .into(),
            ));
        }
        if target.state == DeviceState::Revoked {
            return Err(AccountError::Usage(format!("{which} is revoked already")));
        }
        let env = next_access(admin, Some(&list), |d| {
            for e in d.iter_mut() {
                if udf::udf_eq(&e.device_udf, &target.device_udf) {
                    e.state = DeviceState::Revoked;
                }
            }
        });
        Ok((vec![a.append(st::ACCESS, vec![env])], target.name))
    })?;
    // The CRL, the shared encryption keys and the certificate follow at once.
    crate::smime::maintain(store)?;
    crate::pgp::maintain(store)?;
    Ok(name)
}

/// `mesh device rotate NAME|UDF`: new keys for a device, computed here
/// from its base public keys and a fresh activation at the next epoch (the
/// device may be offline). Its identity (device UDF, name, roles) stays; the
/// portal refuses its old authentication key at once, and the device
/// switches to the new keys at its next sync.
pub fn rotate(store: &mut Store, which: &str) -> Result<(String, u32)> {
    let out = admin_write(store, |a, admin| {
        let profile = a.profile()?;
        let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
        let matches: Vec<&AccessEntry> = list
            .devices
            .iter()
            .filter(|d| {
                d.state == DeviceState::Active
                    && (d.name == which || udf::udf_eq(&d.device_udf, which))
            })
            .collect();
        let target = match matches.as_slice() {
            [] => {
                return Err(AccountError::NotFound(format!(
                    "no active device named {which}"
                )))
            }
            [one] => (*one).clone(),
            _ => {
                return Err(AccountError::Usage(format!(
                    "{} devices are named {which}; give the device UDF",
                    matches.len()
                )))
            }
        };
        let env = a
            .devices
            .get(&target.device_udf)
            .ok_or_else(|| AccountError::NotFound(format!("no catalog entry for {which}")))?;
        let cat: CatalogedDevice = env.unverified_object("catalog entry")?;
        let conn = ConnectionDevice::verify(&cat.connection_device, &profile)?;
        let dp = ProfileDevice::verify(&cat.profile_device)?;
        let epoch = conn.authentication.epoch + 1;
        let issued = ConnectionDevice::issue(admin, &dp, &conn.roles, epoch, now())?;
        let new_conn: ConnectionDevice = issued.connection.unverified_object("connection")?;
        let cataloged = CatalogedDevice {
            device_udf: cat.device_udf.clone(),
            local_name: cat.local_name.clone(),
            profile_device: cat.profile_device.clone(),
            connection_device: issued.connection,
            activation_account: issued.activation,
        };
        let cat_env = Signed::sign_object(oct::CATALOGED_DEVICE, &cataloged, &admin.admin_sign);
        let access_env = next_access(admin, Some(&list), |d| {
            for e in d.iter_mut() {
                if udf::udf_eq(&e.device_udf, &target.device_udf) {
                    e.authentication = new_conn.authentication.clone();
                }
            }
        });
        Ok((
            vec![
                a.append(st::ACCESS, vec![access_env]),
                a.append(st::DEVICE, vec![cat_env]),
            ],
            (target.name, epoch),
        ))
    })?;
    // A certificate for the new SSH key.
    crate::ssh::maintain(store)?;
    // This device rotated itself: adopt the new keys now.
    if adopt_rotation(store)? {
        pull(store, &mut SyncReport::default())?;
    }
    Ok(out)
}

/// `mesh account escrow`: shares of the account seed (its binary Z-UDF, as
/// the reference does).
pub fn escrow(store: &Store, k: u8, n: u8) -> Result<Vec<Zeroizing<String>>> {
    let a = account(store)?;
    let admin = admin_keys(store, &a)?;
    let shares = shamir::split(&admin.seed().to_bytes(), k, n)?;
    Ok(shares.iter().map(|s| s.to_udf()).collect())
}

/// `mesh account recover`: rebuild the account from shares on a fresh home
/// and make this device an administrator; other devices stay connected.
pub fn recover(
    store: &mut Store,
    address: &str,
    portal: &str,
    shares: &[String],
    name: Option<&str>,
) -> Result<AccountState> {
    if let Ok(a) = account(store) {
        return Err(AccountError::HasAccount(a.address));
    }
    let mut parsed = Vec::new();
    for (i, s) in shares.iter().enumerate() {
        parsed.push(shamir::Share::from_udf(s).map_err(|e| {
            AccountError::Usage(format!("share {} is not a valid share: {e}", i + 1))
        })?);
    }
    let bytes = shamir::recover(&parsed)?;
    let seed = Seed::from_udf(&udf::presentation_whole(&bytes)).map_err(|_| {
        AccountError::Usage("the shares do not give an account seed: wrong shares".into())
    })?;
    let admin = AccountKeys::from_seed(seed).map_err(|_| {
        AccountError::Usage("the shares do not give an account seed: wrong shares".into())
    })?;
    let client = Client::new(portal)?;
    let (profile_env, access_tail) = public_tail(&client, address, st::ACCESS)?;
    let published = ProfileAccount::verify_self_signed(&profile_env)
        .map_err(|e| AccountError::Untrusted(e.to_string()))?;
    if !udf::udf_eq(&published.udf(), &admin.profile_udf()) {
        return Err(AccountError::Usage(format!(
            "the shares give account {}, but {address} is account {}: wrong shares",
            admin.profile_udf(),
            published.udf()
        )));
    }
    let (access_index, prev) = match access_tail {
        Some(e) => {
            let env: Signed = serde_json::from_value(e.envelope.clone())
                .map_err(|x| AccountError::Untrusted(x.to_string()))?;
            let list = AccessList::verify(&env, &published)
                .map_err(|x| AccountError::Untrusted(format!("Access entry {}: {x}", e.index)))?;
            (e.index, Some(list))
        }
        None => (0, None),
    };
    let device_index = public_tail(&client, address, st::DEVICE)?
        .1
        .map(|e| e.index)
        .unwrap_or(0);
    ensure_device(store, name)?;
    let me = connect_self(store, &admin, &published, prev.as_ref())?;
    let (cat_env, access_env, keys, conn_env) = (me.catalog, me.access, me.keys, me.connection);
    let dev_udf = device_udf(store)?;
    let t = p::TransactRequest {
        updates: vec![
            StoreUpdate {
                store: st::ACCESS.into(),
                expected: access_index,
                envelopes: vec![access_env],
            },
            StoreUpdate {
                store: st::DEVICE.into(),
                expected: device_index,
                envelopes: vec![cat_env],
            },
        ],
    };
    let _: p::TransactResponse = client.signed(
        tx::TRANSACT,
        &admin.profile_udf(),
        &dev_udf,
        serde_json::to_value(&t).unwrap_or_default(),
        &keys.authenticate,
    )?;
    let a = AccountState {
        roles: Role::ALL.to_vec(),
        connection: Some(conn_env),
        ..AccountState::empty(
            published.account_address.clone(),
            client.url().to_string(),
            admin.profile_udf(),
            profile_env,
            Membership::Member,
        )
    };
    save_account(store, &a)?;
    pull(store, &mut SyncReport::default())?;
    account(store)
}

/// The profile and the last entry of a public store.
fn public_tail(
    client: &Client,
    address: &str,
    store_name: &str,
) -> Result<(Signed, Option<p::Entry>)> {
    let mut index = 0;
    let mut last = None;
    loop {
        let r: p::DownloadResponse = client.post(
            "Public",
            &p::PublicRequest {
                account_address: Some(address.to_string()),
                profile_udf: None,
                select: vec![StoreIndex {
                    store: store_name.into(),
                    index,
                }],
            },
        )?;
        let partial = r.updates.first().map(|u| u.partial).unwrap_or(false);
        if let Some(e) = r
            .updates
            .into_iter()
            .next()
            .and_then(|u| u.entries.into_iter().last())
        {
            index = e.index;
            last = Some(e);
        }
        if !partial {
            return Ok((r.profile, last));
        }
    }
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

/// What the agent keeps in memory to ask the portal cheaply whether
/// anything changed, without opening the store.
pub struct QuickView {
    client: Client,
    profile_udf: String,
    device_udf: String,
    auth: mesh_core::keys::SigningKey,
    indices: BTreeMap<String, u64>,
    admin: bool,
}

impl std::fmt::Debug for QuickView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickView")
            .field("device_udf", &self.device_udf)
            .finish_non_exhaustive()
    }
}

/// The quick view of a connected device, after a sync.
pub fn quick_view(store: &Store) -> Result<QuickView> {
    let a = account(store)?;
    if a.membership != Membership::Member {
        return Err(AccountError::NoAccount);
    }
    Ok(QuickView {
        client: Client::new(&a.portal)?,
        profile_udf: a.profile_udf.clone(),
        device_udf: device_udf(store)?,
        auth: device_keys(store)?.authenticate,
        indices: a.indices.clone(),
        admin: a.roles.contains(&Role::Admin),
    })
}

impl QuickView {
    /// Whether the account's stores are where the last sync left them (one
    /// signed Status request).
    pub fn unchanged(&self) -> std::result::Result<bool, ClientError> {
        let r: p::StatusResponse = self.client.signed(
            tx::STATUS,
            &self.profile_udf,
            &self.device_udf,
            serde_json::json!({}),
            &self.auth,
        )?;
        Ok(r.stores.iter().all(|s| {
            let mine =
                matches!(s.store.as_str(), st::ACCESS | st::DEVICE | st::APPLICATION) || self.admin;
            !mine || self.indices.get(&s.store).copied().unwrap_or(0) == s.index
        }))
    }
}

/// The data of an application entry, parsed (the entry itself was verified at sync).
pub(crate) fn app_entry<T: serde::de::DeserializeOwned>(
    a: &AccountState,
    uid: &str,
) -> Result<Option<T>> {
    let Some(env) = a.applications.get(uid) else {
        return Ok(None);
    };
    let e: objects::CatalogedApplication = env.unverified_object("application entry")?;
    serde_json::from_value(e.data)
        .map(Some)
        .map_err(|x| AccountError::Untrusted(format!("application entry {uid}: {x}")))
}

/// An application entry signed by the administrators.
pub(crate) fn app_envelope<T: Serialize>(uid: String, data: &T, admin: &AccountKeys) -> Signed {
    let e = objects::CatalogedApplication {
        uid,
        data: serde_json::to_value(data).unwrap_or_default(),
    };
    Signed::sign_object(oct::CATALOGED_APPLICATION, &e, &admin.admin_sign)
}

/// Append `envelopes` to the Application store at the index this state knows.
pub(crate) fn application_update(
    a: &AccountState,
    envelopes: Vec<Signed>,
) -> (Vec<StoreUpdate>, usize) {
    let n = envelopes.len();
    if n == 0 {
        return (Vec::new(), 0);
    }
    (vec![a.append(st::APPLICATION, envelopes)], n)
}
