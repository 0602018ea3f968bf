//! What a device does with the account's S/MIME material: its
//! certificates, the PKCS#12 export, CMS sign/verify/encrypt/decrypt, and
//! a certificate from an organisation's CA instead of the account's.

use mesh_plugins::{AccountView, DeviceHost, PluginError};
use zeroize::Zeroizing;

use crate::entries::{
    encryption_epochs, internal, SmimeCa, SmimeCert, SmimeCrl, APP_CRL, APP_SMIME, CT_SMIME_KEY,
    SLOT,
};
use crate::mail::MailError;
use crate::x509::P256Signer;

type Result<T> = std::result::Result<T, PluginError>;

/// The local record of a certificate an organisation's CA issued.
const EXTERNAL: &str = "smime-external";

fn der(pem: &str) -> Result<Vec<u8>> {
    crate::x509::pem_to_der(pem).map_err(|e| PluginError::Untrusted(e.to_string()))
}

fn cms_err(e: crate::x509::SmimeError) -> PluginError {
    PluginError::BadInput(e.to_string())
}

/// `mesh smime crl`: the CA's current CRL, PEM.
pub fn crl_pem(view: &AccountView) -> Result<String> {
    view.app::<SmimeCrl>(APP_CRL)?
        .map(|c| c.crl)
        .ok_or_else(|| {
            PluginError::NotFound("no CRL yet: an administrator's sync publishes it".into())
        })
}

/// `mesh smime cert --encryption`: the account's current encryption certificate.
pub fn encryption_cert_pem(view: &AccountView) -> Result<String> {
    encryption_epochs(view)?
        .pop()
        .map(|e| e.certificate)
        .ok_or_else(|| PluginError::NotFound("no S/MIME encryption certificate yet".into()))
}

/// `mesh smime ca`: the CA certificate, PEM.
pub fn ca_pem(view: &AccountView) -> Result<String> {
    view.app::<SmimeCa>(APP_SMIME)?
        .map(|c| c.ca_certificate)
        .ok_or_else(|| {
            PluginError::NotFound("no S/MIME CA yet: an administrator's sync publishes it".into())
        })
}

fn external(device: &dyn DeviceHost) -> Option<Vec<String>> {
    device
        .local(EXTERNAL)
        .and_then(|v| serde_json::from_value(v).ok())
}

/// `mesh smime cert`: this device's signing certificate, PEM (one an
/// organisation's CA issued, once imported, else the account CA's).
pub fn cert_pem(device: &dyn DeviceHost, view: &AccountView) -> Result<String> {
    if let Some(leaf) = external(device).and_then(|c| c.first().cloned()) {
        return Ok(leaf);
    }
    view.app::<SmimeCert>(&format!("smime-cert:{}", device.device_udf()))?
        .map(|c| c.certificate)
        .ok_or_else(|| {
            PluginError::NotFound(
                "no S/MIME certificate for this device yet (it needs the smime role)".into(),
            )
        })
}

/// The chain that goes with this device's signing certificate.
fn signing_chain(device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<Vec<u8>>> {
    match external(device) {
        Some(chain) if chain.len() > 1 => chain[1..].iter().map(|p| der(p)).collect(),
        Some(_) => Ok(Vec::new()),
        None => Ok(vec![der(&ca_pem(view)?)?]),
    }
}

/// One epoch of the shared encryption key, as this device holds it.
pub struct Held {
    /// The epoch (`smime-enc:<epoch>`).
    pub epoch: u32,
    /// Whether it is the account's current epoch.
    pub current: bool,
    /// The private key.
    pub key: rsa::RsaPrivateKey,
    /// Its certificate, DER.
    pub cert: Vec<u8>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("epoch", &self.epoch)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Every epoch of the shared encryption key this device holds, oldest first.
pub fn held_keys(device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<Held>> {
    use rsa::pkcs8::DecodePrivateKey;
    let keys = device.keys()?;
    let epochs = encryption_epochs(view)?;
    let current = epochs.last().map(|e| e.epoch);
    let mut held = Vec::new();
    for e in epochs {
        // Epochs issued before this device joined are not for it.
        let Ok(pkcs8) = e.key.decrypt(CT_SMIME_KEY, &keys.encrypt) else {
            continue;
        };
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8)
            .map_err(|x| PluginError::Untrusted(x.to_string()))?;
        held.push(Held {
            epoch: e.epoch,
            current: Some(e.epoch) == current,
            key,
            cert: der(&e.certificate)?,
        });
    }
    Ok(held)
}

/// `mesh smime export`: this device's signing key and certificate and the
/// shared encryption keys it holds, with their certificates and the CA, in
/// one password-protected PKCS#12 file.
pub fn export(
    device: &dyn DeviceHost,
    view: &AccountView,
    password: &str,
    profile: crate::x509::P12Profile,
) -> Result<Vec<u8>> {
    use p256::pkcs8::EncodePrivateKey as _;
    let ca = der(&ca_pem(view)?)?;
    let sign_key = Zeroizing::new(
        signing_key(device)?
            .to_pkcs8_der()
            .map_err(internal)?
            .as_bytes()
            .to_vec(),
    );
    let held = held_keys(device, view)?;
    if held.is_empty() {
        return Err(PluginError::NotFound(
            "this device holds no S/MIME encryption key yet".into(),
        ));
    }
    let mut chain = vec![der(&cert_pem(device, view)?)?];
    chain.extend(signing_chain(device, view)?);
    let mut entries = vec![crate::x509::P12Entry {
        name: crate::x509::signing_name(&view.address),
        key_pkcs8: sign_key,
        chain,
    }];
    // Every epoch this device holds, so that old mail still decrypts in
    // the client; each under its own name (PROTOCOL.md §12).
    for h in &held {
        entries.push(crate::x509::P12Entry {
            name: crate::x509::encryption_name(&view.address, h.epoch, h.current),
            key_pkcs8: Zeroizing::new(h.key.to_pkcs8_der().map_err(internal)?.as_bytes().to_vec()),
            chain: vec![h.cert.clone(), ca.clone()],
        });
    }
    // Each certificate once in the file: the CA goes with the first chain
    // that needs it (clients import every certificate bag; a duplicate
    // shows twice in Windows and some NSS versions).
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for e in &mut entries {
        let mut chain = Vec::with_capacity(e.chain.len());
        for (i, c) in e.chain.drain(..).enumerate() {
            if i == 0 || !seen.contains(&c) {
                seen.push(c.clone());
                chain.push(c);
            }
        }
        e.chain = chain;
    }
    crate::x509::pkcs12(&entries, password, profile).map_err(internal)
}

/// `mesh smime sign`: this device's signature over a message, in `form`.
pub fn sign(
    device: &dyn DeviceHost,
    view: &AccountView,
    input: &[u8],
    form: crate::mail::SignForm,
) -> std::result::Result<Vec<u8>, MailError> {
    let key = signing_key(device)?;
    let chain = signing_chain(device, view)?;
    let cert = der(&cert_pem(device, view)?)?;
    let signer = crate::mail::Signer {
        key: &key,
        cert: &cert,
        chain: &chain,
    };
    crate::mail::sign(input, &signer, form)
}

/// What `verify` and `decrypt` trust: the account's CA, the `--ca`
/// certificates (PEM files' contents), the account's CAs of earlier
/// administrator epochs (said of each signature under one), and the
/// system trust store.
pub fn trust(view: &AccountView, ca_pems: &[String]) -> Result<crate::verify::Trust> {
    let mut t = trust_without_account(ca_pems)?;
    t.anchors.insert(0, der(&ca_pem(view)?)?);
    let retired = view
        .app::<SmimeCa>(APP_SMIME)?
        .map(|c| c.retired)
        .unwrap_or_default();
    for r in retired {
        t.retired.push((der(&r.ca_certificate)?, retired_label(&r)));
    }
    Ok(t)
}

/// What a signature under a retired CA is said to be signed under.
fn retired_label(r: &crate::entries::RetiredCa) -> String {
    let when = r
        .retired
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("when epoch {} began", r.epoch + 1));
    format!("the account's CA of epoch {} (retired {when})", r.epoch)
}

/// The `--ca` certificates and the system trust store only: `verify` on a
/// machine with no Mesh account.
pub fn trust_without_account(ca_pems: &[String]) -> Result<crate::verify::Trust> {
    let mut anchors = Vec::new();
    for pem in ca_pems {
        let certs = crate::x509::pem_certificates(pem).map_err(cms_err)?;
        if certs.is_empty() {
            return Err(PluginError::BadInput(
                "a --ca file holds no PEM certificate".into(),
            ));
        }
        anchors.extend(certs);
    }
    Ok(crate::verify::Trust {
        anchors,
        system: Some(crate::verify::SYSTEM_TRUST_STORE.into()),
        retired: Vec::new(),
    })
}

/// `mesh smime verify` with no account: signed layers only, against
/// `trust`; an encrypted layer needs a device of the account.
pub fn open_without_account(
    message: &[u8],
    trust: crate::verify::Trust,
) -> std::result::Result<crate::mail::Opened, MailError> {
    let keys = || -> Result<Vec<crate::decrypt::HeldKey>> {
        Err(PluginError::NotFound(
            "the message is encrypted, and this machine has no Mesh account to decrypt it".into(),
        ))
    };
    crate::mail::open(message, &crate::mail::Context { trust, keys: &keys })
}

/// `mesh smime verify` and `decrypt`: open every layer of a message, with
/// this device's keys for encrypted layers and `trust` for signed ones.
pub fn open(
    device: &dyn DeviceHost,
    view: &AccountView,
    message: &[u8],
    trust: crate::verify::Trust,
) -> std::result::Result<crate::mail::Opened, MailError> {
    let keys = || {
        let held = held_keys(device, view)?;
        if held.is_empty() {
            return Err(PluginError::NotFound(
                "this device holds no S/MIME decryption key (it needs the smime role)".into(),
            ));
        }
        Ok(held.into_iter().map(|h| (h.key, h.cert)).collect())
    };
    crate::mail::open(message, &crate::mail::Context { trust, keys: &keys })
}

/// `mesh smime encrypt`: to `recipient` (PEM), by default the account's
/// own encryption certificate.
pub fn encrypt(
    view: &AccountView,
    content: &[u8],
    recipient: Option<&str>,
    cipher: crate::message::Cipher,
    bare: bool,
) -> std::result::Result<Vec<u8>, MailError> {
    let pem = match recipient {
        Some(p) => p.to_string(),
        None => encryption_cert_pem(view)?,
    };
    crate::mail::encrypt(content, &der(&pem)?, cipher, bare)
}

/// This device's S/MIME signing key: its slot, from the device's seed.
pub(crate) fn signing_key(device: &dyn DeviceHost) -> Result<p256::ecdsa::SigningKey> {
    Ok(device.base_keys()?.p256(&SLOT)?)
}

/// `mesh smime csr`: a CSR for this device's signing key.
pub fn csr(device: &dyn DeviceHost, view: &AccountView) -> Result<String> {
    crate::x509::csr(
        &P256Signer::new(signing_key(device)?),
        &view.address,
        device.device_name(),
    )
    .map_err(cms_err)
}

/// `mesh smime import-cert`: use a certificate (and its chain) an
/// organisation's CA issued for this device's signing key.
pub fn import_cert(device: &dyn DeviceHost, pem: &str) -> Result<String> {
    let certs = crate::x509::pem_certificates(pem).map_err(cms_err)?;
    let leaf = certs
        .first()
        .ok_or_else(|| PluginError::BadInput("the file holds no PEM certificate".into()))?;
    let ours = signing_key(device)?
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    if crate::x509::certificate_key(leaf).map_err(cms_err)? != ours {
        return Err(PluginError::BadInput(
            "the certificate is not for this device's signing key (see `mesh smime csr`)".into(),
        ));
    }
    let pems: Vec<String> = certs.iter().map(|d| pem_of(d)).collect();
    device.set_local(
        EXTERNAL,
        Some(&serde_json::to_value(&pems).unwrap_or_default()),
    )?;
    Ok(format!("{} certificate(s)", certs.len()))
}

fn pem_of(d: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(d);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}
