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

use tokio::sync::Notify;

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
