/// Errors of the core layer. Messages name the offending value (a key UDF,
/// a field) but never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that does not parse.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// A UDF of the wrong type.
    #[error("expected {} UDF, found {}", article(expected), found_udf(found))]
    WrongType {
        /// What the caller asked for.
        expected: &'static str,
        /// What the input is.
        found: &'static str,
    },
    /// A presentation precision outside 100..=440 bits.
    #[error("precision of {0} bits is out of range (100 to 440)")]
    Precision(usize),
    /// A public key that is not acceptable.
    #[error("bad key: {0}")]
    BadKey(String),
    /// A signature that does not verify under the named key.
    #[error("signature by key {0} does not verify")]
    BadSignature(String),
    /// A signature by a key outside the authorized set.
    #[error("signature by key {0}, which is not authorized for this object")]
    UnauthorizedSigner(String),
    /// An object with no signature by an authorized key.
    #[error("no signature by an authorized key")]
    Unsigned,
    /// An encrypted envelope with no entry for any of our keys.
    #[error("not encrypted to this device (recipients: {0})")]
    NotRecipient(String),
    /// Authenticated decryption failed.
    #[error("decryption failed: the envelope was modified or is not for this key")]
    Decrypt,
    /// Shamir shares that cannot give the secret.
    #[error("cannot recover the secret: {0}")]
    Shares(String),
    /// JSON that does not match the schema.
    #[error("invalid {what}: {detail}")]
    Json {
        /// The object being parsed.
        what: &'static str,
        /// serde's description.
        detail: String,
    },
}

/// What was found instead: "a share UDF", or "a UDF of an unknown type".
fn found_udf(found: &str) -> String {
    if found == UNKNOWN_TYPE {
        "a UDF of an unknown type".into()
    } else {
        format!("{} UDF", article(found))
    }
}

/// [`Error::WrongType`]'s `found` for a type byte no UDF type has.
pub const UNKNOWN_TYPE: &str = "unknown type";

/// `name` with its indefinite article ("an authenticator", "a nonce").
fn article(name: &str) -> String {
    let vowel = name
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    // Initialisms read letter by letter: "an OID".
    let initialism = name.split_whitespace().next().is_some_and(|w| {
        w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase()) && "AEFHILMNORSX".contains(&w[..1])
    });
    format!("{} {name}", if vowel || initialism { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn articles_read_right() {
        for (name, want) in [
            ("authenticator", "an authenticator"),
            ("unknown", "an unknown"),
            ("encryption key", "an encryption key"),
            ("OID", "an OID"),
            ("nonce", "a nonce"),
            ("secret seed", "a secret seed"),
            ("content digest", "a content digest"),
            ("share", "a share"),
        ] {
            assert_eq!(super::article(name), want);
        }
    }
}
