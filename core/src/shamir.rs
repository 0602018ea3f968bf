//! Shamir secret sharing as UDF `S` shares (mesh-udf "Secret sharing";
//! reference `Goedel.Cryptography/KeyShareSymmetric.cs`).
//!
//! > The first byte of each share specifies the recovery information
//! > (quorum, x value), the remaining bytes specify the share value in
//! > network byte order.
//!
//! Layout: `0x90 || (k << 4 | (x - 1)) || f(x)`, f(x) big-endian and exactly
//! as long as the secret. The field is the smallest prime above 2^L, L the
//! secret's bit length. The reference code means to re-draw the polynomial
//! when some f(x) does not fit in L bits but never does (it then truncates);
//! we re-draw. Its recovery also accepts repeated x values and more than k
//! shares, giving a wrong secret silently; we refuse the first and check the
//! extra shares against the others.
//!
//! Hand-written over `num-bigint`: the RustCrypto-era Shamir crates share
//! byte-wise over GF(256), which gives other shares than the Mesh format.

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Zero};
use zeroize::Zeroizing;

use crate::udf::{self, UdfType};
use crate::Error;

/// Offsets o such that 2^N + o is the smallest prime above 2^N, for
/// N = 8, 16, …, 512 (reference `PrimeOffsetNext`; each checked by the
/// `prime_table_is_smallest_primes` test).
const PRIME_OFFSET: [u16; 64] = [
    1, 1, 43, 15, 15, 21, 81, 13, 15, 13, 7, 61, 111, 25, 451, 51, 85, 175, 253, 7, 87, 427, 27,
    133, 235, 375, 423, 735, 357, 115, 81, 297, 175, 57, 45, 127, 61, 37, 91, 27, 15, 241, 231, 55,
    105, 127, 115, 231, 207, 181, 37, 235, 163, 1093, 187, 211, 21, 841, 445, 165, 777, 583, 133,
    75,
];

/// Largest quorum or share count the one-nibble encoding allows.
pub const MAX_SHARES: u8 = 15;

fn prime(len: usize) -> BigUint {
    (BigUint::one() << (len * 8)) + BigUint::from(PRIME_OFFSET[len - 1])
}

/// One share.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    threshold: u8,
    x: u8,
    value: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("threshold", &self.threshold)
            .field("x", &self.x)
            .finish_non_exhaustive()
    }
}

impl Share {
    /// Quorum needed to recover.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// The share's x value (1-based index).
    pub fn index(&self) -> u8 {
        self.x
    }

    /// The binary UDF.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut b = Zeroizing::new(vec![
            UdfType::Share.code(),
            (self.threshold << 4) | (self.x - 1),
        ]);
        b.extend_from_slice(&self.value);
        b
    }

    /// The presented `S…` UDF, whole.
    pub fn to_udf(&self) -> Zeroizing<String> {
        Zeroizing::new(udf::presentation_whole(&self.to_bytes()))
    }

    /// Parse a presented share. Refuses other UDF types, a zero quorum, and
    /// presentations whose unused trailing bits are not zero (a typo in the
    /// last character).
    pub fn from_udf(text: &str) -> Result<Share, Error> {
        let b = Zeroizing::new(udf::decode_typed(text, UdfType::Share)?);
        let chars = text.trim().chars().filter(|c| *c != '-').count();
        if chars != (b.len() * 8).div_ceil(5) {
            // Messages never repeat the share: it is secret material.
            return Err(Error::Malformed(format!(
                "the share has {chars} characters; a share of {} bytes has {}",
                b.len(),
                (b.len() * 8).div_ceil(5)
            )));
        }
        let given: String = text
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if udf::presentation_whole(&b).replace('-', "") != given {
            // Same bytes, other text: the unused trailing bits are not zero.
            return Err(Error::Malformed(
                "the share is mistyped (its last character is not possible)".into(),
            ));
        }
        if b.len() < 3 || b.len() - 2 > PRIME_OFFSET.len() {
            return Err(Error::Malformed("the share has a bad length".into()));
        }
        let threshold = b[1] >> 4;
        let x = (b[1] & 0x0f) + 1;
        if threshold == 0 {
            return Err(Error::Malformed("the share has a quorum of 0".into()));
        }
        Ok(Share {
            threshold,
            x,
            value: Zeroizing::new(b[2..].to_vec()),
        })
    }
}

fn be_fixed(v: &BigUint, len: usize) -> Option<Vec<u8>> {
    let b = v.to_bytes_be();
    if b.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - b.len()];
    out.extend_from_slice(&b);
    Some(out)
}

fn random_below(p: &BigUint, len: usize) -> BigUint {
    // len + 8 random bytes reduced mod p: bias below 2^-64.
    let mut buf = Zeroizing::new(vec![0u8; len + 8]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut buf);
    BigUint::from_bytes_be(&buf) % p
}

/// Split `secret` into `n` shares, any `k` of which recover it.
pub fn split(secret: &[u8], k: u8, n: u8) -> Result<Vec<Share>, Error> {
    if secret.is_empty() || secret.len() > PRIME_OFFSET.len() {
        return Err(Error::Malformed(format!(
            "a secret of {} bytes cannot be shared (1 to {} bytes)",
            secret.len(),
            PRIME_OFFSET.len()
        )));
    }
    if !(2..=MAX_SHARES).contains(&k) || k > n || n > MAX_SHARES {
        return Err(Error::Malformed(format!(
            "a quorum of {k} out of {n} shares is not possible (2 <= quorum <= shares <= {MAX_SHARES})"
        )));
    }
    let len = secret.len();
    let p = prime(len);
    let a0 = BigUint::from_bytes_be(secret);
    'draw: loop {
        let mut coeffs = vec![a0.clone()];
        for _ in 1..k {
            coeffs.push(random_below(&p, len));
        }
        let mut shares = Vec::with_capacity(usize::from(n));
        for x in 1..=n {
            let v = eval(&coeffs, &BigUint::from(x), &p);
            // f(x) must fit the secret's length; otherwise draw again.
            let Some(value) = be_fixed(&v, len) else {
                continue 'draw;
            };
            shares.push(Share {
                threshold: k,
                x,
                value: Zeroizing::new(value),
            });
        }
        return Ok(shares);
    }
}

fn eval(coeffs: &[BigUint], x: &BigUint, p: &BigUint) -> BigUint {
    coeffs
        .iter()
        .rev()
        .fold(BigUint::zero(), |acc, c| (acc * x + c) % p)
}

/// Lagrange interpolation of the points at `at`, mod p.
fn interpolate(points: &[(BigUint, BigUint)], at: &BigUint, p: &BigUint) -> BigUint {
    let pi = BigInt::from_biguint(Sign::Plus, p.clone());
    let at = BigInt::from_biguint(Sign::Plus, at.clone());
    let mut sum = BigInt::zero();
    for (i, (xi, yi)) in points.iter().enumerate() {
        let xi = BigInt::from_biguint(Sign::Plus, xi.clone());
        let mut num = BigInt::one();
        let mut den = BigInt::one();
        for (j, (xj, _)) in points.iter().enumerate() {
            if i != j {
                let xj = BigInt::from_biguint(Sign::Plus, xj.clone());
                num = (num * (&at - &xj)) % &pi;
                den = (den * (&xi - &xj)) % &pi;
            }
        }
        let den = ((den % &pi) + &pi) % &pi;
        // p is prime and den != 0 (distinct x), so den^(p-2) is its inverse.
        let inv = den.modpow(&(&pi - 2), &pi);
        let yi = BigInt::from_biguint(Sign::Plus, yi.clone());
        sum = (sum + yi * num % &pi * inv) % &pi;
    }
    let r = ((sum % &pi) + &pi) % &pi;
    r.to_biguint().unwrap_or_default()
}

/// Recover the secret from at least `k` shares. Shares beyond the first `k`
/// are checked against the polynomial the first `k` define, so that a wrong
/// share is reported instead of giving a wrong secret.
pub fn recover(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let first = shares
        .first()
        .ok_or_else(|| Error::Shares("no shares given".into()))?;
    let k = usize::from(first.threshold);
    let len = first.value.len();
    for (i, s) in shares.iter().enumerate() {
        if s.threshold != first.threshold {
            return Err(Error::Shares(format!(
                "share {} needs a quorum of {} but share 1 needs {}: they are from different splits",
                i + 1,
                s.threshold,
                first.threshold
            )));
        }
        if s.value.len() != len {
            return Err(Error::Shares(format!(
                "share {} is for a {}-byte secret but share 1 is for a {len}-byte secret",
                i + 1,
                s.value.len()
            )));
        }
        if let Some(j) = shares[..i].iter().position(|t| t.x == s.x) {
            return Err(Error::Shares(format!(
                "shares {} and {} are the same share (x = {})",
                j + 1,
                i + 1,
                s.x
            )));
        }
    }
    if shares.len() < k {
        return Err(Error::Shares(format!(
            "{} share(s) given, {k} needed",
            shares.len()
        )));
    }
    let p = prime(len);
    let points: Vec<(BigUint, BigUint)> = shares
        .iter()
        .map(|s| (BigUint::from(s.x), BigUint::from_bytes_be(&s.value)))
        .collect();
    let (base, extra) = points.split_at(k);
    for (i, (x, y)) in extra.iter().enumerate() {
        if interpolate(base, x, &p) != *y {
            return Err(Error::Shares(format!(
                "share {} does not agree with the first {k}: one of them is wrong",
                k + i + 1
            )));
        }
    }
    let secret = interpolate(base, &BigUint::zero(), &p);
    be_fixed(&secret, len).map(Zeroizing::new).ok_or_else(|| {
        Error::Shares("the shares do not give a secret of their length: one is wrong".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic Miller–Rabin with fixed bases; test-only.
    fn is_probable_prime(n: &BigUint) -> bool {
        let two = BigUint::from(2u32);
        if *n < two {
            return false;
        }
        let one = BigUint::one();
        let nm1 = n - &one;
        let s = nm1.trailing_zeros().unwrap_or(0);
        let d = &nm1 >> s;
        'witness: for a in [2u32, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41] {
            let a = BigUint::from(a);
            if a >= *n {
                continue;
            }
            let mut x = a.modpow(&d, n);
            if x == one || x == nm1 {
                continue;
            }
            for _ in 1..s {
                x = x.modpow(&two, n);
                if x == nm1 {
                    continue 'witness;
                }
            }
            return false;
        }
        true
    }

    #[test]
    fn prime_table_is_smallest_primes() {
        for len in 1..=PRIME_OFFSET.len() {
            let base = BigUint::one() << (len * 8);
            let p = prime(len);
            assert!(
                is_probable_prime(&p),
                "2^{}+{}",
                len * 8,
                PRIME_OFFSET[len - 1]
            );
            let mut c = &base + 1u32;
            while c < p {
                assert!(
                    !is_probable_prime(&c),
                    "smaller prime below table entry for {len}"
                );
                c += 1u32;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_k_shares_recover(secret in proptest::collection::vec(any::<u8>(), 1..48), k in 2u8..6, extra in 0u8..4, pick in any::<u64>()) {
            let n = k + extra;
            let shares = split(&secret, k, n).expect("split");
            prop_assert_eq!(shares.len(), usize::from(n));
            // A pseudo-random k-subset.
            let mut idx: Vec<usize> = (0..usize::from(n)).collect();
            let mut r = pick;
            for i in (1..idx.len()).rev() {
                idx.swap(i, usize::try_from(r % (i as u64 + 1)).expect("fits"));
                r /= 7;
            }
            let subset: Vec<Share> = idx[..usize::from(k)]
                .iter()
                .map(|i| Share::from_udf(&shares[*i].to_udf()).expect("round trip"))
                .collect();
            prop_assert_eq!(&recover(&subset).expect("recover")[..], &secret[..]);
            prop_assert_eq!(&recover(&shares).expect("all")[..], &secret[..]);
            if k > 2 {
                prop_assert!(recover(&subset[..usize::from(k) - 1]).is_err());
            }
        }
    }

    #[test]
    fn wrong_shares_are_named() {
        let shares = split(&[7u8; 32], 3, 5).expect("split");
        let err = recover(&shares[..2]).expect_err("too few");
        assert!(
            err.to_string().contains("2 share(s) given, 3 needed"),
            "{err}"
        );
        let dup = vec![shares[0].clone(), shares[1].clone(), shares[0].clone()];
        let err = recover(&dup).expect_err("dup");
        assert!(err.to_string().contains("same share"), "{err}");
        let mut bad = shares[3].clone();
        bad.value[5] ^= 1;
        let err = recover(&[shares[0].clone(), shares[1].clone(), shares[2].clone(), bad])
            .expect_err("bad");
        assert!(err.to_string().contains("does not agree"), "{err}");
        let other = split(&[7u8; 32], 2, 3).expect("split");
        let err =
            recover(&[shares[0].clone(), other[1].clone(), shares[2].clone()]).expect_err("mixed");
        assert!(err.to_string().contains("different splits"), "{err}");
    }
}
