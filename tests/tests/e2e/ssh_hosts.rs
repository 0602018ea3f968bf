//! The right key for each host (issue 25): with twelve keys in the agent
//! and sshd's `MaxAuthTries 2`, the agent learns from session-bind and the
//! login it signed which key the host takes, offers it first from then on
//! (across restarts), and `mesh ssh hosts` shows, forgets and pins it;
//! `ssh-add -l` (no session-bind) still lists every key. Expired
//! certificates are never listed. Real ssh, sshd, ssh-add, ssh-keygen; no
//! ssh configuration (`-F /dev/null`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use mesh_tests::{can_run_sshd, eventually, require_tool, ssh_add, workspace_bin, Scratch, Sshd};

/// `mesh ssh-agent -D -a SOCK` with `home`, killed on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(home: &Path, sock: &Path) -> Agent {
    let _ = std::fs::remove_file(sock);
    let child = Command::new(workspace_bin("mesh"))
        .arg("--home")
        .arg(home)
        .args(["ssh-agent", "-D", "-a"])
        .arg(sock)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("mesh ssh-agent");
    assert!(
        eventually(10, || ssh_add(sock, &["-l"]).status.code() == Some(1)),
        "the agent did not come up"
    );
    Agent(child)
}

fn keygen(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let o = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&p)
        .args(extra)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    p
}

fn fingerprint(public: &Path) -> String {
    let o = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public)
        .output()
        .expect("ssh-keygen -lf");
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

/// `ssh -v root@127.0.0.1 true` through the agent, with `extra` options.
fn ssh(sshd: &Sshd, sock: &Path, extra: &[&str]) -> Output {
    Command::new("ssh")
        .args(["-v", "-F", "/dev/null", "-p", &sshd.port.to_string()])
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .arg("-o")
        .arg(format!("IdentityAgent={}", sock.display()))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", sshd.known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes"])
        .args(extra)
        .args(["root@127.0.0.1", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("ssh")
}

fn offers(o: &Output) -> usize {
    String::from_utf8_lossy(&o.stderr)
        .matches("Offering public key")
        .count()
}

fn mesh(home: &Path, args: &[&str]) -> Output {
    Command::new(workspace_bin("mesh"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("mesh")
}

/// `mesh ssh hosts --json`: host fingerprint → (identity, pinned).
fn learned(home: &Path) -> Vec<(String, String, bool)> {
    let o = mesh(home, &["--json", "ssh", "hosts"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    v["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| {
            (
                h["host"].as_str().expect("host").to_string(),
                h["identity"].as_str().expect("identity").to_string(),
                h["pinned"].as_bool().expect("pinned"),
            )
        })
        .collect()
}

#[test]
fn the_second_login_offers_the_one_key_the_host_accepted() {
    if !can_run_sshd() {
        return;
    }
    let dir = Scratch::new("ssh-hosts");
    let home = dir.path("home");
    std::fs::create_dir_all(&home).expect("home");
    let sock = dir.path("agent.sock");
    let keys: Vec<PathBuf> = (0..12)
        .map(|i| keygen(&dir.0, &format!("k{i}"), &["-t", "ed25519"]))
        .collect();
    let right = &keys[7];
    let pubf = right.with_extension("pub");
    std::fs::copy(&pubf, dir.path("authorized_keys")).expect("authorized_keys");
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[
            format!(
                "AuthorizedKeysFile {}",
                dir.path("authorized_keys").display()
            ),
            "MaxAuthTries 2".into(),
        ],
    );
    let host_fp = fingerprint(&dir.path("sshd").join("host_ed25519.pub"));
    let add_all = || {
        let paths: Vec<&str> = keys.iter().map(|k| k.to_str().expect("path")).collect();
        let o = ssh_add(&sock, &paths);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let agent = start_agent(&home, &sock);
    add_all();
    // Nothing learned: the eighth key is never reached.
    let o = ssh(&sshd, &sock, &[]);
    assert!(!o.status.success(), "logged in with nothing learned");
    // A login that names the key, through the agent: it learns from it.
    let only = format!("IdentityFile={}", pubf.display());
    let o = ssh(&sshd, &sock, &["-o", "IdentitiesOnly=yes", "-o", &only]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = (host_fp.clone(), fingerprint(&pubf), false);
    assert!(
        eventually(10, || learned(&home) == [want.clone()]),
        "{:?}",
        learned(&home)
    );
    let o = ssh(&sshd, &sock, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(offers(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    // No session-bind (ssh-add -l): every key.
    let list = String::from_utf8_lossy(&ssh_add(&sock, &["-l"]).stdout).into_owned();
    assert_eq!(list.lines().count(), 12, "{list}");
    // A new agent on the same home knows it.
    drop(agent);
    let agent = start_agent(&home, &sock);
    add_all();
    let o = ssh(&sshd, &sock, &[]);
    assert!(
        o.status.success(),
        "after a restart: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(offers(&o), 1);
    // Forgotten: the running agent takes it, and the login fails again.
    assert!(mesh(&home, &["ssh", "hosts", "forget", &host_fp])
        .status
        .success());
    assert!(learned(&home).is_empty());
    assert!(eventually(10, || !ssh(&sshd, &sock, &[]).status.success()));
    // Pinned: one offer again.
    let pin = mesh(&home, &["ssh", "hosts", "pin", &host_fp, &want.1]);
    assert!(
        pin.status.success(),
        "{}",
        String::from_utf8_lossy(&pin.stderr)
    );
    assert_eq!(learned(&home), [(want.0.clone(), want.1.clone(), true)]);
    assert!(eventually(10, || {
        let o = ssh(&sshd, &sock, &[]);
        o.status.success() && offers(&o) == 1
    }));
    // Not a fingerprint: refused, with a hint.
    let bad = mesh(&home, &["ssh", "hosts", "pin", "nonsense", &want.1]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("hint:"));
    drop(agent);
}

#[test]
fn an_expired_certificate_is_never_listed() {
    if !require_tool("ssh-keygen") || !require_tool("ssh-add") {
        return;
    }
    let dir = Scratch::new("ssh-hosts-cert");
    let home = dir.path("home");
    let sock = dir.path("agent.sock");
    let _agent = start_agent(&home, &sock);
    let ca = keygen(&dir.0, "ca", &["-t", "ed25519"]);
    let certify = |name: &str, validity: &str| {
        let k = keygen(&dir.0, name, &["-t", "ed25519"]);
        let o = Command::new("ssh-keygen")
            .arg("-s")
            .arg(&ca)
            .args(["-q", "-I", name, "-n", "root", "-V", validity])
            .arg(k.with_extension("pub"))
            .output()
            .expect("ssh-keygen -s");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = ssh_add(&sock, &[k.to_str().expect("path")]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    certify("past", "-2d:-1d");
    certify("short", "-1m:+3s");
    certify("forever", "always:forever");
    let certs = || {
        let l = String::from_utf8_lossy(&ssh_add(&sock, &["-l"]).stdout).into_owned();
        l.lines()
            .filter(|l| l.contains("-CERT"))
            .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let now = certs();
    assert!(!now.contains(&"past".to_string()), "{now:?}");
    assert!(now.contains(&"short".to_string()), "{now:?}");
    assert!(eventually(10, || certs() == ["forever"]), "{:?}", certs());
    // The plain keys stay.
    let all = String::from_utf8_lossy(&ssh_add(&sock, &["-l"]).stdout).into_owned();
    assert_eq!(all.lines().count(), 4, "{all}");
}
