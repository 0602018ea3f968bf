//! The Windows certificate store (Outlook's): `mesh smime install
//! --windows-store` puts this device's signing certificate and key and the
//! account's encryption certificates and keys in `CurrentUser\My`, and the
//! account's CA in `CurrentUser\Root`; every sync keeps them current and a
//! revocation removes them, as for NSS databases ([`crate::nss`]).
//!
//! What to install, the record of what was installed, and when to replace
//! it are decided here on every platform (and tested on Linux); the store
//! itself is behind [`Backend`], whose Windows implementation
//! (`winstore_sys.rs`) is a thin layer over the `schannel` crate.

use mesh_plugins::{AccountView, DeviceHost, PluginError};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::device::{ca_pem, cert_pem, held_keys};

type Result<T> = std::result::Result<T, PluginError>;

/// The channel's local record of what is in the store.
const RECORD: &str = "smime-winstore";
/// How errors name the store.
pub const TOOL: &str = "the Windows certificate store";

/// A system store of the current user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Store {
    /// `CurrentUser\My`: certificates with their private keys (Outlook's).
    My,
    /// `CurrentUser\Root`: trust anchors, for e-mail too.
    Root,
}

impl Store {
    /// The store's name for `CertOpenStore`.
    pub fn name(self) -> &'static str {
        match self {
            Store::My => "My",
            Store::Root => "Root",
        }
    }
}

/// The private key that goes with a certificate.
pub enum Key {
    /// None (a CA certificate).
    None,
    /// RSA, PKCS#1 DER: into a named CryptoAPI key container.
    Rsa(Zeroizing<Vec<u8>>),
    /// ECDSA P-256, PKCS#8 DER: through a PKCS#12 import (CNG).
    P256(Zeroizing<Vec<u8>>),
}

/// One certificate to install.
pub struct Item {
    /// Where it goes.
    pub store: Store,
    /// Its friendly name (what Outlook shows), as PROTOCOL.md §12 names it.
    pub name: String,
    /// The certificate, DER.
    pub cert: Vec<u8>,
    /// Its private key.
    pub key: Key,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.write_str(match self {
            Key::None => "None",
            Key::Rsa(_) => "Rsa(..)",
            Key::P256(_) => "P256(..)",
        })
    }
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Item")
            .field("store", &self.store)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A certificate's SHA-1 thumbprint, upper-case hex: how Windows names it.
pub fn thumbprint(der: &[u8]) -> String {
    data_encoding::HEXUPPER.encode(&sha1::Sha1::digest(der))
}

impl Item {
    /// What the record keeps of it.
    pub fn installed(&self) -> Installed {
        let thumbprint = thumbprint(&self.cert);
        let container = match self.key {
            // One container per key: Windows' default container holds one
            // key exchange key, and a second import would replace the first.
            Key::Rsa(_) => Some(format!("Mesh {thumbprint}")),
            Key::None | Key::P256(_) => None,
        };
        Installed {
            store: self.store,
            thumbprint,
            container,
        }
    }
}

/// One certificate Mesh put in a store, and its key container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Which store.
    pub store: Store,
    /// The certificate's thumbprint.
    pub thumbprint: String,
    /// The CryptoAPI key container Mesh made for its key, if any.
    pub container: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    /// What the store holds of this account (empty while an install runs).
    content: String,
    installed: Vec<Installed>,
}

fn record(device: &dyn DeviceHost) -> Record {
    device
        .local(RECORD)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn save(device: &dyn DeviceHost, rec: &Record) -> Result<()> {
    device.set_local(RECORD, Some(&serde_json::to_value(rec).unwrap_or_default()))
}

/// Why a certificate could not be added.
#[derive(Debug)]
pub enum AddError {
    /// This Windows cannot hold it (Wine 8 imports no ECDSA key): the
    /// install goes on without it and says so.
    Unsupported(String),
    /// Anything else: the install stops.
    Failed(PluginError),
}

/// A certificate store: the Windows one, or a fake in tests.
pub trait Backend {
    /// Add (or replace) a certificate with its key, non-exportable.
    fn add(&mut self, item: &Item) -> std::result::Result<(), AddError>;
    /// Remove a certificate and destroy its key; nothing to do if absent.
    fn remove(&mut self, entry: &Installed) -> Result<()>;
}

/// What an install did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The friendly names installed.
    pub installed: Vec<String>,
    /// What was left out, and why.
    pub skipped: Vec<String>,
}

/// What this device should have in the store: its signing certificate and
/// key, every encryption epoch it holds (old mail needs the retired ones),
/// and the account's current CA as a trust anchor.
pub fn plan(device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<Item>> {
    use p256::pkcs8::EncodePrivateKey as _;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    let der =
        |pem: &str| crate::x509::pem_to_der(pem).map_err(|e| PluginError::Untrusted(e.to_string()));
    let internal = |e: &dyn std::fmt::Display| PluginError::Internal(e.to_string());
    let signing = crate::device::signing_key(device)?
        .to_pkcs8_der()
        .map_err(|e| internal(&e))?;
    let mut items = vec![Item {
        store: Store::My,
        name: crate::x509::signing_name(&view.address),
        cert: der(&cert_pem(device, view)?)?,
        key: Key::P256(Zeroizing::new(signing.as_bytes().to_vec())),
    }];
    for h in held_keys(device, view)? {
        let pkcs1 = h.key.to_pkcs1_der().map_err(|e| internal(&e))?;
        items.push(Item {
            store: Store::My,
            name: crate::x509::encryption_name(&view.address, h.epoch, h.current),
            cert: h.cert,
            key: Key::Rsa(Zeroizing::new(pkcs1.as_bytes().to_vec())),
        });
    }
    items.push(Item {
        store: Store::Root,
        name: format!("{} (Mesh personal CA)", view.address),
        cert: der(&ca_pem(view)?)?,
        key: Key::None,
    });
    Ok(items)
}

/// A digest of the plan: names (which carry the current epoch), stores and
/// thumbprints. A change re-installs.
fn content(items: &[Item]) -> String {
    let mut h = sha2::Sha256::new();
    for i in items {
        h.update(i.store.name().as_bytes());
        h.update([0]);
        h.update(i.name.as_bytes());
        h.update([0]);
        h.update(thumbprint(&i.cert).as_bytes());
        h.update([0]);
    }
    data_encoding::HEXLOWER.encode(&h.finalize())
}

/// Install the plan through `store`, replacing what an earlier install put
/// there and is superseded (a re-issued certificate, an earlier CA).
pub fn install_with(
    device: &dyn DeviceHost,
    view: &AccountView,
    store: &mut dyn Backend,
) -> Result<Outcome> {
    let items = plan(device, view)?;
    let want: Vec<Installed> = items.iter().map(Item::installed).collect();
    let old = record(device).installed;
    // Recorded before the store is touched, as not current: a crash in
    // between leaves every entry known, so that a revocation removes it
    // and the next sync completes the install.
    let mut both = old.clone();
    both.extend(want.iter().filter(|w| !old.contains(w)).cloned());
    save(
        device,
        &Record {
            content: String::new(),
            installed: both,
        },
    )?;
    for gone in old.iter().filter(|o| !want.contains(o)) {
        store.remove(gone)?;
    }
    let mut out = Outcome::default();
    for item in &items {
        match store.add(item) {
            Ok(()) => out.installed.push(item.name.clone()),
            Err(AddError::Unsupported(why)) => out.skipped.push(format!("{}: {why}", item.name)),
            Err(AddError::Failed(e)) => return Err(e),
        }
    }
    save(
        device,
        &Record {
            content: content(&items),
            installed: want,
        },
    )?;
    Ok(out)
}

/// After a sync: install again if the store is behind (a new encryption
/// epoch, a re-issued certificate, a new CA). Nothing if never installed.
pub fn refresh_with(
    device: &dyn DeviceHost,
    view: &AccountView,
    store: &mut dyn Backend,
) -> Result<Vec<String>> {
    let rec = record(device);
    if rec.installed.is_empty() || rec.content == content(&plan(device, view)?) {
        return Ok(Vec::new());
    }
    let out = install_with(device, view, store)?;
    let mut lines = vec![format!(
        "Windows certificate store: {} certificate(s) updated",
        out.installed.len()
    )];
    lines.extend(
        out.skipped
            .iter()
            .map(|s| format!("Windows certificate store: left out {s}")),
    );
    Ok(lines)
}

/// On revocation: remove every certificate and key Mesh put in the store.
pub fn wipe_with(device: &dyn DeviceHost, store: &mut dyn Backend) -> Result<Vec<String>> {
    let rec = record(device);
    if rec.installed.is_empty() {
        return Ok(Vec::new());
    }
    for e in &rec.installed {
        store.remove(e)?;
    }
    device.set_local(RECORD, None)?;
    Ok(vec![format!(
        "{} certificate(s) and their keys removed from the Windows certificate store",
        rec.installed.len()
    )])
}

/// `mesh smime install --windows-store`.
#[cfg(windows)]
pub fn install(device: &dyn DeviceHost, view: &AccountView) -> Result<Outcome> {
    install_with(device, view, &mut crate::winstore_sys::Windows)
}

/// `mesh smime install --windows-store` on a build for another system.
#[cfg(not(windows))]
pub fn install(_device: &dyn DeviceHost, _view: &AccountView) -> Result<Outcome> {
    Err(PluginError::Tool {
        tool: TOOL.into(),
        detail: "this mesh is not built for Windows".into(),
        hint: "run `mesh smime install --windows-store` with mesh.exe on Windows; here, `mesh smime install --nssdb DIR` installs into Thunderbird's NSS database",
    })
}

/// After a sync (see [`refresh_with`]).
pub fn refresh(device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<String>> {
    #[cfg(windows)]
    return refresh_with(device, view, &mut crate::winstore_sys::Windows);
    // Elsewhere nothing was ever installed.
    #[cfg(not(windows))]
    return {
        let _ = (device, view);
        Ok(Vec::new())
    };
}

/// On revocation (see [`wipe_with`]).
pub fn wipe(device: &dyn DeviceHost) -> Result<Vec<String>> {
    #[cfg(windows)]
    return wipe_with(device, &mut crate::winstore_sys::Windows);
    #[cfg(not(windows))]
    return {
        let _ = device;
        Ok(Vec::new())
    };
}

#[cfg(test)]
#[path = "winstore_tests.rs"]
mod tests;
