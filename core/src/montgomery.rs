//! The "extended" Montgomery encoding of X25519 public keys (mesh-cryptography;
//! threshold draft; notes `mesh-spec.md` §2):
//!
//! > X25519 uses 33 bytes: u in little-endian, plus a final byte set to 0x80
//! > when v is odd, else 0x00. This lets point addition work on Montgomery curves.
//!
//! Co-generated X25519 keys are sums of points, and the sum needs the full
//! point, not just u. Internally we hold X25519 public keys as Edwards points
//! (curve25519-dalek does the group law) and convert at the edges. The field
//! arithmetic below is hand-written because curve25519-dalek does not expose
//! its field elements and no crate implements this encoding; it runs only
//! when keys are encoded or decoded, never per signature or agreement.

use std::sync::OnceLock;

use crypto_bigint::modular::constant_mod::{Residue, ResidueParams};
use crypto_bigint::{Encoding, U256};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};

// p = 2^255 - 19. crypto-bigint's fixed-size Montgomery residues: no
// allocation per operation (num-bigint's BigUint cost 55 % of a sync at
// 1,000 devices, docs/BENCHMARKS.md).
mod modulus {
    #![allow(missing_docs)]
    use crypto_bigint::{impl_modulus, U256};
    impl_modulus!(
        P25519,
        U256,
        "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed"
    );
}
use modulus::P25519;
type Fe = Residue<P25519, { U256::LIMBS }>;

fn fe(x: u64) -> Fe {
    Fe::new(&U256::from_u64(x))
}

fn bytes(x: &Fe) -> [u8; 32] {
    x.retrieve().to_le_bytes()
}

fn odd(x: &Fe) -> bool {
    bytes(x)[0] & 1 == 1
}

struct Field {
    /// (p + 3) / 8, the exponent of a square-root candidate.
    sqrt_exp: U256,
    sqrt_m1: Fe,
    d: Fe,
    /// sqrt(-486664), the root for which RFC 7748's base point maps to its listed v.
    c: Fe,
    a: Fe,
}

fn field() -> &'static Field {
    static F: OnceLock<Field> = OnceLock::new();
    F.get_or_init(|| {
        let p = P25519::MODULUS;
        let sqrt_exp = p.wrapping_add(&U256::from_u8(3)).shr_vartime(3);
        let sqrt_m1 = fe(2).pow(&p.wrapping_sub(&U256::ONE).shr_vartime(2));
        // d = -121665 / 121666
        let d = fe(121665).neg() * fe(121666).invert().0;
        let mut f = Field {
            sqrt_exp,
            sqrt_m1,
            d,
            c: Fe::ZERO,
            a: fe(486662),
        };
        let c0 = f.sqrt(&fe(486664).neg()).unwrap_or(Fe::ZERO);
        // RFC 7748 §4.1: the base point's v.
        let v0 =
            U256::from_be_hex("20ae19a1b8a086b4e01edd2c7748d14c923d4d7e6d7c61b229e9c5a27eced3d9");
        f.c = c0;
        let (_, v) = f.edwards_to_uv(&curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
        if v.retrieve() != v0 {
            f.c = c0.neg();
        }
        f
    })
}

impl Field {
    fn sqrt(&self, a: &Fe) -> Option<Fe> {
        let r = a.pow(&self.sqrt_exp);
        if r.square() == *a {
            return Some(r);
        }
        let r = r * self.sqrt_m1;
        (r.square() == *a).then_some(r)
    }

    /// Edwards (x, y) from a point.
    fn xy(&self, pt: &EdwardsPoint) -> (Fe, Fe) {
        let mut b = pt.compress().to_bytes();
        let sign = b[31] >> 7;
        b[31] &= 0x7f;
        let y = Fe::new(&U256::from_le_bytes(b));
        let y2 = y.square();
        let x2 = (y2 - Fe::ONE) * (self.d * y2 + Fe::ONE).invert().0;
        // A valid point always has a root.
        let mut x = self.sqrt(&x2).unwrap_or(Fe::ZERO);
        if odd(&x) != (sign == 1) {
            x = x.neg();
        }
        (x, y)
    }

    /// Montgomery (u, v): u = (1+y)/(1-y), v = c·u/x.
    fn edwards_to_uv(&self, pt: &EdwardsPoint) -> (Fe, Fe) {
        let (x, y) = self.xy(pt);
        // One inversion for both denominators: t = 1/((1-y)·x).
        let t = ((Fe::ONE - y) * x).invert().0;
        let u = (Fe::ONE + y) * x * t;
        let v = self.c * u * (Fe::ONE - y) * t;
        (u, v)
    }
}

/// Encode a point as 33 bytes: u (little-endian) and 0x80 if v is odd.
pub fn encode(pt: &EdwardsPoint) -> [u8; 33] {
    let (u, v) = field().edwards_to_uv(pt);
    let mut out = [0u8; 33];
    out[..32].copy_from_slice(&bytes(&u));
    out[32] = if odd(&v) { 0x80 } else { 0 };
    out
}

/// Decode 33 extended bytes into a point. `None` when u is not canonical,
/// (u, v) is not on the curve, or the sign byte is not 0x00 or 0x80.
pub fn decode(b: &[u8; 33]) -> Option<EdwardsPoint> {
    let f = field();
    let want_odd = match b[32] {
        0x00 => false,
        0x80 => true,
        _ => return None,
    };
    let mut raw = [0u8; 32];
    raw.copy_from_slice(&b[..32]);
    let u_int = U256::from_le_bytes(raw);
    if u_int >= P25519::MODULUS || u_int == U256::ZERO {
        return None;
    }
    let u = Fe::new(&u_int);
    let u2 = u.square();
    let rhs = u2 * u + f.a * u2 + u;
    let mut v = f.sqrt(&rhs)?;
    if v == Fe::ZERO {
        return None;
    }
    if odd(&v) != want_odd {
        v = v.neg();
    }
    // y = (u-1)/(u+1), x = c·u/v, with one inversion t = 1/((u+1)·v).
    let t = ((u + Fe::ONE) * v).invert().0;
    let y = (u - Fe::ONE) * v * t;
    let x = f.c * u * (u + Fe::ONE) * t;
    let mut comp = bytes(&y);
    if odd(&x) {
        comp[31] |= 0x80;
    }
    let pt = CompressedEdwardsY(comp).decompress()?;
    // The point must map back to u (dalek's own map); v's parity holds by
    // construction (x = c·u/v, and decompression kept x's sign).
    (pt.to_montgomery().as_bytes()[..] == b[..32]).then_some(pt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::scalar::Scalar;

    #[test]
    fn base_point_is_u9_with_rfc7748_v() {
        let e = encode(&curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
        assert_eq!(e[0], 9);
        assert!(e[1..32].iter().all(|b| *b == 0));
        // RFC 7748's v for the base point is odd.
        assert_eq!(e[32], 0x80);
    }

    #[test]
    fn round_trip_and_u_matches_dalek() {
        for i in 1u64..40 {
            let pt = EdwardsPoint::mul_base(&Scalar::from(i * 7919));
            let e = encode(&pt);
            assert_eq!(&e[..32], pt.to_montgomery().as_bytes());
            assert_eq!(decode(&e), Some(pt));
            let mut flipped = e;
            flipped[32] ^= 0x80;
            assert_eq!(decode(&flipped), Some(-pt));
        }
    }

    #[test]
    fn rejects_bad_sign_byte_and_zero() {
        let mut e = encode(&EdwardsPoint::mul_base(&Scalar::from(5u8)));
        e[32] = 1;
        assert!(decode(&e).is_none());
        assert!(decode(&[0u8; 33]).is_none());
    }
}
