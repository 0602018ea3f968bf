use std::collections::BTreeMap;

use mesh_core::audit::Decision;

use super::*;

/// A scratch home, removed on drop.
struct Home(PathBuf);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Home {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn home() -> Home {
    let d = std::env::temp_dir().join(format!(
        "mesh-audit-log-{}-{}",
        std::process::id(),
        rand_core::RngCore::next_u64(&mut rand_core::OsRng)
    ));
    std::fs::create_dir_all(&d).expect("dir");
    Home(d)
}

fn rec(seq: u64) -> Record {
    Record {
        seq,
        time: 1_800_000_000,
        key: "SHA256:k".into(),
        process: None,
        decision: Decision::Allowed,
        detail: BTreeMap::from([("Namespace".to_string(), "git".into())]),
    }
}

fn write(home: &Path, n: u64) -> AuditLog {
    let mut log = AuditLog::open(home).expect("open");
    for _ in 0..n {
        let seq = log.next_seq();
        log.append(&rec(seq)).expect("append");
    }
    log.sync().expect("sync");
    log
}

#[test]
fn records_chain_across_reopening_and_readers_see_what_was_written() {
    let h = home();
    let first = write(&h, 3).head();
    let log = write(&h, 2);
    assert_eq!(log.next_seq(), 5);
    let (records, head) = read(&h, 0).expect("read");
    assert_eq!(records.len(), 5);
    assert_eq!(head, log.head());
    assert_eq!(
        head,
        records.iter().fold(GENESIS, |l, r| audit::link(&l, r))
    );
    assert_ne!(first, log.head());
    let (tail, _) = read(&h, 3).expect("read");
    assert_eq!(tail, records[3..]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.join(FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the log is the user's only");
    }
}

#[test]
fn a_torn_last_line_is_cut_off_and_the_chain_goes_on() {
    let h = home();
    let head = write(&h, 3).head();
    let whole = std::fs::read(h.join(FILE)).expect("read");
    // A crash in the middle of the fourth append.
    let mut torn = whole.clone();
    torn.extend_from_slice(b"eyJTZXEiOjMs");
    std::fs::write(h.join(FILE), &torn).expect("write");
    let (records, at) = read(&h, 0).expect("a reader skips it");
    assert_eq!((records.len(), at), (3, head));
    let again = write(&h, 1);
    assert_eq!(again.next_seq(), 4);
    let (records, head) = read(&h, 0).expect("read");
    assert_eq!(records.len(), 4);
    assert_eq!(head, again.head());
}

#[test]
fn a_log_changed_in_the_middle_is_refused_naming_the_record_and_is_left_as_it_is() {
    let h = home();
    write(&h, 4);
    let whole = std::fs::read_to_string(h.join(FILE)).expect("read");
    let lines: Vec<&str> = whole.lines().collect();
    let other = BASE64.encode(&serde_json::to_vec(&rec(7)).expect("json"));
    let cases: Vec<(&str, Vec<String>, u64)> = vec![
        (
            "a line that is not base64",
            vec![lines[0].into(), "!!!".into(), lines[2].into()],
            1,
        ),
        (
            "a record removed",
            vec![lines[0].into(), lines[2].into(), lines[3].into()],
            1,
        ),
        (
            "a record that says another seq",
            vec![lines[0].into(), lines[1].into(), other],
            2,
        ),
        (
            "not a record",
            vec![BASE64.encode(b"{\"Seq\":0}"), lines[1].into()],
            0,
        ),
    ];
    for (what, bad, seq) in cases {
        let text = bad.join("\n") + "\n";
        std::fs::write(h.join(FILE), &text).expect("write");
        match AuditLog::open(&h) {
            Err(AuditLogError::Damaged { seq: s, .. }) => assert_eq!(s, seq, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(h.join(FILE)).expect("read"),
            text,
            "{what}: the damaged log is left for inspection"
        );
    }
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_log() {
    let h = home();
    let first = write(&h, 1);
    match AuditLog::open(&h) {
        Err(AuditLogError::Busy(_)) => {}
        other => panic!("a second writer: {other:?}"),
    }
    drop(first);
    assert_eq!(write(&h, 1).next_seq(), 2);
}

#[test]
fn reading_on_from_a_position_gives_what_a_whole_read_gives_within_its_take() {
    let h = home();
    drop(write(&h, 7));
    let (whole, head) = read(&h, 0).expect("read");
    let one = whole[0].len();
    // Slices of at most two records, or of at most two records' bytes.
    for take in [
        Take {
            records: 2,
            bytes: usize::MAX,
        },
        Take {
            records: usize::MAX,
            bytes: 2 * one + 1,
        },
    ] {
        let mut at = Position::default();
        let mut got = Vec::new();
        loop {
            let (records, end) = read_at(&h, at, 0, take).expect("read_at");
            if records.is_empty() {
                assert_eq!(end, at, "nothing read, nowhere moved");
                break;
            }
            assert!(records.len() <= 2, "{take:?}");
            got.extend(records);
            at = end;
        }
        assert_eq!((got.clone(), at.head, at.seq), (whole.clone(), head, 7));
    }
    // A position kept across appends reads on from there.
    let at = read_at(&h, Position::default(), 0, Take::ALL)
        .expect("read")
        .1;
    drop(write(&h, 2));
    let (more, end) = read_at(&h, at, 0, Take::ALL).expect("read");
    assert_eq!((more.len(), end.seq), (2, 9));
    assert_eq!(end.head, read(&h, 0).expect("read").1);
    // From the start, skipping what was sent (a sender that kept no offset).
    let (tail, _) = read_at(&h, Position::default(), 7, Take::ALL).expect("read");
    assert_eq!(tail, more);
}
