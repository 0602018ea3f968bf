//! Access lists stored as changes (issue 24): each version of an account's
//! access list is a row holding its change from the version before
//! (`mesh_core::changes`), with the version whole every [`SNAPSHOT_EVERY`]
//! rows, so that an account grown to 1,000 devices holds O(devices
//! changed) per version instead of the whole list. Readers get whole lists,
//! byte for byte the JSON that was appended: a change is stored only when
//! it rebuilds exactly that, otherwise the row stays whole.
//!
//! A row with a `whole_len` holds a change (its JSON) and `whole_len` is
//! the length of the whole entry it rebuilds (the page budget counts what
//! the reader receives); a row without holds the entry whole. This is not
//! protocol: it is how the portal keeps what it serves.

use mesh_core::changes::AccessDelta;
use mesh_core::envelope::Signed;

use super::{Append, StorageError};

/// Every this-many versions (indices 1, 17, 33, …) an access list is stored
/// whole: a read rebuilds at most this many changes.
pub(crate) const SNAPSHOT_EVERY: u64 = 16;

/// How long the diff of one stored version may take.
const DIFF_TIME: std::time::Duration = std::time::Duration::from_millis(50);

/// The index of the whole row from which `idx` is rebuilt.
pub(crate) fn snapshot_of(idx: u64) -> u64 {
    idx.max(1) - (idx.max(1) - 1) % SNAPSHOT_EVERY
}

/// A row as stored: the data, and the whole entry's length when the data
/// is a change.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub data: String,
    pub whole_len: Option<u64>,
}

impl Row {
    fn whole(data: &str) -> Row {
        Row {
            data: data.to_string(),
            whole_len: None,
        }
    }
}

/// An [`Append`] as rows to store.
#[derive(Clone, Debug)]
pub(crate) struct Packed {
    pub store: String,
    pub expected: Option<u64>,
    pub rows: Vec<Row>,
}

fn corrupt(what: String) -> StorageError {
    StorageError::Corrupt(what)
}

fn parse_signed(s: &str) -> Option<Signed> {
    serde_json::from_str(s).ok()
}

/// The row for the whole entry `next` at `idx`, after the whole entry
/// `prev` (parsed): its change when `idx` is not a snapshot, the change is
/// smaller and rebuilds `next` byte for byte; else `next` whole.
pub(crate) fn pack(prev: Option<&Signed>, next: &str, idx: u64) -> Row {
    let Some(prev) = prev.filter(|_| snapshot_of(idx) != idx) else {
        return Row::whole(next);
    };
    let Some(n) = parse_signed(next) else {
        return Row::whole(next);
    };
    let deadline = std::time::Instant::now() + DIFF_TIME;
    let Some(d) = mesh_core::changes::between(prev, &n, Some(deadline)) else {
        return Row::whole(next);
    };
    let exact = d
        .apply(prev)
        .ok()
        .and_then(|s| serde_json::to_string(&s).ok())
        .is_some_and(|s| s == next);
    match serde_json::to_string(&d) {
        Ok(data) if exact && data.len() < next.len() => Row {
            data,
            whole_len: Some(next.len() as u64),
        },
        _ => Row::whole(next),
    }
}

/// `updates` as rows: the Access store's entries packed after `last`, the
/// store's last entry whole (parsed); the other stores' as they are.
pub(crate) fn pack_appends(updates: &[Append], last: Option<Signed>, last_idx: u64) -> Vec<Packed> {
    let access = mesh_core::portal::store::ACCESS;
    updates
        .iter()
        .map(|u| {
            let rows = if u.store == access {
                let mut prev = last.clone();
                let mut idx = last_idx;
                u.entries
                    .iter()
                    .map(|e| {
                        idx += 1;
                        let row = pack(prev.as_ref(), e, idx);
                        prev = parse_signed(e);
                        row
                    })
                    .collect()
            } else {
                u.entries.iter().map(|e| Row::whole(e)).collect()
            };
            Packed {
                store: u.store.clone(),
                expected: u.expected,
                rows,
            }
        })
        .collect()
}

/// Rows of the Access store from a snapshot on, in index order: (index,
/// data, whether it is a change). Rebuilt into whole entries; those after
/// `after` are returned (JSON, as appended).
pub(crate) fn unpack(
    rows: Vec<(u64, String, bool)>,
    after: u64,
) -> Result<Vec<(u64, String)>, StorageError> {
    let mut prev: Option<Signed> = None;
    let mut out = Vec::new();
    for (idx, data, change) in rows {
        let (whole, text) = if change {
            let base = prev.as_ref().ok_or_else(|| {
                corrupt(format!(
                    "access list {idx} is stored as a change without the list before it"
                ))
            })?;
            let d: AccessDelta = serde_json::from_str(&data)
                .map_err(|e| corrupt(format!("access list {idx}'s stored change: {e}")))?;
            let w = d
                .apply(base)
                .map_err(|e| corrupt(format!("access list {idx}'s stored change: {e}")))?;
            let text = (idx > after)
                .then(|| serde_json::to_string(&w))
                .transpose()
                .map_err(|e| corrupt(format!("access list {idx}: {e}")))?;
            (w, text)
        } else {
            let w = parse_signed(&data)
                .ok_or_else(|| corrupt(format!("access list {idx} is not an envelope")))?;
            (w, (idx > after).then_some(data))
        };
        if let Some(t) = text {
            out.push((idx, t));
        }
        prev = Some(whole);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::objects::RootKeys;
    use mesh_core::portal::ct;

    /// Versions pack as changes between snapshots and unpack byte for byte
    /// from any index; a change without its base is refused.
    #[test]
    fn versions_pack_and_unpack_exactly() {
        let k = RootKeys::generate();
        let list = |n: usize| {
            let devices: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"DeviceUdf":"M{i}","State":"Active"}}"#))
                .collect();
            let p = format!(r#"{{"Serial":{n},"Devices":[{}]}}"#, devices.join(","));
            let s = Signed::sign(ct::ACCESS_LIST, p.into_bytes(), &[&k.authenticate]);
            serde_json::to_string(&s).expect("json")
        };
        let all: Vec<String> = (40..80).map(list).collect();
        let append = Append {
            store: mesh_core::portal::store::ACCESS.into(),
            expected: Some(0),
            entries: all.clone(),
        };
        let packed = pack_appends(&[append], None, 0);
        let rows: Vec<(u64, String, bool)> = packed[0]
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u64 + 1, r.data.clone(), r.whole_len.is_some()))
            .collect();
        let whole: Vec<u64> = rows.iter().filter(|r| !r.2).map(|r| r.0).collect();
        assert_eq!(whole, vec![1, 17, 33]);
        let stored: usize = rows.iter().map(|r| r.1.len()).sum();
        let given: usize = all.iter().map(String::len).sum();
        assert!(stored * 4 < given, "{stored} of {given} bytes");
        for after in [0u64, 5, 16, 20, 39] {
            let from = snapshot_of(after + 1) as usize - 1;
            let got = unpack(rows[from..].to_vec(), after).expect("unpacks");
            let want: Vec<(u64, String)> = (after + 1..=40)
                .map(|i| (i, all[i as usize - 1].clone()))
                .collect();
            assert_eq!(got, want, "after {after}");
        }
        let e = unpack(rows[1..].to_vec(), 0).expect_err("no base");
        assert!(e.to_string().contains("without the list before it"), "{e}");
        assert_eq!(
            (
                snapshot_of(1),
                snapshot_of(16),
                snapshot_of(17),
                snapshot_of(40)
            ),
            (1, 1, 17, 33)
        );
    }
}
