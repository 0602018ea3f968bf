//! Mail as clients send it (RFC 8551): whole messages (`multipart/signed`,
//! `application/pkcs7-mime`) and bare CMS (DER, BER, PEM), unwrapped layer
//! by layer; and the forms `mesh smime sign` and `encrypt` write.

use zeroize::Zeroizing;

use crate::ber::{self, BerError};
use crate::decrypt::HeldKey;
use crate::message::{
    self, Cipher, CmsError, ID_AUTH_ENVELOPED_DATA, ID_ENVELOPED_DATA, ID_SIGNED_DATA,
};
use crate::mime::{self, MimeError};
use crate::verify::{self, Trust, Verified};

/// The most layers unwrapped (signed, encrypted, signed again…).
pub const MAX_LAYERS: usize = 8;

/// Why a message cannot be read or written, by layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The ASN.1 encoding (BER/DER) is damaged.
    #[error("damaged message: {0}")]
    Ber(#[from] BerError),
    /// The MIME structure.
    #[error(transparent)]
    Mime(#[from] MimeError),
    /// The CMS layer: signature, trust, keys, algorithms.
    #[error(transparent)]
    Cms(#[from] CmsError),
    /// `verify` on a message with no signature layer.
    #[error("the message is not signed")]
    NotSigned,
    /// `decrypt` on a message with no encryption layer.
    #[error("the message is not encrypted")]
    NotEncrypted,
    /// More layers than [`MAX_LAYERS`].
    #[error("the message nests more than {MAX_LAYERS} S/MIME layers")]
    TooDeep,
    /// This device's keys or the account's certificates.
    #[error(transparent)]
    Plugin(#[from] mesh_plugins::PluginError),
}

impl MailError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            MailError::Ber(_) | MailError::TooDeep => {
                CmsError::Damaged(String::new()).hint().to_string()
            }
            MailError::Mime(MimeError::NotMime) => "give a whole message as the mail client saved it (.eml), or bare CMS in DER, BER or PEM".into(),
            MailError::Mime(MimeError::NotSmime(_)) => "the message is neither signed nor encrypted with S/MIME".into(),
            MailError::Mime(MimeError::Encoding(_)) => "S/MIME bodies are base64 or binary: save the message from the mail client unchanged".into(),
            MailError::Mime(_) => CmsError::Damaged(String::new()).hint().to_string(),
            MailError::Cms(CmsError::NotRecipient(to)) => format!(
                "the sender encrypted to {to}, not to a certificate whose key this device holds: \
                 `mesh smime cert --encryption` prints the one to give senders \
                 (compare serials with `openssl x509 -noout -serial`)"
            ),
            MailError::Cms(c) => c.hint().to_string(),
            MailError::NotSigned => "`mesh smime decrypt` opens encrypted messages".into(),
            MailError::NotEncrypted => "`mesh smime verify` checks signed messages".into(),
            MailError::Plugin(p) => return p.hint(),
        })
    }
}

type Result<T> = std::result::Result<T, MailError>;

/// What opening a message needs: whom to trust, and (only if a layer is
/// encrypted) this device's decryption keys.
pub struct Context<'a> {
    /// Trust anchors for signers.
    pub trust: Trust,
    /// This device's keys, fetched on the first encrypted layer.
    pub keys: &'a dyn Fn() -> std::result::Result<Vec<HeldKey>, mesh_plugins::PluginError>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// A message opened down to its content.
#[derive(Debug)]
pub struct Opened {
    /// The innermost content (a MIME entity for mail; the bytes for bare CMS).
    pub content: Zeroizing<Vec<u8>>,
    /// Each signature layer's signer, outermost first.
    pub signers: Vec<Verified>,
    /// How many encryption layers were removed.
    pub decrypted: usize,
}

/// One layer as read.
enum Layer {
    /// CMS (DER), encapsulating its content.
    Cms(Zeroizing<Vec<u8>>),
    /// A detached signature (DER) and the content it signs, as sent.
    Detached(Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>),
    /// Not S/MIME: the content.
    Plain,
}

/// Open every layer of a message.
pub fn open(input: &[u8], ctx: &Context<'_>) -> Result<Opened> {
    let mut cur = Zeroizing::new(input.to_vec());
    let mut signers = Vec::new();
    let mut decrypted = 0;
    let mut keys: Option<Vec<HeldKey>> = None;
    for depth in 0..MAX_LAYERS {
        let layer = classify(&cur, depth == 0)?;
        let next = match layer {
            Layer::Plain => {
                return Ok(Opened {
                    content: cur,
                    signers,
                    decrypted,
                })
            }
            Layer::Detached(sig, content) => {
                let (content, who) = verify_detached(&sig, &content, &ctx.trust)?;
                signers.push(who);
                content
            }
            Layer::Cms(der) => match content_type(&der)? {
                t if t == ID_SIGNED_DATA => {
                    let (content, who) = verify::verify(&der, None, &ctx.trust)?;
                    signers.push(who);
                    content
                }
                _ => {
                    if keys.is_none() {
                        keys = Some((ctx.keys)()?);
                    }
                    decrypted += 1;
                    crate::decrypt::decrypt(&der, keys.as_deref().unwrap_or_default())?
                }
            },
        };
        cur = next;
    }
    Err(MailError::TooDeep)
}

/// RFC 8551 §3.1.1 makes the signed part canonical (CRLF); a message saved
/// with LF line endings is checked in canonical form first, then as it is.
fn verify_detached(
    sig: &[u8],
    content: &[u8],
    trust: &Trust,
) -> Result<(Zeroizing<Vec<u8>>, Verified)> {
    let canonical = Zeroizing::new(mime::canonical(content));
    match verify::verify(sig, Some(&canonical), trust) {
        Err(CmsError::ContentMismatch) if canonical.as_slice() != content => {
            Ok(verify::verify(sig, Some(content), trust)?)
        }
        r => Ok(r?),
    }
}

fn content_type(der: &[u8]) -> Result<der::oid::ObjectIdentifier> {
    use der::Decode;
    let ci = cms::content_info::ContentInfo::from_der(der).map_err(message::damaged)?;
    let t = ci.content_type;
    if t == ID_SIGNED_DATA || t == ID_ENVELOPED_DATA || t == ID_AUTH_ENVELOPED_DATA {
        Ok(t)
    } else {
        Err(CmsError::Unsupported(format!("CMS content type {t}")).into())
    }
}

/// What a layer is. The outermost must be S/MIME; an inner layer that is
/// not (or does not parse as CMS) is the content, unless its MIME headers
/// say it is S/MIME: then it must be read as such.
fn classify(data: &[u8], outer: bool) -> Result<Layer> {
    match classify_strict(data) {
        Ok(l) => Ok(l),
        Err(_) if !outer && !declares_smime(data) => Ok(Layer::Plain),
        Err(e) => Err(e),
    }
}

/// Whether a MIME entity's Content-Type is S/MIME.
fn declares_smime(data: &[u8]) -> bool {
    mime::parse(data).is_ok_and(|e| {
        matches!(
            e.content_type().mime.as_str(),
            "multipart/signed" | "application/pkcs7-mime" | "application/x-pkcs7-mime"
        )
    })
}

fn classify_strict(data: &[u8]) -> Result<Layer> {
    let trimmed = data.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN ") {
        return Ok(Layer::Cms(cms_der(&pem_body(trimmed)?)?));
    }
    if ber::looks_like_ber(data) {
        return Ok(Layer::Cms(cms_der(data)?));
    }
    let e = mime::parse(data)?;
    let ct = e.content_type();
    match ct.mime.as_str() {
        "multipart/signed" => {
            let protocol = ct.param("protocol").unwrap_or("").to_ascii_lowercase();
            if !protocol.ends_with("pkcs7-signature") {
                return Err(
                    MimeError::NotSmime(format!("multipart/signed; protocol={protocol}")).into(),
                );
            }
            let boundary = ct
                .param("boundary")
                .ok_or(MimeError::Damaged("multipart/signed without a boundary"))?;
            let (first, sig) = mime::signed_parts(e.body, boundary)?;
            let sig = cms_der(&mime::decoded_body(&sig)?)?;
            Ok(Layer::Detached(sig, Zeroizing::new(first.to_vec())))
        }
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
            Ok(Layer::Cms(cms_der(&mime::decoded_body(&e)?)?))
        }
        other => Err(MimeError::NotSmime(other.to_string()).into()),
    }
}

/// BER (or DER) to DER, checked to be S/MIME CMS.
fn cms_der(data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let der = Zeroizing::new(ber::to_der(data)?);
    content_type(&der)?;
    Ok(der)
}

/// The base64 between a PEM block's BEGIN and END lines (RFC 7468).
fn pem_body(pem: &[u8]) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(pem).map_err(|_| MimeError::Base64)?;
    let body: String = text
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .filter(|l| !l.contains(':'))
        .collect();
    let clean: String = body.split_ascii_whitespace().collect();
    Ok(data_encoding::BASE64
        .decode(clean.as_bytes())
        .map_err(|_| MimeError::Base64)?)
}

/// How `mesh smime sign` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignForm {
    /// `multipart/signed`, detached, canonical CRLF, `micalg` (RFC 8551 §3.5.3).
    Multipart,
    /// `application/pkcs7-mime; smime-type=signed-data` (RFC 8551 §3.5.2).
    Opaque,
    /// Bare CMS SignedData over the input as it is, DER.
    Der,
}

/// The signer: the device's key, its certificate and chain (DER).
#[derive(Debug)]
pub struct Signer<'a> {
    /// The signing key.
    pub key: &'a p256::ecdsa::SigningKey,
    /// Its certificate.
    pub cert: &'a [u8],
    /// The chain above it.
    pub chain: &'a [Vec<u8>],
}

/// Sign `input` (a message, an entity, or plain content) in `form`.
pub fn sign(input: &[u8], s: &Signer<'_>, form: SignForm) -> Result<Vec<u8>> {
    if form == SignForm::Der {
        return Ok(message::sign(input, s.key, s.cert, s.chain, false)?);
    }
    let (outer, entity) = mime::split_for_protection(input);
    Ok(match form {
        SignForm::Multipart => {
            let sig = message::sign(&entity, s.key, s.cert, s.chain, true)?;
            mime::write_signed(&outer, &entity, &sig, "sha-256")
        }
        _ => {
            let der = message::sign(&entity, s.key, s.cert, s.chain, false)?;
            mime::write_pkcs7_mime(&outer, "signed-data", &der)
        }
    })
}

/// Encrypt `input` to a certificate (DER): `application/pkcs7-mime`, or
/// bare CMS over the input as it is with `der`.
pub fn encrypt(input: &[u8], recipient: &[u8], cipher: Cipher, der: bool) -> Result<Vec<u8>> {
    if der {
        return Ok(message::encrypt(input, recipient, cipher)?);
    }
    let (outer, entity) = mime::split_for_protection(input);
    let cms = message::encrypt(&entity, recipient, cipher)?;
    let smime_type = match cipher {
        Cipher::Aes256Cbc => "enveloped-data",
        Cipher::Aes256Gcm => "authEnveloped-data",
    };
    Ok(mime::write_pkcs7_mime(&outer, smime_type, &cms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::{P256Public, P256Signer, SigningCert};

    struct Fixture {
        device: p256::ecdsa::SigningKey,
        cert: Vec<u8>,
        ca: Vec<u8>,
        keys: Vec<HeldKey>,
    }

    fn fixture() -> Fixture {
        let addr = "alice@example.com";
        let ca_key = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).expect("ca key");
        let device = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).expect("device key");
        let ca_signer = P256Signer::new(ca_key);
        let now = 1_790_000_000;
        let c = |serial| SigningCert {
            address: addr,
            device_name: "laptop",
            serial,
            not_before: now - 86_400,
            not_after: now + 100 * 365 * 86_400,
            urls: None,
        };
        let public = device.verifying_key().to_encoded_point(false);
        let cert = crate::x509::signing_certificate(
            &ca_signer,
            &P256Public::new(public.as_bytes()).expect("public"),
            &c(2),
        )
        .expect("cert");
        let rsa = crate::x509::new_encryption_key().expect("rsa");
        let enc = crate::x509::encryption_certificate(
            &ca_signer,
            &crate::x509::RsaPublic::new(&rsa.to_public_key()).expect("rsa public"),
            &c(3),
            0,
        )
        .expect("enc");
        let der = |pem: &str| crate::x509::pem_to_der(pem).expect("der");
        Fixture {
            device,
            cert: der(&cert),
            ca: der(&crate::x509::ca_certificate(&ca_signer, addr).expect("ca")),
            keys: vec![(rsa, der(&enc))],
        }
    }

    fn open_with(f: &Fixture, msg: &[u8]) -> Result<Opened> {
        let keys = || Ok(f.keys.clone());
        open(
            msg,
            &Context {
                trust: Trust {
                    anchors: vec![f.ca.clone()],
                    system: None,
                    retired: Vec::new(),
                },
                keys: &keys,
            },
        )
    }

    #[test]
    fn every_form_opens_and_layers_nest() {
        let f = fixture();
        let chain = [f.ca.clone()];
        let s = Signer {
            key: &f.device,
            cert: &f.cert,
            chain: &chain,
        };
        let input = b"Subject: hi\nContent-Type: text/plain\n\nhello\n";
        let entity = b"Content-Type: text/plain\r\n\r\nhello\r\n";
        for form in [SignForm::Multipart, SignForm::Opaque] {
            let o = open_with(&f, &sign(input, &s, form).expect("sign")).expect("open");
            assert_eq!(o.content.as_slice(), entity, "{form:?}");
            assert_eq!(o.signers[0].email.as_deref(), Some("alice@example.com"));
        }
        let o = open_with(&f, &sign(b"bare", &s, SignForm::Der).expect("sign")).expect("open");
        assert_eq!(o.content.as_slice(), b"bare");
        let enc = f.keys[0].1.clone();
        for cipher in [Cipher::Aes256Cbc, Cipher::Aes256Gcm] {
            let o =
                open_with(&f, &encrypt(input, &enc, cipher, false).expect("enc")).expect("open");
            assert_eq!((o.content.as_slice(), o.decrypted), (&entity[..], 1));
        }
        let signed = sign(input, &s, SignForm::Multipart).expect("sign");
        let both = encrypt(&signed, &enc, Cipher::Aes256Gcm, false).expect("enc");
        let o = open_with(&f, &both).expect("open");
        assert_eq!((o.signers.len(), o.decrypted), (1, 1));
        assert_eq!(o.content.as_slice(), entity);
    }

    #[test]
    fn signers_chain_to_a_system_store_bundle_and_nothing_else() {
        let f = fixture();
        let chain = [f.ca.clone()];
        let s = Signer {
            key: &f.device,
            cert: &f.cert,
            chain: &[],
        };
        let msg = sign(b"hello\n", &s, SignForm::Opaque).expect("sign");
        let bundle = std::env::temp_dir().join(format!("mesh-trust-{}.pem", std::process::id()));
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            data_encoding::BASE64.encode(&chain[0])
        );
        std::fs::write(&bundle, pem).expect("bundle");
        let keys = || Ok(Vec::new());
        let with = |anchors: Vec<Vec<u8>>, system: Option<std::path::PathBuf>| {
            open(
                &msg,
                &Context {
                    trust: Trust {
                        anchors,
                        system,
                        retired: Vec::new(),
                    },
                    keys: &keys,
                },
            )
        };
        assert!(with(Vec::new(), Some(bundle.clone())).is_ok());
        assert!(matches!(
            with(Vec::new(), Some(bundle.with_extension("missing"))),
            Err(MailError::Cms(CmsError::Untrusted(_)))
        ));
        assert!(
            matches!(
                with(vec![f.cert.clone()], None).map(|o| o.signers.len()),
                Ok(1)
            ),
            "the signer's own certificate as an anchor"
        );
        let _ = std::fs::remove_file(&bundle);
    }

    /// Issue 22.6: a signer under a retired CA of the account verifies and
    /// says which; with no such CA it is untrusted.
    #[test]
    fn a_retired_ca_verifies_and_is_named() {
        let f = fixture();
        let s = Signer {
            key: &f.device,
            cert: &f.cert,
            chain: &[],
        };
        let msg = sign(b"hello\n", &s, SignForm::Multipart).expect("sign");
        let keys = || Ok(Vec::new());
        let with = |retired: Vec<(Vec<u8>, String)>| {
            open(
                &msg,
                &Context {
                    trust: Trust {
                        anchors: Vec::new(),
                        system: None,
                        retired,
                    },
                    keys: &keys,
                },
            )
        };
        let label = "the account's CA of epoch 0 (retired …)".to_string();
        let o = with(vec![(f.ca.clone(), label.clone())]).expect("verifies");
        assert_eq!(o.signers[0].retired_ca.as_deref(), Some(label.as_str()));
        assert!(matches!(
            with(Vec::new()),
            Err(MailError::Cms(CmsError::Untrusted(_)))
        ));
        let current = open_with(&f, &msg).expect("current CA");
        assert_eq!(current.signers[0].retired_ca, None);
    }

    #[test]
    fn altered_and_damaged_layers_are_refused() {
        let f = fixture();
        let chain = [f.ca.clone()];
        let s = Signer {
            key: &f.device,
            cert: &f.cert,
            chain: &chain,
        };
        let signed = sign(b"hello\n", &s, SignForm::Multipart).expect("sign");
        let text = String::from_utf8(signed.clone()).expect("utf8");
        let altered = text.replacen("hello", "jello", 1);
        assert!(matches!(
            open_with(&f, altered.as_bytes()),
            Err(MailError::Cms(CmsError::ContentMismatch))
        ));
        // An inner layer that says it is S/MIME but is damaged is not taken as content.
        let cut = &signed[..signed.len() - 30];
        let enc = encrypt(cut, &f.keys[0].1, Cipher::Aes256Cbc, false).expect("enc");
        assert!(open_with(&f, &enc).is_err());
        assert!(matches!(
            open_with(&f, b"plain words"),
            Err(MailError::Mime(MimeError::NotMime))
        ));
    }
}
