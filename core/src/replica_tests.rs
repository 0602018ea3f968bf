//! The replica against pages made here: a real writer history, a reader
//! that keeps what it is handed.

use super::*;
use crate::objects::{AccountKeys, RootKeys};
use crate::portal::{ct, StoreUpdate};

/// What a test reader holds.
#[derive(Default)]
struct Reader {
    history: History,
    kept: Vec<(String, Signed)>,
    loose: Vec<u64>,
    inbound: bool,
    refuse: Option<String>,
}

impl Keeper for Reader {
    fn history(&mut self) -> &mut History {
        &mut self.history
    }
    fn unchained(&self, store: &str) -> bool {
        self.inbound && store == crate::portal::store::INBOUND
    }
    fn loose(&mut self, _: &ProfileAccount, _: &str, e: &Entry) -> Result<(), String> {
        self.loose.push(e.index);
        Ok(())
    }
    fn keep(&mut self, _: &ProfileAccount, store: &str, env: Signed) -> Result<(), String> {
        if let Some(r) = &self.refuse {
            return Err(r.clone());
        }
        self.kept.push((store.to_string(), env));
        Ok(())
    }
}

/// An account and one administrator transaction of two Device entries:
/// its profile, the page a portal serves for it (Device first), and the
/// envelopes.
fn page() -> (ProfileAccount, Vec<StoreEntries>, Vec<Signed>) {
    let root = RootKeys::generate();
    let keys = AccountKeys::generate(&root.profile_udf());
    let env = root.profile(
        "alice@example.com",
        "https://portal",
        None,
        &keys,
        Default::default(),
        None,
    );
    let profile = ProfileAccount::verify_self_signed(&env).expect("profile");
    let envs: Vec<Signed> = ["a", "b"]
        .iter()
        .map(|t| Signed::sign("Test", t.as_bytes().to_vec(), &[&keys.admin_sign]))
        .collect();
    let update = StoreUpdate {
        store: store::DEVICE.into(),
        expected: 0,
        envelopes: envs.clone(),
        delta: None,
    };
    let cp = History::default().next(&profile.udf(), &[update], 100, None);
    let signed = Signed::sign_object(ct::CHECKPOINT, &cp, &keys.admin_sign);
    let whole = |index: u64, e: &Signed| Entry {
        index,
        envelope: serde_json::to_value(e).expect("json"),
        delta: None,
    };
    let updates = vec![
        StoreEntries {
            store: store::DEVICE.into(),
            entries: vec![whole(1, &envs[0]), whole(2, &envs[1])],
            partial: false,
            last: 2,
        },
        StoreEntries {
            store: store::CHECKPOINT.into(),
            entries: vec![whole(1, &signed)],
            partial: false,
            last: 1,
        },
    ];
    (profile, updates, envs)
}

#[test]
fn a_page_is_chained_checkpoints_first_and_kept() {
    let (profile, updates, envs) = page();
    let mut r = Reader::default();
    apply(&mut r, &profile, &updates).expect("page");
    assert_eq!(r.history.serial(), 1);
    assert_eq!(r.history.position(store::DEVICE).index, 2);
    r.history
        .settle([store::DEVICE])
        .expect("signed by the checkpoint");
    let kept: Vec<&Signed> = r.kept.iter().map(|(_, e)| e).collect();
    assert_eq!(kept, envs.iter().collect::<Vec<_>>());
}

#[test]
fn a_gap_a_rollback_and_a_change_are_refused() {
    let (profile, updates, _) = page();
    // The second entry alone: a gap.
    let mut gap = updates.clone();
    gap[0].entries.remove(0);
    let e = apply(&mut Reader::default(), &profile, &gap).expect_err("gap");
    assert!(
        matches!(e, ReplicaError::History(HistoryError::Gap { .. })),
        "{e}"
    );
    // A reader that holds both entries told the store ends at 1.
    let mut r = Reader::default();
    apply(&mut r, &profile, &updates).expect("page");
    let mut behind = updates.clone();
    behind[0].entries.clear();
    behind[0].last = 1;
    behind.truncate(1);
    let e = apply(&mut r, &profile, &behind).expect_err("rollback");
    assert!(
        matches!(e, ReplicaError::History(HistoryError::Rollback { .. })),
        "{e}"
    );
    // A change where a whole entry must come.
    let mut delta = updates.clone();
    delta[0].entries[0].delta = Some(crate::changes::AccessDelta {
        edits: Vec::new(),
        signatures: Vec::new(),
    });
    let e = apply(&mut Reader::default(), &profile, &delta).expect_err("change");
    assert!(e.to_string().contains("only a whole entry"), "{e}");
}

#[test]
fn the_keepers_refusal_names_the_entry_and_unchained_stores_are_a_parameter() {
    let (profile, mut updates, _) = page();
    let mut r = Reader {
        refuse: Some("bad signature".into()),
        ..Reader::default()
    };
    let e = apply(&mut r, &profile, &updates).expect_err("refused");
    assert_eq!(e.to_string(), "Device entry 1: bad signature");
    updates.push(StoreEntries {
        store: store::INBOUND.into(),
        entries: vec![Entry {
            index: 7,
            envelope: serde_json::Value::Null,
            delta: None,
        }],
        partial: false,
        last: 7,
    });
    // A server reader asked for no such store.
    let e = apply(&mut Reader::default(), &profile, &updates).expect_err("not asked");
    assert!(e.to_string().contains("not asked for"), "{e}");
    // A device keeps it outside the history.
    let mut r = Reader {
        inbound: true,
        ..Reader::default()
    };
    apply(&mut r, &profile, &updates).expect("inbound");
    assert_eq!(r.loose, vec![7]);
}
