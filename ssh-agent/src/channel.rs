//! The SSH channel of a Mesh account: certificates for every active `ssh`
//! device (administrator side), the device's key and certificate for the
//! agent, and what servers use (authorized_keys lines verified up to the
//! pinned profile, the CA line, KRLs). PROTOCOL.md §11 describes the
//! Application entries.

use std::sync::Arc;

use mesh_core::keys::KeyData as MeshKey;
use mesh_core::objects::{AccountKeys, Role, Slot};
use mesh_core::portal::DeviceState;
use mesh_plugins::{
    now, AccountView, AppEntry, Claims, DeviceHost, Event, HeldBatch, Plugin, PluginError,
};
use ssh_key::public::KeyData;

use crate::agent::{mesh_public, MeshIdentity};
use crate::cert::{self, CertRequest};
pub use crate::entries::{
    ca_key, ca_of, device_key, policy, ssh_key_of, SshCertEntry, SshKrlEntry, SshPolicy, APP_KRL,
    APP_SSH, CA_CLAIM, CA_KEY, DEFAULT_VALIDITY, ROLE, SLOT,
};
use crate::entries::{cert_uid, device_cert, internal};
use crate::forward::ForwardPolicy;
use crate::sshd::SshdAnswer;
use crate::windows;

type Result<T> = std::result::Result<T, PluginError>;

fn random_serial() -> u64 {
    let mut serial = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
    u64::from_be_bytes(serial) >> 1
}

/// The ssh channel.
#[derive(Debug, Default)]
pub struct SshPlugin;

impl Plugin for SshPlugin {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn role(&self) -> Option<Role> {
        Some(ROLE)
    }

    fn slots(&self) -> &'static [Slot] {
        &[SLOT]
    }

    /// The login names, validity and confirmation the user set.
    fn policy_uids(&self) -> &'static [&'static str] {
        &[APP_SSH]
    }

    fn describe_policy(&self, uid: &str, data: &serde_json::Value) -> Option<String> {
        let p: SshPolicy = serde_json::from_value(data.clone())
            .ok()
            .filter(|_| uid == APP_SSH)?;
        let confirm = if p.confirm { ", confirm each use" } else { "" };
        // The forwarding policy only when it is not the default.
        let forwarding = if p.forwarding == ForwardPolicy::default() {
            String::new()
        } else {
            format!("; {}", p.forwarding.describe())
        };
        let windows = p
            .cert_lifetime
            .map(|l| format!("; certificates for windows of {l} s"))
            .unwrap_or_default();
        Some(format!(
            "ssh principals {}{confirm}{forwarding}{windows}",
            p.principals.join(",")
        ))
    }

    /// The epoch's CA public key, under [`CA_CLAIM`].
    fn claims(&self, admin: &AccountKeys, claims: &mut Claims) -> Result<()> {
        let ca = admin.online_ed25519(CA_KEY).public_key();
        claims.put(CA_CLAIM, &MeshKey::with_epoch(ca, admin.epoch()))?;
        Ok(())
    }

    /// A certificate for every active `ssh` device that has none for its
    /// current key, whose principals changed, or that is past two thirds
    /// of its validity.
    fn entries(&self, _: &Event, view: &AccountView, admin: &AccountKeys) -> Result<Vec<AppEntry>> {
        let pol = policy(view)?;
        let t = now();
        // Short-lived certificates: the current window's (windows.rs).
        let window = pol
            .cert_lifetime
            .filter(|l| *l >= windows::MIN_LIFETIME)
            .map(|l| (windows::window_of(t, l).0, l));
        let mut out = Vec::new();
        let ca = admin.online_ed25519(CA_KEY);
        for (e, d) in view.active(&ROLE) {
            let Some(key) = device_key(&d.connection) else {
                continue;
            };
            let current = device_cert(view, &e.device_udf, &key).ok().flatten();
            let fresh = current.as_ref().is_some_and(|(c, _)| {
                let life = c.valid_before().saturating_sub(c.valid_after());
                c.valid_principals() == pol.principals.as_slice()
                    && match window {
                        Some((start, l)) => c.valid_before() == start + l,
                        None => c.valid_before() > t + life / 3,
                    }
            });
            if fresh {
                continue;
            }
            let key_id = format!("{}@{}", e.name, view.address);
            let (c, serial) = match window {
                Some(w) => {
                    let c = windows::issue_window(
                        admin,
                        &e.device_udf,
                        key_id,
                        &key,
                        &pol.principals,
                        w,
                    )?;
                    let serial = c.serial();
                    (c, serial)
                }
                None => {
                    let serial = random_serial();
                    let c = cert::issue(
                        &ca,
                        &CertRequest {
                            key,
                            serial,
                            key_id,
                            principals: pol.principals.clone(),
                            // Five minutes of slack for clocks that disagree.
                            valid_after: t.saturating_sub(300),
                            valid_before: t + pol.validity,
                        },
                    )
                    .map_err(internal)?;
                    (c, serial)
                }
            };
            let entry = SshCertEntry {
                device_udf: e.device_udf.clone(),
                certificate: c.to_openssh().map_err(internal)?,
                serial,
            };
            out.push(AppEntry::new(cert_uid(&e.device_udf), &entry));
        }
        out.extend(krl_entry(view)?);
        Ok(out)
    }

    /// The certificates for coming windows of short-lived certificates,
    /// held at the portal until their window (windows.rs).
    fn held(&self, _: &Event, view: &AccountView, admin: &AccountKeys) -> Result<Vec<HeldBatch>> {
        windows::held(view, admin)
    }

    /// The next window's certificate is due from the portal.
    fn due(&self, device: &dyn DeviceHost) -> Option<u64> {
        windows::due(device)
    }

    /// Nothing to install (the agent serves the certificate from the
    /// view), but a sync says when this device's certificate changed: new
    /// login names, a new CA, a renewal; and keeps the short-lived
    /// certificates the portal released.
    fn apply(&self, device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<String>> {
        let Ok(key) = my_key(device, view) else {
            return Ok(Vec::new());
        };
        let mut out = windows::fetch(device, view, &key)?;
        let Some((cert, serial)) = device_cert(view, device.device_udf(), &key)? else {
            return Ok(out);
        };
        let mut rec = device.local("ssh").unwrap_or_else(|| serde_json::json!({}));
        if rec.get("CertificateSerial").and_then(|v| v.as_u64()) == Some(serial) {
            return Ok(out);
        }
        if let Some(o) = rec.as_object_mut() {
            o.insert("CertificateSerial".into(), serial.into());
        }
        device.set_local("ssh", Some(&rec))?;
        let left = cert.valid_before().saturating_sub(now());
        let left = if left >= 2 * 86_400 {
            format!("{} more days", left / 86_400)
        } else {
            format!("{} more minutes", left / 60)
        };
        out.push(format!(
            "new SSH certificate for {} (serial {serial}, valid {left})",
            cert.valid_principals().join(",")
        ));
        Ok(out)
    }

    fn describe(&self, event: &Event, before: &AccountView, after: &AccountView) -> Vec<String> {
        let Event::Revoked { device } = event else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(key) = after
            .devices
            .get(device)
            .and_then(|d| device_key(&d.connection))
        {
            out.push(format!(
                "key {} refused by authorized-keys and authorized-principals at the next login",
                cert::fingerprint(&key)
            ));
        }
        let version = |v: &AccountView| {
            v.app::<SshKrlEntry>(APP_KRL)
                .ok()
                .flatten()
                .map(|k| k.version)
        };
        if let Some(v) = version(after).filter(|v| Some(*v) != version(before)) {
            out.push(format!(
                "key and certificate in the published KRL, version {v}"
            ));
        }
        if after.profile.epoch() > before.profile.epoch() {
            out.push(
                "a new SSH CA (servers fetch it with `mesh ssh ca --account`); the old CA in the KRL, so sshd refuses every certificate it signs; every certificate re-issued"
                    .into(),
            );
        }
        out
    }

    /// `mesh ssh …` (ssh-agent/src/cli.rs).
    fn command(&self) -> Option<&dyn mesh_plugins::ChannelCommand> {
        Some(&crate::cli::SshCommand)
    }
}

/// What the KRL revokes: every revoked device's key and certificate
/// serial, every key replaced by rotation, and the CA of every earlier
/// administrator epoch (sshd refuses a certificate whose CA key a KRL
/// revokes: what a revoked administrator signs with the old CA).
fn revocations(view: &AccountView) -> (Vec<KeyData>, Vec<u64>) {
    let mut keys: Vec<KeyData> = view.superseded.iter().filter_map(ssh_key_of).collect();
    for s in &view.profile.superseded {
        keys.extend(ca_of(&s.claims).ok().flatten());
    }
    let mut serials = Vec::new();
    for (e, d) in view.revoked() {
        let Some(key) = device_key(&d.connection) else {
            continue;
        };
        if let Ok(Some((_, serial))) = device_cert(view, &e.device_udf, &key) {
            serials.push(serial);
        }
        keys.push(key);
    }
    (keys, serials)
}

fn krl_content(keys: &[KeyData], serials: &[u64]) -> String {
    let mut items: Vec<String> = keys.iter().map(cert::fingerprint).collect();
    items.extend(serials.iter().map(|s| format!("serial:{s}")));
    items.sort();
    items.dedup();
    items.join(",")
}

/// A new signed KRL when what it must revoke changed, or when the account
/// has none yet: an empty one from the account's creation on, so that a
/// server's `RevokedKeys` names a file from the first day (sshd refuses
/// every key when it is missing).
fn krl_entry(view: &AccountView) -> Result<Option<AppEntry>> {
    let (keys, serials) = revocations(view);
    let content = krl_content(&keys, &serials);
    let published: Option<SshKrlEntry> = view.app(APP_KRL)?;
    if published.is_some_and(|k| k.content == content) {
        return Ok(None);
    }
    let bytes = krl(view)?;
    Ok(Some(AppEntry::public(
        APP_KRL,
        &SshKrlEntry {
            version: view.serial(),
            content,
            krl: data_encoding::BASE64.encode(&bytes),
        },
    )))
}

/// The published KRL of a verified view: its version and bytes.
pub fn published_krl(view: &AccountView) -> Result<Option<(u64, Vec<u8>)>> {
    let Some(k) = view.app::<SshKrlEntry>(APP_KRL)? else {
        return Ok(None);
    };
    let bytes = data_encoding::BASE64
        .decode(k.krl.as_bytes())
        .map_err(|e| PluginError::Untrusted(format!("the published KRL: {e}")))?;
    if krl_version(&bytes) != Some(k.version) {
        return Err(PluginError::Untrusted(
            "the published KRL's version is not the one its entry names".into(),
        ));
    }
    Ok(Some((k.version, bytes)))
}

/// The version field of an OpenSSH KRL (PROTOCOL.krl: magic, format
/// version, then the KRL version), if the bytes are one.
pub fn krl_version(bytes: &[u8]) -> Option<u64> {
    const MAGIC: &[u8] = b"SSHKRL\n\0";
    if bytes.len() < 20 || !bytes.starts_with(MAGIC) {
        return None;
    }
    Some(u64::from_be_bytes(bytes[12..20].try_into().ok()?))
}

/// The policy entry that sets the principals (and the validity); the
/// plugin then re-issues every certificate in the same transaction.
pub fn principals_entry(
    view: &AccountView,
    principals: &[String],
    validity: Option<u64>,
) -> Result<Vec<AppEntry>> {
    if principals.is_empty()
        || principals
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace) || p.contains(','))
    {
        return Err(PluginError::BadInput(
            "principals are login names without spaces or commas".into(),
        ));
    }
    let old = policy(view)?;
    let pol = SshPolicy {
        principals: principals.to_vec(),
        validity: validity.unwrap_or(old.validity),
        ..old
    };
    Ok(vec![AppEntry::public(APP_SSH, &pol)])
}

/// The policy entry that makes every device's agent confirm each use of
/// its Mesh key (or stop doing so).
pub fn confirm_entry(view: &AccountView, confirm: bool) -> Result<Vec<AppEntry>> {
    let pol = SshPolicy {
        confirm,
        ..policy(view)?
    };
    Ok(vec![AppEntry::public(APP_SSH, &pol)])
}

/// The policy entry with the forwarding policy `change` makes of the current one.
pub fn forwarding_entry(
    view: &AccountView,
    change: impl FnOnce(&mut ForwardPolicy),
) -> Result<Vec<AppEntry>> {
    let mut pol = policy(view)?;
    change(&mut pol.forwarding);
    Ok(vec![AppEntry::public(APP_SSH, &pol)])
}

/// The policy entry with short-lived certificates of `lifetime` seconds
/// issued `ahead` seconds ahead (`None`: off, back to `Validity`).
pub fn cert_lifetime_entry(
    view: &AccountView,
    lifetime: Option<u64>,
    ahead: Option<u64>,
) -> Result<Vec<AppEntry>> {
    if let Some(l) = lifetime.filter(|l| *l < windows::MIN_LIFETIME) {
        return Err(PluginError::BadInput(format!(
            "a certificate lifetime of {l} s is shorter than the shortest, {} s",
            windows::MIN_LIFETIME
        )));
    }
    let pol = SshPolicy {
        cert_lifetime: lifetime,
        cert_ahead: lifetime.and(ahead),
        ..policy(view)?
    };
    Ok(vec![AppEntry::public(APP_SSH, &pol)])
}

/// The identities the agent serves for this device: its SSH key and
/// certificate, when it is an active member with the ssh role.
pub fn identities(device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<MeshIdentity>> {
    let active = view
        .entry(device.device_udf())
        .is_some_and(|e| e.state == DeviceState::Active && e.roles.contains(&ROLE));
    if !active {
        return Ok(Vec::new());
    }
    let key = Arc::new(device.keys()?.ed25519(&SLOT)?);
    // The key the account published for this device must be the one it
    // holds: a connection without the slot, or with another key, is named.
    let published = view
        .devices
        .get(device.device_udf())
        .and_then(|d| device_key(&d.connection));
    match published {
        None => {
            return Err(PluginError::NoSlotKey {
                slot: SLOT.name,
                detail: "the device's connection has no SSH key".into(),
            })
        }
        Some(k) if k != mesh_public(&key) => {
            return Err(PluginError::Untrusted(
                "the device's connection names another SSH key than the one it holds".into(),
            ))
        }
        Some(_) => {}
    }
    let public = mesh_public(&key);
    let entry = device_cert(view, device.device_udf(), &public)?.map(|(c, _)| c);
    let cert = windows::current(device, view, &public, entry)?;
    let pol = policy(view)?;
    // With short-lived certificates `ssh-add -l` shows when this one ends.
    let until = match (&cert, pol.cert_lifetime) {
        (Some(c), Some(_)) => format!(", certificate until {}", windows::utc(c.valid_before())),
        _ => String::new(),
    };
    Ok(vec![MeshIdentity {
        key,
        cert,
        comment: format!("{}@{} (mesh{until})", device.device_name(), view.address),
        confirm: pol.confirm,
    }])
}

fn my_key(device: &dyn DeviceHost, view: &AccountView) -> Result<KeyData> {
    let d = view.devices.get(device.device_udf()).ok_or_else(|| {
        PluginError::NotFound("this device is not in the account's catalog yet".into())
    })?;
    device_key(&d.connection).ok_or_else(|| PluginError::NoSlotKey {
        slot: SLOT.name,
        detail: "the device's connection has no SSH key".into(),
    })
}

/// This device's public key line.
pub fn public_key_line(device: &dyn DeviceHost, view: &AccountView) -> Result<String> {
    let key = my_key(device, view)?;
    Ok(cert::key_line(
        &key,
        &format!("{}@{}", device.device_name(), view.address),
    ))
}

/// This device's certificate line.
pub fn cert_line(device: &dyn DeviceHost, view: &AccountView) -> Result<String> {
    let key = my_key(device, view)?;
    let entry = device_cert(view, device.device_udf(), &key)?.map(|(c, _)| c);
    let c = windows::current(device, view, &key, entry)?.ok_or_else(|| {
        PluginError::NotFound("no certificate yet: an administrator's sync issues it".into())
    })?;
    c.to_openssh().map_err(internal)
}

/// The CA line for `TrustedUserCAKeys`.
pub fn ca_line(view: &AccountView) -> Result<String> {
    Ok(cert::ca_line(
        &ca_key(&view.profile)?,
        &format!("mesh-ca:{}", view.address),
    ))
}

/// A KRL of every revoked device's key and certificate, and of every key
/// replaced by rotation.
pub fn krl(view: &AccountView) -> Result<Vec<u8>> {
    let ca = ca_key(&view.profile)?;
    let (keys, serials) = revocations(view);
    Ok(cert::krl(
        &ca,
        &serials,
        &keys,
        view.serial(),
        now(),
        &format!("mesh: {}", view.address),
    ))
}

/// Whether `user` is one of the account's login names (the published policy).
pub fn allows(view: &AccountView, user: &str) -> Result<bool> {
    Ok(policy(view)?.principals.iter().any(|p| p == user))
}

/// The authorized_keys lines of the active ssh devices of a verified view
/// of the public stores: none when `user` is given and is not one of the
/// account's login names.
pub fn authorized_lines(view: &AccountView, user: Option<&str>) -> Result<Vec<String>> {
    Ok(SshdAnswer::of(view)?.authorized_lines(user))
}

/// For sshd's `AuthorizedPrincipalsCommand`: `user`, when the certificate
/// (`%k`, base64) was issued by the account's CA for the current key of an
/// active ssh device and `user` is one of the account's login names;
/// otherwise nothing. sshd still checks the certificate's own principals
/// and validity.
pub fn authorized_principals(
    view: &AccountView,
    user: &str,
    cert_b64: &str,
) -> Result<Vec<String>> {
    SshdAnswer::of(view)?.authorized_principals(user, cert_b64)
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
