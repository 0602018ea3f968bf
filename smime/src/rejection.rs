//! RSA key transport without an oracle: this device's key, once per
//! message, as `rsa` 0.10's key, whose private-key operation is constant
//! time (RUSTSEC-2023-0071, "Marvin", fixed in 0.10.0) and whose PKCS#1
//! v1.5 decryption rejects implicitly (draft-irtf-cfrg-rsa-guidance: a bad
//! block gives a synthetic message derived from the key and the
//! ciphertext, not an error).
//!
//! CMS adds one check: the content key has the content algorithm's length.
//! A message of another length, or an OAEP failure, gives this module's
//! own synthetic key: HMAC-SHA256 over the ciphertext, keyed with a digest
//! of the private key. The real and the synthetic key are chosen byte by
//! byte without a branch, and the content decryption that follows fails
//! the same way for every forgery, and fails again identically if it is
//! sent again.
//!
//! The rest of the crate keeps `rsa` 0.9 (its CMS and X.509 crates are on
//! the der 0.7 generation, which 0.10 is not); the key crosses over as
//! PKCS#8.

use hmac::{Hmac, Mac};
use rsa::pkcs8::EncodePrivateKey;
use rsa10::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::message::{CmsError, Hash};

/// Separates this use of the key derivation key from any other.
const LABEL: &[u8] = b"Mesh CMS content key implicit rejection";

/// A private key for unwrapping content keys.
pub(crate) struct Unwrapper {
    key: rsa10::PrivateKey,
    kdk: Zeroizing<[u8; 32]>,
}

impl Unwrapper {
    /// `key` as `rsa` 0.10's.
    pub(crate) fn new(key: &rsa::RsaPrivateKey) -> Result<Unwrapper, CmsError> {
        // Our own key: a failure here is not the message's.
        let own = |e: String| CmsError::Unsupported(format!("this account's RSA key ({e})"));
        let der = key.to_pkcs8_der().map_err(|e| own(e.to_string()))?;
        let kdk = Zeroizing::new(
            Sha256::new_with_prefix(b"Mesh RSA implicit rejection KDK")
                .chain_update(der.as_bytes())
                .finalize()
                .into(),
        );
        let key =
            rsa10::PrivateKey::from_pkcs8_der(der.as_bytes()).map_err(|e| own(e.to_string()))?;
        Ok(Unwrapper { key, kdk })
    }

    /// What a ciphertext that does not unwrap to `len` bytes gives instead:
    /// `len` bytes (at most 32), a function of the key and `ct` only.
    fn synthetic(&self, ct: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.kdk[..])
            .expect("HMAC takes keys of any length");
        mac.update(LABEL);
        mac.update(&[u8::try_from(len).unwrap_or(u8::MAX)]);
        mac.update(ct);
        let full = Zeroizing::new(mac.finalize().into_bytes());
        Zeroizing::new(full[..len.min(full.len())].to_vec())
    }

    /// The `len`-byte content key in a PKCS#1 v1.5 ciphertext, or the
    /// synthetic one.
    pub(crate) fn pkcs1v15(&self, ct: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        let synthetic = self.synthetic(ct, len);
        // Errors here are public: a ciphertext of the wrong length or not
        // below the modulus. A bad block is no error (implicit rejection).
        match self.key.pkcs1v15_decrypt(ct) {
            Ok(m) => fixed(&Zeroizing::new(m), &synthetic),
            Err(_) => synthetic,
        }
    }

    /// The same with RSA-OAEP (`hash`, MGF1 with `mgf`, no label).
    pub(crate) fn oaep(&self, hash: Hash, mgf: Hash, ct: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        let synthetic = self.synthetic(ct, len);
        match self.oaep_decrypt(hash, mgf, ct) {
            Ok(m) => fixed(&m, &synthetic),
            Err(_) => synthetic,
        }
    }

    fn oaep_decrypt(&self, hash: Hash, mgf: Hash, ct: &[u8]) -> rsa10::Result<Zeroizing<Vec<u8>>> {
        use rsa10::sha2::{Sha256, Sha384, Sha512};
        use rsa10::Oaep;
        use sha1_10::Sha1;
        macro_rules! with_mgf {
            ($h:ty) => {
                match mgf {
                    Hash::Sha1 => self.key.decrypt(Oaep::<$h, Sha1>::new_with_mgf_hash(), ct),
                    Hash::Sha256 => self
                        .key
                        .decrypt(Oaep::<$h, Sha256>::new_with_mgf_hash(), ct),
                    Hash::Sha384 => self
                        .key
                        .decrypt(Oaep::<$h, Sha384>::new_with_mgf_hash(), ct),
                    Hash::Sha512 => self
                        .key
                        .decrypt(Oaep::<$h, Sha512>::new_with_mgf_hash(), ct),
                }
            };
        }
        let m = match hash {
            Hash::Sha1 => with_mgf!(Sha1),
            Hash::Sha256 => with_mgf!(Sha256),
            Hash::Sha384 => with_mgf!(Sha384),
            Hash::Sha512 => with_mgf!(Sha512),
        }?;
        Ok(Zeroizing::new(m))
    }
}

/// `m` when it has `synthetic`'s length, else `synthetic`: chosen byte by
/// byte, with no branch on the bytes.
fn fixed(m: &[u8], synthetic: &[u8]) -> Zeroizing<Vec<u8>> {
    let len = synthetic.len();
    let valid = (m.len() as u64).ct_eq(&(len as u64));
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (i, (o, s)) in out.iter_mut().zip(synthetic).enumerate() {
        let real = m.get(i).copied().unwrap_or(0);
        *o = u8::conditional_select(s, &real, valid);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::traits::PublicKeyParts;

    fn key() -> rsa::RsaPrivateKey {
        // Any key will do; 1,024 bits keeps the test fast.
        rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).expect("key")
    }

    /// Encrypt the raw block `em` (k bytes) with the public key (rsa 0.9).
    fn raw(key: &rsa::RsaPrivateKey, em: &[u8]) -> Vec<u8> {
        let m = rsa::BigUint::from_bytes_be(em);
        let c = rsa::BigUint::from_bytes_be(&m.modpow(key.e(), key.n()).to_bytes_be());
        let mut out = c.to_bytes_be();
        while out.len() < key.size() {
            out.insert(0, 0);
        }
        out
    }

    fn block(k: usize, kind: u8, sep: u8, cek: &[u8]) -> Vec<u8> {
        let mut em = vec![0u8, kind];
        em.resize(k - cek.len() - 1, 0x55);
        em.push(sep);
        em.extend_from_slice(cek);
        em
    }

    #[test]
    fn a_valid_block_unwraps_and_every_other_gives_the_synthetic_key() {
        let key = key();
        let u = Unwrapper::new(&key).expect("key");
        let k = key.size();
        let cek = [7u8; 32];
        let good = raw(&key, &block(k, 2, 0, &cek));
        assert_eq!(&u.pkcs1v15(&good, 32)[..], &cek);
        let mut zero_in_ps = block(k, 2, 0, &cek);
        zero_in_ps[5] = 0;
        // Bad blocks: `rsa` rejects them implicitly, with a synthetic message
        // of its own; when that message has 32 bytes (about 1 time in k-10)
        // it stands, else ours does. Either way: 32 bytes, the same each
        // time, a function of the key and the ciphertext, never the key.
        let bad_blocks: Vec<Vec<u8>> = vec![
            raw(&key, &block(k, 1, 0, &cek)),
            raw(&key, &block(k, 2, 0x55, &cek)),
            raw(&key, &zero_in_ps),
            raw(&key, &block(k, 2, 0, &[7u8; 16])),
        ];
        for ct in &bad_blocks {
            let got = u.pkcs1v15(ct, 32);
            assert_eq!(got.len(), 32);
            assert_eq!(u.pkcs1v15(ct, 32), got);
            assert_ne!(&got[..], &cek);
        }
        // Ciphertexts `rsa` refuses outright (a byte short: the last one
        // cut; not below the modulus) give ours, exactly.
        for ct in [good[..k - 1].to_vec(), vec![0xff; k]] {
            let s = u.synthetic(&ct, 32);
            assert_eq!(u.pkcs1v15(&ct, 32), s);
            assert_ne!(u.synthetic(&good, 32), s);
        }
        // A 16-byte key where 16 bytes are expected does unwrap.
        let ct = raw(&key, &block(k, 2, 0, &[7u8; 16]));
        assert_eq!(&u.pkcs1v15(&ct, 16)[..], &[7u8; 16]);
        // OAEP: what rsa 0.9 encrypts, 0.10 decrypts; a changed byte does not.
        let ct = key
            .to_public_key()
            .encrypt(
                &mut rand_core::OsRng,
                rsa::Oaep::new::<sha2::Sha256>(),
                &cek,
            )
            .expect("oaep");
        assert_eq!(&u.oaep(Hash::Sha256, Hash::Sha256, &ct, 32)[..], &cek);
        let mut bad = ct.clone();
        bad[9] ^= 1;
        assert_eq!(
            u.oaep(Hash::Sha256, Hash::Sha256, &bad, 32),
            u.synthetic(&bad, 32)
        );
    }
}
