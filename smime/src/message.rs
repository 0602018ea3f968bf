//! CMS messages (RFC 5652, RFC 5083, RFC 8551): sign and encrypt, and the
//! error type the CMS layer reports. Verification is in [`crate::verify`],
//! decryption in [`crate::decrypt`]; both take DER ([`crate::ber`] makes
//! it from what mail clients send).
//!
//! The `cms` crate builds SignedData and EnvelopedData; it has no
//! AuthEnvelopedData (RFC 5083), so that structure is declared here on its
//! types, and sealed with AES-GCM (RFC 5084).

use cms::builder::{
    create_signing_time_attribute, ContentEncryptionAlgorithm, EnvelopedDataBuilder,
    KeyEncryptionInfo, KeyTransRecipientInfoBuilder, RecipientInfoBuilder, SignedDataBuilder,
    SignerInfoBuilder,
};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, OriginatorInfo, RecipientIdentifier, RecipientInfos,
};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use der::asn1::{OctetString, SetOfVec};
use der::oid::ObjectIdentifier as Oid;
use der::{Any, Decode, Encode, Sequence};
use sha2::Digest;
use x509_cert::attr::Attributes;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

pub(crate) const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
pub(crate) const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
pub(crate) const ID_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
/// RFC 5083 §1: id-ct-authEnvelopedData.
pub(crate) const ID_AUTH_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.23");
pub(crate) const ID_SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
pub(crate) const ID_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub(crate) const ID_SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
pub(crate) const ID_SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
pub(crate) const ID_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const ID_EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
/// RFC 5084 §3.2: AES-GCM content encryption.
pub(crate) const ID_AES128_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.6");
pub(crate) const ID_AES192_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.26");
pub(crate) const ID_AES256_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.46");

/// Why a CMS message is refused: each names the real cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// Not valid CMS once decoded (truncated, altered, or not CMS at all).
    #[error("damaged message: {0}")]
    Damaged(String),
    /// An algorithm or structure Mesh does not implement.
    #[error("unsupported {0}")]
    Unsupported(String),
    /// No recipient info names a certificate this device holds the key
    /// of; the recipients the message names (issuer and serial, or
    /// subject key identifier).
    #[error("the message is not encrypted to this account's encryption certificate (nor to an earlier one this device holds): it is for {0}")]
    NotRecipient(String),
    /// Our certificate is named, but the message does not decrypt: the
    /// content key does not unwrap, has the wrong length, or the content's
    /// padding or tag is wrong. One error for all of them, on purpose: an
    /// answer that told them apart would be a padding oracle
    /// (docs/DESIGN.md, "Secrets in memory").
    #[error("the message does not decrypt with this account's key")]
    DoesNotDecrypt,
    /// The signature does not verify under the signer's certificate.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The message digest attribute does not match the content.
    #[error("the content does not match its digest")]
    ContentMismatch,
    /// A `multipart/signed` whose signature encapsulates content of its
    /// own: the signature-spoofing layout (docs/DESIGN.md, hostile cases).
    #[error("a multipart/signed whose signature carries its own content (not detached): what it signs is not the part a mail client shows")]
    NotDetached,
    /// The signer's certificate does not chain to a trusted CA.
    #[error("untrusted signer: {0}")]
    Untrusted(String),
    /// A message Mesh cannot build (the recipient certificate, the key).
    #[error("{0}")]
    Build(String),
}

impl CmsError {
    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            CmsError::Damaged(_) => "the message was truncated or altered in transit: ask the sender for it again, or check that the whole message was saved",
            CmsError::Unsupported(_) => "Mesh reads SHA-2 with ECDSA P-256 or RSA signatures, and AES-CBC or AES-GCM content with RSA PKCS#1 v1.5 or RSA-OAEP key transport: ask the sender's client for one of those",
            CmsError::NotRecipient(_) => "the sender encrypted to another certificate: `mesh smime cert --encryption` prints the one to give senders",
            CmsError::DoesNotDecrypt => "the message names this account's certificate but does not open with its key: it was altered or truncated, or encrypted to a certificate that only looks like ours; ask the sender for it again",
            CmsError::BadSignature(_) => "the message was changed after it was signed, or the signature is not the certificate's key's",
            CmsError::ContentMismatch => "the content was changed after signing (line endings count: keep the message exactly as received)",
            CmsError::NotDetached => "do not trust the part shown as signed: a multipart/signed must carry a detached signature, and this layout is how a signature is made to appear over text it does not sign; ask the sender to sign again",
            CmsError::Untrusted(_) => "if you trust the signer's CA, pass its certificate with --ca FILE",
            CmsError::Build(_) => "check the certificate given with --recipient (PEM, an RSA key)",
        }
    }
}

pub(crate) fn damaged<E: std::fmt::Display>(e: E) -> CmsError {
    CmsError::Damaged(e.to_string())
}

fn build<E: std::fmt::Display>(e: E) -> CmsError {
    CmsError::Build(e.to_string())
}

/// The digest algorithms a signature may use (RFC 5754, RFC 3370 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub(crate) fn from_oid(oid: &Oid) -> Result<Hash, CmsError> {
        match *oid {
            ID_SHA1 => Ok(Hash::Sha1),
            ID_SHA256 => Ok(Hash::Sha256),
            ID_SHA384 => Ok(Hash::Sha384),
            ID_SHA512 => Ok(Hash::Sha512),
            _ => Err(CmsError::Unsupported(format!("digest algorithm {oid}"))),
        }
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    pub(crate) fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            Hash::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
            Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }
}

/// RFC 5083 §2.1:
///
/// ```text
/// AuthEnvelopedData ::= SEQUENCE {
///   version CMSVersion,
///   originatorInfo [0] IMPLICIT OriginatorInfo OPTIONAL,
///   recipientInfos RecipientInfos,
///   authEncryptedContentInfo EncryptedContentInfo,
///   authAttrs [1] IMPLICIT AuthAttributes OPTIONAL,
///   mac MessageAuthenticationCode,
///   unauthAttrs [2] IMPLICIT UnauthAttributes OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct AuthEnvelopedData {
    pub version: CmsVersion,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub originator_info: Option<OriginatorInfo>,
    pub recip_infos: RecipientInfos,
    pub auth_encrypted_content: EncryptedContentInfo,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub auth_attrs: Option<Attributes>,
    pub mac: OctetString,
    #[asn1(
        context_specific = "2",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub unauth_attrs: Option<Attributes>,
}

/// RFC 5084 §3.2: `GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING,
/// aes-ICVlen AES-GCM-ICVlen DEFAULT 12 }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct GcmParameters {
    pub nonce: OctetString,
    pub icv_len: Option<u8>,
}

fn issuer_serial(cert: &Certificate) -> IssuerAndSerialNumber {
    IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    }
}

/// Sign `content` (SHA-256, ECDSA P-256) with the device's signing key; the
/// certificate and its chain travel in the message. Encapsulated, or
/// `detached` (no eContent: the content travels beside it, as in
/// `multipart/signed`). DER.
pub fn sign(
    content: &[u8],
    key: &p256::ecdsa::SigningKey,
    cert_der: &[u8],
    chain: &[Vec<u8>],
    detached: bool,
) -> Result<Vec<u8>, CmsError> {
    let cert = Certificate::from_der(cert_der).map_err(build)?;
    let eci = EncapsulatedContentInfo {
        econtent_type: ID_DATA,
        econtent: if detached {
            None
        } else {
            Some(Any::new(der::Tag::OctetString, content).map_err(build)?)
        },
    };
    let digest = AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    };
    let external = sha2::Sha256::digest(content);
    let mut signer = SignerInfoBuilder::new(
        key,
        SignerIdentifier::IssuerAndSerialNumber(issuer_serial(&cert)),
        digest.clone(),
        &eci,
        detached.then_some(external.as_slice()),
    )
    .map_err(build)?;
    signer
        .add_signed_attribute(create_signing_time_attribute().map_err(build)?)
        .map_err(build)?;
    let mut b = SignedDataBuilder::new(&eci);
    b.add_digest_algorithm(digest).map_err(build)?;
    b.add_certificate(CertificateChoices::Certificate(cert))
        .map_err(build)?;
    for c in chain {
        let c = Certificate::from_der(c).map_err(build)?;
        b.add_certificate(CertificateChoices::Certificate(c))
            .map_err(build)?;
    }
    b.add_signer_info::<_, p256::ecdsa::DerSignature>(signer)
        .map_err(build)?;
    b.build().map_err(build)?.to_der().map_err(build)
}

/// How content is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// EnvelopedData, AES-256-CBC (RFC 3565): what every client reads, Outlook included.
    Aes256Cbc,
    /// AuthEnvelopedData, AES-256-GCM (RFC 5083, RFC 5084).
    Aes256Gcm,
}

/// Encrypt `content` to a recipient certificate (RSA PKCS#1 v1.5 key
/// transport). DER.
pub fn encrypt(content: &[u8], recipient_der: &[u8], cipher: Cipher) -> Result<Vec<u8>, CmsError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    let cert = Certificate::from_der(recipient_der).map_err(build)?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != ID_RSA {
        return Err(CmsError::Build(
            "the recipient certificate has no RSA key".into(),
        ));
    }
    let pk = rsa::RsaPublicKey::from_pkcs1_der(spki.subject_public_key.raw_bytes())
        .map_err(|_| CmsError::Build("the recipient certificate's RSA key is malformed".into()))?;
    let mut rng = rand_core::OsRng;
    let mut ktri = KeyTransRecipientInfoBuilder::new(
        RecipientIdentifier::IssuerAndSerialNumber(issuer_serial(&cert)),
        KeyEncryptionInfo::Rsa(pk),
        &mut rng,
    )
    .map_err(build)?;
    let (content_type, inner) = match cipher {
        Cipher::Aes256Cbc => {
            let mut rng = rand_core::OsRng;
            let mut b = EnvelopedDataBuilder::new(
                None,
                content,
                ContentEncryptionAlgorithm::Aes256Cbc,
                None,
            )
            .map_err(build)?;
            b.add_recipient_info(ktri).map_err(build)?;
            let ed = b.build_with_rng(&mut rng).map_err(build)?;
            (ID_ENVELOPED_DATA, Any::encode_from(&ed).map_err(build)?)
        }
        Cipher::Aes256Gcm => {
            let aed = seal_gcm(content, &mut ktri)?;
            (
                ID_AUTH_ENVELOPED_DATA,
                Any::encode_from(&aed).map_err(build)?,
            )
        }
    };
    ContentInfo {
        content_type,
        content: inner,
    }
    .to_der()
    .map_err(build)
}

/// AES-256-GCM under a fresh key, 12-byte nonce, 16-byte tag (RFC 5084 §3.2).
fn seal_gcm(
    content: &[u8],
    ktri: &mut impl RecipientInfoBuilder,
) -> Result<AuthEnvelopedData, CmsError> {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    let mut nonce = [0u8; 12];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, key.as_mut());
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let ri = ktri.build(key.as_ref()).map_err(build)?;
    let mut buf = content.to_vec();
    let tag = aes_gcm::Aes256Gcm::new_from_slice(key.as_ref())
        .map_err(build)?
        .encrypt_in_place_detached(&nonce.into(), b"", &mut buf)
        .map_err(build)?;
    let params = GcmParameters {
        nonce: OctetString::new(nonce.to_vec()).map_err(build)?,
        icv_len: Some(16),
    };
    let mut ris = SetOfVec::new();
    ris.insert(ri).map_err(build)?;
    Ok(AuthEnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(ris),
        auth_encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: ID_AES256_GCM,
                parameters: Some(Any::encode_from(&params).map_err(build)?),
            },
            encrypted_content: Some(OctetString::new(buf).map_err(build)?),
        },
        auth_attrs: None,
        mac: OctetString::new(tag.to_vec()).map_err(build)?,
        unauth_attrs: None,
    })
}
