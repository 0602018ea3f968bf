//! Pull: download what is new, verify it up to the pinned profile, keep
//! all of it or nothing; adopt rotated keys; wipe on a proven revocation.

use std::sync::Arc;

use mesh_core::envelope::Signed;
use mesh_core::objects::{
    complete_activation, ct as oct, CatalogedDevice, ConnectionDevice, ProfileAccount, Role,
};
use mesh_core::portal::{self as p, code, store as st, tx, AccessList, DeviceState, StoreIndex};
use mesh_core::udf;
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
        None if conn.roles.contains(&Role::ADMIN) => secrets.online_seeds.take(),
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
        Ok(client.public(profile_udf, select.to_vec())?)
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
    let admin = a.roles.contains(&Role::ADMIN);
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
        crate::count::add(crate::count::What::Download);
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
        let profile = next.verified.verify(&resp.profile, &a.profile_udf)?;
        crate::replica::apply_entries(next, &profile, &resp.updates, report)?;
        next.profile = resp.profile;
        Ok(())
    };
    let what = if a.roles.contains(&Role::ADMIN) {
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
