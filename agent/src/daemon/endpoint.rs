//! Where the daemon listens, per platform, behind one small face: on Unix
//! two sockets in a private directory, a peer of another uid closed
//! unanswered; on Windows two named pipes whose security descriptor admits
//! only this user, a client of another user (by its process's token)
//! closed unanswered, remote clients refused by the pipe itself.

use std::path::Path;

use mesh_ssh::dest::{Connection, Peer};

use super::{io, DaemonError};

#[cfg(unix)]
mod imp {
    use super::*;

    pub(crate) type Stream = tokio::net::UnixStream;
    pub(crate) type Listener = tokio::net::UnixListener;

    /// Bind `path` (0600); a socket left by a dead agent is replaced, one
    /// that answers means a live agent.
    pub(crate) fn bind(path: &Path) -> Result<Listener, DaemonError> {
        if path.exists() {
            if answering(path) {
                return Err(DaemonError::Running(0));
            }
            std::fs::remove_file(path).map_err(io(format!("removing {}", path.display())))?;
        }
        let l = Listener::bind(path).map_err(io(format!("binding {}", path.display())))?;
        mesh_plugins::platform::set_mode(path, 0o600)
            .map_err(io(format!("chmod {}", path.display())))?;
        Ok(l)
    }

    /// The next connection of this user, with what the kernel says of it.
    pub(crate) async fn accept(l: &Listener) -> Option<(Stream, Connection)> {
        let (stream, _) = l.accept().await.ok()?;
        let cred = stream.peer_cred().ok()?;
        // Another user's process gets nothing, not even an answer.
        if cred.uid() != mesh_plugins::platform::my_uid() {
            return None;
        }
        let conn = Connection::with_peer(Peer {
            uid: cred.uid(),
            pid: cred.pid(),
        });
        Some((stream, conn))
    }

    /// A blocking client of the control socket.
    pub(crate) fn connect(path: &Path) -> std::io::Result<std::os::unix::net::UnixStream> {
        let s = std::os::unix::net::UnixStream::connect(path)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
        Ok(s)
    }

    /// Whether something answers on `path`.
    pub(crate) fn answering(path: &Path) -> bool {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    }

    /// Whether `path` is still there (the agent removes it on exit).
    pub(crate) fn present(path: &Path) -> bool {
        path.exists()
    }

    /// Remove what `bind` made.
    pub(crate) fn remove(path: &Path) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(windows)]
mod imp {
    use super::*;
    use interprocess::local_socket::traits::tokio::Listener as _;
    use interprocess::local_socket::traits::StreamCommon as _;
    use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
    use interprocess::os::windows::local_socket::ListenerOptionsExt as _;
    use interprocess::os::windows::security_descriptor::SecurityDescriptor;

    pub(crate) type Stream = interprocess::local_socket::tokio::Stream;
    pub(crate) type Listener = interprocess::local_socket::tokio::Listener;

    /// The user of process `pid`, by its token (`None` when it cannot be
    /// read: such a client is refused).
    fn user_of(pid: u32) -> Option<sysinfo::Uid> {
        use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
        let pid = Pid::from_u32(pid);
        let mut sys = System::new();
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_user(UpdateKind::Always),
        );
        sys.process(pid)?.user_id().cloned()
    }

    fn me() -> Result<&'static sysinfo::Uid, DaemonError> {
        my_user().ok_or_else(|| DaemonError::Io {
            what: "reading this process's user".into(),
            source: std::io::Error::other("no token"),
        })
    }

    /// Create the first instance of pipe `path`, for this user only: a
    /// second agent, or Windows' own `ssh-agent` service, already holding
    /// the name is named in the error.
    pub(crate) fn bind(path: &Path) -> Result<Listener, DaemonError> {
        // The first-instance flag refuses a second server on Windows; Wine
        // does not enforce it, so a server that answers is asked first.
        if answering(path) {
            return Err(DaemonError::PipeTaken(path.display().to_string()));
        }
        let sid = me()?;
        // Protected DACL: full access for this user's SID, no one else.
        let sddl = format!("D:P(A;;GA;;;{})", &**sid);
        let wide: Vec<u16> = sddl.encode_utf16().chain(std::iter::once(0)).collect();
        let wide = widestring::U16CStr::from_slice(&wide).map_err(|e| DaemonError::Io {
            what: "the pipe's security descriptor".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let sd =
            SecurityDescriptor::deserialize(wide).map_err(io("the pipe's security descriptor"))?;
        let name = path
            .to_fs_name::<GenericFilePath>()
            .map_err(io(format!("pipe name {}", path.display())))?;
        ListenerOptions::new()
            .name(name)
            .security_descriptor(sd)
            .create_tokio()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::AddrInUse => {
                    DaemonError::PipeTaken(path.display().to_string())
                }
                _ => io(format!("creating {}", path.display()))(e),
            })
    }

    /// The next connection of this user.
    pub(crate) async fn accept(l: &Listener) -> Option<(Stream, Connection)> {
        let stream = l.accept().await.ok()?;
        let pid = stream.peer_creds().ok()?.pid()?;
        let user = tokio::task::spawn_blocking(move || user_of(pid))
            .await
            .ok()??;
        // Another user's process gets nothing, not even an answer.
        if Some(&user) != my_user() {
            return None;
        }
        let conn = Connection::with_peer(Peer {
            uid: 0,
            pid: i32::try_from(pid).ok(),
        });
        Some((stream, conn))
    }

    fn my_user() -> Option<&'static sysinfo::Uid> {
        static ME: std::sync::OnceLock<Option<sysinfo::Uid>> = std::sync::OnceLock::new();
        ME.get_or_init(|| user_of(std::process::id())).as_ref()
    }

    /// A blocking client of the control pipe.
    pub(crate) fn connect(path: &Path) -> std::io::Result<interprocess::local_socket::Stream> {
        use interprocess::local_socket::traits::Stream as _;
        interprocess::local_socket::Stream::connect(path.to_fs_name::<GenericFilePath>()?)
    }

    /// Whether something answers on `path`.
    pub(crate) fn answering(path: &Path) -> bool {
        connect(path).is_ok()
    }

    /// A pipe is gone with the process that made it.
    pub(crate) fn present(path: &Path) -> bool {
        answering(path)
    }

    /// Nothing to remove: the pipe goes with its last handle.
    pub(crate) fn remove(_path: &Path) {}
}

pub(crate) use imp::*;
