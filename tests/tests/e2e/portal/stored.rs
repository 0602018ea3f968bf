//! Access lists stored as changes (issue 24): the portal keeps each version
//! as its change from the one before (every 16th whole), counts the stored
//! bytes against the quota, and converts a database written whole by an
//! older portal on start; readers get the same bytes before and after.

use mesh_tests::raw::{connect_from, post};
use mesh_tests::{Backend, Device, PortalDb, PortalProc, Scratch, Val};

use super::ADDR;

/// The Access store through the unauthenticated read: (index, envelope).
fn public_access(url: &str) -> Vec<(u64, String)> {
    let body =
        serde_json::json!({"AccountAddress": ADDR, "Select": [{"Store": "Access", "Index": 0}]});
    let (status, answer) = post(
        connect_from("127.0.0.1", url),
        "/mesh/v1/Public",
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer:.300}");
    let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
    v["Updates"][0]["Entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["Index"].as_u64().expect("index"),
                e["Envelope"].to_string(),
            )
        })
        .collect()
}

/// (rows stored as changes, bytes of the Access rows, the account's count,
/// the bytes of all its rows).
fn stored(db: &PortalDb) -> (i64, i64, i64, i64) {
    let r = db.row(
        "SELECT (SELECT COUNT(*) FROM entries WHERE store = 'Access' AND whole_len IS NOT NULL),
                (SELECT COALESCE(SUM(length(data)), 0) FROM entries WHERE store = 'Access'),
                (SELECT bytes FROM accounts),
                (SELECT COALESCE(SUM(length(data)), 0) FROM entries)",
        &[],
    );
    (r[0].int(), r[1].int(), r[2].int(), r[3].int())
}

/// Rewrite the database as a portal from before stored it: every access
/// list whole, no `whole_len`, the schema version before it, the byte
/// count of whole lists.
fn as_old_layout(db: &PortalDb, account: &str) {
    for (idx, whole) in db.access_lists(account) {
        db.execute(
            "UPDATE entries SET data = $1, whole_len = NULL WHERE store = 'Access' AND idx = $2",
            &[whole.into(), Val::Int(idx)],
        );
    }
    db.execute("ALTER TABLE entries DROP COLUMN whole_len", &[]);
    match db {
        PortalDb::Sqlite(_) => db.execute("PRAGMA user_version = 3", &[]),
        PortalDb::Postgres(_) => db.execute("DELETE FROM mesh_schema WHERE version >= 3", &[]),
    };
    db.execute(
        "UPDATE accounts SET bytes = (SELECT SUM(length(data)) FROM entries)",
        &[],
    );
}

fn access_lists_are_stored_as_changes_and_old_databases_migrate(backend: Backend) {
    let dir = Scratch::new("stored-changes");
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("profile")
        .to_string();
    for name in ["phone", "tablet", "watch"] {
        Device::new(&dir.0, name).join(&a, ADDR, &portal.url, name);
    }
    a.ok(&["device", "revoke", "phone"]);
    let served = public_access(&portal.url);
    assert_eq!(served.len(), 5, "five lists");
    let db = portal.db.clone();
    let whole: i64 = db
        .access_lists(&udf)
        .iter()
        .map(|(_, w)| w.len() as i64)
        .sum();
    let (changes, access_bytes, counted, all) = stored(&db);
    assert_eq!(changes, 4, "lists 2 to 5 are changes");
    assert!(access_bytes < whole, "{access_bytes} of {whole} bytes");
    assert_eq!(counted, all, "the quota counts the stored bytes");
    let packed = access_bytes;

    // A database an older portal wrote: converted on start, the same bytes served.
    let listen = portal.url.trim_start_matches("http://").to_string();
    // Stopped (its exit status is another test's business).
    let _ = portal.stop();
    as_old_layout(&db, &udf);
    let (_, old_bytes, old_counted, _) = stored_old(&db);
    assert_eq!(old_bytes, whole);
    let portal = PortalProc::start_db(&db, &listen, &[]);
    assert_eq!(public_access(&portal.url), served, "byte for byte");
    let (changes, access_bytes, counted, all) = stored(&db);
    assert_eq!(changes, 4, "migrated");
    assert_eq!(
        access_bytes, packed,
        "stored as a portal that wrote them stores them"
    );
    assert_eq!(counted, all, "the count follows the conversion");
    assert!(counted < old_counted, "{counted} < {old_counted}");
    // And the account goes on: a device revoked, every list read whole.
    a.ok(&["device", "revoke", "tablet"]);
    let watch = Device::new(&dir.0, "watch");
    assert!(watch.ok(&["sync"]).contains("tablet"));
    assert_eq!(public_access(&portal.url).len(), 6);
}

/// The old layout has no `whole_len`: (0, Access bytes, count, all bytes).
fn stored_old(db: &PortalDb) -> (i64, i64, i64, i64) {
    let r = db.row(
        "SELECT (SELECT COALESCE(SUM(length(data)), 0) FROM entries WHERE store = 'Access'),
                (SELECT bytes FROM accounts),
                (SELECT COALESCE(SUM(length(data)), 0) FROM entries)",
        &[],
    );
    (0, r[0].int(), r[1].int(), r[2].int())
}

mesh_tests::on_both_backends!(access_lists_are_stored_as_changes_and_old_databases_migrate);
