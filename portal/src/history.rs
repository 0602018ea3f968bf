//! The portal's side of the signed history (PROTOCOL.md §10.4): every
//! administrator transaction carries the next checkpoint, and the portal
//! refuses one that does not follow the last or does not sign exactly where
//! the transaction leaves each store. Clients check the same regardless;
//! this keeps an honest portal's history consistent.

use axum::http::StatusCode;
use mesh_core::b64;
use mesh_core::envelope::Signed;
use mesh_core::history::Checkpoint;
use mesh_core::objects::ProfileAccount;
use mesh_core::portal::{code, store, StoreUpdate};

use crate::server::{blocking, parse, ApiError, AppState};

/// Check the checkpoint of a transaction on `account` (`None`: a Bind,
/// nothing stored yet).
pub(crate) async fn check(
    st: &AppState,
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
    let c = Checkpoint::verify(env, profile)
        .map_err(|e| ApiError::forbidden(format!("checkpoint: {e}")))?;
    let (last, indices) = match account {
        None => (None, Vec::new()),
        Some(a) => {
            let (s1, s2) = (st.storage.clone(), st.storage.clone());
            let (a1, a2) = (a.to_string(), a.to_string());
            (
                blocking(move || s1.last(&a1, store::CHECKPOINT)).await?,
                blocking(move || s2.indices(&a2)).await?,
            )
        }
    };
    let (last_serial, previous) = match &last {
        Some((i, raw)) => {
            let prev: Signed = parse("stored checkpoint", raw.as_bytes())?;
            (*i, b64::encode(&prev.content_digest()))
        }
        None => (0, String::new()),
    };
    if c.serial != last_serial + 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            format!(
                "checkpoint {} does not follow the current one ({})",
                c.serial, last_serial
            ),
        ));
    }
    if c.previous != previous {
        return Err(ApiError::forbidden(
            "the checkpoint does not name the current one as its predecessor",
        ));
    }
    for h in &c.heads {
        let now = indices
            .iter()
            .find(|(s, _)| *s == h.store)
            .map_or(0, |(_, i)| *i);
        let added: usize = updates
            .iter()
            .filter(|u| u.store == h.store)
            .map(|u| u.envelopes.len())
            .sum();
        if h.index != now + added as u64 {
            return Err(ApiError::bad(format!(
                "the checkpoint puts the {} store at {}, the transaction at {}",
                h.store,
                h.index,
                now + added as u64
            )));
        }
    }
    Ok(())
}
