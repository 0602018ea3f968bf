//! Batch confirmation: one answer to `SSH_ASKPASS` covers the same key,
//! the same destination and the same requesting program for
//! [`WINDOW`]; requests that arrive while the question is open wait for
//! its answer instead of asking again (eight parallel `ssh` → one prompt).
//!
//! A forwarded request's batch is also its hop chain. The requesting program is the socket peer's executable (`SO_PEERCRED`'s
//! pid, then `/proc/PID/exe`) and uid: parallel `ssh` processes are
//! different pids of one program, so grouping by pid would ask each. A
//! refusal is shared only by the requests that waited for it; the next
//! request asks again.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crate::dest::Peer;

/// How long a "yes" covers its batch.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most batches remembered (beyond it, requests are asked singly).
const MAX_BATCHES: usize = 256;

/// Who asks: their program and uid, as far as the kernel says.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Requester {
    /// The peer's executable and uid.
    Program(PathBuf, u32),
    /// The peer's uid (its executable could not be read).
    User(u32),
    /// No peer credentials (an in-process caller).
    Unknown,
}

impl Requester {
    /// The requester behind `peer`.
    pub fn of(peer: Option<Peer>) -> Requester {
        match peer {
            Some(Peer {
                uid,
                pid: Some(pid),
            }) => match std::fs::read_link(format!("/proc/{pid}/exe")) {
                Ok(exe) => Requester::Program(exe, uid),
                Err(_) => Requester::User(uid),
            },
            Some(p) => Requester::User(p.uid),
            None => Requester::Unknown,
        }
    }
}

/// What one confirmation covers.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct BatchKey {
    /// The key's blob as requested.
    pub key: Vec<u8>,
    /// The destination's fingerprint, when known.
    pub destination: Option<String>,
    /// The forwarded hops' fingerprints (empty for a local request): a
    /// "yes" for a login through one host does not cover one through another.
    pub hops: Vec<String>,
    /// The requesting program.
    pub requester: Requester,
}

type Cell = Arc<tokio::sync::OnceCell<(bool, Instant)>>;

/// The open and recent confirmations.
#[derive(Debug, Default)]
pub struct Batches(std::sync::Mutex<HashMap<BatchKey, Cell>>);

impl Batches {
    /// The answer for `key`'s batch: a recent "yes", the answer to a
    /// question already open, or `ask`'s.
    pub async fn confirm<F, Fut>(&self, key: BatchKey, ask: F) -> bool
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = bool>,
    {
        let cell = self.cell(key);
        cell.get_or_init(|| async { (ask().await, Instant::now()) })
            .await
            .0
    }

    fn cell(&self, key: BatchKey) -> Cell {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Open questions and recent yeses live; refusals and old answers go.
        m.retain(|_, c| {
            c.get()
                .is_none_or(|(yes, at)| *yes && at.elapsed() < WINDOW)
        });
        if let Some(c) = m.get(&key) {
            return c.clone();
        }
        let c = Cell::default();
        if m.len() < MAX_BATCHES {
            m.insert(key, c.clone());
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(k: u8, dest: Option<&str>, who: Requester) -> BatchKey {
        BatchKey {
            key: vec![k],
            destination: dest.map(Into::into),
            hops: Vec::new(),
            requester: who,
        }
    }

    #[tokio::test]
    async fn parallel_requests_share_one_question_and_others_ask_their_own() {
        let b = Arc::new(Batches::default());
        let asked = Arc::new(AtomicUsize::new(0));
        let prog = || Requester::Program("/usr/bin/ssh".into(), 1000);
        let run = |k: BatchKey, answer: bool| {
            let (b, asked) = (b.clone(), asked.clone());
            tokio::spawn(async move {
                b.confirm(k, || async move {
                    asked.fetch_add(1, Ordering::SeqCst);
                    // The question stays open while the others arrive.
                    tokio::task::yield_now().await;
                    answer
                })
                .await
            })
        };
        let same: Vec<_> = (0..8)
            .map(|_| run(key(1, Some("h"), prog()), true))
            .collect();
        for t in same {
            assert!(t.await.expect("join"));
        }
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "eight requests, one prompt"
        );
        // Within the window the same batch is not asked again.
        assert!(run(key(1, Some("h"), prog()), false).await.expect("join"));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // Another key, destination or program is a batch of its own.
        for k in [
            key(2, Some("h"), prog()),
            key(1, Some("other"), prog()),
            key(1, None, prog()),
            key(
                1,
                Some("h"),
                Requester::Program("/usr/bin/git".into(), 1000),
            ),
            key(1, Some("h"), Requester::User(1000)),
            BatchKey {
                hops: vec!["SHA256:hop".into()],
                ..key(1, Some("h"), prog())
            },
        ] {
            assert!(!run(k, false).await.expect("join"));
        }
        assert_eq!(asked.load(Ordering::SeqCst), 7);
        // A refusal is not remembered: the next request asks again.
        assert!(!run(key(3, None, prog()), false).await.expect("join"));
        assert!(run(key(3, None, prog()), true).await.expect("join"));
        assert_eq!(asked.load(Ordering::SeqCst), 9);
    }
}
