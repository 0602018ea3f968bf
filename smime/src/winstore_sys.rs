//! The Windows side of [`crate::winstore`]: the current user's system
//! stores through the `schannel` crate's safe API (CryptoAPI), and one
//! registry call where Wine's crypt32 loses a deletion.

use mesh_plugins::PluginError;
use schannel::cert_context::{CertContext, KeySpec};
use schannel::cert_store::{CertAdd, CertStore, PfxImportOptions};
use schannel::crypt_prov::{AcquireOptions, CryptProv, ProviderType};
use zeroize::Zeroizing;

use crate::winstore::{thumbprint, AddError, Backend, Installed, Item, Key, Store, TOOL};

type Result<T> = std::result::Result<T, PluginError>;

/// The CryptoAPI provider RSA keys go to (every Windows has it, Wine too).
const PROVIDER: &str = "Microsoft Enhanced Cryptographic Provider v1.0";
const HINT: &str = "check that the user's certificate store can be written (certmgr.msc)";

fn failed(what: &str, e: std::io::Error) -> PluginError {
    PluginError::Tool {
        tool: TOOL.into(),
        detail: format!("{what}: {e}"),
        hint: HINT,
    }
}

/// The current user's store.
#[derive(Debug)]
pub struct Windows;

fn open(store: Store) -> Result<CertStore> {
    CertStore::open_current_user(store.name())
        .map_err(|e| failed(&format!("cannot open CurrentUser\\{}", store.name()), e))
}

fn find(store: &CertStore, thumb: &str) -> Option<CertContext> {
    store.certs().find(|c| thumbprint(c.to_der()) == thumb)
}

fn container(name: &str, create: bool) -> std::io::Result<CryptProv> {
    AcquireOptions::new()
        .container(name)
        .provider(PROVIDER)
        .new_keyset(create)
        .silent(true)
        .acquire(ProviderType::rsa_full())
}

/// Put an RSA key in its own container, non-exportable (CryptImportKey
/// without CRYPT_EXPORTABLE), replacing what the container held.
fn import_rsa(name: &str, pkcs1: &[u8]) -> Result<()> {
    let mut prov = container(name, true)
        .or_else(|_| container(name, false))
        .map_err(|e| failed(&format!("key container {name}"), e))?;
    prov.import()
        .import(pkcs1)
        .map(drop)
        .map_err(|e| failed(&format!("importing the key into {name}"), e))
}

/// The certificate of a P-256 key, with the key, from a transient PKCS#12
/// under a random password (the only way to a CNG key through a safe API).
fn from_pfx(item: &Item, pkcs8: &Zeroizing<Vec<u8>>) -> std::result::Result<CertContext, AddError> {
    let mut pw = [0u8; 18];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut pw);
    let pw = Zeroizing::new(mesh_core::b64::encode(&pw));
    let entry = crate::x509::P12Entry {
        name: item.name.clone(),
        key_pkcs8: pkcs8.clone(),
        chain: vec![item.cert.clone()],
    };
    let p12 = crate::x509::pkcs12(&[entry], &pw, crate::x509::P12Profile::Transient)
        .map_err(|e| AddError::Failed(PluginError::Internal(e.to_string())))?;
    // Without PKCS12_NO_PERSIST_KEY the key persists; without
    // CRYPT_EXPORTABLE it cannot be exported.
    let mem = PfxImportOptions::new().password(&pw).import(&p12).map_err(|e| {
        // Wine fails without setting an error code.
        let why = match e.raw_os_error() {
            Some(0) | None => String::new(),
            Some(_) => format!(" ({e})"),
        };
        AddError::Unsupported(format!(
            "this Windows' crypto API did not import the ECDSA P-256 key from PKCS#12{why}; Wine 8 imports RSA keys only"
        ))
    })?;
    let thumb = thumbprint(&item.cert);
    find(&mem, &thumb).ok_or_else(|| {
        AddError::Failed(failed(
            "the PKCS#12 import",
            std::io::Error::other("the certificate is missing from what it returned"),
        ))
    })
}

impl Backend for Windows {
    fn add(&mut self, item: &Item) -> std::result::Result<(), AddError> {
        if present(item).map_err(AddError::Failed)? {
            return Ok(());
        }
        let new = |e| AddError::Failed(failed("the certificate", e));
        let cert = match &item.key {
            Key::None => CertContext::new(&item.cert).map_err(new)?,
            Key::P256(pkcs8) => from_pfx(item, pkcs8)?,
            Key::Rsa(pkcs1) => {
                let name = item.installed().container.unwrap_or_default();
                import_rsa(&name, pkcs1).map_err(AddError::Failed)?;
                let cert = CertContext::new(&item.cert).map_err(new)?;
                cert.set_key_prov_info()
                    .container(&name)
                    .provider(PROVIDER)
                    .type_(ProviderType::rsa_full())
                    .key_spec(KeySpec::key_exchange())
                    .set()
                    .map_err(|e| AddError::Failed(failed("linking the key", e)))?;
                cert
            }
        };
        cert.set_friendly_name(&item.name)
            .map_err(|e| AddError::Failed(failed("naming the certificate", e)))?;
        // Wine's CERT_STORE_ADD_REPLACE_EXISTING keeps the stored
        // certificate's properties (an epoch's name stays "current" after
        // it retires): what is there goes first; its key container stays.
        delete(item.store, &thumbprint(&item.cert)).map_err(AddError::Failed)?;
        let mut store = open(item.store).map_err(AddError::Failed)?;
        store
            .add_cert(&cert, CertAdd::ReplaceExisting)
            .map(drop)
            .map_err(|e| AddError::Failed(failed(&format!("adding {}", item.name), e)))
    }

    fn remove(&mut self, entry: &Installed) -> Result<()> {
        delete(entry.store, &entry.thumbprint)?;
        if let Some(name) = &entry.container {
            shred(name)?;
        }
        Ok(())
    }
}

/// Whether the store already holds the item as it should be: the same
/// certificate under the same name, with a key that opens if it has one.
/// Then nothing is touched (on Windows, each change to `Root` asks the
/// user to confirm it).
fn present(item: &Item) -> Result<bool> {
    let Some(c) = find(&open(item.store)?, &thumbprint(&item.cert)) else {
        return Ok(false);
    };
    let named = c.friendly_name().ok().as_deref() == Some(item.name.as_str());
    let keyed = matches!(item.key, Key::None) || c.private_key().silent(true).acquire().is_ok();
    Ok(named && keyed)
}

/// Delete a certificate from a store, and check from a fresh handle that
/// it is gone: Wine 8's CertDeleteCertificateFromStore does not release
/// the context it is given (Windows does), so the registry store under it
/// is never flushed and the certificate is back in the next process. Then
/// the entry the API left is removed from the registry, where
/// CurrentUser's system stores keep their certificates.
fn delete(store: Store, thumb: &str) -> Result<()> {
    if let Some(c) = find(&open(store)?, thumb) {
        c.delete()
            .map_err(|e| failed(&format!("deleting {thumb}"), e))?;
    }
    if find(&open(store)?, thumb).is_none() {
        return Ok(());
    }
    let path = format!(
        "Software\\Microsoft\\SystemCertificates\\{}\\Certificates\\{thumb}",
        store.name()
    );
    winreg::RegKey::predef(winreg::enums::HKEY_CURRENT_USER)
        .delete_subkey_all(&path)
        .map_err(|e| failed(&format!("deleting HKCU\\{path}"), e))?;
    match find(&open(store)?, thumb) {
        None => Ok(()),
        Some(_) => Err(failed(
            &format!("deleting {thumb}"),
            std::io::Error::other("it is still in the store"),
        )),
    }
}

/// Destroy the key in a container Mesh made: the `schannel` crate has no
/// CRYPT_DELETEKEYSET, so a throwaway key replaces it (the key exchange
/// slot holds one key); the empty container name stays.
fn shred(name: &str) -> Result<()> {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    let Ok(mut prov) = container(name, false) else {
        return Ok(());
    };
    let throwaway = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 512)
        .map_err(|e| PluginError::Internal(e.to_string()))?;
    let der = throwaway
        .to_pkcs1_der()
        .map_err(|e| PluginError::Internal(e.to_string()))?;
    prov.import()
        .import(der.as_bytes())
        .map(drop)
        .map_err(|e| failed(&format!("destroying the key in {name}"), e))
}
