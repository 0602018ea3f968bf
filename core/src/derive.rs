//! Key derivation from secret seeds (mesh-udf "Secret seed" and the
//! reference code's `KeySeed`; notes `mesh-spec.md` §2).
//!
//! > IKM = the seed's BDS with its first two bytes overwritten by the target
//! > algorithm's code; salt = empty; info = the original two-byte key spec ||
//! > UTF-8(keyName); HKDF-SHA-512, L = 32 for X25519 and Ed25519.
//!
//! Hand-written on top of `hkdf`: the IKM rule is Mesh's own.

use hkdf::Hkdf;
use sha2::Sha512;
use zeroize::Zeroizing;

use crate::udf::{self, UdfType};
use crate::Error;

/// Key-spec codes (mesh-udf, "Secret seed" key-spec table).
pub mod spec {
    /// Any algorithm.
    pub const ANY: u16 = 0;
    /// X25519 (RFC 7748).
    pub const X25519: u16 = 1;
    /// Ed25519 (RFC 8032).
    pub const ED25519: u16 = 3;
    /// A device profile seed.
    pub const MESH_PROFILE_DEVICE: u16 = 0x0100;
    /// A device activation seed (older name).
    pub const MESH_ACTIVATION_DEVICE: u16 = 0x0101;
    /// An account profile seed (escrowed with Shamir shares).
    pub const MESH_PROFILE_ACCOUNT: u16 = 0x0102;
    /// A per-device activation seed issued by an administrator.
    pub const MESH_ACTIVATION_ACCOUNT: u16 = 0x0103;
    /// An administrator epoch's online seed (our extension: docs/DESIGN.md,
    /// "A stolen administrator").
    pub const MESH_ONLINE_ACCOUNT: u16 = 0x0104;
}

/// The two curves Mesh uses (decision 1 of the spec notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyAlg {
    /// Ed25519 signatures.
    Ed25519,
    /// X25519 key agreement.
    X25519,
}

impl KeyAlg {
    /// The algorithm code written over the first two IKM bytes.
    pub fn code(self) -> u16 {
        match self {
            KeyAlg::Ed25519 => spec::ED25519,
            KeyAlg::X25519 => spec::X25519,
        }
    }

    /// JOSE-style curve name used in JSON (`crv`).
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::Ed25519 => "Ed25519",
            KeyAlg::X25519 => "X25519",
        }
    }
}

/// A secret seed: key spec plus the random bytes. Zeroized on drop, never printed.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub struct Seed {
    #[zeroize(skip)]
    spec: u16,
    random: Vec<u8>,
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seed")
            .field("spec", &format_args!("{:#06x}", self.spec))
            .finish_non_exhaustive()
    }
}

impl Seed {
    /// A fresh 256-bit seed of the given key spec.
    pub fn generate(spec: u16) -> Seed {
        let mut random = vec![0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
        Seed { spec, random }
    }

    /// Seed from its parts (the random part must be 16 bytes or more).
    pub fn from_parts(spec: u16, random: &[u8]) -> Result<Seed, Error> {
        if random.len() < 16 {
            return Err(Error::Malformed(format!(
                "a secret seed needs at least 128 random bits, got {}",
                random.len() * 8
            )));
        }
        Ok(Seed {
            spec,
            random: random.to_vec(),
        })
    }

    /// Parse a `Z…` UDF string.
    pub fn from_udf(text: &str) -> Result<Seed, Error> {
        let b = Zeroizing::new(udf::decode_typed(text, UdfType::Seed)?);
        if b.len() < 3 + 16 {
            return Err(Error::Malformed("secret seed UDF is too short".into()));
        }
        Seed::from_parts(u16::from_be_bytes([b[1], b[2]]), &b[3..])
    }

    /// The binary UDF `0xC8 || spec || random`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        // Sized once: a growing Vec would leave a copy in a freed buffer.
        let mut b = Zeroizing::new(Vec::with_capacity(3 + self.random.len()));
        b.push(UdfType::Seed.code());
        b.extend_from_slice(&self.spec.to_be_bytes());
        b.extend_from_slice(&self.random);
        b
    }

    /// The presented `Z…` UDF (a secret: handle with care).
    pub fn to_udf(&self) -> Zeroizing<String> {
        Zeroizing::new(udf::presentation_whole(&self.to_bytes()))
    }

    /// The key spec of this seed.
    pub fn spec(&self) -> u16 {
        self.spec
    }

    /// The random part. (Escrow splits the whole binary UDF, [`Seed::to_bytes`],
    /// as the reference does.)
    pub fn random(&self) -> &[u8] {
        &self.random
    }

    /// `KeySeed(seed, alg, keyName)`: 32 bytes of key material.
    pub fn derive(&self, alg: KeyAlg, key_name: &str) -> Zeroizing<[u8; 32]> {
        let mut ikm = Zeroizing::new(Vec::with_capacity(2 + self.random.len()));
        ikm.extend_from_slice(&alg.code().to_be_bytes());
        ikm.extend_from_slice(&self.random);
        let mut info = self.spec.to_be_bytes().to_vec();
        info.extend_from_slice(key_name.as_bytes());
        let hk = Hkdf::<Sha512>::new(None, &ikm);
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA512 output length.
        let _ = hk.expand(&info, &mut okm[..]);
        okm
    }
}

/// Key names: Type, Actor and Operation concatenated with no separator
/// (`BaseDeviceEncrypt`, `CompleteAccountEscrow`, …); the underscore form
/// does not reproduce the vectors.
///
/// Keys past their first epoch append `.N` (our extension, PROTOCOL.md §Keys).
pub fn key_name(kind: &str, actor: &str, operation: &str, epoch: u32) -> String {
    if epoch == 0 {
        format!("{kind}{actor}{operation}")
    } else {
        format!("{kind}{actor}{operation}.{epoch}")
    }
}
