//! OpenSSH's own ssh-agent regression tests (openssh-portable `regress/`,
//! installed by Debian's `openssh-tests`) run against `mesh ssh-agent`
//! through `tests/openssh/run-agent-regress.sh`, one test per upstream
//! script (issue 23): all five agent scripts of OpenSSH 9.2p1.

use std::path::Path;
use std::process::Command;

use mesh_tests::{can_run_sshd, require_tool, workspace_bin};

const REGRESS: &str = "/usr/lib/openssh/regress";

/// Whether the upstream tests can run here; under CI=true they must.
fn can_run() -> bool {
    if !Path::new(REGRESS).is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{REGRESS} is required under CI=true: install openssh-tests"
        );
        eprintln!("skipping: {REGRESS} is missing (Debian's openssh-tests)");
        return false;
    }
    can_run_sshd() && require_tool("make")
}

/// Run one upstream script; its failed-*.log is in the failure message.
fn upstream(test: &str) {
    if !can_run() {
        return;
    }
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("openssh/run-agent-regress.sh");
    let o = Command::new(runner)
        .arg(test)
        .env("MESH_BIN", workspace_bin("mesh"))
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SSH_AGENT_PID")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run-agent-regress.sh");
    assert!(
        o.status.success(),
        "upstream {test}.sh failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn upstream_agent_subprocess() {
    upstream("agent-subprocess");
}

#[test]
fn upstream_agent() {
    upstream("agent");
}

#[test]
fn upstream_agent_timeout() {
    upstream("agent-timeout");
}

#[test]
fn upstream_agent_restrict() {
    upstream("agent-restrict");
}

#[test]
fn upstream_agent_pkcs11() {
    upstream("agent-pkcs11");
}
