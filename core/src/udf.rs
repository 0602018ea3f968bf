//! Uniform Data Fingerprints (draft-hallambaker-mesh-udf; notes `mesh-spec.md` §3).
//!
//! > "A UDF is a binary string: `TypeByte || BDS`", presented as RFC 4648
//! > Base32 upper case with a dash every four characters, truncated to the
//! > requested precision.
//!
//! Where the draft prose and the reference code differ we follow the code,
//! because its output is what the published vectors (and every peer) show:
//! compression counts trailing zero bits of the type-tagged digest, key
//! fingerprints use the content type `"PKIXKey"`, and a profile UDF carries
//! its type byte twice.
//!
//! Hand-written: no crate implements UDF. Base32 is hand-written too, because
//! UDF presentations are truncated at arbitrary bit counts (30 or 28
//! characters are not RFC 4648-canonical lengths), which general Base32
//! decoders reject.

use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use sha3::Sha3_512;

use crate::Error;

/// Default presentation precision of the reference code: 140 bits, 28 characters.
pub const DEFAULT_BITS: usize = 140;
/// Smallest precision we present or accept for a digest UDF.
pub const MIN_BITS: usize = 100;
/// Largest precision of a digest presentation.
pub const MAX_BITS: usize = 440;

/// UDF type bytes (mesh-udf, "Type identifier" table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UdfType {
    /// 0: HMAC-SHA2-512 authenticator (`A`).
    AuthenticatorSha2,
    /// 1: HMAC-SHA3-512 authenticator (`A`).
    AuthenticatorSha3,
    /// 32: encryption key (`E`).
    EncryptionKey,
    /// 80–84: SHA3-512 content digest with compression 0–4 (`K`).
    DigestSha3,
    /// 96–100: SHA2-512 content digest with compression 0–4 (`M`).
    DigestSha2,
    /// 104: nonce (`N`).
    Nonce,
    /// 112: OID-identified DER sequence (`O`).
    Oid,
    /// 144: Shamir share (`S`).
    Share,
    /// 200: secret seed for key derivation (`Z`).
    Seed,
}

impl UdfType {
    /// The base type byte.
    pub fn code(self) -> u8 {
        match self {
            UdfType::AuthenticatorSha2 => 0,
            UdfType::AuthenticatorSha3 => 1,
            UdfType::EncryptionKey => 32,
            UdfType::DigestSha3 => 80,
            UdfType::DigestSha2 => 96,
            UdfType::Nonce => 104,
            UdfType::Oid => 112,
            UdfType::Share => 144,
            UdfType::Seed => 200,
        }
    }

    /// Classify a type byte.
    pub fn from_byte(b: u8) -> Option<UdfType> {
        Some(match b {
            0 => UdfType::AuthenticatorSha2,
            1 => UdfType::AuthenticatorSha3,
            32 => UdfType::EncryptionKey,
            80..=84 => UdfType::DigestSha3,
            96..=100 => UdfType::DigestSha2,
            104 => UdfType::Nonce,
            112 => UdfType::Oid,
            144 => UdfType::Share,
            200 => UdfType::Seed,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            UdfType::AuthenticatorSha2 | UdfType::AuthenticatorSha3 => "authenticator",
            UdfType::EncryptionKey => "encryption key",
            UdfType::DigestSha3 | UdfType::DigestSha2 => "content digest",
            UdfType::Nonce => "nonce",
            UdfType::Oid => "OID",
            UdfType::Share => "share",
            UdfType::Seed => "secret seed",
        }
    }
}

impl std::fmt::Display for UdfType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Digest algorithm of a content UDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestAlg {
    /// SHA2-512 (type `M`), the default.
    #[default]
    Sha2,
    /// SHA3-512 (type `K`).
    Sha3,
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Base32 of the first `bits` bits of `data` (rounded up to whole characters),
/// with a dash every four characters.
pub fn presentation_bits(data: &[u8], bits: usize) -> String {
    let bits = bits.min(data.len() * 8);
    let chars = bits.div_ceil(5);
    let mut out = String::with_capacity(chars + chars / 4);
    for i in 0..chars {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let mut v = 0u8;
        for j in 0..5 {
            let bit = i * 5 + j;
            let b = data
                .get(bit / 8)
                .map(|byte| (byte >> (7 - bit % 8)) & 1)
                .unwrap_or(0);
            v = (v << 1) | b;
        }
        out.push(char::from(ALPHABET[usize::from(v)]));
    }
    out
}

/// Present a fixed-length UDF (key, nonce, seed, share) whole.
pub fn presentation_whole(data: &[u8]) -> String {
    presentation_bits(data, data.len() * 8)
}

/// Present a digest UDF at `bits` precision: a multiple of 20 bits (one
/// four-character group) between [`MIN_BITS`] and [`MAX_BITS`].
pub fn presentation(data: &[u8], bits: usize) -> Result<String, Error> {
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        return Err(Error::Precision(bits));
    }
    Ok(presentation_bits(data, bits.div_ceil(20) * 20))
}

/// Decode a presented UDF into the bytes it carries (whole bytes only; the
/// trailing bits of a truncated presentation are dropped). Dashes are ignored,
/// lower case is accepted.
pub fn decode(text: &str) -> Result<Vec<u8>, Error> {
    let mut acc: u32 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    for c in text.trim().chars() {
        if c == '-' {
            continue;
        }
        let u = c.to_ascii_uppercase();
        let v = match u {
            'A'..='Z' => u32::from(u) - u32::from('A'),
            '2'..='7' => u32::from(u) - u32::from('2') + 26,
            _ => {
                // What was decoded may be a secret (a seed, a share).
                zeroize::Zeroize::zeroize(&mut out);
                return Err(Error::Malformed(format!("'{c}' is not a Base32 character")));
            }
        };
        acc = (acc << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push(u8::try_from((acc >> nbits) & 0xff).unwrap_or(0));
        }
        acc &= (1 << nbits) - 1;
    }
    if out.is_empty() {
        return Err(Error::Malformed("empty UDF".into()));
    }
    Ok(out)
}

/// Decode and check the type byte.
pub fn decode_typed(text: &str, want: UdfType) -> Result<Vec<u8>, Error> {
    let mut bytes = decode(text)?;
    let got = UdfType::from_byte(bytes[0]);
    if got != Some(want) {
        // A secret of another type (a seed given as a share) is still secret.
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(Error::WrongType {
            expected: want.name(),
            found: got.map(UdfType::name).unwrap_or(crate::error::UNKNOWN_TYPE),
        });
    }
    Ok(bytes)
}

/// Compression level from the trailing zero bits of the type-tagged digest
/// (reference code; the draft prose about "the first 8 bytes" is wrong).
fn compression(tcdv: &[u8]) -> u8 {
    let mut zeros = 0u32;
    for b in tcdv.iter().rev() {
        if *b == 0 {
            zeros += 8;
        } else {
            zeros += b.trailing_zeros();
            break;
        }
    }
    match zeros {
        z if z >= 50 => 4,
        z if z >= 40 => 3,
        z if z >= 30 => 2,
        z if z >= 20 => 1,
        _ => 0,
    }
}

fn type_tagged<D: Digest>(content_type: &str, data: &[u8]) -> Vec<u8> {
    let inner = D::digest(data);
    let mut h = D::new();
    h.update(content_type.as_bytes());
    h.update(b":");
    h.update(inner);
    h.finalize().to_vec()
}

/// Binary content-digest UDF: `(type + compression) || H(ct || ':' || H(data))`.
///
/// > "TCDV = H( UTF8(content-type) || ':' || H(data) )" (mesh-udf, content digest)
pub fn content_digest(alg: DigestAlg, content_type: &str, data: &[u8]) -> Vec<u8> {
    let (base, tcdv) = match alg {
        DigestAlg::Sha2 => (
            UdfType::DigestSha2.code(),
            type_tagged::<Sha512>(content_type, data),
        ),
        DigestAlg::Sha3 => (
            UdfType::DigestSha3.code(),
            type_tagged::<Sha3_512>(content_type, data),
        ),
    };
    let mut out = Vec::with_capacity(65);
    out.push(base + compression(&tcdv));
    out.extend_from_slice(&tcdv);
    out
}

/// Presented content-digest UDF at `bits` precision.
pub fn content_digest_string(
    alg: DigestAlg,
    content_type: &str,
    data: &[u8],
    bits: usize,
) -> Result<String, Error> {
    presentation(&content_digest(alg, content_type, data), bits)
}

/// Authenticator UDF (HMAC-SHA2-512) keyed by a string.
///
/// > key = HKDF-SHA512(IKM = UTF8(keyString), salt = "KeyedUDFMaster",
/// > info = "KeyedUDFExpand", L = 64);
/// > MAC = HMAC-SHA512(key, UTF8(ct) || ':' || SHA512(data)); UDF = 0x00 || MAC
pub fn authenticator(key: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    let hk = hkdf::Hkdf::<Sha512>::new(Some(b"KeyedUDFMaster"), key.as_bytes());
    let mut k = zeroize::Zeroizing::new([0u8; 64]);
    // 64 bytes is far below HKDF-SHA512's 255*64 limit.
    let _ = hk.expand(b"KeyedUDFExpand", &mut k[..]);
    let mut out = vec![UdfType::AuthenticatorSha2.code()];
    out.extend_from_slice(&hmac_sha512(
        &k[..],
        &[content_type.as_bytes(), b":", &Sha512::digest(data)],
    ));
    out
}

/// HMAC-SHA512 over the concatenation of `parts`.
pub fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// An `A` UDF of a raw MAC value (type byte 0).
pub fn authenticator_of_mac(mac: &[u8]) -> Vec<u8> {
    let mut out = vec![UdfType::AuthenticatorSha2.code()];
    out.extend_from_slice(mac);
    out
}

fn random_typed(t: u8, prefix: &[u8], bits: usize) -> Result<Vec<u8>, Error> {
    if bits < 128 || !bits.is_multiple_of(8) || bits > 512 {
        return Err(Error::Malformed(format!(
            "{bits} bits: a random value needs 128 to 512 bits, a multiple of 8"
        )));
    }
    let mut out = vec![t];
    out.extend_from_slice(prefix);
    let start = out.len();
    out.resize(start + bits / 8, 0);
    OsRng.fill_bytes(&mut out[start..]);
    Ok(out)
}

/// A fresh nonce UDF: `0x68 || random`.
pub fn nonce(bits: usize) -> Result<Vec<u8>, Error> {
    random_typed(UdfType::Nonce.code(), &[], bits)
}

/// A fresh encryption-key UDF: `0x20 || random`.
pub fn encryption_key(bits: usize) -> Result<Vec<u8>, Error> {
    random_typed(UdfType::EncryptionKey.code(), &[], bits)
}

/// A fresh secret seed UDF: `0xC8 || keyspec (big-endian) || random`.
pub fn secret_seed(spec: u16, bits: usize) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
    random_typed(UdfType::Seed.code(), &spec.to_be_bytes(), bits).map(zeroize::Zeroizing::new)
}

/// The DER SubjectPublicKeyInfo that the reference code fingerprints for every
/// CFRG curve: OID 1.3.101.112 (Ed25519's, for all four curves) and the key
/// wrapped in an extra OCTET STRING.
pub fn pkix_key_der(public: &[u8]) -> Vec<u8> {
    // Keys here are 32 or 33 bytes, so every length fits one DER byte.
    let klen = u8::try_from(public.len()).unwrap_or(0);
    let mut der = vec![0x30, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70];
    der.extend_from_slice(&[0x03, klen + 3, 0x00, 0x04, klen]);
    der.extend_from_slice(public);
    der[1] = u8::try_from(der.len() - 2).unwrap_or(0);
    der
}

/// Binary key fingerprint: UDF-SHA2-512 of [`pkix_key_der`] with content type `"PKIXKey"`.
pub fn key_fingerprint(public: &[u8]) -> Vec<u8> {
    content_digest(DigestAlg::Sha2, "PKIXKey", &pkix_key_der(public))
}

/// Presented key fingerprint at the default precision.
pub fn key_udf(public: &[u8]) -> String {
    presentation_bits(&key_fingerprint(public), DEFAULT_BITS)
}

/// The 65-byte value `V` of a profile: the "UdfList" digest of its root key UDFs.
///
/// > h = SHA512( for each root: len(root) as 1 byte || root );
/// > TCDV = SHA512("UdfList:" || h); V = (0x60 + compression) || TCDV
pub fn profile_value(roots: &[Vec<u8>]) -> Vec<u8> {
    let mut h = Sha512::new();
    for r in roots {
        h.update([u8::try_from(r.len()).unwrap_or(u8::MAX)]);
        h.update(r);
    }
    let h = h.finalize();
    let mut t = Sha512::new();
    t.update(b"UdfList:");
    t.update(h);
    let tcdv = t.finalize();
    let mut out = vec![UdfType::DigestSha2.code() + compression(&tcdv)];
    out.extend_from_slice(&tcdv);
    out
}

/// Presented profile UDF: Base32 of `0x60 || V` (the type byte appears twice,
/// which is why every profile UDF starts `MBQ`).
pub fn profile_udf(roots: &[Vec<u8>]) -> String {
    let mut b = vec![UdfType::DigestSha2.code()];
    b.extend_from_slice(&profile_value(roots));
    presentation_bits(&b, DEFAULT_BITS)
}

/// `EnvelopeId` / `ResponseId` of a message: UDF-SHA2 of the message id's BDS
/// with the content types `application/mmm/envelopeid` and `.../responseid`.
pub fn message_digest_id(message_id: &str, content_type: &str) -> Result<String, Error> {
    let bytes = decode(message_id)?;
    Ok(presentation_bits(
        &content_digest(DigestAlg::Sha2, content_type, &bytes[1..]),
        DEFAULT_BITS,
    ))
}

/// Constant-time equality of two presented UDFs (case and dashes ignored).
/// Compared as it goes, without copies: an access list of 1,000 devices
/// compares UDFs a million times when it checks its successor.
pub fn udf_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    fn norm(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes()
            .filter(|c| *c != b'-')
            .map(|c| c.to_ascii_uppercase())
    }
    let (mut a, mut b) = (norm(a), norm(b));
    let mut same = subtle::Choice::from(1);
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) => same &= x.ct_eq(&y),
            (None, None) => return bool::from(same),
            // Lengths are not secret.
            _ => return false,
        }
    }
}

/// The form [`udf_eq`] compares (case and dashes ignored), for keying maps.
pub fn udf_key(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udf_eq_ignores_case_and_dashes_only() {
        let cases = [
            ("MB2G-K6DU", "mb2gk6du", true),
            ("MB2GK6DU", "M-B-2-G-K-6-D-U", true),
            ("MB2G-K6DU", "MB2G-K6DV", false),
            ("MB2G-K6DU", "MB2G-K6D", false),
            ("MB2G-K6D", "MB2G-K6DU", false),
            ("", "-", true),
            ("", "A", false),
        ];
        for (a, b, same) in cases {
            assert_eq!(udf_eq(a, b), same, "{a} vs {b}");
            assert_eq!(udf_key(a) == udf_key(b), same, "keys of {a} and {b}");
        }
    }

    #[test]
    fn base32_round_trip_whole_bytes() {
        let data = [0xC8u8, 0x00, 0x01, 0x0D, 0x3D, 0x19, 0xDE];
        let s = presentation_whole(&data);
        assert_eq!(decode(&s).expect("decodes"), data);
    }

    #[test]
    fn precision_limits() {
        let d = content_digest(DigestAlg::Sha2, "text/plain", b"x");
        assert!(matches!(presentation(&d, 99), Err(Error::Precision(99))));
        assert!(matches!(presentation(&d, 441), Err(Error::Precision(441))));
        assert_eq!(presentation(&d, 440).expect("440").len(), 88 + 21);
        // 128 bits rounds up to the next whole group (140 bits).
        assert_eq!(
            presentation(&d, 128).expect("128"),
            presentation(&d, 140).expect("140")
        );
    }

    #[test]
    fn decode_rejects_junk() {
        assert!(decode("MB01").is_err());
        assert!(decode("").is_err());
        assert!(matches!(
            decode_typed("MDDK-7N6A-727A-JZNO-STRX", UdfType::Share),
            Err(Error::WrongType { .. })
        ));
    }

    #[test]
    fn compression_counts_trailing_zero_bits() {
        let mut v = vec![0xffu8; 64];
        assert_eq!(compression(&v), 0);
        v[63] = 0;
        v[62] = 0;
        v[61] = 0xf0; // 20 trailing zero bits
        assert_eq!(compression(&v), 1);
        v[61] = 0;
        v[60] = 0;
        assert_eq!(compression(&v), 2);
        v[59] = 0;
        assert_eq!(compression(&v), 3);
    }
}
