//! Keys added with `ssh-add`: the private key formats of OpenSSH's
//! `sshkey_private_serialize` (PROTOCOL.agent §"Adding keys"; PROTOCOL.key;
//! PROTOCOL.certkeys; PROTOCOL.u2f for security keys), and signing with
//! them.
//!
//! Accepted: `ssh-ed25519`, `ecdsa-sha2-nistp256/384/521`, `ssh-rsa`
//! (2048 bits and up), `sk-ssh-ed25519@openssh.com`,
//! `sk-ecdsa-sha2-nistp256@openssh.com` and a certificate of each.
//! `ssh-dss` is refused (OpenSSH 10 removed it).

use ssh_encoding::Decode;
use ssh_key::public::KeyData;
use zeroize::Zeroizing;

use crate::wire::{left_pad, put_mpint, put_string, Reader};

/// `SSH_AGENT_RSA_SHA2_256`.
pub(crate) const RSA_SHA2_256: u32 = 2;
/// `SSH_AGENT_RSA_SHA2_512`.
pub(crate) const RSA_SHA2_512: u32 = 4;
const CERT_SUFFIX: &str = "-cert-v01@openssh.com";

/// Why an added key or a key blob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The client sent bytes that are not a key message.
    #[error("the client sent a key message that does not parse")]
    Malformed,
    /// Bytes after the end of the message.
    #[error("the client sent bytes after the end of the message")]
    Trailing,
    /// `ssh-dss`.
    #[error("refused a DSA key (ssh-dss): DSA is not supported")]
    Dsa,
    /// A type the agent does not know.
    #[error("refused a key of unsupported type {0}")]
    Unsupported(String),
    /// The private half is not the public key's (or the certificate's).
    #[error("refused a key whose private half does not match its public key or certificate")]
    Mismatch,
    /// RSA below 2048 bits.
    #[error("refused an RSA key below 2048 bits")]
    RsaTooSmall,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

impl KeyError {
    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            KeyError::Dsa => "OpenSSH 10 removed DSA; make a new key with `ssh-keygen -t ed25519`",
            KeyError::RsaTooSmall => "make a new key with `ssh-keygen -t ed25519` (or RSA of 3072 bits)",
            KeyError::Unsupported(_) => {
                "the agent takes Ed25519, ECDSA, RSA and security keys (sk-*), and their certificates"
            }
            _ => "the key file or the client is damaged; re-create the key with ssh-keygen",
        }
    }
}

/// What signs for an added key.
pub enum Material {
    /// Ed25519 (the expanded key is kept: no per-signature derivation).
    Ed25519(Box<ed25519_dalek::SigningKey>),
    /// ECDSA P-256 with SHA-256.
    P256(Box<p256::ecdsa::SigningKey>),
    /// ECDSA P-384 with SHA-384.
    P384(Box<p384::ecdsa::SigningKey>),
    /// ECDSA P-521 with SHA-512.
    P521(Box<p521::ecdsa::SigningKey>),
    /// RSA, SHA-2 signatures only.
    Rsa(Box<rsa::RsaPrivateKey>),
    /// A security key: OpenSSH's private serialization (the key handle, not
    /// a secret key), which `ssh-sk-helper` reads to sign through the
    /// provider.
    Sk(Vec<u8>),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Material([secret elided])")
    }
}

/// A key (or certificate) from an add request.
pub struct NewKey {
    /// The public key or certificate, exactly as sent: what is listed and matched.
    pub blob: Vec<u8>,
    /// The plain public key.
    pub key: KeyData,
    /// The private half.
    pub material: Material,
    /// Comment shown by `ssh-add -l`.
    pub comment: String,
}

/// The base key type of a certificate type, `None` for a plain type.
fn cert_base(ty: &str) -> Option<String> {
    let base = ty.strip_suffix(CERT_SUFFIX)?;
    Some(if base.starts_with("sk-") {
        format!("{base}@openssh.com")
    } else {
        base.to_owned()
    })
}

fn curve_of(ty: &str) -> Option<&'static str> {
    match ty {
        "ecdsa-sha2-nistp256" | "sk-ecdsa-sha2-nistp256@openssh.com" => Some("nistp256"),
        "ecdsa-sha2-nistp384" => Some("nistp384"),
        "ecdsa-sha2-nistp521" => Some("nistp521"),
        _ => None,
    }
}

/// Read the public fields of a key of type `ty` (after its type name);
/// returns them as they were on the wire.
fn public_fields<'a>(r: &mut Reader<'a>, ty: &str) -> Result<&'a [u8], KeyError> {
    let start = r.0;
    match ty {
        "ssh-ed25519" => {
            r.string()?;
        }
        "sk-ssh-ed25519@openssh.com" => {
            r.string()?;
            r.string()?;
        }
        "ssh-rsa" => {
            r.mpint()?;
            r.mpint()?;
        }
        _ if curve_of(ty).is_some() => {
            if Some(r.str()?) != curve_of(ty) {
                return Err(KeyError::Malformed);
            }
            r.string()?;
            if ty.starts_with("sk-") {
                r.string()?;
            }
        }
        "ssh-dss" => return Err(KeyError::Dsa),
        other => return Err(KeyError::Unsupported(other.to_owned())),
    }
    Ok(&start[..start.len() - r.0.len()])
}

fn plain_blob(ty: &str, fields: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + ty.len() + fields.len());
    put_string(&mut b, ty.as_bytes());
    b.extend_from_slice(fields);
    b
}

/// The plain public key of a blob (a plain key or a certificate), and its
/// type name. A certificate is checked for structure only: its validity
/// (up to 2^64-1, "forever") and signature are for the server to judge.
pub fn plain_public(blob: &[u8]) -> Result<(KeyData, Vec<u8>), KeyError> {
    let mut r = Reader(blob);
    let ty = r.str()?;
    let Some(base) = cert_base(ty) else {
        if ty == "ssh-dss" {
            return Err(KeyError::Dsa);
        }
        let key = KeyData::decode(&mut &blob[..]).map_err(|_| KeyError::Malformed)?;
        return Ok((key, blob.to_vec()));
    };
    r.string()?; // nonce
    let plain = plain_blob(&base, public_fields(&mut r, &base)?);
    r.u64()?; // serial
    r.u32()?; // type
    r.string()?; // key id
    r.string()?; // principals
    r.u64()?; // valid after
    r.u64()?; // valid before
    for _ in 0..5 {
        // critical options, extensions, reserved, signature key, signature
        r.string()?;
    }
    if !r.0.is_empty() {
        return Err(KeyError::Malformed);
    }
    let key = KeyData::decode(&mut &plain[..]).map_err(|_| KeyError::Malformed)?;
    Ok((key, plain))
}

/// When a certificate blob expires: its `valid_before` (seconds since the
/// Unix epoch; it is valid while now is before it, as OpenSSH checks).
/// `None` for a plain key, a certificate valid forever (2^64-1) or one
/// that does not parse.
pub fn cert_valid_before(blob: &[u8]) -> Option<u64> {
    let mut r = Reader(blob);
    let base = cert_base(r.str().ok()?)?;
    r.string().ok()?; // nonce
    public_fields(&mut r, &base).ok()?;
    r.u64().ok()?; // serial
    r.u32().ok()?; // type
    r.string().ok()?; // key id
    r.string().ok()?; // principals
    r.u64().ok()?; // valid after
    r.u64().ok().filter(|&v| v != u64::MAX)
}

/// Parse the key of an add request (`sshkey_private_deserialize`) and its comment.
pub(crate) fn parse_add(r: &mut Reader<'_>) -> Result<NewKey, KeyError> {
    let whole = r.0;
    let ty = r.str()?.to_owned();
    let (blob, public, base) = match cert_base(&ty) {
        Some(base) => {
            let cert = r.string()?;
            let mut cr = Reader(cert);
            if cr.str()? != ty {
                return Err(KeyError::Mismatch);
            }
            let (_, plain) = plain_public(cert)?;
            (cert.to_vec(), Some(plain), base)
        }
        None => (Vec::new(), None, ty.clone()),
    };
    let (material, plain) = private(r, &base, public.as_deref())?;
    // What ssh-sk-helper reads: the whole serialization, type to reserved.
    let material = match material {
        Material::Sk(_) => Material::Sk(whole[..whole.len() - r.0.len()].to_vec()),
        m => m,
    };
    let comment = String::from_utf8_lossy(r.string()?).into_owned();
    let key = KeyData::decode(&mut &plain[..]).map_err(|_| KeyError::Malformed)?;
    let blob = if blob.is_empty() { plain } else { blob };
    Ok(NewKey {
        blob,
        key,
        material,
        comment,
    })
}

/// The private fields of a key of type `ty`; `cert_public` is the plain
/// public blob of its certificate (whose public fields are then not sent).
/// Returns the signer and the plain public blob.
fn private(
    r: &mut Reader<'_>,
    ty: &str,
    cert_public: Option<&[u8]>,
) -> Result<(Material, Vec<u8>), KeyError> {
    // The public fields: sent, except for ECDSA and RSA certificates.
    let sends_public = cert_public.is_none() || ty.contains("ed25519");
    let plain = match (sends_public, cert_public) {
        (true, _) if ty != "ssh-rsa" => plain_blob(ty, public_fields(r, ty)?),
        (_, Some(p)) => p.to_vec(),
        _ => Vec::new(), // plain RSA: n and e come first, below
    };
    if let Some(p) = cert_public {
        // Ed25519 keys repeat the certificate's public key: it must be the same.
        if *p != plain[..] {
            return Err(KeyError::Mismatch);
        }
    }
    let mut pr = Reader(&plain[..]);
    if !plain.is_empty() {
        pr.string()?;
    }
    match ty {
        "ssh-ed25519" => ed25519(r, pr.string()?).map(|m| (m, plain)),
        "ssh-rsa" => rsa_key(r, cert_public),
        "sk-ssh-ed25519@openssh.com" | "sk-ecdsa-sha2-nistp256@openssh.com" => {
            if cert_public.is_some() && ty.starts_with("sk-ecdsa") {
                // The application follows the certificate; it must be the certificate's.
                let mut f = Reader(&plain[..]);
                f.string()?;
                f.string()?;
                f.string()?;
                if r.string()? != f.string()? {
                    return Err(KeyError::Mismatch);
                }
            }
            r.u8()?; // flags
            r.string()?; // key handle
            r.string()?; // reserved
            Ok((Material::Sk(Vec::new()), plain))
        }
        _ => {
            pr.string()?; // curve
            let q = pr.string()?;
            ecdsa(ty, q, r.mpint()?).map(|m| (m, plain))
        }
    }
}

fn ed25519(r: &mut Reader<'_>, pk: &[u8]) -> Result<Material, KeyError> {
    let sk = r.string()?;
    if sk.len() != 64 || pk.len() != 32 {
        return Err(KeyError::Malformed);
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&sk[..32]);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    if key.verifying_key().as_bytes() != pk || &sk[32..] != pk {
        return Err(KeyError::Mismatch);
    }
    Ok(Material::Ed25519(Box::new(key)))
}

/// An ECDSA key from its scalar (an mpint: OpenSSH drops leading zero
/// bytes, so a P-521 scalar is often 65 bytes, not 66) and public point.
fn ecdsa(ty: &str, q: &[u8], d: &[u8]) -> Result<Material, KeyError> {
    macro_rules! curve {
        ($krate:ident, $width:expr, $variant:ident) => {{
            let d = left_pad(d, $width)?;
            let sk = $krate::SecretKey::from_slice(&d).map_err(|_| KeyError::Malformed)?;
            let pk = $krate::PublicKey::from_sec1_bytes(q).map_err(|_| KeyError::Malformed)?;
            if sk.public_key() != pk {
                return Err(KeyError::Mismatch);
            }
            Ok(Material::$variant(Box::new(
                $krate::ecdsa::SigningKey::from(&sk),
            )))
        }};
    }
    match curve_of(ty) {
        Some("nistp256") => curve!(p256, 32, P256),
        Some("nistp384") => curve!(p384, 48, P384),
        Some("nistp521") => {
            let d = left_pad(d, 66)?;
            let sk = p521::SecretKey::from_slice(&d).map_err(|_| KeyError::Malformed)?;
            let pk = p521::PublicKey::from_sec1_bytes(q).map_err(|_| KeyError::Malformed)?;
            if sk.public_key() != pk {
                return Err(KeyError::Mismatch);
            }
            let sk = p521::ecdsa::SigningKey::from_bytes(&sk.to_bytes())
                .map_err(|_| KeyError::Malformed)?;
            Ok(Material::P521(Box::new(sk)))
        }
        _ => Err(KeyError::Unsupported(ty.to_owned())),
    }
}

/// RSA: `n e d iqmp p q`, or for a certificate `d iqmp p q` with `n e` from it.
fn rsa_key(
    r: &mut Reader<'_>,
    cert_public: Option<&[u8]>,
) -> Result<(Material, Vec<u8>), KeyError> {
    use rsa::BigUint as B;
    let (n, e, plain) = match cert_public {
        Some(p) => {
            let mut pr = Reader(p);
            pr.string()?;
            let e = pr.mpint()?;
            let n = pr.mpint()?;
            (B::from_bytes_be(n), B::from_bytes_be(e), p.to_vec())
        }
        None => {
            let n = r.mpint()?;
            let e = r.mpint()?;
            let mut plain = Vec::new();
            put_string(&mut plain, b"ssh-rsa");
            put_mpint(&mut plain, e);
            put_mpint(&mut plain, n);
            (B::from_bytes_be(n), B::from_bytes_be(e), plain)
        }
    };
    let d = B::from_bytes_be(r.mpint()?);
    r.mpint()?; // iqmp: recomputed
    let p = B::from_bytes_be(r.mpint()?);
    let q = B::from_bytes_be(r.mpint()?);
    let k =
        rsa::RsaPrivateKey::from_components(n, e, d, vec![p, q]).map_err(|_| KeyError::Mismatch)?;
    k.validate().map_err(|_| KeyError::Mismatch)?;
    // Below 2048 bits is refused (OpenSSH's own minimum is 1024; we are stricter).
    if rsa::traits::PublicKeyParts::size(&k) < 256 {
        return Err(KeyError::RsaTooSmall);
    }
    Ok((Material::Rsa(Box::new(k)), plain))
}

/// An SSH signature blob: `string algorithm, string signature`.
fn sig_blob(alg: &str, sig: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + alg.len() + sig.len());
    put_string(&mut out, alg.as_bytes());
    put_string(&mut out, sig);
    out
}

fn ecdsa_blob(alg: &str, r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(r.len() + s.len() + 10);
    put_mpint(&mut inner, r);
    put_mpint(&mut inner, s);
    sig_blob(alg, &inner)
}

/// An Ed25519 signature blob.
pub fn ed25519_blob(sig: &[u8; 64]) -> Vec<u8> {
    sig_blob("ssh-ed25519", sig)
}

impl Material {
    /// Sign `data` (all but security keys, which sign through their
    /// provider). RSA needs a SHA-2 flag: no SHA-1.
    pub fn sign(&self, data: &[u8], flags: u32) -> Option<Vec<u8>> {
        use signature::Signer as _;
        match self {
            Material::Ed25519(k) => Some(ed25519_blob(&k.sign(data).to_bytes())),
            Material::P256(k) => {
                let s: p256::ecdsa::Signature = k.try_sign(data).ok()?;
                let (r, s) = s.split_bytes();
                Some(ecdsa_blob("ecdsa-sha2-nistp256", &r, &s))
            }
            Material::P384(k) => {
                let s: p384::ecdsa::Signature = k.try_sign(data).ok()?;
                let (r, s) = s.split_bytes();
                Some(ecdsa_blob("ecdsa-sha2-nistp384", &r, &s))
            }
            Material::P521(k) => {
                let s: p521::ecdsa::Signature = k.try_sign(data).ok()?;
                let (r, s) = s.split_bytes();
                Some(ecdsa_blob("ecdsa-sha2-nistp521", &r, &s))
            }
            Material::Rsa(k) => rsa_sign(k, data, flags),
            Material::Sk(_) => None,
        }
    }
}

/// RSA PKCS#1 v1.5 with SHA-256 or SHA-512 as the flags ask (SHA-256 first,
/// as OpenSSH's `agent_decode_alg`), blinded.
fn rsa_sign(k: &rsa::RsaPrivateKey, data: &[u8], flags: u32) -> Option<Vec<u8>> {
    use rsa::Pkcs1v15Sign;
    use sha2::Digest;
    let mut rng = rand_core::OsRng;
    let (alg, sig) = if flags & RSA_SHA2_256 != 0 {
        let h = sha2::Sha256::digest(data);
        let s = k.sign_with_rng(&mut rng, Pkcs1v15Sign::new::<sha2::Sha256>(), &h);
        ("rsa-sha2-256", s.ok()?)
    } else if flags & RSA_SHA2_512 != 0 {
        let h = sha2::Sha512::digest(data);
        let s = k.sign_with_rng(&mut rng, Pkcs1v15Sign::new::<sha2::Sha512>(), &h);
        ("rsa-sha2-512", s.ok()?)
    } else {
        return None;
    };
    Some(sig_blob(alg, &sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, KeyRequest};
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use signature::Verifier as _;

    /// `SSH_AGENTC_ADD_IDENTITY` of an ECDSA key as OpenSSH's
    /// `sshkey_private_serialize` writes it: the scalar as an mpint.
    fn add_message(ty: &str, curve: &str, q: &[u8], d: &[u8]) -> Vec<u8> {
        let mut m = vec![17];
        put_string(&mut m, ty.as_bytes());
        put_string(&mut m, curve.as_bytes());
        put_string(&mut m, q);
        put_mpint(&mut m, d);
        put_string(&mut m, b"short scalar");
        m
    }

    fn added(msg: &[u8]) -> NewKey {
        match decode(msg) {
            Some(Ok(KeyRequest::Add(k, _))) => *k,
            other => panic!("not an add: {other:?}"),
        }
    }

    /// A scalar whose first byte is zero (1 in 256): OpenSSH sends it one
    /// byte short, and the agent must take it (issue 23.2).
    macro_rules! short_scalar_test {
        ($name:ident, $krate:ident, $ty:expr, $curve:expr) => {
            #[test]
            fn $name() {
                let sk = loop {
                    let sk = $krate::SecretKey::random(&mut rand_core::OsRng);
                    if sk.to_bytes()[0] == 0 {
                        break sk;
                    }
                };
                let q = sk.public_key().to_encoded_point(false);
                let msg = add_message($ty, $curve, q.as_bytes(), &sk.to_bytes());
                let mut short = Reader(&msg[1..]);
                short.string().expect("type");
                short.string().expect("curve");
                short.string().expect("q");
                assert!(short.mpint().expect("d").len() < sk.to_bytes().len());
                let k = added(&msg);
                let sig = k.material.sign(b"data", 0).expect("signs");
                let sig = ssh_key::Signature::decode(&mut &sig[..]).expect("signature");
                k.key.verify(b"data", &sig).expect("verifies");
            }
        };
    }

    short_scalar_test!(
        short_p256_scalar_is_left_padded,
        p256,
        "ecdsa-sha2-nistp256",
        "nistp256"
    );
    short_scalar_test!(
        short_p384_scalar_is_left_padded,
        p384,
        "ecdsa-sha2-nistp384",
        "nistp384"
    );

    #[test]
    fn a_scalar_of_another_key_is_refused() {
        let a = p256::SecretKey::random(&mut rand_core::OsRng);
        let b = p256::SecretKey::random(&mut rand_core::OsRng);
        let q = a.public_key().to_encoded_point(false);
        let msg = add_message(
            "ecdsa-sha2-nistp256",
            "nistp256",
            q.as_bytes(),
            &b.to_bytes(),
        );
        assert!(matches!(decode(&msg), Some(Err(KeyError::Mismatch))));
        // And a scalar wider than the curve's.
        let msg = add_message("ecdsa-sha2-nistp256", "nistp256", q.as_bytes(), &[1u8; 33]);
        assert!(matches!(decode(&msg), Some(Err(KeyError::Malformed))));
    }
}
