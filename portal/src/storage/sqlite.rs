//! The embedded store: one SQLite file in WAL mode. Every method is one
//! transaction; writers take the write lock first (`BEGIN IMMEDIATE`), so
//! quotas and store indices are checked and changed under it. A process
//! killed at any point leaves each transaction whole or absent (SQLite's
//! journal), and `synchronous = NORMAL` in WAL mode loses nothing a killed
//! process acknowledged (only an operating-system crash can lose the last
//! commits).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use mesh_core::portal::store::{ACCESS, INBOUND};

use super::packed::{self, Row};
use super::{
    AccountRecord, Append, Limits, OpenError, Page, RequestRecord, ServedAnswer, ServedFile,
    Storage, StorageError, StoreRead,
};

/// The embedded SQLite store: a small pool of connections to one WAL file.
#[derive(Debug)]
pub struct Sqlite {
    pool: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
    limits: Limits,
    /// Held by every write transaction of this process: SQLite lets one
    /// writer in at a time, and a connection that finds another one writing
    /// waits in SQLite's busy handler, which sleeps a millisecond or more
    /// (a queue on a mutex wakes at once). Other processes on the file still
    /// meet the busy timeout.
    writer: Mutex<()>,
    /// When expired nonces were last deleted (seconds): once a second is
    /// enough, every request was one more delete.
    purged: std::sync::atomic::AtomicU64,
}

/// The schema version this binary writes (`PRAGMA user_version`): 1 was
/// the first file, 2 added per-account byte counts and the applied serials,
/// 3 moved the Inbound store into the pool of connection requests, 4 gave
/// entries a `whole_len` (access lists stored as changes: older portals
/// cannot read them), 5 says every account's lists are (`migrate_packed`),
/// 6 added the served index (`served`; an older portal would not keep it).
pub(crate) const SCHEMA_VERSION: i64 = 6;

/// Bring a file to [`SCHEMA_VERSION`]; refuse one a newer portal wrote.
/// Idempotent: every step checks what is there first.
fn migrate(c: &Connection) -> Result<(), OpenError> {
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(StorageError::from)?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::SchemaNewer {
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    c.execute_batch(SCHEMA).map_err(StorageError::from)?;
    c.execute_batch(super::served::SQLITE)
        .map_err(StorageError::from)?;
    add_bytes(c)?;
    pool_requests(c)?;
    if version < SCHEMA_VERSION {
        add_whole_len(c)?;
        c.pragma_update(None, "user_version", 4)
            .map_err(StorageError::from)?;
        super::migrate_packed::sqlite(c)?;
    }
    c.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(StorageError::from)?;
    Ok(())
}

/// Version 4: a row of the Access store may hold a change (`packed`).
fn add_whole_len(c: &Connection) -> Result<(), StorageError> {
    let has: bool = c
        .prepare("SELECT 1 FROM pragma_table_info('entries') WHERE name = 'whole_len'")?
        .exists([])?;
    if !has {
        c.execute_batch("ALTER TABLE entries ADD COLUMN whole_len INTEGER;")?;
    }
    Ok(())
}

/// Databases made before per-account byte counts get the column, filled.
fn add_bytes(c: &Connection) -> Result<(), StorageError> {
    let has: bool = c
        .prepare("SELECT 1 FROM pragma_table_info('accounts') WHERE name = 'bytes'")?
        .exists([])?;
    if !has {
        c.execute_batch(
            "BEGIN IMMEDIATE;
             ALTER TABLE accounts ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
             UPDATE accounts SET bytes = (SELECT COALESCE(SUM(length(data)), 0) FROM entries WHERE account = udf);
             COMMIT;",
        )?;
    }
    Ok(())
}

/// Version 3: the Inbound store leaves `entries` (and the byte quota) for
/// the pool of connection requests, with the account's Inbound counter;
/// answered requests keep only their answer.
fn pool_requests(c: &Connection) -> Result<(), StorageError> {
    let has: bool = c
        .prepare("SELECT 1 FROM pragma_table_info('requests') WHERE name = 'data'")?
        .exists([])?;
    if !has {
        c.execute_batch(
            "BEGIN IMMEDIATE;
             ALTER TABLE requests ADD COLUMN idx INTEGER;
             ALTER TABLE requests ADD COLUMN data TEXT;
             ALTER TABLE requests ADD COLUMN received INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE accounts ADD COLUMN inbound_last INTEGER NOT NULL DEFAULT 0;
             UPDATE accounts SET inbound_last = COALESCE(
                 (SELECT MAX(idx) FROM entries WHERE account = udf AND store = 'Inbound'), 0);
             UPDATE requests SET idx = e.idx, data = e.data,
                 received = COALESCE(json_extract(e.data, '$.Received'), 0)
               FROM entries AS e
               WHERE e.account = requests.account AND e.store = 'Inbound'
                 AND json_extract(e.data, '$.RequestId') = requests.request_id
                 AND requests.response IS NULL;
             UPDATE accounts SET bytes = MAX(0, bytes - (SELECT COALESCE(SUM(length(data)), 0)
                 FROM entries WHERE account = udf AND store = 'Inbound'));
             DELETE FROM entries WHERE store = 'Inbound';
             COMMIT;",
        )?;
    }
    c.execute_batch(
        "CREATE INDEX IF NOT EXISTS requests_pool ON requests (account, idx) WHERE data IS NOT NULL;",
    )?;
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    udf TEXT PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    profile TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    inbound_last INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
    account TEXT NOT NULL,
    store TEXT NOT NULL,
    idx INTEGER NOT NULL,
    data TEXT NOT NULL,
    whole_len INTEGER,
    PRIMARY KEY (account, store, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    auth_key TEXT NOT NULL,
    response TEXT,
    idx INTEGER,
    data TEXT,
    received INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
CREATE TABLE IF NOT EXISTS applied (
    account TEXT NOT NULL,
    device TEXT NOT NULL,
    serial INTEGER NOT NULL,
    time INTEGER NOT NULL,
    PRIMARY KEY (account, device)
) WITHOUT ROWID;
";

impl Sqlite {
    /// Open (or create) `dir/portal.sqlite`, migrating it.
    pub fn open(dir: &Path) -> Result<Sqlite, OpenError> {
        let path = dir.join("portal.sqlite");
        let mut pool = Vec::new();
        for i in 0..4 {
            let c = Connection::open(&path).map_err(StorageError::from)?;
            c.busy_timeout(Duration::from_secs(10))
                .map_err(StorageError::from)?;
            c.pragma_update(None, "journal_mode", "WAL")
                .map_err(StorageError::from)?;
            c.pragma_update(None, "synchronous", "NORMAL")
                .map_err(StorageError::from)?;
            c.pragma_update(None, "foreign_keys", "ON")
                .map_err(StorageError::from)?;
            if i == 0 {
                migrate(&c)?;
            }
            pool.push(Mutex::new(c));
        }
        Ok(Sqlite {
            pool,
            next: std::sync::atomic::AtomicUsize::new(0),
            limits: Limits::default(),
            writer: Mutex::new(()),
            purged: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The same store with other quotas.
    pub fn with_limits(mut self, limits: Limits) -> Sqlite {
        self.limits = limits;
        self
    }

    /// The account whose `column` (a fixed column name, never user input) is `value`.
    fn account_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<AccountRecord>, StorageError> {
        let sql = format!("SELECT udf, address, profile FROM accounts WHERE {column} = ?1");
        self.with(|c| {
            Ok(c.query_row(&sql, params![value], |r| {
                Ok(AccountRecord {
                    udf: r.get(0)?,
                    address: r.get(1)?,
                    profile: r.get(2)?,
                })
            })
            .optional()?)
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.pool.len();
        let mut c = self.pool[i].lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    /// [`Sqlite::with`] for a write transaction: one writer of this process
    /// at a time.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let _one = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.with(f)
    }
}

fn u(i: i64) -> u64 {
    u64::try_from(i).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn last_index(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    store: &str,
) -> Result<u64, StorageError> {
    if store == INBOUND {
        let v: Option<i64> = tx
            .prepare_cached("SELECT inbound_last FROM accounts WHERE udf = ?1")?
            .query_row(params![account], |r| r.get(0))
            .optional()?;
        return Ok(v.map(u).unwrap_or(0));
    }
    // Prepared once per connection: every signed request asks (SQL parsing
    // was 3 % of the portal's time in the throughput bench).
    let v: Option<i64> = tx
        .prepare_cached("SELECT MAX(idx) FROM entries WHERE account = ?1 AND store = ?2")?
        .query_row(params![account, store], |r| r.get(0))?;
    Ok(v.map(u).unwrap_or(0))
}

/// One store's entries after `after`, as many as `page` takes: their sizes
/// first, then only the entries that fit.
fn read_store(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    store: &str,
    after: u64,
    page: &mut Page,
) -> Result<StoreRead, StorageError> {
    let want = i64::try_from(page.limit() + 1).unwrap_or(i64::MAX);
    let sizes: Vec<(u64, u64)> = if store == INBOUND {
        let mut st = tx.prepare_cached(
            "SELECT idx, length(CAST(data AS BLOB)) FROM requests
             WHERE account = ?1 AND data IS NOT NULL AND idx > ?2 ORDER BY idx LIMIT ?3",
        )?;
        let rows = st.query_map(params![account, i(after), want], |r| {
            Ok((u(r.get(0)?), u(r.get(1)?)))
        })?;
        rows.collect::<Result<_, _>>()?
    } else {
        let mut st = tx.prepare_cached(
            "SELECT idx, COALESCE(whole_len, length(CAST(data AS BLOB))) FROM entries
             WHERE account = ?1 AND store = ?2 AND idx > ?3 ORDER BY idx LIMIT ?4",
        )?;
        let rows = st.query_map(params![account, store, i(after), want], |r| {
            Ok((u(r.get(0)?), u(r.get(1)?)))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let lens: Vec<u64> = sizes.iter().map(|(_, n)| *n).collect();
    let (keep, partial) = page.take(&lens);
    let upto = keep
        .checked_sub(1)
        .and_then(|k| sizes.get(k))
        .map_or(after, |(idx, _)| *idx);
    let entries = if keep == 0 {
        Vec::new()
    } else if store == INBOUND {
        let mut st = tx.prepare_cached(
            "SELECT idx, data FROM requests
             WHERE account = ?1 AND data IS NOT NULL AND idx > ?2 AND idx <= ?3 ORDER BY idx",
        )?;
        let rows = st.query_map(params![account, i(after), i(upto)], |r| {
            Ok((u(r.get(0)?), r.get::<_, String>(1)?))
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    } else if store == ACCESS {
        let rows = access_rows(tx, account, packed::snapshot_of(after + 1), upto)?;
        packed::unpack(rows, after)?
    } else {
        let mut st = tx.prepare_cached(
            "SELECT idx, data FROM entries
             WHERE account = ?1 AND store = ?2 AND idx > ?3 AND idx <= ?4 ORDER BY idx",
        )?;
        let rows = st.query_map(params![account, store, i(after), i(upto)], |r| {
            Ok((u(r.get(0)?), r.get::<_, String>(1)?))
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    Ok(StoreRead {
        entries,
        partial,
        last: last_index(tx, account, store)?,
    })
}

/// The Access store's rows `from..=upto` (index, data, whether a change).
pub(super) fn access_rows(
    tx: &rusqlite::Connection,
    account: &str,
    from: u64,
    upto: u64,
) -> Result<Vec<(u64, String, bool)>, StorageError> {
    let mut st = tx.prepare_cached(
        "SELECT idx, data, whole_len IS NOT NULL FROM entries
         WHERE account = ?1 AND store = 'Access' AND idx >= ?2 AND idx <= ?3 ORDER BY idx",
    )?;
    let rows = st.query_map(params![account, i(from), i(upto)], |r| {
        Ok((u(r.get(0)?), r.get::<_, String>(1)?, r.get::<_, bool>(2)?))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The Access store's last entry, whole (JSON).
fn last_access(
    tx: &rusqlite::Connection,
    account: &str,
) -> Result<Option<(u64, String)>, StorageError> {
    let last: Option<i64> = tx
        .prepare_cached("SELECT MAX(idx) FROM entries WHERE account = ?1 AND store = 'Access'")?
        .query_row(params![account], |r| r.get(0))?;
    let Some(last) = last.map(u) else {
        return Ok(None);
    };
    let rows = access_rows(tx, account, packed::snapshot_of(last), last)?;
    Ok(packed::unpack(rows, last.saturating_sub(1))?.pop())
}

fn append_in(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    updates: &[Append],
    max_bytes: u64,
) -> Result<Vec<(String, u64)>, StorageError> {
    let used: i64 = tx.query_row(
        "SELECT bytes FROM accounts WHERE udf = ?1",
        params![account],
        |r| r.get(0),
    )?;
    let last = if updates.iter().any(|u| u.store == ACCESS) {
        last_access(tx, account)?
    } else {
        None
    };
    let (last_idx, last) = last.map_or((0, None), |(i, d)| (i, serde_json::from_str(&d).ok()));
    super::served::sqlite_upsert(tx, account, updates)?;
    let updates = &packed::pack_appends(updates, last, last_idx);
    let added = super::bytes_within_quota(u(used), updates, max_bytes)?;
    tx.execute(
        "UPDATE accounts SET bytes = bytes + ?2 WHERE udf = ?1",
        params![account, i(added)],
    )?;
    let mut cx = tx;
    super::append_entries(
        &mut cx,
        updates,
        |tx, store| last_index(tx, account, store),
        |tx, store, idx, r: &Row| {
            tx.prepare_cached(
                "INSERT INTO entries (account, store, idx, data, whole_len) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![account, store, i(idx), r.data, r.whole_len.map(i)])?;
            Ok(())
        },
    )
}

impl Storage for Sqlite {
    fn bind(&self, account: &AccountRecord, first: &[Append]) -> Result<(), StorageError> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: Option<String> = tx
                .query_row(
                    "SELECT udf FROM accounts WHERE udf = ?1 OR address = ?2",
                    params![account.udf, account.address],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(StorageError::Exists(account.address.clone()));
            }
            let n: i64 = tx.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?;
            if u(n) >= self.limits.max_accounts {
                return Err(StorageError::Quota {
                    code: mesh_core::portal::code::QUOTA_EXCEEDED,
                    reason: format!(
                        "this portal holds its limit of {} accounts",
                        self.limits.max_accounts
                    ),
                });
            }
            tx.execute(
                "INSERT INTO accounts (udf, address, profile) VALUES (?1, ?2, ?3)",
                params![account.udf, account.address, account.profile],
            )?;
            append_in(&tx, &account.udf, first, self.limits.max_account_bytes)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn account_by_address(&self, address: &str) -> Result<Option<AccountRecord>, StorageError> {
        self.account_where("address", &address.to_lowercase())
    }

    fn account_by_udf(&self, udf: &str) -> Result<Option<AccountRecord>, StorageError> {
        self.account_where("udf", udf)
    }

    fn indices(&self, account: &str) -> Result<Vec<(String, u64)>, StorageError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut out = Vec::new();
            for store in mesh_core::portal::store::ALL {
                let idx = last_index(&tx, account, store)?;
                if idx > 0 {
                    out.push((store.to_string(), idx));
                }
            }
            Ok(out)
        })
    }

    fn read(
        &self,
        account: &str,
        select: &[(String, u64)],
        page: Page,
    ) -> Result<Vec<StoreRead>, StorageError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut page = page;
            select
                .iter()
                .map(|(store, after)| read_store(&tx, account, store, *after, &mut page))
                .collect()
        })
    }

    fn last_index(&self, account: &str, store: &str) -> Result<Option<u64>, StorageError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let exists: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM accounts WHERE udf = ?1")?
                .query_row(params![account], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Ok(None);
            }
            let idx = last_index(&tx, account, store)?;
            Ok(Some(idx))
        })
    }

    fn last(&self, account: &str, store: &str) -> Result<Option<(u64, String)>, StorageError> {
        if store == ACCESS {
            return self.with(|c| {
                let tx = c.transaction()?;
                last_access(&tx, account)
            });
        }
        self.with(|c| {
            Ok(c.query_row(
                "SELECT idx, data FROM entries WHERE account = ?1 AND store = ?2 ORDER BY idx DESC LIMIT 1",
                params![account, store],
                |r| Ok((u(r.get(0)?), r.get::<_, String>(1)?)),
            )
            .optional()?)
        })
    }

    fn append(
        &self,
        account: &str,
        updates: &[Append],
        responses: &[(String, String)],
        revokes: bool,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = append_in(&tx, account, updates, self.limits.account_bytes(revokes))?;
            for (id, resp) in responses {
                // Answered: the pool drops the request, Complete keeps the answer.
                tx.execute(
                    "UPDATE requests SET response = ?2, data = NULL WHERE request_id = ?1 AND account = ?3",
                    params![id, resp, account],
                )?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn served_file(&self, account: &str, name: &str) -> Result<Option<ServedFile>, StorageError> {
        self.with(|c| super::served::sqlite_file(c, account, name))
    }

    fn served_ocsp(
        &self,
        account: &str,
        key: &str,
        serial: &str,
    ) -> Result<Option<ServedAnswer>, StorageError> {
        self.with(|c| super::served::sqlite_ocsp(c, account, key, serial))
    }

    fn append_audit(
        &self,
        account: &str,
        store: &str,
        expected: u64,
        data: &str,
    ) -> Result<u64, StorageError> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let last = last_index(&tx, account, store)?;
            if last != expected {
                return Err(super::audit_conflict(store, expected, last));
            }
            // The prefix as a range, so that the entries index serves it.
            let used: i64 = tx.query_row(
                "SELECT COALESCE(SUM(length(CAST(data AS BLOB))), 0) FROM entries
                 WHERE account = ?1 AND store >= 'Audit:' AND store < 'Audit;'",
                params![account],
                |r| r.get(0),
            )?;
            super::audit_within_quota(u(used), data.len(), &self.limits)?;
            tx.execute(
                "INSERT INTO entries (account, store, idx, data, whole_len) VALUES (?1, ?2, ?3, ?4, NULL)",
                params![account, store, i(last + 1), data],
            )?;
            tx.commit()?;
            Ok(last + 1)
        })
    }

    fn add_request(
        &self,
        request_id: &str,
        record: &RequestRecord,
        inbound: &str,
        now: u64,
    ) -> Result<(), StorageError> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let a = &record.account;
            tx.execute(
                "DELETE FROM requests WHERE account = ?1 AND response IS NULL AND received < ?2",
                params![a, i(now.saturating_sub(self.limits.pending_ttl))],
            )?;
            let (n, bytes): (i64, i64) = tx.query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(CAST(data AS BLOB))), 0) FROM requests
                 WHERE account = ?1 AND response IS NULL",
                params![a],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let size = u64::try_from(inbound.len()).unwrap_or(u64::MAX);
            if u(n) >= self.limits.max_pending
                || u(bytes).saturating_add(size) > self.limits.max_pending_bytes
            {
                return Err(super::too_many_pending(&self.limits));
            }
            let idx: i64 = tx.query_row(
                "UPDATE accounts SET inbound_last = inbound_last + 1 WHERE udf = ?1 RETURNING inbound_last",
                params![a],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO requests (request_id, account, auth_key, response, idx, data, received)
                 VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6)",
                params![request_id, a, record.auth_key, idx, inbound, i(now)],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn pending_requests(&self, account: &str) -> Result<u64, StorageError> {
        self.with(|c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM requests WHERE account = ?1 AND response IS NULL",
                params![account],
                |r| r.get(0),
            )?;
            Ok(u(n))
        })
    }

    fn request(&self, request_id: &str) -> Result<Option<RequestRecord>, StorageError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT account, auth_key, response FROM requests WHERE request_id = ?1",
                params![request_id],
                |r| {
                    Ok(RequestRecord {
                        account: r.get(0)?,
                        auth_key: r.get(1)?,
                        response: r.get(2)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn use_nonce(&self, nonce: &str, now: u64, expires: u64) -> Result<bool, StorageError> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let purge = self
                .purged
                .fetch_max(now, std::sync::atomic::Ordering::Relaxed)
                < now;
            if purge {
                tx.prepare_cached("DELETE FROM nonces WHERE expires < ?1")?
                    .execute(params![i(now)])?;
            }
            let n = tx
                .prepare_cached("INSERT OR IGNORE INTO nonces (nonce, expires) VALUES (?1, ?2)")?
                .execute(params![nonce, i(expires)])?;
            tx.commit()?;
            Ok(n == 1)
        })
    }

    fn set_applied(
        &self,
        account: &str,
        device: &str,
        serial: u64,
        time: u64,
    ) -> Result<(), StorageError> {
        self.with(|c| {
            // Most reports repeat the last one: read first, write only a change.
            let had: Option<i64> = c
                .prepare_cached("SELECT serial FROM applied WHERE account = ?1 AND device = ?2")?
                .query_row(params![account, device], |r| r.get(0))
                .optional()?;
            if had != Some(i(serial)) {
                c.prepare_cached(
                    "INSERT INTO applied (account, device, serial, time) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (account, device) DO UPDATE SET serial = excluded.serial, time = excluded.time",
                )?
                .execute(params![account, device, i(serial), i(time)])?;
            }
            Ok(())
        })
    }

    fn applied(&self, account: &str) -> Result<Vec<(String, u64, u64)>, StorageError> {
        self.with(|c| {
            let mut st =
                c.prepare_cached("SELECT device, serial, time FROM applied WHERE account = ?1")?;
            let rows = st.query_map(params![account], |r| {
                Ok((r.get::<_, String>(0)?, u(r.get(1)?), u(r.get(2)?)))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
