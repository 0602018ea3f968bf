//! The `mesh` agent daemon, which holds this device's private keys, writes
//! no core file and (on Linux) is not dumpable: a process of the same user
//! can neither read its memory nor its environment (agent/src/hardening.rs).
//! And it still serves that user: the control channel, which checks its
//! peers' uid, answers `mesh agent status`.
//!
//! `mesh agent start` runs with its soft core limit raised to the hard
//! limit, so that a limit of 0 is `mesh`'s doing, not the environment's.
//! Run as root, the daemon and the reader both run as `nobody` (root's
//! CAP_SYS_PTRACE passes every such check).
#![cfg(unix)]

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A scratch directory with a home whose agent runs: stopped (through its
/// control channel) and removed when the test ends.
struct Daemon {
    dir: PathBuf,
    user: Option<(u32, u32)>,
}

impl Daemon {
    fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// `mesh --home HOME ARGS` as the daemon's user; `shell` first raises
    /// the soft core limit to the hard one.
    fn mesh(&self, args: &[&str], raise_core_limit: bool) -> Output {
        let script = if raise_core_limit {
            r#"ulimit -S -c "$(ulimit -H -c)" && exec "$0" "$@""#
        } else {
            r#"exec "$0" "$@""#
        };
        let home = self.home();
        command("sh", self.user)
            .args(["-c", script, env!("CARGO_BIN_EXE_mesh"), "--home"])
            .arg(&home)
            .args(args)
            .env("MESH_KEYSTORE", "file")
            .env("HOME", &self.dir)
            .env("MESH_TEST_SECRET", "in-the-environment")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("MESH_HOME")
            .stdin(Stdio::null())
            .output()
            .expect("mesh")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.mesh(&["agent", "stop"], false);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `nobody`'s uid and gid when the tests run as root; `None` otherwise.
fn as_user() -> Option<(u32, u32)> {
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).ok()?;
    if !root {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let o = Command::new("id")
            .args([flag, "nobody"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("id of nobody")
    };
    Some((id("-u"), id("-g")))
}

fn command(program: &str, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c
}

/// `mesh agent start` (it returns once the agent's sockets answer): the
/// agent and its pid.
fn start(user: Option<(u32, u32)>) -> (Daemon, u32) {
    let dir = std::env::temp_dir().join(format!("mesh-hardening-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
    }
    let daemon = Daemon { dir, user };
    let o = daemon.mesh(&["--json", "agent", "start", "--interval", "60s"], true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let pid = u32::try_from(v["pid"].as_u64().expect("pid")).expect("pid");
    (daemon, pid)
}

#[test]
fn the_agent_daemon_writes_no_core_and_is_not_dumpable() {
    let user = as_user();
    let (daemon, pid) = start(user);
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    // No core file: soft and hard limits 0.
    let limits = std::fs::read_to_string(proc_dir.join("limits")).expect("limits");
    let core: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core line")
        .split_whitespace()
        .collect();
    assert_eq!(&core[4..6], &["0", "0"], "{limits}");
    // It serves its user: the control channel takes the CLI's status.
    let o = daemon.mesh(&["--json", "agent", "status"], false);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if !cfg!(target_os = "linux") {
        return;
    }
    // Not dumpable: its /proc/PID files belong to root, whoever runs it ...
    let status = std::fs::read_to_string(proc_dir.join("status")).expect("status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("Uid line");
    assert_ne!(uid, "0", "the daemon must run as an unprivileged user");
    let owner = std::fs::metadata(proc_dir.join("status"))
        .expect("status")
        .uid();
    assert_eq!(
        owner, 0,
        "/proc/{pid} belongs to the daemon's user: it is dumpable"
    );
    // ... and the same user can read neither its memory nor its environment.
    for file in ["mem", "environ", "maps"] {
        let o = command("cat", user)
            .arg(proc_dir.join(file))
            .output()
            .expect("cat");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("Permission denied"),
            "the same user reads /proc/{pid}/{file}: {err}{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}
