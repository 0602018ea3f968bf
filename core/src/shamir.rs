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
//! Hand-written: the RustCrypto-era Shamir crates share byte-wise over
//! GF(256), which gives other shares than the Mesh format.
//!
//! The arithmetic is `crypto-bigint`'s fixed-size Montgomery residues
//! (576 bits: the largest field, for a 64-byte secret, is 2^512 + 75; the
//! random draws take 72 bytes), not `num-bigint`. A `BigUint` allocates
//! on the heap for every operation and frees its buffers without clearing
//! them (and `num-bigint` offers no `Zeroize`): a split or a recovery left
//! dozens of copies of the root's coefficients in freed memory, which no
//! wrapper could reach. Fixed-size residues live in no heap buffer, and
//! every named value that holds the secret, a coefficient, a share or an
//! interpolated sum is `Zeroizing`. What is not cleared: the compiler's
//! temporaries of these `Copy` values in registers and on the stack, which
//! later calls overwrite (docs/DESIGN.md, "Secrets in memory").

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::subtle::ConstantTimeEq;
use crypto_bigint::{Encoding, U576};
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

const LIMBS: usize = U576::LIMBS;
/// Bytes of a field element's encoding.
const WIDE: usize = LIMBS * crypto_bigint::Limb::BYTES;

/// An element of the field of one secret length.
type Fe = DynResidue<LIMBS>;

/// The prime field above 2^(8·len).
struct Field {
    params: DynResidueParams<LIMBS>,
}

impl Field {
    fn new(len: usize) -> Field {
        let p = U576::ONE
            .shl_vartime(len * 8)
            .wrapping_add(&U576::from_u16(PRIME_OFFSET[len - 1]));
        // Every modulus of the table is odd (a prime above 2).
        Field {
            params: DynResidueParams::new(&p),
        }
    }

    /// A big-endian number of at most [`WIDE`] bytes, reduced.
    fn elem(&self, be: &[u8]) -> Fe {
        let mut buf = Zeroizing::new([0u8; WIDE]);
        buf[WIDE - be.len()..].copy_from_slice(be);
        let n = Zeroizing::new(U576::from_be_slice(&buf[..]));
        // Montgomery conversion reduces any value below 2^576.
        DynResidue::new(&n, self.params)
    }

    fn small(&self, x: u8) -> Fe {
        DynResidue::new(&U576::from_u8(x), self.params)
    }

    /// Uniform below p: 72 random bytes reduced, bias below 2^-63.
    fn random(&self) -> Fe {
        let mut buf = Zeroizing::new([0u8; WIDE]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut buf[..]);
        self.elem(&buf[..])
    }

    /// `v` in exactly `len` big-endian bytes, if it fits.
    fn to_fixed(&self, v: &Fe, len: usize) -> Option<Zeroizing<Vec<u8>>> {
        let n = Zeroizing::new(v.retrieve());
        let b = Zeroizing::new(n.to_be_bytes());
        if b[..WIDE - len].iter().any(|x| *x != 0) {
            return None;
        }
        Some(Zeroizing::new(b[WIDE - len..].to_vec()))
    }
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
        // Sized once: a growing Vec would leave a copy in a freed buffer.
        let mut b = Zeroizing::new(Vec::with_capacity(2 + self.value.len()));
        b.extend_from_slice(&[UdfType::Share.code(), (self.threshold << 4) | (self.x - 1)]);
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
    let f = Field::new(len);
    let a0 = Zeroizing::new(f.elem(secret));
    'draw: loop {
        // Sized once, so that no coefficient is left in a freed buffer.
        let mut coeffs = Zeroizing::new(Vec::with_capacity(usize::from(k)));
        coeffs.push(*a0);
        for _ in 1..k {
            coeffs.push(f.random());
        }
        let mut shares = Vec::with_capacity(usize::from(n));
        for x in 1..=n {
            let v = Zeroizing::new(eval(&coeffs, &f.small(x)));
            // f(x) must fit the secret's length; otherwise draw again.
            let Some(value) = f.to_fixed(&v, len) else {
                continue 'draw;
            };
            shares.push(Share {
                threshold: k,
                x,
                value,
            });
        }
        return Ok(shares);
    }
}

/// The polynomial with coefficients `coeffs` (constant first) at `x`.
fn eval(coeffs: &[Fe], x: &Fe) -> Fe {
    let mut acc = Zeroizing::new(coeffs[coeffs.len() - 1]);
    for c in coeffs.iter().rev().skip(1) {
        *acc = *acc * x + c;
    }
    *acc
}

/// Lagrange interpolation at `at` of the points (`xs`, `ys`). The x values
/// and `at` are public (share indices), so the weights are too; only the
/// sum holds the secret.
fn interpolate(f: &Field, xs: &[Fe], ys: &[Fe], at: &Fe) -> Fe {
    let mut sum = Zeroizing::new(f.small(0));
    for (i, (xi, yi)) in xs.iter().zip(ys).enumerate() {
        let (mut num, mut den) = (f.small(1), f.small(1));
        for (j, xj) in xs.iter().enumerate() {
            if i != j {
                num *= at - xj;
                den *= xi - xj;
            }
        }
        // The x values are distinct and below p, so den is invertible.
        let (inv, _) = den.invert();
        *sum += yi * (num * inv);
    }
    *sum
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
    let f = Field::new(len);
    let xs: Vec<Fe> = shares.iter().map(|s| f.small(s.x)).collect();
    // Sized once, so that no share value is left in a freed buffer.
    let mut ys = Zeroizing::new(Vec::with_capacity(shares.len()));
    for s in shares {
        ys.push(f.elem(&s.value));
    }
    let (base_x, extra_x) = xs.split_at(k);
    let (base_y, extra_y) = ys.split_at(k);
    for (i, (x, y)) in extra_x.iter().zip(extra_y).enumerate() {
        let at = Zeroizing::new(interpolate(&f, base_x, base_y, x));
        if !bool::from(at.ct_eq(y)) {
            return Err(Error::Shares(format!(
                "share {} does not agree with the first {k}: one of them is wrong",
                k + i + 1
            )));
        }
    }
    let secret = Zeroizing::new(interpolate(&f, base_x, base_y, &f.small(0)));
    f.to_fixed(&secret, len).ok_or_else(|| {
        Error::Shares("the shares do not give a secret of their length: one is wrong".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use num_traits::One;
    use proptest::prelude::*;

    fn prime(len: usize) -> BigUint {
        (BigUint::one() << (len * 8)) + BigUint::from(PRIME_OFFSET[len - 1])
    }

    #[test]
    fn the_fields_are_the_table_primes() {
        for len in 1..=PRIME_OFFSET.len() {
            let f = Field::new(len);
            let p = BigUint::from_bytes_be(&f.params.modulus().to_be_bytes());
            assert_eq!(p, prime(len), "len {len}");
            // p - 1 reduces to itself, p to zero, 2^576 - 1 to its residue.
            let pm1 = (prime(len) - 1u32).to_bytes_be();
            assert_eq!(
                &f.to_fixed(&f.elem(&pm1), WIDE).expect("fits")[WIDE - pm1.len()..],
                &pm1[..]
            );
            let max = [0xffu8; WIDE];
            let want = BigUint::from_bytes_be(&max) % prime(len);
            let got = BigUint::from_bytes_be(&f.to_fixed(&f.elem(&max), WIDE).expect("fits"));
            assert_eq!(got, want, "len {len}");
        }
    }

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
