//! Account creation by invitation (`mesh-portal serve --bind invite`,
//! PROTOCOL.md §10.3): the portal's invitation key, in a file only the
//! operator reads, and the codes `mesh-portal invite` makes with it
//! (`mesh_core::invite`). Every process serving one database uses the
//! same key file; a code's nonce is recorded as used in the database.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mesh_core::invite::KEY_LEN;
use zeroize::Zeroizing;

/// The portal's invitation key.
pub struct InviteKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for InviteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteKey([secret elided])")
    }
}

/// Errors with the key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InviteKeyError {
    /// No such file.
    #[error("no invitation key at {0}")]
    Missing(PathBuf),
    /// Readable by others, or not 32 bytes.
    #[error("the invitation key {0} is {1}")]
    Bad(PathBuf, &'static str),
    /// File error.
    #[error("invitation key {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

impl InviteKeyError {
    /// What the operator can do.
    pub fn hint(&self) -> &'static str {
        match self {
            InviteKeyError::Missing(_) => {
                "make it once with `mesh-portal invite --invite-key FILE` (it prints a first code)"
            }
            InviteKeyError::Bad(..) => "make it 0600, owned by the portal's user; or make a new one (old codes stop working)",
            InviteKeyError::Io(..) => "check the path and its permissions",
        }
    }
}

impl InviteKey {
    /// The key, as the code checks take it.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Read the key file: 32 bytes, readable by its owner only.
    pub fn load(file: &Path) -> Result<InviteKey, InviteKeyError> {
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => InviteKeyError::Missing(file.to_path_buf()),
            _ => InviteKeyError::Io(file.to_path_buf(), e),
        };
        let meta = std::fs::metadata(file).map_err(io)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(InviteKeyError::Bad(
                file.to_path_buf(),
                "readable by others",
            ));
        }
        let bytes = Zeroizing::new(std::fs::read(file).map_err(io)?);
        let key: [u8; KEY_LEN] = bytes[..]
            .try_into()
            .map_err(|_| InviteKeyError::Bad(file.to_path_buf(), "not 32 bytes"))?;
        Ok(InviteKey(Zeroizing::new(key)))
    }

    /// Read the key file, making it (0600, once) when there is none.
    pub fn load_or_make(file: &Path) -> Result<InviteKey, InviteKeyError> {
        match InviteKey::load(file) {
            Err(InviteKeyError::Missing(_)) => {}
            other => return other,
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key[..]);
        let io = |e| InviteKeyError::Io(file.to_path_buf(), e);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .map_err(io)?;
        f.write_all(&key[..])
            .and_then(|_| f.sync_all())
            .map_err(io)?;
        Ok(InviteKey(key))
    }

    /// A new code, valid for `valid_for` seconds from `now`.
    pub fn mint(&self, now: u64, valid_for: u64) -> String {
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        mesh_core::invite::mint(&self.0, &nonce, now + valid_for)
    }
}
