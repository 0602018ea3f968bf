//! `mesh agent wsl-bridge`: `SSH_AUTH_SOCK` inside WSL reaching the Mesh
//! agent on Windows (issue 26).
//!
//! The bridge listens on a Unix socket; each connection runs the relay
//! command (by default `mesh.exe ssh-agent-relay`, which WSL's interop
//! starts on Windows, where it opens the agent's named pipe) and copies
//! bytes both ways between the connection and the relay's standard input
//! and output. Like the relay, it is a byte pipe and parses nothing: the
//! agent at the far end checks every frame.
//!
//! Who may use it: the socket is 0600 in a directory only this user can
//! write, and a connection from another uid is closed unanswered (as the
//! agent's own socket does); the Windows side is guarded by the pipe's
//! ACL and the agent's client check. Connections are capped (each one is
//! a Windows process); past the cap a new one is closed with a log line.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

use crate::daemon::my_uid;

/// The relay WSL's interop runs on Windows.
pub const DEFAULT_RELAY: &str = "mesh.exe ssh-agent-relay";

/// Connections served at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: u16 = 64;

/// The socket's name in its directory.
const SOCKET_NAME: &str = "wsl-ssh-agent.sock";

/// How long a relay may still deliver answers after its client closed,
/// before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The longest line of a relay's standard error passed on (the rest of
/// a longer line is cut).
const MAX_LOG_LINE: u64 = 4096;

/// What went wrong, and whose doing it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WslBridgeError {
    /// `--relay` is not a command line (the user's).
    #[error("--relay {0:?} is not a command line: {1}")]
    BadRelay(String, &'static str),
    /// The relay's program is not there (the installation's).
    #[error("the relay command `{0}` was not found")]
    RelayMissing(String),
    /// The socket's directory could be changed by someone else.
    #[error("{0} is not a directory only you can write (owner uid {1}, mode {2:o}): another user could replace the socket")]
    UnsafeDir(PathBuf, u32, u32),
    /// The socket path is another user's.
    #[error("{0} belongs to uid {1}, not to you")]
    NotOwned(PathBuf, u32),
    /// Something answers on the socket path already.
    #[error("something answers on {0} already (another bridge or agent)")]
    Live(PathBuf),
    /// The socket path is a file that is no socket.
    #[error("{0} exists and is not a socket")]
    NotSocket(PathBuf),
    /// A socket, directory, signal or process.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl WslBridgeError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            WslBridgeError::BadRelay(..) => {
                "give --relay as a shell would split it, e.g. --relay 'mesh.exe ssh-agent-relay'".into()
            }
            WslBridgeError::RelayMissing(c) => format!(
                "install Mesh for Windows and put mesh.exe on the Windows PATH (WSL's interop finds it there), or name the relay with --relay (now `{c}`)"
            ),
            WslBridgeError::UnsafeDir(..) | WslBridgeError::NotOwned(..) => {
                "choose a --socket in a directory you own that no one else can write (the default is one)".into()
            }
            WslBridgeError::Live(_) => {
                "stop the bridge that serves it, or choose another --socket".into()
            }
            WslBridgeError::NotSocket(_) => "remove it, or choose another --socket".into(),
            WslBridgeError::Io { .. } => return None,
        })
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> WslBridgeError {
    let what = what.into();
    move |source| WslBridgeError::Io { what, source }
}

/// How the bridge runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The relay's program and arguments.
    pub relay: Vec<String>,
    /// Connections served at once.
    pub max_connections: usize,
}

/// The default socket: `$XDG_RUNTIME_DIR/mesh/wsl-ssh-agent.sock`, else
/// `<home>/run/wsl-ssh-agent.sock`.
pub fn default_socket(home: &Path) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .map(|d| d.join("mesh"))
        .unwrap_or_else(|| home.join("run"));
    dir.join(SOCKET_NAME)
}

/// `--relay`'s words, split as a POSIX shell splits them (quotes and
/// backslashes; no variables, globs or operators).
pub fn split_command(line: &str) -> Result<Vec<String>, WslBridgeError> {
    let bad = |why| WslBridgeError::BadRelay(line.to_string(), why);
    let words =
        shlex::split(line).ok_or_else(|| bad("an unclosed quote or a trailing backslash"))?;
    if words.is_empty() {
        return Err(bad("it is empty"));
    }
    if words.iter().any(|w| w.contains('\0')) {
        return Err(bad("it contains a NUL byte"));
    }
    Ok(words)
}

/// The relay's program, found as the bridge will run it: a path with a
/// `/` as it is, else the first match on `$PATH`.
pub fn find_relay(program: &str) -> Result<PathBuf, WslBridgeError> {
    let missing = || WslBridgeError::RelayMissing(program.to_string());
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if p.is_file() { Ok(p) } else { Err(missing()) };
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .ok_or_else(missing)
}

/// Bind `socket` as the bridge's: its directory made 0700 where missing,
/// and refused where someone else could write it; an existing socket
/// replaced only if it is this user's and nothing answers on it; the new
/// one 0600 from the start (umask 0177).
pub fn bind(socket: &Path) -> Result<std::os::unix::net::UnixListener, WslBridgeError> {
    let dir = match socket.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(format!("creating {}", dir.display())))?;
    }
    let m = std::fs::metadata(&dir).map_err(io(dir.display().to_string()))?;
    if !m.is_dir() || m.uid() != my_uid() || m.mode() & 0o022 != 0 {
        return Err(WslBridgeError::UnsafeDir(dir, m.uid(), m.mode() & 0o7777));
    }
    if let Ok(m) = std::fs::symlink_metadata(socket) {
        if m.uid() != my_uid() {
            return Err(WslBridgeError::NotOwned(socket.to_path_buf(), m.uid()));
        }
        if !m.file_type().is_socket() {
            return Err(WslBridgeError::NotSocket(socket.to_path_buf()));
        }
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(_) => return Err(WslBridgeError::Live(socket.to_path_buf())),
            // Stale: left by a bridge that did not stop cleanly.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(socket)
                    .map_err(io(format!("removing the stale {}", socket.display())))?;
            }
            Err(e) => return Err(io(format!("checking {}", socket.display()))(e)),
        }
    }
    use rustix::fs::Mode;
    let old = rustix::process::umask(Mode::from_raw_mode(0o177));
    let l = std::os::unix::net::UnixListener::bind(socket);
    rustix::process::umask(old);
    let l = l.map_err(io(format!("binding {}", socket.display())))?;
    l.set_nonblocking(true).map_err(io("socket"))?;
    Ok(l)
}

/// Removes the socket when the bridge stops.
#[derive(Debug)]
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Serve `listener` (bound at `socket`) until SIGTERM, SIGHUP or SIGINT,
/// then remove the socket.
pub fn serve(
    listener: std::os::unix::net::UnixListener,
    socket: &Path,
    config: Config,
) -> Result<(), WslBridgeError> {
    let cleanup = Cleanup(socket.to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("starting the runtime"))?;
    let r = rt.block_on(async move {
        let listener = tokio::net::UnixListener::from_std(listener).map_err(io("socket"))?;
        accept_loop(&listener, Arc::new(config)).await
    });
    drop(cleanup);
    rt.shutdown_background();
    r
}

async fn accept_loop(
    listener: &tokio::net::UnixListener,
    config: Arc<Config>,
) -> Result<(), WslBridgeError> {
    let mut term = signal(SignalKind::terminate()).map_err(io("signal"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(io("signal"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io("signal"))?;
    let uid = my_uid();
    let limit = Arc::new(Semaphore::new(config.max_connections));
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => accept(stream, uid, &limit, &config),
                // Transient (EMFILE, ECONNABORTED): keep serving.
                Err(e) => log(&format!("accept: {e}")),
            },
            _ = term.recv() => break,
            _ = hup.recv() => break,
            _ = int.recv() => break,
        }
    }
    log("stopping");
    Ok(())
}

/// A line on standard error, named as the bridge's.
fn log(message: &str) {
    eprintln!("mesh agent wsl-bridge: {message}");
}

/// One connection: another user's is closed unanswered; past the cap it
/// is closed with a log line; else its relay starts.
fn accept(stream: UnixStream, uid: u32, limit: &Arc<Semaphore>, config: &Arc<Config>) {
    let peer = stream.peer_cred().map(|c| c.uid()).ok();
    if peer != Some(uid) {
        log(&format!("refused a connection from uid {peer:?}"));
        return;
    }
    let Ok(permit) = limit.clone().try_acquire_owned() else {
        log(&format!(
            "refused a connection: {} already open (the most served at once)",
            config.max_connections
        ));
        return;
    };
    let config = config.clone();
    tokio::spawn(async move {
        connection(stream, &config).await;
        drop(permit);
    });
}

/// Run the relay for one connection and copy bytes both ways until either
/// side closes; the relay is killed when the connection ends.
async fn connection(stream: UnixStream, config: &Config) {
    let mut child = match spawn_relay(&config.relay) {
        Ok(c) => c,
        Err(e) => {
            log(&format!("{e}"));
            if let Some(h) = e.hint() {
                log(&format!("hint: {h}"));
            }
            return;
        }
    };
    let pid = child.id().unwrap_or(0);
    let (Some(mut to_relay), Some(mut from_relay), Some(err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill().await;
        return;
    };
    let logger = tokio::spawn(forward_stderr(err, pid));
    let (mut client_r, mut client_w) = stream.into_split();
    {
        let down = async {
            let _ = tokio::io::copy(&mut from_relay, &mut client_w).await;
        };
        tokio::pin!(down);
        let up = async {
            let _ = tokio::io::copy(&mut client_r, &mut to_relay).await;
            // The relay sees its standard input end.
            let _ = to_relay.shutdown().await;
            drop(to_relay);
        };
        tokio::select! {
            () = &mut down => {}
            () = up => {
                // The client closed: answers still in flight may pass, briefly.
                let _ = tokio::time::timeout(CLOSE_GRACE, down).await;
            }
        }
    }
    let _ = client_w.shutdown().await;
    let _ = child.start_kill();
    match child.wait().await {
        Ok(s) if !s.success() && s.code().is_some() => {
            log(&format!("relay {pid} exited with {s}"));
        }
        _ => {}
    }
    let _ = logger.await;
}

/// Start the relay with its three standard streams piped.
fn spawn_relay(relay: &[String]) -> Result<Child, WslBridgeError> {
    let (program, args) = relay
        .split_first()
        .ok_or_else(|| WslBridgeError::BadRelay(String::new(), "it is empty"))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => WslBridgeError::RelayMissing(relay.join(" ")),
            _ => io(format!("starting the relay `{}`", relay.join(" ")))(e),
        })
}

/// The relay's standard error, line by line, on the bridge's with the
/// relay named (each line bounded).
async fn forward_stderr(err: impl AsyncRead + Unpin, pid: u32) {
    let mut r = tokio::io::BufReader::new(err);
    loop {
        let mut line = Vec::new();
        let mut bounded = (&mut r).take(MAX_LOG_LINE);
        match bounded.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        log(&format!("relay {pid}: {}", text.trim_end()));
        if !line.ends_with(b"\n") {
            // Skip the rest of an over-long line.
            let mut rest = Vec::new();
            let _ = r.read_until(b'\n', &mut rest).await;
        }
    }
}

/// What `--json` prints once the bridge serves.
pub fn describe(socket: &Path, config: &Config) -> serde_json::Value {
    serde_json::json!({
        "ssh_auth_sock": socket.display().to_string(),
        "relay": config.relay,
        "max_connections": config.max_connections,
        "pid": std::process::id(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_command_lines_split_as_a_shell_splits_them() {
        let ok: &[(&str, &[&str])] = &[
            ("mesh.exe ssh-agent-relay", &["mesh.exe", "ssh-agent-relay"]),
            (
                "  wine64   'C:\\Program Files\\Mesh\\mesh.exe'  ssh-agent-relay ",
                &[
                    "wine64",
                    "C:\\Program Files\\Mesh\\mesh.exe",
                    "ssh-agent-relay",
                ],
            ),
            (
                "\"/opt/my mesh/mesh\" ssh-agent-relay --socket /run/a\\ b.sock",
                &[
                    "/opt/my mesh/mesh",
                    "ssh-agent-relay",
                    "--socket",
                    "/run/a b.sock",
                ],
            ),
            ("relay ''", &["relay", ""]),
        ];
        for (line, words) in ok {
            assert_eq!(split_command(line).expect(line), *words, "{line}");
        }
        for bad in [
            "",
            "   ",
            "mesh.exe 'unclosed",
            "mesh.exe \"unclosed",
            "x \\",
        ] {
            let e = split_command(bad).expect_err(bad);
            assert!(matches!(e, WslBridgeError::BadRelay(..)), "{bad}: {e}");
            assert!(e.hint().is_some());
        }
    }

    #[test]
    fn a_missing_relay_is_named_with_a_hint() {
        let e = find_relay("/nonexistent/mesh.exe").expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/mesh.exe"), "{e}");
        assert!(e.hint().expect("hint").contains("mesh.exe"));
        assert!(find_relay("sh").is_ok());
    }

    #[test]
    fn the_default_socket_is_in_the_runtime_directory_or_the_home() {
        let s = default_socket(Path::new("/home/x/.mesh"));
        assert!(s.ends_with("wsl-ssh-agent.sock"), "{}", s.display());
    }
}
