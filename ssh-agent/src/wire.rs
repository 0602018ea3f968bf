//! The key-bearing agent messages, decoded here rather than by
//! ssh-agent-lib (RFC 9987 §4.2–§4.5; OpenSSH PROTOCOL.agent and
//! PROTOCOL.certkeys).
//!
//! ssh-key 0.6 cannot hold what OpenSSH sends every day: certificates valid
//! "forever" (`valid_before` = 2^64-1 is above its `i64::MAX` limit),
//! ECDSA scalars sent as short mpints, ECDSA and security-key
//! certificates. So identities are held and matched as the exact public
//! blob the client sent (a certificate stays byte for byte what the CA
//! signed), and private keys are read from the message directly.
//!
//! > The key blob is the public key or certificate in its SSH wire
//! > encoding (RFC 9987 §4.4; `sshkey_equal` in OpenSSH compares them).

use ssh_agent_lib::proto::KeyConstraint;
use ssh_encoding::Decode;
use ssh_key::public::KeyData;
use zeroize::Zeroizing;

use crate::keys::{self, KeyError, NewKey};

/// `SSH_AGENTC_REQUEST_IDENTITIES`.
pub const REQUEST_IDENTITIES: u8 = 11;
/// `SSH_AGENTC_SIGN_REQUEST`.
pub const SIGN_REQUEST: u8 = 13;
/// `SSH_AGENTC_ADD_IDENTITY`.
pub const ADD_IDENTITY: u8 = 17;
/// `SSH_AGENTC_REMOVE_IDENTITY`.
pub const REMOVE_IDENTITY: u8 = 18;
/// `SSH_AGENTC_ADD_ID_CONSTRAINED`.
pub const ADD_ID_CONSTRAINED: u8 = 25;
/// `SSH_AGENT_IDENTITIES_ANSWER`.
const IDENTITIES_ANSWER: u8 = 12;
/// `SSH_AGENT_SIGN_RESPONSE`.
const SIGN_RESPONSE: u8 = 14;

/// A request about keys, decoded by us.
pub enum KeyRequest {
    /// `SSH_AGENTC_REQUEST_IDENTITIES`.
    Identities,
    /// `SSH_AGENTC_SIGN_REQUEST`: key blob, data, flags.
    Sign {
        /// The public key or certificate blob.
        blob: Vec<u8>,
        /// What to sign.
        data: Vec<u8>,
        /// `SSH_AGENT_RSA_SHA2_*`.
        flags: u32,
    },
    /// `SSH_AGENTC_ADD_IDENTITY` / `SSH_AGENTC_ADD_ID_CONSTRAINED`.
    Add(Box<NewKey>, Vec<KeyConstraint>),
    /// `SSH_AGENTC_REMOVE_IDENTITY`: the public key or certificate blob.
    Remove(Vec<u8>),
    /// A well-formed add the agent refuses (DSA): answered with failure,
    /// and the reason logged.
    Refused(KeyError),
}

impl std::fmt::Debug for KeyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        let name = match self {
            KeyRequest::Identities => "Identities",
            KeyRequest::Sign { .. } => "Sign",
            KeyRequest::Add(..) => "Add",
            KeyRequest::Remove(_) => "Remove",
            KeyRequest::Refused(_) => "Refused",
        };
        f.debug_struct(name).finish_non_exhaustive()
    }
}

/// What the agent answers to a key request (other answers are
/// ssh-agent-lib's `Response`).
#[derive(Debug)]
pub enum KeyReply {
    /// `SSH_AGENT_SUCCESS` or `SSH_AGENT_FAILURE`.
    Status(bool),
    /// `SSH_AGENT_IDENTITIES_ANSWER`: (blob, comment) pairs.
    Identities(Vec<(Vec<u8>, String)>),
    /// `SSH_AGENT_SIGN_RESPONSE`: the encoded signature.
    Signature(Vec<u8>),
}

impl KeyReply {
    /// The message body (without the length prefix).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            KeyReply::Status(true) => out.push(6),
            KeyReply::Status(false) => out.push(5),
            KeyReply::Identities(ids) => {
                out.push(IDENTITIES_ANSWER);
                put_u32(out, ids.len());
                for (blob, comment) in ids {
                    put_string(out, blob);
                    put_string(out, comment.as_bytes());
                }
            }
            KeyReply::Signature(sig) => {
                out.push(SIGN_RESPONSE);
                put_string(out, sig);
            }
        }
    }
}

/// Decode a key request: `None` when the message is not one of ours,
/// `Some(Err)` when it is one and does not parse.
pub fn decode(body: &[u8]) -> Option<Result<KeyRequest, KeyError>> {
    let (&kind, rest) = body.split_first()?;
    let mut r = Reader(rest);
    let req = match kind {
        REQUEST_IDENTITIES => Ok(KeyRequest::Identities),
        SIGN_REQUEST => sign(&mut r),
        REMOVE_IDENTITY => r.string().map(|b| KeyRequest::Remove(b.to_vec())),
        ADD_IDENTITY | ADD_ID_CONSTRAINED => match keys::parse_add(&mut r) {
            Ok(k) => constraints(&mut r, kind == ADD_ID_CONSTRAINED)
                .map(|c| KeyRequest::Add(Box::new(k), c)),
            Err(e @ KeyError::Dsa) => Ok(KeyRequest::Refused(e)),
            Err(e) => Err(e),
        },
        _ => return None,
    };
    // The whole body, nothing left over (a refused key is not read to its end).
    Some(req.and_then(|q| match q {
        KeyRequest::Refused(_) => Ok(q),
        _ if r.0.is_empty() => Ok(q),
        _ => Err(KeyError::Trailing),
    }))
}

fn sign(r: &mut Reader<'_>) -> Result<KeyRequest, KeyError> {
    let blob = r.string()?.to_vec();
    let data = r.string()?.to_vec();
    let flags = r.u32()?;
    Ok(KeyRequest::Sign { blob, data, flags })
}

/// The constraints after the key (RFC 9987 §4.2.6), read with ssh-agent-lib.
fn constraints(r: &mut Reader<'_>, constrained: bool) -> Result<Vec<KeyConstraint>, KeyError> {
    let mut out = Vec::new();
    while constrained && !r.0.is_empty() {
        out.push(KeyConstraint::decode(&mut r.0).map_err(|_| KeyError::Malformed)?);
    }
    Ok(out)
}

/// A reader over SSH wire data that borrows.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], KeyError> {
        if self.0.len() < n {
            return Err(KeyError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, KeyError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, KeyError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, KeyError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub(crate) fn string(&mut self) -> Result<&'a [u8], KeyError> {
        let n = usize::try_from(self.u32()?).map_err(|_| KeyError::Malformed)?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, KeyError> {
        std::str::from_utf8(self.string()?).map_err(|_| KeyError::Malformed)
    }

    /// A positive mpint's magnitude, leading zeros dropped (RFC 4251 §5).
    pub(crate) fn mpint(&mut self) -> Result<&'a [u8], KeyError> {
        let b = self.string()?;
        if b.first().is_some_and(|&x| x & 0x80 != 0) {
            return Err(KeyError::Malformed);
        }
        let zeros = b.iter().take_while(|&&x| x == 0).count();
        Ok(&b[zeros..])
    }
}

pub(crate) fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

pub(crate) fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len());
    out.extend_from_slice(s);
}

/// An mpint from a big-endian magnitude (leading zeros dropped, a zero
/// byte added when the top bit is set).
pub(crate) fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let zeros = magnitude.iter().take_while(|&&x| x == 0).count();
    let m = &magnitude[zeros..];
    let pad = m.first().is_some_and(|&x| x & 0x80 != 0);
    put_u32(out, m.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(m);
}

/// A magnitude left-padded with zeros to `width` bytes (an mpint that
/// OpenSSH wrote without its leading zero bytes); longer is an error.
pub(crate) fn left_pad(magnitude: &[u8], width: usize) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if magnitude.len() > width {
        return Err(KeyError::Malformed);
    }
    let mut v = Zeroizing::new(vec![0u8; width]);
    v[width - magnitude.len()..].copy_from_slice(magnitude);
    Ok(v)
}

/// The public key of a blob (plain key or certificate) as ssh-key's type,
/// for fingerprints and host-key comparisons.
pub fn public_of(blob: &[u8]) -> Option<KeyData> {
    keys::plain_public(blob).ok().map(|(k, _)| k)
}
