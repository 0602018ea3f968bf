//! Heartbeats (PROTOCOL.md §10.7): an account's administrators may promise
//! a checkpoint at least every `Every` seconds (a published policy, signed
//! like any other); their agents then write an empty one when the newest
//! is older than half of that. Every reader refuses a newest checkpoint
//! older than twice the promise: a portal that keeps serving the account
//! as it was (before a revocation, say) is found out within that bound,
//! though it answers.

use serde::{Deserialize, Serialize};

/// The published entry's uid.
pub const UID: &str = "mesh.heartbeat";

/// Shortest promise (seconds): an agent runs a full sync every ten
/// minutes, so it writes a due heartbeat within that; a promise of twenty
/// minutes leaves readers' bound (twice it) well behind.
pub const MIN_EVERY: u64 = 20 * 60;

/// The administrators' promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// At least one checkpoint this often (seconds).
    #[serde(rename = "Every")]
    pub every: u64,
}

impl Heartbeat {
    /// The promise a published entry makes (`None`: not this entry, or no
    /// promise). The entry was verified where it was kept.
    pub fn from_entry(env: &crate::envelope::Signed) -> Option<Heartbeat> {
        let app: crate::objects::CatalogedApplication =
            env.unverified_object("application entry").ok()?;
        (app.uid == UID)
            .then(|| serde_json::from_value::<Heartbeat>(app.data).ok())
            .flatten()
            .filter(|h| h.every > 0)
    }

    /// Whether an administrator should write a checkpoint now: the newest
    /// (dated `newest`) is half the promise old.
    pub fn due(&self, newest: u64, now: u64) -> bool {
        now.saturating_sub(newest) >= self.every / 2
    }

    /// The oldest a reader accepts the newest checkpoint to be.
    pub fn max_age(&self) -> u64 {
        self.every.saturating_mul(2)
    }

    /// A reader's check of the newest checkpoint's date against the
    /// promise; the error says how old it is and what was promised.
    pub fn check(&self, newest: u64, now: u64) -> Result<(), String> {
        let age = now.saturating_sub(newest);
        if age > self.max_age() {
            return Err(format!(
                "the account's newest checkpoint is {age} s old, but its administrators write one at least every {} s: the portal may be serving a frozen account (withholding what is newer), or no administrator device has been online for {} s",
                self.every,
                self.max_age()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_promise_is_kept_written_and_checked_by_its_bounds() {
        let h = Heartbeat { every: 600 };
        let cases = [
            // (newest, now, due, fresh)
            (1_000, 1_000, false, true),
            (1_000, 1_299, false, true),
            (1_000, 1_300, true, true),
            (1_000, 2_200, true, true),
            (1_000, 2_201, true, false),
            // A date ahead of the clock is not stale (the portal bounds it).
            (5_000, 1_000, false, true),
        ];
        for (newest, now, due, fresh) in cases {
            assert_eq!(h.due(newest, now), due, "due {newest} {now}");
            assert_eq!(h.check(newest, now).is_ok(), fresh, "fresh {newest} {now}");
        }
    }
}
