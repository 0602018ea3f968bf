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

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use num_bigint::BigUint;
use num_traits::{One, Zero};

struct Field {
    p: BigUint,
    d: BigUint,
    sqrt_m1: BigUint,
    /// sqrt(-486664), the root for which RFC 7748's base point maps to its listed v.
    c: BigUint,
    a: BigUint,
}

fn field() -> &'static Field {
    static F: OnceLock<Field> = OnceLock::new();
    F.get_or_init(|| {
        let p = (BigUint::one() << 255u32) - BigUint::from(19u32);
        let sqrt_m1 = BigUint::from(2u32).modpow(&((&p - 1u32) >> 2u32), &p);
        let inv = |x: &BigUint| x.modpow(&(&p - 2u32), &p);
        // d = -121665 / 121666
        let d = ((&p - BigUint::from(121665u32)) * inv(&BigUint::from(121666u32))) % &p;
        let mut f = Field {
            p: p.clone(),
            d,
            sqrt_m1,
            c: BigUint::zero(),
            a: BigUint::from(486662u32),
        };
        let minus = &p - BigUint::from(486664u32);
        let c0 = f.sqrt(&minus).unwrap_or_default();
        // RFC 7748 §4.1: the base point's v.
        let v0: BigUint =
            "14781619447589544791020593568409986887264606134616475288964881837755586237401"
                .parse()
                .unwrap_or_default();
        f.c = c0.clone();
        let (_, v) = f.edwards_to_uv(&curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
        if v != v0 {
            f.c = &p - c0;
        }
        f
    })
}

impl Field {
    /// The inverse (extended Euclid: an order of magnitude faster than
    /// x^(p-2)); 0 for 0, as the exponentiation gave.
    fn inv(&self, x: &BigUint) -> BigUint {
        x.modinv(&self.p).unwrap_or_default()
    }

    fn sqrt(&self, a: &BigUint) -> Option<BigUint> {
        let p = &self.p;
        let r = a.modpow(&((p + 3u32) >> 3u32), p);
        if (&r * &r) % p == a % p {
            return Some(r);
        }
        let r = (r * &self.sqrt_m1) % p;
        if (&r * &r) % p == a % p {
            return Some(r);
        }
        None
    }

    fn sub(&self, a: &BigUint, b: &BigUint) -> BigUint {
        ((a + &self.p) - (b % &self.p)) % &self.p
    }

    /// Edwards (x, y) from a point.
    fn xy(&self, pt: &EdwardsPoint) -> (BigUint, BigUint) {
        let mut bytes = pt.compress().to_bytes();
        let sign = bytes[31] >> 7;
        bytes[31] &= 0x7f;
        let y = BigUint::from_bytes_le(&bytes);
        let y2 = (&y * &y) % &self.p;
        let num = self.sub(&y2, &BigUint::one());
        let den = (&self.d * &y2 + 1u32) % &self.p;
        let x2 = (num * self.inv(&den)) % &self.p;
        // A valid point always has a root.
        let mut x = self.sqrt(&x2).unwrap_or_default();
        if x.bit(0) != (sign == 1) {
            x = self.sub(&BigUint::zero(), &x);
        }
        (x, y)
    }

    /// Montgomery (u, v): u = (1+y)/(1-y), v = c·u/x.
    fn edwards_to_uv(&self, pt: &EdwardsPoint) -> (BigUint, BigUint) {
        let (x, y) = self.xy(pt);
        let p = &self.p;
        let u = ((&y + 1u32) * self.inv(&self.sub(&BigUint::one(), &y))) % p;
        let v = (&self.c * &u % p) * self.inv(&x) % p;
        (u, v)
    }
}

fn le32(x: &BigUint) -> [u8; 32] {
    let mut out = [0u8; 32];
    let b = x.to_bytes_le();
    out[..b.len()].copy_from_slice(&b);
    out
}

/// Encode a point as 33 bytes: u (little-endian) and 0x80 if v is odd.
pub fn encode(pt: &EdwardsPoint) -> [u8; 33] {
    let f = field();
    let (u, v) = f.edwards_to_uv(pt);
    let mut out = [0u8; 33];
    out[..32].copy_from_slice(&le32(&u));
    out[32] = if v.bit(0) { 0x80 } else { 0 };
    out
}

/// Decode 33 extended bytes into a point. `None` when u is not canonical,
/// (u, v) is not on the curve, or the sign byte is not 0x00 or 0x80.
pub fn decode(bytes: &[u8; 33]) -> Option<EdwardsPoint> {
    let f = field();
    let p = &f.p;
    let odd = match bytes[32] {
        0x00 => false,
        0x80 => true,
        _ => return None,
    };
    let u = BigUint::from_bytes_le(&bytes[..32]);
    if &u >= p || u.is_zero() {
        return None;
    }
    let u2 = (&u * &u) % p;
    let rhs = (&u2 * &u + &f.a * &u2 + &u) % p;
    let mut v = f.sqrt(&rhs)?;
    if v.is_zero() {
        return None;
    }
    if v.bit(0) != odd {
        v = f.sub(&BigUint::zero(), &v);
    }
    // y = (u-1)/(u+1), x = c·u/v
    let y = (f.sub(&u, &BigUint::one()) * f.inv(&((&u + 1u32) % p))) % p;
    let x = (&f.c * &u % p) * f.inv(&v) % p;
    let mut comp = le32(&y);
    if x.bit(0) {
        comp[31] |= 0x80;
    }
    let pt = CompressedEdwardsY(comp).decompress()?;
    // The point must map back to u (dalek's own map); v's parity holds by
    // construction (x = c·u/v, and decompression kept x's sign).
    (pt.to_montgomery().as_bytes()[..] == bytes[..32]).then_some(pt)
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
