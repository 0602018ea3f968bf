//! OCSP answers (RFC 6960) the account signs ahead for its correspondents:
//! one BasicOCSPResponse per certificate, signed by the CA itself
//! (responderID byKey, ECDSA P-256 with SHA-256), for the portal to serve
//! as it stores them (PROTOCOL.md §12). A pure function of its inputs; no
//! account logic (`status.rs` decides which answers to sign).

use der::asn1::{GeneralizedTime, OctetString};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_ocsp::builder::OcspResponseBuilder;
use x509_ocsp::{
    CertId, CertStatus, OcspGeneralizedTime, ResponderId, RevokedInfo, SingleResponse,
};

use crate::x509::{P256Signer, SmimeError};

/// What an answer says of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not revoked.
    Good,
    /// Revoked at `when` (seconds since the Unix epoch): key compromise
    /// (a revoked device) or superseded (a rotated encryption key), as
    /// the CRL says.
    Revoked {
        /// Seconds since the Unix epoch.
        when: i64,
        /// keyCompromise, else superseded.
        compromised: bool,
    },
}

/// One signed answer and how the portal finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// SHA-1 of the issuer's subjectPublicKey BIT STRING value, lowercase hex.
    pub issuer_key_hash: String,
    /// The certificate's serial, lowercase hex without leading zeros.
    pub serial: String,
    /// Seconds since the Unix epoch.
    pub next_update: u64,
    /// The DER OCSPResponse (successful, BasicOCSPResponse).
    pub response: Vec<u8>,
}

fn bad(e: impl std::fmt::Display) -> SmimeError {
    SmimeError::Cms(format!("OCSP: {e}"))
}

fn gtime(secs: i64) -> Result<OcspGeneralizedTime, SmimeError> {
    let d = u64::try_from(secs).map_err(|_| SmimeError::Time(secs))?;
    let t = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(d))
        .map_err(|_| SmimeError::Time(secs))?;
    Ok(OcspGeneralizedTime(t))
}

/// Lowercase hex of a serial's magnitude, without leading zeros.
pub fn serial_hex(bytes: &[u8]) -> String {
    let s = data_encoding::HEXLOWER.encode(bytes);
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

/// The CA's key hash (responderID byKey, CertID issuerKeyHash): SHA-1 of
/// its subjectPublicKey BIT STRING value.
pub fn key_hash(ca: &Certificate) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(
        ca.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .to_vec()
}

/// The CA's answer for `cert_der` (which it issued) valid from `now` for
/// `valid_for` seconds: thisUpdate and producedAt `now`, nextUpdate
/// `now + valid_for`. No certificate is attached: the issuing CA signs
/// itself (RFC 6960 §4.2.2.2), so a client verifies with the issuer it
/// holds, and an attached copy would double each answer and with it the
/// revocation's transaction, which must fit the portal's reserve.
pub fn response(
    ca: &P256Signer,
    ca_der: &[u8],
    cert_der: &[u8],
    status: Status,
    now: i64,
    valid_for: i64,
) -> Result<Answer, SmimeError> {
    let ca_cert = Certificate::from_der(ca_der).map_err(bad)?;
    let cert = Certificate::from_der(cert_der).map_err(bad)?;
    let id = CertId::from_cert::<sha1::Sha1>(&ca_cert, &cert).map_err(bad)?;
    let status = match status {
        Status::Good => CertStatus::good(),
        Status::Revoked { when, compromised } => CertStatus::revoked(RevokedInfo {
            revocation_time: gtime(when)?,
            revocation_reason: Some(if compromised {
                x509_cert::ext::pkix::CrlReason::KeyCompromise
            } else {
                x509_cert::ext::pkix::CrlReason::Superseded
            }),
        }),
    };
    let next = now.checked_add(valid_for).ok_or(SmimeError::Time(now))?;
    let single = SingleResponse::new(id, status, gtime(now)?).with_next_update(gtime(next)?);
    let hash = key_hash(&ca_cert);
    let responder = ResponderId::ByKey(OctetString::new(hash.clone()).map_err(bad)?);
    let mut key = ca.key().clone();
    let signed = OcspResponseBuilder::new(responder)
        .with_single_response(single)
        .sign::<_, p256::ecdsa::DerSignature>(&mut key, None, gtime(now)?)
        .map_err(bad)?;
    Ok(Answer {
        issuer_key_hash: data_encoding::HEXLOWER.encode(&hash),
        serial: serial_hex(cert.tbs_certificate.serial_number.as_bytes()),
        next_update: u64::try_from(next).map_err(|_| SmimeError::Time(next))?,
        response: signed.to_der().map_err(bad)?,
    })
}

/// Whether `ca` signed the certificate (the CAs of all epochs share one
/// subject name: only the signature tells them apart).
pub fn issued_by(ca: &P256Signer, cert_der: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    let Ok(cert) = Certificate::from_der(cert_der) else {
        return false;
    };
    let (Ok(tbs), Some(sig)) = (cert.tbs_certificate.to_der(), cert.signature.as_bytes()) else {
        return false;
    };
    let Ok(sig) = p256::ecdsa::DerSignature::from_bytes(sig) else {
        return false;
    };
    ca.key().verifying_key().verify(&tbs, &sig).is_ok()
}

/// A certificate's notBefore, seconds since the Unix epoch.
pub fn not_before(cert_der: &[u8]) -> Result<u64, SmimeError> {
    let cert = Certificate::from_der(cert_der).map_err(bad)?;
    Ok(cert
        .tbs_certificate
        .validity
        .not_before
        .to_unix_duration()
        .as_secs())
}

#[cfg(test)]
#[path = "ocsp_tests.rs"]
pub(crate) mod tests;
