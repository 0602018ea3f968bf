//! The SSH channel's entries: the role, the Application entries it owns
//! (policy, certificates, KRL) and reading them from a verified view.
//! Apart from the `Plugin` impl (`channel.rs`), so that what servers use
//! (`sshd.rs`) and the channel both read them without a cycle.

use mesh_core::objects::{ConnectionDevice, ProfileAccount, Role, Slot, SlotKind};
use mesh_plugins::{AccountView, Claims, PluginError};
use serde::{Deserialize, Serialize};
use ssh_key::public::KeyData;
use ssh_key::{Certificate, HashAlg};

use crate::forward::ForwardPolicy;

type Result<T> = std::result::Result<T, PluginError>;

/// The role this channel serves: a device with it holds an SSH key and certificate.
pub const ROLE: Role = Role::named("ssh");

/// The device key slot this channel owns: each device's SSH key,
/// co-generated (its base contribution in the device profile, the
/// combined key in its connection). The name is the wire field and the
/// derivation's: changing it changes every device's key.
pub const SLOT: Slot = Slot {
    name: "Ssh",
    kind: SlotKind::Combined,
};
/// The SSH user CA's key name under each administrator epoch's online
/// seed ([`mesh_core::objects::AccountKeys::online_ed25519`]): the name core
/// used before the channel owned it, so existing accounts keep their CA.
pub const CA_KEY: &str = "SshCa";

/// The claim that names an epoch's CA public key in the account profile
/// and in each administrator epoch's record (PROTOCOL.md §8.1, §10.5).
pub const CA_CLAIM: &str = "SshCertificationAuthority";

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
    /// Every use of a device's Mesh key asks its user first (as `ssh-add
    /// -c` does for added keys), through `SSH_ASKPASS`.
    #[serde(rename = "Confirm", default)]
    pub confirm: bool,
    /// What agents do with requests over forwarded hops (older clients
    /// ignore it; a missing one is the default).
    #[serde(rename = "Forwarding", default)]
    pub forwarding: ForwardPolicy,
    /// Short-lived certificates: each device's certificates are issued
    /// for consecutive windows of this many seconds, the coming ones held
    /// at the portal until their window (PROTOCOL.md §17). Older clients
    /// ignore it and keep `Validity`.
    #[serde(
        rename = "CertLifetime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cert_lifetime: Option<u64>,
    /// How far ahead of now those windows are issued, in seconds.
    #[serde(rename = "CertAhead", default, skip_serializing_if = "Option::is_none")]
    pub cert_ahead: Option<u64>,
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

pub(crate) fn cert_uid(device: &str) -> String {
    format!("ssh-cert:{device}")
}

pub(crate) fn internal(e: impl std::fmt::Display) -> PluginError {
    PluginError::Internal(e.to_string())
}

/// The SSH policy in force.
pub fn policy(view: &AccountView) -> Result<SshPolicy> {
    Ok(view.app(APP_SSH)?.unwrap_or_else(|| SshPolicy {
        principals: vec![view.address.split('@').next().unwrap_or("user").to_string()],
        validity: DEFAULT_VALIDITY,
        confirm: false,
        forwarding: ForwardPolicy::default(),
        cert_lifetime: None,
        cert_ahead: None,
    }))
}

/// An SSH public key from a Mesh key (Ed25519 only).
pub fn ssh_key_of(k: &mesh_core::keys::KeyData) -> Option<KeyData> {
    match k.key {
        mesh_core::keys::PublicKey::Ed25519(v) => Some(KeyData::Ed25519(
            ssh_key::public::Ed25519PublicKey(v.to_bytes()),
        )),
        mesh_core::keys::PublicKey::X25519(_) => None,
    }
}

/// A device's SSH key: its connection's slot; `None` when the connection
/// has none (issued by a host without this channel) or an unusable one.
pub fn device_key(c: &ConnectionDevice) -> Option<KeyData> {
    c.slots
        .key(SLOT.name)
        .ok()
        .flatten()
        .and_then(|k| ssh_key_of(&k))
}

/// The SSH CA among `claims` (a profile's, an epoch's): `None` when they
/// name none, or not one SSH can use.
pub fn ca_of(claims: &Claims) -> Result<Option<KeyData>> {
    let k = claims
        .key(CA_CLAIM)
        .map_err(|e| PluginError::Untrusted(format!("the account's SSH CA: {e}")))?;
    Ok(k.as_ref().and_then(ssh_key_of))
}

/// The account's current SSH CA, from its verified profile.
pub fn ca_key(profile: &ProfileAccount) -> Result<KeyData> {
    ca_of(&profile.claims)?.ok_or_else(|| PluginError::Untrusted("no SSH CA in the profile".into()))
}

/// A device's certificate, verified: issued by the account's CA, for its key.
pub(crate) fn device_cert(
    view: &AccountView,
    device: &str,
    key: &KeyData,
) -> Result<Option<(Certificate, u64)>> {
    let Some(entry) = view.app::<SshCertEntry>(&cert_uid(device))? else {
        return Ok(None);
    };
    let bad = |e: String| PluginError::Untrusted(format!("certificate of {device}: {e}"));
    let c = Certificate::from_openssh(&entry.certificate).map_err(|e| bad(e.to_string()))?;
    let fp = ca_key(&view.profile)?.fingerprint(HashAlg::Sha256);
    // Signature and CA checked at issue time (valid_after); expiry is sshd's business.
    c.validate_at(c.valid_after(), [&fp])
        .map_err(|e| bad(e.to_string()))?;
    if c.public_key() != key {
        return Err(bad("it is for another key".into()));
    }
    Ok(Some((c, entry.serial)))
}

/// Application entry (Published store) with the account's signed KRL.
pub const APP_KRL: &str = "ssh-krl";

/// The published KRL: what servers fetch (`mesh ssh krl --account`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SshKrlEntry {
    /// The KRL's version: the access list serial it reflects.
    #[serde(rename = "Version")]
    pub version: u64,
    /// What it revokes (sorted key fingerprints and serials), to publish
    /// only when that changes.
    #[serde(rename = "Content")]
    pub content: String,
    /// The KRL (OpenSSH format), base64.
    #[serde(rename = "Krl")]
    pub krl: String,
}
