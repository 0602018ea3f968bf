//! Pull: download what is new, verify it up to the pinned profile, keep
//! all of it or nothing; adopt rotated keys; wipe on a proven revocation.

use std::collections::BTreeSet;
use std::sync::Arc;

use mesh_core::envelope::Signed;
use mesh_core::objects::{
    complete_activation, ct as oct, CatalogedDevice, ConnectionDevice, ProfileAccount,
    ProfileDevice, Role,
};
use mesh_core::portal::{
    self as p, code, store as st, tx, AccessList, DeviceState, InboundRequest, RespondConnection,
    StoreIndex,
};
use mesh_core::{b64, pin, udf};
use serde::Serialize;

use crate::client::{Client, ClientError};
use crate::device::{self};
use crate::error::{AccountError, Result};
use crate::host::Host;
use crate::pager::{Pager, PagerError};
use crate::state::*;
use crate::store::Store;

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
    /// Requests with a PIN that was refused (device name, reason).
    pub pin_refused: Vec<(String, String)>,
    /// New pending requests (administrators).
    pub new_requests: Vec<String>,
    /// Entries downloaded.
    pub entries: usize,
    /// Administrators: channel entries published (certificates issued or
    /// renewed, keys wrapped or rotated, CRLs).
    pub entries_published: usize,
    /// What the channels did on this device.
    pub applied: Vec<String>,
    /// Channels that could not bring this device up to date.
    pub warnings: Vec<String>,
    /// This device's keys were rotated and it now uses the new ones.
    pub rotated: bool,
    /// Nothing was new and the channels' last complete pass is recent:
    /// none ran ([`crate::sync::Converge::WhenChanged`]).
    pub skipped: bool,
}

/// Verified view of downloaded entries, applied to a copy of the state.
/// Entries must continue each store without a gap; any entry that does not
/// verify refuses the whole download.
pub(crate) fn apply_entries(
    a: &mut AccountState,
    profile: &ProfileAccount,
    updates: &[p::StoreEntries],
    report: &mut SyncReport,
) -> Result<()> {
    // Nothing new (the usual answer): the list of a large account is not
    // parsed again; the rollback checks below still run.
    let mut access = if updates.iter().any(|u| !u.entries.is_empty()) {
        a.access_list()?
    } else {
        None
    };
    let known_revoked = revoked_set(access.as_ref());
    // Checkpoints first: an administrator epoch they start gives the key
    // the entries after it are signed with.
    let mut ordered: Vec<&p::StoreEntries> = updates.iter().collect();
    ordered.sort_by_key(|u| u.store != st::CHECKPOINT);
    for up in ordered {
        let current = a.history.profile(profile);
        a.history.behind(&[StoreIndex {
            store: up.store.clone(),
            index: up.last,
        }])?;
        let mut expect = a.index(&up.store) + 1;
        for e in &up.entries {
            let name = format!("{} entry {}", up.store, e.index);
            let untrusted = |detail: String| AccountError::Untrusted(format!("{name}: {detail}"));
            // Inbound is the portal's pool of unanswered requests (not
            // covered by checkpoints): answered and expired ones leave gaps.
            let skips = up.store == st::INBOUND && e.index > expect;
            if e.index != expect && !skips {
                return Err(untrusted(format!("expected entry {expect}")));
            }
            expect = e.index + 1;
            if e.delta.is_some() && (up.store != st::ACCESS || !e.envelope.is_null()) {
                return Err(untrusted(
                    "a change where only a whole entry may come".into(),
                ));
            }
            if up.store == st::INBOUND {
                let ib = verify_inbound(&current, &e.envelope).map_err(untrusted)?;
                report.new_requests.push(ib.witness.clone());
                a.inbound.push(ib);
            } else {
                let env = envelope_of(a, e).map_err(untrusted)?;
                if up.store == st::CHECKPOINT {
                    a.history.checkpoint(e.index, &env, profile)?;
                } else {
                    a.history.entry(&up.store, e.index, &env)?;
                    apply_signed(a, &current, &mut access, &up.store, env, report)
                        .map_err(untrusted)?;
                }
            }
            report.entries += 1;
        }
        let mut at = expect - 1;
        if up.store == st::INBOUND && !up.partial {
            // Nothing left unread in the pool: at its last index, or Status
            // would report the gaps as new for ever.
            at = at.max(up.last);
        }
        a.indices.insert(up.store.clone(), at);
    }
    let now_revoked = revoked_set(access.as_ref());
    for d in access.iter().flat_map(|l| &l.devices) {
        if now_revoked.contains(&d.device_udf) && !known_revoked.contains(&d.device_udf) {
            report.revoked_devices.push(d.name.clone());
        }
    }
    forget_answered(a, crate::client::now());
    Ok(())
}

/// An administrator keeps a request's body only while it waits: once
/// answered (its id stays in `answered`), or dropped by the portal's pool
/// (`PENDING_TTL` after it came), it goes, so that what strangers send
/// does not pile up in the state every sync reads and writes.
fn forget_answered(a: &mut AccountState, now: u64) {
    let answered = &a.answered;
    a.inbound.retain(|i| {
        !answered.contains(&i.request_id) && now.saturating_sub(i.received) < p::PENDING_TTL
    });
}

/// An entry's envelope: whole, or an access list rebuilt from its change
/// to the one this state holds (verified afterwards as any entry).
fn envelope_of(a: &AccountState, e: &p::Entry) -> std::result::Result<Signed, String> {
    match &e.delta {
        Some(d) => {
            let base = a
                .access
                .as_ref()
                .ok_or("a change to an access list this device does not hold")?;
            d.apply(base).map_err(|x| x.to_string())
        }
        None => serde_json::from_value(e.envelope.clone()).map_err(|x| x.to_string()),
    }
}

fn revoked_set(list: Option<&AccessList>) -> BTreeSet<String> {
    list.iter()
        .flat_map(|l| &l.devices)
        .filter(|d| d.state == DeviceState::Revoked)
        .map(|d| d.device_udf.clone())
        .collect()
}

/// A connection request: signed by the device it names, with the witness
/// that binds both profiles and both nonces (recomputed here).
fn verify_inbound(
    profile: &ProfileAccount,
    envelope: &serde_json::Value,
) -> std::result::Result<InboundRequest, String> {
    let s = |x: &dyn std::fmt::Display| x.to_string();
    let ib: InboundRequest = serde_json::from_value(envelope.clone()).map_err(|x| s(&x))?;
    let req: p::Request = ib.request.unverified_object("request").map_err(|x| s(&x))?;
    let rc: p::RequestConnection = serde_json::from_value(req.body).map_err(|x| s(&x))?;
    let dp = ProfileDevice::verify(&rc.profile_device).map_err(|x| s(&x))?;
    ib.request
        .verify(p::ct::REQUEST, &[dp.authentication.key])
        .map_err(|x| s(&x))?;
    let w = pin::witness(
        &profile.value(),
        &b64::decode(&ib.server_nonce).map_err(|x| s(&x))?,
        &dp.value(),
        &b64::decode(&rc.client_nonce).map_err(|x| s(&x))?,
    );
    if !udf::udf_eq(&w, &ib.witness) {
        return Err("witness does not match the request".into());
    }
    Ok(ib)
}

/// One administrator-signed entry of the Access, Device, Application or
/// Local store.
fn apply_signed(
    a: &mut AccountState,
    profile: &ProfileAccount,
    access: &mut Option<AccessList>,
    store: &str,
    env: Signed,
    report: &mut SyncReport,
) -> std::result::Result<(), String> {
    let s = |x: &dyn std::fmt::Display| x.to_string();
    // Any epoch of the verified history: the chains tie each entry to the
    // checkpoint that authorised it (signed by its epoch's key).
    let admin = profile.history_signers();
    match store {
        st::ACCESS => {
            let list = AccessList::verify(&env, profile).map_err(|x| s(&x))?;
            if let Some(prev) = access.as_ref() {
                prev.check_successor(&list, AccessList::by_root(&env, profile))
                    .map_err(|x| s(&x))?;
            }
            *access = Some(list);
            a.access = Some(env);
        }
        st::DEVICE => {
            let cat: CatalogedDevice = env
                .verify_object("catalog entry", oct::CATALOGED_DEVICE, &admin)
                .map_err(|x| s(&x))?;
            let conn =
                ConnectionDevice::verify(&cat.connection_device, profile).map_err(|x| s(&x))?;
            // Verified once, here: views of the state do not check it again.
            let dp = ProfileDevice::verify(&cat.profile_device).map_err(|x| s(&x))?;
            if conn.device_udf != cat.device_udf || dp.udf() != cat.device_udf {
                return Err(format!(
                    "catalog entry {} names another device's connection or profile",
                    cat.local_name
                ));
            }
            if !a.devices.contains_key(&cat.device_udf) {
                report.new_devices.push(cat.local_name.clone());
            }
            // A rotated key stays revocable: remember the one it replaces.
            if let Some(old) = a.devices.insert(cat.device_udf.clone(), Arc::new(env)) {
                let prev: CatalogedDevice =
                    old.unverified_object("catalog entry").map_err(|x| s(&x))?;
                let prev_conn: ConnectionDevice = prev
                    .connection_device
                    .unverified_object("connection")
                    .map_err(|x| s(&x))?;
                if prev_conn.ssh.key != conn.ssh.key {
                    a.superseded_ssh.push(prev_conn.ssh);
                }
            }
        }
        // One uid lives in one of the two: the view merges them.
        st::APPLICATION | st::PUBLISHED => {
            let app: mesh_core::objects::CatalogedApplication = env
                .verify_object("application entry", oct::CATALOGED_APPLICATION, &admin)
                .map_err(|x| s(&x))?;
            a.applications.insert(app.uid, Arc::new(env));
        }
        st::LOCAL => {
            env.verify(&env.content_type, &admin).map_err(|x| s(&x))?;
            match env.content_type.as_str() {
                p::ct::RESPOND_CONNECTION => {
                    let rc: RespondConnection =
                        env.unverified_object("response").map_err(|x| s(&x))?;
                    a.answered.insert(rc.request_id);
                    if let Some(pid) = rc.pin_id {
                        a.pins_used.insert(mesh_core::pin::canonical_id(&pid));
                    }
                }
                p::ct::MESSAGE_PIN => a.pins.push(env),
                other => return Err(format!("unknown record type {other}")),
            }
        }
        other => return Err(format!("unknown store {other}")),
    }
    Ok(())
}

/// If the portal says this device is revoked, check its proof; if it
/// holds, wipe the secrets and remember the revocation.
pub(crate) fn handle_revoked(
    store: &mut Store,
    host: &Host,
    a: &mut AccountState,
    err: ClientError,
) -> AccountError {
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
    let Ok(dev_udf) = device_udf(store) else {
        return err.into();
    };
    // A proof stands alone: only the current epoch's key (or the root)
    // counts, not a revoked administrator's older one.
    let proves = |a: &AccountState| {
        a.profile()
            .ok()
            .and_then(|p| AccessList::verify_current(proof, &p).ok())
            .and_then(|l| l.device(&dev_udf).map(|d| d.state == DeviceState::Revoked))
            .unwrap_or(false)
    };
    // With a witness, a proof counts only under the history the witness
    // signed: a portal restored from a backup, where a revoked
    // administrator's key is still current, proves nothing.
    let witnessed = a.profile().is_ok_and(|p| p.witness.is_some());
    let mut revoked = !witnessed && proves(a);
    if !revoked {
        // Perhaps signed in an epoch this device has not seen (it was
        // offline when an administrator was revoked): the public
        // checkpoints, verified from where it stands, tell.
        let mut later = a.clone();
        let read = Client::new(&a.portal)
            .map_err(AccountError::from)
            .and_then(|c| read_checkpoints(&c, &mut later))
            .and_then(|_| later.profile())
            .and_then(|p| {
                crate::witness::require(&p, later.history.serial(), &later.history.digest)
            });
        match read {
            Ok(()) => revoked = proves(&later),
            Err(e) if witnessed => {
                return AccountError::Untrusted(format!(
                    "the portal says this device is revoked but cannot prove it: {e}"
                ))
            }
            Err(_) => {}
        }
    }
    if !revoked {
        return AccountError::Untrusted(
            "the portal says this device is revoked but cannot prove it".into(),
        );
    }
    wipe(store, host, a, proof)
}

fn wipe(store: &mut Store, host: &Host, a: &mut AccountState, proof: &Signed) -> AccountError {
    // The channels first (GnuPG homes, NSS databases): they need their
    // local records, not the secrets.
    let removed = crate::host::wipe_channels(store, host);
    if let Err(e) = store.wipe_secrets() {
        return e.into();
    }
    a.membership = Membership::Revoked;
    a.access = Some(proof.clone());
    a.roles.clear();
    a.wiped = removed;
    if let Err(e) = save_account(store, a) {
        return e;
    }
    AccountError::Revoked(a.address.clone())
}

pub(crate) fn pull(
    store: &mut Store,
    host: &Host,
    report: &mut SyncReport,
) -> Result<AccountState> {
    let a = account(store)?;
    pull_from(store, host, report, a)
}

/// [`pull`] from the state the caller just read (`a` is the store's).
pub(crate) fn pull_from(
    store: &mut Store,
    host: &Host,
    report: &mut SyncReport,
    a: AccountState,
) -> Result<AccountState> {
    match pull_once(store, host, report, a) {
        // Our key is not the one the access list names: an administrator
        // may have rotated this device's keys. Adopt the new activation (if
        // there is one, signed by the administrators) and try again.
        Err(AccountError::Client(e)) if e.code() == Some(code::NOT_AUTHENTICATED) => {
            if adopt_rotation(store)? {
                report.rotated = true;
                let a = account(store)?;
                pull_once(store, host, report, a)
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
pub(crate) fn adopt_rotation(store: &mut Store) -> Result<bool> {
    let mut a = account(store)?;
    let me = device_udf(store)?;
    let client = Client::new(&a.portal)?;
    // The rotation may be signed in an administrator epoch this device has
    // not seen (an administrator revoked, a recovery, while it was away):
    // the public checkpoints, verified from where it stands (and, with a
    // witness, confirmed), give the current key.
    let mut later = a.clone();
    read_checkpoints(&client, &mut later)?;
    let profile = later.profile()?;
    crate::witness::require(&profile, later.history.serial(), &later.history.digest)?;
    let latest = latest_of_mine(&client, &a.profile_udf, &me, &profile)?;
    let Some((env, cat)) = latest else {
        return Ok(false);
    };
    let conn = ConnectionDevice::verify(&cat.connection_device, &profile)
        .map_err(|e| AccountError::Untrusted(e.to_string()))?;
    let current = store.secrets()?.activation_epoch;
    if conn.authentication.epoch <= current {
        return Ok(false);
    }
    // A rotation read outside the history counts only when the current
    // epoch's key signs it (a revoked administrator's older key does not).
    env.verify(
        oct::CATALOGED_DEVICE,
        &[profile.administrator_signature.key],
    )
    .map_err(|x| AccountError::Untrusted(format!("the rotated catalog entry: {x}")))?;
    let base = device::base_keys(store)?;
    let (_, act) = complete_activation(&profile, &base, &cat.activation_account, &conn)
        .map_err(|e| AccountError::Untrusted(format!("rotated activation: {e}")))?;
    let mut secrets = store.secrets()?;
    secrets.activation_seed = Some(act.activation_key.clone());
    secrets.activation_epoch = act.epoch;
    // A change of roles is a rotation: an added administrator role brings
    // the online seeds; without the role, seeds held before are dropped.
    secrets.online_seeds = match &act.online_seeds {
        Some(seeds) => Some(crate::state::checked_seeds(&a.profile_udf, seeds)?),
        None if conn.roles.contains(&Role::Admin) => secrets.online_seeds.take(),
        None => None,
    };
    store.save_secrets(&secrets)?;
    a.connection = Some(cat.connection_device.clone());
    a.roles = conn.roles.clone();
    a.devices.insert(me, Arc::new(env));
    save_account(store, &a)?;
    Ok(true)
}

/// Where a read of one store stands, and this device's newest catalog
/// entry in it.
type Mine = (u64, Option<(Signed, CatalogedDevice)>);

/// This device's newest catalog entry in the public Device store, signed
/// by a key of `profile`'s history (bounded: [`crate::pager`]).
fn latest_of_mine(
    client: &Client,
    profile_udf: &str,
    me: &str,
    profile: &ProfileAccount,
) -> Result<Option<(Signed, CatalogedDevice)>> {
    let mut mine: Mine = (0, None);
    let fetch = |_: &Mine, select: &[StoreIndex]| -> Result<p::DownloadResponse> {
        Ok(client.post(
            "Public",
            &p::PublicRequest {
                account_address: None,
                profile_udf: Some(profile_udf.to_string()),
                select: select.to_vec(),
            },
        )?)
    };
    let apply = |(index, latest): &mut Mine, r: p::DownloadResponse| -> Result<()> {
        for e in r
            .updates
            .iter()
            .filter(|u| u.store == st::DEVICE)
            .flat_map(|u| &u.entries)
        {
            *index = e.index;
            let env: Signed = serde_json::from_value(e.envelope.clone())
                .map_err(|x| AccountError::Untrusted(x.to_string()))?;
            let bad = |x: &dyn std::fmt::Display| {
                AccountError::Untrusted(format!("Device entry {}: {x}", e.index))
            };
            // Other devices' entries are not this device's business here.
            let cat: CatalogedDevice = env
                .unverified_object("catalog entry")
                .map_err(|x| bad(&x))?;
            if !udf::udf_eq(&cat.device_udf, me) {
                continue;
            }
            // Ours, by any epoch's key; only the current one's is adopted.
            env.verify(oct::CATALOGED_DEVICE, &profile.history_signers())
                .map_err(|x| bad(&x))?;
            *latest = Some((env, cat));
        }
        Ok(())
    };
    let position = |m: &Mine| {
        vec![StoreIndex {
            store: st::DEVICE.into(),
            index: m.0,
        }]
    };
    Pager::new(client.url(), "the public read of a rotation")
        .read(&mut mine, position, fetch, apply)?;
    Ok(mine.1)
}

fn pull_once(
    store: &mut Store,
    host: &Host,
    report: &mut SyncReport,
    mut a: AccountState,
) -> Result<AccountState> {
    let client = Client::new(&a.portal)?;
    let keys = device_keys(store)?;
    let dev_udf = device_udf(store)?;
    let admin = a.roles.contains(&Role::Admin);
    let mut next = a.clone();
    let read: Vec<&str> = st::ALL
        .into_iter()
        .filter(|s| admin || !matches!(*s, st::INBOUND | st::LOCAL))
        .collect();
    // Access lists as changes; a portal from before them refuses the
    // member as unknown (400), and is asked again for whole lists.
    let mut changes = true;
    // A witness ahead of what was read (a transaction landed meanwhile)
    // is given one more download; then the portal is behind.
    for attempt in 0..2 {
        download(
            &client,
            &a,
            &mut next,
            &read,
            &mut changes,
            (&keys, &dev_udf),
            report,
        )
        .map_err(|e| match e {
            Downloaded::Refused(e) => handle_revoked(store, host, &mut a, e),
            Downloaded::Failed(e) => e,
        })?;
        next.history.settle(read.iter().copied())?;
        let profile = next.profile()?;
        let (serial, digest) = (next.history.serial(), next.history.digest.clone());
        match crate::witness::confirm(&profile, serial, &digest)? {
            crate::witness::Verdict::Behind(_) if attempt == 0 => {}
            crate::witness::Verdict::Behind(w) => return Err(crate::witness::behind(serial, w)),
            _ => break,
        }
    }
    next.check_fresh(crate::client::now())?;
    standing_and_save(store, host, a, next, &dev_udf)
}

/// Why a download stopped: the portal refused the request (perhaps with
/// a revocation proof), or what it served was refused.
enum Downloaded {
    Refused(ClientError),
    Failed(AccountError),
}

impl From<AccountError> for Downloaded {
    fn from(e: AccountError) -> Downloaded {
        Downloaded::Failed(e)
    }
}

impl From<PagerError> for Downloaded {
    fn from(e: PagerError) -> Downloaded {
        Downloaded::Failed(e.into())
    }
}

/// Download and verify every page of what is new into `next` (bounded:
/// [`crate::pager`]).
fn download(
    client: &Client,
    a: &AccountState,
    next: &mut AccountState,
    read: &[&str],
    changes: &mut bool,
    (keys, dev_udf): (&mesh_core::objects::DeviceKeys, &str),
    report: &mut SyncReport,
) -> std::result::Result<(), Downloaded> {
    let position = |n: &AccountState| {
        read.iter()
            .map(|s| StoreIndex {
                store: s.to_string(),
                index: n.index(s),
            })
            .collect()
    };
    let fetch = |_: &AccountState, select: &[StoreIndex]| loop {
        let r: std::result::Result<p::DownloadResponse, ClientError> = client.signed(
            tx::DOWNLOAD,
            &a.profile_udf,
            dev_udf,
            serde_json::to_value(p::DownloadRequest {
                select: select.to_vec(),
                changes: *changes,
            })
            .unwrap_or_default(),
            &keys.authenticate,
        );
        break match r {
            Ok(v) => Ok(v),
            Err(e) if *changes && e.code() == Some(code::BAD_REQUEST) => {
                *changes = false;
                continue;
            }
            Err(e) => Err(Downloaded::Refused(e)),
        };
    };
    let apply = |next: &mut AccountState, resp: p::DownloadResponse| {
        let profile = ProfileAccount::verify(&resp.profile, &a.profile_udf)
            .map_err(|e| AccountError::Untrusted(format!("account profile: {e}")))?;
        apply_entries(next, &profile, &resp.updates, report)?;
        next.profile = resp.profile;
        Ok(())
    };
    let what = if a.roles.contains(&Role::Admin) {
        "an administrator's sync"
    } else {
        "a device sync"
    };
    Pager::new(client.url(), what).read(next, position, fetch, apply)
}

/// This device's standing from the verified list (a revocation wipes),
/// then the state saved when anything changed.
fn standing_and_save(
    store: &mut Store,
    host: &Host,
    a: AccountState,
    mut next: AccountState,
    dev_udf: &str,
) -> Result<AccountState> {
    // Our own standing, from the verified list (when it changed).
    if let Some(list) = (next.access != a.access)
        .then(|| next.access_list())
        .transpose()?
        .flatten()
    {
        if let Some(me) = list.device(dev_udf) {
            if me.state == DeviceState::Revoked {
                let proof = next.access.clone().unwrap_or_else(|| a.profile.clone());
                return Err(wipe(store, host, &mut next, &proof));
            }
            next.roles = me.roles.clone();
        }
    }
    // Nothing new (the usual answer) writes nothing: the state of a large
    // account is megabytes.
    if next != a {
        save_account(store, &next)?;
    }
    Ok(next)
}

/// Read the account's checkpoints (public) into `a`'s history, from where
/// it stands: a joining device, or one offline across an administrator
/// epoch, learns the current epoch's key from the chain it can verify.
pub(crate) fn read_checkpoints(client: &Client, a: &mut AccountState) -> Result<()> {
    let who = p::PublicRequest {
        account_address: None,
        profile_udf: Some(a.profile_udf.clone()),
        select: Vec::new(),
    };
    let pinned = a.profile_udf.clone();
    public_checkpoints(client, &who, Some(&pinned), &mut a.history, |_, _, _, _| {
        Ok(())
    })?;
    a.indices
        .insert(p::store::CHECKPOINT.into(), a.history.serial());
    Ok(())
}

/// The account's public checkpoints past `history`'s, page by page, each
/// verified into it (from the served profile, checked against `pinned`, or
/// self-signed when there is none) and then handed to `each` with the
/// checkpoint before it, its envelope and that profile. `who` names the account; its
/// selection is replaced. Bounded: [`crate::pager`].
pub fn public_checkpoints(
    client: &Client,
    who: &p::PublicRequest,
    pinned: Option<&str>,
    history: &mut mesh_core::history::History,
    mut each: impl FnMut(
        Option<&mesh_core::history::Checkpoint>,
        &mesh_core::history::History,
        &Signed,
        &ProfileAccount,
    ) -> Result<()>,
) -> Result<()> {
    let position = |h: &mesh_core::history::History| {
        vec![StoreIndex {
            store: st::CHECKPOINT.into(),
            index: h.serial(),
        }]
    };
    let fetch = |_: &_, select: &[StoreIndex]| -> Result<p::DownloadResponse> {
        let req = p::PublicRequest {
            select: select.to_vec(),
            ..who.clone()
        };
        Ok(client.post("Public", &req)?)
    };
    let apply = |history: &mut mesh_core::history::History, r: p::DownloadResponse| {
        let base = match pinned {
            Some(u) => ProfileAccount::verify(&r.profile, u),
            None => ProfileAccount::verify_self_signed(&r.profile),
        }
        .map_err(|e| AccountError::Untrusted(format!("account profile: {e}")))?;
        for u in &r.updates {
            if u.store != st::CHECKPOINT {
                return Err(AccountError::Untrusted(format!(
                    "the portal answered with the {} store, which was not asked for",
                    u.store
                )));
            }
            for e in &u.entries {
                let env: Signed = serde_json::from_value(e.envelope.clone())
                    .map_err(|x| AccountError::Untrusted(format!("checkpoint {}: {x}", e.index)))?;
                let before = history.checkpoint.clone();
                history.checkpoint(e.index, &env, &base)?;
                each(before.as_ref(), history, &env, &base)?;
            }
        }
        Ok(())
    };
    Pager::new(client.url(), "the public read of the checkpoints")
        .read(history, position, fetch, apply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::changes::{AccessDelta, Edit};

    /// A change needs the list it changes: a state that holds none refuses
    /// it, and a whole envelope still parses.
    #[test]
    fn a_change_without_the_list_it_changes_is_refused() {
        let k = mesh_core::objects::RootKeys::generate();
        let any = Signed::sign(p::ct::ACCESS_LIST, b"{}".to_vec(), &[&k.authenticate]);
        let a = AccountState::empty(
            "alice@example.com".into(),
            "http://127.0.0.1:1".into(),
            "MB".into(),
            any.clone(),
            Membership::Member,
        );
        let delta = p::Entry {
            index: 1,
            envelope: serde_json::Value::Null,
            delta: Some(AccessDelta {
                edits: vec![Edit::default()],
                signatures: any.signatures.clone(),
            }),
        };
        let e = envelope_of(&a, &delta).expect_err("no base");
        assert!(e.contains("does not hold"), "{e}");
        let whole = p::Entry {
            index: 1,
            envelope: serde_json::to_value(&any).expect("json"),
            delta: None,
        };
        assert_eq!(envelope_of(&a, &whole).expect("whole"), any);
    }
}
