//! The PostgreSQL store, for several portal processes on one database.
//!
//! The processes share nothing but the database, so everything that must
//! hold across them is decided inside it:
//! - a write locks its account's row first (`SELECT … FOR UPDATE`), so the
//!   writes of one account are serial whichever process makes them: the
//!   expected indices, the byte quota and the pending-request cap are
//!   checked and changed under that lock, with statements that (at READ
//!   COMMITTED) see every transaction committed before it was taken;
//! - account creation takes a transaction-scoped advisory lock, so the
//!   account quota holds too;
//! - nonces are a primary key: of two processes given the same request,
//!   one inserts it and the other finds it;
//! - a read of several stores is one REPEATABLE READ snapshot;
//! - every write sends `NOTIFY mesh_change, '<account UDF>'` inside its
//!   transaction (delivered on commit, never for a rolled-back one), and
//!   each process LISTENs on a connection of its own to wake its held
//!   long-polls; the serials devices applied are a table.
//!
//! Durability is PostgreSQL's: a transaction is acknowledged after its
//! commit is flushed to the WAL, and a killed portal process leaves an
//! open transaction to be rolled back by the server.
//!
//! The driver is the synchronous `postgres` crate (the trait is blocking
//! and called through `spawn_blocking`); it speaks plain TCP or a Unix
//! socket, without TLS: keep the database on loopback, a socket or a
//! private network.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use std::collections::HashMap;

use ::postgres::{Client, IsolationLevel, NoTls, Statement, Transaction};

use mesh_core::portal::store::{ACCESS, INBOUND};

use super::packed::{self, Row};
use super::{
    AccountRecord, Append, ChangeFn, Limits, OpenError, Page, RequestRecord, ServedAnswer,
    ServedFile, Storage, StorageError, StoreRead,
};

/// Most connections one portal process opens (PostgreSQL's default
/// `max_connections` is 100; several processes share it).
const MAX_POOL: usize = 16;

/// The channel of change notices; the payload is the account's UDF.
const CHANNEL: &str = "mesh_change";

/// The advisory lock taken while creating an account (an arbitrary
/// constant: "mesh" in ASCII; `pg_schema` has the migration's).
const LOCK_BIND: i64 = 0x6d65_7368_0002;

/// A pool of connections to one PostgreSQL database.
pub struct Postgres {
    url: String,
    pool: Mutex<Pool>,
    freed: Condvar,
    limits: Limits,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Conn>,
    open: usize,
}

/// A connection and the statements prepared on it (the hot ones: a
/// statement prepared once is one round trip per use instead of two).
struct Conn {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            prepared: HashMap::new(),
        }
    }

    /// `sql` prepared on this connection (once).
    fn stmt(&mut self, sql: &'static str) -> Result<Statement, StorageError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.prepared.insert(sql, s.clone());
        Ok(s)
    }
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

/// The URL without its password, for messages and logs: the password of
/// the user part (which may itself contain `@`) is masked, and query
/// parameters (which may carry `password=`) are left out.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "the given URL".to_string();
    };
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:…@{host}{path}")
        }
        _ => format!("{scheme}://{authority}{path}"),
    }
}

fn connect(url: &str) -> Result<Client, ::postgres::Error> {
    let mut config: ::postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(10));
    config.application_name("mesh-portal");
    config.connect(NoTls)
}

impl Postgres {
    /// Connect to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`) and
    /// bring its schema to this binary's version.
    pub fn open(url: &str) -> Result<Postgres, OpenError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(OpenError::BadUrl(format!(
                "{} is not a postgres:// URL",
                redact(url)
            )));
        }
        let mut c = connect(url).map_err(|e| {
            let mut reason = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                reason.push_str(&format!(": {c}"));
                cause = c.source();
            }
            OpenError::Unreachable {
                url: redact(url),
                reason,
            }
        })?;
        super::pg_schema::migrate(&mut c)?;
        Ok(Postgres {
            url: url.to_string(),
            pool: Mutex::new(Pool {
                idle: vec![Conn::new(c)],
                open: 1,
            }),
            freed: Condvar::new(),
            limits: Limits::default(),
        })
    }

    /// The same store with other quotas.
    pub fn with_limits(mut self, limits: Limits) -> Postgres {
        self.limits = limits;
        self
    }

    /// Run `f` on a pooled connection. A connection the server closed is
    /// dropped and the next call opens a new one.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut c = self.take()?;
        let r = f(&mut c);
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_closed() {
            pool.open -= 1;
        } else {
            pool.idle.push(c);
        }
        drop(pool);
        self.freed.notify_one();
        r
    }

    fn take(&self) -> Result<Conn, StorageError> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = pool.idle.pop() {
                return Ok(c);
            }
            if pool.open < MAX_POOL {
                pool.open += 1;
                drop(pool);
                return connect(&self.url).map(Conn::new).map_err(|e| {
                    let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                    pool.open -= 1;
                    StorageError::from(e)
                });
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A write transaction (READ COMMITTED: each statement sees what was
    /// committed before it; the account lock orders the writers).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let v = f(&mut tx)?;
            tx.commit()?;
            Ok(v)
        })
    }
}

fn u(i: i64) -> u64 {
    u64::try_from(i).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const LAST_INDEX: &str = "SELECT MAX(idx) FROM entries WHERE account = $1 AND store = $2";

const INBOUND_LAST: &str = "SELECT inbound_last FROM accounts WHERE udf = $1";

fn last_index(
    c: &mut impl ::postgres::GenericClient,
    account: &str,
    store: &str,
) -> Result<u64, StorageError> {
    if store == INBOUND {
        let row = c.query_opt(INBOUND_LAST, &[&account])?;
        return Ok(row.map(|r| u(r.get(0))).unwrap_or(0));
    }
    let row = c.query_one(LAST_INDEX, &[&account, &store])?;
    Ok(row.get::<_, Option<i64>>(0).map(u).unwrap_or(0))
}

/// The statements of one store's read: sizes, then entries up to an index.
fn read_sql(store: &str) -> (&'static str, &'static str) {
    if store == INBOUND {
        (
            "SELECT idx, octet_length(data)::bigint FROM requests
             WHERE account = $1 AND data IS NOT NULL AND $2::text = $2 AND idx > $3 ORDER BY idx LIMIT $4",
            "SELECT idx, data FROM requests
             WHERE account = $1 AND data IS NOT NULL AND $2::text = $2 AND idx > $3 AND idx <= $4 ORDER BY idx",
        )
    } else {
        (
            "SELECT idx, COALESCE(whole_len, octet_length(data))::bigint FROM entries
             WHERE account = $1 AND store = $2 AND idx > $3 ORDER BY idx LIMIT $4",
            "SELECT idx, data FROM entries
             WHERE account = $1 AND store = $2 AND idx > $3 AND idx <= $4 ORDER BY idx",
        )
    }
}

/// One store's entries after `after`, as many as `page` takes: their sizes
/// first, then only the entries that fit.
fn read_store(
    tx: &mut Transaction<'_>,
    account: &str,
    store: &String,
    after: u64,
    page: &mut Page,
) -> Result<StoreRead, StorageError> {
    let (sizes_sql, rows_sql) = read_sql(store);
    let want = i64::try_from(page.limit() + 1).unwrap_or(i64::MAX);
    let sizes: Vec<(u64, u64)> = tx
        .query(sizes_sql, &[&account, store, &i(after), &want])?
        .iter()
        .map(|r| (u(r.get(0)), u(r.get::<_, Option<i64>>(1).unwrap_or(0))))
        .collect();
    let lens: Vec<u64> = sizes.iter().map(|(_, n)| *n).collect();
    let (keep, partial) = page.take(&lens);
    let entries = match keep.checked_sub(1).and_then(|k| sizes.get(k)) {
        None => Vec::new(),
        Some((upto, _)) if store == ACCESS => {
            let rows = access_rows(tx, account, packed::snapshot_of(after + 1), *upto)?;
            packed::unpack(rows, after)?
        }
        Some((upto, _)) => tx
            .query(rows_sql, &[&account, store, &i(after), &i(*upto)])?
            .iter()
            .map(|r| (u(r.get(0)), r.get(1)))
            .collect(),
    };
    Ok(StoreRead {
        entries,
        partial,
        last: last_index(tx, account, store)?,
    })
}

/// The Access store's rows `from..=upto` (index, data, whether a change).
fn access_rows(
    c: &mut impl ::postgres::GenericClient,
    account: &str,
    from: u64,
    upto: u64,
) -> Result<Vec<(u64, String, bool)>, StorageError> {
    Ok(c.query(
        "SELECT idx, data, whole_len IS NOT NULL FROM entries
             WHERE account = $1 AND store = 'Access' AND idx >= $2 AND idx <= $3 ORDER BY idx",
        &[&account, &i(from), &i(upto)],
    )?
    .iter()
    .map(|r| (u(r.get(0)), r.get(1), r.get(2)))
    .collect())
}

/// The Access store's last entry, whole (JSON).
fn last_access(
    c: &mut impl ::postgres::GenericClient,
    account: &str,
) -> Result<Option<(u64, String)>, StorageError> {
    let Some(last) = c
        .query_one(LAST_INDEX, &[&account, &ACCESS])?
        .get::<_, Option<i64>>(0)
        .map(u)
    else {
        return Ok(None);
    };
    let rows = access_rows(c, account, packed::snapshot_of(last), last)?;
    Ok(packed::unpack(rows, last.saturating_sub(1))?.pop())
}

/// Lock the account's row for this transaction; returns its byte count.
/// An account that is not there is an error, as on SQLite: the callers
/// looked it up first, so the database lost it meanwhile.
fn lock_account(tx: &mut Transaction<'_>, account: &str) -> Result<u64, StorageError> {
    let row = tx.query_one(
        "SELECT bytes FROM accounts WHERE udf = $1 FOR UPDATE",
        &[&account],
    )?;
    Ok(u(row.get(0)))
}

fn notify(tx: &mut Transaction<'_>, account: &str) -> Result<(), StorageError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &account])?;
    Ok(())
}

fn append_in(
    tx: &mut Transaction<'_>,
    account: &str,
    updates: &[Append],
    max_bytes: u64,
) -> Result<Vec<(String, u64)>, StorageError> {
    let used = lock_account(tx, account)?;
    let last = if updates.iter().any(|u| u.store == ACCESS) {
        last_access(tx, account)?
    } else {
        None
    };
    let (last_idx, last) = last.map_or((0, None), |(i, d)| (i, serde_json::from_str(&d).ok()));
    super::served::postgres_upsert(tx, account, updates)?;
    let updates = &packed::pack_appends(updates, last, last_idx);
    let added = super::bytes_within_quota(used, updates, max_bytes)?;
    tx.execute(
        "UPDATE accounts SET bytes = bytes + $2 WHERE udf = $1",
        &[&account, &i(added)],
    )?;
    let insert = tx.prepare(
        "INSERT INTO entries (account, store, idx, data, whole_len) VALUES ($1, $2, $3, $4, $5)",
    )?;
    let out = super::append_entries(
        tx,
        updates,
        |tx, store| last_index(tx, account, store),
        |tx, store, idx, r: &Row| {
            let whole = r.whole_len.map(i);
            tx.execute(&insert, &[&account, &store, &i(idx), &r.data, &whole])?;
            Ok(())
        },
    )?;
    notify(tx, account)?;
    Ok(out)
}

fn account_of(r: &::postgres::Row) -> AccountRecord {
    AccountRecord {
        udf: r.get(0),
        address: r.get(1),
        profile: r.get(2),
    }
}

impl Storage for Postgres {
    fn bind(&self, account: &AccountRecord, first: &[Append]) -> Result<(), StorageError> {
        self.write(|tx| {
            // One account creation at a time across processes: the count is the quota.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_BIND])?;
            let exists = tx.query_opt(
                "SELECT udf FROM accounts WHERE udf = $1 OR address = $2",
                &[&account.udf, &account.address],
            )?;
            if exists.is_some() {
                return Err(StorageError::Exists(account.address.clone()));
            }
            let n: i64 = tx.query_one("SELECT COUNT(*) FROM accounts", &[])?.get(0);
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
                "INSERT INTO accounts (udf, address, profile) VALUES ($1, $2, $3)",
                &[&account.udf, &account.address, &account.profile],
            )?;
            append_in(tx, &account.udf, first, self.limits.max_account_bytes)?;
            Ok(())
        })
    }

    fn account_by_address(&self, address: &str) -> Result<Option<AccountRecord>, StorageError> {
        let address = address.to_lowercase();
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT udf, address, profile FROM accounts WHERE address = $1",
                &[&address],
            )?
            .map(|r| account_of(&r)))
        })
    }

    fn account_by_udf(&self, udf: &str) -> Result<Option<AccountRecord>, StorageError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT udf, address, profile FROM accounts WHERE udf = $1",
                &[&udf],
            )?
            .map(|r| account_of(&r)))
        })
    }

    fn indices(&self, account: &str) -> Result<Vec<(String, u64)>, StorageError> {
        let stores: Vec<&str> = mesh_core::portal::store::ALL.to_vec();
        self.with(|c| {
            // One index probe per store name, in one statement (one snapshot).
            let st = c.stmt(
                "SELECT s, CASE WHEN s = 'Inbound'
                     THEN (SELECT NULLIF(inbound_last, 0) FROM accounts WHERE udf = $1)
                     ELSE (SELECT MAX(idx) FROM entries WHERE account = $1 AND store = s) END
                 FROM unnest($2::text[]) AS s",
            )?;
            let rows = c.query(&st, &[&account, &stores])?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let idx: Option<i64> = r.get(1);
                    idx.map(|i| (r.get::<_, String>(0), u(i)))
                })
                .collect())
        })
    }

    fn read(
        &self,
        account: &str,
        select: &[(String, u64)],
        page: Page,
    ) -> Result<Vec<StoreRead>, StorageError> {
        self.with(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut page = page;
            let mut out = Vec::with_capacity(select.len());
            for (store, after) in select {
                out.push(read_store(&mut tx, account, store, *after, &mut page)?);
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn last_index(&self, account: &str, store: &str) -> Result<Option<u64>, StorageError> {
        if store == INBOUND {
            return self.with(|c| {
                let row = c.query_opt(INBOUND_LAST, &[&account])?;
                Ok(row.map(|r| u(r.get(0))))
            });
        }
        self.with(|c| {
            let st = c.stmt(
                "SELECT (SELECT MAX(idx) FROM entries WHERE account = $1 AND store = $2)
                 FROM accounts WHERE udf = $1",
            )?;
            let row = c.query_opt(&st, &[&account, &store])?;
            Ok(row.map(|r| r.get::<_, Option<i64>>(0).map(u).unwrap_or(0)))
        })
    }

    fn last(&self, account: &str, store: &str) -> Result<Option<(u64, String)>, StorageError> {
        if store == ACCESS {
            return self.with(|c| {
                let mut tx = c
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()?;
                let last = last_access(&mut tx, account)?;
                tx.commit()?;
                Ok(last)
            });
        }
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT idx, data FROM entries WHERE account = $1 AND store = $2 ORDER BY idx DESC LIMIT 1",
                &[&account, &store],
            )?
            .map(|r| (u(r.get(0)), r.get(1))))
        })
    }

    fn append(
        &self,
        account: &str,
        updates: &[Append],
        responses: &[(String, String)],
        revokes: bool,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        self.write(|tx| {
            let out = append_in(tx, account, updates, self.limits.account_bytes(revokes))?;
            for (id, resp) in responses {
                // Answered: the pool drops the request, Complete keeps the answer.
                tx.execute(
                    "UPDATE requests SET response = $2, data = NULL WHERE request_id = $1 AND account = $3",
                    &[id, resp, &account],
                )?;
            }
            Ok(out)
        })
    }

    fn served_file(&self, account: &str, name: &str) -> Result<Option<ServedFile>, StorageError> {
        self.with(|c| super::served::postgres_file(&mut **c, account, name))
    }

    fn served_ocsp(
        &self,
        account: &str,
        key: &str,
        serial: &str,
    ) -> Result<Option<ServedAnswer>, StorageError> {
        self.with(|c| super::served::postgres_ocsp(&mut **c, account, key, serial))
    }

    fn append_audit(
        &self,
        account: &str,
        store: &str,
        expected: u64,
        data: &str,
    ) -> Result<u64, StorageError> {
        self.write(|tx| {
            lock_account(tx, account)?;
            let last = last_index(tx, account, store)?;
            if last != expected {
                return Err(super::audit_conflict(store, expected, last));
            }
            let row = tx.query_one(
                "SELECT COALESCE(SUM(octet_length(data)), 0)::BIGINT FROM entries
                 WHERE account = $1 AND store >= 'Audit:' AND store < 'Audit;'",
                &[&account],
            )?;
            super::audit_within_quota(u(row.get(0)), data.len(), &self.limits)?;
            tx.execute(
                "INSERT INTO entries (account, store, idx, data, whole_len) VALUES ($1, $2, $3, $4, NULL)",
                &[&account, &store, &i(last + 1), &data],
            )?;
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
        self.write(|tx| {
            // The account lock first: two processes cannot both see 31 pending.
            lock_account(tx, &record.account)?;
            let a = &record.account;
            let cutoff = i(now.saturating_sub(self.limits.pending_ttl));
            tx.execute(
                "DELETE FROM requests WHERE account = $1 AND response IS NULL AND received < $2",
                &[a, &cutoff],
            )?;
            let row = tx.query_one(
                "SELECT COUNT(*), COALESCE(SUM(octet_length(data)), 0)::bigint FROM requests
                 WHERE account = $1 AND response IS NULL",
                &[a],
            )?;
            let (n, bytes): (i64, i64) = (row.get(0), row.get(1));
            let size = u64::try_from(inbound.len()).unwrap_or(u64::MAX);
            if u(n) >= self.limits.max_pending
                || u(bytes).saturating_add(size) > self.limits.max_pending_bytes
            {
                return Err(super::too_many_pending(&self.limits));
            }
            let idx: i64 = tx
                .query_one(
                    "UPDATE accounts SET inbound_last = inbound_last + 1 WHERE udf = $1 RETURNING inbound_last",
                    &[a],
                )?
                .get(0);
            tx.execute(
                "INSERT INTO requests (request_id, account, auth_key, response, idx, data, received)
                 VALUES ($1, $2, $3, NULL, $4, $5, $6)",
                &[&request_id, a, &record.auth_key, &idx, &inbound, &i(now)],
            )?;
            notify(tx, a)?;
            Ok(())
        })
    }

    fn request(&self, request_id: &str) -> Result<Option<RequestRecord>, StorageError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT account, auth_key, response FROM requests WHERE request_id = $1",
                &[&request_id],
            )?
            .map(|r| RequestRecord {
                account: r.get(0),
                auth_key: r.get(1),
                response: r.get(2),
            }))
        })
    }

    fn pending_requests(&self, account: &str) -> Result<u64, StorageError> {
        self.with(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM requests WHERE account = $1 AND response IS NULL",
                    &[&account],
                )?
                .get(0);
            Ok(u(n))
        })
    }

    fn use_nonce(&self, nonce: &str, now: u64, expires: u64) -> Result<bool, StorageError> {
        self.with(|c| {
            // Two statements, each its own transaction: no lock is held
            // across them, so processes cannot deadlock on the nonce table.
            let del = c.stmt("DELETE FROM nonces WHERE expires < $1")?;
            let ins = c.stmt(
                "INSERT INTO nonces (nonce, expires) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
            )?;
            c.execute(&del, &[&i(now)])?;
            let n = c.execute(&ins, &[&nonce, &i(expires)])?;
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
            // The time is when the device first reported this serial.
            let st = c.stmt(
                "INSERT INTO applied (account, device, serial, time) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account, device) DO UPDATE SET serial = excluded.serial, time = excluded.time
                 WHERE applied.serial <> excluded.serial",
            )?;
            c.execute(&st, &[&account, &device, &i(serial), &i(time)])?;
            Ok(())
        })
    }

    fn applied(&self, account: &str) -> Result<Vec<(String, u64, u64)>, StorageError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT device, serial, time FROM applied WHERE account = $1",
                &[&account],
            )?
            .iter()
            .map(|r| (r.get(0), u(r.get(1)), u(r.get(2))))
            .collect())
        })
    }

    fn listen(&self, on_change: ChangeFn) -> std::io::Result<()> {
        let url = self.url.clone();
        // Its own connection and thread: LISTEN holds the connection.
        std::thread::Builder::new()
            .name("mesh-portal-listen".into())
            .spawn(move || loop {
                if let Ok(mut c) = connect(&url) {
                    if c.batch_execute(&format!("LISTEN {CHANNEL}")).is_ok() {
                        // Changes made while not listening were missed.
                        on_change(None);
                        let mut notes = c.notifications();
                        let mut it = notes.blocking_iter();
                        while let Ok(Some(n)) =
                            ::postgres::fallible_iterator::FallibleIterator::next(&mut it)
                        {
                            on_change(Some(n.payload()));
                        }
                    }
                }
                eprintln!("mesh-portal: the change listener lost the database; reconnecting");
                std::thread::sleep(Duration::from_secs(1));
            })
            .map(|_| ())
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn no_password_survives_redaction() {
        for (url, want) in [
            (
                "postgres://mesh:s3cret@db:5432/mesh",
                "postgres://mesh:…@db:5432/mesh",
            ),
            ("postgres://mesh:p@ss@db/mesh", "postgres://mesh:…@db/mesh"),
            (
                "postgres://mesh@db/mesh?password=s3cret",
                "postgres://mesh@db/mesh",
            ),
            ("postgres://mesh:s3cret@db", "postgres://mesh:…@db"),
            ("mesh:s3cret@db", "the given URL"),
        ] {
            let r = redact(url);
            assert_eq!(r, want);
            assert!(!r.contains("s3cret") && !r.contains("ss@"), "{r}");
        }
    }
}
