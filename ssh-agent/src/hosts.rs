//! Which identity each host accepts (issue 25): learned from session-bind
//! and the identity that signed a login there, so that a later connection
//! bound to that host is offered that identity first and the login takes
//! one try, whatever `MaxAuthTries` and however many keys the agent holds.
//!
//! The rule: a signature of a publickey userauth request for the session a
//! connection is bound to (for authentication, not a forwarding) teaches
//! "this host accepts this identity". ssh asks the agent to sign only
//! after the server said it would accept that key (RFC 4252 §7,
//! `SSH_MSG_USERAUTH_PK_OK`), so the last identity that signed a login for
//! a host is the one it accepts. A pin (the user's choice) is never
//! replaced by learning. Hosts are named by the SHA-256 fingerprint of
//! their host key (verified by session-bind), identities by the SHA-256
//! fingerprint of their plain key (what `ssh-add -l` shows; a certificate
//! and its key share it, so a renewed certificate keeps what was learned).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most hosts remembered; the oldest learned one makes room for a new one.
pub const MAX_HOSTS: usize = 4096;
/// The file format written.
pub const FORMAT: u32 = 1;

/// What is known of one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// The identity's fingerprint (`SHA256:…`, as `ssh-add -l` shows it).
    pub identity: String,
    /// When it was learned or pinned (seconds since the Unix epoch).
    pub when: u64,
    /// Pinned by the user: learning does not replace it.
    #[serde(default)]
    pub pinned: bool,
}

/// A change to the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A login to `host` was signed by `identity`.
    Learn {
        /// The host key's fingerprint.
        host: String,
        /// The identity's fingerprint.
        identity: String,
        /// Now.
        when: u64,
    },
    /// The user pins `identity` for `host`.
    Pin {
        /// The host key's fingerprint.
        host: String,
        /// The identity's fingerprint.
        identity: String,
        /// Now.
        when: u64,
    },
    /// The user forgets `host`.
    Forget {
        /// The host key's fingerprint.
        host: String,
    },
}

/// Host key fingerprint → what it accepts; at most [`MAX_HOSTS`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMap {
    /// The file format ([`FORMAT`]).
    #[serde(default)]
    pub format: u32,
    /// By host key fingerprint.
    pub hosts: BTreeMap<String, Learned>,
}

/// Why a hosts file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostsError {
    /// Not JSON of this shape, an unknown format, or a fingerprint that is none.
    #[error("the learned-hosts file does not parse: {0}")]
    Malformed(String),
}

impl HostsError {
    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        "remove the file (`mesh ssh hosts` starts over; the agent learns again at the next logins)"
    }
}

/// Whether `s` looks like an OpenSSH SHA-256 fingerprint (`SHA256:` and 43
/// unpadded base64 characters).
pub fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|b| {
        b.len() == 43
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    })
}

impl HostMap {
    /// Read a hosts file: well-formed, fingerprints only, at most
    /// [`MAX_HOSTS`] (a longer file keeps the newest).
    pub fn from_json(bytes: &[u8]) -> Result<HostMap, HostsError> {
        let mut m: HostMap =
            serde_json::from_slice(bytes).map_err(|e| HostsError::Malformed(e.to_string()))?;
        if m.format != FORMAT {
            return Err(HostsError::Malformed(format!("format {}", m.format)));
        }
        if let Some((h, _)) = m
            .hosts
            .iter()
            .find(|(h, l)| !is_fingerprint(h) || !is_fingerprint(&l.identity))
        {
            return Err(HostsError::Malformed(format!("{h:.64} is no fingerprint")));
        }
        while m.hosts.len() > MAX_HOSTS {
            if !m.evict_oldest(true) {
                break;
            }
        }
        Ok(m)
    }

    /// The file's contents.
    pub fn to_json(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.format = FORMAT;
        serde_json::to_vec_pretty(&m).unwrap_or_default()
    }

    /// The identity `host` accepts, if known.
    pub fn identity_for(&self, host: &str) -> Option<&str> {
        self.hosts.get(host).map(|l| l.identity.as_str())
    }

    /// Apply `op`; whether anything changed. Learning what is already
    /// known changes nothing (no write for each login); learning never
    /// replaces a pin; a full map forgets its oldest learned host, and
    /// refuses a new host when every one is pinned.
    pub fn apply(&mut self, op: &Op) -> bool {
        match op {
            Op::Forget { host } => self.hosts.remove(host).is_some(),
            Op::Learn {
                host,
                identity,
                when,
            } => match self.hosts.get(host) {
                Some(l) if l.pinned || l.identity == *identity => false,
                _ => self.put(host, identity, *when, false),
            },
            Op::Pin {
                host,
                identity,
                when,
            } => match self.hosts.get(host) {
                Some(l) if l.pinned && l.identity == *identity => false,
                _ => self.put(host, identity, *when, true),
            },
        }
    }

    fn put(&mut self, host: &str, identity: &str, when: u64, pinned: bool) -> bool {
        if !self.hosts.contains_key(host)
            && self.hosts.len() >= MAX_HOSTS
            && !self.evict_oldest(false)
        {
            return false;
        }
        self.hosts.insert(
            host.to_owned(),
            Learned {
                identity: identity.to_owned(),
                when,
                pinned,
            },
        );
        true
    }

    /// Drop the oldest learned host (pins too when `pins`); whether one went.
    fn evict_oldest(&mut self, pins: bool) -> bool {
        let oldest = self
            .hosts
            .iter()
            .filter(|(_, l)| pins || !l.pinned)
            .min_by_key(|(_, l)| l.when)
            .map(|(h, _)| h.clone());
        oldest.is_some_and(|h| self.hosts.remove(&h).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u32) -> String {
        format!("SHA256:{n:0>43}")
    }

    fn learn(host: u32, id: u32, when: u64) -> Op {
        Op::Learn {
            host: fp(host),
            identity: fp(id),
            when,
        }
    }

    #[test]
    fn the_last_identity_that_signed_a_login_is_the_one_remembered() {
        let mut m = HostMap::default();
        assert!(m.apply(&learn(1, 10, 5)));
        assert_eq!(m.identity_for(&fp(1)), Some(fp(10).as_str()));
        // The same again: nothing to write.
        assert!(!m.apply(&learn(1, 10, 6)));
        assert!(m.apply(&learn(1, 11, 7)));
        assert_eq!(m.identity_for(&fp(1)), Some(fp(11).as_str()));
        assert_eq!(m.identity_for(&fp(2)), None);
    }

    #[test]
    fn learning_never_replaces_a_pin_and_forget_removes_either() {
        let mut m = HostMap::default();
        let pin = Op::Pin {
            host: fp(1),
            identity: fp(10),
            when: 1,
        };
        assert!(m.apply(&pin));
        assert!(!m.apply(&pin));
        assert!(!m.apply(&learn(1, 11, 2)));
        assert_eq!(m.identity_for(&fp(1)), Some(fp(10).as_str()));
        // A pin replaces what was learned.
        assert!(m.apply(&learn(2, 20, 3)));
        assert!(m.apply(&Op::Pin {
            host: fp(2),
            identity: fp(21),
            when: 4
        }));
        assert_eq!(m.identity_for(&fp(2)), Some(fp(21).as_str()));
        assert!(m.apply(&Op::Forget { host: fp(1) }));
        assert!(!m.apply(&Op::Forget { host: fp(1) }));
        assert_eq!(m.identity_for(&fp(1)), None);
    }

    #[test]
    fn a_full_map_forgets_its_oldest_learned_host_never_a_pin() {
        let mut m = HostMap::default();
        m.apply(&Op::Pin {
            host: fp(0),
            identity: fp(1),
            when: 0,
        });
        for h in 1..MAX_HOSTS as u32 {
            assert!(m.apply(&learn(h, 1, u64::from(h))));
        }
        assert_eq!(m.hosts.len(), MAX_HOSTS);
        assert!(m.apply(&learn(99_999, 2, 100_000)));
        assert_eq!(m.hosts.len(), MAX_HOSTS);
        assert!(m.identity_for(&fp(0)).is_some(), "the pin was evicted");
        assert!(m.identity_for(&fp(1)).is_none(), "not the oldest learned");
        assert!(m.identity_for(&fp(99_999)).is_some());
        // Every host pinned: a new one is refused, nothing is lost.
        let mut all = HostMap::default();
        for h in 0..MAX_HOSTS as u32 {
            all.apply(&Op::Pin {
                host: fp(h),
                identity: fp(1),
                when: 0,
            });
        }
        assert!(!all.apply(&learn(99_999, 2, 1)));
        assert_eq!(all.hosts.len(), MAX_HOSTS);
    }

    #[test]
    fn a_file_round_trips_and_a_bad_one_is_refused() {
        let mut m = HostMap::default();
        m.apply(&learn(1, 10, 5));
        let back = HostMap::from_json(&m.to_json()).expect("parse");
        assert_eq!(back.hosts, m.hosts);
        assert!(HostMap::from_json(b"{\"format\":2,\"hosts\":{}}").is_err());
        let bad = format!(
            "{{\"format\":1,\"hosts\":{{\"x\":{{\"identity\":\"{}\",\"when\":1}}}}}}",
            fp(1)
        );
        assert!(HostMap::from_json(bad.as_bytes()).is_err());
        assert!(HostMap::from_json(b"not json").is_err());
    }
}
