//! Portal storage: accounts and their append-only stores.
//!
//! The [`Storage`] trait is what the service needs. [`Sqlite`] is the
//! embedded default (one file, WAL, every call one transaction);
//! [`Postgres`] serves deployments with several portal processes on one
//! database (replay detection, serial conflicts, quotas and change
//! notifications then cross processes through the database).

mod migrate_packed;
mod packed;
mod pg_schema;
mod postgres;
mod served;
mod sqlite;

use self::packed::{Packed, Row};

pub use self::postgres::{redact, Postgres};
pub use self::served::{ServedAnswer, ServedFile};
pub use self::sqlite::Sqlite;

/// Most bytes of entries one answer carries, beyond the first entry of
/// each store: clients refuse answers over 32 MiB, and 256 whole access
/// lists of a 1,000-device account are about 128 MB. The storage applies
/// it while reading (sizes first), the Checkpoint store first: small, and
/// every other store stops at the last checkpoint in the page (after one
/// large access list per page, a device that fell behind at 1,000 devices
/// read 1,000 pages).
pub const MAX_PAGE_BYTES: usize = 16 << 20;

/// Storage errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database failed.
    #[error("database: {0}")]
    Db(DbError),
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
    /// A stored entry does not read back (an access list stored as a change
    /// without the list before it, or one that does not apply).
    #[error("the database holds a damaged entry: {0}")]
    Corrupt(String),
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
    /// Accounts.
    pub max_accounts: u64,
    /// Bytes of entries per account (what its administrators write; the
    /// connection requests third parties send are not counted).
    pub max_account_bytes: u64,
    /// Unanswered connection requests per account.
    pub max_pending: u64,
    /// Bytes of unanswered connection requests per account.
    pub max_pending_bytes: u64,
    /// Seconds an unanswered connection request is kept.
    pub pending_ttl: u64,
    /// Bytes of the devices' audit batches per account (apart from
    /// `max_account_bytes`).
    pub max_audit_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_accounts: 100_000,
            max_account_bytes: 256 << 20,
            max_pending: mesh_core::portal::MAX_PENDING,
            max_pending_bytes: mesh_core::portal::MAX_PENDING_BYTES,
            pending_ttl: mesh_core::portal::PENDING_TTL,
            max_audit_bytes: 64 << 20,
        }
    }
}

/// The least a revocation may pass an account's byte quota by.
pub const REVOCATION_RESERVE_FLOOR: u64 = 64 << 10;

impl Limits {
    /// The quota of a transaction: a revocation may use a reserve above
    /// the limit (an eighth of it), so that an account that filled its
    /// quota can still revoke a stolen device.
    pub(crate) fn account_bytes(&self, revokes: bool) -> u64 {
        if revokes {
            // An eighth, and at least what a small account's revocation
            // writes (new keys wrapped to each holder, certificates, the
            // CRL and the OCSP answers signed ahead: about 20 KB for two
            // devices).
            let reserve = (self.max_account_bytes / 8).max(REVOCATION_RESERVE_FLOOR);
            self.max_account_bytes.saturating_add(reserve)
        } else {
            self.max_account_bytes
        }
    }
}

/// The refusal when connection requests would pass an account's caps (the
/// count or the bytes): the numbers are the portal's published caps only.
fn too_many_pending(limits: &Limits) -> StorageError {
    StorageError::Quota {
        code: mesh_core::portal::code::TOO_MANY_PENDING,
        reason: format!(
            "the account has {} unanswered connection requests (or their size is at this portal's limit); an administrator must accept or reject them first",
            limits.max_pending
        ),
    }
}

/// The refusal when an audit batch of `adding` bytes would take the
/// account's audit stores (holding `used`) past their limit.
fn audit_within_quota(used: u64, adding: usize, limits: &Limits) -> Result<(), StorageError> {
    if used.saturating_add(adding as u64) > limits.max_audit_bytes {
        return Err(StorageError::Quota {
            code: mesh_core::portal::code::QUOTA_EXCEEDED,
            reason: "the account's audit logs are at this portal's limit; the device keeps its records and sends them when there is room".into(),
        });
    }
    Ok(())
}

/// The conflict of an audit append at `expected` in a store at `actual`.
fn audit_conflict(store: &str, expected: u64, actual: u64) -> StorageError {
    StorageError::Conflict {
        store: store.to_string(),
        expected,
        actual,
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

/// The bytes `updates` add to an account that holds `used` (as stored:
/// an access list stored as a change counts the change), or the quota
/// error when they would pass `max_bytes`. Both backends call it under the
/// account's lock, inside the transaction that appends.
fn bytes_within_quota(used: u64, updates: &[Packed], max_bytes: u64) -> Result<u64, StorageError> {
    let added: u64 = updates
        .iter()
        .flat_map(|u| &u.rows)
        .map(|r| u64::try_from(r.data.len()).unwrap_or(u64::MAX))
        .fold(0, u64::saturating_add);
    if used.saturating_add(added) > max_bytes {
        // No byte count: what an account holds is its administrators' business.
        return Err(StorageError::Quota {
            code: mesh_core::portal::code::QUOTA_EXCEEDED,
            reason: "the account is at this portal's limit of bytes per account; this transaction would pass it".into(),
        });
    }
    Ok(added)
}

/// Append `updates` through a backend's transaction `cx`: each store's
/// expected index is checked against its last one (a `Conflict` when it
/// moved on), and its rows take the next indices. Returns each store's
/// last index after the append.
fn append_entries<C>(
    cx: &mut C,
    updates: &[Packed],
    last_index: impl Fn(&mut C, &str) -> Result<u64, StorageError>,
    insert: impl Fn(&mut C, &str, u64, &Row) -> Result<(), StorageError>,
) -> Result<Vec<(String, u64)>, StorageError> {
    let mut out = Vec::new();
    for up in updates {
        let mut idx = last_index(cx, &up.store)?;
        if let Some(expected) = up.expected.filter(|e| *e != idx) {
            return Err(StorageError::Conflict {
                store: up.store.clone(),
                expected,
                actual: idx,
            });
        }
        for r in &up.rows {
            idx += 1;
            insert(cx, &up.store, idx, r)?;
        }
        out.push((up.store.clone(), idx));
    }
    Ok(out)
}

/// What one read may bring: at most `limit` entries per store and about
/// `budget` bytes of entries in all, each store at least its first entry.
/// The stores read their entries' sizes first and then only the entries
/// that fit: a read never holds more than the budget and one entry per
/// store (a store selected once: the service refuses a store twice).
#[derive(Clone, Copy, Debug)]
pub struct Page {
    limit: usize,
    left: usize,
}

impl Page {
    /// A page of `limit` entries per store and `budget` bytes.
    pub fn new(limit: usize, budget: usize) -> Page {
        Page {
            limit,
            left: budget,
        }
    }

    /// Entries per store.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Of the sizes of a store's next entries (at most `limit + 1`), how
    /// many the page takes, and whether more follow.
    pub(crate) fn take(&mut self, sizes: &[u64]) -> (usize, bool) {
        let mut keep = 0;
        for n in sizes.iter().take(self.limit) {
            let n = usize::try_from(*n).unwrap_or(usize::MAX);
            if keep > 0 && n > self.left {
                break;
            }
            self.left = self.left.saturating_sub(n);
            keep += 1;
        }
        (keep, keep < sizes.len())
    }
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
    /// Last index of each store that has entries (one indexed look-up per
    /// store name, so its cost does not grow with the account).
    fn indices(&self, account: &str) -> Result<Vec<(String, u64)>, StorageError>;
    /// Entries after the given index of each store, in the order given,
    /// as many as `page` takes; all read in one snapshot (a reader checks
    /// them against each other: the checkpoint against the stores it
    /// signs). The Inbound store is the pool of unanswered connection
    /// requests: its indices go on increasing, and answered or expired
    /// requests leave gaps.
    fn read(
        &self,
        account: &str,
        select: &[(String, u64)],
        page: Page,
    ) -> Result<Vec<StoreRead>, StorageError>;
    /// The last index of a store; `None` when the account does not exist.
    fn last_index(&self, account: &str, store: &str) -> Result<Option<u64>, StorageError>;
    /// The last entry of a store.
    fn last(&self, account: &str, store: &str) -> Result<Option<(u64, String)>, StorageError>;
    /// Append to several stores, all or nothing; returns the new last indices.
    /// `responses` index answers to connection requests by request id (and
    /// drop the answered requests from the Inbound pool). A transaction
    /// that `revokes` a device may use the quota's reserve.
    fn append(
        &self,
        account: &str,
        updates: &[Append],
        responses: &[(String, String)],
        revokes: bool,
    ) -> Result<Vec<(String, u64)>, StorageError>;
    /// A file the account's Published entries serve (PROTOCOL.md §18);
    /// every append (and bind) keeps the index in its transaction.
    fn served_file(&self, account: &str, name: &str) -> Result<Option<ServedFile>, StorageError>;
    /// The OCSP answer the account's Published entries serve for an issuer
    /// key hash and serial (lowercase hex, §18).
    fn served_ocsp(
        &self,
        account: &str,
        issuer_key_hash: &str,
        serial: &str,
    ) -> Result<Option<ServedAnswer>, StorageError>;
    /// Append `data` to a device's audit store (`store`, `Audit:<device>`)
    /// at index `expected + 1` (a `Conflict` when the store is elsewhere),
    /// within [`Limits::max_audit_bytes`] for all of the account's audit
    /// stores. Not counted against the account's byte quota, so a device's
    /// log never takes what an administrator's revoke needs; wakes no one.
    fn append_audit(
        &self,
        account: &str,
        store: &str,
        expected: u64,
        data: &str,
    ) -> Result<u64, StorageError>;
    /// Record a connection request and its Inbound entry, in one
    /// transaction that first drops the account's requests unanswered for
    /// longer than [`Limits::pending_ttl`] and then checks the pending
    /// caps. Not counted against the account's byte quota.
    fn add_request(
        &self,
        request_id: &str,
        record: &RequestRecord,
        inbound: &str,
        now: u64,
    ) -> Result<(), StorageError>;
    /// A connection request.
    fn request(&self, request_id: &str) -> Result<Option<RequestRecord>, StorageError>;
    /// Connection requests of an account still waiting for an answer.
    fn pending_requests(&self, account: &str) -> Result<u64, StorageError>;
    /// Remember a nonce until `expires`; false if it was seen before.
    fn use_nonce(&self, nonce: &str, now: u64, expires: u64) -> Result<bool, StorageError>;
    /// A device of `account` reports the access list serial it applied, at
    /// `time` (kept once per serial: the time is when it first said so).
    fn set_applied(
        &self,
        account: &str,
        device: &str,
        serial: u64,
        time: u64,
    ) -> Result<(), StorageError>;
    /// What the devices of an account reported: (device UDF, serial, time).
    fn applied(&self, account: &str) -> Result<Vec<(String, u64, u64)>, StorageError>;
    /// Deliver the changes other processes make: `on_change(Some(account))`
    /// after each of their commits that moves an account's stores, and
    /// `on_change(None)` when some may have been missed (wake everyone).
    /// The embedded store has no other writers, so the default does nothing.
    fn listen(&self, on_change: ChangeFn) -> std::io::Result<()> {
        let _ = on_change;
        Ok(())
    }
}

/// What [`Storage::listen`] calls.
pub type ChangeFn = std::sync::Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// What the database driver said (either backend).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL.
    #[error(transparent)]
    Postgres(#[from] ::postgres::Error),
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> StorageError {
        StorageError::Db(DbError::Sqlite(e))
    }
}

impl From<::postgres::Error> for StorageError {
    fn from(e: ::postgres::Error) -> StorageError {
        StorageError::Db(DbError::Postgres(e))
    }
}

/// Why a store could not be opened: what the operator must fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The database server did not answer (or refused the login).
    #[error("cannot reach the database at {url}: {reason}")]
    Unreachable {
        /// The URL, its password elided.
        url: String,
        /// The driver's error and its causes.
        reason: String,
    },
    /// The database was migrated by a newer portal.
    #[error(
        "the database's schema is version {found}; this mesh-portal knows versions up to {known}"
    )]
    SchemaNewer {
        /// The database's version.
        found: i64,
        /// The newest this binary knows.
        known: i64,
    },
    /// The URL is not one this portal takes.
    #[error("{0}")]
    BadUrl(String),
    /// Opening or migrating failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl OpenError {
    /// What the operator can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            OpenError::Unreachable { .. } => Some(
                "check that PostgreSQL runs and that --database names its host, port, user and database (postgres://USER@HOST:PORT/DB)",
            ),
            OpenError::SchemaNewer { .. } => Some(
                "run the mesh-portal version that migrated this database, or a newer one; schemas are never migrated down",
            ),
            OpenError::BadUrl(_) => Some("give --database postgres://USER[:PASSWORD]@HOST[:PORT]/DB"),
            OpenError::Storage(_) => None,
        }
    }
}

/// Where a portal keeps its data.
#[derive(Clone, Debug)]
pub enum Backend {
    /// `DIR/portal.sqlite`.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database URL.
    Postgres(String),
}

/// Open the store a portal was given.
pub fn open(backend: &Backend, limits: Limits) -> Result<std::sync::Arc<dyn Storage>, OpenError> {
    Ok(match backend {
        Backend::Sqlite(dir) => std::sync::Arc::new(Sqlite::open(dir)?.with_limits(limits)),
        Backend::Postgres(url) => std::sync::Arc::new(Postgres::open(url)?.with_limits(limits)),
    })
}

#[cfg(test)]
mod tests {
    use super::{Limits, Page, REVOCATION_RESERVE_FLOOR};

    /// A revocation may pass the quota by an eighth, and by at least the
    /// floor; nothing else passes it.
    #[test]
    fn a_revocation_has_a_reserve_of_an_eighth_and_at_least_the_floor() {
        let at = |max: u64| Limits {
            max_account_bytes: max,
            ..Limits::default()
        };
        for (max, reserve) in [
            (1000, REVOCATION_RESERVE_FLOOR),
            (64 << 10, REVOCATION_RESERVE_FLOOR),
            (8 << 20, 1 << 20),
        ] {
            assert_eq!(at(max).account_bytes(false), max, "{max}");
            assert_eq!(at(max).account_bytes(true), max + reserve, "{max}");
        }
    }

    /// A page takes entries by their sizes before any is read: each store
    /// its first entry at least, then what fits in the budget left.
    #[test]
    fn a_page_takes_what_fits_and_every_store_progresses() {
        type Case = (
            &'static str,
            Vec<Vec<u64>>,
            usize,
            usize,
            Vec<(usize, bool)>,
        );
        let cases: [Case; 4] = [
            (
                "cut at 100 bytes, one entry at least",
                vec![vec![40, 40, 40], vec![10, 10, 10], vec![], vec![500]],
                256,
                100,
                vec![(2, true), (2, true), (0, false), (1, false)],
            ),
            (
                "the first store (the checkpoints) whole, then one large entry",
                vec![vec![10, 10, 10, 10], vec![90, 90, 90]],
                256,
                100,
                vec![(4, false), (1, true)],
            ),
            (
                "nothing cut, nothing more",
                vec![vec![10, 10]],
                256,
                100,
                vec![(2, false)],
            ),
            (
                "the entry limit: one more size than the limit says more follow",
                vec![vec![1, 1, 1, 1]],
                3,
                100,
                vec![(3, true)],
            ),
        ];
        for (name, stores, limit, budget, want) in cases {
            let mut page = Page::new(limit, budget);
            let got: Vec<(usize, bool)> = stores.iter().map(|s| page.take(s)).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
