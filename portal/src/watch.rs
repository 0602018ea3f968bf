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

use tokio::sync::Notify;

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
