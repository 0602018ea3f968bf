//! Joining: create an account, ask to join one (witness or PIN), complete
//! the connection once accepted, and recover an account from escrow.

use mesh_core::envelope::Signed;
use mesh_core::objects::{
    complete_activation, ct as oct, AccountKeys, CatalogedDevice, ConnectionDevice, DeviceKeys,
    ProfileAccount, ProfileDevice, Role, RootKeys, Slot,
};
use mesh_core::portal::{self as p, tx, AccessList, ConnectResult, RespondConnection};
use mesh_core::{b64, pin, shamir, udf};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::client::{Client, ClientError};
use crate::device::{self, DeviceError};
use crate::entries::{connect_device, next_access, payload_digest};
use crate::error::{AccountError, Result};
use crate::event::Draft;
use crate::host::Host;
use crate::pull::{pull, SyncReport};
use crate::state::*;
use crate::store::Store;
use mesh_plugins::Event;

/// This device connected to `admin`'s account as an administrator.
pub(crate) struct SelfConnection {
    pub(crate) catalog: Signed,
    pub(crate) access: Signed,
    pub(crate) keys: DeviceKeys,
    pub(crate) connection: Signed,
}

/// Connect this device to `admin`'s account with every role: its catalog
/// entry, the next access list naming it, and its activation completed
/// here. The account seed and activation are saved before anything is sent,
/// so that no crash can lose them once the portal knows the account.
pub(crate) fn connect_self(
    store: &mut Store,
    roles: &[Role],
    admin: &AccountKeys,
    profile: &ProfileAccount,
    prev: Option<&AccessList>,
    slots: &[Slot],
) -> Result<SelfConnection> {
    let dev = store.state().device.clone().ok_or(DeviceError::NoDevice)?;
    let (catalog, conn, entry, connection) =
        connect_device(admin, &dev.profile, &dev.name, roles, slots)?;
    let access = next_access(admin, prev, |d| d.push(entry));
    let base = device::base_keys(store)?;
    let cat: CatalogedDevice = catalog.unverified_object("catalog entry")?;
    let (keys, act) = complete_activation(profile, &base, &cat.activation_account, &conn)?;
    let mut secrets = store.secrets()?;
    secrets.online_seeds = Some(admin.online_seeds());
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

/// How many recovery shares `mesh account create` makes, and how many
/// rebuild the root.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    /// Shares needed (2 to 15).
    pub threshold: u8,
    /// Shares made.
    pub shares: u8,
}

/// What `mesh account create` is asked for.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    /// The account's address.
    pub address: &'a str,
    /// The portal's URL.
    pub portal: &'a str,
    /// A display name for the account.
    pub name: Option<String>,
    /// A name for this, the first, device.
    pub device_name: Option<&'a str>,
    /// The recovery kit's shares.
    pub recovery: Recovery,
    /// The witness to name in the profile (PROTOCOL.md §10.6), if any.
    pub witness: Option<&'a str>,
    /// An invitation code, for a portal that creates accounts by
    /// invitation only.
    pub invite: Option<Zeroizing<String>>,
}

/// `mesh account create`: a new account with this device as its first
/// administrator. One Bind carries the first access list, this device's
/// catalog entry and every channel's entries for the new account.
///
/// The account's root goes into recovery shares, given to `hand_out`
/// before the portal knows the account (so that no crash can bind an
/// account whose root is lost); no device keeps it.
pub fn create(
    store: &mut Store,
    host: &Host,
    new: NewAccount<'_>,
    hand_out: impl FnOnce(&[Zeroizing<String>]) -> Result<()>,
) -> Result<AccountState> {
    let NewAccount {
        address,
        portal,
        name,
        device_name,
        recovery,
        witness,
        invite,
    } = new;
    if let Some(a) = store
        .state()
        .account
        .as_ref()
        .and_then(|v| serde_json::from_str::<serde_json::Value>(v.get()).ok())
        .and_then(|v| v.get("address").cloned())
    {
        return Err(AccountError::HasAccount(
            a.as_str().unwrap_or_default().to_string(),
        ));
    }
    check_address(address)?;
    let client = Client::new(portal)?;
    ensure_device(store, device_name, &host.slots())?;
    // Reach the portal before the kit is written: an unreachable portal or
    // a taken address stops here, with no kit for a root never bound.
    match public_of(&client, address) {
        Err(e) if e.code() == Some(p::code::UNKNOWN_ACCOUNT) => {}
        Ok(_) => {
            return Err(AccountError::usage(
                format!("{address} already has an account at {}", client.url()),
                "choose another address, or join that account with `mesh device request`",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    // The witness is asked for its key before anything is made: the root
    // signs it into the profile, and no one else can change it.
    let witness = witness
        .map(|url| {
            let service = Client::new(url)?.url().to_string();
            Ok::<_, AccountError>(mesh_core::witness::WitnessRef {
                key: crate::witness::key_of(&service)?,
                service,
            })
        })
        .transpose()?;
    let root = RootKeys::generate();
    let shares: Vec<Zeroizing<String>> =
        shamir::split(&root.seed().to_bytes(), recovery.threshold, recovery.shares)?
            .iter()
            .map(|s| s.to_udf())
            .collect();
    let admin = root.first_epoch();
    let claims = host.claims(&admin)?;
    let profile_env = root.profile(address, client.url(), name, &admin, claims, witness);
    let profile = ProfileAccount::verify(&profile_env, &admin.profile_udf())?;
    hand_out(&shares)?;
    let admin = admin.without_root();
    // Keep the seed before the portal knows the account: a crash after bind
    // must not lose the only copy of the account's keys.
    let me = connect_self(store, &host.roles(), &admin, &profile, None, &host.slots())?;
    let a = AccountState {
        roles: host.roles(),
        connection: Some(me.connection),
        ..AccountState::empty(
            address.to_string(),
            client.url().to_string(),
            admin.profile_udf(),
            profile_env.clone(),
            Membership::Member,
        )
    };
    let view = crate::host::view_of(&a)?;
    let draft = Draft {
        access: Some(me.access),
        devices: vec![me.catalog],
        event: Some(Event::Created),
        ..Draft::default()
    };
    let bind = p::BindRequest {
        profile: profile_env,
        updates: crate::event::event_updates(host, &a, &view, &admin, None, draft, None)?,
        invite,
    };
    let dev_udf = device_udf(store)?;
    let r: std::result::Result<serde_json::Value, ClientError> = client.signed(
        tx::BIND,
        &admin.profile_udf(),
        &dev_udf,
        serde_json::to_value(&bind).unwrap_or_default(),
        &me.keys.authenticate,
    );
    if let Err(e) = r {
        if !bound_after_all(&client, address, &bind.profile, &e) {
            // Nothing was bound: forget the account so that the user can retry.
            let mut s = store.secrets()?;
            s.online_seeds = None;
            s.activation_seed = None;
            store.save_secrets(&s)?;
            return Err(e.into());
        }
    }
    save_account(store, &a)?;
    // What was bound comes back verified, as any sync (and the witness
    // reads it: a bound account it has not confirmed is said so).
    pull(store, host, &mut SyncReport::default()).map_err(crate::witness::after_commit)?;
    account(store)
}

/// Whether a Bind whose answer never came was bound all the same: the
/// connection can fail after the portal committed (a timeout, a proxy),
/// and forgetting the keys of an account that exists would leave it with
/// no administrator. Only a lost answer is asked about, and only this
/// very profile, byte for byte, counts as bound.
fn bound_after_all(client: &Client, address: &str, profile: &Signed, e: &ClientError) -> bool {
    if !matches!(e, ClientError::Unreachable { .. }) {
        return false;
    }
    public_of(client, address).is_ok_and(|d| d.profile == *profile)
}

/// What the portal serves anyone for `address` (its profile).
fn public_of(
    client: &Client,
    address: &str,
) -> std::result::Result<p::DownloadResponse, ClientError> {
    client.post(
        "Public",
        &p::PublicRequest {
            account_address: Some(address.to_string()),
            profile_udf: None,
            select: Vec::new(),
        },
    )
}

pub(crate) fn check_address(address: &str) -> Result<()> {
    if !address.contains('@')
        || address.starts_with('@')
        || address.ends_with('@')
        || address.contains(char::is_whitespace)
    {
        return Err(AccountError::usage(
            format!("'{address}' is not an account address"),
            "an account address looks like user@domain",
        ));
    }
    Ok(())
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

/// The PIN id and witness a request carries (mesh-protocol, PIN flow).
fn pin_fields(
    pin_text: &str,
    address: &str,
    nonce: &[u8],
    device_profile: &Signed,
) -> Result<(Option<String>, Option<String>, Zeroizing<String>)> {
    let salted = Zeroizing::new(pin::salted_pin(pin_text, pin::ACTION_DEVICE).map_err(|e| {
        AccountError::usage(
            format!("the PIN is not valid: {e}"),
            "copy the PIN exactly as `mesh device pin` printed it",
        )
    })?);
    let id = pin::pin_id(&salted, address)?;
    let w = pin::pin_witness(&salted, address, nonce, &payload_digest(device_profile))?;
    Ok((Some(id), Some(b64::encode(&w)), salted))
}

/// `mesh device request`: ask to join an account.
pub fn request(
    store: &mut Store,
    address: &str,
    portal: &str,
    name: Option<&str>,
    pin_text: Option<&str>,
    slots: &[Slot],
) -> Result<RequestOutcome> {
    if let Ok(a) = account(store) {
        return Err(AccountError::HasAccount(a.address));
    }
    let client = Client::new(portal)?;
    ensure_device(store, name, slots)?;
    let base = device::base_keys(store)?;
    let dev = store.state().device.clone().ok_or(DeviceError::NoDevice)?;
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let (pin_id, pin_witness, salted) = match pin_text {
        None => (None, None, None),
        Some(pt) => {
            let (id, w, salted) = pin_fields(pt, address, &nonce, &dev.profile)?;
            (id, w, Some(salted))
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
    // The salted PIN checks the administrators' answer (§6, PinProof).
    let mut secrets = store.secrets()?;
    secrets.pending_pin = salted;
    store.save_secrets(&secrets)?;
    save_account(store, &a)?;
    Ok(RequestOutcome {
        witness,
        profile_udf: a.profile_udf,
        request_id: resp.request_id,
    })
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
    if resp.result != ConnectResult::Pending {
        crate::pull::read_checkpoints(&client, &mut a)?;
    }
    let profile = a.profile()?;
    match resp.result {
        ConnectResult::Pending => {
            let pin = store.secrets()?.pending_pin.is_some();
            Err(AccountError::Pending(a.address, pin))
        }
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
                let mut secrets = store.secrets()?;
                secrets.pending_pin = None;
                store.save_secrets(&secrets)?;
                store.state_mut().account = None;
                store.save_state()?;
                return Err(AccountError::Rejected(a.address, rc.reason));
            }
            check_pin_proof(store, &a, &rc)?;
            let cat_env = rc.cataloged_device.ok_or_else(|| {
                AccountError::Untrusted("an acceptance without the device's catalog entry".into())
            })?;
            adopt_acceptance(store, &mut a, &profile, &cat_env)?;
            Ok(true)
        }
    }
}

/// A request made with a PIN is accepted only with the administrators'
/// proof of the PIN over the pinned profile and the request: a portal that
/// answered for another account (a substituted profile) cannot make it.
/// Nothing is kept when it fails.
fn check_pin_proof(store: &Store, a: &AccountState, rc: &RespondConnection) -> Result<()> {
    let Some(salted) = store.secrets()?.pending_pin else {
        return Ok(());
    };
    let dev = store.state().device.clone().ok_or(DeviceError::NoDevice)?;
    let want = pin::pin_proof(
        &salted,
        &a.profile_udf,
        &rc.request_id,
        &payload_digest(&dev.profile),
    )?;
    let got = rc
        .pin_proof
        .as_deref()
        .map(b64::decode)
        .transpose()?
        .unwrap_or_default();
    if subtle::ConstantTimeEq::ct_eq(&want[..], &got[..]).into() {
        return Ok(());
    }
    Err(AccountError::Untrusted(format!(
        "the acceptance does not prove the PIN for account {}: the portal may have answered for another account of {}",
        a.profile_udf, a.address
    )))
}

/// The administrators accepted this device: check the catalog entry and the
/// connection are for it, complete the activation, keep its keys.
fn adopt_acceptance(
    store: &mut Store,
    a: &mut AccountState,
    profile: &ProfileAccount,
    cat_env: &Signed,
) -> Result<()> {
    let base = device::base_keys(store)?;
    let cat: CatalogedDevice = cat_env
        .verify_object(
            "catalog entry",
            oct::CATALOGED_DEVICE,
            &[profile.administrator_signature.key],
        )
        .map_err(|e| AccountError::Untrusted(format!("catalog entry: {e}")))?;
    let conn = ConnectionDevice::verify(&cat.connection_device, profile)
        .map_err(|e| AccountError::Untrusted(format!("connection: {e}")))?;
    if !udf::udf_eq(&conn.device_udf, &device_udf(store)?) {
        return Err(AccountError::Untrusted(
            "the connection is for another device".into(),
        ));
    }
    let (_, act) = complete_activation(profile, &base, &cat.activation_account, &conn)
        .map_err(|e| AccountError::Untrusted(format!("activation: {e}")))?;
    let mut secrets = store.secrets()?;
    // Answered: the salted PIN goes in the same write as the activation.
    secrets.pending_pin = None;
    secrets.activation_seed = Some(act.activation_key.clone());
    secrets.activation_epoch = act.epoch;
    if let Some(seeds) = &act.online_seeds {
        secrets.online_seeds = Some(checked_seeds(&a.profile_udf, seeds)?);
    }
    store.save_secrets(&secrets)?;
    a.membership = Membership::Member;
    a.roles = conn.roles.clone();
    a.connection = Some(cat.connection_device.clone());
    a.pending = None;
    save_account(store, a)?;
    Ok(())
}
