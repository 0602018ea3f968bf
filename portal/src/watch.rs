//! Push, by long-poll: a signed Status request with `Wait` is held until
//! one of the account's stores moves past what the device knows, or the
//! wait ends. Every append wakes the account's waiters. Devices also report
//! here the access list serial they applied, so that an administrator can
//! wait until a revocation reached every device.
//!
//! Waiters are per process; what wakes them crosses processes: a write in
//! this process wakes them directly, and with PostgreSQL the writes of
//! other processes arrive as notifications (`Storage::listen`). Applied
//! serials are a table of the store, so every process answers the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use mesh_core::envelope::Signed;
use mesh_core::objects::Role;
use mesh_core::portal::{self as p, tx};
use tokio::sync::Notify;

use crate::server::{
    blocking, from_value, json, member, now, parse, ApiError, ApiResult, AppState,
};

/// The account → waiters map. It holds only accounts with a waiting
/// device, each of which holds one connection: bounded by the connection cap.
#[derive(Debug, Default)]
pub struct Watch {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Watch {
    /// The notifier of an account (made on first use).
    pub fn of(&self, account: &str) -> Arc<Notify> {
        let mut m = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(account.to_string()).or_default().clone()
    }

    /// An account's stores moved: wake its waiters. Notifiers nobody holds
    /// are dropped, so the map holds only accounts with waiting devices.
    pub fn changed(&self, account: &str) {
        let mut m = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get(account) {
            n.notify_waiters();
            if Arc::strong_count(n) == 1 {
                m.remove(account);
            }
        }
    }

    /// Changes may have been missed (the notification connection was
    /// lost): wake every waiter to look again.
    pub fn changed_all(&self) {
        let mut m = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for n in m.values() {
            n.notify_waiters();
        }
        m.retain(|_, n| Arc::strong_count(n) > 1);
    }

    /// The hook a store calls with other processes' changes.
    pub fn hook(self: &Arc<Watch>) -> crate::storage::ChangeFn {
        let w = self.clone();
        Arc::new(move |account: Option<&str>| match account {
            Some(a) => w.changed(a),
            None => w.changed_all(),
        })
    }
}

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
