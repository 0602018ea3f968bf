//! Access lists sent as changes (PROTOCOL.md §10.3, "Access lists as
//! changes"). Hand-written: this is Mesh's own wire form.
//!
//! > A Download with `"Changes":true` may answer an `Access` entry whose
//! > previous entry the reader holds (the one at the index it gave, or the
//! > entry before it in the same answer) as
//! > `{"Index","Delta":{"Edits":[{"Keep","Skip","Insert"}…],"Signatures"}}`.
//! > Its payload is made from the previous list's payload by the edits in
//! > order, each copying the next `Keep` bytes, passing over the next
//! > `Skip`, then adding `Insert`; the edits account for every byte of the
//! > previous payload. Its content type is `AccessList`, its signatures
//! > are `Signatures`. The reader rebuilds the envelope and verifies it as
//! > any other entry.
//!
//! Each list is still whole and signed as a whole: the change is how it
//! travels, not what is signed. A portal that sends a wrong change makes
//! the reader rebuild a list whose signature fails, which it refuses as
//! any forged entry. At 1,000 devices a list is 390 kB; a device that
//! joins changes a few hundred bytes of it (its entry, the serial, the
//! time). [`between`] computes the edits (the portal for Download, the
//! administrator for a Transact, the portal's storage for its rows);
//! [`AccessDelta::apply`] applies them.

use serde::{Deserialize, Serialize};

use super::CT_ACCESS_LIST;
use crate::b64;
use crate::envelope::{SignatureEntry, Signed};
use crate::Error;

use similar::{capture_diff_slices_deadline, Algorithm, DiffOp};

/// Most edits one change may carry.
pub const MAX_EDITS: usize = 1 << 16;

/// One access list as its change from the one before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessDelta {
    /// The edits, in order over the previous payload.
    #[serde(rename = "Edits")]
    pub edits: Vec<Edit>,
    /// The new list's signatures.
    #[serde(rename = "Signatures")]
    pub signatures: Vec<SignatureEntry>,
}

/// Copy `keep` bytes of the previous payload, pass over `skip`, add
/// `insert`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    /// Bytes copied from the previous payload.
    #[serde(rename = "Keep", default)]
    pub keep: u64,
    /// Bytes of the previous payload left out.
    #[serde(rename = "Skip", default)]
    pub skip: u64,
    /// Bytes added.
    #[serde(
        rename = "Insert",
        default,
        with = "b64::serde_bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub insert: Vec<u8>,
}

impl AccessDelta {
    /// The list this change makes of `base` (not yet verified: the caller
    /// verifies it as any entry).
    pub fn apply(&self, base: &Signed) -> Result<Signed, Error> {
        if base.content_type != CT_ACCESS_LIST {
            return Err(Error::Malformed(format!(
                "a change to an access list applied to a {}",
                base.content_type
            )));
        }
        if self.edits.len() > MAX_EDITS {
            return Err(Error::Malformed(format!(
                "a change of {} edits (at most {MAX_EDITS})",
                self.edits.len()
            )));
        }
        let old = &base.payload;
        let mut payload = Vec::with_capacity(old.len());
        let mut at = 0usize;
        for e in &self.edits {
            let rest = old.len() - at;
            let take = |n: u64| usize::try_from(n).ok().filter(|n| *n <= rest);
            let keep = take(e.keep).ok_or_else(|| self.beyond(old.len()))?;
            payload.extend_from_slice(&old[at..at + keep]);
            at += keep;
            let rest = old.len() - at;
            let skip = usize::try_from(e.skip)
                .ok()
                .filter(|n| *n <= rest)
                .ok_or_else(|| self.beyond(old.len()))?;
            at += skip;
            payload.extend_from_slice(&e.insert);
        }
        if at != old.len() {
            return Err(Error::Malformed(format!(
                "a change leaves {} bytes of a {}-byte access list unaccounted for",
                old.len() - at,
                old.len()
            )));
        }
        Ok(Signed {
            content_type: CT_ACCESS_LIST.into(),
            payload: payload.into(),
            signatures: self.signatures.clone(),
        })
    }

    fn beyond(&self, len: usize) -> Error {
        Error::Malformed(format!(
            "a change reaches past the end of a {len}-byte access list"
        ))
    }
}

/// The payload in tokens, each starting at a `{` (the first at 0): one
/// device entry is a few of them, so at 1,000 devices a list is some 3,000
/// tokens and a device that joins changes three (the head with the serial,
/// its own, the tail with the time).
fn tokens(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in b.iter().enumerate().skip(1) {
        if *c == b'{' {
            out.push(&b[start..i]);
            start = i;
        }
    }
    if start < b.len() {
        out.push(&b[start..]);
    }
    out
}

/// The change from `base` to `next` (the Myers diff of their tokens), when
/// both are access lists and it is smaller than `next` whole. Lists that
/// differ everywhere (reordered by hand) would cost the diff time in the
/// square of their length: past `deadline` the diff is coarser, and the
/// change is not smaller.
pub fn between(
    base: &Signed,
    next: &Signed,
    deadline: Option<std::time::Instant>,
) -> Option<AccessDelta> {
    if base.content_type != CT_ACCESS_LIST || next.content_type != CT_ACCESS_LIST {
        return None;
    }
    let (old, new) = (tokens(&base.payload), tokens(&next.payload));
    let mut edits: Vec<Edit> = Vec::new();
    let mut cur = Edit::default();
    for op in capture_diff_slices_deadline(Algorithm::Myers, &old, &new, deadline) {
        let (keep, skip, insert) = step(&old, op);
        // An edit is keep, then skip, then insert: start another when
        // this one has gone past the step asked for.
        if (keep > 0 && (cur.skip > 0 || !cur.insert.is_empty()))
            || (skip > 0 && !cur.insert.is_empty())
        {
            edits.push(std::mem::take(&mut cur));
        }
        cur.keep += keep;
        cur.skip += skip;
        cur.insert.extend(new[insert].iter().flat_map(|t| t.iter()));
    }
    if cur != Edit::default() {
        edits.push(cur);
    }
    let sent: usize = edits.iter().map(|e| e.insert.len() + 24).sum();
    (sent < next.payload.len()).then(|| AccessDelta {
        edits,
        signatures: next.signatures.clone(),
    })
}

/// One diff operation as bytes kept, bytes skipped and the new tokens added.
fn step(old: &[&[u8]], op: DiffOp) -> (u64, u64, std::ops::Range<usize>) {
    let len = |t: &[&[u8]]| t.iter().map(|x| x.len() as u64).sum::<u64>();
    match op {
        DiffOp::Equal {
            old_index, len: n, ..
        } => (len(&old[old_index..old_index + n]), 0, 0..0),
        DiffOp::Delete {
            old_index, old_len, ..
        } => (0, len(&old[old_index..old_index + old_len]), 0..0),
        DiffOp::Insert {
            new_index, new_len, ..
        } => (0, 0, new_index..new_index + new_len),
        DiffOp::Replace {
            old_index,
            old_len,
            new_index,
            new_len,
        } => (
            0,
            len(&old[old_index..old_index + old_len]),
            new_index..new_index + new_len,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::RootKeys;

    fn edit(keep: u64, skip: u64, insert: &[u8]) -> Edit {
        Edit {
            keep,
            skip,
            insert: insert.to_vec(),
        }
    }

    /// Edits rebuild the payload they describe; the new list's signature
    /// verifies only when the bytes are the signed ones; a change that
    /// reaches past its base, leaves part of it out, overflows, carries
    /// too many edits or is applied to something else is refused.
    #[test]
    fn changes_rebuild_exactly_and_hostile_ones_are_refused() {
        let k = RootKeys::generate();
        let base = Signed::sign(
            CT_ACCESS_LIST,
            b"{serial:4,devices:[a,b],t:1}".to_vec(),
            &[&k.authenticate],
        );
        let next = Signed::sign(
            CT_ACCESS_LIST,
            b"{serial:5,devices:[a,b,c],t:2}".to_vec(),
            &[&k.authenticate],
        );
        let good = AccessDelta {
            edits: vec![
                edit(8, 1, b"5"),
                edit(13, 0, b",c"),
                edit(4, 1, b"2"),
                edit(1, 0, b""),
            ],
            signatures: next.signatures.clone(),
        };
        let key = k.authenticate.public_key();
        let rebuilt = good.apply(&base).expect("applies");
        assert_eq!(rebuilt, next);
        assert!(rebuilt.verify(CT_ACCESS_LIST, &[key]).is_ok());
        let with = |edits: Vec<Edit>| AccessDelta {
            edits,
            signatures: next.signatures.clone(),
        };
        let cases: [(&str, AccessDelta, &str); 6] = [
            (
                "keeps past the end",
                with(vec![edit(29, 0, b"")]),
                "reaches past",
            ),
            (
                "skips past the end",
                with(vec![edit(20, 9, b"")]),
                "reaches past",
            ),
            (
                "u64::MAX",
                with(vec![edit(u64::MAX, u64::MAX, b"")]),
                "reaches past",
            ),
            (
                "leaves the end out",
                with(vec![edit(20, 0, b"")]),
                "8 bytes of a 28-byte",
            ),
            ("nothing", with(Vec::new()), "28 bytes of a 28-byte"),
            (
                "too many edits",
                with(vec![Edit::default(); MAX_EDITS + 1]),
                "at most",
            ),
        ];
        for (what, d, says) in cases {
            let e = d.apply(&base).expect_err(what).to_string();
            assert!(e.contains(says), "{what}: {e}");
        }
        let other_bytes = with(vec![
            edit(8, 1, b"6"),
            edit(13, 0, b",c"),
            edit(4, 1, b"2"),
            edit(1, 0, b""),
        ]);
        let forged = other_bytes.apply(&base).expect("rebuilt");
        assert!(forged.verify(CT_ACCESS_LIST, &[key]).is_err());
        let mut other = base.clone();
        other.content_type = "CatalogedDevice".into();
        assert!(good.apply(&other).is_err());
    }
}
