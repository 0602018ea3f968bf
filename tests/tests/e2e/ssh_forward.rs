//! The forwarding policy and batch confirmation through real sshd hops
//! (issue 25): `ssh -A host_a 'ssh-keygen -Y sign …'` is refused while the
//! same signature made locally verifies; a forwarded login under "confirm"
//! asks once, naming the hop and the destination; eight parallel logins
//! under the account's confirm ask once. The agent is `mesh ssh-agent`
//! without an account, its policy set with `-O forward-…`, or an account's
//! `mesh agent`; the askpass is a script that logs each prompt.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use mesh_tests::{
    can_run_sshd, eventually, ssh_add, workspace_bin, Device, PortalProc, RunningAgent, Scratch,
    Sshd,
};

/// `mesh ssh-agent -D -a SOCK -O …` on an empty home with a logging askpass.
struct PlainAgent {
    child: Child,
    sock: PathBuf,
    prompts: PathBuf,
}

impl PlainAgent {
    fn start(dir: &Path, options: &[String]) -> PlainAgent {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).expect("home");
        let sock = dir.join("agent.sock");
        let (askpass, prompts) = logging_askpass(dir);
        let mut cmd = Command::new(workspace_bin("mesh"));
        cmd.args(["ssh-agent", "-D", "-a"]).arg(&sock);
        for o in options {
            cmd.args(["-O", o]);
        }
        let child = cmd
            .env("MESH_HOME", &home)
            .env("SSH_ASKPASS", &askpass)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("mesh ssh-agent");
        assert!(
            eventually(10, || ssh_add(&sock, &["-l"]).status.code() == Some(1)),
            "the agent did not start"
        );
        PlainAgent {
            child,
            sock,
            prompts,
        }
    }

    /// The prompts shown so far.
    fn prompts(&self) -> Vec<String> {
        prompts(&self.prompts)
    }
}

/// An askpass that logs each prompt (one line, its newlines folded) and
/// answers yes; its path and its log's.
fn logging_askpass(dir: &Path) -> (PathBuf, PathBuf) {
    let prompts = dir.join("prompts.log");
    let askpass = dir.join("askpass");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$(echo \"$1\" | tr '\\n' ' ')\" >> {}\nexit 0\n",
        prompts.display()
    );
    std::fs::write(&askpass, script).expect("askpass");
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    (askpass, prompts)
}

fn prompts(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

impl Drop for PlainAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two loopback hosts with plain host keys, one user key authorized on
/// both and held by the agent only.
struct Net {
    dir: Scratch,
    a: Sshd,
    b: Sshd,
    config: PathBuf,
    key: PathBuf,
    secret: PathBuf,
    agent: PlainAgent,
    /// The host key fingerprints of host_a and host_b.
    fa: String,
    fb: String,
}

/// The agent's `-O` options, given the fingerprints of host_a and host_b.
type Options = fn(&str, &str) -> Vec<String>;

fn none(_: &str, _: &str) -> Vec<String> {
    Vec::new()
}

pub(crate) fn fingerprint(pub_line: &str, dir: &Path) -> String {
    let f = dir.join("fp.pub");
    std::fs::write(&f, pub_line).expect("pub");
    let o = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&f)
        .output()
        .expect("ssh-keygen -l");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

impl Net {
    fn new(tag: &str, options: Options) -> Net {
        let dir = Scratch::new(tag);
        let key = dir.path("user");
        let o = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", "user", "-t", "ed25519", "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen");
        assert!(o.status.success());
        let secret = dir.path("user.secret");
        std::fs::rename(&key, &secret).expect("hide the private key");
        let authorized = format!("AuthorizedKeysFile {}.pub", key.display());
        let a = Sshd::start(&dir.path("a"), std::slice::from_ref(&authorized));
        let b = Sshd::start(&dir.path("b"), std::slice::from_ref(&authorized));
        let known = dir.path("known_hosts");
        let line = |s: &Sshd| {
            s.host_key
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        std::fs::write(
            &known,
            format!("host_a {}\nhost_b {}\n", line(&a), line(&b)),
        )
        .expect("known_hosts");
        let config = dir.path("ssh_config");
        let mut c = String::new();
        for (name, port) in [("host_a", a.port), ("host_b", b.port)] {
            c.push_str(&format!(
                "Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  HostKeyAlias {name}\n  User root\n"
            ));
        }
        c.push_str(&format!(
            "Host *\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  \
             BatchMode yes\n  ConnectTimeout 10\n  IdentitiesOnly yes\n  IdentityFile {}.pub\n",
            known.display(),
            key.display()
        ));
        std::fs::write(&config, c).expect("ssh_config");
        let (fa, fb) = (
            fingerprint(&a.host_key, &dir.0),
            fingerprint(&b.host_key, &dir.0),
        );
        let agent = PlainAgent::start(&dir.0, &options(&fa, &fb));
        Net {
            fa,
            fb,
            a,
            b,
            config,
            key,
            secret,
            agent,
            dir,
        }
    }

    fn add(&self, args: &[&str]) {
        let mut a = args.to_vec();
        a.push(self.secret.to_str().expect("path"));
        let o = ssh_add(&self.agent.sock, &a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    fn ssh(&self, args: &[&str]) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(&self.config)
            .args(args)
            .env("SSH_AUTH_SOCK", &self.agent.sock)
            .stdin(Stdio::null())
            .output()
            .expect("ssh")
    }

    /// `ssh-keygen -Y sign -n git` of a fresh file, run by `prefix` (nothing: here).
    fn sign(&self, name: &str, prefix: &[&str]) -> (bool, PathBuf) {
        let file = self.dir.path(name);
        std::fs::write(&file, format!("tree {name}\n")).expect("file");
        let cmd = format!(
            "ssh-keygen -Y sign -n git -f {}.pub {}",
            self.key.display(),
            file.display()
        );
        let o = if prefix.is_empty() {
            Command::new("sh")
                .args(["-c", &cmd])
                .env("SSH_AUTH_SOCK", &self.agent.sock)
                .stdin(Stdio::null())
                .output()
                .expect("ssh-keygen")
        } else {
            let mut a = prefix.to_vec();
            a.push(&cmd);
            self.ssh(&a)
        };
        (o.status.success(), file)
    }
}

#[test]
fn an_sshsig_over_a_forwarded_hop_is_refused_and_locally_it_verifies() {
    if !can_run_sshd() {
        return;
    }
    let net = Net::new("fwd-sshsig", none);
    net.add(&[]);
    let (ok, _) = net.sign("remote", &["-A", "host_a"]);
    assert!(!ok, "a git signature through the forwarded agent was made");
    let (ok, file) = net.sign("local", &[]);
    assert!(ok, "the local signature failed");
    let signers = net.dir.path("allowed_signers");
    let pubkey = std::fs::read_to_string(net.key.with_extension("pub")).expect("pub");
    std::fs::write(&signers, format!("me@example.com {pubkey}")).expect("signers");
    let verify = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ssh-keygen -Y verify -f {} -I me@example.com -n git -s {f}.sig < {f}",
            signers.display(),
            f = file.display()
        ))
        .output()
        .expect("ssh-keygen -Y verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Logins go on over the same hop (the default allows them).
    let inner = format!("ssh -F {} host_b true", net.config.display());
    assert!(net.ssh(&["-A", "host_a", &inner]).status.success());
    let _ = (&net.a, &net.b);
}

#[test]
fn forward_sign_allow_lets_the_forwarded_signature_through() {
    if !can_run_sshd() {
        return;
    }
    // What the refusal above depends on: the policy, not the hop.
    let net = Net::new("fwd-sshsig-allow", |_, _| vec!["forward-sign=allow".into()]);
    net.add(&[]);
    assert!(net.sign("remote", &["-A", "host_a"]).0);
}

#[test]
fn a_forwarded_login_under_confirm_asks_once_and_names_the_hops() {
    if !can_run_sshd() {
        return;
    }
    let net = Net::new("fwd-confirm", |_, _| vec!["forward-login=confirm".into()]);
    net.add(&[]);
    let inner = format!("ssh -F {} host_b true", net.config.display());
    for _ in 0..2 {
        let o = net.ssh(&["-A", "host_a", &inner]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let prompts = net.agent.prompts();
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    let (fa, fb) = (&net.fa, &net.fb);
    let p = &prompts[0];
    assert!(
        p.contains(&format!("this host > {fa}")),
        "hop host_a not named: {p}"
    );
    assert!(
        p.contains(&format!("login to {fb}")),
        "destination not named: {p}"
    );
    // A local login is no forwarded one: no prompt.
    assert!(net.ssh(&["host_b", "true"]).status.success());
    assert_eq!(net.agent.prompts().len(), 1);
}

#[test]
fn a_forwarded_login_to_a_refused_destination_fails() {
    if !can_run_sshd() {
        return;
    }
    // Refuse forwarded logins to host_b, by its host key's fingerprint.
    let net = Net::new("fwd-refuse", |_, fb| {
        vec![format!("forward-login={fb}:refuse")]
    });
    net.add(&[]);
    let to = |host: &str| format!("ssh -F {} {host} true", net.config.display());
    assert!(!net.ssh(&["-A", "host_a", &to("host_b")]).status.success());
    assert!(
        net.ssh(&["-A", "host_a", &to("host_a")]).status.success(),
        "another destination"
    );
    assert!(net.ssh(&["host_b", "true"]).status.success(), "local login");
    assert!(net.agent.prompts().is_empty());
}

/// An account whose device's Mesh key is authorized on one loopback sshd
/// (host_a), with an ssh config that offers that key only.
pub(crate) struct MeshNet {
    pub(crate) dir: Scratch,
    _portal: PortalProc,
    pub(crate) dev: Device,
    pub(crate) a: Sshd,
    config: PathBuf,
    pub(crate) mesh_pub: PathBuf,
}

impl MeshNet {
    pub(crate) fn new(tag: &str) -> MeshNet {
        let dir = Scratch::new(tag);
        let portal = PortalProc::start(&dir.path("portal"));
        let dev = Device::create_account(&dir.0, "alice@example.com", &portal.url);
        let mesh_pub = dir.path("mesh.pub");
        std::fs::write(&mesh_pub, dev.ok(&["ssh", "public-key"])).expect("mesh.pub");
        let a = Sshd::start(
            &dir.path("a"),
            &[format!("AuthorizedKeysFile {}", mesh_pub.display())],
        );
        let known = dir.path("known_hosts");
        let key = a.host_key.split_whitespace().take(2).collect::<Vec<_>>();
        std::fs::write(&known, format!("host_a {}\n", key.join(" "))).expect("known_hosts");
        let config = dir.path("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host host_a\n  HostName 127.0.0.1\n  Port {}\n  HostKeyAlias host_a\n  User root\n  \
                 UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  \
                 BatchMode yes\n  IdentitiesOnly yes\n  IdentityFile {}\n",
                a.port,
                known.display(),
                mesh_pub.display()
            ),
        )
        .expect("ssh_config");
        MeshNet {
            dir,
            _portal: portal,
            dev,
            a,
            config,
            mesh_pub,
        }
    }

    pub(crate) fn ssh(&self, agent: &RunningAgent, args: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F")
            .arg(&self.config)
            .args(args)
            .env("SSH_AUTH_SOCK", &agent.sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }
}

#[test]
fn eight_parallel_logins_under_the_accounts_confirm_ask_once() {
    if !can_run_sshd() {
        return;
    }
    let net = MeshNet::new("fwd-batch");
    net.dev.ok(&["ssh", "confirm", "on"]);
    let (askpass, log) = logging_askpass(&net.dir.0);
    let agent =
        RunningAgent::start_with(&net.dev, &[("SSH_ASKPASS", askpass.to_str().expect("p"))]);
    let runs: Vec<Child> = (0..8)
        .map(|_| net.ssh(&agent, &["host_a", "true"]).spawn().expect("ssh"))
        .collect();
    for mut r in runs {
        assert!(r.wait().expect("wait").success());
    }
    assert_eq!(prompts(&log).len(), 1, "{:?}", prompts(&log));
    // Another program is another batch: ssh-keygen -Y sign asks on its own.
    let file = net.dir.path("commit");
    std::fs::write(&file, "tree 1\n").expect("file");
    let o = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "git", "-f"])
        .arg(&net.mesh_pub)
        .arg(&file)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(prompts(&log).len(), 2, "{:?}", prompts(&log));
}

#[test]
fn the_accounts_policy_reaches_the_agent_on_sync() {
    if !can_run_sshd() {
        return;
    }
    let net = MeshNet::new("fwd-account");
    let agent = RunningAgent::start(&net.dev);
    let file = net.dir.path("commit");
    std::fs::write(&file, "tree 1\n").expect("file");
    let sign = format!(
        "ssh-keygen -Y sign -n git -f {} {}",
        net.mesh_pub.display(),
        file.display()
    );
    let forwarded_sign = || {
        net.ssh(&agent, &["-A", "host_a", &sign])
            .status()
            .expect("ssh")
            .success()
    };
    // The account's default: refused, and the agent's log says why.
    assert!(
        !forwarded_sign(),
        "the default let a forwarded SSHSIG through"
    );
    assert!(
        eventually(5, || agent.log().contains(
            "refused a signature that is not a login over forwarded hops"
        )),
        "{}",
        agent.log()
    );
    // An administrator allows it: the agent takes it at its next sync.
    let v = net
        .dev
        .json(&["ssh", "policy", "forwarding", "--sign", "allow"]);
    assert_eq!(v["Sign"], "allow", "{v}");
    assert!(
        eventually(10, forwarded_sign),
        "the policy did not reach the agent"
    );
    let shown = net.dev.ok(&["ssh", "policy", "forwarding"]);
    assert!(shown.contains("forwarded signatures allow"), "{shown}");
}
