//! Decrypting CMS EnvelopedData (RFC 5652 §6) and AuthEnvelopedData
//! (RFC 5083): find our KeyTransRecipientInfo (by issuer and serial, or
//! by subject key identifier), unwrap the content key with RSA PKCS#1 v1.5
//! or RSA-OAEP (RFC 8017, RFC 4055 §4.1), and decrypt AES-CBC (RFC 3565)
//! or AES-GCM (RFC 5084) content.
//!
//! Once a recipient info names our certificate, every failure is one error,
//! [`CmsError::DoesNotDecrypt`]: a content key that does not unwrap, one of
//! the wrong length, bad CBC padding, a bad GCM tag. A key that does not
//! unwrap is not reported at all (implicit rejection, as OpenSSL 3.2 and
//! draft-irtf-cfrg-rsa-guidance do): the decryption goes on with a key
//! derived from the private key and the ciphertext, and fails at the
//! content like any other alteration. So a sender who forges messages
//! (Bleichenbacher's attack) learns nothing from the answer. The RSA
//! operation is `rsa` 0.10's constant-time one (`rejection.rs`; "Marvin",
//! RUSTSEC-2023-0071, docs/DESIGN.md).

use cms::content_info::ContentInfo;
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use der::asn1::OctetString;
use der::oid::ObjectIdentifier as Oid;
use der::{Decode, Encode};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::message::{
    damaged, AuthEnvelopedData, CmsError, GcmParameters, Hash, ID_AES128_GCM, ID_AES192_GCM,
    ID_AES256_GCM, ID_AUTH_ENVELOPED_DATA, ID_ENVELOPED_DATA, ID_RSA,
};
use crate::rejection::Unwrapper;

const ID_AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
const ID_AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
const ID_AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
const ID_DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");
/// RFC 8017 A.2.1: id-RSAES-OAEP.
const ID_RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
const ID_MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");

/// A key this device holds, with its certificate (DER).
pub type HeldKey = (rsa::RsaPrivateKey, Vec<u8>);

/// RFC 8017 A.2.1: `RSAES-OAEP-params ::= SEQUENCE { hashAlgorithm [0]
/// DEFAULT sha1, maskGenAlgorithm [1] DEFAULT mgf1SHA1, pSourceAlgorithm
/// [2] DEFAULT pSpecifiedEmpty }`.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct OaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mgf: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    label: Option<AlgorithmIdentifierOwned>,
}

/// Decrypt EnvelopedData or AuthEnvelopedData (DER) with whichever of
/// `keys` (every epoch this device holds) it is for.
pub fn decrypt(message: &[u8], keys: &[HeldKey]) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let ci = ContentInfo::from_der(message).map_err(damaged)?;
    if ci.content_type == ID_ENVELOPED_DATA {
        let ed: EnvelopedData = ci.content.decode_as().map_err(damaged)?;
        let len = cbc_key_len(&ed.encrypted_content)?;
        let cek = content_key(&ed.recip_infos, keys, len)?;
        decrypt_cbc(&ed.encrypted_content, &cek)
    } else if ci.content_type == ID_AUTH_ENVELOPED_DATA {
        let aed: AuthEnvelopedData = ci.content.decode_as().map_err(damaged)?;
        let len = gcm_key_len(&aed.auth_encrypted_content)?;
        let cek = content_key(&aed.recip_infos, keys, len)?;
        let aad = match &aed.auth_attrs {
            // RFC 5083 §2.2: the authAttrs' DER, as a SET OF, is the AAD.
            Some(a) => a.to_der().map_err(damaged)?,
            None => Vec::new(),
        };
        decrypt_gcm(&aed.auth_encrypted_content, &cek, &aad, aed.mac.as_bytes())
    } else {
        Err(CmsError::Damaged(format!(
            "not a CMS EnvelopedData or AuthEnvelopedData message (content type {})",
            ci.content_type
        )))
    }
}

/// The key length of the AES-CBC content encryption; other algorithms
/// are refused before any key is used.
fn cbc_key_len(eci: &EncryptedContentInfo) -> Result<usize, CmsError> {
    match eci.content_enc_alg.oid {
        ID_AES128_CBC => Ok(16),
        ID_AES192_CBC => Ok(24),
        ID_AES256_CBC => Ok(32),
        ID_DES_EDE3_CBC => Err(CmsError::Unsupported("content encryption 3DES-CBC".into())),
        oid => Err(CmsError::Unsupported(format!("content encryption {oid}"))),
    }
}

/// The same for AES-GCM.
fn gcm_key_len(eci: &EncryptedContentInfo) -> Result<usize, CmsError> {
    match eci.content_enc_alg.oid {
        ID_AES128_GCM => Ok(16),
        ID_AES192_GCM => Ok(24),
        ID_AES256_GCM => Ok(32),
        oid => Err(CmsError::Unsupported(format!(
            "authenticated content encryption {oid}"
        ))),
    }
}

fn names(rid: &RecipientIdentifier, cert: &Certificate) -> bool {
    match rid {
        RecipientIdentifier::IssuerAndSerialNumber(isn) => {
            cert.tbs_certificate.issuer == isn.issuer
                && cert.tbs_certificate.serial_number == isn.serial_number
        }
        RecipientIdentifier::SubjectKeyIdentifier(ski) => {
            crate::verify::subject_key_id(cert).as_deref() == Some(ski.0.as_bytes())
        }
    }
}

/// The content-encryption key (`len` bytes) from our recipient info: the
/// real one, or, when it does not unwrap, the implicit rejection's.
fn content_key(
    ris: &RecipientInfos,
    keys: &[HeldKey],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let mut others = Vec::new();
    for ri in ris.0.iter() {
        let RecipientInfo::Ktri(k) = ri else {
            others.push(match ri {
                RecipientInfo::Kari(_) => "key agreement",
                RecipientInfo::Kekri(_) => "key-encryption key",
                RecipientInfo::Pwri(_) => "password",
                _ => "other",
            });
            continue;
        };
        for (key, cert_der) in keys {
            let cert = Certificate::from_der(cert_der).map_err(damaged)?;
            if names(&k.rid, &cert) {
                return unwrap_key(k, key, len);
            }
        }
    }
    if !others.is_empty() && ris.0.iter().all(|r| !matches!(r, RecipientInfo::Ktri(_))) {
        return Err(CmsError::Unsupported(format!(
            "recipient type ({}): only RSA key transport is read",
            others.join(", ")
        )));
    }
    Err(CmsError::NotRecipient(recipients(ris)))
}

/// The key-transport recipients a message names, as a person compares
/// them with `openssl x509 -serial -issuer` or a subject key identifier.
fn recipients(ris: &RecipientInfos) -> String {
    // A serial as OpenSSL prints it: without DER's sign byte.
    let serial = |b: &[u8]| {
        let b = match b.iter().position(|x| *x != 0) {
            Some(i) => &b[i..],
            None => b,
        };
        data_encoding::HEXUPPER.encode(b)
    };
    let named: Vec<String> = ris
        .0
        .iter()
        .filter_map(|ri| match ri {
            RecipientInfo::Ktri(k) => Some(match &k.rid {
                RecipientIdentifier::IssuerAndSerialNumber(isn) => format!(
                    "serial {} issued by {}",
                    serial(isn.serial_number.as_bytes()),
                    isn.issuer
                ),
                RecipientIdentifier::SubjectKeyIdentifier(ski) => {
                    format!(
                        "subject key identifier {}",
                        data_encoding::HEXUPPER.encode(ski.0.as_bytes())
                    )
                }
            }),
            _ => None,
        })
        .collect();
    if named.is_empty() {
        "no RSA key-transport recipient".into()
    } else {
        named.join("; ")
    }
}

/// Unwrap a `len`-byte key with RSA PKCS#1 v1.5 or RSA-OAEP; a key that
/// does not unwrap, or not to `len` bytes, gives the implicit rejection's
/// key instead (the module's documentation).
fn unwrap_key(
    k: &KeyTransRecipientInfo,
    key: &rsa::RsaPrivateKey,
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let alg = &k.key_enc_alg;
    let ct = k.enc_key.as_bytes();
    if alg.oid == ID_RSA {
        return Ok(Unwrapper::new(key)?.pkcs1v15(ct, len));
    }
    if alg.oid != ID_RSAES_OAEP {
        return Err(CmsError::Unsupported(format!(
            "key transport algorithm {}",
            alg.oid
        )));
    }
    let params = match &alg.parameters {
        Some(p) => OaepParams::from_der(&p.to_der().map_err(damaged)?).map_err(damaged)?,
        None => OaepParams {
            hash: None,
            mgf: None,
            label: None,
        },
    };
    let (hash, mgf) = oaep_hashes(&params)?;
    // OAEP leaves no Bleichenbacher oracle, but its failures take the same
    // way as PKCS#1 v1.5's: one error, from the content.
    Ok(Unwrapper::new(key)?.oaep(hash, mgf, ct, len))
}

/// RSA-OAEP's hash and MGF1 hash.
fn oaep_hashes(p: &OaepParams) -> Result<(Hash, Hash), CmsError> {
    if p.label.is_some() {
        return Err(CmsError::Unsupported("RSA-OAEP with a label".into()));
    }
    let hash = match &p.hash {
        Some(h) => Hash::from_oid(&h.oid)?,
        None => Hash::Sha1,
    };
    let mgf_hash = match &p.mgf {
        None => Hash::Sha1,
        Some(m) if m.oid == ID_MGF1 => {
            let inner = m
                .parameters
                .as_ref()
                .ok_or_else(|| CmsError::Damaged("MGF1 without its hash".into()))?;
            let inner = AlgorithmIdentifierOwned::from_der(&inner.to_der().map_err(damaged)?)
                .map_err(damaged)?;
            Hash::from_oid(&inner.oid)?
        }
        Some(m) => {
            return Err(CmsError::Unsupported(format!(
                "RSA-OAEP mask generation {}",
                m.oid
            )))
        }
    };
    Ok((hash, mgf_hash))
}

fn parts(eci: &EncryptedContentInfo) -> Result<(Vec<u8>, &[u8]), CmsError> {
    let params = eci
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or_else(|| CmsError::Damaged("no content encryption parameters".into()))?
        .to_der()
        .map_err(damaged)?;
    let ct = eci
        .encrypted_content
        .as_ref()
        .ok_or_else(|| CmsError::Damaged("no encrypted content".into()))?
        .as_bytes();
    Ok((params, ct))
}

fn decrypt_cbc(eci: &EncryptedContentInfo, cek: &[u8]) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    use aes::cipher::block_padding::Pkcs7;
    use aes::cipher::{BlockDecryptMut, KeyIvInit};
    let (params, ct) = parts(eci)?;
    let iv = OctetString::from_der(&params).map_err(damaged)?;
    let iv = iv.as_bytes();
    let out = match cek.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(cek, iv)
            .map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(ct)),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(cek, iv)
            .map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(ct)),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(cek, iv)
            .map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(ct)),
    };
    match out {
        Ok(Ok(plain)) => Ok(Zeroizing::new(plain)),
        // A wrong IV length, bad padding: the one error.
        _ => Err(CmsError::DoesNotDecrypt),
    }
}

fn decrypt_gcm(
    eci: &EncryptedContentInfo,
    cek: &[u8],
    aad: &[u8],
    tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let (params, ct) = parts(eci)?;
    let params = GcmParameters::from_der(&params).map_err(damaged)?;
    if params.nonce.as_bytes().len() != 12 || params.icv_len.unwrap_or(12) != 16 || tag.len() != 16
    {
        return Err(CmsError::Unsupported(
            "AES-GCM other than a 12-byte nonce and a 16-byte tag".into(),
        ));
    }
    let nonce = aes_gcm::Nonce::from_slice(params.nonce.as_bytes());
    let tag = aes_gcm::Tag::from_slice(tag);
    let mut buf = Zeroizing::new(ct.to_vec());
    let r = match cek.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(cek)
            .map(|c| c.decrypt_in_place_detached(nonce, aad, &mut buf, tag)),
        24 => aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(cek)
            .map(|c| c.decrypt_in_place_detached(nonce, aad, &mut buf, tag)),
        _ => aes_gcm::Aes256Gcm::new_from_slice(cek)
            .map(|c| c.decrypt_in_place_detached(nonce, aad, &mut buf, tag)),
    };
    match r {
        Ok(Ok(())) => Ok(buf),
        // A bad tag: the one error.
        _ => Err(CmsError::DoesNotDecrypt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::{P256Signer, SigningCert};

    /// A key and its encryption certificate of `epoch`, serial `serial`.
    fn held(ca: &P256Signer, serial: u64, epoch: u32) -> HeldKey {
        let key = crate::x509::new_encryption_key().expect("rsa");
        let pem = crate::x509::encryption_certificate(
            ca,
            &crate::x509::RsaPublic::new(&key.to_public_key()).expect("public"),
            &SigningCert {
                address: "a@b.example",
                device_name: "encryption",
                serial,
                not_before: 1_790_000_000,
                not_after: 1_890_000_000,
                urls: None,
            },
            epoch,
        )
        .expect("cert");
        (key, crate::x509::pem_to_der(&pem).expect("der"))
    }

    #[test]
    fn the_recipient_info_chooses_the_key_and_a_stranger_is_named() {
        let ca = P256Signer::new(p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).expect("ca"));
        let (old, new) = (held(&ca, 0x0a0b, 0), held(&ca, 0x0c0d, 1));
        let msg =
            crate::mail::encrypt(b"old mail", &old.1, crate::message::Cipher::Aes256Cbc, true)
                .expect("encrypt");
        let both = [new.clone(), old.clone()];
        assert_eq!(
            decrypt(&msg, &both).expect("decrypt").as_slice(),
            b"old mail"
        );
        match decrypt(&msg, &[new]) {
            Err(CmsError::NotRecipient(to)) => assert!(
                to.starts_with("serial 0A0B issued by ") && to.contains("Mesh personal CA"),
                "{to}"
            ),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}
