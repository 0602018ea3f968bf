//! The administrator side: the account's file key, one X25519 key per
//! epoch for every active device of the account (whatever its roles), the
//! administrators and escrow. `files-key:<epoch>` holds its public key and
//! its secret wrapped to every holder when the epoch began; what happens to
//! one device after that (it joins, its keys rotate) is an entry of its own,
//! `files-wrap:<epoch>:<device>`, so that a join writes one small entry
//! instead of the epoch wrapped again to every holder (which grew as N²
//! with the account). A device that holds the current epoch and is no
//! longer active starts a new epoch; old epochs are kept so old files still
//! open.

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
/// Uid prefix of the per-device wraps (`files-wrap:<epoch>:<device UDF>`).
pub const APP_FILES_WRAP: &str = "files-wrap:";
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

/// One epoch's secret wrapped to one device (`files-wrap:<epoch>:<device>`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileKeyWrap {
    /// The epoch.
    #[serde(rename = "Epoch")]
    pub epoch: u32,
    /// The device's UDF.
    #[serde(rename = "Device")]
    pub device: String,
    /// UDF of the device key it is wrapped to.
    #[serde(rename = "KeyUdf")]
    pub key_udf: String,
    /// The 32-byte X25519 secret, encrypted to that key.
    #[serde(rename = "EnvelopedKey")]
    pub key: Encrypted,
}

/// Every per-device wrap.
pub fn wraps(view: &AccountView) -> Result<Vec<FileKeyWrap>> {
    Ok(view
        .apps::<FileKeyWrap>(APP_FILES_WRAP)?
        .into_iter()
        .map(|(_, w)| w)
        .collect())
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
        file_entries(&epochs(view)?, &wraps(view)?, &targets(view, admin), admin)
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

/// The administrators' and escrow's targets apart from the devices'.
fn split(targets: &Targets) -> (Targets, Targets) {
    targets
        .iter()
        .map(|(h, k)| (h.clone(), *k))
        .partition(|(h, _)| h == shared::ADMIN || h == shared::ESCROW)
}

/// Each device's key UDF for epoch `e`: its own wrap entry, else the
/// epoch entry's holder record (the devices the epoch was made for).
fn device_holders(e: &FileKeyEpoch, wraps: &[FileKeyWrap]) -> Holders {
    let mut h: Holders = e
        .holders
        .iter()
        .filter(|(n, _)| *n != shared::ADMIN && *n != shared::ESCROW)
        .map(|(n, k)| (n.clone(), k.clone()))
        .collect();
    for w in wraps.iter().filter(|w| w.epoch == e.epoch) {
        h.insert(w.device.clone(), w.key_udf.clone());
    }
    h
}

/// The entries that bring `epochs` and `wraps` up to `targets` (none when
/// current). A new epoch is one entry wrapped to every holder (a revoke is
/// O(devices) by nature, and one envelope is the smallest form); what
/// happens to one device after it (a join, a rotation) is one entry of its
/// own, so that nothing is wrapped to everyone again.
pub fn file_entries(
    epochs: &[FileKeyEpoch],
    wraps: &[FileKeyWrap],
    targets: &Targets,
    admin: &AccountKeys,
) -> Result<Vec<AppEntry>> {
    let (core, devices) = split(targets);
    let Some(last) = epochs.last() else {
        return Ok(vec![new_epoch(0, targets)?]);
    };
    let mut out = Vec::new();
    for e in epochs {
        let core_held: Holders = e
            .holders
            .iter()
            .filter(|(n, _)| core.contains_key(*n))
            .map(|(n, k)| (n.clone(), k.clone()))
            .collect();
        // The administrators' keys changed (a new administrator epoch):
        // the entry again, for them and the active devices it names.
        if let Plan::Rewrap(_) = shared::plan_old(&core_held, &core) {
            let to: Targets = targets
                .iter()
                .filter(|(h, _)| e.holders.contains_key(*h))
                .map(|(h, k)| (h.clone(), *k))
                .collect();
            out.push(rewrap(e, admin, &to)?);
        }
        // A rotated device: this epoch re-wrapped to its new key, alone.
        for (d, key_udf) in device_holders(e, wraps) {
            if let Some(k) = devices.get(&d).filter(|k| k.udf() != key_udf) {
                out.push(wrap_to(e, admin, &d, k)?);
            }
        }
    }
    // A holder of the current epoch that is no longer active: a new epoch.
    let current = device_holders(last, wraps);
    if current.keys().any(|d| !devices.contains_key(d)) {
        out.push(new_epoch(last.epoch + 1, targets)?);
        return Ok(out);
    }
    // A device that joined: the current epoch only, in an entry of its own.
    for (d, k) in &devices {
        if !current.contains_key(d) {
            out.push(wrap_to(last, admin, d, k)?);
        }
    }
    Ok(out)
}

fn entry(e: &FileKeyEpoch) -> AppEntry {
    AppEntry::new(format!("{APP_FILES_KEY}{}", e.epoch), e)
}

fn wrap_entry(w: &FileKeyWrap) -> AppEntry {
    AppEntry::new(format!("{APP_FILES_WRAP}{}:{}", w.epoch, w.device), w)
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

/// Epoch `e`'s secret for `device` under `key`.
fn wrap_to(
    e: &FileKeyEpoch,
    admin: &AccountKeys,
    device: &str,
    key: &PublicKey,
) -> Result<AppEntry> {
    let secret = admin.open(&e.key, CT_FILE_KEY)?;
    Ok(wrap_entry(&FileKeyWrap {
        epoch: e.epoch,
        device: device.to_owned(),
        key_udf: key.udf(),
        key: Encrypted::encrypt(CT_FILE_KEY, &secret, &[*key])?,
    }))
}

/// A new epoch, wrapped to every holder in one entry.
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
