//! Destination constraints (`ssh-add -h`) through real sshd hops: ProxyJump
//! and agent forwarding over loopback sshds, host_d presenting a
//! `HostCertificate` from a CA that known_hosts lists as `@cert-authority`
//! (issue 23.4). The agent is `mesh ssh-agent` without an account.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use mesh_tests::{can_run_sshd, ssh_add, Scratch, Sshd};

use crate::plain::{keygen, PlainAgent};

fn key_fields(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Two loopback hosts: host_a with a plain host key, host_d with a host
/// certificate for `host_d`; known_hosts pins host_a and trusts the CA for
/// `host_*`; an ssh config names them; one user key, authorized on both.
struct Net {
    dir: Scratch,
    _a: Sshd,
    _d: Sshd,
    config: PathBuf,
    known: PathBuf,
    key: PathBuf,
    secret: PathBuf,
    agent: PlainAgent,
}

impl Net {
    fn new(tag: &str) -> Net {
        let dir = Scratch::new(tag);
        let key = keygen(&dir.0, "user", &["-t", "ed25519"]);
        // The private key where ssh does not look: it signs only through the agent.
        let secret = dir.path("user.secret");
        std::fs::rename(&key, &secret).expect("hide the private key");
        let ca = keygen(&dir.0, "ca", &["-t", "ed25519"]);
        let authorized = format!("AuthorizedKeysFile {}.pub", key.display());
        let a = Sshd::start(&dir.path("a"), std::slice::from_ref(&authorized));
        std::fs::create_dir_all(dir.path("d")).expect("dir");
        let host_d = keygen(&dir.path("d"), "host_ed25519", &["-t", "ed25519"]);
        let o = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca)
            .args(["-I", "host_d", "-h", "-n", "host_d"])
            .arg(host_d.with_extension("pub"))
            .output()
            .expect("ssh-keygen -s");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let cert = format!("HostCertificate {}-cert.pub", host_d.display());
        let d = Sshd::start(&dir.path("d"), &[authorized, cert]);
        let known = dir.path("known_hosts");
        let ca_pub = std::fs::read_to_string(ca.with_extension("pub")).expect("ca");
        let kh = format!(
            "host_a {}\n@cert-authority host_* {}\n",
            key_fields(&a.host_key),
            key_fields(&ca_pub)
        );
        std::fs::write(&known, kh).expect("known_hosts");
        let config = dir.path("ssh_config");
        let mut c = String::new();
        for (name, port) in [("host_a", a.port), ("host_d", d.port)] {
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
        let agent = PlainAgent::start(&dir.0);
        Net {
            _a: a,
            _d: d,
            config,
            known,
            key,
            secret,
            agent,
            dir,
        }
    }

    /// Replace the agent's keys with the user key restricted by `hops` (each an `-h` argument).
    fn restrict(&self, hops: &[&str]) {
        assert!(ssh_add(&self.agent.sock, &["-D"]).status.success());
        let mut args = vec!["-H", self.known.to_str().expect("p")];
        for h in hops {
            args.extend(["-h", h]);
        }
        args.push(self.secret.to_str().expect("p"));
        let o = ssh_add(&self.agent.sock, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// `ssh -F config ARGS` with the agent as SSH_AUTH_SOCK.
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

    /// Whether `ssh ARGS echo NONCE` logged in and ran.
    fn runs(&self, args: &[&str]) -> bool {
        let mut a = args.to_vec();
        a.extend(["echo", "mesh-dest-ok"]);
        let o = self.ssh(&a);
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("mesh-dest-ok")
    }

    /// Through host_a (agent forwarded) on to host_d.
    fn runs_forwarded(&self) -> bool {
        let inner = format!("ssh -F {} host_d echo mesh-dest-ok", self.config.display());
        let o = self.ssh(&["-A", "host_a", &inner]);
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("mesh-dest-ok")
    }

    /// Whether the forwarded agent on host_a lists the user key.
    fn listed_on_a(&self) -> bool {
        let o = self.ssh(&["-A", "host_a", "ssh-add", "-L"]);
        let want = std::fs::read_to_string(self.key.with_extension("pub")).expect("pub");
        String::from_utf8_lossy(&o.stdout).contains(&key_fields(&want))
    }
}

#[test]
fn a_host_certificate_matches_through_its_cert_authority_line() {
    if !can_run_sshd() {
        return;
    }
    let net = Net::new("dest-cert");
    net.restrict(&["host_a", "host_d"]);
    assert!(net.runs(&["host_a"]), "host_a, by its plain key");
    assert!(
        net.runs(&["-J", "host_a", "host_d"]),
        "host_d, by its certificate, through host_a"
    );
    // The certificate names host_d: a key for host_e (which the same CA line covers) may not log in there.
    net.restrict(&["host_a", "host_e"]);
    assert!(!net.runs(&["-J", "host_a", "host_d"]), "wrong principal");
    assert!(net.runs(&["host_a"]));
    let _ = &net.dir;
}

#[test]
fn user_names_and_forwarded_hops_follow_the_constraints() {
    if !can_run_sshd() {
        return;
    }
    let net = Net::new("dest-hops");
    net.restrict(&["nobody@host_a"]);
    assert!(!net.runs(&["host_a"]), "another user");
    net.restrict(&["r*t@host_a"]);
    assert!(net.runs(&["host_a"]), "a user pattern");
    // Allowed at host_a but not beyond: hidden there, and no use on to host_d.
    net.restrict(&["host_a"]);
    assert!(!net.listed_on_a(), "permitted at host but not after");
    assert!(!net.runs_forwarded());
    // host_a > host_d (a certificate host) allowed: listed on host_a, usable on to host_d.
    net.restrict(&["host_a", "host_a>host_d"]);
    assert!(net.listed_on_a(), "may go on from host_a");
    assert!(net.runs_forwarded(), "host_a > host_d");
    // The chain's last user is checked.
    net.restrict(&["host_a", "host_a>nobody@host_d"]);
    assert!(!net.runs_forwarded(), "another user at host_d");
    net.restrict(&["host_a", "host_a>root@host_d"]);
    assert!(net.runs_forwarded());
}
