//! What sshd asks of an account, derived once from a verified view: the
//! `authorized_keys` lines of the active ssh devices, the account's login
//! names and the CA key.
//!
//! A server's private cache keeps this answer beside the history it was
//! derived at, so that a login that finds nothing new at the portal reads
//! no catalog entry and decodes no key (issue 14: `authorized-keys` with
//! its cache must stay flat as the account grows).

use mesh_plugins::{AccountView, PluginError};
use serde::{Deserialize, Serialize};
use ssh_key::Certificate;

use crate::cert;
use crate::entries::{ca_key, device_key, policy, ROLE};

type Result<T> = std::result::Result<T, PluginError>;

/// Most bytes of a certificate sshd passes (`%k`, base64): OpenSSH's own
/// certificates are a few kB.
const MAX_CERT_B64: usize = 64 * 1024;

/// The answer to sshd's questions about one account, derived from a view
/// that was verified up to the pinned profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshdAnswer {
    /// The account's login names (the SSH policy's principals).
    pub principals: Vec<String>,
    /// One `authorized_keys` line per active ssh device, in the access
    /// list's order: `ssh-ed25519 BASE64 mesh:NAME@ADDRESS`.
    pub lines: Vec<String>,
    /// The account's SSH CA, `ssh-ed25519 BASE64`.
    pub ca: String,
}

impl SshdAnswer {
    /// Derive the answer from a verified view.
    pub fn of(view: &AccountView) -> Result<SshdAnswer> {
        let lines = view
            .active(&ROLE)
            .into_iter()
            // The catalog entry's connection is for its device (checked when
            // the view was built); the connection must grant the role too.
            .filter(|(_, d)| d.connection.has(&ROLE))
            .filter_map(|(e, d)| {
                device_key(&d.connection)
                    .map(|k| cert::key_line(&k, &format!("mesh:{}@{}", e.name, view.address)))
            })
            .collect();
        Ok(SshdAnswer {
            principals: policy(view)?.principals,
            lines,
            ca: cert::key_line(&ca_key(&view.profile)?, "")
                .trim_end()
                .to_string(),
        })
    }

    /// Whether `user` is one of the account's login names.
    pub fn allows(&self, user: &str) -> bool {
        self.principals.iter().any(|p| p == user)
    }

    /// For `AuthorizedKeysCommand`: the lines of the active ssh devices;
    /// none when `user` is given and is not one of the login names.
    pub fn authorized_lines(&self, user: Option<&str>) -> Vec<String> {
        match user {
            Some(u) if !self.allows(u) => Vec::new(),
            _ => self.lines.clone(),
        }
    }

    /// For `AuthorizedPrincipalsCommand`: `user`, when the certificate
    /// (`%k`, base64) was issued by the account's CA for the current key of
    /// an active ssh device and `user` is one of the account's login names;
    /// otherwise nothing. sshd still checks the certificate's own principals
    /// and validity.
    pub fn authorized_principals(&self, user: &str, cert_b64: &str) -> Result<Vec<String>> {
        let bad = |e: String| PluginError::BadInput(format!("the certificate sshd passed: {e}"));
        let text = cert_b64.trim();
        if text.len() > MAX_CERT_B64 {
            return Err(bad(format!("more than {MAX_CERT_B64} bytes")));
        }
        let blob = data_encoding::BASE64
            .decode(text.as_bytes())
            .map_err(|e| bad(e.to_string()))?;
        let c = Certificate::from_bytes(&blob).map_err(|e| bad(e.to_string()))?;
        let ca = cert::key_line(c.signature_key(), "");
        if key_part(&ca) != key_part(&self.ca) || !self.allows(user) {
            return Ok(Vec::new());
        }
        let key = cert::key_line(c.public_key(), "");
        let current = self.lines.iter().any(|l| key_part(l) == key_part(&key));
        Ok(if current {
            vec![user.to_string()]
        } else {
            Vec::new()
        })
    }
}

/// The algorithm and key of an OpenSSH public key line, without its comment.
fn key_part(line: &str) -> (&str, &str) {
    let mut f = line.split_whitespace();
    (f.next().unwrap_or(""), f.next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> SshdAnswer {
        SshdAnswer {
            principals: vec!["alice".into()],
            lines: vec![
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOo mesh:laptop@alice@example.com".into(),
            ],
            ca: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICA".into(),
        }
    }

    #[test]
    fn lines_only_for_the_accounts_login_names() {
        let a = answer();
        assert_eq!(a.authorized_lines(None), a.lines);
        assert_eq!(a.authorized_lines(Some("alice")), a.lines);
        assert!(a.authorized_lines(Some("root")).is_empty());
    }

    #[test]
    fn principals_refuse_what_is_not_a_certificate() {
        let a = answer();
        let e = a
            .authorized_principals("alice", "bm90IGEgY2VydGlmaWNhdGU=")
            .expect_err("not a certificate");
        assert!(e.to_string().contains("the certificate sshd passed"), "{e}");
        let huge = "A".repeat(MAX_CERT_B64 + 1);
        let e = a
            .authorized_principals("alice", &huge)
            .expect_err("bounded");
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn key_part_drops_the_comment() {
        assert_eq!(
            key_part("ssh-ed25519 AAAA mesh:x@y"),
            ("ssh-ed25519", "AAAA")
        );
        assert_eq!(key_part("ssh-ed25519 AAAA"), ("ssh-ed25519", "AAAA"));
        assert_eq!(key_part(""), ("", ""));
    }
}
