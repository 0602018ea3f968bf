//! Fixtures shared by the tests of `mesh ssh-agent` as a plain agent: the
//! agent on an empty home, and keys `ssh-keygen` makes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mesh_tests::{eventually, ssh_add, workspace_bin};

/// `mesh ssh-agent -D -a SOCK` on an empty home, its standard error in
/// `log`; stopped on drop.
pub(crate) struct PlainAgent {
    child: Child,
    pub(crate) sock: PathBuf,
    pub(crate) log: PathBuf,
}

impl PlainAgent {
    /// Start it in `dir` and wait until it serves.
    pub(crate) fn start(dir: &Path) -> PlainAgent {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).expect("home");
        let sock = dir.join("agent.sock");
        let log = dir.join("agent.log");
        let child = Command::new(workspace_bin("mesh"))
            .args(["ssh-agent", "-D", "-a"])
            .arg(&sock)
            .env("MESH_HOME", &home)
            .env_remove("SSH_ASKPASS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("mesh ssh-agent");
        // ssh-add -l answers 1 (no identities) once the agent serves.
        assert!(
            eventually(10, || ssh_add(&sock, &["-l"]).status.code() == Some(1)),
            "the agent did not start"
        );
        PlainAgent { child, sock, log }
    }
}

impl Drop for PlainAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A key `ssh-keygen` makes in `dir` (no passphrase, `name` as comment).
pub(crate) fn keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let k = dir.join(name);
    let o = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name])
        .args(args)
        .arg("-f")
        .arg(&k)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    k
}
