//! The template for a channel: a minimal, complete one, tested with
//! [`crate::testing`]. Copy it to start a new channel crate; the real
//! channels (`mesh-ssh`, `mesh-pgp`, `mesh-smime`, `mesh-files`) are the
//! same shape with more to do.
//!
//! The "notes" channel gives every device with its role two things:
//!
//! - a per-device **public** entry (`notes-device:<device UDF>`, in the
//!   Published store that servers read): the device's signature key, the
//!   way the SSH channel publishes certificates;
//! - a **shared secret** (`notes-key:<epoch>`), wrapped to every device
//!   with the role, the administrators and escrow by the epoch policy of
//!   [`crate::shared`]: a joined or rotated device gets the same secret, a
//!   revoked one starts a new epoch and keeps only the old ones.
//!
//! What a channel must get right, each shown below:
//!
//! 1. [`Plugin::entries`] is pure: computed from the view and the
//!    administrator's keys, no I/O. It returns **nothing** when everything
//!    is current (an administrator's sync with no change publishes
//!    nothing), so every entry is compared with what is published first.
//! 2. The view already includes the event's life-cycle entries (the new
//!    access list, the new catalog entry): derive from the *state*, and use
//!    the [`Event`] only for reports ([`Plugin::describe`]).
//! 3. Secrets in entries are envelopes ([`mesh_core::envelope::Encrypted`]);
//!    plain secrets only in `Zeroizing` buffers, never in errors or logs.
//! 4. [`Plugin::apply`] and [`Plugin::wipe`] touch only the device (its
//!    home, its local record); they report what they did in a sentence.
//! 5. The role is data the channel owns: a `const ROLE` named once here.

use mesh_core::envelope::Encrypted;
use mesh_core::objects::{AccountKeys, Role};
use mesh_core::portal::DeviceState;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::shared::{self, Holders, Plan, Targets};
use crate::{AccountView, Actions, AppEntry, DeviceHost, Event, Plugin, PluginError};

type Result<T> = std::result::Result<T, PluginError>;

/// The role this channel defines (an administrator grants it).
pub const ROLE: Role = Role::named("notes");
/// Uid prefix of the per-device public entries.
pub const APP_DEVICE: &str = "notes-device:";
/// Uid prefix of the shared secret's epochs.
pub const APP_KEY: &str = "notes-key:";
/// Content type of the wrapped secret (names what an envelope holds).
const CT_NOTES_KEY: &str = "MeshNotesKey";

/// A device's public entry (`notes-device:<device UDF>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotesDevice {
    /// The device's name in the account.
    #[serde(rename = "Name")]
    pub name: String,
    /// The UDF of its signature key (a new one at each key epoch).
    #[serde(rename = "SignatureKey")]
    pub signature_key: String,
    /// Revoked: servers refuse it. Kept, not deleted, so that they learn it.
    #[serde(rename = "Revoked", default)]
    pub revoked: bool,
}

/// The shared secret at one epoch (`notes-key:<epoch>`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NotesKey {
    /// A new one whenever a holder must lose the secret.
    #[serde(rename = "Epoch")]
    pub epoch: u32,
    /// The 32-byte secret, encrypted to its holders.
    #[serde(rename = "EnvelopedKey")]
    pub key: Encrypted,
    /// Who holds it under which key ([`shared::holders_of`] reads it).
    #[serde(rename = "Holders", default)]
    pub holders: Holders,
}

/// The channel. Stateless: everything it knows is in the view.
#[derive(Debug, Default)]
pub struct NotesPlugin;

impl Plugin for NotesPlugin {
    fn name(&self) -> &'static str {
        "notes"
    }

    fn role(&self) -> Option<Role> {
        Some(ROLE)
    }

    fn entries(&self, _: &Event, view: &AccountView, admin: &AccountKeys) -> Result<Vec<AppEntry>> {
        let mut out = device_entries(view)?;
        out.extend(key_entries(view, admin)?);
        Ok(out)
    }

    /// Beyond the administrator's signature (the view checked it): each
    /// public entry must name the key the catalog holds for its device.
    fn verify(&self, view: &AccountView) -> Result<()> {
        for (uid, e) in view.apps::<NotesDevice>(APP_DEVICE)? {
            let udf = &uid[APP_DEVICE.len()..];
            let d = view.devices.get(udf).ok_or_else(|| {
                PluginError::Untrusted(format!("{uid} names a device the catalog lacks"))
            })?;
            if e.signature_key != d.connection.signature.udf() && !e.revoked {
                return Err(PluginError::Untrusted(format!(
                    "{uid} names another key than the device's"
                )));
            }
        }
        Ok(())
    }

    /// Open the current epoch with this device's key and remember which
    /// epoch it holds (never the secret itself) in the local record.
    fn apply(&self, device: &dyn DeviceHost, view: &AccountView) -> Result<Actions> {
        let Some(last) = epochs(view)?.pop() else {
            return Ok(Vec::new());
        };
        let keys = device.keys()?;
        if last.key.decrypt(CT_NOTES_KEY, &keys.encrypt).is_err() {
            return Ok(Vec::new()); // not a holder: no role, or revoked
        }
        let seen = device
            .local(self.name())
            .and_then(|v| v.get("Epoch")?.as_u64());
        if seen == Some(u64::from(last.epoch)) {
            return Ok(Vec::new());
        }
        let record = serde_json::json!({ "Epoch": last.epoch });
        device.set_local(self.name(), Some(&record))?;
        Ok(vec![format!("notes key epoch {}", last.epoch)])
    }

    /// Forget everything this channel put on the device.
    fn wipe(&self, device: &dyn DeviceHost) -> Result<Actions> {
        if device.local(self.name()).is_none() {
            return Ok(Vec::new());
        }
        device.set_local(self.name(), None)?;
        Ok(vec!["notes key record removed".into()])
    }
}

/// Every device that has (or had) the role gets a public entry; one is
/// published only when it differs from what is there.
fn device_entries(view: &AccountView) -> Result<Vec<AppEntry>> {
    let mut out = Vec::new();
    for e in view.entries().iter().filter(|e| e.roles.contains(&ROLE)) {
        let Some(d) = view.devices.get(&e.device_udf) else {
            continue;
        };
        let uid = format!("{APP_DEVICE}{}", e.device_udf);
        let published: Option<NotesDevice> = view.app(&uid)?;
        let wanted = NotesDevice {
            name: e.name.clone(),
            signature_key: d.connection.signature.udf(),
            revoked: e.state == DeviceState::Revoked,
        };
        // A device revoked before it ever had an entry needs none.
        if published.as_ref() == Some(&wanted) || (published.is_none() && wanted.revoked) {
            continue;
        }
        out.push(AppEntry::public(uid, &wanted));
    }
    Ok(out)
}

/// Every epoch of the shared secret, oldest first.
pub fn epochs(view: &AccountView) -> Result<Vec<NotesKey>> {
    let mut v: Vec<NotesKey> = view.apps(APP_KEY)?.into_iter().map(|(_, e)| e).collect();
    v.sort_by_key(|e: &NotesKey| e.epoch);
    Ok(v)
}

/// The shared secret by the epoch policy: older epochs re-wrapped to
/// holders whose keys changed, the current one kept, re-wrapped or
/// rotated ([`shared::plan_current`]).
fn key_entries(view: &AccountView, admin: &AccountKeys) -> Result<Vec<AppEntry>> {
    let targets = shared::targets(view, admin, &ROLE);
    let all = epochs(view)?;
    let Some((last, older)) = all.split_last() else {
        return Ok(vec![new_epoch(0, &targets)?]);
    };
    let mut out = Vec::new();
    for e in older {
        let held = shared::holders_of(&e.holders, &e.key, &targets);
        if let Plan::Rewrap(to) = shared::plan_old(&held, &targets) {
            out.push(rewrap(e, admin, &to)?);
        }
    }
    let held = shared::holders_of(&last.holders, &last.key, &targets);
    match shared::plan_current(&held, &targets) {
        Plan::Keep => {}
        Plan::Rewrap(to) => out.push(rewrap(last, admin, &to)?),
        Plan::Rotate(to) => {
            // Those who stay keep the old epoch under their current keys.
            if let Plan::Rewrap(old) = shared::plan_old(&held, &targets) {
                out.push(rewrap(last, admin, &old)?);
            }
            out.push(new_epoch(last.epoch + 1, &to)?);
        }
    }
    Ok(out)
}

fn entry(k: &NotesKey) -> AppEntry {
    AppEntry::new(format!("{APP_KEY}{}", k.epoch), k)
}

/// The same secret for other holders: the administrators open it (any
/// administrator epoch's key does) and wrap it again.
fn rewrap(k: &NotesKey, admin: &AccountKeys, to: &Targets) -> Result<AppEntry> {
    let secret = admin.open(&k.key, CT_NOTES_KEY)?;
    let (key, holders) = shared::wrap(CT_NOTES_KEY, &secret, to)?;
    Ok(entry(&NotesKey {
        key,
        holders,
        ..k.clone()
    }))
}

fn new_epoch(epoch: u32, to: &Targets) -> Result<AppEntry> {
    let mut secret = Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret[..]);
    let (key, holders) = shared::wrap(CT_NOTES_KEY, &secret[..], to)?;
    Ok(entry(&NotesKey {
        epoch,
        key,
        holders,
    }))
}

#[cfg(test)]
#[path = "example_tests.rs"]
mod tests;
