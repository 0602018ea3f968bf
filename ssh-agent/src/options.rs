//! What `ssh-agent`'s command line sets for the whole agent (ssh-agent(1):
//! `-t`, `-E`, `-O`, `-P`), held by [`crate::agent::Agent`] from its start.
//!
//! The PKCS#11 allow-list is kept here so that the code that loads a
//! provider (`ssh-add -s`) checks the canonical path of the library against
//! it before anything is loaded: [`AgentOptions::provider_allowed`].

use std::time::Duration;

use ssh_key::HashAlg;

/// OpenSSH's default allow-list of PKCS#11 providers (`DEFAULT_ALLOWED_PROVIDERS`
/// in ssh-agent.c): the system's library directories.
pub const DEFAULT_PKCS11_ALLOWLIST: &str = "/usr/lib*/*,/usr/local/lib*/*";

/// How the agent names a key's fingerprint in what it shows (`-E`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FingerprintHash {
    /// `SHA256:…` (the default).
    Sha256,
    /// `SHA512:…`.
    Sha512,
}

impl FingerprintHash {
    /// ssh's name of the hash (`-E sha256`); `None` for one Mesh does not offer.
    pub fn by_name(name: &str) -> Option<FingerprintHash> {
        match name.to_ascii_lowercase().as_str() {
            "sha256" => Some(FingerprintHash::Sha256),
            "sha512" => Some(FingerprintHash::Sha512),
            _ => None,
        }
    }

    /// The ssh-key hash.
    pub fn alg(self) -> HashAlg {
        match self {
            FingerprintHash::Sha256 => HashAlg::Sha256,
            FingerprintHash::Sha512 => HashAlg::Sha512,
        }
    }
}

/// The agent-wide settings of ssh-agent's command line.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// `-t`: the lifetime of keys added without one (`ssh-add -t` overrides it).
    pub default_lifetime: Option<Duration>,
    /// `-E`: the fingerprint hash of confirmation prompts.
    pub fingerprint_hash: FingerprintHash,
    /// `-P`: the pattern-list of PKCS#11 provider paths that may be loaded.
    pub pkcs11_allowlist: String,
    /// `-O allow-remote-pkcs11`: a forwarded connection may load providers.
    pub allow_remote_pkcs11: bool,
    /// `-O forward-sign=…`, `-O forward-login=…`: the local forwarding
    /// policy (with an account's, the stricter of the two wins).
    pub forwarding: Option<crate::forward::ForwardPolicy>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            default_lifetime: None,
            fingerprint_hash: FingerprintHash::Sha256,
            pkcs11_allowlist: DEFAULT_PKCS11_ALLOWLIST.to_string(),
            allow_remote_pkcs11: false,
            forwarding: None,
        }
    }
}

impl AgentOptions {
    /// Apply one `-O forward-…` option: `forward-sign=ACTION`,
    /// `forward-login=ACTION` or `forward-login=PATTERN-LIST:ACTION` (split
    /// at the last colon). `None` when `opt` is no such option; `Some(Err)`
    /// for a malformed one.
    pub fn forward_option(&mut self, opt: &str) -> Option<Result<(), String>> {
        use crate::forward::Action;
        let (name, value) = opt.split_once('=')?;
        let policy = match name {
            "forward-sign" | "forward-login" => {
                self.forwarding.get_or_insert_with(Default::default)
            }
            _ => return None,
        };
        let bad = || format!("-O {opt}: the action is allow, confirm or refuse");
        Some(match name {
            "forward-sign" => Action::parse(value)
                .map(|a| policy.sign = a)
                .ok_or_else(bad),
            _ => {
                let (pattern, action) = match value.rsplit_once(':') {
                    Some((p, a)) if !p.is_empty() => (Some(p), a),
                    _ => (None, value),
                };
                Action::parse(action)
                    .map(|a| policy.set_login(pattern, a))
                    .ok_or_else(bad)
            }
        })
    }

    /// Whether the provider at `path` (already canonical: `realpath`) is on
    /// the allow-list (ssh_config(5) PATTERNS: `*`, `?`, `!` negation; a
    /// negated match refuses).
    pub fn provider_allowed(&self, path: &str) -> bool {
        pattern_list_match(path, &self.pkcs11_allowlist)
    }
}

/// ssh's `match_pattern_list`: true when some pattern matches and no
/// negated one does.
pub fn pattern_list_match(s: &str, list: &str) -> bool {
    let mut matched = false;
    for p in list.split(',') {
        match p.strip_prefix('!') {
            Some(neg) if crate::dest::glob(s.as_bytes(), neg.as_bytes()) => return false,
            Some(_) => {}
            None => matched |= crate::dest::glob(s.as_bytes(), p.as_bytes()),
        }
    }
    matched
}

/// ssh's `convtime`: seconds, or a sequence of numbers each followed by a
/// unit (`s`, `m`, `h`, `d`, `w`, either case; none means seconds), as in
/// `1h30m`. `None` for anything else. Zero parses (ssh-agent's `-t 0`
/// means no default lifetime).
pub fn parse_lifetime(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' | 'S' => 1,
            'm' | 'M' => 60,
            'h' | 'H' => 3600,
            'd' | 'D' => 86_400,
            'w' | 'W' => 604_800,
            _ => return None,
        };
        total = total.checked_add(take(&mut digits)?.checked_mul(unit)?)?;
    }
    if !digits.is_empty() {
        total = total.checked_add(take(&mut digits)?)?;
    }
    // OpenSSH caps lifetimes at INT_MAX seconds.
    (total <= u64::from(u32::MAX >> 1)).then(|| Duration::from_secs(total))
}

fn take(digits: &mut String) -> Option<u64> {
    let n = digits.parse().ok();
    digits.clear();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_as_sshd_config_writes_them() {
        let cases: &[(&str, Option<u64>)] = &[
            ("10", Some(10)),
            ("0", Some(0)),
            ("90s", Some(90)),
            ("1h30m", Some(5400)),
            ("1H30M", Some(5400)),
            ("2d", Some(172_800)),
            ("1w1d1h1m1s", Some(694_861)),
            ("5m10", Some(310)),
            ("", None),
            ("h", None),
            ("1x", None),
            ("-5", None),
            ("1.5h", None),
            ("99999999999999999999", None),
            ("3000000000", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_lifetime(text).map(|d| d.as_secs()),
                *want,
                "lifetime {text:?}"
            );
        }
    }

    #[test]
    fn pkcs11_allowlist_as_ssh_patterns() {
        let default = AgentOptions::default();
        let cases: &[(&str, &str, bool)] = &[
            (
                DEFAULT_PKCS11_ALLOWLIST,
                "/usr/lib/softhsm/libsofthsm2.so",
                true,
            ),
            (
                DEFAULT_PKCS11_ALLOWLIST,
                "/usr/lib64/opensc-pkcs11.so",
                true,
            ),
            (DEFAULT_PKCS11_ALLOWLIST, "/usr/local/lib/x.so", true),
            (DEFAULT_PKCS11_ALLOWLIST, "/tmp/evil.so", false),
            (DEFAULT_PKCS11_ALLOWLIST, "/home/u/usr/lib/x.so", false),
            ("/opt/*/lib?.so", "/opt/hsm/lib1.so", true),
            ("/opt/*/lib?.so", "/opt/hsm/lib12.so", false),
            ("/usr/lib/*,!/usr/lib/bad.so", "/usr/lib/bad.so", false),
            ("/usr/lib/*,!/usr/lib/bad.so", "/usr/lib/good.so", true),
            ("", "/usr/lib/x.so", false),
        ];
        for (list, path, want) in cases {
            assert_eq!(pattern_list_match(path, list), *want, "{path} in {list}");
        }
        assert!(default.provider_allowed("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"));
        assert!(!default.provider_allowed("/tmp/libsofthsm2.so"));
    }

    #[test]
    fn forward_options() {
        use crate::forward::Action;
        let mut o = AgentOptions::default();
        assert!(o.forward_option("allow-remote-pkcs11").is_none());
        assert!(o.forwarding.is_none(), "no forward option, no local policy");
        let ok = [
            "forward-sign=allow",
            "forward-login=confirm",
            "forward-login=SHA256:ab+c/d:refuse",
            "forward-login=web*,!web9:allow",
        ];
        for opt in ok {
            assert_eq!(o.forward_option(opt), Some(Ok(())), "{opt}");
        }
        let p = o.forwarding.clone().expect("policy");
        assert_eq!((p.sign, p.login), (Action::Allow, Action::Confirm));
        let rules: Vec<_> = p
            .destinations
            .iter()
            .map(|r| (r.destination.as_str(), r.action))
            .collect();
        assert_eq!(
            rules,
            [
                ("SHA256:ab+c/d", Action::Refuse),
                ("web*,!web9", Action::Allow)
            ]
        );
        for bad in [
            "forward-sign=maybe",
            "forward-login=",
            "forward-login=x:yes",
            "forward-sign=confirm:x",
        ] {
            assert!(matches!(o.forward_option(bad), Some(Err(_))), "{bad}");
        }
    }

    #[test]
    fn fingerprint_hash_names() {
        assert_eq!(
            FingerprintHash::by_name("SHA256"),
            Some(FingerprintHash::Sha256)
        );
        assert_eq!(
            FingerprintHash::by_name("sha512"),
            Some(FingerprintHash::Sha512)
        );
        assert_eq!(FingerprintHash::by_name("md5"), None);
    }
}
