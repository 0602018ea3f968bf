//! The one bounded pager every paged read goes through (device sync, an
//! administrator's sync, recovery, rotation, the public reads of servers
//! and of `account history`).
//!
//! A portal answers a Download or Public read a page at a time and marks a
//! store `Partial` while more follow. The portal is not trusted, so a
//! read is bounded twice (PROTOCOL.md §6): at most [`MAX_PAGES`] pages, and
//! every page that says more follow must bring, for each store it says so
//! of, an entry past where the read stands, and the verified state must
//! move. A page that does not is refused at once, before it is verified;
//! the caller keeps nothing of a refused read.
//!
//! Sans-io: the pager asks `fetch` for pages and `apply` to verify them;
//! it never touches the network or the disk itself.

use mesh_core::portal::{DownloadResponse, StoreEntries, StoreIndex};

/// Most pages one paged read follows (a portal that answers 'more' with
/// real entries still ends: each page brings at least one).
pub const MAX_PAGES: usize = 4096;

/// A portal that would keep a paged read going for ever.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PagerError {
    /// More pages than any read follows.
    #[error("the portal at {portal} is at fault: it still answered 'more follow' to {what} after {pages} pages; refusing the read")]
    TooManyPages {
        /// The portal's URL.
        portal: String,
        /// The read.
        what: String,
        /// Pages read.
        pages: usize,
    },
    /// A page that says more follow and moves nothing.
    #[error("the portal at {portal} is at fault: it answered 'more follow' to {what} with a page that brings nothing past entry {index} of the {store} store; refusing the read")]
    NoProgress {
        /// The portal's URL.
        portal: String,
        /// The read.
        what: String,
        /// The store the page said more of.
        store: String,
        /// Where the read stood in it.
        index: u64,
    },
}

impl PagerError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        "nothing was saved here: the whole read was refused; a portal says more follow only with entries past what was asked, so this one is broken or hostile: tell its operator, and do not trust what it serves until it answers as the protocol says".into()
    }
}

/// One paged read of one portal.
#[derive(Debug, Clone)]
pub struct Pager {
    portal: String,
    what: String,
    max: usize,
}

impl Pager {
    /// A read of `portal` (its URL, named in errors) described by `what`
    /// (e.g. "a device sync").
    pub fn new(portal: &str, what: &str) -> Pager {
        Pager {
            portal: portal.to_string(),
            what: what.to_string(),
            max: MAX_PAGES,
        }
    }

    /// The same read with another bound on pages.
    pub fn max_pages(self, max: usize) -> Pager {
        Pager { max, ..self }
    }

    /// Read pages into `state` until one says nothing more follows.
    ///
    /// `position` says where the read stands (the last index held, per
    /// store asked); `fetch` asks the portal for the page after it; `apply`
    /// verifies a page into `state` (its error refuses the read).
    pub fn read<S, E>(
        &self,
        state: &mut S,
        position: impl Fn(&S) -> Vec<StoreIndex>,
        mut fetch: impl FnMut(&S, &[StoreIndex]) -> Result<DownloadResponse, E>,
        mut apply: impl FnMut(&mut S, DownloadResponse) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<PagerError>,
    {
        for _ in 0..self.max {
            let before = position(state);
            let page = fetch(state, &before)?;
            let more = self.check(&before, &page.updates)?;
            let said: Vec<String> = page
                .updates
                .iter()
                .filter(|u| u.partial)
                .map(|u| u.store.clone())
                .collect();
            apply(state, page)?;
            if !more {
                return Ok(());
            }
            self.moved(&before, &position(state), &said)?;
        }
        Err(PagerError::TooManyPages {
            portal: self.portal.clone(),
            what: self.what.clone(),
            pages: self.max,
        }
        .into())
    }

    /// Whether a page says more follow; refused when a store it says so of
    /// brings no entry past `at` (checked before the page is verified).
    pub fn check(&self, at: &[StoreIndex], updates: &[StoreEntries]) -> Result<bool, PagerError> {
        let mut more = false;
        for u in updates.iter().filter(|u| u.partial) {
            let index = index_of(at, &u.store);
            let past = index.is_some_and(|i| u.entries.iter().any(|e| e.index > i));
            if !past {
                return Err(self.stalled(&u.store, index.unwrap_or(0)));
            }
            more = true;
        }
        Ok(more)
    }

    /// After a page that said more of `stores`, the verified state moved
    /// in each of them.
    fn moved(
        &self,
        before: &[StoreIndex],
        after: &[StoreIndex],
        stores: &[String],
    ) -> Result<(), PagerError> {
        for s in stores {
            let was = index_of(before, s).unwrap_or(0);
            if index_of(after, s).is_none_or(|now| now <= was) {
                return Err(self.stalled(s, was));
            }
        }
        Ok(())
    }

    fn stalled(&self, store: &str, index: u64) -> PagerError {
        PagerError::NoProgress {
            portal: self.portal.clone(),
            what: self.what.clone(),
            store: store.to_string(),
            index,
        }
    }
}

fn index_of(at: &[StoreIndex], store: &str) -> Option<u64> {
    at.iter().find(|s| s.store == store).map(|s| s.index)
}

#[cfg(test)]
#[path = "pager_tests.rs"]
mod tests;
