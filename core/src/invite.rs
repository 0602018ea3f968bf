//! Invitation codes for a portal that binds new accounts only by
//! invitation (`mesh-portal serve --bind invite`, PROTOCOL.md §10.3).
//!
//! A code is `nonce (16) ‖ BE64(expires) ‖ HMAC-SHA256(key, "MeshInvite" ‖
//! nonce ‖ BE64(expires))[..16]` in base32, dashes every four characters:
//! the portal keeps no list of codes, only its key, and records each
//! nonce it accepted until the code would expire (one use).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Bytes of an invitation key.
pub const KEY_LEN: usize = 32;

/// Longest an invitation may be valid (seconds): 30 days.
pub const MAX_LIFETIME: u64 = 30 * 24 * 3600;

const NONCE: usize = 16;
const TAG: usize = 16;
const LEN: usize = NONCE + 8 + TAG;

/// Why a code is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// Not a code at all (length, alphabet).
    #[error("the invitation code is malformed")]
    Malformed,
    /// Not made with this portal's key (or altered).
    #[error("the invitation code is not one of this portal's")]
    Forged,
    /// Past its date.
    #[error("the invitation code has expired")]
    Expired,
}

/// A code the portal accepted: its one-use nonce and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Recorded as used until `expires`.
    pub nonce: [u8; NONCE],
    /// Seconds since the Unix epoch.
    pub expires: u64,
}

fn tag(key: &[u8; KEY_LEN], nonce: &[u8], expires: u64) -> [u8; TAG] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    m.update(b"MeshInvite");
    m.update(nonce);
    m.update(&expires.to_be_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0u8; TAG];
    out.copy_from_slice(&full[..TAG]);
    out
}

/// A new code valid until `expires`.
pub fn mint(key: &[u8; KEY_LEN], nonce: &[u8; NONCE], expires: u64) -> String {
    let mut raw = Vec::with_capacity(LEN);
    raw.extend_from_slice(nonce);
    raw.extend_from_slice(&expires.to_be_bytes());
    raw.extend_from_slice(&tag(key, nonce, expires));
    let text = data_encoding::BASE32_NOPAD.encode(&raw);
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for (i, c) in text.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Check a code against the key and the clock (dashes and case ignored).
pub fn check(key: &[u8; KEY_LEN], code: &str, now: u64) -> Result<Invitation, InviteError> {
    if code.len() > 2 * LEN * 2 {
        return Err(InviteError::Malformed);
    }
    let bare: String = code
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let raw = data_encoding::BASE32_NOPAD
        .decode(bare.as_bytes())
        .map_err(|_| InviteError::Malformed)?;
    if raw.len() != LEN {
        return Err(InviteError::Malformed);
    }
    let (nonce, rest) = raw.split_at(NONCE);
    let (exp, got) = rest.split_at(8);
    let mut e = [0u8; 8];
    e.copy_from_slice(exp);
    let expires = u64::from_be_bytes(e);
    if !bool::from(tag(key, nonce, expires).ct_eq(got)) {
        return Err(InviteError::Forged);
    }
    if expires <= now {
        return Err(InviteError::Expired);
    }
    let mut n = [0u8; NONCE];
    n.copy_from_slice(nonce);
    Ok(Invitation { nonce: n, expires })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_checked_against_key_clock_and_form() {
        let key = [7u8; KEY_LEN];
        let code = mint(&key, &[1; NONCE], 1_000);
        let ok = check(&key, &code, 999).expect("valid");
        assert_eq!(ok.expires, 1_000);
        assert_eq!(
            check(&key, &code.to_lowercase().replace('-', ""), 999),
            Ok(ok)
        );
        let mut altered = code.clone().into_bytes();
        altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("utf8");
        let cases: [(&str, &[u8; KEY_LEN], &str, u64, InviteError); 6] = [
            (
                "another key",
                &[8u8; KEY_LEN],
                &code,
                999,
                InviteError::Forged,
            ),
            ("altered", &key, &altered, 999, InviteError::Forged),
            ("expired", &key, &code, 1_000, InviteError::Expired),
            (
                "truncated",
                &key,
                &code[..code.len() - 5],
                999,
                InviteError::Malformed,
            ),
            (
                "not base32",
                &key,
                "not a code!",
                999,
                InviteError::Malformed,
            ),
            (
                "oversized",
                &key,
                &"A".repeat(10_000),
                999,
                InviteError::Malformed,
            ),
        ];
        for (what, k, c, now, want) in cases {
            assert_eq!(check(k, c, now), Err(want), "{what}");
        }
    }
}
