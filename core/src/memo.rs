//! A bounded memo of work done on a signed envelope, per process: a
//! long-running agent rebuilds its view after each change and would
//! otherwise parse or verify the same envelopes again. A hit is exact: the
//! envelope kept with the result equals the one asked for, byte for byte.
//! The first signature only finds the candidate. Emptied when full.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::envelope::Signed;

/// First signature → the envelope and its result.
type Kept<T> = Mutex<HashMap<Vec<u8>, (Signed, T)>>;

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
            .and_then(|m| m.lock().ok().map(|m| m.len()))
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
        self.map.get_or_init(|| Mutex::new(HashMap::new()))
    }

    /// The result kept for exactly this envelope.
    pub fn get(&self, env: &Signed) -> Option<T> {
        let m = self.map().lock().ok()?;
        let (kept, v) = m.get(&env.signatures.first()?.signature)?;
        (kept == env).then(|| v.clone())
    }

    /// Keep `value` for `env` (an unsigned envelope is not kept).
    pub fn put(&self, env: &Signed, value: T) {
        let (Some(s), Ok(mut m)) = (env.signatures.first(), self.map().lock()) else {
            return;
        };
        if m.len() >= self.max {
            m.clear();
        }
        m.insert(s.signature.clone(), (env.clone(), value));
    }
}
