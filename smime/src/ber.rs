//! BER to DER, for CMS as mail clients write it.
//!
//! NSS (`cmsutil`, Thunderbird) and `openssl cms -stream` write CMS in BER
//! with indefinite lengths and constructed OCTET STRINGs; the `der` crate,
//! which the `cms` crate decodes with, accepts only DER. This module
//! rewrites one BER element as DER before it is handed to `cms`.
//!
//! It is hand-written because no maintained crate does BER to DER: `der`
//! refuses BER by design, and the BER readers on crates.io are either
//! unmaintained or decode into their own trees without re-encoding. It is
//! sans-io (`&[u8]` in, bytes or an error out), bounded in depth and size,
//! and does only what X.690 requires for the structures CMS uses:
//!
//! - X.690 §8.1.3.6: "For the indefinite form, the length octets indicate
//!   that the contents octets are terminated by end-of-contents octets",
//!   and §8.1.5: "The end-of-contents octets shall be present if the length
//!   is encoded as specified in 8.1.3.6, otherwise they shall not be
//!   present." Every indefinite length becomes a definite one (§10.1: "The
//!   definite form of length encoding shall be used").
//! - X.690 §8.7.3 (OCTET STRING) and §8.21 (restricted character strings):
//!   "the contents octets [of the constructed form] shall consist of zero,
//!   one or more encodings", each of the same type; §10.2: "The
//!   constructed form of encoding shall not be used" in DER. Constructed
//!   OCTET STRINGs and character strings are flattened to the primitive
//!   form, as is the `[0] IMPLICIT OCTET STRING` of an EncryptedContentInfo
//!   (RFC 5652 §6.1: `SEQUENCE { OID, AlgorithmIdentifier, [0] IMPLICIT
//!   OCTET STRING }`), the one implicitly tagged string CMS writes in
//!   pieces.
//! - X.690 §11.1: "If the encoding represents the boolean value TRUE, its
//!   single contents octet shall have all eight bits set to one."
//!
//! Lengths are re-encoded in the shortest form (§10.1). Anything else
//! (SET OF ordering, integer encodings) is left to `der` to judge.

/// How deep elements may nest. CMS with certificates nests about twelve deep.
pub const MAX_DEPTH: usize = 40;
/// The largest message accepted (32 MiB: more than mail servers pass).
pub const MAX_SIZE: usize = 32 << 20;

/// Why a BER element does not convert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BerError {
    /// The input ends inside an element.
    #[error("the encoding is truncated (an element needs {0} more bytes)")]
    Truncated(usize),
    /// Elements nest deeper than [`MAX_DEPTH`].
    #[error("the encoding nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The input or its output is larger than [`MAX_SIZE`].
    #[error("the message is larger than {} MiB", MAX_SIZE >> 20)]
    TooLarge,
    /// Bytes after the one element.
    #[error("{0} bytes follow the encoded message")]
    Trailing(usize),
    /// An encoding X.690 does not allow.
    #[error("invalid encoding: {0}")]
    Invalid(&'static str),
}

type Result<T> = std::result::Result<T, BerError>;

/// One decoded element: its identifier octets and its DER contents.
struct Element {
    id: Vec<u8>,
    content: Vec<u8>,
}

impl Element {
    fn constructed(&self) -> bool {
        self.id.first().is_some_and(|b| b & 0x20 != 0)
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.id);
        write_length(self.content.len(), out);
        out.extend_from_slice(&self.content);
        if out.len() > MAX_SIZE {
            return Err(BerError::TooLarge);
        }
        Ok(())
    }
}

/// Convert one BER element (the whole input) to DER.
pub fn to_der(input: &[u8]) -> Result<Vec<u8>> {
    if input.len() > MAX_SIZE {
        return Err(BerError::TooLarge);
    }
    let mut pos = 0;
    let e = element(input, &mut pos, 0)?.ok_or(BerError::Invalid("end-of-contents at the top"))?;
    if pos != input.len() {
        return Err(BerError::Trailing(input.len() - pos));
    }
    let mut out = Vec::with_capacity(input.len());
    e.write(&mut out)?;
    Ok(out)
}

/// Whether `input` starts like a BER SEQUENCE (what every CMS message is).
pub fn looks_like_ber(input: &[u8]) -> bool {
    input.first() == Some(&0x30) && input.len() > 2
}

fn need(input: &[u8], pos: usize, n: usize) -> Result<()> {
    let have = input.len().saturating_sub(pos);
    if have < n {
        Err(BerError::Truncated(n - have))
    } else {
        Ok(())
    }
}

/// The identifier octets (X.690 §8.1.2), including the high-tag-number form.
fn identifier(input: &[u8], pos: &mut usize) -> Result<Vec<u8>> {
    need(input, *pos, 1)?;
    let start = *pos;
    let first = input[start];
    *pos += 1;
    if first & 0x1f == 0x1f {
        // §8.1.2.4: subsequent octets, bit 8 set on all but the last; at most 4 here.
        loop {
            need(input, *pos, 1)?;
            let b = input[*pos];
            *pos += 1;
            if *pos - start > 5 {
                return Err(BerError::Invalid("tag number too large"));
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    Ok(input[start..*pos].to_vec())
}

/// The length octets (X.690 §8.1.3): `None` for the indefinite form.
fn length(input: &[u8], pos: &mut usize) -> Result<Option<usize>> {
    need(input, *pos, 1)?;
    let first = input[*pos];
    *pos += 1;
    match first {
        0x00..=0x7f => Ok(Some(usize::from(first))),
        0x80 => Ok(None),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            need(input, *pos, n)?;
            let mut len = 0usize;
            for b in &input[*pos..*pos + n] {
                len = (len << 8) | usize::from(*b);
            }
            *pos += n;
            if len > MAX_SIZE {
                return Err(BerError::TooLarge);
            }
            Ok(Some(len))
        }
        _ => Err(BerError::Invalid("length longer than four octets")),
    }
}

fn write_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | u8::try_from(bytes.len() - skip).unwrap_or(0));
    out.extend_from_slice(&bytes[skip..]);
}

/// One element at `pos`; `None` for end-of-contents octets.
fn element(input: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Element>> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    let id = identifier(input, pos)?;
    let len = length(input, pos)?;
    if id == [0] {
        return match len {
            Some(0) => Ok(None),
            _ => Err(BerError::Invalid("malformed end-of-contents")),
        };
    }
    let constructed = id[0] & 0x20 != 0;
    if !constructed {
        let len = len.ok_or(BerError::Invalid("indefinite length on a primitive"))?;
        need(input, *pos, len)?;
        let mut content = input[*pos..*pos + len].to_vec();
        *pos += len;
        if id == [0x01] {
            // BOOLEAN: §11.1, TRUE is 0xFF.
            if content.len() != 1 {
                return Err(BerError::Invalid("BOOLEAN of more than one octet"));
            }
            if content[0] != 0 {
                content[0] = 0xff;
            }
        }
        return Ok(Some(Element { id, content }));
    }
    let children = match len {
        Some(len) => {
            need(input, *pos, len)?;
            let sub = &input[..*pos + len];
            let mut p = *pos;
            let mut kids = Vec::new();
            while p < sub.len() {
                kids.push(
                    element(sub, &mut p, depth + 1)?
                        .ok_or(BerError::Invalid("end-of-contents in a definite length"))?,
                );
            }
            *pos = p;
            kids
        }
        None => {
            let mut kids = Vec::new();
            while let Some(k) = element(input, pos, depth + 1)? {
                kids.push(k);
            }
            kids
        }
    };
    constructed_element(id, children).map(Some)
}

/// Universal string types whose constructed form is flattened (§8.7.3, §8.21).
fn is_string_type(tag: u8) -> bool {
    matches!(
        tag,
        0x04 | 0x0c | 0x12 | 0x13 | 0x14 | 0x16 | 0x1a | 0x1c | 0x1e
    )
}

fn constructed_element(id: Vec<u8>, mut children: Vec<Element>) -> Result<Element> {
    let tag = id[0] & !0x20;
    if id.len() == 1 && is_string_type(tag) {
        // A constructed string: the concatenation of its (flattened) segments.
        let mut content = Vec::new();
        for c in &children {
            if c.id != [tag] {
                return Err(BerError::Invalid("a string segment of another type"));
            }
            content.extend_from_slice(&c.content);
        }
        return Ok(Element {
            id: vec![tag],
            content,
        });
    }
    if id == [0x23] {
        return Err(BerError::Invalid("constructed BIT STRING"));
    }
    // EncryptedContentInfo: SEQUENCE { OID, AlgorithmIdentifier, [0] IMPLICIT OCTET STRING }.
    if id == [0x30] && children.len() == 3 && children[0].id == [0x06] && children[1].id == [0x30] {
        let third = &mut children[2];
        // Anything else under that shape is left as it is, for `der` to judge.
        if third.id == [0xa0] {
            if let Ok(content) = flatten_der_octets(&third.content) {
                *third = Element {
                    id: vec![0x80],
                    content,
                };
            }
        }
    }
    // SignedData: SEQUENCE { INTEGER, SET, SEQUENCE, [0] IMPLICIT
    // CertificateSet, [1] IMPLICIT RevocationInfoChoices, SET }: NSS writes
    // the signer's certificate twice; `der` refuses duplicates in a SET OF,
    // and an exact duplicate means nothing, so it is dropped. So it is in
    // every universal SET.
    let signed_data = id == [0x30]
        && children.len() >= 4
        && children[0].id == [0x02]
        && children[1].id == [0x31]
        && children[2].id == [0x30];
    if id == [0x31] {
        dedupe(&mut children);
    }
    let mut content = Vec::new();
    for (i, c) in children.iter_mut().enumerate() {
        if signed_data && i >= 3 && (c.id == [0xa0] || c.id == [0xa1]) {
            c.content = dedupe_der(&c.content)?;
        }
        c.write(&mut content)?;
    }
    Ok(Element { id, content })
}

fn dedupe(children: &mut Vec<Element>) {
    let mut seen: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    children.retain(|c| {
        let key = (c.id.clone(), c.content.clone());
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
}

/// A run of DER elements without exact duplicates.
fn dedupe_der(mut der: &[u8]) -> Result<Vec<u8>> {
    let mut kids = Vec::new();
    while !der.is_empty() {
        let mut pos = 0;
        kids.push(element(der, &mut pos, 0)?.ok_or(BerError::Invalid("end-of-contents"))?);
        der = &der[pos..];
    }
    dedupe(&mut kids);
    let mut out = Vec::new();
    for k in &kids {
        k.write(&mut out)?;
    }
    Ok(out)
}

/// The contents of a run of DER OCTET STRINGs (the segments of an
/// implicitly tagged constructed OCTET STRING, already flattened), joined.
fn flatten_der_octets(mut der: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while !der.is_empty() {
        let mut pos = 0;
        let e = element(der, &mut pos, 0)?.ok_or(BerError::Invalid("end-of-contents"))?;
        if e.id != [0x04] || e.constructed() {
            return Err(BerError::Invalid(
                "encrypted content segments are not OCTET STRINGs",
            ));
        }
        out.extend_from_slice(&e.content);
        der = &der[pos..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_is_unchanged() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xaa];
        assert_eq!(to_der(&der).expect("der"), der);
    }

    #[test]
    fn indefinite_lengths_and_constructed_octets_become_der() {
        // SEQUENCE(inf) { OCTET STRING(constructed, inf) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        assert_eq!(
            to_der(&ber).expect("ber"),
            [0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c']
        );
    }

    #[test]
    fn encrypted_content_info_is_flattened_and_explicit_tags_are_kept() {
        // SEQUENCE { OID, SEQUENCE {}, [0](inf) { "x", "y" } } -> [0] IMPLICIT "xy"
        let ber = [
            0x30, 0x80, 0x06, 0x01, 0x2a, 0x30, 0x00, 0xa0, 0x80, 0x04, 0x01, b'x', 0x04, 0x01,
            b'y', 0, 0, 0, 0,
        ];
        assert_eq!(
            to_der(&ber).expect("ber"),
            [0x30, 0x09, 0x06, 0x01, 0x2a, 0x30, 0x00, 0x80, 0x02, b'x', b'y']
        );
        // EncapsulatedContentInfo: SEQUENCE { OID, [0] EXPLICIT OCTET STRING } stays explicit.
        let ber = [
            0x30, 0x80, 0x06, 0x01, 0x2a, 0xa0, 0x80, 0x24, 0x80, 0x04, 0x01, b'z', 0, 0, 0, 0, 0,
            0,
        ];
        assert_eq!(
            to_der(&ber).expect("ber"),
            [0x30, 0x08, 0x06, 0x01, 0x2a, 0xa0, 0x03, 0x04, 0x01, b'z']
        );
    }

    #[test]
    fn long_form_lengths_are_shortened_and_booleans_normalised() {
        let ber = [0x30, 0x81, 0x03, 0x01, 0x01, 0x01];
        assert_eq!(to_der(&ber).expect("ber"), [0x30, 0x03, 0x01, 0x01, 0xff]);
    }

    #[test]
    fn truncated_deep_oversized_and_trailing_inputs_are_refused() {
        let good = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        for n in 0..good.len() {
            assert!(
                matches!(to_der(&good[..n]), Err(BerError::Truncated(_))),
                "prefix of {n} bytes"
            );
        }
        let mut deep = [0x30, 0x80].repeat(MAX_DEPTH + 2);
        deep.extend(vec![0u8; 2 * (MAX_DEPTH + 2)]);
        assert_eq!(to_der(&deep), Err(BerError::TooDeep));
        assert_eq!(
            to_der(&[0x04, 0x84, 0x7f, 0xff, 0xff, 0xff]),
            Err(BerError::TooLarge)
        );
        assert_eq!(
            to_der(&[0x04, 0x01, 0x00, 0xff]),
            Err(BerError::Trailing(1))
        );
        assert!(matches!(
            to_der(&[0x04, 0x80, 0x00, 0x00]),
            Err(BerError::Invalid(_))
        ));
        assert!(matches!(
            to_der(&[0x24, 0x80, 0x02, 0x01, 0x01, 0, 0]),
            Err(BerError::Invalid(_))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A fuzz-style sweep: every mutation of a small BER message either
        // converts or is refused, and what converts is a fixed point.
        let seed = [
            0x30, 0x80, 0x06, 0x01, 0x2a, 0x30, 0x00, 0xa0, 0x80, 0x04, 0x01, b'x', 0x04, 0x01,
            b'y', 0, 0, 0, 0,
        ];
        let mut x = 0x2545_f491_u32;
        for _ in 0..20_000 {
            let mut m = seed.to_vec();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = usize::try_from(x).unwrap_or(0) % m.len();
                m[i] = m[i].wrapping_add(u8::try_from(x >> 24).unwrap_or(1));
            }
            if let Ok(der) = to_der(&m) {
                assert_eq!(to_der(&der).as_ref(), Ok(&der), "{m:02x?}");
            }
        }
    }
}
