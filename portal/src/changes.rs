//! Access lists as changes (PROTOCOL.md §10.3): the edits that make one
//! list of the one before it. `mesh_core::changes` applies them.
//!
//! The diff itself is `mesh_core::changes::between` (the administrator
//! computes its uploads with it too); here it is bounded in time and the
//! last few are kept.

use mesh_core::changes::AccessDelta;
use mesh_core::envelope::Signed;
use std::time::{Duration, Instant};

/// The most time one change may take to compute.
const DIFF_TIME: Duration = Duration::from_millis(20);

/// The change from the stored entry `base` to the stored entry `next` (their
/// JSON as the database holds it), when both are access lists and it is
/// smaller. After a change every device of the account asks for the same
/// one: the last few are kept, and a hit is exact (the same two entries,
/// byte for byte).
pub(crate) fn between_stored(base: &str, next: &str) -> Option<AccessDelta> {
    if let Some(d) = memo::get(base, next) {
        return d;
    }
    let parse = |s: &str| serde_json::from_str::<Signed>(s).ok();
    let d = parse(base)
        .zip(parse(next))
        .and_then(|(b, n)| between(&b, &n));
    memo::put(base, next, &d);
    d
}

mod memo {
    use std::collections::VecDeque;
    use std::sync::{Mutex, OnceLock};

    use mesh_core::changes::AccessDelta;

    /// Changes kept: a list of 1,000 devices is 520 kB as stored.
    const MAX: usize = 8;

    type Memo = Mutex<VecDeque<(String, String, Option<AccessDelta>)>>;

    fn memo() -> &'static Memo {
        static M: OnceLock<Memo> = OnceLock::new();
        M.get_or_init(|| Mutex::new(VecDeque::new()))
    }

    pub(super) fn get(base: &str, next: &str) -> Option<Option<AccessDelta>> {
        let m = memo().lock().ok()?;
        m.iter()
            .find(|(b, n, _)| b == base && n == next)
            .map(|(_, _, d)| d.clone())
    }

    pub(super) fn put(base: &str, next: &str, d: &Option<AccessDelta>) {
        let Ok(mut m) = memo().lock() else {
            return;
        };
        if m.len() >= MAX {
            m.pop_front();
        }
        m.push_back((base.to_string(), next.to_string(), d.clone()));
    }
}

/// The change from `base` to `next`, when both are access lists and it is
/// smaller than `next` whole ([`mesh_core::changes::between`], bounded in
/// time).
pub(crate) fn between(base: &Signed, next: &Signed) -> Option<AccessDelta> {
    mesh_core::changes::between(base, next, Some(Instant::now() + DIFF_TIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::objects::RootKeys;
    use mesh_core::portal::ct;

    fn list(serial: u32, devices: &[&str], issued: u32) -> Vec<u8> {
        let d: Vec<String> = devices
            .iter()
            .map(|n| {
                format!(
                    r#"{{"DeviceUdf":"M{n}","Authentication":{{"Udf":"K{n}"}},"State":"Active"}}"#
                )
            })
            .collect();
        format!(
            r#"{{"ProfileUdf":"MB","Serial":{serial},"Devices":[{}],"Issued":{issued}}}"#,
            d.join(",")
        )
        .into_bytes()
    }

    /// Every change the portal computes rebuilds the next list exactly,
    /// and one device's join travels in a few hundred bytes however long
    /// the list.
    #[test]
    fn a_change_rebuilds_the_next_list_exactly() {
        let k = RootKeys::generate();
        let sign = |p: Vec<u8>| Signed::sign(ct::ACCESS_LIST, p, &[&k.authenticate]);
        let many: Vec<String> = (0..1000).map(|i| format!("d{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut joined = many.clone();
        joined.insert(500, "new");
        let mut revoked = list(7, &many, 100);
        let at = revoked.len() / 2;
        let at = at
            + revoked[at..]
                .windows(6)
                .position(|w| w == b"Active")
                .expect("an entry");
        revoked.splice(at..at + 6, b"Revoked".iter().copied());
        // What, from, to, and the most bytes of edits (none: sent whole).
        type Case = (&'static str, Vec<u8>, Vec<u8>, Option<usize>);
        let cases: [Case; 5] = [
            (
                "a device joins",
                list(7, &many, 100),
                list(8, &joined, 101),
                Some(400),
            ),
            (
                "a device is revoked",
                list(7, &many, 100),
                revoked,
                Some(200),
            ),
            (
                "the first device",
                list(1, &[], 1),
                list(2, &["a"], 2),
                None,
            ),
            (
                "the same bytes",
                list(3, &["a", "b"], 5),
                list(3, &["a", "b"], 5),
                Some(80),
            ),
            (
                "nothing in common",
                b"{x}".to_vec(),
                b"{y}{z}".to_vec(),
                None,
            ),
        ];
        for (what, a, b, small) in cases {
            let (a, b) = (sign(a), sign(b));
            let stored = |x: &Signed| serde_json::to_string(x).expect("json");
            // Computed, then kept: the same either way.
            let d = between(&a, &b);
            assert_eq!(between_stored(&stored(&a), &stored(&b)), d, "{what}");
            assert_eq!(between_stored(&stored(&a), &stored(&b)), d, "{what}: kept");
            match (between(&a, &b), small) {
                (Some(d), Some(most)) => {
                    let sent: usize = serde_json::to_vec(&d.edits).expect("json").len();
                    assert!(sent <= most, "{what}: {sent} bytes");
                    assert_eq!(d.apply(&a).expect(what), b, "{what}");
                }
                (None, None) => {}
                (d, _) => panic!("{what}: {d:?}"),
            }
        }
        // Every device reordered (the diff's worst case, cut short by its
        // deadline): whatever comes rebuilds the list exactly.
        let reversed: Vec<&str> = many.iter().rev().copied().collect();
        let (a, b) = (sign(list(7, &many, 100)), sign(list(8, &reversed, 101)));
        if let Some(d) = between(&a, &b) {
            assert_eq!(d.apply(&a).expect("reordered"), b);
        }
    }
}
