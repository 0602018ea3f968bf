//! Held entries (PROTOCOL.md §17): an administrator's `Hold` appends
//! entries for one device to its store (`Held:<device>`), each with the
//! time from which the portal releases it; the device's `Released` reads
//! its own entries whose time has come. The portal knows no channel and
//! cannot forge the data (a channel signs it): it is trusted only to keep
//! each entry until its time.

use axum::body::Bytes;
use axum::extract::State;
use mesh_core::held::{self, Hold, HoldAck, Released, ReleasedRequest, ReleasedResponse};
use mesh_core::objects::Role;

use crate::api::*;
use crate::state::*;
use crate::storage::{Append, Page, MAX_PAGE_BYTES};

/// Append an administrator's entries to a device's held store, counted in
/// the account's byte quota as every administrator's write is.
pub(crate) async fn hold(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let (m, req) = member(&st, &body, held::TX_HOLD).await?;
    if !m.device.roles.contains(&Role::ADMIN) {
        return Err(ApiError::forbidden(
            "only administrators hold entries for a device",
        ));
    }
    let h: Hold = from_value("hold request", &req.body)?;
    if m.view.access.device(&h.device).is_none() {
        return Err(ApiError::bad(format!(
            "device {} is not a device of this account",
            h.device
        )));
    }
    if h.entries.is_empty() || h.entries.len() > held::MAX_ENTRIES {
        return Err(ApiError::bad(format!(
            "a Hold carries 1 to {} entries, not {}",
            held::MAX_ENTRIES,
            h.entries.len()
        )));
    }
    let mut rows = Vec::with_capacity(h.entries.len());
    for (i, e) in h.entries.iter().enumerate() {
        let data = serde_json::to_string(&e.data).unwrap_or_default();
        if data.len() > held::MAX_ENTRY {
            return Err(ApiError::bad(format!(
                "held entry {i} has {} bytes of data, at most {}",
                data.len(),
                held::MAX_ENTRY
            )));
        }
        rows.push(serde_json::to_string(e).unwrap_or_default());
    }
    let store = held::store_of(&h.device);
    let s = st.storage.clone();
    let a = m.view.record.udf.clone();
    let appends = vec![Append {
        store: store.clone(),
        expected: None,
        entries: rows,
    }];
    let idx = blocking(move || s.append(&a, &appends, &[], false)).await?;
    let index = idx
        .into_iter()
        .find(|(s, _)| *s == store)
        .map_or(0, |(_, i)| i);
    json(&HoldAck { index })
}

/// The requesting device's own entries after `Index` whose time has come,
/// in index order, up to the first one that has not.
pub(crate) async fn released(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let (m, req) = member(&st, &body, held::TX_RELEASED).await?;
    let r: ReleasedRequest = from_value("released request", &req.body)?;
    let store = held::store_of(&m.device.device_udf);
    let s = st.storage.clone();
    let a = m.view.record.udf.clone();
    let page = Page::new(held::MAX_RELEASED, MAX_PAGE_BYTES);
    let read = blocking(move || s.read(&a, &[(store, r.index)], page)).await?;
    let Some(read) = read.into_iter().next() else {
        return json(&ReleasedResponse::default());
    };
    let t = now();
    let mut out = ReleasedResponse {
        entries: Vec::new(),
        partial: read.partial,
    };
    for (index, raw) in read.entries {
        let e: held::Held = parse("stored held entry", raw.as_bytes())?;
        if e.not_before > t {
            // What follows waits for this one: a device reads in order.
            out.partial = false;
            break;
        }
        out.entries.push(Released {
            index,
            not_before: e.not_before,
            data: e.data,
        });
    }
    json(&out)
}
