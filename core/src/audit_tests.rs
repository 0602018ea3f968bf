use super::*;

const DEV: &str = "MDEVICE";

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

fn record(seq: u64) -> Vec<u8> {
    let detail = serde_json::json!({"Kind": "Login", "User": "alice"});
    serde_json::to_vec(&Record {
        seq,
        time: 1_800_000_000 + seq,
        key: "SHA256:abc".into(),
        process: Some("42 /usr/bin/ssh".into()),
        decision: Decision::Allowed,
        detail: serde_json::from_value(detail).expect("map"),
    })
    .expect("json")
}

/// Three batches of 2, 3 and 1 records, chained, signed by the device.
fn log(signer: &SigningKey) -> Vec<Signed> {
    let mut prev = GENESIS;
    let mut next = 0;
    let mut out = Vec::new();
    for n in [2u64, 3, 1] {
        let recs: Vec<Vec<u8>> = (next..next + n).map(record).collect();
        let b = Batch::seal(DEV, next, &prev, recs.clone(), signer);
        prev = recs.iter().fold(prev, |l, r| link(&l, r));
        next += n;
        out.push(b);
    }
    out
}

fn batch(env: &Signed) -> Batch {
    env.unverified_object("batch").expect("batch")
}

/// The attacker re-serializes a batch after editing it: without the
/// device's key it keeps the old signatures.
fn edited(env: &Signed, f: impl Fn(&mut Batch)) -> Signed {
    let mut b = batch(env);
    f(&mut b);
    let mut forged = Signed::sign_object(CT_BATCH, &b, &key(9));
    forged.signatures = env.signatures.clone();
    forged
}

#[test]
fn the_device_s_log_verifies_whole_and_in_order() {
    let k = key(1);
    let v = verify(DEV, &log(&k), &[k.public_key()]).expect("verifies");
    assert_eq!(v.records.len(), 6);
    assert!(v.records.iter().enumerate().all(|(i, r)| r.seq == i as u64));
    let all: Vec<Vec<u8>> = (0..6).map(record).collect();
    assert_eq!(v.head, all.iter().fold(GENESIS, |l, r| link(&l, r)));
}

#[test]
fn a_log_that_was_cut_reordered_replayed_or_changed_names_its_first_bad_record() {
    let k = key(1);
    let good = log(&k);
    let keys = [k.public_key()];
    let other = key(2);
    let cases: Vec<(&str, Vec<Signed>, Fault)> = vec![
        (
            "middle batch dropped",
            vec![good[0].clone(), good[2].clone()],
            Fault::Dropped { from: 2, to: 5 },
        ),
        (
            "first batch dropped",
            vec![good[1].clone(), good[2].clone()],
            Fault::Dropped { from: 0, to: 2 },
        ),
        (
            "a batch replayed",
            vec![good[0].clone(), good[1].clone(), good[0].clone()],
            Fault::Reordered { seq: 0 },
        ),
        (
            "two batches swapped",
            vec![good[0].clone(), good[2].clone(), good[1].clone()],
            Fault::Dropped { from: 2, to: 5 },
        ),
        (
            "a record's byte changed",
            vec![
                good[0].clone(),
                edited(&good[1], |b| b.records[1].0[10] ^= 1),
            ],
            Fault::Forged {
                batch: 1,
                first: 2,
                detail: String::new(),
            },
        ),
        (
            "a record removed from a batch",
            vec![
                good[0].clone(),
                edited(&good[1], |b| drop(b.records.remove(1))),
            ],
            Fault::Forged {
                batch: 1,
                first: 2,
                detail: String::new(),
            },
        ),
        (
            "signed by another key",
            vec![
                good[0].clone(),
                Batch::seal(DEV, 2, &GENESIS, vec![record(2)], &other),
            ],
            Fault::Forged {
                batch: 1,
                first: 2,
                detail: String::new(),
            },
        ),
    ];
    for (what, served, want) in cases {
        let got = verify(DEV, &served, &keys).expect_err(what);
        match (&got, &want) {
            (
                Fault::Forged { batch, first, .. },
                Fault::Forged {
                    batch: b, first: f, ..
                },
            ) => {
                assert_eq!((batch, first), (b, f), "{what}: {got}")
            }
            _ => assert_eq!(got, want, "{what}"),
        }
    }
}

#[test]
fn the_device_s_own_batches_that_do_not_chain_are_named_changed() {
    // Batches the device key signed but that do not continue each other:
    // a head that does not follow from the records, a Prev from elsewhere,
    // a record that says another seq, another device's batch.
    let k = key(1);
    let keys = [k.public_key()];
    let first = Batch::seal(DEV, 0, &GENESIS, vec![record(0), record(1)], &k);
    let head = batch(&first).head;
    let head: Link = head.try_into().expect("32");
    let mut wrong_head = batch(&Batch::seal(DEV, 2, &head, vec![record(2)], &k));
    wrong_head.head = GENESIS.to_vec();
    let wrong_head = Signed::sign_object(CT_BATCH, &wrong_head, &k);
    let cases: Vec<(&str, Signed, Fault)> = vec![
        (
            "a Prev that is not the last head",
            Batch::seal(DEV, 2, &[7; 32], vec![record(2)], &k),
            Fault::Changed { seq: 2 },
        ),
        (
            "a Head that is not the records'",
            wrong_head,
            Fault::Changed { seq: 2 },
        ),
        (
            "a record that says it is another",
            Batch::seal(DEV, 2, &head, vec![record(3)], &k),
            Fault::Malformed {
                seq: 2,
                detail: "it says it is record 3".into(),
            },
        ),
    ];
    for (what, second, want) in cases {
        let got = verify(DEV, &[first.clone(), second], &keys).expect_err(what);
        assert_eq!(got, want, "{what}");
    }
    let theirs = Batch::seal("MOTHER", 2, &head, vec![record(2)], &k);
    assert!(matches!(
        verify(DEV, &[first.clone(), theirs], &keys),
        Err(Fault::Forged { batch: 1, .. })
    ));
    let big = vec![b' '; MAX_RECORD + 1];
    let over = Batch::seal(DEV, 2, &head, vec![big], &k);
    assert!(matches!(
        verify(DEV, &[first, over], &keys),
        Err(Fault::Malformed { seq: 2, .. })
    ));
}

#[test]
fn a_newer_agent_s_fields_and_decisions_are_kept_and_ignored() {
    let mut v: serde_json::Value = serde_json::from_slice(&record(0)).expect("json");
    v["Decision"] = "AskedTwice".into();
    v["Token"] = serde_json::json!({"Serial": 7});
    let bytes = serde_json::to_vec(&v).expect("json");
    let k = key(1);
    let b = Batch::seal(DEV, 0, &GENESIS, vec![bytes], &k);
    let r = &verify(DEV, &[b], &[k.public_key()])
        .expect("verifies")
        .records[0];
    assert_eq!(r.decision, Decision::Unknown);
    assert_eq!(r.detail["Token"], serde_json::json!({"Serial": 7}));
    assert_eq!(r.detail["User"], "alice");
}
