//! Witness and PIN computations of the device connection ceremony
//! (mesh-protocol "Device connection"; notes `mesh-spec.md` §4).

use sha2::{Digest, Sha512};

use crate::udf::{self, UdfType};
use crate::Error;

/// The action string for device connection PINs.
pub const ACTION_DEVICE: &str = "Device";

/// The longest a PIN may be valid (seconds): a day. A PIN is a bearer
/// credential that outlives nothing but its epoch; a short life bounds what
/// a copy of an administrator's home can do with one before anyone notices.
pub const MAX_LIFETIME: u64 = 24 * 3600;

/// Whether `id` is a PIN id spelled exactly as [`pin_id`] writes it (upper
/// case, a dash after every four characters). Ids are recorded and compared
/// in this one form, so a used PIN is not accepted again under another
/// spelling.
pub fn is_canonical_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.iter().enumerate().all(|(i, c)| {
            if i % 5 == 4 {
                *c == b'-' && i + 1 < bytes.len()
            } else {
                c.is_ascii_uppercase() || (b'2'..=b'7').contains(c)
            }
        })
}

/// `id` in the one spelling [`pin_id`] writes (dashes and case ignored), so
/// that records made under another spelling count as the same PIN.
pub fn canonical_id(id: &str) -> String {
    let bare = udf::udf_key(id);
    let mut out = String::with_capacity(bare.len() + bare.len() / 4);
    for (i, c) in bare.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// A fresh one-time PIN: an authenticator-type UDF of 128 random bits.
pub fn new_pin() -> String {
    let mut b = vec![UdfType::AuthenticatorSha2.code()];
    let mut r = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut r);
    b.extend_from_slice(&r);
    udf::presentation_whole(&b)
}

/// The key bytes of a presented PIN or salted PIN: the whole bytes after the
/// type byte, at most 16 (a 140-bit salted PIN gives 16, a 130-bit PIN 15).
fn pin_key(text: &str) -> Result<Vec<u8>, Error> {
    let b = udf::decode_typed(text, UdfType::AuthenticatorSha2)?;
    if b.len() < 1 + 8 {
        return Err(Error::Malformed("PIN is too short".into()));
    }
    Ok(b[1..b.len().min(17)].to_vec())
}

/// > saltedPIN = A-UDF_140( HMAC-SHA512( key = BDS(PIN), action ) )
pub fn salted_pin(pin: &str, action: &str) -> Result<String, Error> {
    let mac = udf::hmac_sha512(&pin_key(pin)?, &[action.as_bytes()]);
    Ok(udf::presentation_bits(
        &udf::authenticator_of_mac(&mac),
        udf::DEFAULT_BITS,
    ))
}

/// > PinId = A-UDF_140( HMAC-SHA512( key = BDS(saltedPIN), lowercase(account) ) )
pub fn pin_id(salted: &str, account: &str) -> Result<String, Error> {
    let mac = udf::hmac_sha512(&pin_key(salted)?, &[account.to_lowercase().as_bytes()]);
    Ok(udf::presentation_bits(
        &udf::authenticator_of_mac(&mac),
        udf::DEFAULT_BITS,
    ))
}

/// > PinWitness = HMAC-SHA512( key = BDS(saltedPIN),
/// > UTF8(account) || ClientNonce || PayloadDigest(AuthenticatedData) )
///
/// The account is lower-cased, as for PinId, so that both sides agree
/// whatever case the user typed.
pub fn pin_witness(
    salted: &str,
    account: &str,
    client_nonce: &[u8],
    payload_digest: &[u8],
) -> Result<[u8; 64], Error> {
    Ok(udf::hmac_sha512(
        &pin_key(salted)?,
        &[
            account.to_lowercase().as_bytes(),
            client_nonce,
            payload_digest,
        ],
    ))
}

/// Ours (PROTOCOL.md §6): the administrator's proof, in an acceptance by
/// PIN, that it knows the PIN, bound to the account and the request:
///
/// `HMAC-SHA512(PinKey(SaltedPin), "MeshPinProof" || UTF8(ProfileUdf) ||
/// UTF8(RequestId) || PayloadDigest(device profile))`
///
/// A portal that answers with another account's profile cannot make it,
/// so the device refuses the substituted profile before it keeps anything.
pub fn pin_proof(
    salted: &str,
    profile_udf: &str,
    request_id: &str,
    payload_digest: &[u8],
) -> Result<[u8; 64], Error> {
    Ok(udf::hmac_sha512(
        &pin_key(salted)?,
        &[
            b"MeshPinProof",
            profile_udf.as_bytes(),
            request_id.as_bytes(),
            payload_digest,
        ],
    ))
}

/// > W = Base32_140( SHA512( SHA512(AccountProfileUdfBytes || ServerNonce)
/// > || SHA512(DeviceProfileUdfBytes || ClientNonce) ) )
///
/// The profile values are the 65-byte `V` of [`udf::profile_value`].
pub fn witness(
    account_v: &[u8],
    server_nonce: &[u8],
    device_v: &[u8],
    client_nonce: &[u8],
) -> String {
    let a = Sha512::new()
        .chain_update(account_v)
        .chain_update(server_nonce)
        .finalize();
    let d = Sha512::new()
        .chain_update(device_v)
        .chain_update(client_nonce)
        .finalize();
    let w = Sha512::new().chain_update(a).chain_update(d).finalize();
    udf::presentation_bits(&w, udf::DEFAULT_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_proof_binds_the_pin_the_account_and_the_request() {
        let salted = salted_pin("AAAA-BBBB-CCCC-DDDD", ACTION_DEVICE).expect("salted");
        let other = salted_pin("AAAA-BBBB-CCCC-DDDE", ACTION_DEVICE).expect("salted");
        let p = |s: &str, u: &str, r: &str| pin_proof(s, u, r, b"digest").expect("proof");
        let base = p(&salted, "MBQA", "R1");
        assert_eq!(base, p(&salted, "MBQA", "R1"));
        assert_ne!(base, p(&other, "MBQA", "R1"), "another PIN");
        assert_ne!(base, p(&salted, "MBQB", "R1"), "another account");
        assert_ne!(base, p(&salted, "MBQA", "R2"), "another request");
    }

    #[test]
    fn only_the_canonical_spelling_of_a_pin_id_is_canonical() {
        let s = salted_pin(&new_pin(), ACTION_DEVICE).expect("salt");
        let id = pin_id(&s, "alice@example.com").expect("id");
        assert!(is_canonical_id(&id), "{id}");
        let lower = id.to_lowercase();
        let bare: String = id.chars().filter(|c| *c != '-').collect();
        let cases = [
            ("lower case", lower.as_str()),
            ("without dashes", bare.as_str()),
            ("trailing dash", &format!("{id}-")),
            ("leading dash", &format!("-{id}")),
            (
                "a digit outside base32",
                &id.replacen(|c: char| c.is_ascii_uppercase(), "1", 1),
            ),
            ("empty", ""),
        ];
        for (what, spelled) in cases {
            assert!(!is_canonical_id(spelled), "{what}: {spelled}");
            assert!(udf::udf_eq(spelled, &id) || what.contains("digit") || what == "empty");
        }
    }

    #[test]
    fn pin_chain_is_deterministic_and_keyed() {
        let pin = new_pin();
        assert_eq!(pin.len(), 28 + 6);
        let s = salted_pin(&pin, ACTION_DEVICE).expect("salt");
        assert!(s.starts_with('A'));
        let id1 = pin_id(&s, "Alice@Example.com").expect("id");
        let id2 = pin_id(&s, "alice@example.com").expect("id");
        assert_eq!(id1, id2, "PinId lower-cases the account");
        let other = salted_pin(&new_pin(), ACTION_DEVICE).expect("salt");
        assert_ne!(pin_id(&other, "alice@example.com").expect("id"), id1);
        let w1 = pin_witness(&s, "a", b"n", b"d").expect("w");
        let w2 = pin_witness(&s, "a", b"n", b"e").expect("w");
        assert_ne!(w1, w2);
        assert!(salted_pin("MDDK-7N6A-727A-JZNO-STRX", ACTION_DEVICE).is_err());
    }
}
