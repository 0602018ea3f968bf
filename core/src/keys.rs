//! Key pairs, public keys and key co-generation.
//!
//! Co-generation (mesh-cryptography "Key co-generation"; notes §2):
//!
//! > The device's account keys are the sums: private a = (s_base + s_act) mod L,
//! > public A = B + Act (point addition). The admin knows only the base public
//! > keys; neither party alone knows the final private key.
//!
//! Signing with a combined Ed25519 key uses a secret nonce prefix,
//! SHA-256(a) as the threshold draft gives for aggregate keys. The reference
//! code's prefix-less signing (r = H(message)) would let anyone who sees one
//! signature recover the key; see the `combined_signatures_use_secret_prefix` test.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::derive::{KeyAlg, Seed};
use crate::{montgomery, udf, Error};

/// An Ed25519 signing key: a scalar and a secret nonce prefix.
/// Never printed, zeroized on drop, no accessor for the secret.
pub struct SigningKey {
    esk: ExpandedSecretKey,
    public: VerifyingKey,
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.esk.scalar.zeroize();
        self.esk.hash_prefix.zeroize();
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_key().udf())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An RFC 8032 key from 32 bytes of seed material.
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        let esk = ExpandedSecretKey::from(seed);
        let public = VerifyingKey::from(&esk);
        SigningKey { esk, public }
    }

    /// Derive from a Mesh seed with a key name.
    pub fn derive(seed: &Seed, key_name: &str) -> SigningKey {
        SigningKey::from_seed(&seed.derive(KeyAlg::Ed25519, key_name))
    }

    /// The co-generated key `base + activation`, with its own secret prefix.
    pub fn combine(base: &SigningKey, activation: &SigningKey) -> SigningKey {
        let scalar = base.esk.scalar + activation.esk.scalar;
        let mut prefix: [u8; 32] = Sha256::digest(scalar.as_bytes()).into();
        let esk = ExpandedSecretKey {
            scalar,
            hash_prefix: prefix,
        };
        prefix.zeroize();
        let public = VerifyingKey::from(&esk);
        SigningKey { esk, public }
    }

    /// Sign `msg` (pure Ed25519; verifies with any RFC 8032 verifier).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        raw_sign::<Sha512>(&self.esk, msg, &self.public)
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::Ed25519(self.public)
    }

    /// The verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.public
    }

    /// The secret scalar, for code that must hand the key to another
    /// library's key type (ssh, OpenPGP). Callers keep it in a zeroizing buffer.
    pub fn scalar_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.esk.scalar.to_bytes())
    }
}

/// An X25519 agreement key held as a scalar mod ℓ, so that co-generated
/// keys (sums) work. For a key from seed material the scalar is the RFC 7748
/// clamped value reduced mod ℓ, which agrees with plain X25519 on every
/// point of the prime-order subgroup (the only points we accept).
#[derive(Clone)]
pub struct AgreementKey {
    scalar: Scalar,
    public: EdwardsPoint,
}

impl Drop for AgreementKey {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}

impl std::fmt::Debug for AgreementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgreementKey")
            .field("public", &self.public_key().udf())
            .finish_non_exhaustive()
    }
}

fn clamp(mut k: [u8; 32]) -> [u8; 32] {
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    k
}

impl AgreementKey {
    /// An X25519 key from 32 bytes of scalar material (RFC 7748 §5).
    pub fn from_bytes(bytes: &[u8; 32]) -> AgreementKey {
        let mut c = clamp(*bytes);
        let scalar = Scalar::from_bytes_mod_order(c);
        c.zeroize();
        AgreementKey {
            scalar,
            public: EdwardsPoint::mul_base(&scalar),
        }
    }

    /// Derive from a Mesh seed with a key name.
    pub fn derive(seed: &Seed, key_name: &str) -> AgreementKey {
        AgreementKey::from_bytes(&seed.derive(KeyAlg::X25519, key_name))
    }

    /// A fresh random key.
    pub fn generate() -> AgreementKey {
        let mut b = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b[..]);
        AgreementKey::from_bytes(&b)
    }

    /// The co-generated key `base + activation`.
    pub fn combine(base: &AgreementKey, activation: &AgreementKey) -> AgreementKey {
        let scalar = base.scalar + activation.scalar;
        AgreementKey {
            scalar,
            public: EdwardsPoint::mul_base(&scalar),
        }
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::X25519(self.public)
    }

    /// X25519 agreement with a peer's u coordinate. Refuses points outside
    /// the prime-order subgroup (they would leak the scalar mod 8) and an
    /// all-zero result.
    pub fn agree(&self, peer_u: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
        let m = MontgomeryPoint(*peer_u);
        let ok = m
            .to_edwards(0)
            .map(|e| e.is_torsion_free() && !e.is_small_order())
            .unwrap_or(false);
        if !ok {
            return Err(Error::BadKey(
                "X25519 point outside the prime-order group".into(),
            ));
        }
        let shared = Zeroizing::new((m * self.scalar).to_bytes());
        if shared.iter().all(|b| *b == 0) {
            return Err(Error::BadKey("X25519 agreement gave zero".into()));
        }
        Ok(shared)
    }
}

/// A public key: what profiles, connections and envelopes carry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519 verifying key.
    Ed25519(VerifyingKey),
    /// X25519 key, held as the Edwards point so that keys can be added.
    X25519(EdwardsPoint),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.alg().name(), self.udf())
    }
}

impl PublicKey {
    /// The algorithm.
    pub fn alg(&self) -> KeyAlg {
        match self {
            PublicKey::Ed25519(_) => KeyAlg::Ed25519,
            PublicKey::X25519(_) => KeyAlg::X25519,
        }
    }

    /// Wire encoding: 32 bytes for Ed25519, the 33-byte extended Montgomery
    /// form for X25519 (as the reference code puts keys on the wire).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKey::X25519(p) => montgomery::encode(p).to_vec(),
        }
    }

    /// Parse the wire encoding. Keys that passed every check are kept in a
    /// bounded memo ([`decoded`]): a view that a long-running agent builds
    /// again decodes only the keys it has not seen.
    pub fn from_bytes(alg: KeyAlg, b: &[u8]) -> Result<PublicKey, Error> {
        if let Some(k) = decoded::get(alg, b) {
            return Ok(k);
        }
        let k = Self::decode(alg, b)?;
        decoded::put(alg, b, k);
        Ok(k)
    }

    fn decode(alg: KeyAlg, b: &[u8]) -> Result<PublicKey, Error> {
        match alg {
            KeyAlg::Ed25519 => {
                let arr: [u8; 32] = b
                    .try_into()
                    .map_err(|_| Error::BadKey(format!("Ed25519 key of {} bytes", b.len())))?;
                let vk = VerifyingKey::from_bytes(&arr)
                    .map_err(|_| Error::BadKey("not an Ed25519 point".into()))?;
                if vk.is_weak() {
                    return Err(Error::BadKey("weak Ed25519 key".into()));
                }
                Ok(PublicKey::Ed25519(vk))
            }
            KeyAlg::X25519 => {
                let arr: [u8; 33] = b.try_into().map_err(|_| {
                    Error::BadKey(format!(
                        "X25519 key of {} bytes, want 33 (extended)",
                        b.len()
                    ))
                })?;
                let p = montgomery::decode(&arr)
                    .ok_or_else(|| Error::BadKey("not an X25519 point".into()))?;
                if !p.is_torsion_free() || p.is_small_order() {
                    return Err(Error::BadKey(
                        "X25519 key outside the prime-order group".into(),
                    ));
                }
                Ok(PublicKey::X25519(p))
            }
        }
    }

    /// The bytes a fingerprint covers: the Ed25519 key, or the X25519 u
    /// coordinate alone (the reference's X25519 vector fingerprints the
    /// 32-byte key; u is all that agreement uses, and the sign byte is
    /// covered by the signature of whatever object carries the key).
    fn fingerprinted(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKey::X25519(p) => p.to_montgomery().to_bytes().to_vec(),
        }
    }

    /// The key's binary fingerprint (65 bytes).
    pub fn fingerprint(&self) -> Vec<u8> {
        udf::key_fingerprint(&self.fingerprinted())
    }

    /// The key's UDF (`Udf`/`kid`), 140 bits.
    pub fn udf(&self) -> String {
        udf::key_udf(&self.fingerprinted())
    }

    /// Point sum: what an administrator computes to learn a co-generated
    /// public key without either private contribution.
    pub fn combine(&self, other: &PublicKey) -> Result<PublicKey, Error> {
        match (self, other) {
            (PublicKey::Ed25519(a), PublicKey::Ed25519(b)) => {
                let pa = CompressedEdwardsY(a.to_bytes()).decompress();
                let pb = CompressedEdwardsY(b.to_bytes()).decompress();
                match (pa, pb) {
                    (Some(pa), Some(pb)) => {
                        let sum = (pa + pb).compress().to_bytes();
                        VerifyingKey::from_bytes(&sum)
                            .map(PublicKey::Ed25519)
                            .map_err(|_| Error::BadKey("combined key invalid".into()))
                    }
                    _ => Err(Error::BadKey("not an Ed25519 point".into())),
                }
            }
            (PublicKey::X25519(a), PublicKey::X25519(b)) => Ok(PublicKey::X25519(a + b)),
            _ => Err(Error::BadKey(
                "cannot combine keys of different algorithms".into(),
            )),
        }
    }

    /// The X25519 u coordinate (what plain X25519 peers use).
    pub fn x25519_u(&self) -> Result<[u8; 32], Error> {
        match self {
            PublicKey::X25519(p) => Ok(p.to_montgomery().to_bytes()),
            PublicKey::Ed25519(_) => Err(Error::BadKey("an Ed25519 key cannot agree".into())),
        }
    }

    /// Verify an Ed25519 signature (strict: no malleable or small-order forms).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        match self {
            PublicKey::Ed25519(k) => {
                let sig =
                    Signature::from_slice(sig).map_err(|_| Error::BadSignature(self.udf()))?;
                k.verify_strict(msg, &sig)
                    .map_err(|_| Error::BadSignature(self.udf()))
            }
            PublicKey::X25519(_) => Err(Error::BadKey("an X25519 key cannot verify".into())),
        }
    }
}

/// JSON form of a public key (`KeyData` in the schema, with our `Epoch`):
/// `{"Udf": …, "Epoch": n, "PublicParameters": {"PublicKeyECDH": {"crv": …, "Public": b64url}}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyData {
    /// The key.
    pub key: PublicKey,
    /// Rotation epoch: a rotated key replaces the old one without changing identities.
    pub epoch: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyDataJson {
    #[serde(rename = "Udf")]
    udf: String,
    #[serde(rename = "Epoch", default)]
    epoch: u32,
    #[serde(rename = "PublicParameters")]
    params: PublicParametersJson,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicParametersJson {
    #[serde(rename = "PublicKeyECDH")]
    ecdh: EcdhJson,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EcdhJson {
    crv: KeyAlg,
    #[serde(rename = "Public")]
    public: String,
}

impl KeyData {
    /// Key at epoch 0.
    pub fn new(key: PublicKey) -> KeyData {
        KeyData { key, epoch: 0 }
    }

    /// Key at an epoch.
    pub fn with_epoch(key: PublicKey, epoch: u32) -> KeyData {
        KeyData { key, epoch }
    }

    /// The key's UDF.
    pub fn udf(&self) -> String {
        self.key.udf()
    }
}

impl Serialize for KeyData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        KeyDataJson {
            udf: self.key.udf(),
            epoch: self.epoch,
            params: PublicParametersJson {
                ecdh: EcdhJson {
                    crv: self.key.alg(),
                    public: crate::b64::encode(&self.key.to_bytes()),
                },
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeyData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let j = KeyDataJson::deserialize(d)?;
        let bytes = crate::b64::decode(&j.params.ecdh.public).map_err(D::Error::custom)?;
        let key = PublicKey::from_bytes(j.params.ecdh.crv, &bytes).map_err(D::Error::custom)?;
        // The fingerprint is derived data: a mismatch means tampering.
        if !udf::udf_eq(&decoded::udf_of(j.params.ecdh.crv, &bytes, &key), &j.udf) {
            return Err(D::Error::custom(format!(
                "key fingerprint {} does not match its key ({})",
                j.udf,
                key.udf()
            )));
        }
        Ok(KeyData {
            key,
            epoch: j.epoch,
        })
    }
}

/// An ECDSA P-256 key derived from a seed (for S/MIME, where clients need a
/// NIST curve). HKDF output that is not a valid scalar (probability 2^-32)
/// is derived again with `#N` appended to the key name.
pub fn p256_signing_key(seed: &Seed, key_name: &str) -> p256::ecdsa::SigningKey {
    for i in 0u32.. {
        let name = if i == 0 {
            key_name.to_string()
        } else {
            format!("{key_name}#{i}")
        };
        let okm = seed.derive(KeyAlg::Ed25519, &name);
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&okm[..]) {
            return k;
        }
    }
    unreachable!("a valid P-256 scalar is found after a few tries")
}

/// Public keys decoded before, by algorithm and wire bytes. Decoding an
/// X25519 key (a square root, an inversion, a torsion check) is most of what
/// rebuilding an account view costs at 1,000 devices (docs/BENCHMARKS.md);
/// the bytes are public and a hit returns exactly what decoding returned.
/// It caches a pure function of public bytes, so no answer depends on it;
/// kept for the daemon, which rebuilds its view after every sync. Bounded:
/// emptied when full, so memory stays under a few MiB.
mod decoded {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use super::{KeyAlg, PublicKey};

    /// At most this many keys (about 8 MiB).
    const MAX: usize = 32_768;

    /// Whether X25519, and the wire bytes.
    type Slot = (bool, [u8; 33]);
    /// The decoded key, and its fingerprint once asked for: checking a
    /// list's fingerprints hashed 2,000 keys per access list at 1,000
    /// devices.
    type Memo = Mutex<HashMap<Slot, (PublicKey, Option<String>)>>;

    fn memo() -> &'static Memo {
        static M: OnceLock<Memo> = OnceLock::new();
        M.get_or_init(|| Mutex::new(HashMap::new()))
    }

    fn slot(alg: KeyAlg, b: &[u8]) -> Option<Slot> {
        let mut k = [0u8; 33];
        match (alg, b.len()) {
            (KeyAlg::Ed25519, 32) | (KeyAlg::X25519, 33) => {
                k[..b.len()].copy_from_slice(b);
                Some((alg == KeyAlg::X25519, k))
            }
            _ => None,
        }
    }

    pub(super) fn get(alg: KeyAlg, b: &[u8]) -> Option<PublicKey> {
        let k = slot(alg, b)?;
        memo().lock().ok()?.get(&k).map(|(key, _)| *key)
    }

    pub(super) fn put(alg: KeyAlg, b: &[u8], key: PublicKey) {
        let (Some(k), Ok(mut m)) = (slot(alg, b), memo().lock()) else {
            return;
        };
        if m.len() >= MAX {
            m.clear();
        }
        m.insert(k, (key, None));
    }

    /// The UDF of `key`, which was decoded from `b`: kept beside the key
    /// (only for the key decoded from those very bytes).
    pub(super) fn udf_of(alg: KeyAlg, b: &[u8], key: &PublicKey) -> String {
        let k = slot(alg, b);
        let kept = |m: &HashMap<Slot, (PublicKey, Option<String>)>| {
            m.get(k.as_ref()?).filter(|(d, _)| d == key)?.1.clone()
        };
        if let Some(u) = memo().lock().ok().as_deref().and_then(kept) {
            return u;
        }
        let u = key.udf();
        if let (Some(k), Ok(mut m)) = (k, memo().lock()) {
            if let Some((d, f)) = m.get_mut(&k) {
                if d == key {
                    *f = Some(u.clone());
                }
            }
        }
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb32() -> impl Strategy<Value = [u8; 32]> {
        proptest::array::uniform32(any::<u8>())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn combined_ed25519_signs_for_the_sum_of_publics(b in arb32(), a in arb32(), msg in proptest::collection::vec(any::<u8>(), 0..200)) {
            let base = SigningKey::from_seed(&b);
            let act = SigningKey::from_seed(&a);
            let combined = SigningKey::combine(&base, &act);
            // The administrator's view: only public keys.
            let admin_view = base.public_key().combine(&act.public_key()).expect("combine");
            prop_assert_eq!(admin_view, combined.public_key());
            let sig = combined.sign(&msg);
            // Standard strict verifier.
            prop_assert!(combined.verifying_key().verify_strict(&msg, &sig).is_ok());
            prop_assert!(admin_view.verify(&msg, &sig.to_bytes()).is_ok());
        }

        #[test]
        fn combined_x25519_agrees(b in arb32(), a in arb32(), e in arb32()) {
            let base = AgreementKey::from_bytes(&b);
            let act = AgreementKey::from_bytes(&a);
            let combined = AgreementKey::combine(&base, &act);
            let admin_view = base.public_key().combine(&act.public_key()).expect("combine");
            prop_assert_eq!(admin_view, combined.public_key());
            // A plain X25519 peer (x25519-dalek) agrees with the combined key.
            let eph = x25519_dalek::StaticSecret::from(e);
            let eph_pub = x25519_dalek::PublicKey::from(&eph);
            let u = admin_view.x25519_u().expect("u");
            let theirs = eph.diffie_hellman(&x25519_dalek::PublicKey::from(u));
            let ours = combined.agree(eph_pub.as_bytes()).expect("agree");
            prop_assert_eq!(theirs.as_bytes(), &*ours);
            // The wire form round-trips, sign byte included.
            let wire = admin_view.to_bytes();
            prop_assert_eq!(wire.len(), 33);
            prop_assert_eq!(PublicKey::from_bytes(KeyAlg::X25519, &wire).expect("parse"), admin_view);
        }
    }

    #[test]
    fn base_x25519_matches_rfc7748() {
        let k = [7u8; 32];
        let ours = AgreementKey::from_bytes(&k);
        let std_pub = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(k));
        assert_eq!(
            &ours.public_key().x25519_u().expect("u"),
            std_pub.as_bytes()
        );
    }

    #[test]
    fn combined_signatures_use_secret_prefix() {
        // Two keys with the same public scalar sum but different contributions
        // must still be deterministic per key; and the nonce must not be the
        // message-only r = H(m) of the reference code.
        let base = SigningKey::from_seed(&[1u8; 32]);
        let act = SigningKey::from_seed(&[2u8; 32]);
        let c = SigningKey::combine(&base, &act);
        let msg = b"message";
        let sig = c.sign(msg);
        let r_msg_only = Scalar::from_hash(Sha512::new().chain_update(msg));
        let r_point = EdwardsPoint::mul_base(&r_msg_only).compress().to_bytes();
        assert_ne!(&sig.to_bytes()[..32], &r_point[..]);
        assert_eq!(sig, c.sign(msg));
    }

    /// The memo returns what decoding returns, for both algorithms, and
    /// never turns a refused encoding into a key (a neighbour of a cached
    /// key, the same bytes under the other algorithm, a torsion point).
    #[test]
    fn decoded_keys_memo_is_exact() {
        let x = AgreementKey::from_bytes(&[7u8; 32]).public_key();
        let e = SigningKey::from_seed(&[8u8; 32]).public_key();
        for k in [x, e] {
            let b = k.to_bytes();
            for _ in 0..2 {
                assert_eq!(PublicKey::from_bytes(k.alg(), &b).expect("key"), k);
                assert_eq!(PublicKey::decode(k.alg(), &b).expect("key"), k);
                assert_eq!(decoded::udf_of(k.alg(), &b, &k), k.udf());
            }
            // A fingerprint that is not the key's is refused, kept or not.
            let mut j = serde_json::to_value(KeyData::new(k)).expect("json");
            let other = if k == x { e } else { x };
            j["Udf"] = serde_json::Value::String(other.udf());
            let err = serde_json::from_value::<KeyData>(j).expect_err("refused");
            assert!(err.to_string().contains("does not match"), "{err}");
        }
        let mut bad_sign = x.to_bytes();
        bad_sign[32] = 1;
        let short = &e.to_bytes()[..31];
        let mut torsion = [0u8; 33];
        torsion[0] = 1; // u = 1: a point of order 4
        let refused: [(KeyAlg, &[u8]); 4] = [
            (KeyAlg::X25519, &bad_sign),
            (KeyAlg::Ed25519, short),
            (KeyAlg::X25519, &e.to_bytes()),
            (KeyAlg::X25519, &torsion),
        ];
        for (alg, b) in refused {
            for _ in 0..2 {
                assert!(PublicKey::from_bytes(alg, b).is_err(), "{alg:?} {b:?}");
            }
        }
    }

    #[test]
    fn agreement_refuses_small_order_points() {
        let k = AgreementKey::from_bytes(&[9u8; 32]);
        assert!(k.agree(&[0u8; 32]).is_err());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(k.agree(&one).is_err());
    }

    #[test]
    fn keydata_json_checks_fingerprint() {
        let k = SigningKey::from_seed(&[3u8; 32]);
        let kd = KeyData::with_epoch(k.public_key(), 2);
        let j = serde_json::to_string(&kd).expect("json");
        let back: KeyData = serde_json::from_str(&j).expect("parse");
        assert_eq!(back, kd);
        let other = SigningKey::from_seed(&[4u8; 32]).public_key().udf();
        let bad = j.replace(&kd.udf(), &other);
        let err = serde_json::from_str::<KeyData>(&bad).expect_err("tampered");
        assert!(err.to_string().contains("does not match"), "{err}");
    }
}
