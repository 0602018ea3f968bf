//! CMS messages (RFC 5652, RFC 8551): sign, verify, encrypt, decrypt.
//!
//! The `cms` crate builds SignedData and EnvelopedData; it has no
//! verification or decryption, so those are written here on its types:
//! verification recomputes the message digest and checks the signature
//! over the DER SET OF signed attributes (RFC 5652 §5.4) with the signer's
//! certificate, which must be issued by the account's CA; decryption finds
//! our KeyTransRecipientInfo by issuer and serial, unwraps the content key
//! with RSA PKCS#1 v1.5 and decrypts AES-CBC.

use cms::builder::{
    create_signing_time_attribute, ContentEncryptionAlgorithm, EnvelopedDataBuilder,
    KeyEncryptionInfo, KeyTransRecipientInfoBuilder, SignedDataBuilder, SignerInfoBuilder,
};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerIdentifier};
use der::asn1::OctetString;
use der::{Any, Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::SmimeError;

const ID_DATA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_ENVELOPED_DATA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
const ID_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_MESSAGE_DIGEST: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_EC_PUBLIC_KEY: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ID_RSA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_AES128_CBC: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
const ID_AES256_CBC: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

fn bad(what: impl Into<String>) -> SmimeError {
    SmimeError::Cms(what.into())
}

fn der_err<E: std::fmt::Display>(e: E) -> SmimeError {
    SmimeError::Cms(e.to_string())
}

fn issuer_serial(cert: &Certificate) -> IssuerAndSerialNumber {
    IssuerAndSerialNumber {
        issuer: cert.tbs_certificate.issuer.clone(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    }
}

/// Sign `content` (encapsulated, SHA-256, ECDSA P-256) with the device's
/// signing key; the certificate and its chain travel in the message. DER.
pub fn sign(
    content: &[u8],
    key: &p256::ecdsa::SigningKey,
    cert_der: &[u8],
    chain: &[Vec<u8>],
) -> Result<Vec<u8>, SmimeError> {
    let cert = Certificate::from_der(cert_der).map_err(der_err)?;
    let eci = EncapsulatedContentInfo {
        econtent_type: ID_DATA,
        econtent: Some(Any::new(der::Tag::OctetString, content).map_err(der_err)?),
    };
    let digest = AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    };
    let mut signer = SignerInfoBuilder::new(
        key,
        SignerIdentifier::IssuerAndSerialNumber(issuer_serial(&cert)),
        digest.clone(),
        &eci,
        None,
    )
    .map_err(der_err)?;
    signer
        .add_signed_attribute(create_signing_time_attribute().map_err(der_err)?)
        .map_err(der_err)?;
    let mut b = SignedDataBuilder::new(&eci);
    b.add_digest_algorithm(digest).map_err(der_err)?;
    b.add_certificate(CertificateChoices::Certificate(cert))
        .map_err(der_err)?;
    for c in chain {
        let c = Certificate::from_der(c).map_err(der_err)?;
        b.add_certificate(CertificateChoices::Certificate(c))
            .map_err(der_err)?;
    }
    b.add_signer_info::<_, p256::ecdsa::DerSignature>(signer)
        .map_err(der_err)?;
    let ci = b.build().map_err(der_err)?;
    ci.to_der().map_err(der_err)
}

/// What a verified message says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The content.
    pub content: Vec<u8>,
    /// The signer certificate's subject.
    pub signer: String,
}

fn verify_with(
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
    msg: &[u8],
    sig: &[u8],
    sig_alg: &der::oid::ObjectIdentifier,
) -> Result<(), SmimeError> {
    let key = spki.subject_public_key.raw_bytes();
    if spki.algorithm.oid == ID_EC_PUBLIC_KEY {
        use p256::ecdsa::signature::Verifier;
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
            .map_err(|_| bad("signer key is not P-256"))?;
        let s =
            p256::ecdsa::Signature::from_der(sig).map_err(|_| bad("malformed ECDSA signature"))?;
        vk.verify(msg, &s)
            .map_err(|_| bad("the signature does not verify"))
    } else if spki.algorithm.oid == ID_RSA {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::signature::Verifier;
        let pk = rsa::RsaPublicKey::from_pkcs1_der(key).map_err(|_| bad("bad RSA key"))?;
        let _ = sig_alg;
        let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk);
        let s =
            rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| bad("malformed RSA signature"))?;
        vk.verify(msg, &s)
            .map_err(|_| bad("the signature does not verify"))
    } else {
        Err(bad("unsupported signer key algorithm"))
    }
}

/// Verify a SignedData message (DER) whose signer certificate the CA issued.
// One pass over RFC 5652 §5.6's checks, in the order the RFC gives them.
pub fn verify(message: &[u8], ca_der: &[u8]) -> Result<Verified, SmimeError> {
    let ca = Certificate::from_der(ca_der).map_err(der_err)?;
    let ci = ContentInfo::from_der(message).map_err(der_err)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(bad("not a CMS SignedData message"));
    }
    let sd: SignedData = ci.content.decode_as().map_err(der_err)?;
    let content = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| bad("detached signatures need the content"))?;
    let content = OctetString::from_der(&content.to_der().map_err(der_err)?)
        .map_err(der_err)?
        .as_bytes()
        .to_vec();
    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| bad("no signer"))?;
    if si.digest_alg.oid != ID_SHA256 {
        return Err(bad("only SHA-256 digests are accepted"));
    }
    let SignerIdentifier::IssuerAndSerialNumber(isn) = &si.sid else {
        return Err(bad("signer identified by key id, not issuer and serial"));
    };
    let certs = sd
        .certificates
        .as_ref()
        .ok_or_else(|| bad("the signer's certificate is missing"))?;
    let signer = certs
        .0
        .iter()
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
        .find(|c| {
            c.tbs_certificate.issuer == isn.issuer
                && c.tbs_certificate.serial_number == isn.serial_number
        })
        .ok_or_else(|| bad("the signer's certificate is missing"))?;
    // The signer certificate must be the CA's.
    if signer.tbs_certificate.issuer != ca.tbs_certificate.subject {
        return Err(bad(
            "the signer's certificate is not issued by the account's CA",
        ));
    }
    let tbs = signer.tbs_certificate.to_der().map_err(der_err)?;
    verify_with(
        &ca.tbs_certificate.subject_public_key_info,
        &tbs,
        signer.signature.raw_bytes(),
        &signer.signature_algorithm.oid,
    )
    .map_err(|_| bad("the signer's certificate does not verify under the account's CA"))?;
    // Signed attributes: message digest over the content, signature over their SET OF DER.
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| bad("no signed attributes"))?;
    let md = attrs
        .iter()
        .find(|a| a.oid == ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .ok_or_else(|| bad("no message digest"))?;
    let md = OctetString::from_der(&md.to_der().map_err(der_err)?).map_err(der_err)?;
    if md.as_bytes() != Sha256::digest(&content).as_slice() {
        return Err(bad("the content does not match its digest"));
    }
    let signed = attrs.to_der().map_err(der_err)?;
    verify_with(
        &signer.tbs_certificate.subject_public_key_info,
        &signed,
        si.signature.as_bytes(),
        &si.signature_algorithm.oid,
    )?;
    Ok(Verified {
        content,
        signer: signer.tbs_certificate.subject.to_string(),
    })
}

/// Encrypt `content` to a recipient certificate (RSA key transport,
/// AES-256-CBC). DER.
pub fn encrypt(content: &[u8], recipient_der: &[u8]) -> Result<Vec<u8>, SmimeError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    let cert = Certificate::from_der(recipient_der).map_err(der_err)?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != ID_RSA {
        return Err(bad("the recipient certificate has no RSA key"));
    }
    let pk = rsa::RsaPublicKey::from_pkcs1_der(spki.subject_public_key.raw_bytes())
        .map_err(|_| bad("bad RSA key"))?;
    let mut rng = rand_core::OsRng;
    let mut rng2 = rand_core::OsRng;
    let mut b =
        EnvelopedDataBuilder::new(None, content, ContentEncryptionAlgorithm::Aes256Cbc, None)
            .map_err(der_err)?;
    b.add_recipient_info(
        KeyTransRecipientInfoBuilder::new(
            RecipientIdentifier::IssuerAndSerialNumber(issuer_serial(&cert)),
            KeyEncryptionInfo::Rsa(pk),
            &mut rng2,
        )
        .map_err(der_err)?,
    )
    .map_err(der_err)?;
    let ed = b.build_with_rng(&mut rng).map_err(der_err)?;
    let ci = ContentInfo {
        content_type: ID_ENVELOPED_DATA,
        content: Any::encode_from(&ed).map_err(der_err)?,
    };
    ci.to_der().map_err(der_err)
}

/// Decrypt an EnvelopedData message (DER) with whichever of `keys` (RSA
/// key and its certificate, every epoch) it is for.
pub fn decrypt(
    message: &[u8],
    keys: &[(rsa::RsaPrivateKey, Vec<u8>)],
) -> Result<zeroize::Zeroizing<Vec<u8>>, SmimeError> {
    use aes::cipher::{BlockDecryptMut, KeyIvInit};
    let ci = ContentInfo::from_der(message).map_err(der_err)?;
    if ci.content_type != ID_ENVELOPED_DATA {
        return Err(bad("not a CMS EnvelopedData message"));
    }
    let ed: EnvelopedData = ci.content.decode_as().map_err(der_err)?;
    let mut cek = None;
    'find: for ri in ed.recip_infos.0.iter() {
        let RecipientInfo::Ktri(k) = ri else { continue };
        let RecipientIdentifier::IssuerAndSerialNumber(isn) = &k.rid else {
            continue;
        };
        for (key, cert_der) in keys {
            let cert = Certificate::from_der(cert_der).map_err(der_err)?;
            if cert.tbs_certificate.issuer == isn.issuer
                && cert.tbs_certificate.serial_number == isn.serial_number
            {
                let c = key
                    .decrypt(rsa::Pkcs1v15Encrypt, k.enc_key.as_bytes())
                    .map_err(|_| bad("the content key does not decrypt"))?;
                cek = Some(zeroize::Zeroizing::new(c));
                break 'find;
            }
        }
    }
    let cek = cek.ok_or_else(|| {
        bad("the message is not encrypted to this account's encryption certificate")
    })?;
    let eci = &ed.encrypted_content;
    let iv = eci
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or_else(|| bad("no IV"))?;
    let iv = OctetString::from_der(&iv.to_der().map_err(der_err)?).map_err(der_err)?;
    let ct = eci
        .encrypted_content
        .as_ref()
        .ok_or_else(|| bad("no encrypted content"))?
        .as_bytes()
        .to_vec();
    let out = if eci.content_enc_alg.oid == ID_AES256_CBC {
        cbc::Decryptor::<aes::Aes256>::new_from_slices(&cek, iv.as_bytes())
            .map_err(|_| bad("bad key or IV"))?
            .decrypt_padded_vec_mut::<aes::cipher::block_padding::Pkcs7>(&ct)
    } else if eci.content_enc_alg.oid == ID_AES128_CBC {
        cbc::Decryptor::<aes::Aes128>::new_from_slices(&cek, iv.as_bytes())
            .map_err(|_| bad("bad key or IV"))?
            .decrypt_padded_vec_mut::<aes::cipher::block_padding::Pkcs7>(&ct)
    } else {
        return Err(bad(
            "unsupported content encryption (AES-128-CBC or AES-256-CBC)",
        ));
    };
    out.map(zeroize::Zeroizing::new)
        .map_err(|_| bad("the content does not decrypt"))
}
