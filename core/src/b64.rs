//! Base64url without padding (RFC 4648 §5), the binary encoding in Mesh JSON.

use crate::Error;

/// Encode.
pub fn encode(b: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(b)
}

/// Decode; padding or the standard alphabet is an error.
pub fn decode(s: &str) -> Result<Vec<u8>, Error> {
    data_encoding::BASE64URL_NOPAD
        .decode(s.as_bytes())
        .map_err(|e| Error::Malformed(format!("base64url: {e}")))
}

/// Serde helper for `Vec<u8>` fields carried as base64url strings.
pub mod serde_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize.
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(b))
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::decode(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helper for `Arc<[u8]>` fields carried as base64url strings.
pub mod serde_shared_bytes {
    use std::sync::Arc;

    use serde::{Deserializer, Serializer};

    /// Serialize.
    pub fn serialize<S: Serializer>(b: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        super::serde_bytes::serialize(b, s)
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        super::serde_bytes::deserialize(d).map(Arc::from)
    }
}

/// Serde helper for `Option<Vec<u8>>` fields carried as base64url strings.
pub mod serde_opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize.
    pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_some(&super::encode(b)),
            None => s.serialize_none(),
        }
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::decode(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
