//! Device roles, as data (issue 24): a role is a name that the channel
//! owning it defines (`ssh` in the SSH channel's crate), plus
//! [`Role::ADMIN`], the one role the life cycle itself knows. Core names
//! no channel.
//!
//! A role this client does not know (a newer client's channel) parses,
//! is kept in every access list and connection an administrator writes
//! after it, and grants nothing here: code asks "does it have *this*
//! role", never "which role is it".

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Error;

/// Longest role name accepted.
pub const MAX_NAME: usize = 32;

/// A device role granted by an administrator.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Role(Cow<'static, str>);

impl Role {
    /// Holds the administrator's online seeds: accepts, rotates and revokes devices.
    pub const ADMIN: Role = Role::named("admin");

    /// A role a channel defines. The name must be valid ([`Role::parse`]
    /// rules); channels define theirs as constants.
    pub const fn named(name: &'static str) -> Role {
        Role(Cow::Borrowed(name))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Parse a name: 1 to [`MAX_NAME`] lower-case ASCII letters, digits
    /// and `-`, starting with a letter. Unknown names are accepted: whether
    /// a role means anything is for the channels to say.
    pub fn parse(s: &str) -> Result<Role, Error> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= MAX_NAME
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !ok {
            return Err(Error::Malformed(format!(
                "'{:.40}' is not a role name (1 to {MAX_NAME} of a-z, 0-9 and '-', from a letter)",
                s
            )));
        }
        Ok(Role(Cow::Owned(s.to_owned())))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        if s == "admin" {
            return Ok(Role::ADMIN); // the common case: no allocation
        }
        Role::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_well_formed_name_is_a_role_and_round_trips() {
        for name in ["admin", "ssh", "files", "x-2026"] {
            let r: Role = serde_json::from_str(&format!("\"{name}\"")).expect(name);
            assert_eq!(r.name(), name);
            assert_eq!(
                serde_json::to_string(&r).expect("json"),
                format!("\"{name}\"")
            );
        }
        assert_eq!(Role::parse(" ssh ").expect("trimmed"), Role::named("ssh"));
    }

    #[test]
    fn a_malformed_name_is_refused() {
        let long = "a".repeat(MAX_NAME + 1);
        for bad in [
            "",
            "Admin",
            "1ssh",
            "ssh key",
            "ssh\u{0}",
            "é",
            long.as_str(),
        ] {
            assert!(Role::parse(bad).is_err(), "{bad:?}");
            let json = serde_json::to_string(bad).expect("json");
            assert!(serde_json::from_str::<Role>(&json).is_err(), "{bad:?}");
        }
    }
}
