//! The served index (PROTOCOL.md §18): the files and OCSP answers of the
//! `Serve` members of an account's Published entries, latest wins, kept
//! in the transaction that appends the entries. Both backends' SQL.

use mesh_core::envelope::Signed;
use mesh_core::objects::CatalogedApplication;
use mesh_core::portal::store::PUBLISHED;
use mesh_core::serve::Checked;

use super::{Append, StorageError};

/// A served file: content type and bytes.
pub type ServedFile = (String, Vec<u8>);
/// A served OCSP answer: nextUpdate and the DER response.
pub type ServedAnswer = (u64, Vec<u8>);

/// The `Serve` members of the Published entries of `updates`, in order.
/// The service checked them before (a bad one refuses the transaction);
/// an entry that does not parse here serves nothing.
pub(super) fn of(updates: &[Append]) -> Vec<Checked> {
    updates
        .iter()
        .filter(|u| u.store == PUBLISHED)
        .flat_map(|u| u.entries.iter())
        .filter_map(|e| {
            let env: Signed = serde_json::from_str(e).ok()?;
            let app: CatalogedApplication = env.unverified_object("published entry").ok()?;
            mesh_core::serve::of(&app).ok()??.check().ok()
        })
        .collect()
}

pub(super) const SQLITE: &str = "
CREATE TABLE IF NOT EXISTS served_files (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (account, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS served_ocsp (
    account TEXT NOT NULL,
    issuer_key_hash TEXT NOT NULL,
    serial TEXT NOT NULL,
    next_update INTEGER NOT NULL,
    response BLOB NOT NULL,
    PRIMARY KEY (account, issuer_key_hash, serial)
) WITHOUT ROWID;
";

pub(super) const POSTGRES: &str = "
CREATE TABLE IF NOT EXISTS served_files (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (account, name)
);
CREATE TABLE IF NOT EXISTS served_ocsp (
    account TEXT NOT NULL,
    issuer_key_hash TEXT NOT NULL,
    serial TEXT NOT NULL,
    next_update BIGINT NOT NULL,
    response BYTEA NOT NULL,
    PRIMARY KEY (account, issuer_key_hash, serial)
);
";

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn sqlite_upsert(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    updates: &[Append],
) -> Result<(), StorageError> {
    use rusqlite::params;
    for c in of(updates) {
        for f in &c.files {
            tx.prepare_cached(
                "INSERT INTO served_files (account, name, content_type, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account, name) DO UPDATE SET content_type = excluded.content_type, body = excluded.body",
            )?
            .execute(params![account, f.name, f.content_type, f.body])?;
        }
        for a in &c.ocsp {
            tx.prepare_cached(
                "INSERT INTO served_ocsp (account, issuer_key_hash, serial, next_update, response)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account, issuer_key_hash, serial) DO UPDATE
                 SET next_update = excluded.next_update, response = excluded.response",
            )?
            .execute(params![
                account,
                a.issuer_key_hash,
                a.serial,
                i(a.next_update),
                a.response
            ])?;
        }
    }
    Ok(())
}

pub(super) fn sqlite_file(
    c: &rusqlite::Connection,
    account: &str,
    name: &str,
) -> Result<Option<ServedFile>, StorageError> {
    use rusqlite::OptionalExtension;
    Ok(c.prepare_cached(
        "SELECT content_type, body FROM served_files WHERE account = ?1 AND name = ?2",
    )?
    .query_row(rusqlite::params![account, name], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()?)
}

pub(super) fn sqlite_ocsp(
    c: &rusqlite::Connection,
    account: &str,
    key: &str,
    serial: &str,
) -> Result<Option<ServedAnswer>, StorageError> {
    use rusqlite::OptionalExtension;
    Ok(c.prepare_cached(
        "SELECT next_update, response FROM served_ocsp
         WHERE account = ?1 AND issuer_key_hash = ?2 AND serial = ?3",
    )?
    .query_row(rusqlite::params![account, key, serial], |r| {
        Ok((u(r.get(0)?), r.get(1)?))
    })
    .optional()?)
}

pub(super) fn postgres_upsert(
    tx: &mut ::postgres::Transaction<'_>,
    account: &str,
    updates: &[Append],
) -> Result<(), StorageError> {
    for c in of(updates) {
        for f in &c.files {
            tx.execute(
                "INSERT INTO served_files (account, name, content_type, body) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account, name) DO UPDATE SET content_type = excluded.content_type, body = excluded.body",
                &[&account, &f.name, &f.content_type, &f.body],
            )?;
        }
        for a in &c.ocsp {
            tx.execute(
                "INSERT INTO served_ocsp (account, issuer_key_hash, serial, next_update, response)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (account, issuer_key_hash, serial) DO UPDATE
                 SET next_update = excluded.next_update, response = excluded.response",
                &[
                    &account,
                    &a.issuer_key_hash,
                    &a.serial,
                    &i(a.next_update),
                    &a.response,
                ],
            )?;
        }
    }
    Ok(())
}

pub(super) fn postgres_file(
    c: &mut impl ::postgres::GenericClient,
    account: &str,
    name: &str,
) -> Result<Option<ServedFile>, StorageError> {
    Ok(c.query_opt(
        "SELECT content_type, body FROM served_files WHERE account = $1 AND name = $2",
        &[&account, &name],
    )?
    .map(|r| (r.get(0), r.get(1))))
}

pub(super) fn postgres_ocsp(
    c: &mut impl ::postgres::GenericClient,
    account: &str,
    key: &str,
    serial: &str,
) -> Result<Option<ServedAnswer>, StorageError> {
    Ok(c.query_opt(
        "SELECT next_update, response FROM served_ocsp
             WHERE account = $1 AND issuer_key_hash = $2 AND serial = $3",
        &[&account, &key, &serial],
    )?
    .map(|r| (u(r.get(0)), r.get(1))))
}

#[cfg(test)]
mod tests {
    use mesh_core::objects::{AccountKeys, RootKeys};
    use mesh_core::serve::{Serve, ServedOcsp};

    use super::super::{AccountRecord, Sqlite, Storage, StorageError};
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef01234567";

    fn entry(keys: &AccountKeys, der: &[u8]) -> String {
        let app = CatalogedApplication {
            uid: "status".into(),
            data: serde_json::json!({}),
            serve: Some(Serve {
                ocsp: vec![ServedOcsp {
                    issuer_key_hash: KEY.into(),
                    serial: "1f".into(),
                    next_update: 7,
                    response: data_encoding::BASE64.encode(der),
                }],
                ..Default::default()
            }),
        };
        let env = Signed::sign_object(mesh_core::ct::CATALOGED_APPLICATION, &app, &keys.admin_sign);
        serde_json::to_string(&env).expect("json")
    }

    fn published(expected: u64, data: String) -> Vec<Append> {
        vec![Append {
            store: PUBLISHED.into(),
            expected: Some(expected),
            entries: vec![data],
        }]
    }

    /// The index moves with the append's transaction: a refused append
    /// (here a conflict) leaves it as it was; a later answer replaces one.
    #[test]
    fn the_index_follows_the_appends_transaction() {
        let dir = std::env::temp_dir().join(format!("mesh-served-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let db = Sqlite::open(&dir).expect("open");
        let keys = AccountKeys::generate(&RootKeys::generate().profile_udf());
        let rec = AccountRecord {
            udf: "MA".into(),
            address: "a@example.com".into(),
            profile: "{}".into(),
        };
        db.bind(&rec, &[]).expect("bind");
        db.append("MA", &published(0, entry(&keys, b"\x30\x01")), &[], false)
            .expect("append");
        let got = db.served_ocsp("MA", KEY, "1f").expect("read");
        assert_eq!(got, Some((7, b"\x30\x01".to_vec())));
        let r = db.append("MA", &published(0, entry(&keys, b"\x30\x02")), &[], false);
        assert!(matches!(r, Err(StorageError::Conflict { .. })), "{r:?}");
        let got = db.served_ocsp("MA", KEY, "1f").expect("read");
        assert_eq!(
            got,
            Some((7, b"\x30\x01".to_vec())),
            "a refused append changes nothing"
        );
        db.append("MA", &published(1, entry(&keys, b"\x30\x03")), &[], false)
            .expect("append");
        let got = db.served_ocsp("MA", KEY, "1f").expect("read");
        assert_eq!(got, Some((7, b"\x30\x03".to_vec())), "the latest wins");
        assert_eq!(db.served_ocsp("MB", KEY, "1f").expect("read"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
