//! Administrator events: one portal transaction each, carrying the
//! life-cycle entries and every channel's entries for the state after the
//! event (PROTOCOL.md §14.2).

use mesh_core::authority::AdminEpoch;
use mesh_core::envelope::Signed;
use mesh_core::held::{self, Hold};
use mesh_core::objects::{
    ct as oct, AccountKeys, CatalogedApplication, CatalogedDevice, Role, RootKeys,
};
use mesh_core::portal::{self as p, code, store as st, tx, AccessList, DeviceState, StoreUpdate};
use mesh_plugins::{AccountView, AppEntry, Claims, DeviceEntry, Event};

use crate::client::{Client, ClientError};
use crate::error::{AccountError, Result};
use crate::host::Host;
use crate::pull::{handle_revoked, pull, pull_from, SyncReport};
use crate::session::Session;
use crate::state::{admin_keys, device_keys, device_udf, AccountState};
use crate::store::Store;

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
    /// The keys of the administrator epoch this event starts (revoking an
    /// administrator, a recovery): the event's entries are signed with
    /// them, its checkpoint with the keys before (or the root), and their
    /// seeds are wrapped to the administrators of the next access list.
    pub next_keys: Option<AccountKeys>,
    /// Write a checkpoint even when nothing else changes: the
    /// administrators' heartbeat (PROTOCOL.md §10.7).
    pub heartbeat: bool,
}

/// The start of `keys`' epoch, its seeds wrapped to every active
/// administrator of `list` (their catalog entries in `view`) and to escrow.
fn epoch_entry(
    keys: &AccountKeys,
    claims: Claims,
    list: &AccessList,
    view: &AccountView,
) -> Result<AdminEpoch> {
    let mut holders = vec![view.profile.escrow_encryption.key];
    for d in list
        .devices
        .iter()
        .filter(|d| d.state == DeviceState::Active && d.roles.contains(&Role::ADMIN))
    {
        let e = view.devices.get(&d.device_udf).ok_or_else(|| {
            AccountError::Untrusted(format!("administrator {} has no catalog entry", d.name))
        })?;
        holders.push(e.connection.encryption.key);
    }
    Ok(keys.epoch_entry(claims, &holders)?)
}

fn app_envelope(e: &AppEntry, admin: &AccountKeys) -> Signed {
    let entry = CatalogedApplication {
        uid: e.uid.clone(),
        data: e.data.clone(),
        serve: None,
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
    root: Option<&RootKeys>,
    mut d: Draft,
    holds: Option<&mut Vec<Hold>>,
) -> Result<Vec<StoreUpdate>> {
    let next_keys = d.next_keys.take();
    let heartbeat = d.heartbeat;
    let signer = next_keys.as_ref().unwrap_or(admin);
    let mut next = view.clone();
    let list = d
        .access
        .as_ref()
        .map(|e| e.unverified_object::<AccessList>("access list"))
        .transpose()?;
    // A new epoch: the projection sees its keys (new CAs) before the
    // channels compute their entries.
    let mut claims = Claims::new();
    if let Some(k) = &next_keys {
        claims = host.claims(k)?;
        let e = k.epoch_entry(claims.clone(), &[view.profile.escrow_encryption.key])?;
        next.profile = view.profile.with_epochs([&e]);
    }
    for env in &d.devices {
        let cat: CatalogedDevice = env.unverified_object("catalog entry")?;
        next.put_device(DeviceEntry::from_catalog(cat, &next.profile)?);
    }
    let epoch = match (&next_keys, &list) {
        (Some(k), Some(l)) => Some(epoch_entry(k, claims, l, &next)?),
        (Some(_), None) => {
            return Err(AccountError::Untrusted(
                "a new administrator epoch needs the next access list".into(),
            ))
        }
        _ => None,
    };
    if let Some(l) = list {
        next.set_access(l);
    }
    let mut apps = d.apps;
    for e in &apps {
        next.put_app(e.uid.clone(), e.data.clone());
    }
    if let Some(event) = &d.event {
        for pl in host.plugins() {
            for e in pl.entries(event, &next, signer)? {
                next.put_app(e.uid.clone(), e.data.clone());
                apps.push(e);
            }
        }
        if let Some(holds) = holds {
            held_batches(host, event, (view, &mut next), signer, &mut apps, holds)?;
        }
    }
    let mut updates = Vec::new();
    if let Some(env) = d.access {
        updates.push(a.append(st::ACCESS, vec![env]));
    }
    if !d.devices.is_empty() {
        updates.push(a.append(st::DEVICE, d.devices));
    }
    for (store, public) in [(st::APPLICATION, false), (st::PUBLISHED, true)] {
        let envs: Vec<Signed> = apps
            .iter()
            .filter(|e| e.public == public)
            .map(|e| app_envelope(e, signer))
            .collect();
        if !envs.is_empty() {
            updates.push(a.append(store, envs));
        }
    }
    if !d.local.is_empty() {
        updates.push(a.append(st::LOCAL, d.local));
    }
    // The next checkpoint signs where this transaction leaves every store
    // (alone, a heartbeat: the stores are where they were, the date new).
    if !updates.is_empty() || heartbeat {
        let cp = a
            .history
            .next(&a.profile_udf, &updates, crate::client::now(), epoch);
        // The authority for this transaction: the current epoch's key (it
        // starts the next one), or the root in a recovery.
        let key = root.map_or(&admin.admin_sign, |r| &r.profile);
        let env = Signed::sign_object(p::ct::CHECKPOINT, &cp, key);
        updates.push(a.append(st::CHECKPOINT, vec![env]));
    }
    Ok(updates)
}

/// The channels' held entries for the state after `event` (only in an
/// administrator's own event, which sends them before its transaction):
/// the Hold requests go to `holds`, what records them to `apps`. Only for
/// devices the portal's access list has before the event (a device this
/// event adds gets its entries at the next pass).
fn held_batches(
    host: &Host,
    event: &Event,
    (before, next): (&AccountView, &mut AccountView),
    signer: &AccountKeys,
    apps: &mut Vec<AppEntry>,
    holds: &mut Vec<Hold>,
) -> Result<()> {
    for pl in host.plugins() {
        let batches = pl.held(event, next, signer)?;
        for b in batches
            .into_iter()
            .filter(|b| before.entry(&b.device).is_some())
        {
            for e in b.record {
                next.put_app(e.uid.clone(), e.data.clone());
                apps.push(e);
            }
            // A Hold carries at most MAX_ENTRIES.
            for chunk in b.entries.chunks(held::MAX_ENTRIES) {
                holds.push(Hold {
                    device: b.device.clone(),
                    entries: chunk.to_vec(),
                });
            }
        }
    }
    Ok(())
}

/// Send the held entries of an event (before its transaction, which
/// records them as sent: a failure sends them again, never skips them).
fn send_holds(
    client: &Client,
    (dev_udf, auth): (&str, &mesh_core::keys::SigningKey),
    profile_udf: &str,
    holds: Vec<Hold>,
) -> std::result::Result<(), ClientError> {
    for h in holds {
        client.signed::<held::HoldAck>(
            held::TX_HOLD,
            profile_udf,
            dev_udf,
            serde_json::to_value(h).unwrap_or_default(),
            auth,
        )?;
    }
    Ok(())
}

/// Run an administrator's event as one portal transaction: build it from
/// the freshly synced state, add every channel's entries, transact; on
/// Conflict, sync again and rebuild. No update of another administrator is
/// lost: the rebuild starts from what they wrote.
pub(crate) fn admin_event<T>(
    store: &mut Store,
    host: &Host,
    build: impl FnMut(&AccountState, &AccountView, &AccountKeys) -> Result<(Draft, T)>,
) -> Result<T> {
    let a = pull(store, host, &mut SyncReport::default())?;
    admin_event_on(store, host, Session::new(a), build).map(|(out, _)| out)
}

/// [`admin_event`] on `s`, the state a pull just verified and kept (not
/// read again), and its view (built once); returns the session after the
/// event: the state the pull after the transaction verified, or `s` itself,
/// view and all, when nothing was written.
pub(crate) fn admin_event_on<T>(
    store: &mut Store,
    host: &Host,
    mut s: Session,
    mut build: impl FnMut(&AccountState, &AccountView, &AccountKeys) -> Result<(Draft, T)>,
) -> Result<(T, Session)> {
    for attempt in 0..8 {
        if attempt > 0 {
            let again = pull_from(store, host, &mut SyncReport::default(), s.into_state())?;
            s = Session::new(again);
        }
        let admin = admin_keys(store, s.state())?;
        let (a, view) = s.view(host)?;
        let (draft, out) = build(a, view, &admin)?;
        let access = draft.access.clone();
        let mut holds = Vec::new();
        let updates = event_updates(host, a, view, &admin, None, draft, Some(&mut holds))?;
        if updates.is_empty() {
            return Ok((out, s));
        }
        let client = Client::new(&s.state().portal)?;
        let me = (device_udf(store)?, device_keys(store)?.authenticate);
        if let Err(e) = send_holds(&client, (&me.0, &me.1), &s.state().profile_udf, holds) {
            let mut a = s.into_state();
            return Err(handle_revoked(store, host, &mut a, e));
        }
        let mut a = s.into_state();
        match transact(&client, (&me.0, &me.1), &a, updates) {
            Ok(_) => {
                let after = pull_from(store, host, &mut SyncReport::default(), a)
                    .map_err(crate::witness::after_commit)?;
                return Ok((out, Session::new(after)));
            }
            // Pulled again at the top, and built again on what it brings.
            Err(e) if e.code() == Some(code::CONFLICT) => s = Session::new(a),
            // The request may have been committed and only the answer lost:
            // what the portal holds now says which.
            Err(e @ ClientError::Unreachable { .. }) => {
                return match landed(store, host, a, access.as_ref()) {
                    Some((true, after)) => Ok((out, Session::new(after))),
                    Some((false, _)) => Err(e.into()),
                    None => Err(AccountError::OutcomeUnknown(e.to_string())),
                };
            }
            Err(e) => return Err(handle_revoked(store, host, &mut a, e)),
        }
    }
    Err(AccountError::Busy)
}

/// Send an event's updates as one signed Transact. The access list goes as
/// its change from the one the portal holds; a portal from before changes
/// refuses the member: then it goes whole.
fn transact(
    client: &Client,
    (dev_udf, auth): (&str, &mesh_core::keys::SigningKey),
    a: &AccountState,
    updates: Vec<StoreUpdate>,
) -> std::result::Result<p::TransactResponse, ClientError> {
    let send = |updates: Vec<StoreUpdate>| {
        client.signed::<p::TransactResponse>(
            tx::TRANSACT,
            &a.profile_udf,
            dev_udf,
            serde_json::to_value(p::TransactRequest { updates }).unwrap_or_default(),
            auth,
        )
    };
    match as_change(a, &updates) {
        Some(changed) => match send(changed) {
            Err(e) if e.code() == Some(code::BAD_REQUEST) => send(updates),
            r => r,
        },
        None => send(updates),
    }
}

/// `updates` with the next access list as its change from the one `a`
/// holds (PROTOCOL.md §10.3), when it follows that one and the change is
/// smaller; `None` to send them as they are. At 1,000 devices a revoke
/// uploads a few hundred bytes instead of the 510 kB list.
fn as_change(a: &AccountState, updates: &[StoreUpdate]) -> Option<Vec<StoreUpdate>> {
    let base = a.access.as_ref()?;
    let at = updates
        .iter()
        .position(|u| u.store == st::ACCESS && u.expected == a.index(st::ACCESS))?;
    let next = updates[at].envelopes.first()?;
    let delta = mesh_core::changes::between(base, next, Some(diff_deadline()))?;
    let mut out = updates.to_vec();
    out[at].envelopes.remove(0);
    out[at].delta = Some(delta);
    Some(out)
}

/// How long the client's diff may take (past it, the list goes whole).
fn diff_deadline() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_millis(200)
}

/// After a transport error: whether the event's access list is now the
/// account's, and the state that says so (`None`: the portal cannot be
/// asked, or the event had no access list to look for).
fn landed(
    store: &mut Store,
    host: &Host,
    a: AccountState,
    access: Option<&Signed>,
) -> Option<(bool, AccountState)> {
    let access = access?;
    let a = pull_from(store, host, &mut SyncReport::default(), a).ok()?;
    let now = a
        .access
        .as_ref()
        .is_some_and(|now| now.payload == access.payload);
    Some((now, a))
}
