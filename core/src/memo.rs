//! A bounded memo of work done on a signed envelope, per process: a
//! long-running agent rebuilds its view after each change and would
//! otherwise parse or verify the same envelopes again. A hit is exact: the
//! envelope kept with the result equals the one asked for, byte for byte.
//! The first signature only finds the candidate. When full, the oldest
//! result goes (emptying it all, as before, dropped the list a sync was
//! about to read every third sync).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

use crate::envelope::Signed;

/// First signature → the envelope and its result; and the order they were
/// first kept in (one place per key).
struct Entries<T> {
    map: HashMap<Vec<u8>, (Signed, T)>,
    order: VecDeque<Vec<u8>>,
}

type Kept<T> = Mutex<Entries<T>>;

/// Results of type `T`, at most `max` of them.
pub struct EnvelopeMemo<T> {
    max: usize,
    map: OnceLock<Kept<T>>,
}

/// The kept results are not printed: a count is what a reader needs.
impl<T> std::fmt::Debug for EnvelopeMemo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self
            .map
            .get()
            .and_then(|m| m.lock().ok().map(|m| m.map.len()))
            .unwrap_or(0);
        f.debug_struct("EnvelopeMemo")
            .field("max", &self.max)
            .field("kept", &kept)
            .finish()
    }
}

impl<T: Clone> EnvelopeMemo<T> {
    /// An empty memo of at most `max` results (usable as a `static`).
    pub const fn new(max: usize) -> Self {
        EnvelopeMemo {
            max,
            map: OnceLock::new(),
        }
    }

    fn map(&self) -> &Kept<T> {
        self.map.get_or_init(|| {
            Mutex::new(Entries {
                map: HashMap::new(),
                order: VecDeque::new(),
            })
        })
    }

    /// The result kept for exactly this envelope.
    pub fn get(&self, env: &Signed) -> Option<T> {
        let m = self.map().lock().ok()?;
        let (kept, v) = m.map.get(&env.signatures.first()?.signature)?;
        (kept == env).then(|| v.clone())
    }

    /// Keep `value` for `env` (an unsigned envelope is not kept).
    pub fn put(&self, env: &Signed, value: T) {
        let (Some(s), Ok(mut m)) = (env.signatures.first(), self.map().lock()) else {
            return;
        };
        if let Some(kept) = m.map.get_mut(&s.signature) {
            // Kept again: its place in line stays.
            *kept = (env.clone(), value);
            return;
        }
        m.map.insert(s.signature.clone(), (env.clone(), value));
        m.order.push_back(s.signature.clone());
        while m.map.len() > self.max {
            let Some(key) = m.order.pop_front() else {
                break;
            };
            m.map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::RootKeys;

    #[test]
    fn the_oldest_result_goes_first_and_a_hit_is_exact() {
        let key = RootKeys::generate().authenticate;
        let env = |i: u8| Signed::sign("t", vec![i], &[&key]);
        let memo: EnvelopeMemo<u8> = EnvelopeMemo::new(3);
        for i in 0..4 {
            memo.put(&env(i), i);
        }
        assert_eq!(memo.get(&env(0)), None, "the oldest went");
        for i in 1..4 {
            assert_eq!(memo.get(&env(i)), Some(i), "{i} is kept");
        }
        // The same key kept again many times evicts nothing else.
        for _ in 0..10 {
            memo.put(&env(3), 3);
        }
        assert_eq!(memo.get(&env(1)), Some(1));
        assert_eq!(memo.get(&env(2)), Some(2));
        // Another envelope under the same first signature is not a hit.
        let mut other = env(1);
        other.content_type = "u".into();
        assert_eq!(memo.get(&other), None);
    }
}
