//! The pager against fake page sources: no network.

use super::*;
use mesh_core::envelope::Signed;
use mesh_core::portal::Entry;

/// A profile to put in fake answers (never verified here).
fn profile() -> Signed {
    let k = mesh_core::objects::RootKeys::generate();
    Signed::sign("x", b"{}".to_vec(), &[&k.authenticate])
}

fn entry(index: u64) -> Entry {
    Entry {
        index,
        envelope: serde_json::Value::Null,
        delta: None,
    }
}

/// One page of store "S" holding `indices`, saying more follow or not.
fn page(profile: &Signed, indices: &[u64], partial: bool) -> DownloadResponse {
    DownloadResponse {
        profile: profile.clone(),
        updates: vec![StoreEntries {
            store: "S".into(),
            entries: indices.iter().copied().map(entry).collect(),
            partial,
            last: 0,
        }],
    }
}

/// What a fake reader holds: the last index of store "S", and how many
/// pages it fetched.
#[derive(Default)]
struct Held {
    at: u64,
    fetched: usize,
}

fn at(h: &Held) -> Vec<StoreIndex> {
    vec![StoreIndex {
        store: "S".into(),
        index: h.at,
    }]
}

/// Runs the pager over `answer` (the page served after a given index).
fn run(
    pager: &Pager,
    answer: impl Fn(u64) -> DownloadResponse,
    keep: impl Fn(&mut Held, &DownloadResponse),
) -> (Held, Result<(), PagerError>) {
    let mut held = Held::default();
    let r = pager.read(
        &mut held,
        at,
        |h, from| {
            assert_eq!(from, at(h).as_slice());
            Ok(answer(h.at))
        },
        |h, page| {
            h.fetched += 1;
            keep(h, &page);
            Ok(())
        },
    );
    (held, r)
}

/// Keeps the last entry of the page, as an honest reader does.
fn honest(h: &mut Held, p: &DownloadResponse) {
    if let Some(e) = p.updates[0].entries.last() {
        h.at = e.index;
    }
}

#[test]
fn an_honest_portal_is_read_to_its_end() {
    let pf = profile();
    let pager = Pager::new("http://portal.test", "a test read");
    let (held, r) = run(&pager, |i| page(&pf, &[i + 1, i + 2], i + 2 < 10), honest);
    r.expect("ten entries in five pages");
    assert_eq!((held.at, held.fetched), (10, 5));
}

#[test]
fn more_for_ever_with_the_same_entries_is_refused_at_once() {
    let pf = profile();
    let pager = Pager::new("http://portal.test", "a test read");
    // A replay: the entries already held, and 'more follow'.
    let (held, r) = run(&pager, |i| page(&pf, &[i.max(1)], true), honest);
    let e = r.expect_err("replayed page");
    assert_eq!(
        e,
        PagerError::NoProgress {
            portal: "http://portal.test".into(),
            what: "a test read".into(),
            store: "S".into(),
            index: 1,
        }
    );
    assert!(e
        .to_string()
        .contains("the portal at http://portal.test is at fault"));
    // The first page moved (0 → 1); the second, a replay, was refused
    // before it was verified.
    assert_eq!(held.fetched, 1);
}

#[test]
fn more_with_no_entries_is_refused() {
    let pf = profile();
    let pager = Pager::new("http://portal.test", "a test read");
    let (held, r) = run(&pager, |_| page(&pf, &[], true), honest);
    assert!(matches!(r, Err(PagerError::NoProgress { index: 0, .. })));
    assert_eq!(held.fetched, 0);
}

#[test]
fn a_page_the_reader_does_not_move_on_is_refused() {
    let pf = profile();
    let pager = Pager::new("http://portal.test", "a test read");
    // New indices each time, but the verified state does not move (the
    // reader kept none of them): no progress, refused after one page.
    let (held, r) = run(&pager, |i| page(&pf, &[i + 1], true), |_, _| {});
    assert!(matches!(r, Err(PagerError::NoProgress { index: 0, .. })));
    assert_eq!(held.fetched, 1);
}

#[test]
fn real_progress_for_ever_stops_at_the_bound() {
    let pf = profile();
    let pager = Pager::new("http://portal.test", "a test read").max_pages(7);
    let (held, r) = run(&pager, |i| page(&pf, &[i + 1], true), honest);
    assert!(matches!(r, Err(PagerError::TooManyPages { pages: 7, .. })));
    assert_eq!(held.fetched, 7);
    let e = AccountError::from(r.expect_err("bound"));
    assert!(e.hint().is_some_and(|h| h.contains("nothing was saved")));
}

#[test]
fn a_store_not_asked_for_cannot_say_more() {
    let pf = profile();
    let pager = Pager::new("http://portal.test", "a test read");
    let mut p = page(&pf, &[5], true);
    p.updates[0].store = "Other".into();
    let r = pager.check(&at(&Held::default()), &p.updates);
    assert!(matches!(r, Err(PagerError::NoProgress { ref store, .. }) if store == "Other"));
}

#[test]
fn the_callers_errors_pass_through() {
    let pf = profile();
    let pager = Pager::new("http://portal.test", "a test read");
    let mut held = Held::default();
    let r: Result<(), AccountError> = pager.read(
        &mut held,
        at,
        |_, _| Ok(page(&pf, &[1], true)),
        |_, _| Err(AccountError::Untrusted("bad entry".into())),
    );
    assert!(matches!(r, Err(AccountError::Untrusted(_))));
}

use crate::AccountError;
