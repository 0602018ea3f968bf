//! SSH for a Mesh account: the device's key and certificate for the agent,
//! certificate issuance by administrators, and what servers use
//! (authorized_keys lines verified up to the pinned profile, the CA line,
//! KRLs). PROTOCOL.md §11 describes the catalog entries.

use std::path::Path;
use std::sync::Arc;

use mesh_core::envelope::Signed;
use mesh_core::objects::{
    ct as oct, CatalogedApplication, CatalogedDevice, ConnectionDevice, ProfileAccount, Role,
};
use mesh_core::portal::{self as p, store as st, AccessList, DeviceState, StoreIndex};
use mesh_core::udf;
use mesh_ssh::agent::{mesh_public, MeshIdentity};
use mesh_ssh::cert::{self, CertRequest};
use serde::{Deserialize, Serialize};
use ssh_key::public::KeyData;
use ssh_key::{Certificate, HashAlg};

use crate::account::{self, app_entry as app, AccountError, AccountState};
use crate::client::{now, Client, ClientError};
use crate::store::Store;

type Result<T> = std::result::Result<T, AccountError>;

/// Application entry with the account's SSH policy.
pub const APP_SSH: &str = "ssh";
/// Default certificate validity: 30 days.
pub const DEFAULT_VALIDITY: u64 = 30 * 86400;

/// The account's SSH policy (application entry `ssh`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshPolicy {
    /// Login names the certificates are valid for.
    #[serde(rename = "Principals")]
    pub principals: Vec<String>,
    /// Certificate validity in seconds.
    #[serde(rename = "Validity")]
    pub validity: u64,
}

/// A device's certificate (application entry `ssh-cert:<device UDF>`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SshCertEntry {
    /// The device.
    #[serde(rename = "DeviceUdf")]
    pub device_udf: String,
    /// OpenSSH certificate line.
    #[serde(rename = "Certificate")]
    pub certificate: String,
    /// Its serial.
    #[serde(rename = "Serial")]
    pub serial: u64,
}

fn cert_uid(device: &str) -> String {
    format!("ssh-cert:{device}")
}

/// The SSH policy in force.
pub fn policy(a: &AccountState) -> Result<SshPolicy> {
    Ok(app(a, APP_SSH)?.unwrap_or_else(|| SshPolicy {
        principals: vec![a.address.split('@').next().unwrap_or("user").to_string()],
        validity: DEFAULT_VALIDITY,
    }))
}

fn ssh_key_of(k: &mesh_core::keys::KeyData) -> Option<KeyData> {
    match k.key {
        mesh_core::keys::PublicKey::Ed25519(v) => Some(KeyData::Ed25519(
            ssh_key::public::Ed25519PublicKey(v.to_bytes()),
        )),
        mesh_core::keys::PublicKey::X25519(_) => None,
    }
}

fn ca_key(profile: &ProfileAccount) -> Option<KeyData> {
    ssh_key_of(&profile.ssh_ca)
}

fn connection_of(
    a: &AccountState,
    profile: &ProfileAccount,
    device: &str,
) -> Result<Option<ConnectionDevice>> {
    let Some(env) = a.devices.get(device) else {
        return Ok(None);
    };
    let cat: CatalogedDevice = env.unverified_object("catalog entry")?;
    Ok(Some(ConnectionDevice::verify(
        &cat.connection_device,
        profile,
    )?))
}

/// A device's certificate, verified: issued by the account's CA, for its key.
fn device_cert(
    a: &AccountState,
    profile: &ProfileAccount,
    device: &str,
    key: &KeyData,
) -> Result<Option<(Certificate, u64)>> {
    let Some(entry) = app::<SshCertEntry>(a, &cert_uid(device))? else {
        return Ok(None);
    };
    let c = Certificate::from_openssh(&entry.certificate)
        .map_err(|e| AccountError::Untrusted(format!("certificate of {device}: {e}")))?;
    let ca = ca_key(profile)
        .ok_or_else(|| AccountError::Untrusted("no SSH CA in the profile".into()))?;
    let fp = ca.fingerprint(HashAlg::Sha256);
    // Signature and CA checked at issue time (valid_after); expiry is sshd's business.
    c.validate_at(c.valid_after(), [&fp])
        .map_err(|e| AccountError::Untrusted(format!("certificate of {device}: {e}")))?;
    if c.public_key() != key {
        return Err(AccountError::Untrusted(format!(
            "certificate of {device} is for another key"
        )));
    }
    Ok(Some((c, entry.serial)))
}

/// Administrators: issue or renew the certificate of every active device
/// with the ssh role (missing, principals changed, or past two thirds of
/// its validity). Returns how many were issued.
pub fn maintain(store: &mut Store) -> Result<usize> {
    account::admin_write(store, |a, admin| {
        let profile = a.profile()?;
        let pol = policy(a)?;
        let Some(list) = a.access_list()? else {
            return Ok((Vec::new(), 0));
        };
        let t = now();
        let mut envelopes = Vec::new();
        for d in list
            .devices
            .iter()
            .filter(|d| d.state == DeviceState::Active && d.roles.contains(&Role::Ssh))
        {
            let Some(conn) = connection_of(a, &profile, &d.device_udf)? else {
                continue;
            };
            let Some(key) = ssh_key_of(&conn.ssh) else {
                continue;
            };
            let current = device_cert(a, &profile, &d.device_udf, &key).ok().flatten();
            let fresh = current.as_ref().is_some_and(|(c, _)| {
                let life = c.valid_before().saturating_sub(c.valid_after());
                c.valid_principals() == pol.principals.as_slice() && c.valid_before() > t + life / 3
            });
            if fresh {
                continue;
            }
            let mut serial = [0u8; 8];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
            let serial = u64::from_be_bytes(serial) >> 1;
            let c = cert::issue(
                &admin.ssh_ca,
                &CertRequest {
                    key,
                    serial,
                    key_id: format!("{}@{}", d.name, a.address),
                    principals: pol.principals.clone(),
                    // Five minutes of slack for clocks that disagree.
                    valid_after: t.saturating_sub(300),
                    valid_before: t + pol.validity,
                },
            )
            .map_err(|e| AccountError::Usage(e.to_string()))?;
            let entry = SshCertEntry {
                device_udf: d.device_udf.clone(),
                certificate: c
                    .to_openssh()
                    .map_err(|e| AccountError::Usage(e.to_string()))?,
                serial,
            };
            let data = CatalogedApplication {
                uid: cert_uid(&d.device_udf),
                data: serde_json::to_value(&entry).unwrap_or_default(),
            };
            envelopes.push(Signed::sign_object(
                oct::CATALOGED_APPLICATION,
                &data,
                &admin.admin_sign,
            ));
        }
        Ok(account::application_update(a, envelopes))
    })
}

/// Administrators: set the principals (and re-issue every certificate).
pub fn set_principals(
    store: &mut Store,
    principals: &[String],
    validity: Option<u64>,
) -> Result<SshPolicy> {
    if principals.is_empty()
        || principals
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace) || p.contains(','))
    {
        return Err(AccountError::Usage(
            "principals are login names without spaces or commas".into(),
        ));
    }
    let pol = account::admin_write(store, |a, admin| {
        let old = policy(a)?;
        let pol = SshPolicy {
            principals: principals.to_vec(),
            validity: validity.unwrap_or(old.validity),
        };
        Ok((
            vec![a.append(
                st::APPLICATION,
                vec![account::app_envelope(APP_SSH.into(), &pol, admin)],
            )],
            pol,
        ))
    })?;
    maintain(store)?;
    Ok(pol)
}

/// The identities the agent serves for this device: its SSH key and
/// certificate, when the device is an active member with the ssh role.
pub fn identities(store: &Store) -> Result<Vec<MeshIdentity>> {
    let a = account::account(store)?;
    if a.membership != account::Membership::Member || !a.roles.contains(&Role::Ssh) {
        return Ok(Vec::new());
    }
    let keys = account::device_keys(store)?;
    let key = Arc::new(keys.ssh);
    let me = account::device_udf(store)?;
    let profile = a.profile()?;
    let cert = device_cert(&a, &profile, &me, &mesh_public(&key))?.map(|(c, _)| c);
    let name = crate::device::name(store);
    Ok(vec![MeshIdentity {
        key,
        cert,
        comment: format!("{name}@{} (mesh)", a.address),
    }])
}

/// This device's public key line.
pub fn public_key_line(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    let conn = account::connection(&a)?.ok_or(AccountError::NoAccount)?;
    let key = ssh_key_of(&conn.ssh).ok_or(AccountError::NoAccount)?;
    let name = crate::device::name(store);
    Ok(cert::key_line(&key, &format!("{name}@{}", a.address)))
}

/// This device's certificate line.
pub fn cert_line(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    let profile = a.profile()?;
    let conn = account::connection(&a)?.ok_or(AccountError::NoAccount)?;
    let key = ssh_key_of(&conn.ssh).ok_or(AccountError::NoAccount)?;
    let me = account::device_udf(store)?;
    let (c, _) = device_cert(&a, &profile, &me, &key)?.ok_or_else(|| {
        AccountError::NotFound("no certificate yet: an administrator's sync issues it".into())
    })?;
    c.to_openssh()
        .map_err(|e| AccountError::Usage(e.to_string()))
}

/// The CA line for `TrustedUserCAKeys`.
pub fn ca_line(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    let profile = a.profile()?;
    let ca = ca_key(&profile)
        .ok_or_else(|| AccountError::Untrusted("no SSH CA in the profile".into()))?;
    Ok(cert::ca_line(&ca, &format!("mesh-ca:{}", a.address)))
}

/// A KRL of every revoked device's key and certificate.
pub fn krl(store: &Store) -> Result<Vec<u8>> {
    let a = account::account(store)?;
    let profile = a.profile()?;
    let ca = ca_key(&profile)
        .ok_or_else(|| AccountError::Untrusted("no SSH CA in the profile".into()))?;
    let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
    let mut keys = Vec::new();
    let mut serials = Vec::new();
    // Keys replaced by rotation are revoked too.
    keys.extend(a.superseded_ssh.iter().filter_map(ssh_key_of));
    for d in list
        .devices
        .iter()
        .filter(|d| d.state == DeviceState::Revoked)
    {
        let Some(conn) = connection_of(&a, &profile, &d.device_udf)? else {
            continue;
        };
        let Some(key) = ssh_key_of(&conn.ssh) else {
            continue;
        };
        if let Ok(Some((_, serial))) = device_cert(&a, &profile, &d.device_udf, &key) {
            serials.push(serial);
        }
        keys.push(key);
    }
    Ok(cert::krl(
        &ca,
        &serials,
        &keys,
        list.serial,
        now(),
        &format!("mesh: {}", a.address),
    ))
}

/// The verified public state of an account, as servers fetch it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PublicAnswer {
    fetched: u64,
    profile: Signed,
    access: Signed,
    devices: Vec<Signed>,
}

fn fetch_public(portal: &str, profile_udf: &str) -> std::result::Result<PublicAnswer, ClientError> {
    let client = Client::new(portal)?;
    let mut access = None;
    let mut devices = Vec::new();
    let mut profile = None;
    for store_name in [st::ACCESS, st::DEVICE] {
        let mut index = 0;
        loop {
            let r: p::DownloadResponse = client.post(
                "Public",
                &p::PublicRequest {
                    account_address: None,
                    profile_udf: Some(profile_udf.to_string()),
                    select: vec![StoreIndex {
                        store: store_name.into(),
                        index,
                    }],
                },
            )?;
            profile = Some(r.profile);
            let Some(u) = r.updates.into_iter().next() else {
                break;
            };
            for e in &u.entries {
                index = e.index;
                let env: Signed = serde_json::from_value(e.envelope.clone())
                    .map_err(|x| ClientError::BadAnswer(x.to_string()))?;
                if store_name == st::ACCESS {
                    access = Some(env);
                } else {
                    devices.push(env);
                }
            }
            if !u.partial {
                break;
            }
        }
    }
    Ok(PublicAnswer {
        fetched: now(),
        profile: profile.ok_or_else(|| ClientError::BadAnswer("no profile".into()))?,
        access: access.ok_or_else(|| ClientError::BadAnswer("no access list".into()))?,
        devices,
    })
}

/// Verify a public answer up to the pinned profile UDF; return the
/// authorized_keys lines of the active ssh devices.
fn verified_lines(ans: &PublicAnswer, pinned: &str) -> Result<Vec<String>> {
    let profile = ProfileAccount::verify(&ans.profile, pinned)
        .map_err(|e| AccountError::Untrusted(format!("profile: {e}")))?;
    let list = AccessList::verify(&ans.access, &profile)
        .map_err(|e| AccountError::Untrusted(format!("access list: {e}")))?;
    let admin = [profile.administrator_signature.key];
    let mut latest: std::collections::BTreeMap<String, ConnectionDevice> = Default::default();
    for (i, env) in ans.devices.iter().enumerate() {
        let cat: CatalogedDevice = env
            .verify_object("catalog entry", oct::CATALOGED_DEVICE, &admin)
            .map_err(|e| AccountError::Untrusted(format!("Device entry {}: {e}", i + 1)))?;
        let conn = ConnectionDevice::verify(&cat.connection_device, &profile)
            .map_err(|e| AccountError::Untrusted(format!("Device entry {}: {e}", i + 1)))?;
        latest.insert(cat.device_udf, conn);
    }
    let mut lines = Vec::new();
    for d in list
        .devices
        .iter()
        .filter(|d| d.state == DeviceState::Active && d.roles.contains(&Role::Ssh))
    {
        let Some(conn) = latest.get(&d.device_udf) else {
            continue;
        };
        if !udf::udf_eq(&conn.device_udf, &d.device_udf) || !conn.has(Role::Ssh) {
            continue;
        }
        if let Some(k) = ssh_key_of(&conn.ssh) {
            lines.push(cert::key_line(
                &k,
                &format!("mesh:{}@{}", d.name, profile.account_address),
            ));
        }
    }
    Ok(lines)
}

/// `mesh ssh authorized-keys`: lines for every active device of the
/// account, verified up to the pinned profile UDF. When the portal cannot
/// be reached, the last verified answer in `cache` is used while it is
/// younger than `max_stale` seconds; then it fails closed.
pub fn authorized_keys(
    profile_udf: &str,
    portal: &str,
    cache: Option<&Path>,
    max_stale: u64,
) -> Result<Vec<String>> {
    let cache_file = cache.map(|d| d.join(format!("{}.json", profile_udf.replace('-', ""))));
    match fetch_public(portal, profile_udf) {
        Ok(ans) => {
            let lines = verified_lines(&ans, profile_udf)?;
            if let Some(f) = &cache_file {
                if let Some(dir) = f.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                crate::store::write_atomic(f, &serde_json::to_vec(&ans).unwrap_or_default())?;
            }
            Ok(lines)
        }
        Err(e @ ClientError::Unreachable { .. }) => {
            let Some(f) = cache_file else {
                return Err(e.into());
            };
            let Ok(raw) = std::fs::read(&f) else {
                return Err(e.into());
            };
            let ans: PublicAnswer = serde_json::from_slice(&raw)
                .map_err(|x| AccountError::Untrusted(format!("{}: {x}", f.display())))?;
            let age = now().saturating_sub(ans.fetched);
            if age > max_stale {
                return Err(AccountError::Usage(format!(
                    "the portal is unreachable and the cached answer is {age} s old (more than --max-stale {max_stale} s): refusing"
                )));
            }
            // The cache is re-verified: a file is no more trusted than the portal.
            verified_lines(&ans, profile_udf)
        }
        Err(e) => Err(e.into()),
    }
}
