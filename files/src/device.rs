//! The device side: which epochs of the file key this device holds, and
//! the age stanza (`-> mesh <account tag> <epoch>`) that carries a file
//! key wrapped to one epoch.
//!
//! The stanza's body is a Mesh encrypted envelope (PROTOCOL.md §6: X25519,
//! HKDF-SHA-512, AES-256-GCM) of the 16-byte age file key to the epoch's
//! public key, with content type `AgeFileKey`: the same primitive that
//! wraps every other Mesh secret, nothing new to review.

use std::collections::BTreeMap;

use mesh_core::envelope::Encrypted;
use mesh_core::keys::AgreementKey;
use mesh_plugins::{AccountView, DeviceHost, PluginError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::channel::{epochs, wraps, CT_FILE_KEY};
use crate::encoding::{account_tag, tag_arg, AccountTag, Identity, Recipient, PLUGIN_NAME};
use crate::FilesError;

/// Content type of a wrapped age file key.
pub const CT_AGE_FILE_KEY: &str = "AgeFileKey";
/// An age file key is 16 bytes (age spec, "File key").
pub const FILE_KEY_LEN: usize = 16;

/// One age stanza, as the plugin protocol hands it over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshStanza {
    /// The tag (`mesh` for ours).
    pub tag: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its body (base64 in JSON).
    #[serde(with = "mesh_core::b64::serde_bytes")]
    pub body: Vec<u8>,
}

/// What the plugin asks `mesh files unwrap` (JSON on its standard input):
/// the identity's account and one file's stanzas.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnwrapRequest {
    /// The identity (`AGE-PLUGIN-MESH-1…`).
    pub identity: String,
    /// The file's stanzas.
    pub stanzas: Vec<MeshStanza>,
}

/// The account's recipient at its current epoch.
pub fn recipient(view: &AccountView) -> Result<Recipient, FilesError> {
    let last = epochs(view)?.pop().ok_or(FilesError::NoFileKey)?;
    Ok(Recipient {
        epoch: last.epoch,
        key: last.public_key()?,
        account: account_tag(&view.profile_udf),
    })
}

/// The account's identity (no secret).
pub fn identity(view: &AccountView) -> Identity {
    Identity {
        account: account_tag(&view.profile_udf),
    }
}

/// The epochs of the file key this device holds, by epoch: its own
/// `files-wrap` entry of an epoch, else the epoch's entry (wrapped to every
/// holder when it began), opened with its current keys. Each secret must be
/// the one whose public key the epoch's entry names.
pub fn held(
    device: &dyn DeviceHost,
    view: &AccountView,
) -> Result<BTreeMap<u32, AgreementKey>, PluginError> {
    let keys = device.keys()?;
    let me = device.device_udf();
    let wraps = wraps(view)?;
    let mut out = BTreeMap::new();
    for e in epochs(view)? {
        let own = wraps
            .iter()
            .find(|w| w.epoch == e.epoch && mesh_core::udf::udf_eq(&w.device, me));
        let opened = own
            .and_then(|w| w.key.decrypt(CT_FILE_KEY, &keys.encrypt).ok())
            .or_else(|| e.key.decrypt(CT_FILE_KEY, &keys.encrypt).ok());
        // Epochs from before this device joined, or after it was revoked, are not for it.
        let Some(secret) = opened else {
            continue;
        };
        let bad = || PluginError::Untrusted(format!("file key epoch {}", e.epoch));
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(secret[..].try_into().map_err(|_| bad())?);
        let k = AgreementKey::from_bytes(&bytes);
        if e.public_key()? != k.public_key() {
            return Err(bad());
        }
        out.insert(e.epoch, k);
    }
    Ok(out)
}

/// Wrap an age file key to a recipient.
pub fn wrap(r: &Recipient, file_key: &[u8]) -> Result<MeshStanza, FilesError> {
    let env = Encrypted::encrypt(CT_AGE_FILE_KEY, file_key, &[r.key])
        .map_err(|e| FilesError::Plugin(e.into()))?;
    Ok(MeshStanza {
        tag: PLUGIN_NAME.into(),
        args: vec![tag_arg(&r.account), r.epoch.to_string()],
        body: mesh_core::envelope::to_json(&env),
    })
}

/// Unwrap a file's age file key with the epochs this device holds.
pub fn unwrap(
    stanzas: &[MeshStanza],
    account: &AccountTag,
    address: &str,
    held: &BTreeMap<u32, AgreementKey>,
) -> Result<Zeroizing<Vec<u8>>, FilesError> {
    let ours: Vec<&MeshStanza> = stanzas.iter().filter(|s| s.tag == PLUGIN_NAME).collect();
    if ours.is_empty() {
        return Err(FilesError::NotMesh);
    }
    let tag = tag_arg(account);
    let mut missing = None;
    for s in ours.iter().filter(|s| s.args.first() == Some(&tag)) {
        let epoch: u32 = match s.args.as_slice() {
            [_, e] => e
                .parse()
                .map_err(|_| FilesError::BadEncoding(format!("stanza epoch `{e}`")))?,
            _ => {
                return Err(FilesError::BadEncoding(
                    "a mesh stanza has 2 arguments".into(),
                ))
            }
        };
        let Some(key) = held.get(&epoch) else {
            missing = Some(epoch);
            continue;
        };
        let env: Encrypted = mesh_core::envelope::from_json("stanza", &s.body)
            .map_err(|_| FilesError::BadStanza(epoch))?;
        let fk = env
            .decrypt(CT_AGE_FILE_KEY, key)
            .map_err(|_| FilesError::BadStanza(epoch))?;
        if fk.len() != FILE_KEY_LEN {
            return Err(FilesError::BadStanza(epoch));
        }
        return Ok(fk);
    }
    match missing {
        Some(epoch) => Err(FilesError::NeverHad {
            epoch,
            newest: held.keys().next_back().copied(),
        }),
        None => Err(FilesError::OtherAccount {
            address: address.to_string(),
        }),
    }
}

/// `mesh files unwrap`: the file key for a plugin request, checked against
/// this device's account.
pub fn unwrap_request(
    device: &dyn DeviceHost,
    view: &AccountView,
    req: &UnwrapRequest,
) -> Result<Zeroizing<Vec<u8>>, FilesError> {
    let id = Identity::decode(&req.identity)?;
    if id.account != account_tag(&view.profile_udf) {
        return Err(FilesError::BadEncoding(format!(
            "the identity names another account than this home's ({}); check MESH_HOME",
            view.address
        )));
    }
    unwrap(
        &req.stanzas,
        &id.account,
        &view.address,
        &held(device, view)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::keys::AgreementKey;

    #[test]
    fn a_stanza_opens_with_its_epoch_and_says_why_not_otherwise() {
        let (e0, e1) = (AgreementKey::generate(), AgreementKey::generate());
        let account = account_tag("MALICE");
        let fk = [7u8; FILE_KEY_LEN];
        let to = |epoch, k: &AgreementKey| Recipient {
            epoch,
            key: k.public_key(),
            account,
        };
        let s1 = [wrap(&to(1, &e1), &fk).expect("wraps")];
        let both: BTreeMap<u32, AgreementKey> = [(0, e0.clone()), (1, e1.clone())].into();
        assert_eq!(&unwrap(&s1, &account, "a", &both).expect("opens")[..], &fk);
        // Revoked before epoch 1: holds epoch 0 only.
        let old: BTreeMap<u32, AgreementKey> = [(0, e0.clone())].into();
        let err = unwrap(&s1, &account, "a", &old).expect_err("never had");
        assert!(
            matches!(
                err,
                FilesError::NeverHad {
                    epoch: 1,
                    newest: Some(0)
                }
            ),
            "{err}"
        );
        assert!(err.hint().expect("hint").contains("mesh sync"));
        // Another account's file.
        let other = account_tag("MBOB");
        let err = unwrap(&s1, &other, "bob", &both).expect_err("other");
        assert!(matches!(err, FilesError::OtherAccount { .. }), "{err}");
        // A stanza whose epoch key is not the one it names: damaged, not "never had".
        let mut forged = wrap(&to(0, &e1), &fk).expect("wraps");
        forged.args[1] = "0".into();
        let err = unwrap(&[forged], &account, "a", &both).expect_err("forged");
        assert!(matches!(err, FilesError::BadStanza(0)), "{err}");
    }
}
