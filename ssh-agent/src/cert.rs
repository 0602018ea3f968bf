//! What servers use: user certificates from the account's SSH CA
//! (OpenSSH PROTOCOL.certkeys), authorized_keys lines, and KRLs
//! (OpenSSH PROTOCOL.krl).
//!
//! The KRL writer is hand-written: no Rust crate writes KRLs. It emits the
//! two sections we need, both of which sshd and `ssh-keygen -Q` read:
//! revoked certificate serials under the account's CA, and SHA-256 hashes
//! of revoked plain keys (which also revokes every certificate of them).

use mesh_core::keys::SigningKey as MeshKey;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, Certificate, HashAlg, Signature};

use crate::agent::mesh_public;

/// Errors making certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// ssh-key refused.
    #[error("certificate: {0}")]
    Ssh(#[from] ssh_key::Error),
}

/// The account's CA as an ssh-key signer.
struct CaSigner<'a>(&'a MeshKey);

impl signature::Signer<Signature> for CaSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<Signature, signature::Error> {
        Signature::new(Algorithm::Ed25519, self.0.sign(msg).to_bytes().to_vec())
            .map_err(|_| signature::Error::new())
    }
}

impl<'a> From<&CaSigner<'a>> for KeyData {
    fn from(s: &CaSigner<'a>) -> KeyData {
        mesh_public(s.0)
    }
}

/// What a user certificate says.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// The device's SSH key.
    pub key: KeyData,
    /// Unique serial (what KRLs revoke).
    pub serial: u64,
    /// Key id: names the device in sshd's log.
    pub key_id: String,
    /// Login names it is valid for.
    pub principals: Vec<String>,
    /// Seconds since the Unix epoch.
    pub valid_after: u64,
    /// Seconds since the Unix epoch.
    pub valid_before: u64,
}

/// Issue a user certificate signed by the CA, with the usual permissions
/// (those `ssh-keygen -s` grants by default).
pub fn issue(ca: &MeshKey, req: &CertRequest) -> Result<Certificate, CertError> {
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let mut b = Builder::new(
        nonce.to_vec(),
        req.key.clone(),
        req.valid_after,
        req.valid_before,
    )?;
    b.serial(req.serial)?;
    b.cert_type(CertType::User)?;
    b.key_id(req.key_id.clone())?;
    for p in &req.principals {
        b.valid_principal(p.clone())?;
    }
    for e in [
        "permit-X11-forwarding",
        "permit-agent-forwarding",
        "permit-port-forwarding",
        "permit-pty",
        "permit-user-rc",
    ] {
        b.extension(e, "")?;
    }
    Ok(b.sign(&CaSigner(ca))?)
}

/// The CA's public key line for `TrustedUserCAKeys`.
pub fn ca_line(ca: &KeyData, comment: &str) -> String {
    let k = ssh_key::PublicKey::new(ca.clone(), comment);
    k.to_openssh().unwrap_or_default()
}

/// An authorized_keys line.
pub fn key_line(key: &KeyData, comment: &str) -> String {
    ssh_key::PublicKey::new(key.clone(), comment)
        .to_openssh()
        .unwrap_or_default()
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s);
}

fn key_blob(k: &KeyData) -> Vec<u8> {
    let mut b = Vec::new();
    let _ = ssh_encoding::Encode::encode(k, &mut b);
    b
}

/// A KRL revoking `serials` under `ca` and every key in `keys`.
///
/// > KRL_MAGIC, KRL_FORMAT_VERSION, krl_version, generated_date, flags,
/// > reserved, comment; then sections: byte type, string data.
pub fn krl(
    ca: &KeyData,
    serials: &[u64],
    keys: &[KeyData],
    version: u64,
    now: u64,
    comment: &str,
) -> Vec<u8> {
    const KRL_MAGIC: u64 = 0x5353_484b_524c_0a00;
    const KRL_SECTION_CERTIFICATES: u8 = 1;
    const KRL_SECTION_FINGERPRINT_SHA256: u8 = 5;
    const KRL_SECTION_CERT_SERIAL_LIST: u8 = 0x20;
    let mut out = Vec::new();
    put_u64(&mut out, KRL_MAGIC);
    put_u32(&mut out, 1);
    put_u64(&mut out, version);
    put_u64(&mut out, now);
    put_u64(&mut out, 0);
    put_string(&mut out, b"");
    put_string(&mut out, comment.as_bytes());
    if !serials.is_empty() {
        let mut list: Vec<u64> = serials.to_vec();
        list.sort_unstable();
        list.dedup();
        let mut sub = Vec::new();
        for s in list {
            put_u64(&mut sub, s);
        }
        let mut section = Vec::new();
        put_string(&mut section, &key_blob(ca));
        put_string(&mut section, b"");
        section.push(KRL_SECTION_CERT_SERIAL_LIST);
        put_string(&mut section, &sub);
        out.push(KRL_SECTION_CERTIFICATES);
        put_string(&mut out, &section);
    }
    if !keys.is_empty() {
        // Hashes in ascending order, as sshd's reader expects.
        let mut hashes: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| {
                use sha2::Digest;
                sha2::Sha256::digest(key_blob(k)).to_vec()
            })
            .collect();
        hashes.sort();
        hashes.dedup();
        let mut section = Vec::new();
        for h in hashes {
            put_string(&mut section, &h);
        }
        out.push(KRL_SECTION_FINGERPRINT_SHA256);
        put_string(&mut out, &section);
    }
    out
}

/// SHA-256 fingerprint as OpenSSH prints it.
pub fn fingerprint(k: &KeyData) -> String {
    k.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_verify_under_the_ca() {
        let ca = MeshKey::combine(&MeshKey::from_seed(&[1; 32]), &MeshKey::from_seed(&[2; 32]));
        let dev = MeshKey::from_seed(&[3; 32]);
        let cert = issue(
            &ca,
            &CertRequest {
                key: mesh_public(&dev),
                serial: 7,
                key_id: "laptop".into(),
                principals: vec!["alice".into()],
                valid_after: 1,
                valid_before: u64::MAX / 2,
            },
        )
        .expect("issue");
        let fp = mesh_public(&ca).fingerprint(HashAlg::Sha256);
        cert.validate_at(1000, [&fp]).expect("valid under the CA");
        assert_eq!(cert.serial(), 7);
        assert_eq!(cert.valid_principals(), ["alice".to_string()]);
    }
}
