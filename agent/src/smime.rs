//! S/MIME for a Mesh account (first part of the S/MIME issue): the
//! account's personal CA certificate and each device's signing certificate,
//! issued by administrators at sync and kept in the Application store
//! (PROTOCOL.md §12).

use mesh_core::envelope::Signed;
use mesh_core::objects::{ct as oct, CatalogedApplication, CatalogedDevice, ProfileDevice, Role};
use mesh_core::portal::{store as st, DeviceState, StoreUpdate};
use mesh_smime::{P256Public, P256Signer, SigningCert};
use serde::{Deserialize, Serialize};

use crate::account::{self, AccountError, AccountState};
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

fn app<T: serde::de::DeserializeOwned>(a: &AccountState, uid: &str) -> Result<Option<T>> {
    let Some(env) = a.applications.get(uid) else {
        return Ok(None);
    };
    let e: CatalogedApplication = env.unverified_object("application entry")?;
    serde_json::from_value(e.data)
        .map(Some)
        .map_err(|x| AccountError::Untrusted(format!("application entry {uid}: {x}")))
}

fn entry<T: Serialize>(uid: String, data: &T, admin: &mesh_core::objects::AccountKeys) -> Signed {
    let e = CatalogedApplication {
        uid,
        data: serde_json::to_value(data).unwrap_or_default(),
    };
    Signed::sign_object(oct::CATALOGED_APPLICATION, &e, &admin.admin_sign)
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
        let n = envelopes.len();
        if n == 0 {
            return Ok((Vec::new(), 0));
        }
        Ok((
            vec![StoreUpdate {
                store: st::APPLICATION.into(),
                expected: a.indices.get(st::APPLICATION).copied().unwrap_or(0),
                envelopes,
            }],
            n,
        ))
    })
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

/// `mesh smime cert`: this device's signing certificate, PEM.
pub fn cert_pem(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    let me = account::device_udf(store)?;
    app::<SmimeCert>(&a, &format!("smime-cert:{me}"))?
        .map(|c| c.certificate)
        .ok_or_else(|| {
            AccountError::NotFound(
                "no S/MIME certificate for this device yet (it needs the smime role)".into(),
            )
        })
}
