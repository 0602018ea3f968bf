//! Portal storage: accounts and their append-only stores.
//!
//! The [`Storage`] trait is what the service needs; [`Sqlite`] is the
//! embedded default (one file, WAL, every call one transaction). A
//! PostgreSQL backend implements the same trait for deployments that
//! outgrow one machine.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// Storage errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A store moved on since the writer's index.
    #[error("store {store} is at index {actual}, the writer expected {expected}")]
    Conflict {
        /// Store name.
        store: String,
        /// Writer's index.
        expected: u64,
        /// Actual index.
        actual: u64,
    },
    /// The address or profile is bound already.
    #[error("account {0} exists already")]
    Exists(String),
    /// A quota of the portal ([`Limits`]) would be exceeded.
    #[error("{reason}")]
    Quota {
        /// The error code the client gets (`portal::code`).
        code: &'static str,
        /// What is full.
        reason: String,
    },
}

/// What one portal lets clients store: checked inside the transaction that
/// would exceed it, so concurrent requests cannot pass it together.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Accounts (Bind is open to anyone).
    pub max_accounts: u64,
    /// Bytes of entries per account.
    pub max_account_bytes: u64,
    /// Unanswered connection requests per account.
    pub max_pending: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_accounts: 100_000,
            max_account_bytes: 256 << 20,
            max_pending: mesh_core::portal::MAX_PENDING,
        }
    }
}

/// An account as stored.
#[derive(Clone, Debug)]
pub struct AccountRecord {
    /// Profile UDF (primary key).
    pub udf: String,
    /// Address, lower case.
    pub address: String,
    /// The signed profile, JSON.
    pub profile: String,
}

/// Entries to append to one store.
#[derive(Clone, Debug)]
pub struct Append {
    /// Store name.
    pub store: String,
    /// Expected last index; `None` appends wherever the store is.
    pub expected: Option<u64>,
    /// Entries, JSON.
    pub entries: Vec<String>,
}

/// What one store gave in a read.
#[derive(Clone, Debug, Default)]
pub struct StoreRead {
    /// Entries (index, JSON), in index order.
    pub entries: Vec<(u64, String)>,
    /// More entries follow.
    pub partial: bool,
    /// The store's last index in the same snapshot.
    pub last: u64,
}

/// A connection request as the portal keeps it for Complete.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Account UDF.
    pub account: String,
    /// The key (KeyData JSON) that must sign Complete.
    pub auth_key: String,
    /// The signed RespondConnection, once answered.
    pub response: Option<String>,
}

/// What the service needs from storage. Every method is one transaction.
pub trait Storage: Send + Sync + 'static {
    /// Create an account with its first entries.
    fn bind(&self, account: &AccountRecord, first: &[Append]) -> Result<(), StorageError>;
    /// Look up by address (any case).
    fn account_by_address(&self, address: &str) -> Result<Option<AccountRecord>, StorageError>;
    /// Look up by profile UDF.
    fn account_by_udf(&self, udf: &str) -> Result<Option<AccountRecord>, StorageError>;
    /// Last index of each store that has entries.
    fn indices(&self, account: &str) -> Result<Vec<(String, u64)>, StorageError>;
    /// Up to `limit` entries after the given index of each store, all read
    /// in one snapshot (a reader checks them against each other: the
    /// checkpoint against the stores it signs).
    fn read(
        &self,
        account: &str,
        select: &[(String, u64)],
        limit: usize,
    ) -> Result<Vec<StoreRead>, StorageError>;
    /// The last index of a store; `None` when the account does not exist.
    fn last_index(&self, account: &str, store: &str) -> Result<Option<u64>, StorageError>;
    /// The last entry of a store.
    fn last(&self, account: &str, store: &str) -> Result<Option<(u64, String)>, StorageError>;
    /// Append to several stores, all or nothing; returns the new last indices.
    /// `responses` index answers to connection requests by request id.
    fn append(
        &self,
        account: &str,
        updates: &[Append],
        responses: &[(String, String)],
    ) -> Result<Vec<(String, u64)>, StorageError>;
    /// Record a connection request (and its Inbound entry) in one transaction.
    fn add_request(
        &self,
        request_id: &str,
        record: &RequestRecord,
        inbound: &str,
    ) -> Result<(), StorageError>;
    /// A connection request.
    fn request(&self, request_id: &str) -> Result<Option<RequestRecord>, StorageError>;
    /// Connection requests of an account still waiting for an answer.
    fn pending_requests(&self, account: &str) -> Result<u64, StorageError>;
    /// Remember a nonce until `expires`; false if it was seen before.
    fn use_nonce(&self, nonce: &str, now: u64, expires: u64) -> Result<bool, StorageError>;
}

/// The embedded SQLite store: a small pool of connections to one WAL file.
#[derive(Debug)]
pub struct Sqlite {
    pool: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
    limits: Limits,
}

/// Databases made before per-account byte counts get the column, filled.
fn migrate(c: &Connection) -> Result<(), StorageError> {
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    udf TEXT PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    profile TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
    account TEXT NOT NULL,
    store TEXT NOT NULL,
    idx INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (account, store, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    auth_key TEXT NOT NULL,
    response TEXT
);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
";

impl Sqlite {
    /// Open (or create) `dir/portal.sqlite`.
    pub fn open(dir: &Path) -> Result<Sqlite, StorageError> {
        let path = dir.join("portal.sqlite");
        let mut pool = Vec::new();
        for i in 0..4 {
            let c = Connection::open(&path)?;
            c.busy_timeout(Duration::from_secs(10))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "NORMAL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            if i == 0 {
                c.execute_batch(SCHEMA)?;
                migrate(&c)?;
            }
            pool.push(Mutex::new(c));
        }
        Ok(Sqlite {
            pool,
            next: std::sync::atomic::AtomicUsize::new(0),
            limits: Limits::default(),
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
    let v: Option<i64> = tx.query_row(
        "SELECT MAX(idx) FROM entries WHERE account = ?1 AND store = ?2",
        params![account, store],
        |r| r.get(0),
    )?;
    Ok(v.map(u).unwrap_or(0))
}

fn append_in(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    updates: &[Append],
    max_bytes: u64,
) -> Result<Vec<(String, u64)>, StorageError> {
    let added: u64 = updates
        .iter()
        .flat_map(|u| &u.entries)
        .map(|e| e.len() as u64)
        .sum();
    let used: i64 = tx.query_row(
        "SELECT bytes FROM accounts WHERE udf = ?1",
        params![account],
        |r| r.get(0),
    )?;
    if u(used).saturating_add(added) > max_bytes {
        return Err(StorageError::Quota {
            code: mesh_core::portal::code::QUOTA_EXCEEDED,
            reason: format!(
                "the account holds {} bytes; {added} more would pass this portal's limit of {max_bytes}",
                u(used)
            ),
        });
    }
    tx.execute(
        "UPDATE accounts SET bytes = bytes + ?2 WHERE udf = ?1",
        params![account, i(added)],
    )?;
    let mut out = Vec::new();
    for up in updates {
        let mut idx = last_index(tx, account, &up.store)?;
        if let Some(expected) = up.expected {
            if expected != idx {
                return Err(StorageError::Conflict {
                    store: up.store.clone(),
                    expected,
                    actual: idx,
                });
            }
        }
        for e in &up.entries {
            idx += 1;
            tx.execute(
                "INSERT INTO entries (account, store, idx, data) VALUES (?1, ?2, ?3, ?4)",
                params![account, up.store, i(idx), e],
            )?;
        }
        out.push((up.store.clone(), idx));
    }
    Ok(out)
}

impl Storage for Sqlite {
    fn bind(&self, account: &AccountRecord, first: &[Append]) -> Result<(), StorageError> {
        self.with(|c| {
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
            let mut st = c.prepare_cached(
                "SELECT store, MAX(idx) FROM entries WHERE account = ?1 GROUP BY store",
            )?;
            let rows = st.query_map(params![account], |r| {
                Ok((r.get::<_, String>(0)?, u(r.get(1)?)))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn read(
        &self,
        account: &str,
        select: &[(String, u64)],
        limit: usize,
    ) -> Result<Vec<StoreRead>, StorageError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(select.len());
            for (store, after) in select {
                let mut st = tx.prepare_cached(
                    "SELECT idx, data FROM entries WHERE account = ?1 AND store = ?2 AND idx > ?3 ORDER BY idx LIMIT ?4",
                )?;
                let want = i64::try_from(limit + 1).unwrap_or(i64::MAX);
                let rows = st.query_map(params![account, store, i(*after), want], |r| {
                    Ok((u(r.get(0)?), r.get::<_, String>(1)?))
                })?;
                let mut entries = rows.collect::<Result<Vec<_>, _>>()?;
                let partial = entries.len() > limit;
                entries.truncate(limit);
                let last = last_index(&tx, account, store)?;
                out.push(StoreRead {
                    entries,
                    partial,
                    last,
                });
            }
            Ok(out)
        })
    }

    fn last_index(&self, account: &str, store: &str) -> Result<Option<u64>, StorageError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM accounts WHERE udf = ?1",
                    params![account],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Ok(None);
            }
            let idx = last_index(&tx, account, store)?;
            Ok(Some(idx))
        })
    }

    fn last(&self, account: &str, store: &str) -> Result<Option<(u64, String)>, StorageError> {
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
    ) -> Result<Vec<(String, u64)>, StorageError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = append_in(&tx, account, updates, self.limits.max_account_bytes)?;
            for (id, resp) in responses {
                tx.execute(
                    "UPDATE requests SET response = ?2 WHERE request_id = ?1 AND account = ?3",
                    params![id, resp, account],
                )?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn add_request(
        &self,
        request_id: &str,
        record: &RequestRecord,
        inbound: &str,
    ) -> Result<(), StorageError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let pending: i64 = tx.query_row(
                "SELECT COUNT(*) FROM requests WHERE account = ?1 AND response IS NULL",
                params![record.account],
                |r| r.get(0),
            )?;
            if u(pending) >= self.limits.max_pending {
                return Err(StorageError::Quota {
                    code: mesh_core::portal::code::TOO_MANY_PENDING,
                    reason: format!(
                        "the account has {} unanswered connection requests; an administrator must accept or reject them first",
                        self.limits.max_pending
                    ),
                });
            }
            tx.execute(
                "INSERT INTO requests (request_id, account, auth_key, response) VALUES (?1, ?2, ?3, NULL)",
                params![request_id, record.account, record.auth_key],
            )?;
            append_in(
                &tx,
                &record.account,
                &[Append {
                    store: mesh_core::portal::store::INBOUND.into(),
                    expected: None,
                    entries: vec![inbound.to_string()],
                }],
                self.limits.max_account_bytes,
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
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM nonces WHERE expires < ?1", params![i(now)])?;
            let n = tx.execute(
                "INSERT OR IGNORE INTO nonces (nonce, expires) VALUES (?1, ?2)",
                params![nonce, i(expires)],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
    }
}
