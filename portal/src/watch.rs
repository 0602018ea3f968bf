//! Push, by long-poll: a signed Status request with `Wait` is held until
//! one of the account's stores moves past what the device knows, or the
//! wait ends. Every append wakes the account's waiters. Devices also report
//! here the access list serial they applied, so that an administrator can
//! wait until a revocation reached every device.
//!
//! In memory, per process: waiters and applied serials are not shared
//! between portal processes (the PostgreSQL issue moves them to the
//! database's notifications).

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

/// Most accounts whose applied serials are remembered, and most devices
/// per account: bounded like everything a client can make the portal keep.
const MAX_ACCOUNTS: usize = 100_000;
const MAX_DEVICES: usize = 4096;

/// Device UDF → (serial applied, when), for one account.
type Applied = HashMap<String, (u64, u64)>;

/// The account → waiters map, and the serials devices applied.
#[derive(Debug, Default)]
pub struct Watch {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    applied: Mutex<HashMap<String, Applied>>,
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

    /// A device reports the access list serial it applied, at `time`.
    pub fn applied(&self, account: &str, device: &str, serial: u64, time: u64) {
        let mut m = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_ACCOUNTS && !m.contains_key(account) {
            return;
        }
        let devices = m.entry(account.to_string()).or_default();
        if devices.len() < MAX_DEVICES || devices.contains_key(device) {
            devices.insert(device.to_string(), (serial, time));
        }
    }

    /// What the devices of an account reported: device UDF → (serial, time).
    pub fn applied_of(&self, account: &str) -> Vec<(String, u64, u64)> {
        let m = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        m.get(account)
            .map(|d| d.iter().map(|(k, (s, t))| (k.clone(), *s, *t)).collect())
            .unwrap_or_default()
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
    let account = m.account.udf.clone();
    if let Some(serial) = r.applied {
        st.watch
            .applied(&account, &m.device.device_udf, serial, now());
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
    let applied = if m.device.roles.contains(&Role::Admin) {
        st.watch
            .applied_of(&account)
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
    let profile: Signed = parse("stored profile", m.account.profile.as_bytes())?;
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
