//! Keys on PKCS#11 tokens (`ssh-add -s PROVIDER`, `ssh-add -e PROVIDER`):
//! smartcards, YubiKey PIV, HSMs. The token keeps the private keys and
//! signs; the agent holds the provider (a loaded module with one logged-in
//! session per token) and the public keys the token lists.
//!
//! As OpenSSH's agent (`ssh-agent.c`, `ssh-pkcs11.c`): the provider's path
//! is canonicalised and must match the allow-list (`ssh-agent -P`, by
//! default OpenSSH's: [`crate::options::DEFAULT_PKCS11_ALLOWLIST`]); public keys come from the token's
//! `CKO_PUBLIC_KEY` objects (RSA, EC on P-256/P-384/P-521) and X.509
//! `CKO_CERTIFICATE` objects; RSA signs with `CKM_RSA_PKCS` over a SHA-2
//! DigestInfo, ECDSA with `CKM_ECDSA` over the hash of the curve's size.
//! The module runs in the agent's process (docs/DESIGN.md, "PKCS#11
//! providers", says why and what that costs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use der::asn1::{ObjectIdentifier, OctetString};
use der::Decode as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest;

use crate::options::AgentOptions;
use ssh_key::public::{EcdsaPublicKey, KeyData, RsaPublicKey};
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, Mpint, Signature};

/// Most keys taken from one provider (a token listing more is cut off).
const MAX_TOKEN_KEYS: usize = 256;

const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 8017 §9.2, note 1).
const DIGEST_INFO_SHA256: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
const DIGEST_INFO_SHA1: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];
const DIGEST_INFO_SHA512: [u8; 19] = [
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

/// What went wrong with a provider or its token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The path does not name a file (the client's mistake).
    #[error("PKCS#11 provider {0:?} not found: {1}")]
    Path(String, std::io::Error),
    /// The canonical path is outside the agent's allow-list.
    #[error("refusing PKCS#11 provider {path}: outside the allow-list {allowed:?}")]
    NotAllowed {
        /// The canonical path.
        path: String,
        /// The allow-list in force.
        allowed: String,
    },
    /// A forwarded connection asked to load a provider.
    #[error("refusing PKCS#11 provider {0} from a forwarded connection")]
    Remote(String),
    /// The provider is loaded and its keys are in the agent.
    #[error("PKCS#11 provider {0} is already loaded")]
    Loaded(String),
    /// `ssh-add -e` of a provider the agent has not loaded.
    #[error("PKCS#11 provider {0} is not loaded")]
    NotLoaded(String),
    /// The library is not a PKCS#11 module, or failed to start.
    #[error("cannot load PKCS#11 provider {0}: {1}")]
    Load(String, CkError),
    /// The token wants a PIN and none was given.
    #[error("token {0:?} needs a PIN")]
    PinRequired(String),
    /// The token refused the PIN.
    #[error("token {0:?} refused the PIN ({1})")]
    Login(String, &'static str),
    /// The provider lists no usable key.
    #[error("PKCS#11 provider {0} has no RSA or ECDSA key")]
    NoKeys(String),
    /// A token operation failed (the token or its module is at fault).
    #[error("PKCS#11 token failed: {0}")]
    Token(CkError),
    /// The token no longer has the key's private half (removed, replaced).
    #[error("the PKCS#11 token no longer has the private key {0:?}")]
    NoPrivateKey(String),
    /// The provider was unloaded (`ssh-add -e`) while the key was in use.
    #[error("PKCS#11 provider {0} was unloaded")]
    Gone(String),
    /// The request cannot be made with this key.
    #[error("unsupported signature request: {0}")]
    Unsupported(&'static str),
}

impl Pkcs11Error {
    /// What to do about it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Pkcs11Error::Path(..) => "give the full path of the token's PKCS#11 library",
            Pkcs11Error::NotAllowed { .. } => {
                "start the agent with -P PATTERN (a comma-separated list) that matches the library"
            }
            Pkcs11Error::Remote(_) => {
                "load providers on the machine that runs the agent (or start it with -O allow-remote-pkcs11)"
            }
            Pkcs11Error::Loaded(_) => "remove it first with ssh-add -e",
            Pkcs11Error::NotLoaded(_) => "ssh-add -l lists what the agent holds",
            Pkcs11Error::Load(..) => "check that the library is a PKCS#11 module for this system",
            Pkcs11Error::PinRequired(_) | Pkcs11Error::Login(..) => {
                "give the token's user PIN when ssh-add asks for it"
            }
            Pkcs11Error::NoKeys(_) => "the token needs an RSA or ECDSA (P-256/384/521) key pair",
            Pkcs11Error::Token(_) | Pkcs11Error::Gone(_) | Pkcs11Error::NoPrivateKey(_) => {
                "check that the token is present; reload it with ssh-add -e and ssh-add -s"
            }
            Pkcs11Error::Unsupported(_) => return None,
        })
    }
}

/// The canonical path of a provider, checked against the allow-list.
pub fn allowed_path(requested: &str, options: &AgentOptions) -> Result<PathBuf, Pkcs11Error> {
    let path =
        std::fs::canonicalize(requested).map_err(|e| Pkcs11Error::Path(requested.into(), e))?;
    let shown = path.to_string_lossy().into_owned();
    if !options.provider_allowed(&shown) {
        return Err(Pkcs11Error::NotAllowed {
            path: shown,
            allowed: options.pkcs11_allowlist.clone(),
        });
    }
    Ok(path)
}

/// A loaded provider: its module and one session per token.
pub struct Provider {
    path: PathBuf,
    ctx: Pkcs11,
    /// `None` once unloaded: signing then fails with [`Pkcs11Error::Gone`].
    sessions: Mutex<Option<Vec<Session>>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A key on a token: its public key and where the token keeps its private half.
#[derive(Debug)]
pub struct TokenKey {
    provider: Arc<Provider>,
    session: usize,
    id: Vec<u8>,
    /// The public key.
    pub public: KeyData,
    /// The object's label (the comment `ssh-add -l` shows).
    pub label: String,
}

impl Provider {
    /// Load the provider at `path` (canonical, allowed), log in to each
    /// initialised token with `pin` and list their keys. The PIN is dropped
    /// (zeroized) on return.
    pub fn load(
        path: &Path,
        pin: SecretString,
    ) -> Result<(Arc<Provider>, Vec<TokenKey>), Pkcs11Error> {
        let shown = path.to_string_lossy().into_owned();
        let ctx = Pkcs11::new(path).map_err(|e| Pkcs11Error::Load(shown.clone(), e))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| Pkcs11Error::Load(shown.clone(), e))?;
        match open_tokens(&ctx, &pin) {
            Ok((sessions, found)) => {
                let provider = Arc::new(Provider {
                    path: path.to_path_buf(),
                    ctx,
                    sessions: Mutex::new(Some(sessions)),
                });
                if found.is_empty() {
                    provider.unload();
                    return Err(Pkcs11Error::NoKeys(shown));
                }
                let keys = found
                    .into_iter()
                    .map(|(session, id, public, label)| TokenKey {
                        provider: provider.clone(),
                        session,
                        id,
                        public,
                        label,
                    })
                    .collect();
                Ok((provider, keys))
            }
            Err(e) => {
                let _ = ctx.finalize();
                Err(e)
            }
        }
    }

    /// Its canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Close its sessions and finalize the module: every later use of its
    /// keys fails with [`Pkcs11Error::Gone`]. The library is unmapped when
    /// the last key referring to it is dropped.
    pub fn unload(&self) {
        let sessions = self.sessions.lock().map(|mut s| s.take());
        if let Ok(Some(sessions)) = sessions {
            drop(sessions);
            let _ = self.ctx.clone().finalize();
        }
    }
}

type Found = (usize, Vec<u8>, KeyData, String);

/// One session per initialised token, logged in with `pin` where the
/// token wants it, and the keys each lists.
fn open_tokens(
    ctx: &Pkcs11,
    pin: &SecretString,
) -> Result<(Vec<Session>, Vec<Found>), Pkcs11Error> {
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(Pkcs11Error::Token)?;
    let mut sessions = Vec::new();
    let mut found: Vec<Found> = Vec::new();
    for slot in slots {
        let info = ctx.get_token_info(slot).map_err(Pkcs11Error::Token)?;
        let label = info.label().trim_end().to_string();
        let session = ctx.open_ro_session(slot).map_err(Pkcs11Error::Token)?;
        if info.login_required() {
            if pin.expose_secret().is_empty() {
                return Err(Pkcs11Error::PinRequired(label));
            }
            match session.login(UserType::User, Some(pin)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                    return Err(Pkcs11Error::Login(label, "PIN incorrect"))
                }
                Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                    return Err(Pkcs11Error::Login(label, "PIN locked"))
                }
                Err(CkError::Pkcs11(RvError::PinLenRange, _)) => {
                    return Err(Pkcs11Error::Login(label, "PIN length out of range"))
                }
                Err(e) => return Err(Pkcs11Error::Token(e)),
            }
        }
        let index = sessions.len();
        for (id, public, label) in list_keys(&session)? {
            if found.len() < MAX_TOKEN_KEYS && !found.iter().any(|f| f.2 == public) {
                found.push((index, id, public, label));
            }
        }
        sessions.push(session);
    }
    Ok((sessions, found))
}

/// The public keys a token lists: its public-key objects, then its X.509
/// certificates (as OpenSSH). Objects it cannot read or does not support
/// are skipped.
fn list_keys(session: &Session) -> Result<Vec<(Vec<u8>, KeyData, String)>, Pkcs11Error> {
    let mut out = Vec::new();
    let pubs = session
        .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])
        .map_err(Pkcs11Error::Token)?;
    for obj in pubs {
        let attrs = session.get_attributes(
            obj,
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::KeyType,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcParams,
                AttributeType::EcPoint,
            ],
        );
        if let Some(found) = attrs.ok().and_then(|a| public_of(&a)) {
            out.push(found);
        }
    }
    let certs = session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
        ])
        .map_err(Pkcs11Error::Token)?;
    for obj in certs {
        let attrs = session.get_attributes(
            obj,
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::Value,
            ],
        );
        if let Some(found) = attrs.ok().and_then(|a| cert_public(&a)) {
            out.push(found);
        }
    }
    Ok(out)
}

fn bytes_of(attrs: &[Attribute], t: AttributeType) -> Option<&[u8]> {
    attrs.iter().find_map(|a| match (a, t) {
        (Attribute::Id(v), AttributeType::Id)
        | (Attribute::Label(v), AttributeType::Label)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent)
        | (Attribute::EcParams(v), AttributeType::EcParams)
        | (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::Value(v), AttributeType::Value) => Some(v.as_slice()),
        _ => None,
    })
}

fn id_and_label(attrs: &[Attribute]) -> (Vec<u8>, String) {
    let id = bytes_of(attrs, AttributeType::Id)
        .unwrap_or_default()
        .to_vec();
    let label = bytes_of(attrs, AttributeType::Label)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    (id, label)
}

/// The SSH public key of a `CKO_PUBLIC_KEY` object.
fn public_of(attrs: &[Attribute]) -> Option<(Vec<u8>, KeyData, String)> {
    let kind = attrs.iter().find_map(|a| match a {
        Attribute::KeyType(k) => Some(*k),
        _ => None,
    })?;
    let key = if kind == KeyType::RSA {
        rsa_public(
            bytes_of(attrs, AttributeType::Modulus)?,
            bytes_of(attrs, AttributeType::PublicExponent)?,
        )?
    } else if kind == KeyType::EC {
        let params = ObjectIdentifier::from_der(bytes_of(attrs, AttributeType::EcParams)?).ok()?;
        // CKA_EC_POINT is a DER OCTET STRING around the SEC1 point.
        let point = OctetString::from_der(bytes_of(attrs, AttributeType::EcPoint)?).ok()?;
        ec_public(&params, point.as_bytes())?
    } else {
        return None;
    };
    let (id, label) = id_and_label(attrs);
    Some((id, key, label))
}

/// The SSH public key of an X.509 `CKO_CERTIFICATE` object.
fn cert_public(attrs: &[Attribute]) -> Option<(Vec<u8>, KeyData, String)> {
    let cert = x509_cert::Certificate::from_der(bytes_of(attrs, AttributeType::Value)?).ok()?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let bits = spki.subject_public_key.as_bytes()?;
    let key = if spki.algorithm.oid == OID_RSA {
        let (n, e) = rsa_components(bits)?;
        rsa_public(&n, &e)?
    } else if spki.algorithm.oid == OID_EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki.algorithm.parameters.as_ref()?.decode_as().ok()?;
        ec_public(&curve, bits)?
    } else {
        return None;
    };
    let (id, mut label) = id_and_label(attrs);
    if label.is_empty() {
        label = cert.tbs_certificate.subject.to_string();
    }
    Some((id, key, label))
}

/// n and e of a DER RSAPublicKey (RFC 8017 A.1.1).
fn rsa_components(der_key: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut reader = der::SliceReader::new(der_key).ok()?;
    let (n, e) = der::Reader::sequence(&mut reader, |r| {
        let n = der::asn1::UintRef::decode(r)?;
        let e = der::asn1::UintRef::decode(r)?;
        Ok((n.as_bytes().to_vec(), e.as_bytes().to_vec()))
    })
    .ok()?;
    Some((n, e))
}

fn rsa_public(n: &[u8], e: &[u8]) -> Option<KeyData> {
    let key = RsaPublicKey {
        e: Mpint::from_positive_bytes(e).ok()?,
        n: Mpint::from_positive_bytes(n).ok()?,
    };
    // The agent's own floor for RSA (agent.rs, `rsa_key`): 2048 bits.
    let bits = key.n.as_positive_bytes()?.len() * 8;
    (bits >= 2048).then_some(KeyData::Rsa(key))
}

fn ec_public(curve: &ObjectIdentifier, point: &[u8]) -> Option<KeyData> {
    let want = match *curve {
        c if c == OID_P256 => EcdsaCurve::NistP256,
        c if c == OID_P384 => EcdsaCurve::NistP384,
        c if c == OID_P521 => EcdsaCurve::NistP521,
        _ => return None,
    };
    let key = EcdsaPublicKey::from_sec1_bytes(point).ok()?;
    // Uncompressed points of the named curve only (what SSH sends).
    (key.curve() == want && point.first() == Some(&4)).then_some(KeyData::Ecdsa(key))
}

impl TokenKey {
    /// The provider this key belongs to.
    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    /// Have the token sign `data` as an SSH signature of this key (`flags`:
    /// `SSH_AGENT_RSA_SHA2_*`). Blocks on the token: call it off the runtime.
    pub fn sign(&self, data: &[u8], flags: u32) -> Result<Signature, Pkcs11Error> {
        let gone = || Pkcs11Error::Gone(self.provider.path.to_string_lossy().into_owned());
        let guard = self.provider.sessions.lock().map_err(|_| gone())?;
        let session = guard
            .as_ref()
            .and_then(|s| s.get(self.session))
            .ok_or_else(gone)?;
        let (mech, input, alg) = match &self.public {
            KeyData::Rsa(_) => rsa_input(data, flags)?,
            KeyData::Ecdsa(k) => {
                let curve = k.curve();
                let hash = match curve {
                    EcdsaCurve::NistP256 => sha2::Sha256::digest(data).to_vec(),
                    EcdsaCurve::NistP384 => sha2::Sha384::digest(data).to_vec(),
                    EcdsaCurve::NistP521 => sha2::Sha512::digest(data).to_vec(),
                };
                (Mechanism::Ecdsa, hash, Algorithm::Ecdsa { curve })
            }
            _ => return Err(Pkcs11Error::Unsupported("key type")),
        };
        let key = self.private_key(session)?;
        let raw = session
            .sign(&mech, key, &input)
            .map_err(Pkcs11Error::Token)?;
        let blob = match alg {
            Algorithm::Ecdsa { curve } => ecdsa_blob(&raw, curve)?,
            _ => raw,
        };
        let alg = match alg {
            Algorithm::Rsa { hash: None } => {
                ssh_key::AlgorithmName::new(crate::server::SSH_RSA_SHA1)
                    .map(Algorithm::Other)
                    .map_err(|_| Pkcs11Error::Unsupported("ssh-rsa"))?
            }
            alg => alg,
        };
        Signature::new(alg, blob).map_err(|_| Pkcs11Error::Unsupported("token's signature"))
    }

    /// The private-key object with this key's CKA_ID: one that may sign,
    /// else any (as OpenSSH: some tokens leave CKA_SIGN unset).
    fn private_key(
        &self,
        session: &Session,
    ) -> Result<cryptoki::object::ObjectHandle, Pkcs11Error> {
        let mut template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(self.id.clone()),
            Attribute::Sign(true),
        ];
        for _ in 0..2 {
            let found = session
                .find_objects(&template)
                .map_err(Pkcs11Error::Token)?;
            if let [one] = found.as_slice() {
                return Ok(*one);
            }
            template.pop();
        }
        Err(Pkcs11Error::NoPrivateKey(self.label.clone()))
    }
}

/// `CKM_RSA_PKCS` over the DigestInfo of the requested hash: SHA-2 when a
/// flag asks for it, else SHA-1 (`ssh-rsa`, what `ssh-add -T` asks for;
/// OpenSSH's agent signs it too, and servers decide whether to accept it).
fn rsa_input(
    data: &[u8],
    flags: u32,
) -> Result<(Mechanism<'static>, Vec<u8>, Algorithm), Pkcs11Error> {
    // Both flags: SHA-256, as OpenSSH's agent (and `keys.rs`) choose.
    let (mut input, hash, alg) = if flags & crate::keys::RSA_SHA2_256 != 0 {
        let h = sha2::Sha256::digest(data).to_vec();
        (DIGEST_INFO_SHA256.to_vec(), h, Some(HashAlg::Sha256))
    } else if flags & crate::keys::RSA_SHA2_512 != 0 {
        let h = sha2::Sha512::digest(data).to_vec();
        (DIGEST_INFO_SHA512.to_vec(), h, Some(HashAlg::Sha512))
    } else {
        (
            DIGEST_INFO_SHA1.to_vec(),
            sha1::Sha1::digest(data).to_vec(),
            None,
        )
    };
    input.extend_from_slice(&hash);
    Ok((Mechanism::RsaPkcs, input, Algorithm::Rsa { hash: alg }))
}

/// The SSH form of a token's ECDSA signature: r || s (each the field's
/// width) become two mpints.
fn ecdsa_blob(raw: &[u8], curve: EcdsaCurve) -> Result<Vec<u8>, Pkcs11Error> {
    use ssh_encoding::Encode;
    let bad = || Pkcs11Error::Unsupported("token's ECDSA signature");
    let width = match curve {
        EcdsaCurve::NistP256 => 32,
        EcdsaCurve::NistP384 => 48,
        EcdsaCurve::NistP521 => 66,
    };
    if raw.len() != 2 * width {
        return Err(bad());
    }
    let (r, s) = raw.split_at(width);
    let mut blob = Vec::with_capacity(raw.len() + 10);
    for half in [r, s] {
        Mpint::from_positive_bytes(half)
            .map_err(|_| bad())?
            .encode(&mut blob)
            .map_err(|_| bad())?;
    }
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowing(list: &str) -> AgentOptions {
        AgentOptions {
            pkcs11_allowlist: list.into(),
            ..AgentOptions::default()
        }
    }

    #[test]
    fn openssh_default_allow_list() {
        let ok = |p: &str| allowed_path(p, &AgentOptions::default()).is_ok();
        let softhsm = "/usr/lib/softhsm/libsofthsm2.so";
        if std::path::Path::new(softhsm).exists() {
            assert!(ok(softhsm));
        }
        let outside = std::env::temp_dir().join(format!("mesh-p11-out-{}", std::process::id()));
        std::fs::write(&outside, b"").expect("file");
        assert!(!ok(outside.to_str().expect("utf8")));
        let _ = std::fs::remove_file(&outside);
    }

    #[test]
    fn a_path_outside_the_list_is_refused_after_canonicalisation() {
        let dir = std::env::temp_dir().join(format!("mesh-p11-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let lib = dir.join("lib.so");
        std::fs::write(&lib, b"").expect("lib");
        // A symlink under /usr/lib-like names does not help: the target counts.
        let link = dir.join("usr-lib-link.so");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&lib, &link).expect("link");
        let allowed = allowing(&format!("{}/usr-lib-*", dir.display()));
        assert!(matches!(
            allowed_path(link.to_str().expect("utf8"), &allowed),
            Err(Pkcs11Error::NotAllowed { .. })
        ));
        let allowed = allowing(&format!("{}/lib.so", dir.display()));
        assert_eq!(
            allowed_path(link.to_str().expect("utf8"), &allowed).expect("allowed"),
            std::fs::canonicalize(&lib).expect("canon")
        );
        assert!(matches!(
            allowed_path("/nonexistent/p11.so", &allowing("*")),
            Err(Pkcs11Error::Path(..))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ecdsa_signature_halves_become_mpints() {
        let mut raw = vec![0u8; 64];
        raw[31] = 1; // r = 1
        raw[32] = 0x80; // s has its top bit set: the mpint gets a zero byte
        let blob = ecdsa_blob(&raw, EcdsaCurve::NistP256).expect("blob");
        assert_eq!(&blob[..5], &[0, 0, 0, 1, 1]);
        assert_eq!(&blob[5..10], &[0, 0, 0, 33, 0]);
        assert!(ecdsa_blob(&raw[..63], EcdsaCurve::NistP256).is_err());
        assert!(Signature::new(
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256
            },
            blob
        )
        .is_ok());
    }

    #[test]
    fn rsa_digest_info_follows_the_flags() {
        let (_, input, alg) = rsa_input(b"data", crate::keys::RSA_SHA2_256).expect("input");
        assert_eq!(input.len(), 19 + 32);
        assert_eq!(alg.as_str(), "rsa-sha2-256");
        let (_, input, alg) = rsa_input(b"data", crate::keys::RSA_SHA2_512).expect("input");
        assert_eq!(input.len(), 19 + 64);
        assert_eq!(alg.as_str(), "rsa-sha2-512");
        let (_, input, alg) = rsa_input(b"data", 0).expect("input");
        assert_eq!(input.len(), 15 + 20);
        assert_eq!(alg.as_str(), "ssh-rsa");
    }
}
