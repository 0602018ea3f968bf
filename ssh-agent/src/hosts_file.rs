//! The learned-hosts file in the device home (issue 25):
//! `<home>/ssh-hosts.json`, the map of [`crate::hosts`], shared by every
//! agent of the home and `mesh ssh hosts`. Each writer takes
//! `<home>/ssh-hosts.lock`, reads the file, applies its changes and writes
//! it atomically, so that no change is lost between writers. The agent's
//! side (load at start, reload when another process changed it) is the
//! host's (`mesh_agent::ssh_hosts`).

use std::path::{Path, PathBuf};

use crate::hosts::{HostMap, HostsError, Op};

/// What went wrong with the learned-hosts file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostsFileError {
    /// The file does not parse (someone else's doing: it is only written whole).
    #[error("{}: {source}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        source: HostsError,
    },
    /// Reading, locking or writing.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl HostsFileError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            HostsFileError::Malformed { source, .. } => source.hint().into(),
            HostsFileError::Io { .. } => {
                "check the home directory's permissions and free space".into()
            }
        }
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> HostsFileError {
    move |source| HostsFileError::Io { what, source }
}

/// The file.
pub fn path(home: &Path) -> PathBuf {
    home.join("ssh-hosts.json")
}

/// Which version of the file was read: its inode and modification time.
pub type Seen = Option<(u64, i64, i64)>;

pub fn seen(home: &Path) -> Seen {
    let m = std::fs::metadata(path(home)).ok()?;
    // The inode tells a replaced file on Unix; the time alone elsewhere.
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Some((ino, t.as_secs() as i64, i64::from(t.subsec_nanos())))
}

/// The map in the file (empty when there is none).
pub fn load(home: &Path) -> Result<HostMap, HostsFileError> {
    let p = path(home);
    match std::fs::read(&p) {
        Ok(b) => {
            HostMap::from_json(&b).map_err(|source| HostsFileError::Malformed { path: p, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HostMap::default()),
        Err(e) => Err(io(format!("reading {}", p.display()))(e)),
    }
}

/// Apply `ops` to the file under its lock; the map after, and the version
/// written. A file that does not parse is started over when `repair` (the
/// agent's learning must not stop on it), refused otherwise.
pub fn update(home: &Path, ops: &[Op], repair: bool) -> Result<(HostMap, Seen), HostsFileError> {
    let lock_path = home.join("ssh-hosts.lock");
    let lock = mesh_plugins::platform::private_file(
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true),
    )
    .open(&lock_path)
    .map_err(io(format!("opening {}", lock_path.display())))?;
    lock.lock()
        .map_err(io(format!("locking {}", lock_path.display())))?;
    let mut map = match load(home) {
        Err(HostsFileError::Malformed { .. }) if repair => HostMap::default(),
        r => r?,
    };
    let mut changed = false;
    for op in ops {
        changed |= map.apply(op);
    }
    if changed {
        let p = path(home);
        mesh_plugins::cli::write_atomic(&p, &map.to_json()).map_err(|e| HostsFileError::Io {
            what: format!("writing {}", p.display()),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok((map, seen(home)))
}
