//! Access lists uploaded as changes (PROTOCOL.md §10.3): a Transact's
//! Access update may carry its first entry as the change from the store's
//! last entry. The portal rebuilds the whole list from the one it holds and
//! checks it exactly as an entry sent whole: a change that rebuilds wrongly
//! makes a list whose signature fails, refused as any forged entry.

use axum::http::StatusCode;
use mesh_core::envelope::Signed;
use mesh_core::portal::{self as p, code, store};

use crate::api::ApiError;

/// Most bytes a rebuilt list may have: what one whole upload can carry.
pub(crate) const MAX_LIST: usize = p::MAX_BODY;

/// `t` with every change replaced by the whole list it makes of `last`, the
/// Access store's entry at `last_index`. Refused, with nothing written: a
/// change to another store, a change against another index (Conflict, as a
/// stale index), one that does not rebuild or rebuilds past [`MAX_LIST`].
pub(crate) fn rebuild(
    mut t: p::TransactRequest,
    last: &Signed,
    last_index: u64,
) -> Result<p::TransactRequest, ApiError> {
    for u in t.updates.iter_mut() {
        let Some(d) = u.delta.take() else {
            continue;
        };
        if u.store != store::ACCESS {
            return Err(ApiError::bad(format!(
                "a change (Delta) to the {} store: only access lists travel as changes; hint: the client sends this store's entries whole",
                u.store
            )));
        }
        if u.expected != last_index {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                code::CONFLICT,
                format!(
                    "the access list's change is against entry {}, the store is at {last_index}",
                    u.expected
                ),
            ));
        }
        let env = d.apply(last).map_err(|e| {
            ApiError::bad(format!(
                "the access list's change does not rebuild on entry {last_index}: {e}; hint: the client's change is wrong, it may send the list whole"
            ))
        })?;
        if env.payload.len() > MAX_LIST {
            return Err(ApiError::bad(format!(
                "the access list's change rebuilds a list of {} bytes (at most {MAX_LIST}); hint: the client's change is wrong",
                env.payload.len()
            )));
        }
        u.envelopes.insert(0, env);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::changes::{AccessDelta, Edit};
    use mesh_core::objects::RootKeys;

    /// A change rebuilds the whole list in its place; a change to another
    /// store, against another index, that does not rebuild or rebuilds too
    /// large is refused.
    #[test]
    fn a_change_is_rebuilt_or_refused() {
        let k = RootKeys::generate();
        let sign = |b: &[u8]| Signed::sign(p::ct::ACCESS_LIST, b.to_vec(), &[&k.authenticate]);
        let (base, next) = (sign(b"{a}{b}{c}"), sign(b"{a}{B}{c}"));
        let good = mesh_core::changes::between(&base, &sign(&[b'x'; 100]), None);
        assert!(good.is_none(), "nothing in common is sent whole");
        let edit = |keep, skip, insert: &[u8]| Edit {
            keep,
            skip,
            insert: insert.to_vec(),
        };
        let change = |edits| AccessDelta {
            edits,
            signatures: next.signatures.clone(),
        };
        let update = |s: &str, expected, d| p::TransactRequest {
            updates: vec![p::StoreUpdate {
                store: s.into(),
                expected,
                delta: Some(d),
                envelopes: Vec::new(),
            }],
        };
        let right = change(vec![edit(3, 3, b"{B}"), edit(3, 0, b"")]);
        let t = rebuild(update(store::ACCESS, 4, right.clone()), &base, 4).expect("rebuilds");
        assert_eq!(t.updates[0].envelopes, vec![next.clone()]);
        assert!(t.updates[0].delta.is_none());
        let huge = vec![0u8; MAX_LIST + 1];
        let cases: [(&str, p::TransactRequest, u16, &str); 6] = [
            (
                "the Device store",
                update(store::DEVICE, 4, right.clone()),
                400,
                "only access lists",
            ),
            (
                "a stale index",
                update(store::ACCESS, 3, right.clone()),
                409,
                "against entry 3",
            ),
            (
                "overruns the list",
                update(store::ACCESS, 4, change(vec![edit(10, 0, b"")])),
                400,
                "reaches past",
            ),
            (
                "underruns the list",
                update(store::ACCESS, 4, change(vec![edit(3, 0, b"")])),
                400,
                "unaccounted",
            ),
            (
                "too many edits",
                update(
                    store::ACCESS,
                    4,
                    change(vec![Edit::default(); mesh_core::changes::MAX_EDITS + 1]),
                ),
                400,
                "at most",
            ),
            (
                "rebuilds too large",
                update(store::ACCESS, 4, change(vec![edit(9, 0, &huge)])),
                400,
                "at most",
            ),
        ];
        for (what, t, status, says) in cases {
            let e = rebuild(t, &base, 4).expect_err(what);
            assert_eq!(e.status.as_u16(), status, "{what}");
            assert!(e.reason().contains(says), "{what}: {}", e.reason());
        }
    }
}
