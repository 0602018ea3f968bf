//! The PostgreSQL schema and its migrations (split from `postgres.rs`).

use ::postgres::Client;

use super::{OpenError, StorageError};

/// The advisory lock taken while migrating (an arbitrary constant: "mesh"
/// in ASCII).
const LOCK_MIGRATE: i64 = 0x6d65_7368_0001;

/// The schema, one step per version; version N is `MIGRATIONS[N - 1]`.
/// Each step runs once, in a transaction that also records it.
const MIGRATIONS: &[&str] = &[
    // 1: the tables the SQLite store has, under the same names.
    "CREATE TABLE accounts (
        udf TEXT PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        profile TEXT NOT NULL,
        bytes BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE entries (
        account TEXT NOT NULL,
        store TEXT NOT NULL,
        idx BIGINT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (account, store, idx)
    );
    CREATE TABLE requests (
        request_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        auth_key TEXT NOT NULL,
        response TEXT
    );
    CREATE INDEX requests_pending ON requests (account) WHERE response IS NULL;
    CREATE TABLE nonces (
        nonce TEXT PRIMARY KEY,
        expires BIGINT NOT NULL
    );
    CREATE INDEX nonces_expires ON nonces (expires);
    CREATE TABLE applied (
        account TEXT NOT NULL,
        device TEXT NOT NULL,
        serial BIGINT NOT NULL,
        time BIGINT NOT NULL,
        PRIMARY KEY (account, device)
    );",
    // 2: the Inbound store leaves `entries` (and the byte quota) for the
    // pool of connection requests, with the account's Inbound counter;
    // answered requests keep only their answer.
    "ALTER TABLE requests ADD COLUMN idx BIGINT, ADD COLUMN data TEXT,
         ADD COLUMN received BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN inbound_last BIGINT NOT NULL DEFAULT 0;
    UPDATE accounts SET inbound_last = COALESCE(
        (SELECT MAX(idx) FROM entries WHERE account = udf AND store = 'Inbound'), 0);
    UPDATE requests AS r SET idx = e.idx, data = e.data,
        received = COALESCE((e.data::json->>'Received')::bigint, 0)
      FROM entries AS e
      WHERE e.account = r.account AND e.store = 'Inbound'
        AND e.data::json->>'RequestId' = r.request_id AND r.response IS NULL;
    UPDATE accounts SET bytes = GREATEST(0, bytes - (SELECT COALESCE(SUM(octet_length(data)), 0)
        FROM entries WHERE account = udf AND store = 'Inbound'));
    DELETE FROM entries WHERE store = 'Inbound';
    CREATE INDEX requests_pool ON requests (account, idx) WHERE data IS NOT NULL;",
    // 3: a row of the Access store may hold a change (`packed`); older
    // portals cannot read them.
    "ALTER TABLE entries ADD COLUMN whole_len BIGINT;",
];

/// The version that says every account's access lists are stored as
/// changes (`migrate_packed`, one transaction per account, after the steps).
const PACKED: i64 = MIGRATIONS.len() as i64 + 1;

/// Steps after [`PACKED`]: version `PACKED + 1 + n` is `LATER[n]`.
const LATER: &[&str] = &[
    // 5: the served index (PROTOCOL.md §18); an older portal would not keep it.
    super::served::POSTGRES,
];

/// The newest schema version this binary knows.
pub(crate) const SCHEMA_VERSION: i64 = PACKED + LATER.len() as i64;

/// Create the tables, or bring them up to date; refuse a newer schema.
/// Several processes starting at once migrate one after the other (an
/// advisory lock), and a step already recorded is not run again.
pub(super) fn migrate(c: &mut Client) -> Result<(), OpenError> {
    let mut tx = c.transaction().map_err(StorageError::from)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])
        .map_err(StorageError::from)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS mesh_schema (version BIGINT NOT NULL)")
        .map_err(StorageError::from)?;
    let version: i64 = tx
        .query_opt("SELECT MAX(version) FROM mesh_schema", &[])
        .map_err(StorageError::from)?
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(OpenError::SchemaNewer {
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    for (n, step) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.batch_execute(step).map_err(StorageError::from)?;
        let v = i64::try_from(n + 1).unwrap_or(i64::MAX);
        tx.execute("INSERT INTO mesh_schema (version) VALUES ($1)", &[&v])
            .map_err(StorageError::from)?;
    }
    tx.commit().map_err(StorageError::from)?;
    if version < PACKED {
        // Each account under its own lock: other processes serve meanwhile.
        super::migrate_packed::postgres(c)?;
        record(c, PACKED)?;
    }
    for (n, step) in LATER.iter().enumerate() {
        let v = PACKED + 1 + i64::try_from(n).unwrap_or(i64::MAX);
        if version < v {
            let mut tx = c.transaction().map_err(StorageError::from)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])
                .map_err(StorageError::from)?;
            // Idempotent (IF NOT EXISTS): another process may have run it.
            tx.batch_execute(step).map_err(StorageError::from)?;
            record(&mut tx, v)?;
            tx.commit().map_err(StorageError::from)?;
        }
    }
    Ok(())
}

/// Record that the schema is at `version` (once).
fn record(c: &mut impl ::postgres::GenericClient, version: i64) -> Result<(), StorageError> {
    c.execute(
        "INSERT INTO mesh_schema (version) SELECT $1 WHERE NOT EXISTS
             (SELECT 1 FROM mesh_schema WHERE version = $1)",
        &[&version],
    )
    .map_err(StorageError::from)?;
    Ok(())
}
