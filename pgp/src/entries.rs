//! The OpenPGP channel's entries: its role, the Application entries it
//! owns (the certificate, wrapped subkey secrets) and reading them from a
//! verified view, with the certificate check devices make. Apart from the
//! `Plugin` impl (`channel.rs`), so that GnuPG provisioning (`gnupg.rs`)
//! and the export (`export.rs`) read them without a cycle.

use std::collections::BTreeMap;

use mesh_core::envelope::Encrypted;
use mesh_core::objects::Role;
use mesh_plugins::shared::Holders;
use mesh_plugins::{AccountView, PluginError};
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, PluginError>;

/// The role this channel serves: a device with it holds an OpenPGP signing subkey and the shared decryption subkey.
pub const ROLE: Role = Role::named("pgp");

/// The claim naming the account's OpenPGP primary key's fingerprint (hex)
/// in the profile and in each administrator epoch's record: what devices
/// check the certificate against.
pub const FINGERPRINT_CLAIM: &str = "OpenpgpFingerprint";

/// The primary key's fingerprint the verified profile names (as of the
/// latest epoch that named one).
pub fn primary_fingerprint(view: &AccountView) -> Option<&str> {
    view.profile.claims.text(FINGERPRINT_CLAIM)
}

pub(crate) const CT_PGP_KEY: &str = "OpenpgpSubkey";

/// The published certificate (`pgp`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PgpCert {
    /// ASCII-armored certificate.
    #[serde(rename = "Certificate")]
    pub certificate: String,
    /// Digest of what the certificate says (user ID, subkeys, their
    /// creation and revocation times). Sequoia salts every signature, so
    /// the bytes differ on each build: this, not the bytes, decides whether
    /// to republish.
    #[serde(rename = "Content", default)]
    pub content: String,
    /// When each revoked device's subkey was revoked (kept, so that the
    /// content does not move with later access lists).
    #[serde(rename = "Revoked", default)]
    pub revoked: BTreeMap<String, u64>,
    /// The certificates of earlier administrator epochs, each with its
    /// revocation (ASCII-armored): devices import them, so that keyrings
    /// holding an old certificate learn that it is compromised.
    #[serde(rename = "Retired", default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    /// How the certificate is built ([`CERT_FORMAT`]); 0 when written by a
    /// version before algorithm preferences. Not part of `Content`, so that
    /// older administrators do not republish a current certificate.
    #[serde(rename = "Format", default)]
    pub format: u32,
}

/// The certificate format this version builds: 1, with algorithm
/// preferences on every self-signature (issue 22.2). A certificate of an
/// older format is rebuilt at the next administrator sync, its content
/// unchanged.
pub const CERT_FORMAT: u32 = 1;

/// A wrapped subkey secret (`pgp-key:<device UDF>` or `pgp-enc:<epoch>`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PgpSubkey {
    /// Creation time of the subkey (seconds since the epoch).
    #[serde(rename = "Created")]
    pub created: u64,
    /// Encryption epoch (encryption subkeys).
    #[serde(rename = "Epoch", default)]
    pub epoch: u32,
    /// The 32-byte secret, encrypted.
    #[serde(rename = "EnvelopedKey")]
    pub key: Encrypted,
    /// Who holds it under which key.
    #[serde(rename = "Holders", default)]
    pub holders: Holders,
    /// The administrator epoch whose certificate binds it: a new epoch
    /// brings a new primary key and new signing subkeys.
    #[serde(rename = "AdminEpoch", default)]
    pub admin_epoch: u32,
}

pub(crate) fn pgp_err(e: impl std::fmt::Display) -> PluginError {
    PluginError::Internal(e.to_string())
}

pub(crate) fn encryption_subkeys(view: &AccountView) -> Result<Vec<PgpSubkey>> {
    let mut encs: Vec<PgpSubkey> = view
        .apps::<PgpSubkey>("pgp-enc:")?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    encs.sort_by_key(|e| e.epoch);
    Ok(encs)
}

/// `mesh pgp cert`: the account's certificate, armored.
pub fn cert(view: &AccountView) -> Result<String> {
    view.app::<PgpCert>("pgp")?
        .map(|c| c.certificate)
        .ok_or_else(|| {
            PluginError::NotFound(
                "no OpenPGP certificate yet: an administrator's sync publishes it".into(),
            )
        })
}

/// `mesh pgp cert`: binary, or armored.
pub fn cert_bytes(view: &AccountView, armored: bool) -> Result<Vec<u8>> {
    use sequoia_openpgp::serialize::SerializeInto;
    let text = cert(view)?;
    if armored {
        return Ok(text.into_bytes());
    }
    check_cert(view, text.as_bytes())?.to_vec().map_err(pgp_err)
}

/// The certificate's content digest as published (what GnuPG homes are
/// kept at), with its format when not 0: a home that holds the same
/// content in an older format is re-imported.
pub(crate) fn published_content(view: &AccountView) -> Result<Option<String>> {
    Ok(view.app::<PgpCert>("pgp")?.map(|c| match c {
        c if c.content.is_empty() => c.certificate,
        c if c.format == 0 => c.content,
        c => format!("{}/format-{}", c.content, c.format),
    }))
}

/// Parse and check a certificate: it must be the account's (the primary
/// key the signed profile names), every signature must hold under
/// Sequoia's standard policy, and it must carry the account's address.
pub fn check_cert(view: &AccountView, data: &[u8]) -> Result<sequoia_openpgp::Cert> {
    use sequoia_openpgp::parse::Parse;
    let want = primary_fingerprint(view)
        .map(str::to_string)
        .ok_or_else(|| {
            PluginError::NotFound("this account's profile names no OpenPGP key".into())
        })?;
    let c = sequoia_openpgp::Cert::from_bytes(data)
        .map_err(|e| PluginError::Untrusted(format!("OpenPGP certificate: {e}")))?;
    if c.fingerprint().to_hex() != want {
        return Err(PluginError::Untrusted(format!(
            "OpenPGP certificate {} is not this account's ({want})",
            c.fingerprint().to_hex()
        )));
    }
    let policy = sequoia_openpgp::policy::StandardPolicy::new();
    let vc = c
        .with_policy(&policy, None)
        .map_err(|e| PluginError::Untrusted(format!("OpenPGP certificate {want}: {e}")))?;
    if !vc
        .userids()
        .any(|u| String::from_utf8_lossy(u.userid().value()).contains(&view.address))
    {
        return Err(PluginError::Untrusted(format!(
            "OpenPGP certificate {want} lacks {}",
            view.address
        )));
    }
    Ok(c)
}
