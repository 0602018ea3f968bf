/// Errors of the core layer. Messages name the offending value (a key UDF,
/// a field) but never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that does not parse.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// A UDF of the wrong type.
    #[error("expected a {expected} UDF, found a {found} UDF")]
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
