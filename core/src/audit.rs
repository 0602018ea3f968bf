//! The signature audit log (PROTOCOL.md §16): every signature a device's
//! agent makes, as a hash chain the device extends and signs in batches,
//! so that whoever holds the batches can tell a log that was cut, reordered
//! or changed from the one the device wrote.
//!
//! - A [`Record`] is one decision of the agent (JSON, kept as the exact
//!   bytes written: the chain covers bytes, never a re-serialization).
//! - The chain: `link(n) = SHA-256("mesh-audit-v1" ‖ link(n-1) ‖
//!   len(record n) as u64 BE ‖ record n)`, `link(-1)` 32 zero bytes.
//! - A [`Batch`] carries records `First..First+len`, the link before them
//!   (`Prev`) and after them (`Head`), signed by the device's root key
//!   (its profile's `ProfileSignature`, which a rotation keeps). [`verify`] walks a device's batches as a reader got them and
//!   names the first record that is missing, out of place or changed.
//!
//! Sans-io: bytes and values in, values out; the device's log file, the
//! upload and the encryption to the administrators are the host's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::Signed;
use crate::keys::{PublicKey, SigningKey};

/// Content type of a signed [`Batch`].
pub const CT_BATCH: &str = "MeshAuditBatch";
/// Content type of a batch encrypted to the administrators.
pub const CT_SEALED_BATCH: &str = "MeshAuditSealed";
/// Records in one batch, at most (a bound on what a reader parses).
pub const MAX_BATCH: usize = 1024;
/// The portal transaction by which a device appends one sealed batch.
pub const TX: &str = "Audit";
/// What the name of a device's audit store starts with.
pub const STORE_PREFIX: &str = "Audit:";
/// Largest Audit request body the portal takes.
pub const MAX_BODY: usize = 1 << 20;
/// Bytes of one record, at most.
pub const MAX_RECORD: usize = 4096;

const DOMAIN: &[u8] = b"mesh-audit-v1";

/// A link of the chain.
pub type Link = [u8; 32];

/// The link before the first record.
pub const GENESIS: Link = [0; 32];

/// What the agent decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Signed without asking.
    Allowed,
    /// Signed after the user confirmed.
    Confirmed,
    /// Not signed.
    Refused,
    /// A decision a newer agent wrote.
    #[serde(other)]
    Unknown,
}

/// One signature request and its outcome. What the request was is the
/// signing channel's to say (`detail`: for SSH, its kind, user, host key,
/// namespace and hops, `mesh_ssh::audit`); fields a newer agent adds are
/// kept there too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the device's chain, from 0.
    #[serde(rename = "Seq")]
    pub seq: u64,
    /// Seconds since the Unix epoch.
    #[serde(rename = "Time")]
    pub time: u64,
    /// The key's fingerprint (as its channel writes it).
    #[serde(rename = "Key")]
    pub key: String,
    /// The calling program, from the socket's peer (`pid exe`).
    #[serde(rename = "Process", default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// The agent's decision.
    #[serde(rename = "Decision")]
    pub decision: Decision,
    /// The channel's account of the request, and fields of newer agents.
    #[serde(flatten)]
    pub detail: BTreeMap<String, serde_json::Value>,
}

/// The link after `record` (its exact bytes) following `prev`.
pub fn link(prev: &Link, record: &[u8]) -> Link {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update((record.len() as u64).to_be_bytes());
    h.update(record);
    h.finalize().into()
}

/// Records `First..` of one device's chain, signed by the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The device's UDF.
    #[serde(rename = "Device")]
    pub device: String,
    /// Seq of the first record.
    #[serde(rename = "First")]
    pub first: u64,
    /// The link before the first record.
    #[serde(rename = "Prev", with = "crate::b64::serde_bytes")]
    pub prev: Vec<u8>,
    /// The records' exact bytes.
    #[serde(rename = "Records")]
    pub records: Vec<RecordBytes>,
    /// The link after the last record.
    #[serde(rename = "Head", with = "crate::b64::serde_bytes")]
    pub head: Vec<u8>,
}

/// A record's bytes (base64 on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordBytes(#[serde(with = "crate::b64::serde_bytes")] pub Vec<u8>);

impl Batch {
    /// Chain `records` after `prev` and sign them with the device's key.
    pub fn seal(
        device: &str,
        first: u64,
        prev: &Link,
        records: Vec<Vec<u8>>,
        key: &SigningKey,
    ) -> Signed {
        let head = records.iter().fold(*prev, |l, r| link(&l, r));
        let b = Batch {
            device: device.to_owned(),
            first,
            prev: prev.to_vec(),
            records: records.into_iter().map(RecordBytes).collect(),
            head: head.to_vec(),
        };
        Signed::sign_object(CT_BATCH, &b, key)
    }
}

/// The store that holds `device`'s batches: `Audit:<device UDF>`, one
/// entry per batch, appended only by that device.
pub fn store_of(device: &str) -> String {
    format!("{STORE_PREFIX}{device}")
}

/// What the portal stores for a batch: the request's own fields (the
/// device is the store's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Seq of its first record.
    #[serde(rename = "First")]
    pub first: u64,
    /// How many records it carries.
    #[serde(rename = "Count")]
    pub count: u64,
    /// The signed [`Batch`], encrypted to the administrators' key.
    #[serde(rename = "Sealed")]
    pub sealed: crate::envelope::Encrypted,
}

/// A device's Audit request (PROTOCOL.md §16): the next batch of its
/// log, signed by it and sealed to the administrators.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Upload {
    /// The index this batch takes in the device's store (1 for the first):
    /// a batch sent again after an answer was lost is recognised.
    #[serde(rename = "Index")]
    pub index: u64,
    /// The batch as the portal keeps it.
    #[serde(flatten)]
    pub batch: Stored,
}

/// The portal's answer: the batch is at `Index`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ack {
    /// Its index in the device's store.
    #[serde(rename = "Index")]
    pub index: u64,
}

/// Why a device's log is not the one it wrote. Each names the first record
/// (by seq) a reader cannot vouch for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// A batch whose signature does not verify, or that is not a batch.
    #[error("audit batch {batch} (records from {first}) is not signed by the device: changed ({detail})")]
    Forged {
        /// Position of the batch as served.
        batch: usize,
        /// The seq it claims to start at.
        first: u64,
        /// The check that failed.
        detail: String,
    },
    /// Records missing between two batches (a batch was dropped).
    #[error("audit records {from}..{to} are missing (dropped)")]
    Dropped {
        /// First missing seq.
        from: u64,
        /// One past the last missing seq.
        to: u64,
    },
    /// A batch that starts before the previous ended (replayed or reordered).
    #[error("audit record {seq} comes again or out of order (reordered)")]
    Reordered {
        /// The seq that came out of place.
        seq: u64,
    },
    /// A batch whose records do not chain to its signed links, or whose
    /// link does not continue the one before (changed).
    #[error("audit record {seq} does not chain to the record before it (changed)")]
    Changed {
        /// The first seq that does not chain.
        seq: u64,
    },
    /// A record that does not parse, or is out of bounds.
    #[error("audit record {seq} is malformed: {detail}")]
    Malformed {
        /// Its seq.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
}

/// A verified chain: the records in order and the link after the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The records, seq 0 first.
    pub records: Vec<Record>,
    /// The link after the last record.
    pub head: Link,
}

/// Verify one device's batches, in the order a reader got them, against
/// the device's root key. The whole chain from seq 0 must
/// be there: the first missing, repeated, reordered or changed record is
/// named.
pub fn verify(device: &str, batches: &[Signed], keys: &[PublicKey]) -> Result<Verified, Fault> {
    let mut out = Verified {
        records: Vec::new(),
        head: GENESIS,
    };
    for (i, env) in batches.iter().enumerate() {
        let b: Batch = env
            .verify_object("audit batch", CT_BATCH, keys)
            .map_err(|e| forged(i, env, e))?;
        let next = out.records.len() as u64;
        if b.device != device {
            return Err(forged(i, env, format!("a batch of device {}", b.device)));
        }
        if b.records.is_empty() || b.records.len() > MAX_BATCH {
            return Err(forged(i, env, format!("{} records", b.records.len())));
        }
        if b.first > next {
            return Err(Fault::Dropped {
                from: next,
                to: b.first,
            });
        }
        if b.first < next {
            return Err(Fault::Reordered { seq: b.first });
        }
        if b.prev[..] != out.head[..] {
            return Err(Fault::Changed { seq: b.first });
        }
        let mut at = out.head;
        for (n, r) in b.records.iter().enumerate() {
            let seq = b.first + n as u64;
            out.records.push(parse(seq, &r.0)?);
            at = link(&at, &r.0);
        }
        if at[..] != b.head[..] {
            return Err(Fault::Changed { seq: b.first });
        }
        out.head = at;
    }
    Ok(out)
}

fn forged(batch: usize, env: &Signed, detail: impl ToString) -> Fault {
    let first = env
        .unverified_object::<Batch>("audit batch")
        .map(|b| b.first)
        .unwrap_or(0);
    Fault::Forged {
        batch,
        first,
        detail: detail.to_string(),
    }
}

fn parse(seq: u64, bytes: &[u8]) -> Result<Record, Fault> {
    let bad = |detail: String| Fault::Malformed { seq, detail };
    if bytes.len() > MAX_RECORD {
        return Err(bad(format!("{} bytes (at most {MAX_RECORD})", bytes.len())));
    }
    let r: Record = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if r.seq != seq {
        return Err(bad(format!("it says it is record {}", r.seq)));
    }
    Ok(r)
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
