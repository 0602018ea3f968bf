//! RSA PKCS#1 v1.5 key transport with implicit rejection.
//!
//! A CMS content key is always of one known length (the content
//! algorithm's). The padded block is checked for exactly that layout in
//! constant time, `00 02 PS 00 KEY` with PS at least 8 non-zero bytes, and
//! the key is then chosen, byte by byte and without a branch, between the
//! block's last bytes and a synthetic key: HMAC-SHA256 over the ciphertext,
//! keyed with a digest of the private exponent (the key derivation key of
//! draft-irtf-cfrg-rsa-guidance's implicit rejection). A forged ciphertext
//! always gives the same wrong key, so retrying it shows nothing either.
//!
//! The raw RSA operation is the `rsa` crate's (blinded, with the CRT result
//! checked); its timing is the one thing here that depends on the
//! ciphertext (RUSTSEC-2023-0071, "Marvin": not fixed in any `rsa` release
//! this workspace can use; docs/DESIGN.md).

use hmac::{Hmac, Mac};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

/// Separates this use of the key derivation key from any other.
const LABEL: &[u8] = b"Mesh CMS content key implicit rejection";

/// The key a ciphertext that does not unwrap gives instead: `len` bytes
/// (at most 32), a function of the private key and the ciphertext only.
pub(crate) fn synthetic_key(key: &rsa::RsaPrivateKey, ct: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let d = Zeroizing::new(key.d().to_bytes_be());
    let kdk = Zeroizing::new(
        Sha256::new_with_prefix(b"Mesh RSA KDK")
            .chain_update(&*d)
            .finalize(),
    );
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&kdk).expect("HMAC takes keys of any length");
    mac.update(LABEL);
    mac.update(&[u8::try_from(len).unwrap_or(u8::MAX)]);
    mac.update(ct);
    let full = Zeroizing::new(mac.finalize().into_bytes());
    Zeroizing::new(full[..len.min(full.len())].to_vec())
}

/// The content key of `synthetic`'s length from a PKCS#1 v1.5 ciphertext:
/// the real one when the block has exactly that layout, `synthetic`
/// otherwise, chosen without a branch on the block.
pub(crate) fn pkcs1v15_unwrap(
    key: &rsa::RsaPrivateKey,
    ct: &[u8],
    synthetic: &[u8],
) -> Zeroizing<Vec<u8>> {
    let k = key.size();
    let len = synthetic.len();
    // The ciphertext's length and the key's are public: no secret in them.
    let Some(em) = raw_decrypt(key, ct).filter(|_| ct.len() == k && k >= len + 11) else {
        return Zeroizing::new(synthetic.to_vec());
    };
    let sep = k - len - 1;
    let mut valid = em[0].ct_eq(&0) & em[1].ct_eq(&2) & em[sep].ct_eq(&0);
    for b in &em[2..sep] {
        valid &= !b.ct_eq(&0);
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (o, (s, e)) in out.iter_mut().zip(synthetic.iter().zip(&em[sep + 1..])) {
        *o = u8::conditional_select(s, e, valid);
    }
    out
}

/// `ct^d mod n` as `k` bytes, or `None` when `ct` is not below `n`.
fn raw_decrypt(key: &rsa::RsaPrivateKey, ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let c = rsa::BigUint::from_bytes_be(ct);
    let mut m = rsa::hazmat::rsa_decrypt_and_check(key, Some(&mut rand_core::OsRng), &c).ok()?;
    let k = key.size();
    let bytes = Zeroizing::new(m.to_bytes_be());
    m.zeroize();
    let mut em = Zeroizing::new(vec![0u8; k]);
    let at = k.checked_sub(bytes.len())?;
    em[at..].copy_from_slice(&bytes);
    Some(em)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> rsa::RsaPrivateKey {
        // Any key will do; 1,024 bits keeps the test fast.
        rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).expect("key")
    }

    /// Encrypt the raw block `em` (k bytes) with the public key.
    fn raw(key: &rsa::RsaPrivateKey, em: &[u8]) -> Vec<u8> {
        let m = rsa::BigUint::from_bytes_be(em);
        let c = rsa::hazmat::rsa_encrypt(&key.to_public_key(), &m).expect("encrypt");
        let mut out = c.to_bytes_be();
        while out.len() < key.size() {
            out.insert(0, 0);
        }
        out
    }

    fn block(k: usize, ps: u8, sep: u8, cek: &[u8]) -> Vec<u8> {
        let mut em = vec![0u8, 2];
        em.resize(k - cek.len() - 1, ps);
        em.push(sep);
        em.extend_from_slice(cek);
        em
    }

    #[test]
    fn a_valid_block_unwraps_and_every_other_gives_the_synthetic_key() {
        let key = key();
        let k = key.size();
        let cek = [7u8; 32];
        let good = raw(&key, &block(k, 0x55, 0, &cek));
        let s = synthetic_key(&key, &good, 32);
        assert_eq!(&pkcs1v15_unwrap(&key, &good, &s)[..], &cek);
        // The same ciphertext through the rsa crate's own check.
        let own = key.decrypt(rsa::Pkcs1v15Encrypt, &good).expect("rsa");
        assert_eq!(own, cek);
        let mut wrong_type = block(k, 0x55, 0, &cek);
        wrong_type[1] = 1;
        let mut zero_in_ps = block(k, 0x55, 0, &cek);
        zero_in_ps[5] = 0;
        let short_key = block(k, 0x55, 0, &[7u8; 16]);
        let bad: Vec<Vec<u8>> = vec![
            raw(&key, &wrong_type),
            raw(&key, &block(k, 0x55, 1, &cek)),
            raw(&key, &zero_in_ps),
            raw(&key, &short_key),
            good[1..].to_vec(),
            vec![0xff; k],
        ];
        for ct in &bad {
            let s = synthetic_key(&key, ct, 32);
            assert_eq!(pkcs1v15_unwrap(&key, ct, &s), s);
            // Deterministic, and another ciphertext's differs.
            assert_eq!(synthetic_key(&key, ct, 32), s);
            assert_ne!(synthetic_key(&key, &good, 32), s);
        }
        // The 16-byte key of a 16-byte layout does unwrap.
        let ct = raw(&key, &short_key);
        let s = synthetic_key(&key, &ct, 16);
        assert_eq!(&pkcs1v15_unwrap(&key, &ct, &s)[..], &[7u8; 16]);
    }
}
