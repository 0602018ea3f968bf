//! Every key type OpenSSH adds, and a certificate of each, through
//! `mesh ssh-agent` as a plain agent (issue 23.1–23.4): added with the real
//! `ssh-add`, listed, used to log in to a real sshd, the certificate
//! deleted; DSA refused with a line in the agent's log.

use std::path::Path;
use std::process::{Command, Stdio};

use mesh_tests::{can_run_sshd, eventually, ssh_add, Scratch, Sshd};

/// OpenSSH's test FIDO middleware (Debian's `openssh-tests`).
const SK_DUMMY: &str = "/usr/lib/openssh/regress/misc/sk-dummy/sk-dummy.so";

use crate::plain::{keygen, PlainAgent};

fn line_of(file: &Path) -> String {
    let s = std::fs::read_to_string(file).expect("public file");
    s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

fn listed(sock: &Path) -> String {
    String::from_utf8_lossy(&ssh_add(sock, &["-L"]).stdout).into_owned()
}

#[test]
fn every_key_type_and_certificate_logs_in_through_mesh_ssh_agent() {
    if !can_run_sshd() {
        return;
    }
    let sk = Path::new(SK_DUMMY).is_file();
    assert!(
        sk || std::env::var("CI").as_deref() != Ok("true"),
        "{SK_DUMMY} is required under CI=true (openssh-tests)"
    );
    let dir = Scratch::new("sshkeys");
    let agent = PlainAgent::start(&dir.0);
    let ca = keygen(&dir.0, "ca", &["-t", "ed25519"]);
    let mut types: Vec<(&str, &[&str])> = vec![
        ("ed25519", &["-t", "ed25519"]),
        ("p256", &["-t", "ecdsa", "-b", "256"]),
        ("p384", &["-t", "ecdsa", "-b", "384"]),
        ("p521", &["-t", "ecdsa", "-b", "521"]),
        ("rsa", &["-t", "rsa", "-b", "3072"]),
    ];
    if sk {
        types.push(("ed25519-sk", &["-t", "ed25519-sk", "-w", SK_DUMMY]));
        types.push(("ecdsa-sk", &["-t", "ecdsa-sk", "-w", SK_DUMMY]));
    }
    let mut authorized = String::new();
    let mut keys = Vec::new();
    for (name, args) in &types {
        let key = keygen(&dir.0, name, args);
        let public = key.with_extension("pub");
        // No -V: valid "forever" (valid_before = 2^64-1).
        let o = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca)
            .args(["-I", name, "-n", "root"])
            .arg(&public)
            .output()
            .expect("ssh-keygen -s");
        assert!(o.status.success());
        let cert = dir.path(&format!("{name}-cert.pub"));
        let add = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &agent.sock)
            .env("SSH_SK_PROVIDER", SK_DUMMY)
            .stdin(Stdio::null())
            .output()
            .expect("ssh-add");
        assert!(
            add.status.success(),
            "ssh-add {name}: {}",
            String::from_utf8_lossy(&add.stderr)
        );
        // What signs from now on is the agent.
        std::fs::remove_file(&key).expect("remove the private key");
        authorized.push_str(&std::fs::read_to_string(&public).expect("pub"));
        keys.push((name.to_string(), public, cert));
    }
    let all = listed(&agent.sock);
    for (name, public, cert) in &keys {
        assert!(all.contains(&line_of(public)), "{name} not listed");
        assert!(
            all.contains(&line_of(cert)),
            "{name} certificate not listed"
        );
    }

    let authorized_file = dir.path("authorized_keys");
    std::fs::write(&authorized_file, authorized).expect("authorized_keys");
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[
            format!("AuthorizedKeysFile {}", authorized_file.display()),
            format!("TrustedUserCAKeys {}", ca.with_extension("pub").display()),
        ],
    );
    for (name, public, cert) in &keys {
        assert!(sshd.logs_in(&agent.sock, public), "{name} key login");
        assert!(sshd.logs_in(&agent.sock, cert), "{name} certificate login");
    }
    assert!(sshd.log_has("Accepted certificate ID \"p521\""));

    // ssh-add -d of a certificate removes it and leaves its key.
    for (name, public, cert) in &keys {
        let d = ssh_add(&agent.sock, &["-d", cert.to_str().expect("p")]);
        assert!(d.status.success(), "ssh-add -d {name} certificate");
        let now = listed(&agent.sock);
        assert!(
            !now.contains(&line_of(cert)),
            "{name} certificate still listed"
        );
        assert!(
            now.contains(&line_of(public)),
            "{name} key went with its certificate"
        );
    }

    // DSA: refused, and the agent's log says why.
    let dsa = keygen(&dir.0, "dsa", &["-t", "dsa"]);
    assert!(!ssh_add(&agent.sock, &[dsa.to_str().expect("p")])
        .status
        .success());
    assert!(!listed(&agent.sock).contains("ssh-dss"));
    assert!(
        eventually(5, || std::fs::read_to_string(&agent.log)
            .unwrap_or_default()
            .contains("DSA")),
        "no log line for the refused DSA key"
    );
}
