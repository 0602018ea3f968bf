//! The Audit transaction (PROTOCOL.md §16): an active device appends the
//! next batch of its signature log, signed by it and sealed to the
//! administrators, to a store of its own (`Audit:<device>`). The portal
//! checks who sends it and where it goes, and cannot read it; what it then
//! drops, reorders or changes, `mesh audit verify` names.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use mesh_core::audit::{self, Ack, Upload, CT_SEALED_BATCH, MAX_BATCH};
use mesh_core::portal::code;

use crate::api::*;
use crate::state::*;
use crate::storage::{Page, StorageError};

/// Append one batch; the same batch sent again (an answer lost on the
/// way) is answered as the first time, another batch at a taken index is
/// a conflict.
pub(crate) async fn append(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let (m, req) = member(&st, &body, audit::TX).await?;
    let up: Upload = from_value("audit upload", &req.body)?;
    let count = up.batch.count;
    if up.index == 0 || count == 0 || count > MAX_BATCH as u64 {
        return Err(ApiError::bad(format!(
            "an audit batch has an index from 1 and 1 to {MAX_BATCH} records (index {}, {} records)",
            up.index, count
        )));
    }
    if up.batch.sealed.content_type != CT_SEALED_BATCH {
        return Err(ApiError::bad(format!(
            "an audit batch is sealed as {CT_SEALED_BATCH}, not {}",
            up.batch.sealed.content_type
        )));
    }
    let store = audit::store_of(&m.device.device_udf);
    let data = serde_json::to_string(&up.batch).unwrap_or_default();
    let account = m.view.record.udf.clone();
    let s = st.storage.clone();
    let (a, w, d) = (account.clone(), store.clone(), data.clone());
    let appended = blocking(move || match s.append_audit(&a, &w, up.index - 1, &d) {
        Ok(i) => Ok(Ok(i)),
        Err(StorageError::Conflict { actual, .. }) => Ok(Err(actual)),
        Err(e) => Err(e),
    })
    .await?;
    let actual = match appended {
        Ok(index) => return json(&Ack { index }),
        Err(actual) => actual,
    };
    if actual >= up.index && held(&st, &account, &store, up.index).await? == Some(data) {
        return json(&Ack { index: up.index });
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        code::CONFLICT,
        format!(
            "audit batch {} does not follow this device's store, which holds {actual} batches",
            up.index
        ),
    ))
}

/// The entry at `index` of a store.
async fn held(
    st: &AppState,
    account: &str,
    store: &str,
    index: u64,
) -> Result<Option<String>, ApiError> {
    let s = st.storage.clone();
    let (a, w) = (account.to_string(), store.to_string());
    let page = Page::new(1, audit::MAX_BODY);
    let read = blocking(move || s.read(&a, &[(w, index - 1)], page)).await?;
    Ok(read
        .into_iter()
        .next()
        .and_then(|r| r.entries.into_iter().next())
        .filter(|(i, _)| *i == index)
        .map(|(_, d)| d))
}
