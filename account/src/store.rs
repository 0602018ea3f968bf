//! The device store: one device's state under its home directory.
//!
//! Layout of a home (0700):
//! - `state.json`: public state (device profile, the account's header,
//!   connection);
//! - `manifest-<digest>.json`, named by the header, and `entries/` (0700):
//!   the account's envelopes, one file each, named by digest
//!   (`envelopes.rs`);
//! - `converged.json`: the channels' last complete pass (`sync.rs`);
//! - `secrets.enc`: the secrets (seeds), AES-256-GCM under the store key;
//! - `keystore/store.key`: the store key, only with the file backend (0600 in 0700);
//! - `lock`: held while a process uses the store.
//!
//! The store key lives in the OS keyring by default (`MESH_KEYSTORE=os`);
//! `MESH_KEYSTORE=file` keeps it in a 0600 file instead, for headless
//! machines and CI, and says so. Every write goes to a temporary file that
//! is synced and renamed over the old one, so a crash leaves either the old
//! or the new file, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use mesh_core::b64;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

mod sealed;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Store format version.
pub const STORE_VERSION: u32 = 1;
const STATE: &str = "state.json";
const SECRETS: &str = "secrets.enc";
const KEY_DIR: &str = "keystore";
const KEY_FILE: &str = "store.key";
const KEYRING_SERVICE: &str = "mesh-device-store";

/// Errors of the device store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// File system error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The home is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// No store at this home.
    #[error("no Mesh device at {0}")]
    NoStore(PathBuf),
    /// A store file that does not parse or decrypt.
    #[error("{path} is damaged: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Unknown `MESH_KEYSTORE` value.
    #[error("MESH_KEYSTORE={0} is not a key store (os, file)")]
    BadBackend(String),
    /// The home keeps its key elsewhere than `MESH_KEYSTORE` says.
    #[error("this home keeps its store key in the {stored} backend, but MESH_KEYSTORE={asked}")]
    BackendMismatch {
        /// Recorded in the home.
        stored: String,
        /// Asked for.
        asked: String,
    },
    /// The OS keyring cannot be used.
    #[error("no OS keyring is available: {0}")]
    NoKeyring(String),
    /// The home's store key is in the OS keyring, which cannot be reached
    /// or is locked (a file store key cannot stand in for it).
    #[error("the store key of {} is in the OS keyring, which cannot be reached or is locked: {detail}", home.display())]
    KeyringUnavailable {
        /// The home.
        home: PathBuf,
        /// What the keyring said.
        detail: String,
    },
    /// A file or directory that others can read.
    #[error("{path} has mode {mode:o}; it must not be accessible to other users")]
    Permissions {
        /// The path.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
}

impl StoreError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::NotADirectory(_) => Some(
                "--home (or $MESH_HOME) names a device's home: a directory, or a path that does not exist yet"
                    .into(),
            ),
            StoreError::Io { .. } => {
                Some("check that the path exists and that this user may write there".into())
            }
            StoreError::NoStore(_) => {
                Some("create one with `mesh device init`, `mesh account create` or `mesh device request`".into())
            }
            StoreError::NoKeyring(_) => Some(
                "on a machine without a keyring, set MESH_KEYSTORE=file to keep the store key in a 0600 file in the home"
                    .into(),
            ),
            StoreError::KeyringUnavailable { .. } => Some(
                "start or unlock the keyring of this user session (for example log in to the desktop, or run `gnome-keyring-daemon --unlock` under a D-Bus session), then try again; MESH_KEYSTORE=file cannot open this home, whose key is in the keyring"
                    .into(),
            ),
            StoreError::BackendMismatch { stored, .. } if stored == "os" => Some(
                "this home keeps its store key in the OS keyring: unset MESH_KEYSTORE (or set it to os) and start or unlock the keyring".into(),
            ),
            StoreError::BackendMismatch { stored, .. } => Some(format!("set MESH_KEYSTORE={stored}")),
            StoreError::Permissions { path, .. } => Some(format!("chmod go-rwx {}", path.display())),
            StoreError::Corrupt { .. } => {
                Some("restore the home from a backup, or recover the account from its escrow shares".into())
            }
            _ => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the store key is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The OS keyring (Secret Service on Linux).
    Os,
    /// A 0600 file under the home.
    File,
}

impl Backend {
    /// From `MESH_KEYSTORE` (default `os`).
    pub fn from_env() -> Result<Backend, StoreError> {
        match std::env::var("MESH_KEYSTORE").ok().as_deref() {
            None | Some("") | Some("os") => Ok(Backend::Os),
            Some("file") => Ok(Backend::File),
            Some(other) => Err(StoreError::BadBackend(other.to_string())),
        }
    }

    /// Name as recorded and shown.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Os => "os",
            Backend::File => "file",
        }
    }

    /// A sentence for `mesh status`.
    pub fn describe(self) -> &'static str {
        match self {
            Backend::Os if cfg!(windows) => "the store key is in Windows Credential Manager",
            Backend::Os if cfg!(target_os = "linux") => {
                "the store key is in the OS keyring (Secret Service)"
            }
            Backend::Os if cfg!(target_os = "macos") => "the store key is in the macOS Keychain",
            Backend::Os => "the store key is in the OS keyring",
            Backend::File => "the store key is in a 0600 file in the home",
        }
    }

    /// The store that holds the key, by its platform's name.
    pub fn store_name(self) -> &'static str {
        match self {
            Backend::Os if cfg!(windows) => "Windows Credential Manager",
            Backend::Os if cfg!(target_os = "linux") => "Secret Service",
            Backend::Os if cfg!(target_os = "macos") => "macOS Keychain",
            Backend::Os => "OS keyring",
            Backend::File => "file",
        }
    }
}

/// Public state of a device.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Random id naming this store's key in the keyring.
    pub store_id: String,
    /// `os` or `file`.
    pub keystore: String,
    /// This device, once initialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceState>,
    /// The account this device belongs to, once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Kept as its JSON text until asked for (`state::account`): opening
    /// the store does not build a tree of a state that is megabytes at scale.
    pub account: Option<Box<serde_json::value::RawValue>>,
    /// The device was revoked: its secrets and store key are destroyed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wiped: bool,
}

/// This device's public facts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceState {
    /// The device UDF.
    pub udf: String,
    /// Its name.
    pub name: String,
    /// Its signed profile.
    pub profile: mesh_core::envelope::Signed,
}

/// The secrets of a device. Never printed.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Secrets {
    /// The device seed (`Z…`, spec 0x0100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_seed: Option<Zeroizing<String>>,
    /// The administrators' online seeds, on administrators (never the
    /// account's root: that lives only in the recovery shares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_seeds: Option<mesh_core::authority::OnlineSeeds>,
    /// The activation seed and its epoch, once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_seed: Option<Zeroizing<String>>,
    /// Epoch of the activation.
    #[serde(default)]
    pub activation_epoch: u32,
    /// While a request made with a PIN waits: the salted PIN, to check the
    /// administrators' proof that the answer comes from the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_pin: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct SealedFile {
    #[serde(rename = "Version")]
    version: u32,
    #[serde(rename = "Nonce", with = "b64::serde_bytes")]
    nonce: Vec<u8>,
    #[serde(rename = "Ciphertext", with = "b64::serde_bytes")]
    ciphertext: Vec<u8>,
}

/// An open store. Holds the home's lock until dropped.
pub struct Store {
    home: PathBuf,
    backend: Backend,
    state: State,
    key: Zeroizing<[u8; 32]>,
    /// The secrets, decrypted at most once per open store (`sealed.rs`).
    secrets: sealed::Opened,
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("home", &self.home)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The default home: `MESH_HOME`, else the platform's data directory.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("MESH_HOME") {
        return PathBuf::from(h);
    }
    platform_home()
}

/// The platform's home directory, whatever MESH_HOME says.
pub fn platform_home() -> PathBuf {
    // Windows: %LOCALAPPDATA%\Mesh, which does not roam (a roaming
    // profile would copy the sealed store to a server).
    #[cfg(windows)]
    let dir = directories::BaseDirs::new().map(|d| d.data_local_dir().join("Mesh"));
    #[cfg(not(windows))]
    let dir =
        directories::ProjectDirs::from("org", "Mesh", "mesh").map(|d| d.data_dir().to_path_buf());
    dir.unwrap_or_else(|| PathBuf::from(".mesh"))
}

pub fn make_private_dir(path: &Path) -> Result<(), StoreError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(0o700);
    b.create(path).map_err(io(path))?;
    // Windows: the home's own DACL, for its owner only, inherited by the
    // store, its key file (MESH_KEYSTORE=file) and everything else in it.
    mesh_plugins::platform::restrict_to_owner(path).map_err(io(path))?;
    check_private(path)
}

fn check_private(path: &Path) -> Result<(), StoreError> {
    #[cfg(not(unix))]
    let _ = path;
    #[cfg(unix)]
    {
        let mode = fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    Ok(())
}

/// Write `data` to `path` atomically: a new 0600 file next to it, synced,
/// then renamed over `path`, then the directory synced.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    write_atomic_then(path, data, true)
}

/// [`write_atomic`]; with `sync_dir` false the directory is not synced, for
/// a caller that writes many files into it and syncs it once.
pub(crate) fn write_atomic_then(
    path: &Path,
    data: &[u8],
    sync_dir: bool,
) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut rnd = [0u8; 6];
    OsRng.fill_bytes(&mut rnd);
    let tmp = dir.join(format!(
        ".{name}.{}.tmp",
        data_encoding::HEXLOWER.encode(&rnd)
    ));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let result = (|| {
        // Errors name the file being replaced, never the temporary one.
        let mut f = opts.open(&tmp).map_err(io(path))?;
        f.write_all(data).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
        fs::rename(&tmp, path).map_err(io(path))?;
        if sync_dir {
            sync_dir_of(dir);
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Remove what [`write_atomic`] left behind when its process stopped
/// before the rename (`.NAME.HEX.tmp`), in the home and its entries
/// directory; best effort. Only for a caller that holds the home's lock.
fn sweep_temporaries(home: &Path) {
    for dir in [home.to_path_buf(), home.join("entries")] {
        let Ok(list) = fs::read_dir(&dir) else {
            continue;
        };
        for e in list.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Sync a directory (its entries), best effort.
pub(crate) fn sync_dir_of(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn keyring_entry(store_id: &str) -> Result<keyring_core::Entry, StoreError> {
    if keyring_core::get_default_store().is_none() {
        keyring_core::set_default_store(os_store()?);
    }
    keyring_core::Entry::new(KEYRING_SERVICE, store_id)
        .map_err(|e| StoreError::NoKeyring(e.to_string()))
}

type OsStore = std::sync::Arc<keyring_core::api::CredentialStore>;

/// This platform's credential store: Secret Service (Linux), Credential
/// Manager (Windows: a generic credential of this user), the login
/// Keychain (macOS: compile-checked only where Apple's SDK is missing).
fn os_store() -> Result<OsStore, StoreError> {
    let no = |e: keyring_core::Error| StoreError::NoKeyring(e.to_string());
    #[cfg(target_os = "linux")]
    return Ok(zbus_secret_service_keyring_store::Store::new().map_err(no)?);
    #[cfg(windows)]
    return Ok(windows_native_keyring_store::Store::new().map_err(no)?);
    #[cfg(target_os = "macos")]
    return Ok(apple_native_keyring_store::keychain::Store::new().map_err(no)?);
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        let _ = no;
        Err(StoreError::NoKeyring(
            "this build has an OS keyring backend only for Linux (Secret Service), Windows (Credential Manager) and macOS (Keychain)".into(),
        ))
    }
}

fn new_key() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut k[..]);
    k
}

impl Store {
    /// Open the store at `home`; with `create`, make a new (empty) one if
    /// there is none. Takes the home's lock, waiting for another process.
    pub fn open(home: &Path, create: bool) -> Result<Store, StoreError> {
        if home.exists() && !home.is_dir() {
            return Err(StoreError::NotADirectory(home.to_path_buf()));
        }
        let state_path = home.join(STATE);
        if !state_path.exists() {
            if !create {
                return Err(StoreError::NoStore(home.to_path_buf()));
            }
            make_private_dir(home)?;
        }
        check_private(home)?;
        let lock_path = home.join("lock");
        let mut lo = OpenOptions::new();
        lo.write(true).create(true).truncate(false);
        #[cfg(unix)]
        lo.mode(0o600);
        let lock = lo.open(&lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        // Every write to the home happens under this lock: a temporary file
        // found now was left by a process that stopped mid-write (Ctrl-C).
        sweep_temporaries(home);

        let asked = Backend::from_env()?;
        if !state_path.exists() {
            return Store::create(home, asked, lock);
        }
        let raw = fs::read(&state_path).map_err(io(&state_path))?;
        let state: State = serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
            path: state_path.clone(),
            detail: e.to_string(),
        })?;
        let backend = match state.keystore.as_str() {
            "os" => Backend::Os,
            "file" => Backend::File,
            other => {
                return Err(StoreError::Corrupt {
                    path: state_path,
                    detail: format!("unknown keystore '{other}'"),
                })
            }
        };
        if std::env::var_os("MESH_KEYSTORE").is_some() && backend != asked {
            return Err(StoreError::BackendMismatch {
                stored: backend.name().into(),
                asked: asked.name().into(),
            });
        }
        // A wiped store has no key left; its public state stays readable.
        let key = if state.wiped {
            Zeroizing::new([0u8; 32])
        } else {
            Store::load_key(home, backend, &state.store_id)?
        };
        let store = Store {
            home: home.to_path_buf(),
            backend,
            state,
            key,
            secrets: Default::default(),
            _lock: lock,
        };
        if store.state.wiped {
            // A wipe a crash interrupted: finish it (best effort; the next
            // open tries again).
            let _ = store.finish_wipe();
        }
        Ok(store)
    }

    fn create(home: &Path, backend: Backend, lock: File) -> Result<Store, StoreError> {
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let store_id = data_encoding::HEXLOWER.encode(&id);
        let key = new_key();
        match backend {
            Backend::File => {
                let dir = home.join(KEY_DIR);
                make_private_dir(&dir)?;
                write_atomic(&dir.join(KEY_FILE), &key[..])?;
            }
            Backend::Os => {
                keyring_entry(&store_id)?
                    .set_secret(&key[..])
                    .map_err(|e| StoreError::NoKeyring(e.to_string()))?;
            }
        }
        let mut s = Store {
            home: home.to_path_buf(),
            backend,
            state: State {
                version: STORE_VERSION,
                store_id,
                keystore: backend.name().into(),
                device: None,
                account: None,
                wiped: false,
            },
            key,
            secrets: Default::default(),
            _lock: lock,
        };
        s.save_secrets(&Secrets::default())?;
        s.save_state()?;
        Ok(s)
    }

    fn load_key(
        home: &Path,
        backend: Backend,
        store_id: &str,
    ) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let bytes = match backend {
            Backend::File => {
                let dir = home.join(KEY_DIR);
                check_private(&dir)?;
                let path = dir.join(KEY_FILE);
                check_private(&path)?;
                Zeroizing::new(fs::read(&path).map_err(io(&path))?)
            }
            Backend::Os => {
                let unavailable = |detail: String| StoreError::KeyringUnavailable {
                    home: home.to_path_buf(),
                    detail,
                };
                let entry = keyring_entry(store_id).map_err(|e| match e {
                    StoreError::NoKeyring(d) => unavailable(d),
                    e => e,
                })?;
                Zeroizing::new(entry.get_secret().map_err(|e| unavailable(e.to_string()))?)
            }
        };
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt {
                path: home.join(KEY_DIR).join(KEY_FILE),
                detail: "the store key is not 32 bytes".into(),
            })?;
        Ok(Zeroizing::new(arr))
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The key backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The public state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The public state, for changing; call [`Store::save_state`] after.
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Write the public state atomically.
    pub fn save_state(&self) -> Result<(), StoreError> {
        let path = self.home.join(STATE);
        let json = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
        write_atomic(&path, &json)
    }

    /// Destroy every secret (a revoked device wipes itself): the sealed
    /// secrets are overwritten with an empty set, the state is marked
    /// wiped, then the sealed file and the store key (keyring entry or key
    /// file) are deleted. The public state stays, so that commands can say
    /// what happened. A crash between two steps leaves a store that opens
    /// as wiped and finishes the deletion (`open`, or this again).
    pub fn wipe_secrets(&mut self) -> Result<(), StoreError> {
        if !self.state.wiped {
            self.save_secrets(&Secrets::default())?;
            self.state.wiped = true;
            self.save_state()?;
            self.key = Zeroizing::new([0u8; 32]);
            self.secrets = Default::default();
        }
        self.finish_wipe()
    }

    /// Delete what a wipe leaves to delete; what is gone already is fine.
    fn finish_wipe(&self) -> Result<(), StoreError> {
        let gone = |path: &Path, r: std::io::Result<()>| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
            _ => Ok(()),
        };
        let secrets = self.home.join(SECRETS);
        gone(&secrets, fs::remove_file(&secrets))?;
        match self.backend {
            Backend::File => {
                let path = self.home.join(KEY_DIR).join(KEY_FILE);
                gone(&path, fs::remove_file(&path))
            }
            Backend::Os => match keyring_entry(&self.state.store_id)?.delete_credential() {
                Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
                Err(e) => Err(StoreError::NoKeyring(e.to_string())),
            },
        }
    }

    /// Whether this store was wiped.
    pub fn wiped(&self) -> bool {
        self.state.wiped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_home(tag: &str) -> PathBuf {
        let mut r = [0u8; 6];
        OsRng.fill_bytes(&mut r);
        std::env::temp_dir().join(format!(
            "mesh-store-{tag}-{}",
            data_encoding::HEXLOWER.encode(&r)
        ))
    }

    /// A write stopped before its rename (Ctrl-C) leaves a temporary file;
    /// the next open, under the home's lock, removes it and nothing else.
    #[test]
    fn temporaries_left_by_an_interrupted_write_are_removed_at_the_next_open() {
        std::env::set_var("MESH_KEYSTORE", "file");
        let home = tmp_home("tmp");
        drop(Store::open(&home, true).expect("create"));
        std::fs::create_dir_all(home.join("entries")).expect("entries");
        let left = [
            home.join(".manifest-0a1b.json.00aa11bb22cc.tmp"),
            home.join("entries").join(".e-12.json.0123456789ab.tmp"),
        ];
        let kept = [
            home.join("manifest-0a1b.json"),
            home.join("entries").join("e-12.json"),
        ];
        for f in left.iter().chain(&kept) {
            std::fs::write(f, b"").expect("file");
        }
        drop(Store::open(&home, false).expect("open"));
        for f in &left {
            assert!(!f.exists(), "{} is left", f.display());
        }
        for f in &kept {
            assert!(f.exists(), "{} was removed", f.display());
        }
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn a_wipe_interrupted_after_marking_the_state_is_finished_at_the_next_open() {
        std::env::set_var("MESH_KEYSTORE", "file");
        let home = tmp_home("wipe");
        {
            let mut s = Store::open(&home, true).expect("create");
            let secrets = Secrets {
                device_seed: Some(Zeroizing::new("Zsecret".into())),
                ..Secrets::default()
            };
            s.save_secrets(&secrets).expect("save");
            // The crash: the state says wiped, the key and the sealed file remain.
            s.state_mut().wiped = true;
            s.save_state().expect("state");
        }
        assert!(home.join(KEY_DIR).join(KEY_FILE).exists() && home.join(SECRETS).exists());
        let mut s = Store::open(&home, false).expect("open a wiped store");
        assert!(
            !home.join(KEY_DIR).join(KEY_FILE).exists(),
            "the key is deleted"
        );
        assert!(
            !home.join(SECRETS).exists(),
            "the sealed secrets are deleted"
        );
        assert!(s.secrets().expect("secrets").device_seed.is_none());
        // Wiping again is harmless.
        s.wipe_secrets().expect("again");
        drop(s);
        let _ = fs::remove_dir_all(&home);
    }

    #[test]
    fn file_backend_round_trip_and_modes() {
        std::env::set_var("MESH_KEYSTORE", "file");
        let home = tmp_home("rt");
        {
            let mut s = Store::open(&home, true).expect("create");
            let secrets = Secrets {
                device_seed: Some(Zeroizing::new("Zsecret".into())),
                ..Secrets::default()
            };
            s.save_secrets(&secrets).expect("save");
        }
        let s = Store::open(&home, false).expect("open");
        assert_eq!(s.backend(), Backend::File);
        assert_eq!(
            s.secrets()
                .expect("read")
                .device_seed
                .as_deref()
                .map(String::as_str),
            Some("Zsecret")
        );
        #[cfg(unix)]
        {
            let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&home), 0o700);
            assert_eq!(mode(&home.join(KEY_DIR)), 0o700);
            assert_eq!(mode(&home.join(KEY_DIR).join(KEY_FILE)), 0o600);
            assert_eq!(mode(&home.join(SECRETS)), 0o600);
        }
        // The secrets file holds no plaintext.
        let raw = fs::read(home.join(SECRETS)).expect("raw");
        assert!(!raw.windows(7).any(|w| w == b"Zsecret"));
        drop(s);
        // A tampered secrets file is refused with its name, and nothing is lost.
        let mut sealed: SealedFile = serde_json::from_slice(&raw).expect("sealed");
        sealed.ciphertext[0] ^= 1;
        fs::write(
            home.join(SECRETS),
            serde_json::to_vec(&sealed).expect("json"),
        )
        .expect("write");
        let s = Store::open(&home, false).expect("open");
        let err = s.secrets().expect_err("tampered");
        assert!(err.to_string().contains("secrets.enc is damaged"), "{err}");
        let _ = fs::remove_dir_all(&home);
    }

    #[test]
    fn missing_store_and_loose_permissions() {
        let home = tmp_home("none");
        assert!(matches!(
            Store::open(&home, false),
            Err(StoreError::NoStore(_))
        ));
        #[cfg(unix)]
        {
            std::env::set_var("MESH_KEYSTORE", "file");
            Store::open(&home, true).expect("create");
            let key = home.join(KEY_DIR).join(KEY_FILE);
            fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = Store::open(&home, false).expect_err("loose");
            assert!(matches!(err, StoreError::Permissions { .. }), "{err}");
            assert!(err.hint().expect("hint").contains("chmod"));
        }
        let _ = fs::remove_dir_all(&home);
    }
}
