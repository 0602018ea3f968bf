//! The agent's side of learned hosts ([`crate::hosts`]): what a login
//! teaches, and the map the listing reads. No file I/O here: a change is
//! handed to whoever persists it (the `mesh` binary writes it in the
//! device home) over a channel, off the sign path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

use tokio::sync::mpsc;

use super::{unix_now, Agent, Connection};
use crate::dest;
use crate::hosts::{HostMap, Op};

/// How many changes may wait for the writer (more are dropped: the
/// in-memory map has them, and the next change of that host writes again).
const QUEUE: usize = 256;

#[derive(Default)]
pub(super) struct Hosts {
    map: RwLock<HostMap>,
    persist: OnceLock<mpsc::Sender<Op>>,
    /// Bumped when the map changes from outside (a reload, a pin, a
    /// forget), under the map's write lock.
    generation: AtomicU64,
}

impl Hosts {
    /// The identity `host` accepts, if known (an owned copy: the lock is
    /// not held while the listing is built), and the map's generation.
    pub(super) fn identity_for(&self, host: &str) -> (Option<String>, u64) {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        let generation = self.generation.load(Ordering::Relaxed);
        (m.identity_for(host).map(str::to_owned), generation)
    }

    /// A login to `host` was signed by `identity`, on a connection whose
    /// listing was ordered by map generation `listed`. A listing older
    /// than the map teaches nothing: it may have offered what the user
    /// forgot since, and learning it would undo the forget.
    pub(super) fn learned(&self, host: String, identity: String, listed: Option<u64>) {
        if self.identity_for(&host).0.as_deref() == Some(identity.as_str()) {
            return; // the common case: known already, nothing to take a write lock for
        }
        let op = Op::Learn {
            host,
            identity,
            when: unix_now(),
        };
        let changed = {
            let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
            // Checked under the lock a reload takes to bump it.
            let stale = listed.is_some_and(|l| l != self.generation.load(Ordering::Relaxed));
            !stale && m.apply(&op)
        };
        if changed {
            if let Some(tx) = self.persist.get() {
                let _ = tx.try_send(op);
            }
        }
    }
}

/// The host a signature of `data` by `blob` logs in to: the connection is
/// bound for authentication and `data` is a publickey userauth request for
/// that very session. Unbound connections (the signing benchmark, old
/// clients) return at once.
pub(super) fn login_host(conn: &Connection, blob: &[u8], data: &[u8]) -> Option<String> {
    let (host, sid) = conn.auth_host()?;
    let ua = dest::parse_userauth(data, blob)?;
    (ua.sid == sid).then(|| host.to_owned())
}

impl Agent {
    /// What the agent has learned (and been pinned), now.
    pub fn hosts(&self) -> HostMap {
        self.hosts
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replace the map (loaded from, or merged into, the hosts file).
    pub fn set_hosts(&self, map: HostMap) {
        let mut m = self.hosts.map.write().unwrap_or_else(|e| e.into_inner());
        if *m != map {
            *m = map;
            self.hosts.generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Apply a change (a pin or forget) to the map in memory.
    pub fn apply_host_op(&self, op: &Op) -> bool {
        let mut m = self.hosts.map.write().unwrap_or_else(|e| e.into_inner());
        let changed = m.apply(op);
        if changed {
            self.hosts.generation.fetch_add(1, Ordering::Relaxed);
        }
        changed
    }

    /// Where learned changes go to be persisted: the receiver, the first
    /// time (`None` after).
    pub fn persist_hosts(&self) -> Option<mpsc::Receiver<Op>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.hosts.persist.set(tx).ok().map(|()| rx)
    }
}

#[cfg(test)]
#[path = "learn_tests.rs"]
mod tests;
