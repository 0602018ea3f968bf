//! Verifying CMS SignedData (RFC 5652 §5.6) and the signer's chain.
//!
//! The `cms` crate has no verification, so it is written here on its
//! types: the message digest attribute is checked against the content
//! (encapsulated, or given beside the message for `multipart/signed`), the
//! signature over the DER SET OF signed attributes (or over the content
//! when there are none) with the signer's certificate, and that
//! certificate is chained, through the certificates the message carries,
//! to a trust anchor: the account's CA, a `--ca` certificate, or the
//! system trust store.

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::OctetString;
use der::oid::ObjectIdentifier as Oid;
use der::{Decode, Encode};
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::message::{damaged, CmsError, Hash, ID_EC_PUBLIC_KEY, ID_RSA, ID_SIGNED_DATA};

const ID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
const ID_EMAIL_ADDRESS: Oid = Oid::new_unwrap("1.2.840.113549.1.9.1");
/// RFC 4055 §3.1: id-RSASSA-PSS (not read here).
const ID_RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
/// Where Debian (and most Linux systems) keep the system's trusted CAs.
pub const SYSTEM_TRUST_STORE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The longest chain followed from the signer to an anchor.
const MAX_CHAIN: usize = 8;

/// The certificates a signer may chain to.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The account's CA and any `--ca` certificates (DER).
    pub anchors: Vec<Vec<u8>>,
    /// A PEM bundle of further anchors, read only if needed.
    pub system: Option<std::path::PathBuf>,
    /// The account's CAs of earlier administrator epochs (DER), each with
    /// what to say of a signature under it: tried after `anchors`.
    pub retired: Vec<(Vec<u8>, String)>,
}

/// Who signed a verified layer.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The signer certificate's subject.
    pub signer: String,
    /// The signer's e-mail address (rfc822Name, else the subject's emailAddress).
    pub email: Option<String>,
    /// When the signer chains to a retired CA of the account: which one
    /// (its [`Trust::retired`] label).
    pub retired_ca: Option<String>,
}

/// Verify SignedData (DER). `detached` is the content when the message
/// carries none (`multipart/signed`). Returns the content (for a detached
/// signature, the content given) and the signer.
pub fn verify(
    message: &[u8],
    detached: Option<&[u8]>,
    trust: &Trust,
) -> Result<(Zeroizing<Vec<u8>>, Verified), CmsError> {
    let ci = ContentInfo::from_der(message).map_err(damaged)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(CmsError::Damaged("not a CMS SignedData message".into()));
    }
    let sd: SignedData = ci.content.decode_as().map_err(damaged)?;
    let content = Zeroizing::new(match (&sd.encap_content_info.econtent, detached) {
        // A multipart/signed whose signature carries content of its own:
        // what it signs is not the part a mail client shows (RFC 8551
        // §3.5.3 wants it detached). Checking either would let a
        // signature over one text vouch for another.
        (Some(_), Some(_)) => return Err(CmsError::NotDetached),
        (Some(c), None) => OctetString::from_der(&c.to_der().map_err(damaged)?)
            .map_err(damaged)?
            .as_bytes()
            .to_vec(),
        (None, Some(d)) => d.to_vec(),
        (None, None) => {
            return Err(CmsError::Damaged(
                "a detached signature without its content".into(),
            ))
        }
    });
    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| CmsError::Damaged("no signer".into()))?;
    let certs: Vec<&Certificate> = sd
        .certificates
        .as_ref()
        .map(|c| {
            c.0.iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let signer = find_signer(si, &certs)?;
    check_signer_info(si, signer, &content)?;
    let retired_ca = chain_to_anchor(signer, &certs, trust)?;
    let who = Verified {
        signer: signer.tbs_certificate.subject.to_string(),
        email: email_of(signer),
        retired_ca,
    };
    Ok((content, who))
}

fn find_signer<'a>(
    si: &SignerInfo,
    certs: &[&'a Certificate],
) -> Result<&'a Certificate, CmsError> {
    certs
        .iter()
        .copied()
        .find(|c| match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                c.tbs_certificate.issuer == isn.issuer
                    && c.tbs_certificate.serial_number == isn.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                subject_key_id(c).as_deref() == Some(ski.0.as_bytes())
            }
        })
        .ok_or_else(|| CmsError::Untrusted("the signer's certificate is not in the message".into()))
}

/// The subjectKeyIdentifier extension's value, if any.
pub(crate) fn subject_key_id(c: &Certificate) -> Option<Vec<u8>> {
    use x509_cert::ext::pkix::SubjectKeyIdentifier;
    c.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == der::oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
        .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
        .map(|s| s.0.as_bytes().to_vec())
}

/// RFC 5652 §5.4: with signed attributes, the message digest must be the
/// content's and the signature is over their DER; without, over the content.
fn check_signer_info(
    si: &SignerInfo,
    signer: &Certificate,
    content: &[u8],
) -> Result<(), CmsError> {
    let hash = Hash::from_oid(&si.digest_alg.oid)?;
    // SHA-1 collisions are practical: a SHA-1 signature proves nothing.
    if hash == Hash::Sha1 {
        return Err(CmsError::Unsupported(
            "a signature over a SHA-1 digest (collisions are practical)".into(),
        ));
    }
    if si.signature_algorithm.oid == ID_RSASSA_PSS {
        return Err(CmsError::Unsupported(
            "signature algorithm RSASSA-PSS".into(),
        ));
    }
    let signed = match &si.signed_attrs {
        Some(attrs) => {
            let md = attrs
                .iter()
                .find(|a| a.oid == ID_MESSAGE_DIGEST)
                .and_then(|a| a.values.iter().next())
                .ok_or_else(|| CmsError::Damaged("no message digest attribute".into()))?;
            let md = OctetString::from_der(&md.to_der().map_err(damaged)?).map_err(damaged)?;
            if md.as_bytes() != hash.digest(content).as_slice() {
                return Err(CmsError::ContentMismatch);
            }
            attrs.to_der().map_err(damaged)?
        }
        None => content.to_vec(),
    };
    verify_with(
        &signer.tbs_certificate.subject_public_key_info,
        hash,
        &signed,
        si.signature.as_bytes(),
    )
    .map_err(|e| match e {
        CmsError::BadSignature(_) => CmsError::BadSignature(format!(
            "the signature by {} does not verify",
            signer.tbs_certificate.subject
        )),
        other => other,
    })
}

/// Verify `sig` over `msg` (hashed with `hash`) with a P-256 or RSA key.
fn verify_with(
    spki: &SubjectPublicKeyInfoOwned,
    hash: Hash,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), CmsError> {
    let key = spki.subject_public_key.raw_bytes();
    let digest = hash.digest(msg);
    let bad = || CmsError::BadSignature(String::new());
    if spki.algorithm.oid == ID_EC_PUBLIC_KEY {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|_| {
            CmsError::Unsupported("signer key (an EC key that is not P-256)".into())
        })?;
        let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
        vk.verify_prehash(&digest, &s).map_err(|_| bad())
    } else if spki.algorithm.oid == ID_RSA {
        use rsa::pkcs1::DecodeRsaPublicKey;
        let pk = rsa::RsaPublicKey::from_pkcs1_der(key).map_err(damaged)?;
        pk.verify(hash.pkcs1v15(), &digest, sig).map_err(|_| bad())
    } else {
        Err(CmsError::Unsupported(format!(
            "signer key algorithm {}",
            spki.algorithm.oid
        )))
    }
}

/// The hash of a certificate signature algorithm (RFC 5758, RFC 4055).
fn cert_sig_hash(oid: &Oid) -> Result<Hash, CmsError> {
    Ok(match oid.to_string().as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => Hash::Sha256,
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => Hash::Sha384,
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => Hash::Sha512,
        "1.2.840.113549.1.1.5" => {
            return Err(CmsError::Unsupported(
                "a certificate signed with SHA-1 (collisions are practical)".into(),
            ))
        }
        _ => {
            return Err(CmsError::Unsupported(format!(
                "certificate signature algorithm {oid}"
            )))
        }
    })
}

/// Whether `issuer` signed `cert`.
fn issued_by(cert: &Certificate, issuer: &Certificate) -> Result<bool, CmsError> {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Ok(false);
    }
    let hash = cert_sig_hash(&cert.signature_algorithm.oid)?;
    let tbs = cert.tbs_certificate.to_der().map_err(damaged)?;
    match verify_with(
        &issuer.tbs_certificate.subject_public_key_info,
        hash,
        &tbs,
        cert.signature.raw_bytes(),
    ) {
        Ok(()) => Ok(true),
        Err(CmsError::BadSignature(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn check_validity(c: &Certificate) -> Result<(), CmsError> {
    let now = std::time::SystemTime::now();
    let v = &c.tbs_certificate.validity;
    if now < v.not_before.to_system_time() || now > v.not_after.to_system_time() {
        return Err(CmsError::Untrusted(format!(
            "the certificate of {} is not valid now ({} to {})",
            c.tbs_certificate.subject, v.not_before, v.not_after
        )));
    }
    Ok(())
}

/// Follow issuers from the signer through the message's certificates to
/// an anchor (the given ones first, then the account's retired CAs, whose
/// label is returned, then the system store).
fn chain_to_anchor(
    signer: &Certificate,
    certs: &[&Certificate],
    trust: &Trust,
) -> Result<Option<String>, CmsError> {
    let mut anchors: Vec<Certificate> = trust
        .anchors
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .collect();
    if chains(signer, certs, &anchors)? {
        return Ok(None);
    }
    for (der, label) in &trust.retired {
        let Ok(ca) = Certificate::from_der(der) else {
            continue;
        };
        if chains(signer, certs, std::slice::from_ref(&ca))? {
            return Ok(Some(label.clone()));
        }
    }
    if let Some(path) = &trust.system {
        anchors = std::fs::read_to_string(path)
            .ok()
            .and_then(|pem| crate::x509::pem_certificates(&pem).ok())
            .unwrap_or_default()
            .iter()
            .filter_map(|d| Certificate::from_der(d).ok())
            .collect();
        if chains(signer, certs, &anchors)? {
            return Ok(None);
        }
    }
    Err(CmsError::Untrusted(format!(
        "the certificate of {} does not chain to the account's CA, a --ca certificate or the system trust store",
        signer.tbs_certificate.subject
    )))
}

fn chains(
    signer: &Certificate,
    certs: &[&Certificate],
    anchors: &[Certificate],
) -> Result<bool, CmsError> {
    let mut cur = signer;
    for _ in 0..MAX_CHAIN {
        check_validity(cur)?;
        if anchors.iter().any(|a| a == cur) {
            return Ok(true);
        }
        for a in anchors {
            if issued_by(cur, a)? {
                return Ok(true);
            }
        }
        let mut next = None;
        for c in certs.iter().copied() {
            if c != cur && is_ca(c) && issued_by(cur, c)? {
                next = Some(c);
                break;
            }
        }
        match next {
            Some(n) => cur = n,
            None => return Ok(false),
        }
    }
    Ok(false)
}

fn is_ca(c: &Certificate) -> bool {
    use x509_cert::ext::pkix::BasicConstraints;
    c.tbs_certificate
        .extensions
        .as_ref()
        .and_then(|exts| {
            exts.iter()
                .find(|e| e.extn_id == der::oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS)
        })
        .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|b| b.ca)
}

/// The certificate's e-mail address: the first rfc822Name of its
/// subjectAltName (RFC 8550 §3), else an emailAddress in its subject.
pub fn email_of(c: &Certificate) -> Option<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let san = c.tbs_certificate.extensions.as_ref().and_then(|exts| {
        exts.iter()
            .find(|e| e.extn_id == der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)
            .and_then(|e| SubjectAltName::from_der(e.extn_value.as_bytes()).ok())
    });
    if let Some(san) = san {
        for n in san.0 {
            if let GeneralName::Rfc822Name(m) = n {
                return Some(m.to_string());
            }
        }
    }
    c.tbs_certificate.subject.0.iter().find_map(|rdn| {
        rdn.0
            .iter()
            .find(|a| a.oid == ID_EMAIL_ADDRESS)
            .and_then(|a| der::asn1::Ia5StringRef::try_from(&a.value).ok())
            .map(|s| s.to_string())
    })
}
