//! The Status transaction, and its long-poll on the account's [`Watch`]
//! (`watch.rs`).

use axum::body::Bytes;
use axum::extract::State;
use mesh_core::envelope::Signed;
use mesh_core::objects::Role;
use mesh_core::portal::{self as p, tx};

use crate::api::*;
use crate::state::*;

/// Status, and the long-poll (`watch.rs`): with `Wait`, held until a store
/// the device names in `Known` moves past what it knows.
pub(crate) async fn status(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let (m, req) = member(&st, &body, tx::STATUS).await?;
    let r: p::StatusRequest = if req.body == serde_json::json!({}) {
        p::StatusRequest::default()
    } else {
        from_value("status request", &req.body)?
    };
    let account = m.view.record.udf.clone();
    if let Some(serial) = r.applied {
        let (s, a, d, t) = (
            st.storage.clone(),
            account.clone(),
            m.device.device_udf.clone(),
            now(),
        );
        blocking(move || s.set_applied(&a, &d, serial, t)).await?;
    }
    // Listen before reading, so that no append between the two is missed.
    let notify = st.watch.of(&account);
    let woken = notify.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let mut idx = indices(&st, &account).await?;
    // Only the stores the device names count: members do not read the
    // administrators' spools.
    let moved = |idx: &[(String, u64)]| {
        r.known.iter().any(|k| {
            let now = idx
                .iter()
                .find(|(s, _)| *s == k.store)
                .map(|(_, i)| *i)
                .unwrap_or(0);
            now != k.index
        })
    };
    if r.wait > 0 && !moved(&idx) {
        let wait = std::time::Duration::from_secs(r.wait.min(p::MAX_WAIT));
        let _ = tokio::time::timeout(wait, woken).await;
        idx = indices(&st, &account).await?;
    }
    let applied = if m.device.roles.contains(&Role::ADMIN) {
        let (s, a) = (st.storage.clone(), account.clone());
        blocking(move || s.applied(&a))
            .await?
            .into_iter()
            .map(|(device_udf, serial, time)| p::AppliedSerial {
                device_udf,
                serial,
                time,
            })
            .collect()
    } else {
        Vec::new()
    };
    let profile: Signed = parse("stored profile", m.view.record.profile.as_bytes())?;
    json(&p::StatusResponse {
        profile,
        stores: idx
            .into_iter()
            .map(|(store, index)| p::StoreIndex { store, index })
            .collect(),
        applied,
    })
}

async fn indices(st: &AppState, account: &str) -> Result<Vec<(String, u64)>, ApiError> {
    let s = st.storage.clone();
    let a = account.to_string();
    blocking(move || s.indices(&a)).await
}
