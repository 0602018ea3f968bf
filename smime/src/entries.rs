//! The S/MIME channel's entries: its role, the Application entries it
//! owns (the CA, signing certificates, the shared encryption key's epochs,
//! the CRL) and reading them from a verified view. Apart from the `Plugin`
//! impl (`channel.rs`), so that the device side (`device.rs`, `nss.rs`)
//! reads them without a cycle.

use mesh_core::envelope::Encrypted;
use mesh_core::objects::{Role, Slot, SlotKind};
use mesh_plugins::shared::Holders;
use mesh_plugins::{AccountView, PluginError};
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, PluginError>;

/// The role this channel serves: a device with it holds an S/MIME signing certificate and the shared decryption key.
pub const ROLE: Role = Role::named("smime");

/// The device key slot this channel owns: each device's S/MIME signing
/// key, P-256 from the device's seed alone (its point in the device
/// profile, certified by the account's CA). The name is the wire field
/// and the derivation's: changing it changes every device's key.
pub const SLOT: Slot = Slot {
    name: "SmimeSign",
    kind: SlotKind::DeviceP256,
};
/// The S/MIME CA's key name under each administrator epoch's online seed
/// ([`mesh_core::objects::AccountKeys::online_p256`]): the name core used
/// before the channel owned it, so existing accounts keep their CA.
pub const CA_KEY: &str = "SmimeCa";

/// Application entry with the CA certificate.
pub const APP_SMIME: &str = "smime";
/// Application entry with the current CRL.
pub const APP_CRL: &str = "smime-crl";
/// Signing certificates are valid for a year.
pub const SIGNING_VALIDITY: u64 = 365 * 86400;
/// Content type of the wrapped encryption key.
pub(crate) const CT_SMIME_KEY: &str = "SmimeEncryptionKey";

/// The `smime` application entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmimeCa {
    /// The CA certificate, PEM.
    #[serde(rename = "CaCertificate")]
    pub ca_certificate: String,
    /// The administrator epoch whose seed derives it (0 in entries written
    /// before it was recorded).
    #[serde(rename = "Epoch", default)]
    pub epoch: u32,
    /// The CAs of earlier administrator epochs: mail signed under one
    /// before it was retired still verifies, and says so (issue 22.6).
    #[serde(rename = "Retired", default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredCa>,
}

/// The CA of an earlier administrator epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredCa {
    /// Its administrator epoch.
    #[serde(rename = "Epoch")]
    pub epoch: u32,
    /// The CA certificate, PEM.
    #[serde(rename = "CaCertificate")]
    pub ca_certificate: String,
    /// When a new epoch's CA replaced it (seconds since the Unix epoch);
    /// absent for CAs retired before this was recorded.
    #[serde(rename = "Retired", default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<u64>,
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
    /// The administrator epoch whose CA issued it.
    #[serde(rename = "AdminEpoch", default)]
    pub admin_epoch: u32,
}

/// The account's shared encryption key and certificate at one epoch
/// (`smime-enc:<epoch>`): the key (PKCS#8) wrapped to its holders.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SmimeEncryption {
    /// Epoch: a new one when a holder must lose the key.
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
    /// Who holds it under which key.
    #[serde(rename = "Holders", default)]
    pub holders: Holders,
}

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

pub(crate) fn internal(e: impl std::fmt::Display) -> PluginError {
    PluginError::Internal(e.to_string())
}

/// Every epoch of the shared encryption key, oldest first.
pub fn encryption_epochs(view: &AccountView) -> Result<Vec<SmimeEncryption>> {
    let mut v: Vec<SmimeEncryption> = view
        .apps::<SmimeEncryption>("smime-enc:")?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    v.sort_by_key(|e| e.epoch);
    Ok(v)
}
