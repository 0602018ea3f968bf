//! The administrator side: the account's file key, one X25519 key per
//! epoch (`files-key:<epoch>`), wrapped to every active device of the
//! account (whatever its roles), the administrators and escrow, by the
//! shared-key policy of `mesh_plugins::shared`: a joined or rotated device
//! gets the same key re-wrapped, a revoked one starts a new epoch, and old
//! epochs are kept (re-wrapped, never re-keyed) so old files still open.

use mesh_core::derive::KeyAlg;
use mesh_core::envelope::Encrypted;
use mesh_core::keys::{AgreementKey, PublicKey};
use mesh_core::objects::{AccountKeys, Role};
use mesh_core::portal::DeviceState;
use mesh_plugins::shared::{self, Holders, Plan, Targets};
use mesh_plugins::{AccountView, AppEntry, Event, Plugin, PluginError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

type Result<T> = std::result::Result<T, PluginError>;

/// Uid prefix of the file key's epochs.
pub const APP_FILES_KEY: &str = "files-key:";
/// Content type of an epoch's wrapped secret.
pub(crate) const CT_FILE_KEY: &str = "MeshFilesKey";

/// The account's file key at one epoch (`files-key:<epoch>`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileKeyEpoch {
    /// A new one whenever a holder must lose the key.
    #[serde(rename = "Epoch")]
    pub epoch: u32,
    /// The epoch's X25519 public key (Mesh's extended encoding, base64url):
    /// what `mesh files recipient` encodes.
    #[serde(rename = "PublicKey")]
    pub public: String,
    /// The 32-byte X25519 secret, encrypted to the holders.
    #[serde(rename = "EnvelopedKey")]
    pub key: Encrypted,
    /// Who holds it under which key.
    #[serde(rename = "Holders", default)]
    pub holders: Holders,
}

impl FileKeyEpoch {
    /// The epoch's public key.
    pub fn public_key(&self) -> Result<PublicKey> {
        let b = mesh_core::b64::decode(&self.public)?;
        Ok(PublicKey::from_bytes(KeyAlg::X25519, &b)?)
    }
}

/// Every epoch of the file key, oldest first.
pub fn epochs(view: &AccountView) -> Result<Vec<FileKeyEpoch>> {
    let mut v: Vec<FileKeyEpoch> = view
        .apps::<FileKeyEpoch>(APP_FILES_KEY)?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    v.sort_by_key(|e| e.epoch);
    Ok(v)
}

/// The files channel.
#[derive(Debug, Default)]
pub struct FilesPlugin;

impl Plugin for FilesPlugin {
    fn name(&self) -> &'static str {
        "files"
    }

    /// The file key is for every active device whatever its roles: no
    /// role is this channel's own.
    fn role(&self) -> Option<Role> {
        None
    }

    fn entries(&self, _: &Event, view: &AccountView, admin: &AccountKeys) -> Result<Vec<AppEntry>> {
        file_entries(&epochs(view)?, &targets(view, admin), admin)
    }

    fn describe(&self, event: &Event, before: &AccountView, after: &AccountView) -> Vec<String> {
        if !matches!(event, Event::Revoked { .. }) {
            return Vec::new();
        }
        let last = |v: &AccountView| epochs(v).ok().and_then(|e| e.last().map(|k| k.epoch));
        match (last(before), last(after)) {
            (Some(a), Some(b)) if b > a => vec![format!(
                "file key rotated: epoch {a} → {b} (files encrypted from now on are not for the revoked device)"
            )],
            _ => Vec::new(),
        }
    }

    fn command(&self) -> Option<&dyn mesh_plugins::ChannelCommand> {
        Some(&crate::cli::FilesCommand)
    }
}

/// Who should hold the file key now: the administrators, escrow and every
/// active device of the account (all roles).
pub fn targets(view: &AccountView, admin: &AccountKeys) -> Targets {
    let mut t = Targets::new();
    t.insert(shared::ADMIN.into(), admin.admin_encrypt.public_key());
    t.insert(shared::ESCROW.into(), view.profile.escrow_encryption.key);
    for e in view.entries() {
        if e.state != DeviceState::Active {
            continue;
        }
        if let Some(d) = view.devices.get(&e.device_udf) {
            t.insert(e.device_udf.clone(), d.connection.encryption.key);
        }
    }
    t
}

/// The entries that bring `epochs` up to `targets` (none when current).
pub fn file_entries(
    epochs: &[FileKeyEpoch],
    targets: &Targets,
    admin: &AccountKeys,
) -> Result<Vec<AppEntry>> {
    let Some((last, older)) = epochs.split_last() else {
        return Ok(vec![new_epoch(0, targets)?]);
    };
    let mut out = Vec::new();
    for e in older {
        if let Plan::Rewrap(to) =
            shared::plan_old(&shared::holders_of(&e.holders, &e.key, targets), targets)
        {
            out.push(rewrap(e, admin, &to)?);
        }
    }
    let held = shared::holders_of(&last.holders, &last.key, targets);
    match shared::plan_current(&held, targets) {
        Plan::Keep => {}
        Plan::Rewrap(to) => out.push(rewrap(last, admin, &to)?),
        Plan::Rotate(to) => {
            if let Plan::Rewrap(old) = shared::plan_old(&held, targets) {
                out.push(rewrap(last, admin, &old)?);
            }
            out.push(new_epoch(last.epoch + 1, &to)?);
        }
    }
    Ok(out)
}

fn entry(e: &FileKeyEpoch) -> AppEntry {
    AppEntry::new(format!("{APP_FILES_KEY}{}", e.epoch), e)
}

fn rewrap(e: &FileKeyEpoch, admin: &AccountKeys, to: &Targets) -> Result<AppEntry> {
    // Wrapped to the administrators of its epoch: any epoch's key opens it.
    let secret = admin.open(&e.key, CT_FILE_KEY)?;
    let (key, holders) = shared::wrap(CT_FILE_KEY, &secret, to)?;
    Ok(entry(&FileKeyEpoch {
        key,
        holders,
        ..e.clone()
    }))
}

fn new_epoch(epoch: u32, to: &Targets) -> Result<AppEntry> {
    let mut secret = Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret[..]);
    let public = AgreementKey::from_bytes(&secret).public_key();
    let (key, holders) = shared::wrap(CT_FILE_KEY, &secret[..], to)?;
    Ok(entry(&FileKeyEpoch {
        epoch,
        public: mesh_core::b64::encode(&public.to_bytes()),
        key,
        holders,
    }))
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
