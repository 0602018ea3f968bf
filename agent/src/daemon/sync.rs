//! The daemon's sync loop: a long-poll for changes, a full sync when
//! something moved (or every ten minutes), the served identities and the
//! status brought up to it, and the log told what happened.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mesh_account::store::Store;
use mesh_account::sync::{Converge, QuickView};
use mesh_account::{AccountError, Membership};

use super::{unix_now, Shared, Status};

/// What one sync did, for the loop to serve and log.
struct SyncOutcome {
    result: Result<(), AccountError>,
    /// The identities to serve, when they may have changed.
    ids: Option<Vec<mesh_ssh::agent::MeshIdentity>>,
    /// The account's forwarding policy, read with the identities.
    forwarding: Option<mesh_ssh::forward::ForwardPolicy>,
    status: Status,
    quick: Option<QuickView>,
    /// Lines for the log: revocations, a wipe, an epoch change, a rotation.
    notes: Vec<String>,
    /// Every channel ran (its warnings, if any, are the status's error).
    full: bool,
}

impl SyncOutcome {
    fn new(status: Status) -> SyncOutcome {
        SyncOutcome {
            result: Ok(()),
            ids: None,
            forwarding: None,
            status,
            quick: None,
            notes: Vec::new(),
            full: false,
        }
    }
}

/// The administrator epoch of a verified state (0: the profile's own keys).
fn epoch_of(a: &mesh_account::AccountState) -> u32 {
    a.history.epochs.last().map_or(0, |e| e.number)
}

/// How long one long-poll waits at the portal (seconds).
const LONG_POLL: u64 = mesh_core::portal::MAX_WAIT;

/// One sync: pull, then load this device's identities. Blocking (store lock,
/// HTTP). Between full syncs a long-poll (a signed Status request the portal
/// holds until the account changes) waits for the next change, so an idle
/// agent sends one request every 20 s and learns of a change at once.
fn sync_once(
    home: &Path,
    quick: Option<QuickView>,
    full_due: bool,
    forced: bool,
    last: &Status,
) -> SyncOutcome {
    let mut moved = false;
    if let (Some(q), false) = (&quick, full_due) {
        // A change, or a refusal (revoked, rotated), is the full sync's to handle.
        if let Ok(false) = q.changed(LONG_POLL) {
            let mut out = SyncOutcome::new(last.clone());
            out.quick = quick;
            return out;
        }
        moved = true;
    }
    // A `mesh sync` (or the first sync) repairs whatever was changed by
    // hand, and after the quick check saw a change the channels run anyway;
    // the periodic sync asks first and runs them only when something moved.
    let converge = if forced || moved {
        Converge::Always
    } else {
        Converge::WhenChanged
    };
    full_sync(home, converge)
}

/// A full sync under the store's lock. The quick view is taken under the
/// same lock: indices a concurrent `mesh` command writes later show up as
/// changes at the next quick check, never as "already seen".
fn full_sync(home: &Path, converge: Converge) -> SyncOutcome {
    let mut out = SyncOutcome::new(Status::default());
    let mut store = match Store::open(home, false) {
        Ok(s) => s,
        Err(e) => {
            out.result = Err(e.into());
            return out;
        }
    };
    out.status.device = store.state().device.as_ref().map(|d| d.udf.clone());
    let Ok(a) = mesh_account::account(&store) else {
        out.ids = Some(Vec::new());
        return out;
    };
    out.status.account = Some(a.address.clone());
    let before = epoch_of(&a);
    out.status.epoch = Some(before);
    drop(a);
    let host = crate::host();
    // The sync also lets every channel bring this device up to date
    // (GnuPG homes, NSS databases follow a join, a rotation, a revocation).
    let mut skipped = false;
    out.result = match mesh_account::sync::sync_with(&mut store, &host, converge) {
        Ok(report) => {
            if !report.warnings.is_empty() {
                out.status.last_error = Some(report.warnings.join("; "));
            }
            skipped = report.skipped;
            out.full = !skipped;
            out.notes.extend(
                report
                    .revoked_devices
                    .iter()
                    .map(|d| format!("device {d} was revoked from the account")),
            );
            if report.rotated {
                out.notes
                    .push("this device's keys were rotated: it uses the new ones".into());
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    if let Err(AccountError::Revoked(address)) = &out.result {
        out.status.revoked = true;
        out.ids = Some(Vec::new());
        let wiped = mesh_account::account(&store)
            .map(|a| a.wiped)
            .unwrap_or_default();
        out.notes.push(format!(
            "revoked from {address} (the administrators' signed proof verified): wiped {}; exiting",
            if wiped.is_empty() {
                "this home's secrets".to_string()
            } else {
                format!("this home's secrets and {}", wiped.join("; "))
            }
        ));
        return out;
    }
    // Nothing changed: the identities served are still the right ones.
    if !skipped {
        if let Ok(a) = mesh_account::account(&store) {
            let after = epoch_of(&a);
            out.status.epoch = Some(after);
            if after != before {
                out.notes.push(format!(
                    "the account's administrator epoch changed from {before} to {after} (an administrator was revoked, or the account recovered): new CAs and keys adopted"
                ));
            }
            out.ids = identities(&store, &a).ok();
            out.forwarding = forwarding(&a);
        }
    }
    out.quick = mesh_account::sync::quick_view(&store).ok();
    out
}

/// The account's forwarding policy (`None` when its view does not verify).
pub(super) fn forwarding(
    a: &mesh_account::AccountState,
) -> Option<mesh_ssh::forward::ForwardPolicy> {
    let view = mesh_account::host::view_of(a).ok()?;
    mesh_ssh::channel::policy(&view).ok().map(|p| p.forwarding)
}

/// The Mesh identities this device serves (none unless an active member).
pub(super) fn identities(
    store: &Store,
    a: &mesh_account::AccountState,
) -> Result<Vec<mesh_ssh::agent::MeshIdentity>, AccountError> {
    if a.membership != Membership::Member {
        return Ok(Vec::new());
    }
    // The SSH identity needs no other channel's checks: a damaged OpenPGP
    // entry must not take the device's SSH key away.
    let view = mesh_account::host::view_of(a)?;
    let dh = mesh_account::StoreHost::new(store)?;
    Ok(mesh_ssh::channel::identities(&dh, &view)?)
}

/// A full sync at least this often, to renew certificates and catch what
/// the quick check cannot see.
const FULL_SYNC: Duration = Duration::from_secs(600);

/// The loop's pace and memory between syncs.
struct Pace {
    interval: Duration,
    /// Until the next attempt when no long-poll waits.
    wait: Duration,
    /// The next sync is a full one that runs every channel.
    forced: bool,
    /// The last full sync's channel warnings (a quick check keeps them).
    warning: Option<String>,
    /// What the log already says.
    logged: crate::agent_log::Errors,
}

pub(super) async fn sync_loop(home: PathBuf, shared: Arc<Shared>, interval: Duration) {
    let mut pace = Pace {
        interval,
        wait: interval,
        forced: true,
        warning: None,
        logged: Default::default(),
    };
    let mut quick: Option<QuickView> = None;
    let mut last_full = std::time::Instant::now();
    loop {
        let h = home.clone();
        let due = pace.forced || last_full.elapsed() >= FULL_SYNC;
        let last = shared.status.read().await.clone();
        let q = quick.take();
        let f = pace.forced;
        let task = tokio::task::spawn_blocking(move || sync_once(&h, q, due, f, &last));
        // A `mesh sync` or a stop does not wait for the long-poll to end.
        let mut out = tokio::select! {
            r = task => r.unwrap_or_else(|_| SyncOutcome::new(Status::default())),
            _ = shared.sync_now.notified() => {
                pace.forced = true;
                continue;
            }
            _ = shared.stop.notified() => return,
        };
        quick = out.quick.take();
        if due || out.ids.is_some() {
            last_full = std::time::Instant::now();
        }
        if out.full {
            pace.warning = out.status.last_error.take();
        }
        pace.forced = false;
        for n in &out.notes {
            crate::agent_log::line(n);
        }
        if let Some(ids) = out.ids.take() {
            shared.agent.set_mesh_identities(ids).await;
        }
        if let Some(f) = out.forwarding.take() {
            shared.agent.set_forwarding(Some(f)).await;
        }
        record(&shared, &out, &mut pace).await;
        shared.synced.notify_waiters();
        if matches!(out.result, Err(AccountError::Revoked(_))) {
            // Wiped, serving nothing: stop (the serve loop may not wait
            // yet, so a permit is left for it too).
            shared.stop.notify_waiters();
            shared.stop.notify_one();
            return;
        }
        if out.result.is_ok() && quick.is_some() {
            // The next long-poll is the wait.
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(pace.wait) => {}
            _ = shared.sync_now.notified() => pace.forced = true,
            _ = shared.stop.notified() => return,
        }
    }
}

/// Bring the status up to a sync's outcome, log an error or warning that
/// is new, and set the pace of the next attempt.
async fn record(shared: &Shared, out: &SyncOutcome, pace: &mut Pace) {
    let (mesh, added) = shared.agent.count().await;
    let mut s = shared.status.write().await;
    let fresh = &out.status;
    s.account = fresh.account.clone();
    s.device = fresh.device.clone();
    s.epoch = fresh.epoch.or(s.epoch);
    s.revoked |= fresh.revoked;
    s.mesh_keys = mesh;
    s.added_keys = added;
    let now = unix_now();
    let error = match &out.result {
        Ok(()) => {
            s.last_sync = Some(now);
            s.portal_reachable = Some(true);
            pace.wait = pace.interval;
            match &pace.warning {
                Some(w) => pace.logged.failed(format!("sync warning: {w}")),
                None => pace.logged.ok(),
            }
            pace.warning.clone()
        }
        Err(e) => {
            s.portal_reachable = Some(!matches!(
                e,
                AccountError::Client(mesh_account::client::ClientError::Unreachable { .. })
            ));
            // The revocation has its own line (what was wiped).
            if !matches!(e, AccountError::Revoked(_)) {
                pace.logged.failed(crate::agent_log::sync_error(e));
            }
            // Back off while the portal is away, up to a minute; other
            // errors (a write that met another administrator's) retry
            // at the usual pace, with a full sync.
            if s.portal_reachable == Some(false) {
                pace.wait = (pace.wait * 2)
                    .min(Duration::from_secs(60))
                    .max(pace.interval);
            } else {
                pace.wait = pace.interval;
                pace.forced = true;
            }
            Some(e.to_string())
        }
    };
    if error.is_none() || error != s.last_error {
        s.last_error_at = error.as_ref().map(|_| now);
    }
    s.last_error = error;
}
