//! Learned hosts in the device home (issue 25): `<home>/ssh-hosts.json`,
//! the map of [`mesh_ssh::hosts`], shared by every agent of the home
//! (`mesh agent run`, `mesh ssh-agent`) and `mesh ssh hosts`.
//!
//! The file is the truth. Each writer (an agent that learned a host, the
//! CLI pinning or forgetting one) takes `<home>/ssh-hosts.lock`, reads the
//! file, applies its changes and writes it atomically, so that no change
//! is lost between writers. An agent loads it at start, takes the merged
//! map after each write, and reloads it within a second when another
//! process changed it (a pin takes effect without a restart). None of this
//! runs on the sign path: the agent hands its changes over a channel.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mesh_ssh::agent::Agent;
use mesh_ssh::hosts::{HostMap, HostsError, Op};

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
type Seen = Option<(u64, i64, i64)>;

fn seen(home: &Path) -> Seen {
    std::fs::metadata(path(home))
        .ok()
        .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()))
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
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
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
        mesh_account::store::write_atomic(&p, &map.to_json()).map_err(|e| HostsFileError::Io {
            what: format!("writing {}", p.display()),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok((map, seen(home)))
}

/// Keep `agent`'s learned hosts in `home`'s file until aborted: load it,
/// write what the agent learns, reload what others change.
pub fn spawn(home: &Path, agent: Arc<Agent>) -> Option<tokio::task::JoinHandle<()>> {
    if !home.is_dir() {
        return None; // no home: the agent learns in memory only
    }
    let rx = agent.persist_hosts()?;
    Some(tokio::spawn(persist(home.to_path_buf(), agent, rx)))
}

async fn persist(home: PathBuf, agent: Arc<Agent>, mut rx: tokio::sync::mpsc::Receiver<Op>) {
    let mut last: Seen = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let ops = tokio::select! {
            op = rx.recv() => match op {
                Some(op) => {
                    let mut ops = vec![op];
                    while let Ok(o) = rx.try_recv() {
                        ops.push(o);
                    }
                    ops
                }
                None => return,
            },
            _ = tick.tick() => {
                if seen(&home) == last {
                    continue;
                }
                Vec::new()
            }
        };
        let h = home.clone();
        match tokio::task::spawn_blocking(move || update(&h, &ops, true)).await {
            Ok(Ok((map, s))) => {
                agent.set_hosts(map);
                last = s;
            }
            Ok(Err(e)) => {
                crate::agent_log::line(&format!("learned hosts: {e} (hint: {})", e.hint()));
                // Not again each second for the same file.
                last = seen(&home);
            }
            Err(_) => return,
        }
    }
}
