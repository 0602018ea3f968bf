//! The agent daemon: one tokio process per home that serves the
//! ssh-agent socket and a control socket for the CLI, and keeps syncing
//! with the portal. New keys, rotations and revocations take effect
//! without a restart; a revoked device drops its Mesh keys at once.
//!
//! Sockets are created 0600 in a 0700 directory private to the home
//! (`$XDG_RUNTIME_DIR/mesh/<home hash>/`, else `<home>/run/`, else, when
//! that path is too long for a socket, `/tmp/mesh-<uid>/<home hash>/`), and
//! a connection from another user is closed unanswered.
//! On Windows the same two endpoints are named pipes
//! (`\\.\pipe\openssh-ssh-agent`, where Windows' OpenSSH looks, or
//! `MESH_SSH_AGENT_PIPE`), for this user only (daemon/endpoint.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_ssh::agent::Agent;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, RwLock, Semaphore};

use mesh_account::store::Store;
use mesh_account::Membership;

/// Most ssh-agent connections served at once.
pub const MAX_CONNECTIONS: usize = 256;

/// Errors of the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A file or socket.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Already running.
    #[error("an agent is already running for this home (pid {0})")]
    Running(u32),
    /// Not running.
    #[error("no agent is running for this home")]
    NotRunning,
    /// The runtime directory is not private.
    #[error("{0} is not a private directory of this user")]
    Unsafe(PathBuf),
    /// Did not come up.
    #[error("the agent did not start: {0}")]
    Start(String),
    /// Exited at once, saying why.
    #[error("the agent did not start: {error} (it exited with {status})")]
    Exited {
        /// Its exit status.
        status: String,
        /// Its error.
        error: String,
        /// Its hint.
        hint: Option<String>,
    },
    /// Did not exit.
    #[error("the agent did not stop: {0}")]
    Stop(String),
    /// The ssh-agent pipe is another program's (Windows).
    #[error("the pipe {0} is already served by another program")]
    PipeTaken(String),
    /// This home was revoked from its account.
    #[error("this device was revoked from {0}; its keys were wiped and the agent will not start")]
    Revoked(String),
}

impl DaemonError {
    /// What the user can do.
    pub fn hint(&self) -> Option<String> {
        match self {
            DaemonError::Running(_) => {
                Some("`mesh agent stop` stops it; `mesh agent env` prints its socket".into())
            }
            DaemonError::NotRunning => Some("start it with `mesh agent start`".into()),
            DaemonError::Stop(_) => {
                Some("see the agent's log (`mesh agent status`); `kill` it by its pid".into())
            }
            DaemonError::Revoked(_) => {
                Some("join the account again from a new home (`mesh device request` with another --home)".into())
            }
            DaemonError::PipeTaken(_) => Some(pipe_hint()),
            DaemonError::Exited { hint, .. } => hint.clone(),
            DaemonError::Start(_) => {
                Some("see the log in the agent's runtime directory (`mesh agent status`)".into())
            }
            _ => None,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Where a home's agent keeps its sockets.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The private runtime directory.
    pub dir: PathBuf,
    /// `SSH_AUTH_SOCK`.
    pub ssh: PathBuf,
    /// The CLI's control socket.
    pub control: PathBuf,
    /// The daemon's log (started with `mesh agent start`).
    pub log: PathBuf,
}

/// This process's real user id, from the kernel: not from the ownership of
/// `/proc/self`, whose files belong to root since `mesh` is not dumpable
/// (agent/src/hardening.rs; only the directory keeps the user's uid).
pub(crate) fn my_uid() -> u32 {
    mesh_plugins::platform::my_uid()
}

/// Who else serves the pipe: Windows' own agent service, when its process
/// runs, is named.
fn pipe_hint() -> String {
    let mut hint = String::new();
    if windows_ssh_agent_runs() {
        hint.push_str("Windows' OpenSSH Authentication Agent service (ssh-agent.exe) is running: stop and disable it (`Stop-Service ssh-agent; Set-Service ssh-agent -StartupType Disabled` as administrator); ");
    }
    hint.push_str("`mesh agent stop` stops another Mesh agent; MESH_SSH_AGENT_PIPE=\\\\.\\pipe\\NAME serves another pipe");
    hint
}

#[cfg(windows)]
fn windows_ssh_agent_runs() -> bool {
    let mut sys = sysinfo::System::new();
    sys.refresh_processes(sysinfo::ProcessesToUpdate::All, true);
    let found = sys
        .processes_by_exact_name("ssh-agent.exe".as_ref())
        .next()
        .is_some();
    found
}

#[cfg(not(windows))]
fn windows_ssh_agent_runs() -> bool {
    false
}

fn private_dir(path: &Path) -> Result<(), DaemonError> {
    let mut b = mesh_plugins::platform::private_dir_builder();
    b.recursive(true)
        .create(path)
        .map_err(io(format!("creating {}", path.display())))?;
    let m = std::fs::symlink_metadata(path).map_err(io(path.display().to_string()))?;
    if !m.is_dir() || !mesh_plugins::platform::owned_private(&m) {
        return Err(DaemonError::Unsafe(path.to_path_buf()));
    }
    Ok(())
}

/// The runtime paths of `home`'s agent.
pub fn paths(home: &Path) -> Paths {
    let canon = home.canonicalize().unwrap_or_else(|_| home.to_path_buf());
    let h = sha2::Sha256::digest(canon.as_os_str().as_encoded_bytes());
    let tag = data_encoding::HEXLOWER.encode(&h[..6]);
    // $XDG_RUNTIME_DIR/mesh/<tag>, else <home>/run; where that path is too
    // long for a Unix socket (sun_path is 108 bytes), a private directory
    // under the system temp directory.
    let dir = match std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
    {
        Some(d) => d.join("mesh").join(&tag),
        None => canon.join("run"),
    };
    let dir = if dir.join("ssh-agent.sock").as_os_str().len() < 100 {
        dir
    } else {
        std::env::temp_dir()
            .join(format!("mesh-{}", my_uid()))
            .join(&tag)
    };
    #[cfg(windows)]
    return Paths {
        ssh: std::env::var_os("MESH_SSH_AGENT_PIPE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"\\.\pipe\openssh-ssh-agent")),
        control: PathBuf::from(format!(r"\\.\pipe\mesh-{tag}-control")),
        log: dir.join("agent.log"),
        dir,
    };
    #[cfg(not(windows))]
    Paths {
        ssh: dir.join("ssh-agent.sock"),
        control: dir.join("control.sock"),
        log: dir.join("agent.log"),
        dir,
    }
}

/// What `mesh agent status` shows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// Daemon pid.
    pub pid: u32,
    /// The ssh-agent socket.
    pub ssh_auth_sock: String,
    /// The account's address.
    pub account: Option<String>,
    /// This device's UDF.
    pub device: Option<String>,
    /// Mesh identities held (key and certificate count separately).
    pub mesh_keys: usize,
    /// Keys added with ssh-add.
    pub added_keys: usize,
    /// Seconds since the Unix epoch of the last successful sync.
    pub last_sync: Option<u64>,
    /// Whether the portal answered the last attempt.
    pub portal_reachable: Option<bool>,
    /// The last sync error (or a channel's warning), while it lasts.
    pub last_error: Option<String>,
    /// When it happened (seconds since the Unix epoch).
    #[serde(default)]
    pub last_error_at: Option<u64>,
    /// The account's administrator epoch this device follows.
    #[serde(default)]
    pub epoch: Option<u32>,
    /// This device was revoked.
    pub revoked: bool,
    /// Signatures go to the device's audit log (`mesh audit`).
    #[serde(default)]
    pub audit: bool,
}

/// How the agent runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Time between syncs with the portal.
    pub interval: Duration,
    /// Log every signature decision in `<home>/audit.log`.
    pub audit: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ControlRequest {
    command: String,
}

mod audit;
mod endpoint;
mod sync;
use sync::{forwarding, identities, sync_loop};

struct Shared {
    agent: Arc<Agent>,
    status: RwLock<Status>,
    sync_now: Notify,
    synced: Notify,
    stop: Notify,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn control<S: AsyncRead + AsyncWrite + Unpin>(stream: S, shared: Arc<Shared>) {
    let (r, mut w) = tokio::io::split(stream);
    let mut line = String::new();
    let mut reader = BufReader::new(r.take(4096));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let Ok(req) = serde_json::from_str::<ControlRequest>(&line) else {
        let _ = w.write_all(b"{\"error\":\"bad request\"}\n").await;
        return;
    };
    let answer = match req.command.as_str() {
        "status" => {
            let (mesh, added) = shared.agent.count().await;
            let mut s = shared.status.read().await.clone();
            s.mesh_keys = mesh;
            s.added_keys = added;
            serde_json::to_value(&s).unwrap_or_default()
        }
        "sync" => {
            let done = shared.synced.notified();
            shared.sync_now.notify_one();
            done.await;
            serde_json::to_value(&*shared.status.read().await).unwrap_or_default()
        }
        "stop" => {
            shared.stop.notify_waiters();
            serde_json::json!({"stopping": true})
        }
        _ => serde_json::json!({"error": "unknown command"}),
    };
    let _ = w.write_all(format!("{answer}\n").as_bytes()).await;
}

/// A revoked home serves nothing: refuse to start.
fn refuse_revoked(home: &Path) -> Result<(), DaemonError> {
    let Ok(store) = Store::open(home, false) else {
        return Ok(());
    };
    match mesh_account::account(&store) {
        Ok(a) if a.membership == Membership::Revoked => Err(DaemonError::Revoked(a.address)),
        _ => Ok(()),
    }
}

/// Why no agent answers for `home`: a revoked home's agent wiped it and
/// exited; otherwise `e` as it is.
pub fn why_not_running(home: &Path, e: DaemonError) -> DaemonError {
    match e {
        DaemonError::NotRunning => refuse_revoked(home).err().unwrap_or(e),
        e => e,
    }
}

/// What `home` holds now: the Mesh identities and the account's
/// forwarding policy, its account's address and the device's UDF (all
/// empty without a store or an account).
struct Loaded {
    ids: Vec<mesh_ssh::agent::MeshIdentity>,
    forwarding: Option<mesh_ssh::forward::ForwardPolicy>,
    account: Option<String>,
    device: Option<String>,
}

fn load(home: &Path) -> Loaded {
    match Store::open(home, false) {
        Ok(s) => {
            let a = mesh_account::account(&s).ok();
            Loaded {
                ids: a
                    .as_ref()
                    .and_then(|a| identities(&s, a).ok())
                    .unwrap_or_default(),
                forwarding: a.as_ref().and_then(forwarding),
                account: a.map(|a| a.address),
                device: s.state().device.as_ref().map(|d| d.udf.clone()),
            }
        }
        Err(_) => Loaded {
            ids: Vec::new(),
            forwarding: None,
            account: None,
            device: None,
        },
    }
}

/// The Mesh side of an agent `mesh ssh-agent` runs: where the home has an
/// account, its device's key and certificate, kept current by the same
/// sync loop as `mesh agent run`'s (no control socket, no home lock: the
/// store's own lock orders it with other `mesh` processes).
pub struct MeshFeed {
    shared: Arc<Shared>,
    sync: tokio::task::JoinHandle<()>,
    uploads: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for MeshFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshFeed").finish_non_exhaustive()
    }
}

impl MeshFeed {
    /// Load `home`'s Mesh identities into `agent` and keep syncing them;
    /// `None` (and nothing loaded) when the home has no account. Call
    /// within a tokio runtime.
    pub async fn start(
        home: &Path,
        agent: Arc<Agent>,
        interval: Duration,
        audit: Option<Arc<Notify>>,
    ) -> Option<MeshFeed> {
        refuse_revoked(home).ok()?;
        let Loaded {
            ids: initial,
            forwarding,
            account,
            device,
        } = load(home);
        account.as_ref()?;
        agent.set_mesh_identities(initial).await;
        agent.set_forwarding(forwarding).await;
        let shared = Arc::new(Shared {
            agent,
            status: RwLock::new(Status {
                pid: std::process::id(),
                account,
                device,
                ..Status::default()
            }),
            sync_now: Notify::new(),
            synced: Notify::new(),
            stop: Notify::new(),
        });
        let sync = tokio::spawn(sync_loop(home.to_path_buf(), shared.clone(), interval));
        let uploads = audit.map(|written| {
            tokio::spawn(audit::upload_loop(
                home.to_path_buf(),
                written,
                shared.clone(),
            ))
        });
        Some(MeshFeed {
            shared,
            sync,
            uploads,
        })
    }

    /// Resolves when the agent must stop serving (this device was revoked
    /// and its keys wiped).
    pub async fn stopped(&self) {
        self.shared.stop.notified().await
    }
}

impl Drop for MeshFeed {
    fn drop(&mut self) {
        self.shared.stop.notify_waiters();
        self.sync.abort();
        if let Some(u) = &self.uploads {
            u.abort();
        }
    }
}

/// The audit sink of an agent serving `home`'s Mesh keys, and what its
/// writer notifies; `None` for a home without an account (a plain agent
/// logs nothing) or whose log another agent writes (said in the log).
pub fn audit_sink(home: &Path) -> Option<(Arc<dyn mesh_ssh::audit::AuditSink>, Arc<Notify>)> {
    let store = mesh_account::store::Store::open(home, false).ok()?;
    mesh_account::account(&store).ok()?;
    let written = Arc::new(Notify::new());
    audit::start(home, written.clone()).map(|sink| (sink, written))
}

/// Serve until stopped (SIGTERM, SIGINT or `mesh agent stop`).
pub fn run(home: &Path, opts: Options) -> Result<(), DaemonError> {
    let interval = opts.interval;
    refuse_revoked(home)?;
    let p = paths(home);
    private_dir(&p.dir)?;
    if let Ok(s) = query(home, "status") {
        return Err(DaemonError::Running(s.pid));
    }
    // One agent per home, wherever its sockets are: a lock held for life.
    let lock_path = home.join("agent.lock");
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io(format!("opening {}", lock_path.display())))?;
    if lock.try_lock().is_err() {
        let pid = std::fs::read_to_string(&lock_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        return Err(DaemonError::Running(pid));
    }
    {
        use std::io::{Seek, Write};
        let _ = lock.set_len(0);
        let _ = lock.seek(std::io::SeekFrom::Start(0));
        let _ = writeln!(lock, "{}", std::process::id());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("starting the runtime"))?;
    // The keys this device holds locally are served from the first
    // connection on; the portal is asked afterwards.
    let Loaded {
        ids: initial,
        forwarding,
        account: account_name,
        device,
    } = load(home);
    let served = rt.block_on(async move {
        let mut agent = Agent::default().with_log(crate::agent_log::line);
        let written = Arc::new(Notify::new());
        let sink = opts
            .audit
            .then(|| audit::start(home, written.clone()))
            .flatten();
        let audited = sink.is_some();
        if let Some(sink) = sink {
            agent = agent.with_audit(sink);
        }
        let agent = Arc::new(agent);
        agent.set_mesh_identities(initial).await;
        agent.set_forwarding(forwarding).await;
        let ssh = endpoint::bind(&p.ssh)?;
        let ctl = endpoint::bind(&p.control)?;
        let shared = Arc::new(Shared {
            agent,
            status: RwLock::new(Status {
                pid: std::process::id(),
                ssh_auth_sock: p.ssh.display().to_string(),
                account: account_name,
                device,
                audit: audited,
                ..Status::default()
            }),
            sync_now: Notify::new(),
            synced: Notify::new(),
            stop: Notify::new(),
        });
        crate::agent_log::line(&format!(
            "serving SSH_AUTH_SOCK={} (pid {})",
            p.ssh.display(),
            std::process::id()
        ));
        let sync = tokio::spawn(sync_loop(home.to_path_buf(), shared.clone(), interval));
        let uploads = audited.then(|| {
            tokio::spawn(audit::upload_loop(
                home.to_path_buf(),
                written,
                shared.clone(),
            ))
        });
        let reaper = tokio::spawn(reap(shared.agent.clone()));
        let hosts = crate::ssh_hosts::spawn(home, shared.agent.clone());
        serve(&ssh, &ctl, &shared).await;
        // What was signed up to now is logged before the agent goes.
        tokio::task::block_in_place(|| shared.agent.flush_audit());
        shared.stop.notify_waiters();
        sync.abort();
        reaper.abort();
        if let Some(u) = uploads {
            u.abort();
        }
        if let Some(h) = hosts {
            h.abort();
        }
        endpoint::remove(&p.ssh);
        endpoint::remove(&p.control);
        drop(lock);
        // A revoked agent said why it exits (what it wiped).
        if !shared.status.read().await.revoked {
            crate::agent_log::line("stopped");
        }
        Ok(())
    });
    // A long-poll may still be waiting at the portal in a blocking thread:
    // do not wait for it to exit.
    rt.shutdown_background();
    served
}

/// Accept on both sockets until stopped (SIGTERM, SIGINT or a stop request).
async fn serve(ssh: &endpoint::Listener, ctl: &endpoint::Listener, shared: &Arc<Shared>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let term = terminated();
    tokio::pin!(term);
    let stopped = shared.stop.notified();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            r = endpoint::accept(ssh) => {
                let Some((stream, conn)) = r else { continue };
                let Ok(permit) = limit.clone().try_acquire_owned() else { continue };
                let agent = shared.agent.clone();
                tokio::spawn(async move {
                    mesh_ssh::server::serve_conn(stream, agent, conn).await;
                    drop(permit);
                });
            }
            r = endpoint::accept(ctl) => {
                let Some((stream, _)) = r else { continue };
                tokio::spawn(control(stream, shared.clone()));
            }
            _ = &mut stopped => break,
            _ = &mut term => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
}

/// Drop keys whose lifetime ended, when it ends, not at the next request:
/// their secrets leave memory on time (and certificates at their
/// `valid_before`).
pub(crate) async fn reap(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        agent.expire().await;
    }
}

/// Resolves at SIGTERM (Unix); never elsewhere.
async fn terminated() {
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}

/// Ask the running agent of `home`.
pub fn query(home: &Path, command: &str) -> Result<Status, DaemonError> {
    use std::io::{BufRead, Write};
    let p = paths(home);
    let mut s = endpoint::connect(&p.control).map_err(|_| DaemonError::NotRunning)?;
    s.write_all(format!("{}\n", serde_json::json!({"command": command})).as_bytes())
        .map_err(io("control socket"))?;
    let mut line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut line)
        .map_err(io("control socket"))?;
    if command == "stop" {
        return Ok(Status::default());
    }
    serde_json::from_str(&line).map_err(|e| DaemonError::Start(e.to_string()))
}

/// The pid of the agent holding `home`'s lock, if one runs.
fn lock_holder(home: &Path) -> Option<u32> {
    let path = home.join("agent.lock");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .ok()?;
    match f.try_lock() {
        Ok(()) => None,
        Err(_) => Some(
            std::fs::read_to_string(&path)
                .ok()?
                .trim()
                .parse()
                .unwrap_or(0),
        ),
    }
}

/// Start the agent in the background; return once its socket accepts connections.
pub fn start(home: &Path, exe: &Path, opts: Options) -> Result<Status, DaemonError> {
    let interval = opts.interval;
    refuse_revoked(home)?;
    if let Ok(s) = query(home, "status") {
        return Err(DaemonError::Running(s.pid));
    }
    if let Some(pid) = lock_holder(home) {
        return Err(DaemonError::Running(pid));
    }
    let p = paths(home);
    private_dir(&p.dir)?;
    let log =
        mesh_plugins::platform::private_file(std::fs::OpenOptions::new().create(true).append(true))
            .open(&p.log)
            .map_err(io(format!("opening {}", p.log.display())))?;
    let log2 = log.try_clone().map_err(io("log"))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--home")
        .arg(home)
        .args([
            "agent",
            "run",
            "--interval",
            &format!("{}s", interval.as_secs().max(1)),
            "--audit",
            if opts.audit { "on" } else { "off" },
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    detach(&mut cmd);
    let mut child = cmd.spawn().map_err(io("starting the agent"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(s) = query(home, "status") {
            if endpoint::answering(&p.ssh) {
                return Ok(s);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(match child_error(&p.log, log_start) {
                Some((error, hint)) => DaemonError::Exited {
                    status: status.to_string(),
                    error,
                    hint,
                },
                None => DaemonError::Start(format!("it exited with {status}")),
            });
        }
        if std::time::Instant::now() > deadline {
            return Err(DaemonError::Start(
                "its socket did not come up in 15 s".into(),
            ));
        }
        // Waiting for the child's socket to appear.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The error (and hint) the agent printed to its log since `from`, without
/// their prefixes, each cut at 300 characters.
fn child_error(log: &Path, from: u64) -> Option<(String, Option<String>)> {
    let text = std::fs::read(log).ok()?;
    let from = usize::try_from(from).ok()?.min(text.len());
    let tail = String::from_utf8_lossy(&text[from..]);
    let short = |l: &str| l.chars().take(300).collect::<String>();
    let mut lines = tail.lines();
    let error = lines.find_map(|l| l.strip_prefix("mesh: error: ").map(short))?;
    let hint = lines.find_map(|l| l.strip_prefix("hint: ").map(short));
    Some((error, hint))
}

/// Its own process group (a Ctrl-C in the starting shell does not reach
/// it); on Windows, no console of its own and a new process group.
fn detach(cmd: &mut std::process::Command) {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    #[cfg(windows)]
    {
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        std::os::windows::process::CommandExt::creation_flags(
            cmd,
            DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP,
        );
    }
}

/// Stop the running agent; return once its process has exited.
pub fn stop(home: &Path) -> Result<(), DaemonError> {
    let pid = query(home, "status")?.pid;
    query(home, "stop")?;
    let p = paths(home);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid)
        || lock_holder(home).is_some()
        || endpoint::present(&p.control)
        || endpoint::present(&p.ssh)
    {
        if std::time::Instant::now() > deadline {
            return Err(DaemonError::Stop(format!(
                "pid {pid} still runs after 10 s"
            )));
        }
        // Waiting for another process to exit: nothing to be notified by.
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether process `pid` still runs (a zombie has exited). Where there is
/// no /proc, the agent's lock tells instead.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
