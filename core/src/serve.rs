//! What a portal serves on an account's behalf (PROTOCOL.md §18): the
//! optional `Serve` member of a Published `CatalogedApplication` entry's
//! `Data` ([`of`]).
//! The account signs the entry; the portal only indexes and serves its
//! bytes (files by name, OCSP answers by issuer key hash and serial), so
//! it can at worst withhold them. Sans-io: the checks here are the whole
//! of what a portal accepts.

use serde::{Deserialize, Serialize};

/// Most bytes of a `Serve` member, as compact JSON.
pub const MAX_SERVE_BYTES: usize = 1 << 20;
/// Most OCSP answers in one `Serve` member.
pub const MAX_OCSP: usize = 4096;
/// Most files in one `Serve` member.
pub const MAX_FILES: usize = 64;
/// Most characters of a file name.
pub const MAX_NAME: usize = 64;
/// Most characters of a content type.
pub const MAX_CONTENT_TYPE: usize = 127;
/// Most hex digits of a serial number (RFC 5280 §4.1.2.2: 20 octets).
pub const MAX_SERIAL_HEX: usize = 40;
/// A file name the OCSP path takes (`/pki/<udf>/ocsp`).
pub const RESERVED_NAME: &str = "ocsp";

/// The `Serve` member.
/// Members a newer writer adds are ignored, as on every signed object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serve {
    /// Files served by name.
    #[serde(rename = "Files", default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ServedFile>,
    /// Pre-signed OCSP answers.
    #[serde(rename = "Ocsp", default, skip_serializing_if = "Vec::is_empty")]
    pub ocsp: Vec<ServedOcsp>,
}

/// A file (`GET /pki/<ProfileUdf>/<Name>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedFile {
    /// `[a-z0-9][a-z0-9.-]{0,63}`, not `ocsp`.
    #[serde(rename = "Name")]
    pub name: String,
    /// The HTTP Content-Type it is served with.
    #[serde(rename = "ContentType")]
    pub content_type: String,
    /// The bytes, base64 (RFC 4648 §4; the URL-safe alphabet and missing
    /// padding are accepted too).
    #[serde(rename = "Body")]
    pub body: String,
}

/// A pre-signed OCSP answer for one certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedOcsp {
    /// Lowercase hex of the SHA-1 of the issuer's subjectPublicKey (the
    /// BIT STRING's value): the CertID's `issuerKeyHash`.
    #[serde(rename = "IssuerKeyHash")]
    pub issuer_key_hash: String,
    /// Lowercase hex of the serial number without leading zeros.
    #[serde(rename = "Serial")]
    pub serial: String,
    /// The answer's nextUpdate, seconds since the epoch (for caching).
    #[serde(rename = "NextUpdate")]
    pub next_update: u64,
    /// The DER OCSPResponse, base64 (as [`ServedFile::body`]).
    #[serde(rename = "Response")]
    pub response: String,
}

/// A checked file, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Name.
    pub name: String,
    /// Content-Type.
    pub content_type: String,
    /// Bytes.
    pub body: Vec<u8>,
}

/// A checked OCSP answer, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Lowercase hex, 40 digits.
    pub issuer_key_hash: String,
    /// Lowercase hex, no leading zeros.
    pub serial: String,
    /// Seconds since the epoch.
    pub next_update: u64,
    /// DER OCSPResponse.
    pub response: Vec<u8>,
}

/// What a checked `Serve` member gives the portal's index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Files, in order (a later one of a name wins).
    pub files: Vec<File>,
    /// Answers, in order (a later one of a key wins).
    pub ocsp: Vec<Answer>,
}

/// Why a `Serve` member is refused: the writer's (the account's
/// administrator's) fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeError {
    /// Over a size or count limit.
    #[error("Serve: {0} (hint: split the answers over several Published entries)")]
    TooLarge(String),
    /// A member that is not as PROTOCOL.md §18 says.
    #[error("Serve: {0} (hint: the writer must follow PROTOCOL.md §18)")]
    Malformed(String),
}

impl Serve {
    /// Check every member and decode the bytes.
    pub fn check(&self) -> Result<Checked, ServeError> {
        let size = serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SERVE_BYTES {
            return Err(ServeError::TooLarge(format!(
                "{size} bytes of JSON, more than {MAX_SERVE_BYTES}"
            )));
        }
        if self.ocsp.len() > MAX_OCSP {
            return Err(ServeError::TooLarge(format!(
                "{} OCSP answers, more than {MAX_OCSP}",
                self.ocsp.len()
            )));
        }
        if self.files.len() > MAX_FILES {
            return Err(ServeError::TooLarge(format!(
                "{} files, more than {MAX_FILES}",
                self.files.len()
            )));
        }
        let files = self
            .files
            .iter()
            .map(|f| f.check())
            .collect::<Result<_, _>>()?;
        let ocsp = self
            .ocsp
            .iter()
            .map(|a| a.check())
            .collect::<Result<_, _>>()?;
        Ok(Checked { files, ocsp })
    }
}

impl ServedFile {
    fn check(&self) -> Result<File, ServeError> {
        check_name(&self.name)?;
        check_content_type(&self.content_type)?;
        let body = decode(&self.body)
            .map_err(|e| bad(format!("file {}: Body is not base64: {e}", self.name)))?;
        Ok(File {
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            body,
        })
    }
}

impl ServedOcsp {
    fn check(&self) -> Result<Answer, ServeError> {
        let k = &self.issuer_key_hash;
        if k.len() != 40 || !is_lower_hex(k) {
            return Err(bad(format!(
                "IssuerKeyHash {:?} is not 40 lowercase hex digits (a SHA-1)",
                clip(k)
            )));
        }
        let s = &self.serial;
        if s.is_empty()
            || s.len() > MAX_SERIAL_HEX
            || !is_lower_hex(s)
            || (s.len() > 1 && s.starts_with('0'))
        {
            return Err(bad(format!(
                "Serial {:?} is not 1 to {MAX_SERIAL_HEX} lowercase hex digits without leading zeros",
                clip(s)
            )));
        }
        let response = decode(&self.response).map_err(|e| {
            bad(format!(
                "answer for serial {s}: Response is not base64: {e}"
            ))
        })?;
        // A DER OCSPResponse is a SEQUENCE; anything else is no answer.
        if response.first() != Some(&0x30) {
            return Err(bad(format!(
                "answer for serial {s}: Response is not a DER OCSPResponse"
            )));
        }
        Ok(Answer {
            issuer_key_hash: k.clone(),
            serial: s.clone(),
            next_update: self.next_update,
            response,
        })
    }
}

/// The `Serve` member of an entry: `Data.Serve` (what writers use: a
/// client before issue 28 reads any `Data`, but refuses an entry with a
/// top-level member it does not know) or the top-level `Serve` (read the
/// same); both at once is refused as ambiguous.
pub fn of(app: &crate::objects::CatalogedApplication) -> Result<Option<Serve>, ServeError> {
    let inner = match app.data.get("Serve") {
        Some(v) => Some(
            Serve::deserialize(v).map_err(|e| bad(format!("Data.Serve does not parse: {e}")))?,
        ),
        None => None,
    };
    match (inner, app.serve.clone()) {
        (Some(_), Some(_)) => Err(bad(
            "the entry has both Data.Serve and a top-level Serve; write Data.Serve only".into(),
        )),
        (inner, top) => Ok(inner.or(top)),
    }
}

/// The lookup key of a DER serial number's content octets: lowercase hex
/// without leading zeros (`0` for zero).
pub fn serial_hex(der_content: &[u8]) -> String {
    let hex = data_encoding::HEXLOWER.encode(der_content);
    let t = hex.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

/// Whether `name` may name a served file.
pub fn check_name(name: &str) -> Result<(), ServeError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name != RESERVED_NAME;
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "file name {:?} is not [a-z0-9][a-z0-9.-]{{0,63}} (and not {RESERVED_NAME:?})",
            clip(name)
        )))
    }
}

fn check_content_type(ct: &str) -> Result<(), ServeError> {
    let ok = !ct.is_empty()
        && ct.len() <= MAX_CONTENT_TYPE
        && ct.contains('/')
        && ct.bytes().all(|b| (0x20..0x7f).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "ContentType {:?} is not a printable ASCII media type of at most {MAX_CONTENT_TYPE} characters",
            clip(ct)
        )))
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Standard base64 first, then the URL-safe alphabet, padded or not (what
/// `Serve` members and RFC 6960 Appendix A.1 GET requests carry).
pub fn decode(s: &str) -> Result<Vec<u8>, data_encoding::DecodeError> {
    use data_encoding::{BASE64, BASE64URL, BASE64URL_NOPAD, BASE64_NOPAD};
    let b = s.as_bytes();
    BASE64
        .decode(b)
        .or_else(|_| BASE64_NOPAD.decode(b))
        .or_else(|_| BASE64URL.decode(b))
        .or_else(|_| BASE64URL_NOPAD.decode(b))
}

/// At most 80 characters of a writer's value in an error.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

fn bad(m: String) -> ServeError {
    ServeError::Malformed(m)
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
