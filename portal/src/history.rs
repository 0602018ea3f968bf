//! The portal's side of the signed history (PROTOCOL.md §10.4): every
//! administrator transaction carries the next checkpoint, and the portal
//! refuses one that does not follow the last or does not sign exactly where
//! the transaction leaves each store. Clients check the same regardless;
//! this keeps an honest portal's history consistent.

use axum::http::StatusCode;
use mesh_core::authority::AdminEpoch;
use mesh_core::b64;
use mesh_core::envelope::Signed;
use mesh_core::history::Checkpoint;
use mesh_core::objects::ProfileAccount;
use mesh_core::portal::{self as p, code, store, StoreUpdate};

use crate::api::{blocking, parse, ApiError};
use crate::storage::{Storage, StorageError};

/// The administrator epochs started by the stored checkpoints after
/// `after`, and the last checkpoint read. Stored checkpoints were checked
/// when they were written, so they are parsed, not verified again.
pub(crate) fn epochs_after(
    storage: &dyn Storage,
    account: &str,
    mut after: u64,
) -> Result<(Vec<AdminEpoch>, u64), StorageError> {
    let mut out = Vec::new();
    loop {
        let read = storage.read(
            account,
            &[(store::CHECKPOINT.to_string(), after)],
            crate::storage::Page::new(p::MAX_RESULTS, crate::storage::MAX_PAGE_BYTES),
        )?;
        let Some(r) = read.into_iter().next() else {
            return Ok((out, after));
        };
        for (index, raw) in &r.entries {
            after = *index;
            let c = serde_json::from_str::<Signed>(raw)
                .ok()
                .and_then(|env| env.unverified_object::<Checkpoint>("checkpoint").ok());
            out.extend(c.and_then(|c| c.epoch));
        }
        if !r.partial || r.entries.is_empty() {
            return Ok((out, after));
        }
    }
}

/// The epoch a transaction's checkpoint starts, if any (read before the
/// checkpoint is verified, so that the entries signed with its key can be
/// checked; [`check`] then verifies the checkpoint itself).
pub(crate) fn announced(updates: &[StoreUpdate]) -> Option<AdminEpoch> {
    updates
        .iter()
        .filter(|u| u.store == store::CHECKPOINT)
        .flat_map(|u| u.envelopes.iter())
        .find_map(|e| e.unverified_object::<Checkpoint>("checkpoint").ok())
        .and_then(|c| c.epoch)
}

/// Whether the account's root signed a transaction's checkpoint.
pub(crate) fn root_signed(profile: &ProfileAccount, updates: &[StoreUpdate]) -> bool {
    updates
        .iter()
        .filter(|u| u.store == store::CHECKPOINT)
        .flat_map(|u| u.envelopes.iter())
        .any(|e| matches!(Checkpoint::verify(e, profile), Ok((_, true))))
}

/// Check the checkpoint of a transaction on `account` (`None`: a Bind,
/// nothing stored yet).
pub(crate) async fn check(
    storage: &std::sync::Arc<dyn Storage>,
    account: Option<&str>,
    profile: &ProfileAccount,
    updates: &[StoreUpdate],
) -> Result<(), ApiError> {
    let mut checkpoints = updates
        .iter()
        .filter(|u| u.store == store::CHECKPOINT)
        .flat_map(|u| u.envelopes.iter());
    let (Some(env), None) = (checkpoints.next(), checkpoints.next()) else {
        return Err(ApiError::bad(
            "an administrator transaction carries exactly one checkpoint",
        ));
    };
    let (c, _) = Checkpoint::verify(env, profile)
        .map_err(|e| ApiError::forbidden(format!("checkpoint: {e}")))?;
    let last = match account {
        None => None,
        Some(a) => {
            let (s, a) = (storage.clone(), a.to_string());
            blocking(move || s.last(&a, store::CHECKPOINT)).await?
        }
    };
    let conflict = |reason: String| ApiError::new(StatusCode::CONFLICT, code::CONFLICT, reason);
    // Heads are checked against the previous checkpoint, not against the
    // stores as read now: a transaction committed meanwhile moved the
    // Checkpoint store, and the storage answers Conflict for it atomically.
    let (last_serial, previous, prev) = match &last {
        Some((i, raw)) => {
            let env: Signed = parse("stored checkpoint", raw.as_bytes())?;
            let prev: Checkpoint = env
                .unverified_object("stored checkpoint")
                .map_err(|e| ApiError::bad(e.to_string()))?;
            (*i, b64::encode(&env.content_digest()), Some(prev))
        }
        None => (0, String::new(), None),
    };
    if c.serial != last_serial + 1 {
        return Err(conflict(format!(
            "checkpoint {} does not follow the current one ({last_serial})",
            c.serial
        )));
    }
    if c.previous != previous {
        return Err(ApiError::forbidden(
            "the checkpoint does not name the current one as its predecessor",
        ));
    }
    check_issued(&c, prev.as_ref(), crate::api::now())?;
    for h in &c.heads {
        let before = prev
            .as_ref()
            .and_then(|p| p.head(&h.store))
            .map_or(0, |p| p.index);
        let mut want = before;
        for u in updates.iter().filter(|u| u.store == h.store) {
            if u.expected != want {
                return Err(conflict(format!(
                    "the {} store is at {want}, the writer expected {}",
                    h.store, u.expected
                )));
            }
            want += u.envelopes.len() as u64;
        }
        if h.index != want {
            return Err(ApiError::bad(format!(
                "the checkpoint puts the {} store at {}, the transaction at {want}",
                h.store, h.index
            )));
        }
    }
    Ok(())
}

/// A checkpoint is dated by its signer; the portal binds the date to its
/// own clock when it is written (within [`p::FRESHNESS_WINDOW`], as request
/// times) and to the order of the chain, so that a thief cannot backdate
/// one before a recovery's `--since` through an honest portal.
fn check_issued(c: &Checkpoint, prev: Option<&Checkpoint>, now: u64) -> Result<(), ApiError> {
    if c.issued.abs_diff(now) > p::FRESHNESS_WINDOW {
        return Err(ApiError::forbidden(format!(
            "checkpoint {} is dated {}, more than {} s from the portal's clock ({now})",
            c.serial,
            c.issued,
            p::FRESHNESS_WINDOW
        )));
    }
    if let Some(prev) = prev.filter(|prev| c.issued < prev.issued) {
        return Err(ApiError::forbidden(format!(
            "checkpoint {} is dated {}, before the checkpoint it follows ({})",
            c.serial, c.issued, prev.issued
        )));
    }
    Ok(())
}
