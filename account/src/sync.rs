//! `mesh sync` and the agent's quick check: pull, then (administrators)
//! answer PIN requests and publish what the channels need, then let every
//! channel bring this device up to date.

use mesh_core::objects::Role;
use mesh_core::portal::{self as p, store as st, tx};

use crate::client::{Client, ClientError};
use crate::error::{AccountError, Result};
use crate::host::Host;
use crate::pull::pull_from;
pub use crate::pull::SyncReport;
use crate::state::*;
use crate::store::Store;

/// What a sync asks of the channels when the portal had nothing new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Converge {
    /// Every channel brings this device up to date, every time (`mesh sync`:
    /// what a user runs to repair what was changed by hand).
    Always,
    /// Only when the account moved since the last complete pass, or that
    /// pass is older than [`RECONVERGE`] (the agent's periodic sync: at
    /// 1,000 devices a pass costs a view of every device, and a sync that
    /// learned nothing would redo it for nothing).
    WhenChanged,
}

/// How old the last complete pass may be before a sync with nothing new
/// runs one anyway (certificates renew days before they expire).
pub const RECONVERGE: u64 = 3600;

/// Whether a channel asked for a pass by now ([`mesh_plugins::Plugin::due`]).
fn channels_due(store: &Store, host: &Host) -> bool {
    let Ok(dh) = crate::host::StoreHost::new(store) else {
        return false;
    };
    let t = crate::client::now();
    host.plugins()
        .iter()
        .any(|p| p.due(&dh).is_some_and(|d| t >= d))
}

/// `mesh sync`: complete a pending connection, download and verify what is
/// new, (administrators) accept requests that carry a valid PIN and publish
/// what the channels need, then let every channel bring this device up to
/// date.
pub fn sync(store: &mut Store, host: &Host) -> Result<SyncReport> {
    sync_with(store, host, Converge::Always)
}

/// [`sync`], with the channels' pass as `converge` says.
pub fn sync_with(store: &mut Store, host: &Host, converge: Converge) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    // The periodic sync first asks, as the quick check does, whether
    // anything moved: when nothing did and the channels' last pass saw
    // these indices, the state's envelopes are not even read.
    if converge == Converge::WhenChanged {
        if let Ok(h) = header(store) {
            let heartbeat_due = h.heartbeat_due.is_some_and(|t| crate::client::now() >= t);
            let quiet = !heartbeat_due
                && quick_view_of(store, &h).is_ok_and(|q| matches!(q.changed(0), Ok(false)))
                && mark::current(store, &h.indices)
                && !channels_due(store, host);
            if quiet {
                report.skipped = true;
                return Ok(report);
            }
        }
    }
    let mut a = account(store)?;
    match a.membership {
        Membership::Revoked => return Err(AccountError::Revoked(a.address)),
        Membership::Pending => {
            report.completed = crate::join::complete(store)?;
            a = account(store)?;
        }
        Membership::Member => {}
    }
    let a = pull_from(store, host, &mut report, a)?;
    let unchanged = report.entries == 0 && !report.completed && !report.rotated;
    let beat_due = a.heartbeat_due().is_some_and(|t| crate::client::now() >= t);
    if converge == Converge::WhenChanged
        && unchanged
        && !beat_due
        && mark::current(store, &a.indices)
        && !channels_due(store, host)
    {
        report.skipped = true;
        return Ok(report);
    }
    let mut s = crate::session::Session::new(a);
    if s.state().roles.contains(&Role::ADMIN) {
        let (pins, after) = crate::admin::accept_by_pin(store, host, s)?;
        report.auto_accepted = pins.accepted;
        report.pin_refused = pins.refused;
        report.warnings.extend(
            pins.unreadable
                .into_iter()
                .map(|u| format!("skipped {u} (hint: mint a new PIN with `mesh device pin`)")),
        );
        let (published, after) = crate::admin::maintain(store, host, after)?;
        report.entries_published = published;
        s = after;
        let a = s.state();
        // Report only the requests that still wait for an answer.
        report.new_requests.retain(|w| {
            a.inbound
                .iter()
                .any(|i| &i.witness == w && !a.answered.contains(&i.request_id))
        });
    }
    // The state as this sync left it, and its view: not read or built again.
    let (a, view) = s.view(host)?;
    let indices = a.indices.clone();
    for (name, r) in crate::host::apply_view(store, host, view)? {
        match r {
            Ok(actions) => report
                .applied
                .extend(actions.into_iter().map(|x| format!("{name}: {x}"))),
            Err(e) => report.warnings.push(format!("{name}: {e}")),
        }
    }
    // A pass with a channel's failure is not complete: the next sync runs
    // one again.
    if report.warnings.is_empty() {
        mark::record(store, &indices)?;
    }
    Ok(report)
}

/// The last complete pass of the channels: the store indices it saw and
/// when. Kept in its own small file, so that recording it does not rewrite
/// a state of megabytes. Losing it only costs one more pass.
mod mark {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use crate::client::now;
    use crate::error::Result;
    use crate::store::{write_atomic, Store};

    #[derive(Serialize, Deserialize, PartialEq)]
    struct Mark {
        indices: BTreeMap<String, u64>,
        at: u64,
    }

    const FILE: &str = "converged.json";

    /// Whether the last complete pass saw these indices, recently.
    pub(super) fn current(store: &Store, indices: &BTreeMap<String, u64>) -> bool {
        let Ok(raw) = std::fs::read(store.home().join(FILE)) else {
            return false;
        };
        let Ok(m) = serde_json::from_slice::<Mark>(&raw) else {
            return false;
        };
        m.indices == *indices && now().saturating_sub(m.at) < super::RECONVERGE && m.at <= now()
    }

    /// A complete pass just ran over the store as it is now (`indices`).
    pub(super) fn record(store: &Store, indices: &BTreeMap<String, u64>) -> Result<()> {
        let m = Mark {
            indices: indices.clone(),
            at: now(),
        };
        write_atomic(
            &store.home().join(FILE),
            &serde_json::to_vec(&m).unwrap_or_default(),
        )?;
        Ok(())
    }
}

/// What the agent keeps in memory to ask the portal cheaply whether
/// anything changed, without opening the store.
pub struct QuickView {
    client: Client,
    profile_udf: String,
    device_udf: String,
    auth: mesh_core::keys::SigningKey,
    known: Vec<p::StoreIndex>,
    serial: u64,
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
    quick_view_of(store, &header(store)?)
}

fn quick_view_of(store: &Store, a: &Header) -> Result<QuickView> {
    if a.membership != Membership::Member {
        return Err(AccountError::NoAccount);
    }
    let admin = a.roles.contains(&Role::ADMIN);
    // The stores this device reads: members do not read the spools.
    let known = st::ALL
        .iter()
        .filter(|s| admin || !matches!(**s, st::INBOUND | st::LOCAL))
        .map(|s| p::StoreIndex {
            store: s.to_string(),
            index: a.index(s),
        })
        .collect();
    Ok(QuickView {
        client: Client::new(&a.portal)?,
        profile_udf: a.profile_udf.clone(),
        device_udf: device_udf(store)?,
        auth: device_keys(store)?.authenticate,
        known,
        serial: a.serial().unwrap_or(0),
    })
}

impl QuickView {
    /// Whether the account's stores moved since the last sync: one signed
    /// Status request, held by the portal up to `wait` seconds until they
    /// do (a long-poll). It also reports the access list serial this device
    /// applied.
    pub fn changed(&self, wait: u64) -> std::result::Result<bool, ClientError> {
        let body = p::StatusRequest {
            wait,
            known: self.known.clone(),
            applied: Some(self.serial),
        };
        let r: p::StatusResponse = self.client.signed(
            tx::STATUS,
            &self.profile_udf,
            &self.device_udf,
            serde_json::to_value(&body).unwrap_or_default(),
            &self.auth,
        )?;
        let now = |k: &p::StoreIndex| {
            r.stores
                .iter()
                .find(|s| s.store == k.store)
                .map_or(0, |s| s.index)
        };
        // Behind what this device has: a rollback, for the full sync to
        // prove and refuse.
        if let Some(k) = self.known.iter().find(|k| now(k) < k.index) {
            return Err(ClientError::BadAnswer(format!(
                "the portal says the {} store is at {}, behind the {} this device has",
                k.store,
                now(k),
                k.index
            )));
        }
        Ok(self.known.iter().any(|k| now(k) != k.index))
    }
}
