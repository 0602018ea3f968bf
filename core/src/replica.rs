//! The one page verifier ("replica") of what a portal serves, shared by a
//! device's sync, the recovery read, the account's history and every
//! server reader (`authorized-keys`, `authorized-principals`, `krl`, `ca`,
//! `allowed-signers`).
//!
//! For each page it does what every reader must: checkpoints first (an
//! administrator epoch they start gives the key the entries after it are
//! signed with), no store put behind what the reader holds (a rollback),
//! each entry parsed, chained into the [`History`] (gaps, rewrites, forks)
//! and then handed to the reader's [`Keeper`] with the profile of its
//! epoch, to verify by content and keep. What differs between readers is
//! a parameter of the keeper: stores kept outside the history (a device's
//! Inbound pool), entries sent as changes (a device's access lists), and
//! what is kept of each entry.
//!
//! Sans-io: values in, values out; no network, no disk, no global state.

use crate::envelope::Signed;
use crate::history::{History, HistoryError};
use crate::objects::{ct as oct, CatalogedApplication, ProfileAccount};
use crate::portal::{store, AccessList, Entry, StoreEntries, StoreIndex};

/// Why a page was refused: its history, or one entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The history the page continues.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// One entry.
    #[error("{store} entry {index}: {detail}")]
    Entry {
        /// Its store.
        store: String,
        /// Its index.
        index: u64,
        /// What is wrong.
        detail: String,
    },
}

/// What one reader keeps of a page, and how it differs from the others.
pub trait Keeper {
    /// The verified history the page continues.
    fn history(&mut self) -> &mut History;

    /// Whether this reader reads `store`, one the checkpoints do not cover
    /// (a device's Inbound pool): its entries go to [`Keeper::loose`]
    /// whole. Any other uncovered store is refused.
    fn unchained(&self, _store: &str) -> bool {
        false
    }

    /// Every entry as it arrives, before it is verified (a device checks
    /// that it continues its store and counts it; the account's history
    /// keeps its raw form). The whole page is refused on an error.
    fn arriving(&mut self, _store: &str, _e: &Entry) -> Result<(), String> {
        Ok(())
    }

    /// The signed envelope of an entry: whole by default (a change is
    /// refused); a device also rebuilds an access list sent as a change.
    fn envelope(&self, _store: &str, e: &Entry) -> Result<Signed, String> {
        if e.delta.is_some() {
            return Err("a change where only a whole entry may come".into());
        }
        serde_json::from_value(e.envelope.clone()).map_err(|x| x.to_string())
    }

    /// An entry of an unchained store, under the profile of the page.
    fn loose(&mut self, _profile: &ProfileAccount, store: &str, _e: &Entry) -> Result<(), String> {
        Err(format!("the {store} store was not asked for"))
    }

    /// An entry the history took: verify it by content under `profile`
    /// (its epoch's) and keep it.
    fn keep(&mut self, profile: &ProfileAccount, store: &str, env: Signed) -> Result<(), String>;

    /// After a store's entries (a device records where it stands).
    fn stored(&mut self, _u: &StoreEntries) {}
}

/// Verify one page (`updates`, served with the verified `profile`) into
/// `keeper`. On an error the keeper holds part of the page: readers work
/// on a copy and keep it only when every page verified.
pub fn apply(
    keeper: &mut impl Keeper,
    profile: &ProfileAccount,
    updates: &[StoreEntries],
) -> Result<(), ReplicaError> {
    let mut ordered: Vec<&StoreEntries> = updates.iter().collect();
    ordered.sort_by_key(|u| u.store != store::CHECKPOINT);
    for u in ordered {
        let current = keeper.history().profile(profile);
        keeper.history().behind(&[StoreIndex {
            store: u.store.clone(),
            index: u.last,
        }])?;
        for e in &u.entries {
            let bad = |detail: String| ReplicaError::Entry {
                store: u.store.clone(),
                index: e.index,
                detail,
            };
            keeper.arriving(&u.store, e).map_err(bad)?;
            let chained =
                u.store == store::CHECKPOINT || store::COVERED.contains(&u.store.as_str());
            if !chained {
                // Outside the history (a device's Inbound pool): the keeper
                // verifies it alone, or it was not asked for.
                if !keeper.unchained(&u.store) {
                    return Err(bad(format!("the {} store was not asked for", u.store)));
                }
                keeper.loose(&current, &u.store, e).map_err(bad)?;
                continue;
            }
            let env = keeper.envelope(&u.store, e).map_err(bad)?;
            if u.store == store::CHECKPOINT {
                keeper.history().checkpoint(e.index, &env, profile)?;
            } else {
                keeper.history().entry(&u.store, e.index, &env)?;
                keeper.keep(&current, &u.store, env).map_err(bad)?;
            }
        }
        keeper.stored(u);
    }
    Ok(())
}

/// The next access list: verified under `profile`, and a successor of the
/// one held (a revoked device stays revoked).
pub fn next_access(
    held: Option<&AccessList>,
    env: &Signed,
    profile: &ProfileAccount,
) -> Result<AccessList, String> {
    let list = AccessList::verify(env, profile).map_err(|x| x.to_string())?;
    if let Some(prev) = held {
        prev.check_successor(&list, AccessList::by_root(env, profile))
            .map_err(|x| x.to_string())?;
    }
    Ok(list)
}

/// An application or published entry, signed by a key of `profile`'s
/// history.
pub fn application(env: &Signed, profile: &ProfileAccount) -> Result<CatalogedApplication, String> {
    env.verify_object(
        "application entry",
        oct::CATALOGED_APPLICATION,
        &profile.history_signers(),
    )
    .map_err(|x| x.to_string())
}

#[cfg(test)]
#[path = "replica_tests.rs"]
mod tests;
