//! `mesh ssh-agent`: ssh-agent(1)'s command line, semantics and output on
//! the Mesh agent, so that scripts, display managers and tools that start
//! `ssh-agent` work unchanged (a symlink named `ssh-agent` runs it).
//!
//! Without `-d`/`-D` it daemonizes as ssh-agent does, but without `fork`
//! (the workspace forbids `unsafe`): the `mesh` binary is started again in
//! the background with a hidden `--serve-child` flag; it binds the socket
//! and says `ready` on a pipe; only then does the first process print the
//! environment lines and exit, or `exec` COMMAND with `SSH_AUTH_SOCK` and
//! `SSH_AGENT_PID` set (COMMAND keeps the first process's pid, as with
//! ssh-agent, so its exit status is the exit status). The serving child
//! watches that pid and exits when COMMAND ends.
//!
//! Where the home has an account, the device's Mesh key and certificate
//! are served too and kept in sync ([`crate::daemon::MeshFeed`]); without
//! one it is a plain ssh-agent.

mod serve;
mod spawn;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_ssh::options::{AgentOptions, FingerprintHash};

pub use serve::{bind, serve, Cleanup, ServeMode};
pub use spawn::{make_socket_dir, spawn_child, ChildArgs, READY};

/// What went wrong, and whose doing it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshAgentError {
    /// The command line (the user's).
    #[error("{0}")]
    Usage(String),
    /// `-k` without an agent to kill.
    #[error("SSH_AGENT_PID not set, cannot kill agent")]
    NoPid,
    /// `-k` with a value that is no pid.
    #[error("SSH_AGENT_PID=\"{0}\", which is not a good PID")]
    BadPid(String),
    /// A socket, directory, signal or process.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The background agent did not come up.
    #[error("the agent did not start: {0}")]
    Start(String),
}

impl SshAgentError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            SshAgentError::Usage(_) => "usage: mesh ssh-agent [-c | -s] [-Dd] [-a bind_address] [-E fingerprint_hash] [-O option] [-P allowed_providers] [-t life] [command [arg ...]]; mesh ssh-agent [-c | -s] -k".into(),
            SshAgentError::NoPid | SshAgentError::BadPid(_) => {
                "run it where `eval \"$(mesh ssh-agent -s)\"` set SSH_AGENT_PID".into()
            }
            SshAgentError::Io { what, .. } if what.starts_with("binding") => {
                "another agent may use that socket: choose another -a path or remove the stale one".into()
            }
            SshAgentError::Start(_) => "run it in the foreground with -d to see why".into(),
            SshAgentError::Io { .. } => return None,
        })
    }
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SshAgentError {
    let what = what.into();
    move |source| SshAgentError::Io { what, source }
}

/// ssh-agent's `-t`, `-E`, `-O` and `-P`, checked.
pub fn agent_options(
    lifetime: Option<&str>,
    hash: Option<&str>,
    opts: &[String],
    allowlist: Option<&str>,
) -> Result<AgentOptions, SshAgentError> {
    let mut o = AgentOptions::default();
    if let Some(t) = lifetime {
        let d = mesh_ssh::options::parse_lifetime(t)
            .ok_or_else(|| SshAgentError::Usage(format!("Invalid lifetime {t:?}")))?;
        // `-t 0` is ssh-agent's "forever".
        o.default_lifetime = (d > Duration::ZERO).then_some(d);
    }
    if let Some(h) = hash {
        o.fingerprint_hash = FingerprintHash::by_name(h).ok_or_else(|| {
            SshAgentError::Usage(format!(
                "Invalid hash algorithm {h:?} (Mesh offers sha256 and sha512)"
            ))
        })?;
    }
    for opt in opts {
        match opt.as_str() {
            "allow-remote-pkcs11" => o.allow_remote_pkcs11 = true,
            // Mesh's agent holds no FIDO (sk-*) keys, whose web-origin
            // signatures the restriction is about: nothing to relax.
            "no-restrict-websafe" => {}
            _ => match o.forward_option(opt) {
                Some(r) => r.map_err(SshAgentError::Usage)?,
                None => return Err(SshAgentError::Usage(format!("Unknown -O option {opt:?}"))),
            },
        }
    }
    if let Some(p) = allowlist {
        o.pkcs11_allowlist = p.to_string();
    }
    Ok(o)
}

/// Whether ssh-agent would speak C shell: `-c`, or neither `-c` nor `-s`
/// and `$SHELL` ends in `csh`.
pub fn use_csh(c_flag: bool, s_flag: bool, shell: Option<&std::ffi::OsStr>) -> bool {
    c_flag
        || (!s_flag
            && shell
                .map(|s| s.as_encoded_bytes().ends_with(b"csh"))
                .unwrap_or(false))
}

fn set_line(csh: bool, name: &str, value: &str) -> String {
    if csh {
        format!("setenv {name} {value};\n")
    } else {
        format!("{name}={value}; export {name};\n")
    }
}

/// What ssh-agent prints for `eval`: the socket, the agent's pid (not in
/// the foreground modes, where there is no background process to name),
/// and the `echo`.
pub fn env_lines(csh: bool, socket: &Path, pid: u32, export_pid: bool) -> String {
    let mut out = set_line(csh, "SSH_AUTH_SOCK", &socket.display().to_string());
    if export_pid {
        out.push_str(&set_line(csh, "SSH_AGENT_PID", &pid.to_string()));
    }
    out.push_str(&format!("echo Agent pid {pid};\n"));
    out
}

/// What `ssh-agent -k` prints once the agent is signalled.
pub fn kill_lines(csh: bool, pid: u32) -> String {
    let unset = if csh { "unsetenv" } else { "unset" };
    format!("{unset} SSH_AUTH_SOCK;\n{unset} SSH_AGENT_PID;\necho Agent pid {pid} killed;\n")
}

/// `-k`: send SIGTERM to the agent `SSH_AGENT_PID` names; the lines to print.
pub fn kill(csh: bool, pid_var: Option<OsString>) -> Result<String, SshAgentError> {
    let raw = pid_var.ok_or(SshAgentError::NoPid)?;
    let text = raw.to_string_lossy().into_owned();
    let pid: i32 = text
        .parse()
        .ok()
        .filter(|p| *p >= 2)
        .ok_or_else(|| SshAgentError::BadPid(text.clone()))?;
    let target = rustix::process::Pid::from_raw(pid).ok_or(SshAgentError::BadPid(text))?;
    rustix::process::kill_process(target, rustix::process::Signal::TERM)
        .map_err(|e| io("kill")(e.into()))?;
    Ok(kill_lines(csh, pid.unsigned_abs()))
}

/// The socket the agent binds: `-a`, else `agent.<pid>` in a fresh private
/// directory under `$TMPDIR` (which the agent removes when it exits).
pub fn socket_path(
    bind_address: Option<&Path>,
) -> Result<(PathBuf, Option<PathBuf>), SshAgentError> {
    match bind_address {
        Some(p) => Ok((p.to_path_buf(), None)),
        None => {
            let dir = make_socket_dir()?;
            Ok((dir.join(format!("agent.{}", std::process::id())), Some(dir)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_ssh_agents() {
        let s = Path::new("/tmp/ssh-XYZ/agent.7");
        let cases: &[(bool, bool, &str)] = &[
            (
                false,
                true,
                "SSH_AUTH_SOCK=/tmp/ssh-XYZ/agent.7; export SSH_AUTH_SOCK;\nSSH_AGENT_PID=42; export SSH_AGENT_PID;\necho Agent pid 42;\n",
            ),
            (
                true,
                true,
                "setenv SSH_AUTH_SOCK /tmp/ssh-XYZ/agent.7;\nsetenv SSH_AGENT_PID 42;\necho Agent pid 42;\n",
            ),
            (
                false,
                false,
                "SSH_AUTH_SOCK=/tmp/ssh-XYZ/agent.7; export SSH_AUTH_SOCK;\necho Agent pid 42;\n",
            ),
        ];
        for (csh, export_pid, want) in cases {
            assert_eq!(env_lines(*csh, s, 42, *export_pid), *want);
        }
        assert_eq!(
            kill_lines(false, 42),
            "unset SSH_AUTH_SOCK;\nunset SSH_AGENT_PID;\necho Agent pid 42 killed;\n"
        );
        assert_eq!(
            kill_lines(true, 42),
            "unsetenv SSH_AUTH_SOCK;\nunsetenv SSH_AGENT_PID;\necho Agent pid 42 killed;\n"
        );
    }

    #[test]
    fn csh_from_flags_and_shell() {
        let csh = Some(std::ffi::OsStr::new("/bin/tcsh"));
        let sh = Some(std::ffi::OsStr::new("/bin/bash"));
        assert!(use_csh(true, false, sh));
        assert!(use_csh(false, false, csh));
        assert!(!use_csh(false, true, csh));
        assert!(!use_csh(false, false, sh));
        assert!(!use_csh(false, false, None));
    }

    #[test]
    fn kill_refuses_what_is_no_agent_pid() {
        assert!(matches!(kill(false, None), Err(SshAgentError::NoPid)));
        for bad in ["", "x", "1", "0", "-5", "99999999999"] {
            assert!(
                matches!(kill(false, Some(bad.into())), Err(SshAgentError::BadPid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn options_are_checked() {
        let o = agent_options(
            Some("1h30m"),
            Some("sha512"),
            &["no-restrict-websafe".into()],
            Some("/opt/*"),
        )
        .expect("options");
        assert_eq!(o.default_lifetime, Some(Duration::from_secs(5400)));
        assert_eq!(o.fingerprint_hash, FingerprintHash::Sha512);
        assert_eq!(o.pkcs11_allowlist, "/opt/*");
        assert!(!o.allow_remote_pkcs11);
        assert_eq!(
            agent_options(Some("0"), None, &[], None)
                .expect("0")
                .default_lifetime,
            None
        );
        assert!(agent_options(Some("1x"), None, &[], None).is_err());
        assert!(agent_options(None, Some("md4"), &[], None).is_err());
        assert!(agent_options(None, None, &["bogus".into()], None).is_err());
        assert!(
            agent_options(None, None, &["allow-remote-pkcs11".into()], None)
                .expect("remote")
                .allow_remote_pkcs11
        );
    }
}
