//! What a reader refuses, one case per way a portal can rewrite history.

use super::*;
use crate::objects::{AccountKeys, RootKeys};

/// An account with a writer history and what it appended, transaction by
/// transaction: (store, envelopes) then the signed checkpoint.
struct Account {
    keys: std::rc::Rc<AccountKeys>,
    profile: ProfileAccount,
    writer: History,
    /// Every entry per store, as the portal holds it (index = position + 1).
    stores: BTreeMap<String, Vec<Signed>>,
}

impl Account {
    fn new() -> Account {
        let root = RootKeys::generate();
        let keys = std::rc::Rc::new(AccountKeys::generate(&root.profile_udf()));
        let env = root.profile(
            "alice@example.com",
            "https://portal",
            None,
            &keys,
            Default::default(),
            None,
        );
        let profile = ProfileAccount::verify_self_signed(&env).expect("profile");
        Account {
            keys,
            profile,
            writer: History::default(),
            stores: BTreeMap::new(),
        }
    }

    fn entry(&self, tag: &str) -> Signed {
        Signed::sign("Test", tag.as_bytes().to_vec(), &[&self.keys.admin_sign])
    }

    /// One administrator transaction appending `entries` to `store_name`.
    fn transact(&mut self, store_name: &str, tags: &[&str]) {
        let envs: Vec<Signed> = tags.iter().map(|t| self.entry(t)).collect();
        let len = self.stores.get(store_name).map_or(0, Vec::len) as u64;
        let update = StoreUpdate {
            store: store_name.into(),
            expected: len,
            delta: None,
            envelopes: envs.clone(),
        };
        let cp = self.writer.next(&self.profile.udf(), &[update], 100, None);
        let signed = Signed::sign_object(ct::CHECKPOINT, &cp, &self.keys.admin_sign);
        for (i, e) in envs.iter().enumerate() {
            self.writer
                .entry(store_name, len + 1 + i as u64, e)
                .expect("writer entry");
        }
        self.writer
            .checkpoint(cp.serial, &signed, &self.profile)
            .expect("writer checkpoint");
        self.stores
            .entry(store_name.into())
            .or_default()
            .extend(envs);
        self.stores
            .entry(store::CHECKPOINT.into())
            .or_default()
            .push(signed);
    }

    /// A reader downloading `served` (store, index, envelope) from `start`.
    fn read(&self, start: &History, served: &[(String, u64, Signed)]) -> Result<History> {
        let mut h = start.clone();
        for (s, i, e) in served {
            if s == store::CHECKPOINT {
                h.checkpoint(*i, e, &self.profile)?;
            } else {
                h.entry(s, *i, e)?;
            }
        }
        h.settle(store::COVERED)?;
        Ok(h)
    }

    /// Everything the portal holds after `after` entries per store.
    fn served(&self, after: &History) -> Vec<(String, u64, Signed)> {
        let mut out = Vec::new();
        for (s, envs) in &self.stores {
            let from = if s == store::CHECKPOINT {
                after.serial()
            } else {
                after.position(s).index
            };
            for (i, e) in envs.iter().enumerate().skip(from as usize) {
                out.push((s.clone(), i as u64 + 1, e.clone()));
            }
        }
        out
    }
}

fn three_transactions() -> Account {
    let mut a = Account::new();
    a.transact(store::ACCESS, &["access-1"]);
    a.transact(store::DEVICE, &["device-1", "device-2"]);
    a.transact(store::ACCESS, &["access-2 (revokes device-2)"]);
    a
}

#[test]
fn an_honest_history_reads_in_one_go_and_incrementally() {
    let a = three_transactions();
    let full = a.read(&History::default(), &a.served(&History::default()));
    let full = full.expect("honest history");
    assert_eq!(full.serial(), 3);
    assert_eq!(full.position(store::DEVICE).index, 2);
    assert_eq!(full, a.writer, "the reader ends where the writer is");

    let mut b = Account::new();
    b.keys = a.keys.clone();
    b.profile = a.profile.clone();
    b.transact(store::ACCESS, &["access-1"]);
    let first = b.read(&History::default(), &b.served(&History::default()));
    let first = first.expect("first part");
    b.transact(store::DEVICE, &["device-1"]);
    let rest = b.served(&first);
    assert_eq!(rest.len(), 2, "one entry and one checkpoint");
    b.read(&first, &rest).expect("incremental read");
}

fn at(v: &[(String, u64, Signed)], s: &str, i: u64) -> usize {
    v.iter()
        .position(|(x, j, _)| x == s && *j == i)
        .expect("entry")
}

/// Each case edits what the portal serves to a fresh reader.
#[test]
fn a_fresh_reader_refuses_every_rewrite() {
    type Edit = fn(&Account, &mut Vec<(String, u64, Signed)>);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "the revoking access list dropped, checkpoint kept",
            |_, v| {
                let i = at(v, store::ACCESS, 2);
                v.remove(i);
            },
            "withheld",
        ),
        (
            "an older entry replayed as the latest",
            |_, v| {
                let i = at(v, store::ACCESS, 2);
                v[i].2 = v[at(v, store::ACCESS, 1)].2.clone();
            },
            "not the history",
        ),
        (
            "two entries swapped",
            |_, v| {
                let (i, j) = (at(v, store::DEVICE, 1), at(v, store::DEVICE, 2));
                let e = v[i].2.clone();
                v[i].2 = v[j].2.clone();
                v[j].2 = e;
            },
            "not the history",
        ),
        (
            "an entry substituted by another admin-signed one",
            |a, v| {
                let i = at(v, store::DEVICE, 2);
                v[i].2 = a.entry("device-2, forged later");
            },
            "not the history",
        ),
        (
            "an entry appended that no checkpoint signs",
            |a, v| {
                v.push((store::DEVICE.into(), 3, a.entry("device-3")));
            },
            "past the",
        ),
        (
            "an index skipped",
            |_, v| {
                let i = at(v, store::DEVICE, 2);
                v[i].1 = 3;
            },
            "skips",
        ),
        (
            "a checkpoint dropped",
            |_, v| {
                let c = at(v, store::CHECKPOINT, 2);
                v.remove(c);
            },
            "skips",
        ),
        (
            "checkpoints swapped",
            |_, v| {
                let (i, j) = (at(v, store::CHECKPOINT, 2), at(v, store::CHECKPOINT, 3));
                let e = v[i].2.clone();
                v[i].2 = v[j].2.clone();
                v[j].2 = e;
            },
            "serial",
        ),
        (
            "a checkpoint signed by another account",
            |_, v| {
                let other = AccountKeys::generate("MOTHER");
                let i = at(v, store::CHECKPOINT, 3);
                let mut c: Checkpoint = v[i].2.unverified_object("c").expect("c");
                c.heads[0].index = 1;
                v[i].2 = Signed::sign_object(ct::CHECKPOINT, &c, &other.admin_sign);
            },
            "not authorized",
        ),
    ];
    let a = three_transactions();
    for (name, edit, want) in cases {
        let mut served = a.served(&History::default());
        edit(&a, &mut served);
        let err = a
            .read(&History::default(), &served)
            .expect_err(name)
            .to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn a_reader_with_history_refuses_rollback_and_forks() {
    let mut a = three_transactions();
    let seen = a.read(&History::default(), &a.served(&History::default()));
    let seen = seen.expect("honest");
    // The limit of a reader with no history (docs/DESIGN.md): the whole
    // account as it was one transaction earlier is a consistent history.
    let mut older = a.served(&History::default());
    older.retain(|(s, i, _)| !(s == store::ACCESS && *i == 2 || s == store::CHECKPOINT && *i == 3));
    assert!(a.read(&History::default(), &older).is_ok());
    // The portal reports fewer entries or checkpoints than the reader saw.
    for (s, n) in [(store::ACCESS, 1), (store::CHECKPOINT, 2)] {
        let err = seen
            .behind(&[StoreIndex {
                store: s.into(),
                index: n,
            }])
            .expect_err(s);
        assert!(matches!(err, HistoryError::Rollback { .. }), "{s}: {err}");
    }
    seen.behind(&[StoreIndex {
        store: store::INBOUND.into(),
        index: 0,
    }])
    .expect("the Inbound spool is not covered");

    // A fork: another administrator's transaction the reader's portal
    // never showed, built on checkpoint 2.
    let mut fork = Account {
        keys: a.keys.clone(),
        profile: a.profile.clone(),
        writer: History::default(),
        stores: BTreeMap::new(),
    };
    fork.transact(store::ACCESS, &["access-1"]);
    fork.transact(store::DEVICE, &["device-1", "device-2"]);
    fork.transact(store::ACCESS, &["access-2, another branch"]);
    fork.transact(store::ACCESS, &["access-3"]);
    let next = fork.served(&seen);
    let err = a.read(&seen, &next).expect_err("fork").to_string();
    assert!(
        err.contains("fork") || err.contains("not the history"),
        "{err}"
    );

    // While the honest continuation reads.
    a.transact(store::ACCESS, &["access-3"]);
    a.read(&seen, &a.served(&seen)).expect("continuation");
}

/// A checkpoint that starts administrator epoch 1 (signed by epoch 0), then
/// what a revoked administrator holding epoch 0's key, or the root, signs.
#[test]
fn administrator_epochs_follow_the_history() {
    use crate::authority::RootKeys;
    use crate::keys::AgreementKey;
    let root = RootKeys::generate();
    let e0 = AccountKeys::generate(&root.profile_udf());
    let env = root.profile(
        "alice@example.com",
        "https://portal",
        None,
        &e0,
        Default::default(),
        None,
    );
    let profile = ProfileAccount::verify_self_signed(&env).expect("profile");
    let e1 = e0.next_epoch();
    let holder = AgreementKey::generate();
    let start = e1
        .epoch_entry(Default::default(), &[holder.public_key()])
        .expect("epoch");
    let mut h = History::default();
    let sign =
        |c: &Checkpoint, k: &crate::keys::SigningKey| Signed::sign_object(ct::CHECKPOINT, c, k);
    let cp1 = h.next(&profile.udf(), &[], 1, Some(start.clone()));
    h.checkpoint(1, &sign(&cp1, &e0.admin_sign), &profile)
        .expect("epoch 0 starts epoch 1");
    let now = h.profile(&profile);
    assert!(e1.matches(&now) && now.epoch() == 1);

    let cases: Vec<(&str, Checkpoint, &crate::keys::SigningKey, Option<&str>)> = vec![
        (
            "the old epoch's key",
            h.next(&profile.udf(), &[], 2, None),
            &e0.admin_sign,
            Some("not the administrator key of epoch 1"),
        ),
        (
            "the old key starting its own epoch",
            h.next(&profile.udf(), &[], 2, Some(start.clone())),
            &e0.admin_sign,
            Some("not the administrator key"),
        ),
        (
            "an epoch number that is not next",
            h.next(&profile.udf(), &[], 2, Some(start.clone())),
            &e1.admin_sign,
            Some("starts administrator epoch 1 after 1"),
        ),
        (
            "the current epoch's key",
            h.next(&profile.udf(), &[], 2, None),
            &e1.admin_sign,
            None,
        ),
        (
            "the root",
            h.next(&profile.udf(), &[], 2, None),
            &root.profile,
            None,
        ),
    ];
    for (name, c, key, want) in cases {
        let mut reader = h.clone();
        match (reader.checkpoint(2, &sign(&c, key), &profile), want) {
            (Ok(()), None) => {}
            (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
            (r, _) => panic!("{name}: {r:?}"),
        }
    }
}

/// A fresh reader that keeps only the newest access list starts the Access
/// store at the head the checkpoint before its last change signs: the
/// entries after it must still be exactly the signed ones.
#[test]
fn a_reader_may_start_a_store_at_a_signed_head() {
    let a = three_transactions();
    let all = a.served(&History::default());
    let checkpoints: Vec<_> = all
        .iter()
        .filter(|(s, _, _)| s == store::CHECKPOINT)
        .cloned()
        .collect();
    let mut h = a.read_unsettled(&History::default(), &checkpoints);
    // Checkpoint 2 (before the last Access change) signs Access up to 1.
    let head = a.checkpoint_head(2, store::ACCESS);
    assert_eq!(head.index, 1);
    h.start_at(&head).expect("start");
    let rest: Vec<_> = a
        .served(&h)
        .into_iter()
        .filter(|(s, _, _)| s != store::CHECKPOINT)
        .collect();
    assert_eq!(
        rest.iter().filter(|(s, _, _)| s == store::ACCESS).count(),
        1,
        "only the newest access list"
    );
    let read = a.read(&h, &rest).expect("honest");
    assert_eq!(
        read.position(store::ACCESS),
        a.writer.position(store::ACCESS)
    );

    // Another entry in the newest one's place, or none, is refused.
    let mut other = rest.clone();
    let i = at(&other, store::ACCESS, 2);
    other[i].2 = a.entry("access-2, not signed");
    let err = a.read(&h, &other).expect_err("substituted");
    assert!(matches!(err, HistoryError::Rewritten { .. }), "{err}");
    let mut none = rest.clone();
    none.remove(at(&none, store::ACCESS, 2));
    let err = a.read(&h, &none).expect_err("withheld");
    assert!(matches!(err, HistoryError::Truncated { .. }), "{err}");

    // Only a store nothing was read of, and never past the signed head.
    let mut ahead = a.checkpoint_head(3, store::ACCESS);
    ahead.index += 1;
    let mut fresh = a.read_unsettled(&History::default(), &checkpoints);
    assert!(fresh.start_at(&ahead).is_err(), "past the signed head");
    assert!(read.clone().start_at(&head).is_err(), "already read");
}

impl Account {
    /// Like `read`, without settling (a download in parts).
    fn read_unsettled(&self, start: &History, served: &[(String, u64, Signed)]) -> History {
        let mut h = start.clone();
        for (s, i, e) in served {
            if s == store::CHECKPOINT {
                h.checkpoint(*i, e, &self.profile).expect("checkpoint");
            } else {
                h.entry(s, *i, e).expect("entry");
            }
        }
        h
    }

    /// The head of `store_name` in checkpoint `serial`.
    fn checkpoint_head(&self, serial: u64, store_name: &str) -> Head {
        let env = &self.stores[store::CHECKPOINT][serial as usize - 1];
        let (c, _) = Checkpoint::verify(env, &self.profile).expect("checkpoint");
        c.head(store_name).cloned().expect("head")
    }
}

/// Dates are the signer's, but only in order: a checkpoint dated before
/// the one it follows (a thief slipping its transaction before a
/// recovery's `--since`) is refused; a writer whose clock is behind dates
/// its checkpoint as the previous one.
#[test]
fn a_checkpoint_dated_before_its_predecessor_is_refused() {
    let a = three_transactions();
    let seen = a.read(&History::default(), &a.served(&History::default()));
    let seen = seen.expect("honest");
    let behind = a.writer.next(&a.profile.udf(), &[], 5, None);
    assert_eq!(behind.issued, 100, "the writer never dates back");
    for (issued, refused) in [(99, true), (0, true), (100, false), (101, false)] {
        let mut cp = a.writer.next(&a.profile.udf(), &[], 100, None);
        cp.issued = issued;
        let env = Signed::sign_object(ct::CHECKPOINT, &cp, &a.keys.admin_sign);
        let got = a.read(&seen, &[(store::CHECKPOINT.to_string(), 4, env)]);
        match (refused, got) {
            (true, Err(e)) => assert!(e.to_string().contains("before the checkpoint"), "{e}"),
            (false, Ok(h)) => assert_eq!(h.serial(), 4),
            (r, got) => panic!("dated {issued}: refused {r}, got {got:?}"),
        }
    }
}
