//! The signature audit log at the portal (PROTOCOL.md §16).
//!
//! - A device sends what its log holds past what the portal acknowledged,
//!   one batch at a time: signed with its root key, sealed to the
//!   administrators, at the next index of its own store. The batch is
//!   written to `audit.pending` before it is sent and sent again as it is
//!   until the portal has it, so a lost answer or a crash never makes two
//!   different batches for one index; `audit.sent` then moves on.
//! - An administrator reads every device's store, opens each batch and
//!   checks the device's chain ([`mesh_core::audit::verify`]): the first
//!   record the portal dropped, reordered or changed is named.

use std::path::Path;

use mesh_core::audit::{self, Ack, Batch, Fault, Link, Stored, Upload, CT_SEALED_BATCH};
use mesh_core::envelope::{Encrypted, Signed};
use mesh_core::portal::{self as p, tx, StoreIndex};
use serde::{Deserialize, Serialize};

use crate::audit_log::{self, AuditLogError, Position, Take};
use crate::client::Client;
use crate::state::{admin_keys, device_keys, device_udf, AccountState, Membership};
use crate::store::{write_atomic, Store};
use crate::AccountError;

/// What was acknowledged: the batches the portal holds and where the log
/// stands after them.
const SENT: &str = "audit.sent";
/// The batch being sent, exactly as it goes.
const PENDING: &str = "audit.pending";
/// Records per batch, at most.
const PER_BATCH: usize = audit::MAX_BATCH;
/// Bytes of records per batch, at most: sealed and in base64 (twice) it
/// stays under the portal's bound on an Audit request.
const BATCH_BYTES: usize = audit::MAX_BODY / 3;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The account, the store, the portal.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The device's log file.
    #[error(transparent)]
    Log(#[from] AuditLogError),
    /// A portal that would keep a read going for ever.
    #[error(transparent)]
    Pager(#[from] crate::pager::PagerError),
}

impl AuditError {
    /// What the user can do.
    pub fn hint(&self) -> Option<String> {
        match self {
            AuditError::Account(e) => e.hint(),
            AuditError::Log(e) => e.hint(),
            AuditError::Pager(e) => Some(e.hint()),
        }
    }
}

fn account_err(e: impl Into<AccountError>) -> AuditError {
    AuditError::Account(e.into())
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Sent {
    #[serde(rename = "Index")]
    index: u64,
    #[serde(rename = "Next")]
    next: u64,
    #[serde(rename = "Head", with = "mesh_core::b64::serde_bytes")]
    head: Vec<u8>,
    /// Where record `next` starts in the log file (0: read from the start).
    #[serde(rename = "Offset", default)]
    offset: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    #[serde(rename = "Upload")]
    upload: Upload,
    #[serde(rename = "Head", with = "mesh_core::b64::serde_bytes")]
    head: Vec<u8>,
    #[serde(rename = "Offset", default)]
    offset: u64,
}

impl Sent {
    /// Where to read on: at the record after the last sent, when known.
    fn position(&self) -> Position {
        match <Link>::try_from(self.head.as_slice()) {
            Ok(head) if self.offset > 0 => Position {
                offset: self.offset,
                seq: self.next,
                head,
            },
            _ => Position::default(),
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, AuditError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            AuditError::Log(AuditLogError::Damaged {
                path: path.to_path_buf(),
                seq: 0,
                detail: e.to_string(),
            })
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Log(AuditLogError::Io {
            path: path.to_path_buf(),
            source,
        })),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), AuditError> {
    write_atomic(path, &serde_json::to_vec(v).unwrap_or_default()).map_err(account_err)
}

/// Send the records of this device's log the portal does not hold yet;
/// returns how many were sent. Nothing to do for a device that is not a
/// member.
pub fn upload(store: &Store) -> Result<u64, AuditError> {
    let a = crate::account(store).map_err(account_err)?;
    if a.membership != Membership::Member {
        return Ok(0);
    }
    let home = store.home();
    let mut sent: Sent = read_json(&home.join(SENT))?.unwrap_or_default();
    let keys = device_keys(store).map_err(account_err)?;
    // Batches are signed with the device's own root key, which a rotation
    // (a new activation) keeps: its old batches still verify.
    let root = crate::device::base_keys(store).map_err(account_err)?;
    let dev = device_udf(store).map_err(account_err)?;
    let admin = a
        .profile()
        .map_err(account_err)?
        .administrator_encryption
        .key;
    let client = Client::new(&a.portal).map_err(account_err)?;
    let mut total = 0;
    loop {
        let pending = match read_json::<Pending>(&home.join(PENDING))? {
            Some(p) => p,
            None => {
                let take = Take {
                    records: PER_BATCH,
                    bytes: BATCH_BYTES,
                };
                let (batch, end) = audit_log::read_at(home, sent.position(), sent.next, take)?;
                if batch.is_empty() {
                    return Ok(total);
                }
                let mut pending = seal(&sent, &dev, batch, &root.profile, &admin)?;
                pending.offset = end.offset;
                write_json(&home.join(PENDING), &pending)?;
                pending
            }
        };
        let up = &pending.upload;
        let ack: Ack = client
            .signed(
                audit::TX,
                &a.profile_udf,
                &dev,
                serde_json::to_value(up).unwrap_or_default(),
                &keys.authenticate,
            )
            .map_err(account_err)?;
        sent = Sent {
            index: ack.index,
            next: up.batch.first + up.batch.count,
            head: pending.head,
            offset: pending.offset,
        };
        write_json(&home.join(SENT), &sent)?;
        let _ = std::fs::remove_file(home.join(PENDING));
        total += up.batch.count;
    }
}

/// The next batch after `sent`: signed by the device, sealed to `admin`.
fn seal(
    sent: &Sent,
    dev: &str,
    records: Vec<Vec<u8>>,
    key: &mesh_core::keys::SigningKey,
    admin: &mesh_core::keys::PublicKey,
) -> Result<Pending, AuditError> {
    let prev: Link = sent.head.as_slice().try_into().unwrap_or(audit::GENESIS);
    let head = records.iter().fold(prev, |l, r| audit::link(&l, r));
    let count = records.len() as u64;
    let signed = Batch::seal(dev, sent.next, &prev, records, key);
    let bytes = serde_json::to_vec(&signed).unwrap_or_default();
    let sealed = Encrypted::encrypt(CT_SEALED_BATCH, &bytes, &[*admin]).map_err(account_err)?;
    Ok(Pending {
        upload: Upload {
            index: sent.index + 1,
            batch: Stored {
                first: sent.next,
                count,
                sealed,
            },
        },
        head: head.to_vec(),
        offset: 0,
    })
}

/// What this device sent, and whether the portal still holds it.
#[derive(Debug)]
pub struct OwnCheck {
    /// Batches the portal acknowledged.
    pub sent_batches: u64,
    /// Records they carry (the log's records before the first unsent one).
    pub sent_records: u64,
    /// Records the portal's store covers, from the first, without a gap.
    pub held_records: u64,
    /// The first thing wrong with the portal's store, if anything.
    pub fault: Option<String>,
}

/// Check that the portal holds every batch this device sent, in order and
/// without a gap: what it cannot open, it can still count. A portal that
/// dropped the newest batches (which no administrator can tell from a
/// device that has not sent them yet) is caught here.
pub fn check_own(store: &Store) -> Result<OwnCheck, AuditError> {
    let a = crate::account(store).map_err(account_err)?;
    let home = store.home();
    let sent: Sent = read_json(&home.join(SENT))?.unwrap_or_default();
    let keys = device_keys(store).map_err(account_err)?;
    let me = device_udf(store).map_err(account_err)?;
    let client = Client::new(&a.portal).map_err(account_err)?;
    let entries = download(&client, &a, (&me, &keys.authenticate), &me)?;
    let mut held = 0u64;
    let mut fault = None;
    for (n, (index, data)) in entries.iter().enumerate() {
        let stored: Option<Stored> = serde_json::from_value(data.clone()).ok();
        let why = match stored {
            _ if *index != n as u64 + 1 => Some(format!("batch {} is missing (dropped)", n + 1)),
            None => Some(format!("batch {index} is not a stored batch (changed)")),
            Some(s) if s.first != held => Some(format!(
                "batch {index} starts at record {}, not {held} (changed or reordered)",
                s.first
            )),
            Some(s) => {
                held += s.count;
                None
            }
        };
        if why.is_some() {
            fault = why;
            break;
        }
    }
    if fault.is_none() && (entries.len() as u64) < sent.index {
        fault = Some(format!(
            "the portal holds {} of the {} batches this device sent: records {held}..{} are missing (dropped)",
            entries.len(),
            sent.index,
            sent.next
        ));
    }
    Ok(OwnCheck {
        sent_batches: sent.index,
        sent_records: sent.next,
        held_records: held,
        fault,
    })
}

/// One device's log as the portal holds it.
#[derive(Debug)]
pub struct DeviceLog {
    /// The device's UDF.
    pub device: String,
    /// Its name in the catalog.
    pub name: String,
    /// Its verified records, or the first thing wrong with them.
    pub log: Result<audit::Verified, Fault>,
}

/// Every device's log from the portal, each chain checked (administrators).
pub fn read_all(store: &mut Store) -> Result<Vec<DeviceLog>, AuditError> {
    let a = crate::account(store).map_err(account_err)?;
    let admin = admin_keys(store, &a).map_err(account_err)?;
    let keys = device_keys(store).map_err(account_err)?;
    let me = device_udf(store).map_err(account_err)?;
    let view = crate::host::view_of(&a).map_err(account_err)?;
    let client = Client::new(&a.portal).map_err(account_err)?;
    let mut out = Vec::new();
    for (udf, d) in &view.devices {
        let entries = download(&client, &a, (&me, &keys.authenticate), udf)?;
        let mut batches = Vec::new();
        let mut fault = None;
        for (index, data) in entries {
            match open(&admin, &data) {
                Ok(b) => batches.push(b),
                Err(detail) => {
                    fault = Some(Fault::Forged {
                        batch: usize::try_from(index.saturating_sub(1)).unwrap_or(usize::MAX),
                        first: serde_json::from_value::<Stored>(data).map_or(0, |s| s.first),
                        detail,
                    });
                    break;
                }
            }
        }
        let log = audit::verify(udf, &batches, &[d.profile.profile_signature.key]);
        out.push(DeviceLog {
            device: udf.clone(),
            name: d.catalog.local_name.clone(),
            // A batch that does not open comes after those that verified.
            log: match (log, fault) {
                (Err(f), _) | (Ok(_), Some(f)) => Err(f),
                (Ok(v), None) => Ok(v),
            },
        });
    }
    Ok(out)
}

/// A stored batch, opened with any of the administrators' keys.
fn open(
    admin: &mesh_core::objects::AccountKeys,
    data: &serde_json::Value,
) -> Result<Signed, String> {
    let s: Stored =
        serde_json::from_value(data.clone()).map_err(|e| format!("not a stored batch ({e})"))?;
    let bytes = admin
        .open(&s.sealed, CT_SEALED_BATCH)
        .map_err(|e| format!("does not open ({e})"))?;
    let signed: Signed =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a signed batch ({e})"))?;
    let b: Batch = signed
        .unverified_object("audit batch")
        .map_err(|e| e.to_string())?;
    if b.first != s.first || b.records.len() as u64 != s.count {
        return Err("its cleartext First and Count are not the batch's".into());
    }
    Ok(signed)
}

/// Every entry of a device's audit store, in index order, through the one
/// bounded pager every paged read uses.
fn download(
    client: &Client,
    a: &AccountState,
    (me, key): (&str, &mesh_core::keys::SigningKey),
    device: &str,
) -> Result<Vec<(u64, serde_json::Value)>, AuditError> {
    let store = audit::store_of(device);
    let pager = crate::pager::Pager::new(&a.portal, &format!("a read of {store}"));
    let mut out: Vec<(u64, serde_json::Value)> = Vec::new();
    pager.read(
        &mut out,
        |o| {
            vec![StoreIndex {
                store: store.clone(),
                index: o.last().map_or(0, |(i, _)| *i),
            }]
        },
        |_, select| {
            client
                .signed(
                    tx::DOWNLOAD,
                    &a.profile_udf,
                    me,
                    serde_json::to_value(p::DownloadRequest {
                        select: select.to_vec(),
                        changes: false,
                    })
                    .unwrap_or_default(),
                    key,
                )
                .map_err(account_err)
        },
        |o, page| {
            // Entries in index order past what is held; a portal's repeats
            // and entries out of order are left out (the pager then sees
            // that nothing moved).
            for u in page.updates.into_iter().filter(|u| u.store == store) {
                for e in u.entries {
                    if e.index > o.last().map_or(0, |(i, _)| *i) {
                        o.push((e.index, e.envelope));
                    }
                }
            }
            Ok(())
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest batch the sender makes, sealed as it goes, fits the
    /// portal's bound on an Audit request.
    #[test]
    fn the_largest_batch_fits_the_portals_bound() {
        let bytes = BATCH_BYTES + audit::MAX_RECORD;
        // Base64 in the signed batch, the signed batch's JSON in base64 in
        // the sealed envelope, and the envelope's own members.
        assert!(bytes * 4 / 3 * 4 / 3 + 4096 < audit::MAX_BODY);
    }
}
