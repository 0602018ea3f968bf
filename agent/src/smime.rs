//! S/MIME for a Mesh account (first part of the S/MIME issue): the
//! account's personal CA certificate and each device's signing certificate,
//! issued by administrators at sync and kept in the Application store
//! (PROTOCOL.md §12).

use mesh_core::envelope::Encrypted;
use mesh_core::keys::PublicKey;
use mesh_core::objects::{CatalogedDevice, ConnectionDevice, ProfileDevice, Role};
use mesh_core::portal::DeviceState;
use mesh_smime::{P256Public, P256Signer, SigningCert};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::account::{self, app_entry as app, app_envelope as entry, AccountError, AccountState};
use crate::client::now;
use crate::store::Store;

type Result<T> = std::result::Result<T, AccountError>;

/// Application entry with the CA certificate.
pub const APP_SMIME: &str = "smime";
/// Signing certificates are valid for a year.
pub const SIGNING_VALIDITY: u64 = 365 * 86400;

/// The `smime` application entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SmimeCa {
    /// The CA certificate, PEM.
    #[serde(rename = "CaCertificate")]
    pub ca_certificate: String,
}

/// A device's signing certificate (`smime-cert:<device UDF>`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SmimeCert {
    /// The device.
    #[serde(rename = "DeviceUdf")]
    pub device_udf: String,
    /// The certified key (uncompressed P-256 point, base64url).
    #[serde(rename = "Key")]
    pub key: String,
    /// Serial number.
    #[serde(rename = "Serial")]
    pub serial: u64,
    /// The certificate, PEM.
    #[serde(rename = "Certificate")]
    pub certificate: String,
}

/// The account's shared encryption key and certificate at one epoch
/// (`smime-enc:<epoch>`): the key (PKCS#8) encrypted to every `smime`
/// device, the administrators and the escrow key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SmimeEncryption {
    /// Epoch: rotated when a device that held it is revoked.
    #[serde(rename = "Epoch")]
    pub epoch: u32,
    /// Serial number.
    #[serde(rename = "Serial")]
    pub serial: u64,
    /// The certificate, PEM.
    #[serde(rename = "Certificate")]
    pub certificate: String,
    /// The private key, encrypted.
    #[serde(rename = "EnvelopedKey")]
    pub key: Encrypted,
}

/// Application entry with the current CRL.
pub const APP_CRL: &str = "smime-crl";

/// The published CRL.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SmimeCrl {
    /// CRL number: the access list's serial it reflects.
    #[serde(rename = "Number")]
    pub number: u64,
    /// The CRL, PEM.
    #[serde(rename = "Crl")]
    pub crl: String,
}

/// Content type of the wrapped encryption key.
const CT_SMIME_KEY: &str = "SmimeEncryptionKey";

fn current_encryption(a: &AccountState) -> Result<Option<SmimeEncryption>> {
    let mut best: Option<SmimeEncryption> = None;
    for uid in a
        .applications
        .keys()
        .filter(|u| u.starts_with("smime-enc:"))
    {
        if let Some(e) = app::<SmimeEncryption>(a, uid)? {
            if best.as_ref().is_none_or(|b| e.epoch > b.epoch) {
                best = Some(e);
            }
        }
    }
    Ok(best)
}

/// Administrators: publish the CA certificate and certify every active
/// `smime` device's signing key that has no certificate for its key yet.
pub fn maintain(store: &mut Store) -> Result<usize> {
    account::admin_write(store, |a, admin| {
        let ca = P256Signer::new(admin.smime_ca.clone());
        let mut envelopes = Vec::new();
        if app::<SmimeCa>(a, APP_SMIME)?.is_none() {
            let pem = mesh_smime::ca_certificate(&ca, &a.address)
                .map_err(|e| AccountError::Usage(e.to_string()))?;
            envelopes.push(entry(
                APP_SMIME.into(),
                &SmimeCa {
                    ca_certificate: pem,
                },
                admin,
            ));
        }
        let Some(list) = a.access_list()? else {
            return Ok((Vec::new(), 0));
        };
        let t = now();
        for d in list
            .devices
            .iter()
            .filter(|d| d.state == DeviceState::Active && d.roles.contains(&Role::Smime))
        {
            let Some(env) = a.devices.get(&d.device_udf) else {
                continue;
            };
            let cat: CatalogedDevice = env.unverified_object("catalog entry")?;
            let dp = ProfileDevice::verify(&cat.profile_device)?;
            let Some(sec1) = dp.smime_sign.clone() else {
                continue;
            };
            let key_b64 = mesh_core::b64::encode(&sec1);
            let uid = format!("smime-cert:{}", d.device_udf);
            if app::<SmimeCert>(a, &uid)?.is_some_and(|c| c.key == key_b64) {
                continue;
            }
            let public = P256Public::new(&sec1)
                .map_err(|e| AccountError::Untrusted(format!("{}: {e}", d.name)))?;
            let mut serial = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
            let serial = u64::from_be_bytes(serial) >> 1;
            let t_i = i64::try_from(t).unwrap_or(i64::MAX);
            let pem = mesh_smime::signing_certificate(
                &ca,
                &public,
                &SigningCert {
                    address: &a.address,
                    device_name: &d.name,
                    serial,
                    not_before: t_i - 300,
                    not_after: t_i + i64::try_from(SIGNING_VALIDITY).unwrap_or(0),
                },
            )
            .map_err(|e| AccountError::Usage(e.to_string()))?;
            envelopes.push(entry(
                uid,
                &SmimeCert {
                    device_udf: d.device_udf.clone(),
                    key: key_b64,
                    serial,
                    certificate: pem,
                },
                admin,
            ));
        }
        // The shared encryption key: to every active smime device, the
        // administrators and escrow. A new key when a holder was revoked;
        // the same key, wrapped again, when a device joined.
        let profile = a.profile()?;
        let mut recipients: Vec<PublicKey> =
            vec![admin.admin_encrypt.public_key(), admin.escrow.public_key()];
        for d in list
            .devices
            .iter()
            .filter(|d| d.state == DeviceState::Active && d.roles.contains(&Role::Smime))
        {
            let Some(env) = a.devices.get(&d.device_udf) else {
                continue;
            };
            let cat: CatalogedDevice = env.unverified_object("catalog entry")?;
            let conn = ConnectionDevice::verify(&cat.connection_device, &profile)?;
            recipients.push(conn.encryption.key);
        }
        let kids: std::collections::BTreeSet<String> = recipients.iter().map(|k| k.udf()).collect();
        let current = current_encryption(a)?;
        let (epoch, key, cert, serial) = match &current {
            Some(c) => {
                let held: std::collections::BTreeSet<String> =
                    c.key.recipients.iter().map(|r| r.kid.clone()).collect();
                if held == kids {
                    (c.epoch, None, None, c.serial)
                } else if held.iter().all(|k| kids.contains(k)) {
                    // Only additions: the same key for more devices.
                    let pkcs8 = c.key.decrypt(CT_SMIME_KEY, &admin.admin_encrypt)?;
                    (c.epoch, Some(pkcs8), Some(c.certificate.clone()), c.serial)
                } else {
                    (c.epoch + 1, None, None, 0)
                }
            }
            None => (0, None, None, 0),
        };
        let rotate = current.as_ref().is_none_or(|c| epoch > c.epoch);
        if rotate || key.is_some() {
            let (pkcs8, certificate, serial) = match (key, cert) {
                (Some(k), Some(c)) => (k, c, serial),
                _ => {
                    use rsa::pkcs8::EncodePrivateKey;
                    let k = mesh_smime::new_encryption_key()
                        .map_err(|e| AccountError::Usage(e.to_string()))?;
                    let pkcs8 = Zeroizing::new(
                        k.to_pkcs8_der()
                            .map_err(|e| AccountError::Usage(e.to_string()))?
                            .as_bytes()
                            .to_vec(),
                    );
                    let mut sn = [0u8; 8];
                    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut sn);
                    let serial = u64::from_be_bytes(sn) >> 1;
                    let t_i = i64::try_from(t).unwrap_or(i64::MAX);
                    let public = mesh_smime::RsaPublic::new(&k.to_public_key())
                        .map_err(|e| AccountError::Usage(e.to_string()))?;
                    let pem = mesh_smime::encryption_certificate(
                        &ca,
                        &public,
                        &SigningCert {
                            address: &a.address,
                            device_name: "encryption",
                            serial,
                            not_before: t_i - 300,
                            not_after: t_i + i64::try_from(SIGNING_VALIDITY).unwrap_or(0),
                        },
                    )
                    .map_err(|e| AccountError::Usage(e.to_string()))?;
                    (pkcs8, pem, serial)
                }
            };
            let key = Encrypted::encrypt(CT_SMIME_KEY, &pkcs8, &recipients)?;
            envelopes.push(entry(
                format!("smime-enc:{epoch}"),
                &SmimeEncryption {
                    epoch,
                    serial,
                    certificate,
                    key,
                },
                admin,
            ));
        }
        // The CRL, whenever the access list moved on since the published one.
        let published: Option<SmimeCrl> = app(a, APP_CRL)?;
        if rotate || published.as_ref().is_none_or(|c| c.number != list.serial) {
            let mut revoked = Vec::new();
            for d in list
                .devices
                .iter()
                .filter(|d| d.state == DeviceState::Revoked)
            {
                if let Some(c) = app::<SmimeCert>(a, &format!("smime-cert:{}", d.device_udf))? {
                    revoked.push(mesh_smime::Revoked {
                        serial: c.serial,
                        when: i64::try_from(list.issued).unwrap_or(0),
                        compromised: true,
                    });
                }
            }
            // Every encryption certificate before the one being published is superseded.
            for uid in a
                .applications
                .keys()
                .filter(|u| u.starts_with("smime-enc:"))
            {
                if let Some(e) = app::<SmimeEncryption>(a, uid)? {
                    if e.epoch < epoch {
                        revoked.push(mesh_smime::Revoked {
                            serial: e.serial,
                            when: i64::try_from(t).unwrap_or(0),
                            compromised: false,
                        });
                    }
                }
            }
            let pem = mesh_smime::crl(
                &ca,
                &a.address,
                list.serial,
                i64::try_from(t).unwrap_or(0),
                30 * 86400,
                &revoked,
            )
            .map_err(|e| AccountError::Usage(e.to_string()))?;
            envelopes.push(entry(
                APP_CRL.into(),
                &SmimeCrl {
                    number: list.serial,
                    crl: pem,
                },
                admin,
            ));
        }
        Ok(account::application_update(a, envelopes))
    })
}

/// `mesh smime crl`: the CA's current CRL, PEM.
pub fn crl_pem(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    app::<SmimeCrl>(&a, APP_CRL)?.map(|c| c.crl).ok_or_else(|| {
        AccountError::NotFound("no CRL yet: an administrator's sync publishes it".into())
    })
}

/// `mesh smime cert --encryption`: the account's current encryption certificate.
pub fn encryption_cert_pem(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    current_encryption(&a)?
        .map(|e| e.certificate)
        .ok_or_else(|| AccountError::NotFound("no S/MIME encryption certificate yet".into()))
}

/// `mesh smime export`: this device's signing key and certificate and the
/// shared encryption key and certificate, with the CA, in one
/// password-protected PKCS#12 file.
pub fn export(store: &Store, password: &str, profile: mesh_smime::P12Profile) -> Result<Vec<u8>> {
    use p256::pkcs8::EncodePrivateKey as _;
    let a = account::account(store)?;
    let der =
        |pem: &str| mesh_smime::pem_to_der(pem).map_err(|e| AccountError::Untrusted(e.to_string()));
    let ca = der(&ca_pem(store)?)?;
    let base = crate::device::base_keys(store)?;
    let sign_key = Zeroizing::new(
        base.smime_sign
            .to_pkcs8_der()
            .map_err(|e| AccountError::Usage(e.to_string()))?
            .as_bytes()
            .to_vec(),
    );
    let enc = current_encryption(&a)?
        .ok_or_else(|| AccountError::NotFound("no S/MIME encryption key yet".into()))?;
    let keys = account::device_keys(store)?;
    let enc_key = enc
        .key
        .decrypt(CT_SMIME_KEY, &keys.encrypt)
        .map_err(|e| AccountError::Untrusted(format!("S/MIME encryption key: {e}")))?;
    let entries = vec![
        mesh_smime::P12Entry {
            name: format!("{} (signing)", a.address),
            key_pkcs8: sign_key,
            chain: {
                let mut c = vec![der(&cert_pem(store)?)?];
                c.extend(signing_chain(store)?);
                c
            },
        },
        mesh_smime::P12Entry {
            name: format!("{} (encryption)", a.address),
            key_pkcs8: enc_key,
            chain: vec![der(&enc.certificate)?, ca],
        },
    ];
    mesh_smime::pkcs12(&entries, password, profile).map_err(|e| AccountError::Usage(e.to_string()))
}

/// `mesh smime ca`: the CA certificate, PEM.
pub fn ca_pem(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    app::<SmimeCa>(&a, APP_SMIME)?
        .map(|c| c.ca_certificate)
        .ok_or_else(|| {
            AccountError::NotFound("no S/MIME CA yet: an administrator's sync publishes it".into())
        })
}

/// `mesh smime cert`: this device's signing certificate, PEM (one an
/// organisation's CA issued, once imported, else the account CA's).
pub fn cert_pem(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    if let Some(chain) = &a.smime_external {
        if let Some(leaf) = chain.first() {
            return Ok(leaf.clone());
        }
    }
    let me = account::device_udf(store)?;
    app::<SmimeCert>(&a, &format!("smime-cert:{me}"))?
        .map(|c| c.certificate)
        .ok_or_else(|| {
            AccountError::NotFound(
                "no S/MIME certificate for this device yet (it needs the smime role)".into(),
            )
        })
}

/// `mesh smime install --nssdb DIR`: import this device's S/MIME keys into
/// an NSS database as Thunderbird keeps one, with the account's CA trusted
/// for e-mail. The PKCS#12 file in between and its random password live in
/// the 0700 home and are removed whatever happens.
pub fn install(store: &Store, nssdb: &std::path::Path) -> Result<String> {
    let run = |cmd: &mut std::process::Command| -> Result<String> {
        let o = cmd.output().map_err(|e| {
            AccountError::Usage(format!(
                "cannot run {:?}: {e} (install the NSS tools, e.g. apt-get install libnss3-tools)",
                cmd.get_program()
            ))
        })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if o.status.success() {
            Ok(text)
        } else {
            Err(AccountError::Usage(format!(
                "{:?} failed: {}",
                cmd.get_program(),
                text.trim()
            )))
        }
    };
    let sql = format!("sql:{}", nssdb.display());
    if !nssdb.join("cert9.db").exists() {
        std::fs::create_dir_all(nssdb)
            .map_err(|e| AccountError::Usage(format!("{}: {e}", nssdb.display())))?;
        run(std::process::Command::new("certutil").args(["-N", "-d", &sql, "--empty-password"]))?;
    }
    let ca = store.home().join(".smime-ca.pem");
    crate::store::write_atomic(&ca, ca_pem(store)?.as_bytes())?;
    let r = run(std::process::Command::new("certutil")
        .args([
            "-A",
            "-d",
            &sql,
            "-n",
            "Mesh personal CA",
            "-t",
            "C,C,C",
            "-a",
            "-i",
        ])
        .arg(&ca));
    let _ = std::fs::remove_file(&ca);
    r?;
    let mut pw = [0u8; 18];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut pw);
    let pw = Zeroizing::new(mesh_core::b64::encode(&pw));
    let p12 = export(store, &pw, mesh_smime::P12Profile::Modern)?;
    let file = store.home().join(".smime-install.p12");
    // The password goes through a 0600 file, not the command line (which
    // other processes can read).
    let pwfile = store.home().join(".smime-install.pw");
    crate::store::write_atomic(&file, &p12)?;
    crate::store::write_atomic(&pwfile, pw.as_bytes())?;
    let r = run(std::process::Command::new("pk12util")
        .args(["-d", &sql, "-K", "", "-w"])
        .arg(&pwfile)
        .arg("-i")
        .arg(&file));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&pwfile);
    r
}

fn der_of(pem: &str) -> Result<Vec<u8>> {
    mesh_smime::pem_to_der(pem).map_err(|e| AccountError::Untrusted(e.to_string()))
}

fn cms_err(e: mesh_smime::SmimeError) -> AccountError {
    AccountError::Usage(e.to_string())
}

/// `mesh smime sign`: CMS SignedData (DER) by this device's signing key.
pub fn sign(store: &Store, content: &[u8]) -> Result<Vec<u8>> {
    let base = crate::device::base_keys(store)?;
    let chain = signing_chain(store)?;
    mesh_smime::message::sign(
        content,
        &base.smime_sign,
        &der_of(&cert_pem(store)?)?,
        &chain,
    )
    .map_err(cms_err)
}

/// `mesh smime verify`: the content of a SignedData message signed under the account's CA.
pub fn verify(store: &Store, message: &[u8]) -> Result<mesh_smime::message::Verified> {
    mesh_smime::message::verify(message, &der_of(&ca_pem(store)?)?).map_err(cms_err)
}

/// `mesh smime encrypt`: EnvelopedData (DER) to `recipient` (PEM), by
/// default the account's own encryption certificate.
pub fn encrypt(store: &Store, content: &[u8], recipient: Option<&str>) -> Result<Vec<u8>> {
    let pem = match recipient {
        Some(p) => p.to_string(),
        None => encryption_cert_pem(store)?,
    };
    mesh_smime::message::encrypt(content, &der_of(&pem)?).map_err(cms_err)
}

/// `mesh smime decrypt`: with any epoch of the shared encryption key this device holds.
pub fn decrypt(store: &Store, message: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    use rsa::pkcs8::DecodePrivateKey;
    let a = account::account(store)?;
    let keys = account::device_keys(store)?;
    let mut held = Vec::new();
    for uid in a
        .applications
        .keys()
        .filter(|u| u.starts_with("smime-enc:"))
    {
        let Some(e) = app::<SmimeEncryption>(&a, uid)? else {
            continue;
        };
        // Epochs issued before this device joined are not for it.
        let Ok(pkcs8) = e.key.decrypt(CT_SMIME_KEY, &keys.encrypt) else {
            continue;
        };
        let k = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8)
            .map_err(|e| AccountError::Untrusted(e.to_string()))?;
        held.push((k, der_of(&e.certificate)?));
    }
    if held.is_empty() {
        return Err(AccountError::NotFound(
            "this device holds no S/MIME decryption key (it needs the smime role)".into(),
        ));
    }
    mesh_smime::message::decrypt(message, &held).map_err(cms_err)
}

/// The chain that goes with this device's signing certificate.
fn signing_chain(store: &Store) -> Result<Vec<Vec<u8>>> {
    let a = account::account(store)?;
    match &a.smime_external {
        Some(chain) if chain.len() > 1 => chain[1..].iter().map(|p| der_of(p)).collect(),
        Some(_) => Ok(Vec::new()),
        None => Ok(vec![der_of(&ca_pem(store)?)?]),
    }
}

/// `mesh smime csr`: a CSR for this device's signing key.
pub fn csr(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    let base = crate::device::base_keys(store)?;
    mesh_smime::csr(
        &P256Signer::new(base.smime_sign.clone()),
        &a.address,
        &crate::device::name(store),
    )
    .map_err(cms_err)
}

/// `mesh smime import-cert`: use a certificate (and its chain) an
/// organisation's CA issued for this device's signing key.
pub fn import_cert(store: &mut Store, pem: &str) -> Result<String> {
    let certs = mesh_smime::pem_certificates(pem).map_err(cms_err)?;
    let leaf = certs
        .first()
        .ok_or_else(|| AccountError::Usage("the file holds no PEM certificate".into()))?;
    let base = crate::device::base_keys(store)?;
    let ours = base
        .smime_sign
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    if mesh_smime::certificate_key(leaf).map_err(cms_err)? != ours {
        return Err(AccountError::Usage(
            "the certificate is not for this device's signing key (see `mesh smime csr`)".into(),
        ));
    }
    let mut a = account::account(store)?;
    let pems: Vec<String> = certs
        .iter()
        .map(|d| {
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
        })
        .collect();
    a.smime_external = Some(pems);
    store.state_mut().account = Some(serde_json::to_value(&a).unwrap_or_default());
    store.save_state()?;
    Ok(format!("{} certificate(s)", certs.len()))
}
