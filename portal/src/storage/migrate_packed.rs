//! The migration to access lists stored as changes (`packed`): every
//! account's whole rows become changes, one transaction per account (a
//! portal stopped halfway starts again where it stopped: a row that is a
//! change already is only read). The account's byte count drops by what
//! the rows no longer hold. Readers get the same bytes before and after.

use mesh_core::changes::AccessDelta;
use mesh_core::envelope::Signed;

use super::packed::{self, Row};
use super::StorageError;

/// Convert one account's Access rows, given their indices (in order) and
/// how to read and rewrite one row; returns the bytes saved.
fn convert<C>(
    cx: &mut C,
    idxs: &[u64],
    fetch: impl Fn(&mut C, u64) -> Result<(String, bool), StorageError>,
    update: impl Fn(&mut C, u64, &Row) -> Result<(), StorageError>,
) -> Result<u64, StorageError> {
    let mut prev: Option<Signed> = None;
    let mut saved = 0u64;
    for &idx in idxs {
        let (data, change) = fetch(cx, idx)?;
        if change {
            let d: AccessDelta = serde_json::from_str(&data)
                .map_err(|e| StorageError::Corrupt(format!("access list {idx}: {e}")))?;
            let base = prev.as_ref().ok_or_else(|| {
                StorageError::Corrupt(format!("access list {idx} has no list before it"))
            })?;
            prev = Some(
                d.apply(base)
                    .map_err(|e| StorageError::Corrupt(format!("access list {idx}: {e}")))?,
            );
            continue;
        }
        let row = packed::pack(prev.as_ref(), &data, idx);
        if row.whole_len.is_some() {
            update(cx, idx, &row)?;
            saved += (data.len() - row.data.len()) as u64;
        }
        prev = serde_json::from_str(&data).ok();
    }
    Ok(saved)
}

/// Every account of a SQLite file.
pub(super) fn sqlite(c: &rusqlite::Connection) -> Result<(), StorageError> {
    use rusqlite::params;
    let accounts: Vec<String> = c
        .prepare("SELECT udf FROM accounts")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for account in accounts {
        c.execute_batch("BEGIN IMMEDIATE")?;
        let r = (|| {
            let idxs: Vec<u64> = c
                .prepare(
                    "SELECT idx FROM entries WHERE account = ?1 AND store = 'Access' ORDER BY idx",
                )?
                .query_map(params![account], |r| r.get::<_, i64>(0))?
                .map(|r| r.map(|i| u64::try_from(i).unwrap_or(0)))
                .collect::<Result<_, _>>()?;
            let mut cx = ();
            let saved = convert(
                &mut cx,
                &idxs,
                |_, idx| {
                    Ok(c.query_row(
                        "SELECT data, whole_len IS NOT NULL FROM entries
                         WHERE account = ?1 AND store = 'Access' AND idx = ?2",
                        params![account, idx as i64],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?)
                },
                |_, idx, row| {
                    c.execute(
                        "UPDATE entries SET data = ?3, whole_len = ?4
                         WHERE account = ?1 AND store = 'Access' AND idx = ?2",
                        params![
                            account,
                            idx as i64,
                            row.data,
                            row.whole_len.map(|n| n as i64)
                        ],
                    )?;
                    Ok(())
                },
            )?;
            c.execute(
                "UPDATE accounts SET bytes = MAX(0, bytes - ?2) WHERE udf = ?1",
                params![account, saved as i64],
            )?;
            Ok::<_, StorageError>(())
        })();
        match r {
            Ok(()) => c.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = c.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Every account of a PostgreSQL database, each under its account lock.
pub(super) fn postgres(c: &mut ::postgres::Client) -> Result<(), StorageError> {
    let accounts: Vec<String> = c
        .query("SELECT udf FROM accounts", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for account in accounts {
        let mut tx = c.transaction()?;
        tx.execute(
            "SELECT 1 FROM accounts WHERE udf = $1 FOR UPDATE",
            &[&account],
        )?;
        let idxs: Vec<u64> = tx
            .query(
                "SELECT idx FROM entries WHERE account = $1 AND store = 'Access' ORDER BY idx",
                &[&account],
            )?
            .iter()
            .map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
            .collect();
        let saved = convert(
            &mut tx,
            &idxs,
            |tx, idx| {
                let r = tx.query_one(
                    "SELECT data, whole_len IS NOT NULL FROM entries
                     WHERE account = $1 AND store = 'Access' AND idx = $2",
                    &[&account, &(idx as i64)],
                )?;
                Ok((r.get(0), r.get(1)))
            },
            |tx, idx, row| {
                tx.execute(
                    "UPDATE entries SET data = $3, whole_len = $4
                     WHERE account = $1 AND store = 'Access' AND idx = $2",
                    &[
                        &account,
                        &(idx as i64),
                        &row.data,
                        &row.whole_len.map(|n| n as i64),
                    ],
                )?;
                Ok(())
            },
        )?;
        tx.execute(
            "UPDATE accounts SET bytes = GREATEST(0, bytes - $2) WHERE udf = $1",
            &[&account, &(saved as i64)],
        )?;
        tx.commit()?;
    }
    Ok(())
}
