//! PKCS#11 keys in the agent (issue 23.7): `ssh-add -s PROVIDER` loads a
//! SoftHSM2 token's RSA and ECDSA keys into `mesh ssh-agent`, `ssh` logs
//! in with them through a real sshd (the token signs), `ssh-add -e`
//! unloads them; providers outside the allow-list and wrong PINs are
//! refused. Keys are put on the token as OpenSSH's own agent-pkcs11.sh
//! does: openssl makes them, `softhsm2-util --import` stores them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use mesh_tests::{can_run_sshd, eventually, require_tool, workspace_bin, Scratch, Sshd};

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "1234";

/// A private SoftHSM2 token (its own config and token directory).
struct Token {
    conf: PathBuf,
    slot: String,
    dir: PathBuf,
}

fn softhsm_available() -> bool {
    if !require_tool("softhsm2-util") || !require_tool("openssl") || !require_tool("ssh-keygen") {
        return false;
    }
    assert!(
        Path::new(SOFTHSM).exists(),
        "softhsm2 is installed without {SOFTHSM}"
    );
    true
}

fn run(c: &mut Command) -> Output {
    let o = c.output().expect("run");
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

impl Token {
    fn new(dir: &Path) -> Token {
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("token dir");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("conf");
        let o = run(Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", "mesh-test"])
            .args(["--pin", PIN, "--so-pin", "12345678"]));
        let out = String::from_utf8_lossy(&o.stdout);
        let slot = out.split_whitespace().last().expect("slot").to_string();
        Token {
            conf,
            slot,
            dir: dir.to_path_buf(),
        }
    }

    /// Make a key with `openssl genpkey ARGS`, import it with `id`, and
    /// return its OpenSSH public key file.
    fn import(&self, id: &str, genpkey: &[&str]) -> PathBuf {
        let key = self.dir.join(format!("key{id}"));
        let o = run(Command::new("openssl").arg("genpkey").args(genpkey));
        std::fs::write(&key, &o.stdout).expect("key");
        let pk8 = self.dir.join(format!("key{id}.p8"));
        run(Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&pk8));
        run(Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args([
                "--slot",
                &self.slot,
                "--label",
                &format!("key-{id}"),
                "--id",
                id,
            ])
            .args(["--pin", PIN, "--import"])
            .arg(&pk8));
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let o = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&key));
        let public = key.with_extension("pub");
        std::fs::write(&public, &o.stdout).expect("pub");
        public
    }
}

/// `mesh ssh-agent -D` on a socket of its own (an empty MESH_HOME: a
/// plain agent), its standard error in a file; killed on drop.
struct P11Agent {
    child: Child,
    sock: PathBuf,
    log: PathBuf,
    conf: PathBuf,
}

impl P11Agent {
    fn start(dir: &Path, token: &Token, extra: &[&str]) -> P11Agent {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).expect("home");
        let sock = dir.join("agent.sock");
        let log = dir.join("agent.log");
        let child = Command::new(workspace_bin("mesh"))
            .env("MESH_HOME", &home)
            .env("SOFTHSM2_CONF", &token.conf)
            .args(["ssh-agent", "-D", "-a"])
            .arg(&sock)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("mesh ssh-agent");
        assert!(eventually(10, || sock.exists()), "the agent did not start");
        P11Agent {
            child,
            sock,
            log,
            conf: token.conf.clone(),
        }
    }

    /// `ssh-add ARGS`, the PIN given through SSH_ASKPASS as a user would type it.
    fn ssh_add(&self, args: &[&str], pin: &str) -> Output {
        let askpass = self.sock.with_file_name(format!("askpass-{pin}"));
        std::fs::write(&askpass, format!("#!/bin/sh\necho {pin}\n")).expect("askpass");
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        Command::new("ssh-add")
            .args(args)
            .env("SSH_AUTH_SOCK", &self.sock)
            .env("SOFTHSM2_CONF", &self.conf)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null())
            .output()
            .expect("ssh-add")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ssh-add -L`; empty when the agent has no identities (ssh-add then exits 1).
    fn listed(&self) -> String {
        let o = self.ssh_add(&["-L"], "");
        if o.status.success() {
            String::from_utf8_lossy(&o.stdout).into_owned()
        } else {
            String::new()
        }
    }
}

impl Drop for P11Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

fn fingerprint(public: &Path) -> String {
    let o = run(Command::new("ssh-keygen").arg("-lf").arg(public));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

#[test]
fn token_keys_are_listed_log_in_through_sshd_and_are_removed() {
    if !softhsm_available() || !can_run_sshd() {
        return;
    }
    let s = Scratch::new("p11");
    let token = Token::new(&s.0);
    let keys = [
        token.import(
            "01",
            &["-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        token.import(
            "02",
            &["-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        token.import(
            "03",
            &["-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        ),
        token.import(
            "04",
            &["-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
        ),
    ];
    let agent = P11Agent::start(&s.0, &token, &[]);
    let added = agent.ssh_add(&["-s", SOFTHSM], PIN);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    // The agent lists what OpenSSH's own reader finds on the token.
    let download = run(Command::new("ssh-keygen")
        .env("SOFTHSM2_CONF", &token.conf)
        .args(["-D", SOFTHSM]));
    let listed = agent.listed();
    assert_eq!(
        sorted_lines(&listed),
        sorted_lines(&String::from_utf8_lossy(&download.stdout))
    );
    assert_eq!(listed.lines().count(), 4, "{listed}");

    // ssh logs in with each key, the token signing (rsa-sha2-512 for RSA);
    // ssh-add -T also has it sign ssh-rsa (SHA-1) for the RSA key.
    let all: Vec<String> = keys
        .iter()
        .map(|k| std::fs::read_to_string(k).expect("pub"))
        .collect();
    let authorized = s.path("authorized_keys");
    std::fs::write(&authorized, all.concat()).expect("authorized_keys");
    let sshd = Sshd::start(
        &s.path("sshd"),
        &[format!("AuthorizedKeysFile {}", authorized.display())],
    );
    for k in &keys {
        let t = agent.ssh_add(&["-T", k.to_str().expect("utf8")], "");
        assert!(
            t.status.success(),
            "{}: {}",
            k.display(),
            String::from_utf8_lossy(&t.stderr)
        );
        assert!(sshd.logs_in(&agent.sock, k), "{}", k.display());
        assert!(
            sshd.log_has(&fingerprint(k)),
            "sshd did not see {}",
            k.display()
        );
    }

    // -e unloads the provider: the keys are gone and cannot sign.
    let removed = agent.ssh_add(&["-e", SOFTHSM], "");
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert_eq!(agent.listed(), "");
    assert!(!sshd.logs_in(&agent.sock, &keys[1]));
    assert!(
        !agent.ssh_add(&["-e", SOFTHSM], "").status.success(),
        "removed twice"
    );
    // Loaded again, it serves again.
    assert!(agent.ssh_add(&["-s", SOFTHSM], PIN).status.success());
    assert!(sshd.logs_in(&agent.sock, &keys[0]));
}

#[test]
fn a_provider_outside_the_allow_list_is_refused() {
    if !softhsm_available() {
        return;
    }
    let s = Scratch::new("p11-allow");
    let token = Token::new(&s.0);
    token.import(
        "01",
        &["-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    // The same module, copied where the default list (/usr/lib*/*,/usr/local/lib*/*) does not reach.
    let copy = s.path("libsofthsm2-copy.so");
    std::fs::copy(SOFTHSM, &copy).expect("copy the module");
    let copy = copy.to_str().expect("utf8");
    let agent = P11Agent::start(&s.path("default"), &token, &[]);
    assert!(!agent.ssh_add(&["-s", copy], PIN).status.success());
    assert_eq!(agent.listed(), "");
    assert!(
        eventually(5, || agent.log().contains("outside the allow-list")),
        "{}",
        agent.log()
    );
    drop(agent);
    // With -P naming it, the same module loads: the list is what refused it.
    let allowed = format!("{}/*", s.0.display());
    let agent = P11Agent::start(&s.path("allowing"), &token, &["-P", &allowed]);
    let o = agent.ssh_add(&["-s", copy], PIN);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(agent.listed().lines().count(), 1);
}

#[test]
fn a_wrong_pin_is_refused_and_a_vanished_token_fails_signing_cleanly() {
    if !softhsm_available() {
        return;
    }
    let s = Scratch::new("p11-pin");
    let token = Token::new(&s.0);
    let key = token.import(
        "01",
        &["-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    let agent = P11Agent::start(&s.path("agent"), &token, &[]);
    assert!(!agent.ssh_add(&["-s", SOFTHSM], "9999").status.success());
    assert_eq!(agent.listed(), "");
    assert!(
        eventually(5, || agent.log().contains("PIN incorrect")),
        "{}",
        agent.log()
    );
    assert!(agent.ssh_add(&["-s", SOFTHSM], PIN).status.success());
    let key = key.to_str().expect("utf8");
    assert!(agent.ssh_add(&["-T", key], "").status.success());

    // The token goes away under the agent: signing fails, the agent lives on.
    run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &token.conf)
        .args(["--delete-token", "--token", "mesh-test"]));
    assert!(!agent.ssh_add(&["-T", key], "").status.success());
    assert!(
        eventually(5, || agent.log().contains("PKCS#11")),
        "{}",
        agent.log()
    );
    assert!(
        agent.ssh_add(&["-l"], "").status.success(),
        "the agent stopped answering"
    );
    assert!(agent.ssh_add(&["-e", SOFTHSM], "").status.success());
}
