//! `mesh-smime`: the S/MIME plugin. The account's personal CA (ECDSA
//! P-256, derived from the account seed, so escrow rebuilds it) certifies
//! each device's S/MIME signing key (P-256, derived from the device seed)
//! for the account's address (RFC 8550/8551: emailProtection EKU,
//! rfc822Name subjectAltName, digitalSignature).
//!
//! ECDSA signatures here are deterministic (RFC 6979, through the `p256`
//! crate), so the CA certificate too is a function of the seed.
//! PKCS#12, CMS, the shared encryption certificate and the CRL are the
//! remaining work of the S/MIME issue (docs/DESIGN.md).
#![forbid(unsafe_code)]

use mesh_core::objects::Role;
use mesh_plugins::Plugin;
use p256::ecdsa::signature::Signer;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
    PKCS_ECDSA_P256_SHA256,
};

/// The S/MIME plugin.
#[derive(Debug, Default)]
pub struct SmimePlugin;

impl Plugin for SmimePlugin {
    fn name(&self) -> &'static str {
        "smime"
    }

    fn role(&self) -> Role {
        Role::Smime
    }
}

/// Errors issuing certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmimeError {
    /// rcgen refused.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A public key that is not a P-256 point.
    #[error("not a P-256 public key")]
    BadKey,
    /// A validity time out of range.
    #[error("certificate validity {0} is out of range")]
    Time(i64),
}

/// A P-256 signing key as rcgen's signer (deterministic ECDSA, RFC 6979).
pub struct P256Signer {
    key: p256::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for P256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P256Signer").finish_non_exhaustive()
    }
}

impl P256Signer {
    /// Wrap a key.
    pub fn new(key: p256::ecdsa::SigningKey) -> P256Signer {
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        P256Signer { key, public }
    }
}

impl PublicKeyData for P256Signer {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256Signer {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: p256::ecdsa::Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// A device's public P-256 key (uncompressed SEC1 point).
#[derive(Debug, Clone)]
pub struct P256Public(Vec<u8>);

impl P256Public {
    /// Check and wrap an uncompressed point.
    pub fn new(sec1: &[u8]) -> Result<P256Public, SmimeError> {
        p256::PublicKey::from_sec1_bytes(sec1).map_err(|_| SmimeError::BadKey)?;
        if sec1.first() != Some(&4) {
            return Err(SmimeError::BadKey);
        }
        Ok(P256Public(sec1.to_vec()))
    }
}

impl PublicKeyData for P256Public {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

fn ca_params(address: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Mesh");
    dn.push(
        DnType::CommonName,
        format!("Mesh personal CA for {address}"),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // Fixed: the CA certificate is a function of the account seed.
    p.not_before = rcgen::date_time_ymd(2026, 1, 1);
    p.not_after = rcgen::date_time_ymd(2046, 1, 1);
    p.serial_number = Some(SerialNumber::from_slice(&[1]));
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

/// The account's CA certificate (PEM).
pub fn ca_certificate(ca: &P256Signer, address: &str) -> Result<String, SmimeError> {
    Ok(ca_params(address).self_signed(ca)?.pem())
}

/// What a device signing certificate says.
#[derive(Debug, Clone)]
pub struct SigningCert<'a> {
    /// The account address (rfc822Name).
    pub address: &'a str,
    /// The device's name (in the subject).
    pub device_name: &'a str,
    /// Serial number (unique per CA).
    pub serial: u64,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

/// A device's S/MIME signing certificate (PEM), issued by the CA.
pub fn signing_certificate(
    ca: &P256Signer,
    device: &P256Public,
    c: &SigningCert<'_>,
) -> Result<String, SmimeError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("{} ({})", c.address, c.device_name),
    );
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::Rfc822Name(c.address.try_into()?)];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.serial_number = Some(SerialNumber::from_slice(&c.serial.to_be_bytes()));
    p.not_before = time::OffsetDateTime::from_unix_timestamp(c.not_before)
        .map_err(|_| SmimeError::Time(c.not_before))?;
    p.not_after = time::OffsetDateTime::from_unix_timestamp(c.not_after)
        .map_err(|_| SmimeError::Time(c.not_after))?;
    let issuer = Issuer::new(ca_params(c.address), ca);
    Ok(p.signed_by(device, &issuer)?.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_certificate_is_deterministic() {
        let k = || P256Signer::new(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("key"));
        assert_eq!(
            ca_certificate(&k(), "alice@example.com").expect("ca"),
            ca_certificate(&k(), "alice@example.com").expect("ca")
        );
    }
}
