//! Signed and encrypted envelopes (our JSON binding of DARE; PROTOCOL.md
//! §Envelopes).
//!
//! A signed envelope carries a payload, its content type and Ed25519
//! signatures that name their key by UDF. Verification takes the set of keys
//! authorized for that object: a signature by any other key is an error
//! that names it, so a portal cannot slip in an object signed by a key it
//! chose.
//!
//! An encrypted envelope uses one ephemeral X25519 key per envelope, a key
//! encryption key per recipient from HKDF-SHA-512 of the agreement, and
//! AES-256-GCM for both the wrapped content key and the content.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha512;
use zeroize::Zeroizing;

use crate::b64;
use crate::keys::{AgreementKey, PublicKey, SigningKey};
use crate::{udf, Error};

/// Most signatures one envelope may carry.
pub const MAX_SIGNATURES: usize = 16;
/// Most recipients one encrypted envelope may carry. An account's shared
/// secrets (the file key, the mail keys) are wrapped to every holder: the
/// active devices, the administrators and escrow. 256 capped an account
/// at 254 devices (found building the 1,000-device scale bench once the
/// files channel wrapped to every device); 4,096 bounds the parse (about
/// 600 kB of recipients) well above the accounts we measure.
pub const MAX_RECIPIENTS: usize = 4096;

/// One signature of a [`Signed`] envelope.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// UDF of the signing key.
    pub kid: String,
    /// Always `Ed25519`.
    pub alg: String,
    /// The 64-byte signature.
    #[serde(rename = "Signature", with = "b64::serde_bytes")]
    pub signature: Vec<u8>,
}

/// A signed envelope.
#[derive(Clone, Debug, Serialize, Deserialize, Eq)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// What the payload is, e.g. `ProfileAccount` (see `objects::ct`).
    #[serde(rename = "ContentType")]
    pub content_type: String,
    /// The payload bytes exactly as signed. Shared, not copied, by clones:
    /// an account state of 1,000 devices holds 8 MB of payloads, and a
    /// sync clones the state it reads.
    #[serde(rename = "Payload", with = "b64::serde_shared_bytes")]
    pub payload: Arc<[u8]>,
    /// Signatures over the domain-separated (content type, payload) pair.
    #[serde(rename = "Signatures")]
    pub signatures: Vec<SignatureEntry>,
}

impl PartialEq for Signed {
    /// Byte for byte; a payload shared with `other` is not compared again
    /// (`Arc<[u8]>` does not check its pointer first).
    fn eq(&self, other: &Signed) -> bool {
        self.content_type == other.content_type
            && (Arc::ptr_eq(&self.payload, &other.payload) || self.payload == other.payload)
            && self.signatures == other.signatures
    }
}

fn to_be_signed(content_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + content_type.len() + payload.len());
    m.extend_from_slice(b"Mesh.Signed.v1\0");
    m.extend_from_slice(
        &u32::try_from(content_type.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    m.extend_from_slice(content_type.as_bytes());
    m.extend_from_slice(payload);
    m
}

/// Serialize an object to the JSON bytes an envelope carries.
pub fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Our objects contain only strings, numbers and maps with string keys.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Parse JSON bytes into an object, naming the object on error.
pub fn from_json<T: DeserializeOwned>(what: &'static str, b: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(b).map_err(|e| Error::Json {
        what,
        detail: e.to_string(),
    })
}

impl Signed {
    /// Sign `payload` with every key in `signers`.
    pub fn sign(content_type: &str, payload: Vec<u8>, signers: &[&SigningKey]) -> Signed {
        let mut s = Signed {
            content_type: content_type.to_string(),
            payload: payload.into(),
            signatures: Vec::new(),
        };
        for k in signers {
            s.add_signature(k);
        }
        s
    }

    /// Serialize `value` as JSON and sign it.
    pub fn sign_object<T: Serialize>(content_type: &str, value: &T, signer: &SigningKey) -> Signed {
        Signed::sign(content_type, to_json(value), &[signer])
    }

    /// Add one more signature (e.g. a second administrator).
    pub fn add_signature(&mut self, key: &SigningKey) {
        let sig = key.sign(&to_be_signed(&self.content_type, &self.payload));
        self.signatures.push(SignatureEntry {
            kid: key.public_key().udf(),
            alg: "Ed25519".into(),
            signature: sig.to_bytes().to_vec(),
        });
    }

    /// Check the signatures against the keys authorized for this object and
    /// return the payload.
    ///
    /// Every signature must be by an authorized key and must verify; at
    /// least one must be present.
    pub fn verify(&self, content_type: &str, authorized: &[PublicKey]) -> Result<&[u8], Error> {
        if self.content_type != content_type {
            return Err(Error::Malformed(format!(
                "expected a {content_type} object, found {}",
                self.content_type
            )));
        }
        if self.signatures.is_empty() {
            return Err(Error::Unsigned);
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(Error::Malformed(format!(
                "{} signatures (at most {MAX_SIGNATURES})",
                self.signatures.len()
            )));
        }
        let tbs = to_be_signed(&self.content_type, &self.payload);
        for s in &self.signatures {
            let key = authorized
                .iter()
                .find(|k| udf::udf_eq(&k.udf(), &s.kid))
                .ok_or_else(|| Error::UnauthorizedSigner(s.kid.clone()))?;
            if s.alg != "Ed25519" {
                return Err(Error::BadSignature(s.kid.clone()));
            }
            key.verify(&tbs, &s.signature)?;
        }
        Ok(&self.payload)
    }

    /// Verify and parse the payload as JSON.
    pub fn verify_object<T: DeserializeOwned>(
        &self,
        what: &'static str,
        content_type: &str,
        authorized: &[PublicKey],
    ) -> Result<T, Error> {
        from_json(what, self.verify(content_type, authorized)?)
    }

    /// SHA-256 of what the signatures cover (content type and payload, not
    /// the signatures): the entry's identity in a store's hash chain.
    pub fn content_digest(&self) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(to_be_signed(&self.content_type, &self.payload)).into()
    }

    /// Parse the payload without checking signatures: only for reading the
    /// self-describing fields (e.g. the keys of a profile) that a caller then
    /// checks against a pinned fingerprint before trusting anything.
    pub fn unverified_object<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, Error> {
        from_json(what, &self.payload)
    }
}

/// One recipient of an [`Encrypted`] envelope.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecipientEntry {
    /// UDF of the recipient's X25519 key.
    pub kid: String,
    /// The content key wrapped under this recipient's key encryption key.
    #[serde(with = "b64::serde_bytes")]
    pub wmk: Vec<u8>,
}

/// An encrypted envelope.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Encrypted {
    /// What the plaintext is.
    #[serde(rename = "ContentType")]
    pub content_type: String,
    /// Always `A256GCM`.
    pub enc: String,
    /// The ephemeral X25519 public key (u coordinate).
    #[serde(with = "b64::serde_bytes")]
    pub epk: Vec<u8>,
    /// One entry per recipient.
    #[serde(rename = "Recipients")]
    pub recipients: Vec<RecipientEntry>,
    /// The content nonce.
    #[serde(rename = "Nonce", with = "b64::serde_bytes")]
    pub nonce: Vec<u8>,
    /// AES-256-GCM ciphertext and tag.
    #[serde(rename = "Ciphertext", with = "b64::serde_bytes")]
    pub ciphertext: Vec<u8>,
}

fn kek(shared: &[u8], epk: &[u8], recipient_u: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut salt = epk.to_vec();
    salt.extend_from_slice(recipient_u);
    let hk = hkdf::Hkdf::<Sha512>::new(Some(&salt), shared);
    let mut k = Zeroizing::new([0u8; 32]);
    // 32 bytes is a valid HKDF-SHA512 length.
    let _ = hk.expand(b"Mesh.Encrypted.v1 key encryption key", &mut k[..]);
    k
}

fn content_aad(content_type: &str, epk: &[u8]) -> Vec<u8> {
    let mut a = b"Mesh.Encrypted.v1\0".to_vec();
    a.extend_from_slice(
        &u32::try_from(content_type.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    a.extend_from_slice(content_type.as_bytes());
    a.extend_from_slice(epk);
    a
}

impl Encrypted {
    /// Encrypt `plaintext` to every key in `recipients` (X25519 keys).
    pub fn encrypt(
        content_type: &str,
        plaintext: &[u8],
        recipients: &[PublicKey],
    ) -> Result<Encrypted, Error> {
        if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
            return Err(Error::Malformed(format!(
                "{} recipients (1 to {MAX_RECIPIENTS})",
                recipients.len()
            )));
        }
        let eph = AgreementKey::generate();
        let epk = eph.public_key().x25519_u()?.to_vec();
        let mut cek = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut cek[..]);
        let mut entries = Vec::with_capacity(recipients.len());
        for r in recipients {
            let u = r.x25519_u()?;
            let shared = eph.agree(&u)?;
            let k = kek(&shared[..], &epk, &u);
            let kid = r.udf();
            let wmk = Aes256Gcm::new_from_slice(&k[..])
                .map_err(|_| Error::Decrypt)?
                .encrypt(
                    Nonce::from_slice(&[0u8; 12]),
                    Payload {
                        msg: &cek[..],
                        aad: kid.as_bytes(),
                    },
                )
                .map_err(|_| Error::Decrypt)?;
            entries.push(RecipientEntry { kid, wmk });
        }
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = Aes256Gcm::new_from_slice(&cek[..])
            .map_err(|_| Error::Decrypt)?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &content_aad(content_type, &epk),
                },
            )
            .map_err(|_| Error::Decrypt)?;
        Ok(Encrypted {
            content_type: content_type.to_string(),
            enc: "A256GCM".into(),
            epk,
            recipients: entries,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Serialize `value` as JSON and encrypt it.
    pub fn encrypt_object<T: Serialize>(
        content_type: &str,
        value: &T,
        recipients: &[PublicKey],
    ) -> Result<Encrypted, Error> {
        let plain = Zeroizing::new(to_json(value));
        Encrypted::encrypt(content_type, &plain, recipients)
    }

    /// Whether `key` is among the recipients.
    pub fn is_for(&self, key: &PublicKey) -> bool {
        let kid = key.udf();
        self.recipients.iter().any(|r| udf::udf_eq(&r.kid, &kid))
    }

    /// Decrypt with one of our keys.
    pub fn decrypt(
        &self,
        content_type: &str,
        key: &AgreementKey,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        if self.content_type != content_type {
            return Err(Error::Malformed(format!(
                "expected an encrypted {content_type}, found {}",
                self.content_type
            )));
        }
        if self.enc != "A256GCM" || self.nonce.len() != 12 || self.recipients.len() > MAX_RECIPIENTS
        {
            return Err(Error::Malformed("unsupported encrypted envelope".into()));
        }
        let ours = key.public_key();
        let kid = ours.udf();
        let entry = self
            .recipients
            .iter()
            .find(|r| udf::udf_eq(&r.kid, &kid))
            .ok_or_else(|| {
                Error::NotRecipient(
                    self.recipients
                        .iter()
                        .map(|r| r.kid.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })?;
        let epk: [u8; 32] = self
            .epk
            .as_slice()
            .try_into()
            .map_err(|_| Error::Malformed("epk is not 32 bytes".into()))?;
        let shared = key.agree(&epk)?;
        let k = kek(&shared[..], &epk, &ours.x25519_u()?);
        let cek = Zeroizing::new(
            Aes256Gcm::new_from_slice(&k[..])
                .map_err(|_| Error::Decrypt)?
                .decrypt(
                    Nonce::from_slice(&[0u8; 12]),
                    Payload {
                        msg: &entry.wmk,
                        aad: entry.kid.as_bytes(),
                    },
                )
                .map_err(|_| Error::Decrypt)?,
        );
        let plain = Aes256Gcm::new_from_slice(&cek)
            .map_err(|_| Error::Decrypt)?
            .decrypt(
                Nonce::from_slice(&self.nonce),
                Payload {
                    msg: &self.ciphertext,
                    aad: &content_aad(&self.content_type, &self.epk),
                },
            )
            .map_err(|_| Error::Decrypt)?;
        Ok(Zeroizing::new(plain))
    }

    /// Decrypt and parse JSON.
    pub fn decrypt_object<T: DeserializeOwned>(
        &self,
        what: &'static str,
        content_type: &str,
        key: &AgreementKey,
    ) -> Result<T, Error> {
        let plain = self.decrypt(content_type, key)?;
        from_json(what, &plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn signed_verifies_only_with_authorized_keys() {
        let a = SigningKey::from_seed(&[1u8; 32]);
        let b = SigningKey::from_seed(&[2u8; 32]);
        let s = Signed::sign("t", b"hello".to_vec(), &[&a]);
        assert_eq!(s.verify("t", &[a.public_key()]).expect("ok"), b"hello");
        match s.verify("t", &[b.public_key()]) {
            Err(Error::UnauthorizedSigner(kid)) => assert_eq!(kid, a.public_key().udf()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.verify("u", &[a.public_key()]),
            Err(Error::Malformed(_))
        ));
        let mut t = s.clone();
        t.payload = b"hellO".as_slice().into();
        assert!(matches!(
            t.verify("t", &[a.public_key()]),
            Err(Error::BadSignature(_))
        ));
        let mut u = s.clone();
        u.content_type = "u".into();
        assert!(u.verify("u", &[a.public_key()]).is_err());
        let mut none = s;
        none.signatures.clear();
        assert!(matches!(
            none.verify("t", &[a.public_key()]),
            Err(Error::Unsigned)
        ));
    }

    #[test]
    fn encrypted_to_many_recipients() {
        let r1 = AgreementKey::generate();
        let r2 = AgreementKey::combine(&AgreementKey::generate(), &AgreementKey::generate());
        let other = AgreementKey::generate();
        let e =
            Encrypted::encrypt("t", b"secret", &[r1.public_key(), r2.public_key()]).expect("enc");
        assert_eq!(&e.decrypt("t", &r1).expect("r1")[..], b"secret");
        assert_eq!(&e.decrypt("t", &r2).expect("r2")[..], b"secret");
        assert!(matches!(
            e.decrypt("t", &other),
            Err(Error::NotRecipient(_))
        ));
        let mut bad = e.clone();
        bad.ciphertext[0] ^= 1;
        assert!(matches!(bad.decrypt("t", &r1), Err(Error::Decrypt)));
        let mut swapped = e;
        swapped.content_type = "u".into();
        assert!(matches!(swapped.decrypt("u", &r1), Err(Error::Decrypt)));
    }

    /// A secret shared by a 1,000-device account opens for its last
    /// holder; one recipient past the bound is refused both ways.
    #[test]
    fn an_account_of_a_thousand_devices_is_one_envelope_and_the_bound_holds() {
        let last = AgreementKey::generate();
        let mut keys: Vec<PublicKey> = (0..1002)
            .map(|_| AgreementKey::generate().public_key())
            .collect();
        keys.push(last.public_key());
        let e = Encrypted::encrypt("t", b"secret", &keys).expect("1,003 recipients");
        assert_eq!(&e.decrypt("t", &last).expect("the last")[..], b"secret");
        let over = vec![last.public_key(); MAX_RECIPIENTS + 1];
        assert!(Encrypted::encrypt("t", b"secret", &over).is_err());
        let mut padded = e;
        let filler = padded.recipients[0].clone();
        padded.recipients.resize(MAX_RECIPIENTS + 1, filler);
        assert!(matches!(
            padded.decrypt("t", &last),
            Err(Error::Malformed(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn encrypt_round_trip(msg in proptest::collection::vec(any::<u8>(), 0..512)) {
            let r = AgreementKey::generate();
            let e = Encrypted::encrypt("t", &msg, &[r.public_key()]).expect("enc");
            let j = serde_json::to_string(&e).expect("json");
            let back: Encrypted = serde_json::from_str(&j).expect("parse");
            prop_assert_eq!(&back.decrypt("t", &r).expect("dec")[..], &msg[..]);
        }
    }
}
