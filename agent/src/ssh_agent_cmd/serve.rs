//! The serving side of `mesh ssh-agent`: bind the socket as ssh-agent
//! does (umask 0177, never over an existing file) and serve it until a
//! signal, the end of COMMAND, or a revocation.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mesh_ssh::agent::Agent;
use mesh_ssh::options::AgentOptions;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

use super::{io, SshAgentError};
use crate::daemon::{MeshFeed, MAX_CONNECTIONS};

/// How the agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeMode {
    /// `-d`: in the foreground, telling on standard error what it does.
    Debug,
    /// `-D`: in the foreground, quietly.
    Foreground,
    /// The background process of a daemonized agent; with COMMAND, the
    /// pid of the process that runs it (the agent exits when it does).
    Child {
        /// COMMAND's pid.
        parent: Option<u32>,
    },
}

/// What the agent removes when it exits: its socket, and the private
/// directory it made for it.
#[derive(Debug)]
pub struct Cleanup {
    /// The socket.
    pub socket: PathBuf,
    /// The directory made for it (`None` with `-a`).
    pub dir: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Bind `path` with mode 0600 from the start (umask 0177). An existing
/// file is left alone and refused, as ssh-agent does.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, SshAgentError> {
    use rustix::fs::Mode;
    let what = format!("binding {}", path.display());
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(io(what)(std::io::ErrorKind::AddrInUse.into()));
    }
    let old = rustix::process::umask(Mode::from_raw_mode(0o177));
    let l = std::os::unix::net::UnixListener::bind(path);
    rustix::process::umask(old);
    let l = l.map_err(io(what))?;
    l.set_nonblocking(true).map_err(io("socket"))?;
    Ok(l)
}

/// Serve `listener` until SIGTERM or SIGHUP (and SIGINT in the
/// foreground), COMMAND's end, or a revocation of the home's device.
/// `ready` is called once the agent holds the home's Mesh keys.
pub fn serve(
    home: &Path,
    listener: std::os::unix::net::UnixListener,
    options: AgentOptions,
    mode: ServeMode,
    cleanup: Cleanup,
    ready: impl FnOnce(),
) -> Result<(), SshAgentError> {
    let parent = match mode {
        ServeMode::Child { parent } => parent,
        _ => None,
    };
    if let Some(p) = parent {
        watch_parent(p)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("starting the runtime"))?;
    let socket = cleanup.socket.clone();
    let served = rt.block_on(async move {
        let listener = tokio::net::UnixListener::from_std(listener).map_err(io("socket"))?;
        let agent = Agent::default().with_options(options).with_log(log_refusal);
        // Where the home has an account, its signatures are logged as
        // `mesh agent`'s are.
        let (agent, written) = match crate::daemon::audit_sink(home) {
            Some((sink, written)) => (agent.with_audit(sink), Some(written)),
            None => (agent, None),
        };
        let agent = Arc::new(agent);
        let feed = MeshFeed::start(home, agent.clone(), Duration::from_secs(5), written).await;
        if mode == ServeMode::Debug {
            let (mesh, _) = agent.count().await;
            eprintln!(
                "mesh ssh-agent: serving {} with {mesh} Mesh identities",
                socket.display()
            );
        }
        ready();
        let reaper = tokio::spawn(crate::daemon::reap(agent.clone()));
        let hosts = crate::ssh_hosts::spawn(home, agent.clone());
        let r = accept_loop(&listener, &agent, mode, parent, feed.as_ref()).await;
        // What was signed up to now is logged before the agent goes.
        tokio::task::block_in_place(|| agent.flush_audit());
        reaper.abort();
        if let Some(h) = hosts {
            h.abort();
        }
        drop(feed);
        r
    });
    drop(cleanup);
    // A long-poll of the sync may still wait in a blocking thread.
    rt.shutdown_background();
    served
}

/// A refused key (DSA, a provider outside `-P`) on standard error, as
/// ssh-agent logs it.
fn log_refusal(message: &str) {
    eprintln!("mesh ssh-agent: {message}");
}

/// Exit with COMMAND: the kernel sends SIGTERM when the process that
/// started this one exits (Linux), and the accept loop checks the parent
/// each second besides. A parent already gone means exit now.
fn watch_parent(parent: u32) -> Result<(), SshAgentError> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
        .map_err(|e| io("prctl(PR_SET_PDEATHSIG)")(e.into()))?;
    if !parent_is(parent) {
        return Err(SshAgentError::Start("COMMAND already exited".into()));
    }
    Ok(())
}

fn parent_is(pid: u32) -> bool {
    rustix::process::getppid().map(|p| p.as_raw_nonzero().get().unsigned_abs()) == Some(pid)
}

async fn accept_loop(
    listener: &tokio::net::UnixListener,
    agent: &Arc<Agent>,
    mode: ServeMode,
    parent: Option<u32>,
    feed: Option<&MeshFeed>,
) -> Result<(), SshAgentError> {
    let mut term = signal(SignalKind::terminate()).map_err(io("signal"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(io("signal"))?;
    // Registered in every mode: in the background SIGINT is ignored, as
    // ssh-agent ignores it there.
    let mut int = signal(SignalKind::interrupt()).map_err(io("signal"))?;
    let foreground = !matches!(mode, ServeMode::Child { .. });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let revoked = async {
        match feed {
            Some(f) => f.stopped().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(revoked);
    let uid = crate::daemon::my_uid();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((stream, _)) = r else { continue };
                accept(stream, agent, uid, &limit, mode == ServeMode::Debug);
            }
            _ = term.recv() => break,
            _ = hup.recv() => break,
            Some(()) = int.recv() => if foreground { break },
            _ = tick.tick(), if parent.is_some() => {
                if !parent.is_some_and(parent_is) { break }
            }
            _ = &mut revoked => break,
        }
    }
    if mode == ServeMode::Debug {
        eprintln!("mesh ssh-agent: exiting");
    }
    Ok(())
}

/// One connection: another user's gets nothing, not even an answer (root
/// is refused too: Mesh is stricter than ssh-agent here).
fn accept(
    stream: tokio::net::UnixStream,
    agent: &Arc<Agent>,
    uid: u32,
    limit: &Arc<Semaphore>,
    debug: bool,
) {
    let peer = stream.peer_cred().map(|c| c.uid()).ok();
    if peer != Some(uid) {
        if debug {
            eprintln!("mesh ssh-agent: refused a connection from uid {peer:?}");
        }
        return;
    }
    let Ok(permit) = limit.clone().try_acquire_owned() else {
        return;
    };
    if debug {
        eprintln!("mesh ssh-agent: new connection");
    }
    let agent = agent.clone();
    tokio::spawn(async move {
        mesh_ssh::server::serve_unix(stream, agent).await;
        drop(permit);
        if debug {
            eprintln!("mesh ssh-agent: connection closed");
        }
    });
}

/// Whether `path` is a directory this user owns with no access for others.
pub(crate) fn is_private_dir(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_dir() && m.uid() == crate::daemon::my_uid() && m.permissions().mode() & 0o077 == 0
    })
}
