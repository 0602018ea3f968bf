//! The strings a person handles: the account's age recipient
//! (`age1mesh1…`) and the identity (`AGE-PLUGIN-MESH-1…`), both Bech32
//! (BIP 173) with the HRPs the age plugin spec gives a plugin named
//! `mesh` (c2sp.org/age-plugin, "Recipients and identities").
//!
//! - recipient: `0x01 ‖ epoch (u32, big-endian) ‖ the epoch's X25519 key
//!   (33 bytes, Mesh's extended encoding) ‖ account tag (8 bytes)`;
//! - identity: `0x01 ‖ account tag`: it names the account and holds no
//!   secret (the keys stay in the device's home);
//! - account tag: the first 8 bytes of SHA-256 over the profile UDF; it
//!   names the account in stanzas too, so that a file for another account
//!   says so instead of failing as a bad key.

use bech32::{Bech32, Hrp};
use mesh_core::derive::KeyAlg;
use mesh_core::keys::PublicKey;
use sha2::{Digest, Sha256};

use crate::FilesError;

/// The plugin's name: age runs `age-plugin-mesh`.
pub const PLUGIN_NAME: &str = "mesh";
/// The recipient HRP (`age1` + plugin name).
pub const RECIPIENT_HRP: &str = "age1mesh";
/// The identity HRP (`AGE-PLUGIN-` + name + `-`, lower case on the wire of Bech32).
pub const IDENTITY_HRP: &str = "age-plugin-mesh-";
const VERSION: u8 = 1;

/// The 8-byte tag that names an account in recipients, identities and stanzas.
pub type AccountTag = [u8; 8];

/// The tag of the account whose profile UDF is `profile_udf`.
pub fn account_tag(profile_udf: &str) -> AccountTag {
    let d = Sha256::digest(profile_udf.as_bytes());
    let mut t = [0u8; 8];
    t.copy_from_slice(&d[..8]);
    t
}

/// A tag as it appears in a stanza's arguments (unpadded base64).
pub fn tag_arg(tag: &AccountTag) -> String {
    data_encoding::BASE64_NOPAD.encode(tag)
}

/// The account's recipient: its file key's public key at one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The epoch.
    pub epoch: u32,
    /// The epoch's X25519 public key.
    pub key: PublicKey,
    /// The account.
    pub account: AccountTag,
}

fn bad(what: &str) -> FilesError {
    FilesError::BadEncoding(what.to_string())
}

impl Recipient {
    /// The payload the plugin protocol hands over (after Bech32).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![VERSION];
        b.extend_from_slice(&self.epoch.to_be_bytes());
        b.extend_from_slice(&self.key.to_bytes());
        b.extend_from_slice(&self.account);
        b
    }

    /// Parse the payload; refuses other versions and lengths.
    pub fn from_bytes(b: &[u8]) -> Result<Recipient, FilesError> {
        let err = || bad("not an age1mesh recipient (version 1, 46 bytes)");
        if b.len() != 46 || b[0] != VERSION {
            return Err(err());
        }
        let epoch = u32::from_be_bytes(b[1..5].try_into().map_err(|_| err())?);
        let key = PublicKey::from_bytes(KeyAlg::X25519, &b[5..38])
            .map_err(|_| bad("the recipient's key is not an X25519 point"))?;
        let account = b[38..46].try_into().map_err(|_| err())?;
        Ok(Recipient {
            epoch,
            key,
            account,
        })
    }

    /// `age1mesh1…`.
    pub fn encode(&self) -> String {
        encode(RECIPIENT_HRP, &self.to_bytes())
    }

    /// Parse `age1mesh1…`.
    pub fn decode(s: &str) -> Result<Recipient, FilesError> {
        Recipient::from_bytes(&decode(RECIPIENT_HRP, s)?)
    }
}

/// The identity: which account's files to open with this device's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The account.
    pub account: AccountTag,
}

impl Identity {
    /// The payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![VERSION];
        b.extend_from_slice(&self.account);
        b
    }

    /// Parse the payload.
    pub fn from_bytes(b: &[u8]) -> Result<Identity, FilesError> {
        if b.len() != 9 || b[0] != VERSION {
            return Err(bad("not an AGE-PLUGIN-MESH identity (version 1, 9 bytes)"));
        }
        let account = b[1..9].try_into().map_err(|_| bad("identity length"))?;
        Ok(Identity { account })
    }

    /// `AGE-PLUGIN-MESH-1…` (upper case, as age writes identities).
    pub fn encode(&self) -> String {
        encode(IDENTITY_HRP, &self.to_bytes()).to_uppercase()
    }

    /// Parse `AGE-PLUGIN-MESH-1…` (either case).
    pub fn decode(s: &str) -> Result<Identity, FilesError> {
        Identity::from_bytes(&decode(IDENTITY_HRP, &s.to_lowercase())?)
    }
}

fn encode(hrp: &str, data: &[u8]) -> String {
    // Both HRPs are valid constants; encoding into a String cannot fail
    // below Bech32's length limit, which our payloads stay under.
    let hrp = Hrp::parse_unchecked(hrp);
    bech32::encode::<Bech32>(hrp, data).unwrap_or_default()
}

fn decode(want: &str, s: &str) -> Result<Vec<u8>, FilesError> {
    let (hrp, data) = bech32::decode(s.trim()).map_err(|_| bad("not a Bech32 string"))?;
    if hrp.to_lowercase() != want {
        return Err(bad(&format!("a `{hrp}` string, not `{want}`")));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::keys::AgreementKey;

    #[test]
    fn recipients_and_identities_round_trip_and_stay_short() {
        let r = Recipient {
            epoch: 7,
            key: AgreementKey::generate().public_key(),
            account: account_tag("MPROFILE"),
        };
        let s = r.encode();
        assert!(s.starts_with("age1mesh1"), "{s}");
        // Under BIP 173's 90 characters: every age implementation parses it.
        assert!(s.len() <= 90, "{} characters", s.len());
        assert_eq!(Recipient::decode(&s).expect("parses"), r);
        let i = Identity { account: r.account };
        let s = i.encode();
        assert!(s.starts_with("AGE-PLUGIN-MESH-1"), "{s}");
        assert_eq!(Identity::decode(&s).expect("parses"), i);
        // One is not the other, and a changed character fails the checksum.
        assert!(Recipient::decode(&s).is_err());
        let mut t = r.encode().into_bytes();
        let last = t.len() - 1;
        t[last] = if t[last] == b'q' { b'p' } else { b'q' };
        assert!(Recipient::decode(&String::from_utf8(t).expect("ascii")).is_err());
    }
}
