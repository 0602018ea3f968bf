//! Daemonizing without `fork`: the private socket directory, and the
//! background `mesh` process that serves it.

use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{io, SshAgentError};

/// The word the background process writes on its standard output once it
/// serves (or `error: …` when it cannot).
pub const READY: &str = "ready";

/// A fresh `$TMPDIR/ssh-XXXXXXXXXX` directory, mode 0700 (ssh-agent's
/// `mkdtemp`): created, never reused.
pub fn make_socket_dir() -> Result<PathBuf, SshAgentError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let tmp = std::env::temp_dir();
    for _ in 0..16 {
        let mut raw = [0u8; 10];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        let name: String = raw
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect();
        let dir = tmp.join(format!("ssh-{name}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) if super::serve::is_private_dir(&dir) => return Ok(dir),
            Ok(()) => {
                return Err(SshAgentError::Start(format!(
                    "{} is not private after creating it",
                    dir.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(io(format!(
                    "mkdtemp: private socket dir in {}",
                    tmp.display()
                ))(e))
            }
        }
    }
    Err(SshAgentError::Start(
        "no fresh socket directory name".into(),
    ))
}

/// What the background process is told.
#[derive(Debug)]
pub struct ChildArgs<'a> {
    /// The Mesh home.
    pub home: &'a Path,
    /// The socket to bind.
    pub socket: &'a Path,
    /// The directory made for it, removed at exit.
    pub dir: Option<&'a Path>,
    /// COMMAND's pid: exit with it.
    pub parent: Option<u32>,
    /// `-t`, `-E`, `-O`, `-P` as given.
    pub options: Vec<OsString>,
}

/// Start `exe ssh-agent --serve-child …` in the background, in its own
/// process group, standard input and error on /dev/null, in `/`; return
/// its pid once it serves.
pub fn spawn_child(exe: &Path, a: &ChildArgs<'_>) -> Result<u32, SshAgentError> {
    use std::os::unix::process::CommandExt;
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--home")
        .arg(abs(a.home))
        .args(["ssh-agent", "--serve-child", "-a"])
        .arg(abs(a.socket));
    if let Some(d) = a.dir {
        cmd.arg("--socket-dir").arg(abs(d));
    }
    if let Some(p) = a.parent {
        cmd.arg("--parent-pid").arg(p.to_string());
    }
    let mut child = cmd
        .args(&a.options)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        // As ssh-agent's setsid: a Ctrl-C in the starting shell does not reach it.
        .process_group(0)
        .spawn()
        .map_err(io("starting the agent"))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    if line.trim_end() == READY {
        return Ok(child.id());
    }
    let status = child.wait().map_err(io("waiting for the agent"))?;
    let why = line.trim().strip_prefix("error: ").unwrap_or(line.trim());
    Err(SshAgentError::Start(if why.is_empty() {
        format!("it exited with {status}")
    } else {
        why.to_string()
    }))
}
