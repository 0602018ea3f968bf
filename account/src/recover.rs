//! `mesh account recover`: with the recovery shares, on a new device, take
//! the account back (docs/DESIGN.md, "A stolen administrator").
//!
//! The shares rebuild the root. The root reads every store (the portal's
//! recovery read), then makes one transaction the root signs: the next
//! access list (this device an administrator; with `since`, every device as
//! it stood before the theft: only the root may lift a revocation, to undo
//! what a thief did; the devices the user names revoked), the channels'
//! policies as they stood then, a new administrator epoch (fresh online
//! keys, new CAs) and every channel's entries for it. Whatever a thief wrote
//! with the old epoch's keys is superseded, and those keys vouch for
//! nothing any more.

use std::collections::BTreeMap;

use mesh_core::authority::{OnlineSeeds, CT_ONLINE_SEEDS};
use mesh_core::derive::Seed;
use mesh_core::envelope::Signed;
use mesh_core::history::Checkpoint;
use mesh_core::objects::{AccountKeys, CatalogedApplication, ProfileAccount, RootKeys};
use mesh_core::portal::{self as p, store as st, tx, AccessList, DeviceState, StoreIndex};
use mesh_core::{shamir, udf};
use mesh_plugins::Event;

use crate::client::Client;
use crate::error::{AccountError, Result};
use crate::event::Draft;
use crate::host::Host;
use crate::join::connect_self;
use crate::pager::Pager;
use crate::pull::{pull, SyncReport};
use crate::state::*;
use crate::store::Store;

/// What a recovery changes in the access list besides adding this device.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Devices to revoke (names or UDFs): the stolen one, a thief's.
    pub revoke: Vec<String>,
    /// Turn the account back to how it stood at this point (before the
    /// theft): devices revoked since are active again, devices added since
    /// are revoked, the channels' policies (login names…) are restored.
    pub since: Option<Since>,
    /// Read and verify everything, resolve `since`, and stop before
    /// anything is written or kept (`mesh account recover --dry-run`).
    pub dry_run: bool,
}

/// What a recovery with `since` turns back, shown before it commits: the
/// checkpoint the point resolves to and every checkpoint after it, by
/// serial and date (a thief's dates are bound only to the chain's order
/// and, at an honest portal, to its clock: PROTOCOL.md §10.4).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Undo {
    /// The checkpoint the account is turned back to.
    pub serial: u64,
    /// Its date (Unix seconds).
    pub issued: u64,
    /// The checkpoints after it: serial and date.
    pub undone: Vec<(u64, u64)>,
    /// Devices added since (active now): revoked by the recovery.
    pub revoked: Vec<String>,
    /// Devices revoked since (active then): active again.
    pub restored: Vec<String>,
    /// The checkpoints after it, described.
    pub lines: Vec<crate::chronicle::HistoryLine>,
}

/// What `recover` did, or (dry run) would do.
#[derive(Debug)]
pub struct Recovered {
    /// The account as this device now holds it (`None` on a dry run).
    pub account: Option<AccountState>,
    /// What `since` turned back.
    pub undo: Option<Undo>,
}

/// A point in the account's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The last checkpoint issued at or before this time (Unix seconds).
    Time(u64),
    /// This checkpoint serial.
    Serial(u64),
}

/// The account as it stood at a checkpoint: its access list and the
/// channels' policy entries.
struct Before {
    access: AccessList,
    policies: Vec<mesh_plugins::AppEntry>,
    undo: Undo,
}

/// `mesh account recover`: rebuild the root from the shares on a fresh
/// home, make this device an administrator of a new epoch, apply the
/// overrides; every other device stays as it was.
pub fn recover(
    store: &mut Store,
    host: &Host,
    address: &str,
    portal: &str,
    shares: &[String],
    name: Option<&str>,
    overrides: &Overrides,
) -> Result<Recovered> {
    if let Ok(a) = account(store) {
        return Err(AccountError::HasAccount(a.address));
    }
    let root = root_from_shares(shares)?;
    let client = Client::new(portal)?;
    let (profile_env, _) = public_tail(&client, address, st::ACCESS)?;
    let published = ProfileAccount::verify_self_signed(&profile_env)
        .map_err(|e| AccountError::Untrusted(e.to_string()))?;
    if !udf::udf_eq(&published.udf(), &root.profile_udf()) {
        return Err(AccountError::usage(
            format!(
                "the shares give account {}, but {address} is account {}",
                root.profile_udf(),
                published.udf()
            ),
            "use the recovery shares of this address, or the address they belong to",
        ));
    }
    let mut a = AccountState::empty(
        published.account_address.clone(),
        client.url().to_string(),
        root.profile_udf(),
        profile_env,
        Membership::Member,
    );
    // Everything the account holds, read with the root (the shares are
    // the proof; the request names the account as its reader, this device
    // does not exist yet), verified as any sync verifies it.
    let raw = recovery_download(&client, &root, &root.profile_udf(), &mut a)?;
    // Checked before anything is kept: a point the history does not have
    // stops the recovery here.
    let before = overrides
        .since
        .map(|since| before(&raw, since, host, &a))
        .transpose()?;
    let undo = before.as_ref().map(|b| b.undo.clone());
    if overrides.dry_run {
        return Ok(Recovered {
            account: None,
            undo,
        });
    }
    ensure_device(store, name, &host.slots())?;
    let dev_udf = device_udf(store)?;
    let current = reachable_keys(&root, &a)?;
    let profile = a.profile()?;
    let next = current.next_epoch_at(profile.epoch() + 1);
    let (draft, keys) = override_draft(store, host, &root, &a, &next, overrides, before)?;
    let view = host.view(&a)?;
    let t = p::TransactRequest {
        updates: crate::event::event_updates(host, &a, &view, &current, Some(&root), draft, None)?,
    };
    let _: p::TransactResponse = client.signed(
        tx::TRANSACT,
        &root.profile_udf(),
        &dev_udf,
        serde_json::to_value(&t).unwrap_or_default(),
        &keys.0,
    )?;
    a.roles = host.roles();
    a.connection = Some(keys.1);
    save_account(store, &a)?;
    pull(store, host, &mut SyncReport::default())?;
    Ok(Recovered {
        account: Some(account(store)?),
        undo,
    })
}

/// This device connected in the new epoch, and the access list the root
/// signs: the overrides applied. Returns the draft, this device's
/// authentication key and its connection.
fn override_draft(
    store: &mut Store,
    host: &Host,
    root: &RootKeys,
    a: &AccountState,
    next: &AccountKeys,
    overrides: &Overrides,
    before: Option<Before>,
) -> Result<(Draft, (mesh_core::keys::SigningKey, Signed))> {
    let profile = a.profile()?;
    // The projection's epoch carries the channels' claims, as the record
    // the transaction writes (event_updates) does.
    let start = next.epoch_entry(host.claims(next)?, &[profile.escrow_encryption.key])?;
    let prev = a.access_list()?;
    let me = connect_self(
        store,
        &host.roles(),
        next,
        &profile.with_epochs([&start]),
        prev.as_ref(),
        &host.slots(),
    )?;
    let mut list: AccessList = me.access.unverified_object("access list")?;
    let mut apps = Vec::new();
    if let Some(b) = before {
        // Every device as it stood then; one added since is a thief's.
        let mine = device_udf(store)?;
        for e in list
            .devices
            .iter_mut()
            .filter(|e| !udf::udf_eq(&e.device_udf, &mine))
        {
            e.state = b
                .access
                .device(&e.device_udf)
                .map_or(DeviceState::Revoked, |d| d.state);
        }
        // The policies then, where they changed since.
        let now = |uid: &str| {
            a.applications
                .get(uid)
                .and_then(|env| env.unverified_object::<CatalogedApplication>("entry").ok())
                .map(|app| app.data)
        };
        apps = b
            .policies
            .into_iter()
            .filter(|e| now(&e.uid).as_ref() != Some(&e.data))
            .collect();
    }
    for which in &overrides.revoke {
        let d = crate::admin::target(&list, which, false)?;
        let udf_ = d.device_udf.clone();
        for e in list
            .devices
            .iter_mut()
            .filter(|e| udf::udf_eq(&e.device_udf, &udf_))
        {
            e.state = DeviceState::Revoked;
        }
    }
    let draft = Draft {
        access: Some(Signed::sign_object(
            p::ct::ACCESS_LIST,
            &list,
            &root.profile,
        )),
        devices: vec![me.catalog],
        apps,
        event: Some(Event::Recovered),
        next_keys: Some(next.clone_keys()),
        ..Draft::default()
    };
    Ok((draft, (me.keys.authenticate, me.connection)))
}

/// The online keys the root can reach: epoch 0's (derived from it) and
/// every seed the latest epoch wrapped to escrow. A thief that started an
/// epoch without wrapping it to escrow only costs the OpenPGP channel the
/// keys of that epoch; the recovery starts a new one regardless.
fn reachable_keys(root: &RootKeys, a: &AccountState) -> Result<AccountKeys> {
    let mut seeds: BTreeMap<u32, Seed> = BTreeMap::new();
    let mut add = |s: &OnlineSeeds| -> Result<()> {
        for (e, seed) in &s.seeds {
            seeds.insert(*e, Seed::from_udf(seed)?);
        }
        Ok(())
    };
    add(&root.first_epoch().online_seeds())?;
    for e in &a.history.epochs {
        if let Ok(s) = e.seeds.decrypt_object::<OnlineSeeds>(
            "administrator seeds",
            CT_ONLINE_SEEDS,
            &root.escrow,
        ) {
            add(&s)?;
        }
    }
    Ok(AccountKeys::from_seeds(&root.profile_udf(), seeds)?.with_root(root))
}

/// Download every store with a request signed by the root (the portal's
/// recovery read), into `a`, verified entry by entry. Bounded:
/// [`crate::pager`].
fn recovery_download(
    client: &Client,
    root: &RootKeys,
    dev_udf: &str,
    a: &mut AccountState,
) -> Result<Raw> {
    let mut report = SyncReport::default();
    let mut raw = Raw::new();
    let position = |a: &AccountState| {
        st::ALL
            .iter()
            .map(|s| StoreIndex {
                store: s.to_string(),
                index: a.index(s),
            })
            .collect()
    };
    let fetch = |_: &AccountState, select: &[StoreIndex]| -> Result<p::DownloadResponse> {
        Ok(client.signed(
            tx::DOWNLOAD,
            &root.profile_udf(),
            dev_udf,
            serde_json::to_value(p::DownloadRequest {
                select: select.to_vec(),
                changes: false,
            })
            .unwrap_or_default(),
            &root.profile,
        )?)
    };
    let apply = |a: &mut AccountState, resp: p::DownloadResponse| -> Result<()> {
        let base = ProfileAccount::verify(&resp.profile, &root.profile_udf())
            .map_err(|e| AccountError::Untrusted(format!("account profile: {e}")))?;
        crate::replica::apply_entries(a, &base, &resp.updates, &mut report)?;
        for u in &resp.updates {
            raw.entry(u.store.clone())
                .or_default()
                .extend(u.entries.iter().cloned());
        }
        Ok(())
    };
    Pager::new(client.url(), "the recovery's read").read(a, position, fetch, apply)?;
    a.history.settle(st::ALL)?;
    Ok(raw)
}

/// Every entry the recovery read, by store (verified by `replica::apply_entries`).
use crate::chronicle::Raw;

fn parse(e: &p::Entry) -> Option<Signed> {
    serde_json::from_value::<Signed>(e.envelope.clone()).ok()
}

/// The checkpoint `since` names, and the serials and dates of those after
/// it. Dates are non-decreasing along a verified chain, so a time resolves
/// to one point and everything after it is later.
fn resolve(raw: &Raw, since: Since) -> Result<(Checkpoint, Vec<(u64, u64)>)> {
    let all: Vec<Checkpoint> = raw
        .get(st::CHECKPOINT)
        .into_iter()
        .flatten()
        .filter_map(|e| parse(e)?.unverified_object::<Checkpoint>("checkpoint").ok())
        .collect();
    let at = all
        .iter()
        .rev()
        .find(|c| match since {
            Since::Time(t) => c.issued <= t,
            Since::Serial(n) => c.serial <= n,
        })
        .cloned()
        .ok_or_else(|| {
            AccountError::usage(
                "the account has no checkpoint that early",
                "give a time after the account was created, or a checkpoint serial (`@N`)",
            )
        })?;
    let after = all
        .iter()
        .filter(|c| c.serial > at.serial)
        .map(|c| (c.serial, c.issued))
        .collect();
    Ok((at, after))
}

/// Names of the devices whose state differs between `then` and `now`:
/// (active now, not then), (active then, revoked now).
fn state_changes(then: &AccessList, now: Option<&AccessList>) -> (Vec<String>, Vec<String>) {
    let (mut added, mut lifted) = (Vec::new(), Vec::new());
    for d in now.map_or(&[][..], |l| &l.devices[..]) {
        let was = then.device(&d.device_udf).map(|x| x.state);
        match (was, d.state) {
            (Some(DeviceState::Active), DeviceState::Revoked) => lifted.push(d.name.clone()),
            (None | Some(DeviceState::Revoked), DeviceState::Active) => added.push(d.name.clone()),
            _ => {}
        }
    }
    (added, lifted)
}

/// The account as it stood at `since`, from the verified entries.
fn before(raw: &Raw, since: Since, host: &Host, a: &AccountState) -> Result<Before> {
    let (at, after) = resolve(raw, since)?;
    let head = |store_name: &str| at.head(store_name).map_or(0, |h| h.index);
    let access = raw
        .get(st::ACCESS)
        .into_iter()
        .flatten()
        .find(|e| e.index == head(st::ACCESS))
        .and_then(parse)
        .and_then(|env| env.unverified_object::<AccessList>("access list").ok())
        .ok_or_else(|| AccountError::Untrusted("no access list at that checkpoint".into()))?;
    let policy: Vec<&str> = host
        .plugins()
        .iter()
        .flat_map(|pl| pl.policy_uids().iter().copied())
        .collect();
    let mut latest: BTreeMap<String, mesh_plugins::AppEntry> = BTreeMap::new();
    for (store_name, public) in [(st::APPLICATION, false), (st::PUBLISHED, true)] {
        for e in raw.get(store_name).into_iter().flatten() {
            if e.index > head(store_name) {
                continue;
            }
            let Some(app) = parse(e).and_then(|env| {
                env.unverified_object::<CatalogedApplication>("application entry")
                    .ok()
            }) else {
                continue;
            };
            if policy.contains(&app.uid.as_str()) {
                let entry = mesh_plugins::AppEntry {
                    uid: app.uid.clone(),
                    data: app.data,
                    public,
                };
                latest.insert(app.uid, entry);
            }
        }
    }
    let (revoked, restored) = state_changes(&access, a.access_list()?.as_ref());
    let root = a.profile()?.profile_signature.udf();
    let lines = crate::chronicle::lines(host, raw, &root)
        .into_iter()
        .filter(|l| l.serial > at.serial)
        .collect();
    Ok(Before {
        undo: Undo {
            serial: at.serial,
            issued: at.issued,
            undone: after,
            revoked,
            restored,
            lines,
        },
        access,
        policies: latest.into_values().collect(),
    })
}

/// The root the recovery shares rebuild.
fn root_from_shares(shares: &[String]) -> Result<RootKeys> {
    let mut parsed = Vec::new();
    for (i, s) in shares.iter().enumerate() {
        parsed.push(shamir::Share::from_udf(s).map_err(|e| {
            AccountError::usage(
                format!("share {} is not a valid share: {e}", i + 1),
                "copy each share exactly as `mesh account create` wrote it",
            )
        })?);
    }
    let bytes = shamir::recover(&parsed)?;
    let not_a_seed = |_| {
        AccountError::usage(
            "the shares do not give an account's root",
            "these are not recovery shares of one account; check each against what was written",
        )
    };
    // The root's Z-UDF text is the root: cleared when dropped.
    let text = zeroize::Zeroizing::new(udf::presentation_whole(&bytes));
    let seed = Seed::from_udf(&text).map_err(not_a_seed)?;
    RootKeys::from_seed(seed).map_err(not_a_seed)
}

/// The account's profile as its portal publishes it, and the last entry
/// of a public store. Bounded: [`crate::pager`].
fn public_tail(
    client: &Client,
    address: &str,
    store_name: &str,
) -> Result<(Signed, Option<p::Entry>)> {
    let mut tail: (Option<Signed>, Option<p::Entry>) = (None, None);
    let position = |t: &(Option<Signed>, Option<p::Entry>)| {
        vec![StoreIndex {
            store: store_name.into(),
            index: t.1.as_ref().map_or(0, |e| e.index),
        }]
    };
    let fetch = |_: &_, select: &[StoreIndex]| -> Result<p::DownloadResponse> {
        Ok(client.post(
            "Public",
            &p::PublicRequest {
                account_address: Some(address.to_string()),
                profile_udf: None,
                select: select.to_vec(),
            },
        )?)
    };
    let apply = |(profile, last): &mut (Option<Signed>, Option<p::Entry>),
                 r: p::DownloadResponse|
     -> Result<()> {
        if let Some(e) = r
            .updates
            .into_iter()
            .filter(|u| u.store == store_name)
            .find_map(|u| u.entries.into_iter().last())
        {
            *last = Some(e);
        }
        *profile = Some(r.profile);
        Ok(())
    };
    Pager::new(client.url(), "the public read of the account's profile")
        .read(&mut tail, position, fetch, apply)?;
    match tail {
        (Some(profile), last) => Ok((profile, last)),
        (None, _) => Err(AccountError::Untrusted("no page was read".into())),
    }
}
