//! What a command costs, counted (issue 24, "a per-command session"): how
//! many times it decrypted the sealed secrets, read the account state,
//! verified the account profile, built a verified view and made a
//! Download. Tests read these to hold each command to one pass; the
//! counters are per thread (a command runs on one thread; tests run side
//! by side in one process) and cost one add each, so they are always
//! compiled.

use std::cell::Cell;

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// The sealed secrets decrypted (`Store::secrets` read from disk).
    Secrets,
    /// The account state read from the store (`state::account`).
    State,
    /// The account profile verified up to its UDF.
    Profile,
    /// A verified view built (`host::view_of`).
    View,
    /// A Download request sent to the portal.
    Download,
}

const N: usize = 5;

thread_local! {
    static COUNTS: Cell<[u64; N]> = const { Cell::new([0; N]) };
}

/// Counted once more on this thread.
pub(crate) fn add(what: What) {
    COUNTS.with(|c| {
        let mut v = c.get();
        v[what as usize] += 1;
        c.set(v);
    });
}

/// The counts on this thread since the last [`reset`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Secrets decrypted.
    pub secrets: u64,
    /// Account states read.
    pub state: u64,
    /// Profiles verified.
    pub profile: u64,
    /// Views built.
    pub views: u64,
    /// Downloads made.
    pub downloads: u64,
}

/// This thread's counts.
pub fn counts() -> Counts {
    let v = COUNTS.with(Cell::get);
    Counts {
        secrets: v[What::Secrets as usize],
        state: v[What::State as usize],
        profile: v[What::Profile as usize],
        views: v[What::View as usize],
        downloads: v[What::Download as usize],
    }
}

/// Start counting again from zero on this thread.
pub fn reset() {
    COUNTS.with(|c| c.set([0; N]));
}

/// Run `f` and return what it cost on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Counts) {
    reset();
    let out = f();
    (out, counts())
}
