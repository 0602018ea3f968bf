//! Keys and certificates that OpenSSH's own tools make, added to the agent
//! with the real `ssh-add` and used with the real `ssh-keygen -Y` (issue
//! 23.1–23.4): certificates valid "forever", short ECDSA scalars, ECDSA
//! and security-key certificates, DSA refused.
//!
//! Each test makes its keys at run time with `ssh-keygen`. Without the
//! tools a test is skipped, except under `CI=true`, where that fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mesh_ssh::agent::Agent;
use mesh_ssh::options::{AgentOptions, DEFAULT_PKCS11_ALLOWLIST};

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static N: AtomicUsize = AtomicUsize::new(0);

fn log_line(s: &str) {
    LOG.lock().expect("log").push(s.to_owned());
}

/// Whether `tool` runs; under `CI=true` its absence fails the test.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("-?").output().is_ok();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI=true"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    ok
}

/// A running agent on a socket in a fresh directory.
struct Running {
    dir: PathBuf,
    sock: PathBuf,
    _rt: tokio::runtime::Runtime,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(providers: &str) -> Running {
    let dir = std::env::temp_dir().join(format!(
        "mesh-ssh-keys-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let sock = dir.join("agent.sock");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let options = AgentOptions {
        pkcs11_allowlist: providers.into(),
        ..AgentOptions::default()
    };
    let agent = Arc::new(Agent::new(None).with_options(options).with_log(log_line));
    let listener = rt
        .block_on(async { tokio::net::UnixListener::bind(&sock) })
        .expect("bind");
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(mesh_ssh::server::serve(stream, agent.clone()));
        }
    });
    Running { dir, sock, _rt: rt }
}

impl Running {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .args(args)
            .env("SSH_AUTH_SOCK", &self.sock)
            .env_remove("SSH_ASKPASS")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run tool")
    }

    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ssh-keygen -t TYPE` into NAME (no passphrase).
    fn keygen(&self, ty: &str, name: &str, extra: &[&str]) -> PathBuf {
        let p = self.path(name);
        let mut args = vec!["-q", "-N", "", "-t", ty, "-f", p.to_str().expect("utf8")];
        args.extend_from_slice(extra);
        self.ok("ssh-keygen", &args);
        p
    }

    /// A certificate for NAME.pub signed by CA (`ssh-keygen -s`), with extra options.
    fn certify(&self, ca: &Path, name: &Path, extra: &[&str]) -> PathBuf {
        let pubkey = format!("{}.pub", name.display());
        let mut args = vec![
            "-q",
            "-s",
            ca.to_str().expect("utf8"),
            "-I",
            "test",
            "-n",
            "estragon",
        ];
        args.extend_from_slice(extra);
        args.push(&pubkey);
        self.ok("ssh-keygen", &args);
        PathBuf::from(format!("{}-cert.pub", name.display()))
    }

    /// `ssh-add KEY` (with its certificate, when there is one); then the
    /// private key file is moved away, so that what signs is the agent.
    fn add(&self, key: &Path, extra: &[&str]) {
        let mut args = extra.to_vec();
        args.push(key.to_str().expect("utf8"));
        self.ok("ssh-add", &args);
        std::fs::rename(key, key.with_extension("moved")).expect("move the private key away");
    }

    fn listed(&self) -> Vec<String> {
        let out = self.run("ssh-add", &["-L"]);
        if !out.status.success() {
            // "The agent has no identities." (exit 1).
            return Vec::new();
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// Sign a file through the agent with the key or certificate in
    /// `public` and check the signature with `ssh-keygen -Y check-novalidate`.
    fn sign_and_check(&self, public: &Path) {
        let msg = self.path("message");
        std::fs::write(&msg, b"hello from the agent test\n").expect("message");
        let sig = self.path("message.sig");
        let _ = std::fs::remove_file(&sig);
        let pubs = public.to_str().expect("utf8");
        self.ok(
            "ssh-keygen",
            &[
                "-Y",
                "sign",
                "-n",
                "file",
                "-f",
                pubs,
                msg.to_str().expect("utf8"),
            ],
        );
        let check = Command::new("ssh-keygen")
            .args(["-Y", "check-novalidate", "-n", "file", "-s"])
            .arg(&sig)
            .stdin(std::fs::File::open(&msg).expect("open"))
            .output()
            .expect("check");
        assert!(
            check.status.success(),
            "signature by {pubs} does not verify: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

fn key_line(p: &Path) -> String {
    let s = std::fs::read_to_string(p).expect("read public");
    s.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

#[test]
fn certificates_valid_forever_add_sign_and_delete() {
    if !have("ssh-keygen") || !have("ssh-add") {
        return;
    }
    let a = start(DEFAULT_PKCS11_ALLOWLIST);
    let ca = a.keygen("ed25519", "ca", &[]);
    for (name, validity) in [("k1", None), ("k2", Some("always:forever"))] {
        let key = a.keygen("ed25519", name, &[]);
        let extra: Vec<&str> = validity.iter().flat_map(|v| ["-V", *v]).collect();
        let cert = a.certify(&ca, &key, &extra);
        // ssh-keygen writes valid_before = 2^64-1: "forever".
        let shown = a.ok("ssh-keygen", &["-L", "-f", cert.to_str().expect("utf8")]);
        assert!(shown.contains("forever"), "{shown}");
        a.ok("ssh-add", &[key.to_str().expect("utf8")]);
        let listed = a.listed();
        assert!(
            listed.contains(&key_line(&cert)),
            "certificate not listed: {listed:?}"
        );
        a.sign_and_check(&cert);
        a.ok("ssh-add", &["-d", cert.to_str().expect("utf8")]);
        let listed = a.listed();
        assert!(
            !listed.contains(&key_line(&cert)),
            "certificate not deleted"
        );
        assert!(listed.contains(&key_line(&PathBuf::from(format!("{}.pub", key.display())))));
    }
}

fn public_of(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

/// The length of an ECDSA key's private scalar as `ssh-keygen` wrote it
/// (an mpint: leading zero bytes dropped), from its unencrypted
/// `openssh-key-v1` file (PROTOCOL.key).
fn scalar_len(key: &Path) -> usize {
    fn u32_at(r: &mut &[u8]) -> usize {
        let n = u32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize;
        *r = &r[4..];
        n
    }
    fn string<'a>(r: &mut &'a [u8]) -> &'a [u8] {
        let n = u32_at(r);
        let (s, rest) = r.split_at(n);
        *r = rest;
        s
    }
    let text = std::fs::read_to_string(key).expect("read key");
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let raw = data_encoding::BASE64
        .decode(b64.as_bytes())
        .expect("base64");
    let mut r = &raw[15..]; // "openssh-key-v1\0"
    for _ in 0..3 {
        string(&mut r); // cipher, kdf, kdf options
    }
    assert_eq!(u32_at(&mut r), 1);
    string(&mut r); // public key
    let mut p = string(&mut r);
    u32_at(&mut p);
    u32_at(&mut p); // check ints
    for _ in 0..3 {
        string(&mut p); // type, curve, Q
    }
    let d = string(&mut p);
    d.iter().skip_while(|&&b| b == 0).count()
}

#[test]
fn short_p521_scalars_from_ssh_keygen_are_accepted() {
    if !have("ssh-keygen") || !have("ssh-add") {
        return;
    }
    let a = start(DEFAULT_PKCS11_ALLOWLIST);
    // About half of all P-521 scalars are below 2^520 and written in 65
    // bytes or fewer; make keys until there is one (and one full-width).
    let (mut short, mut full) = (None, None);
    for i in 0..64 {
        let key = a.keygen("ecdsa", &format!("p521-{i}"), &["-b", "521"]);
        match scalar_len(&key) {
            66 => full = full.or(Some(key)),
            _ => short = short.or(Some(key)),
        }
        if short.is_some() && full.is_some() {
            break;
        }
    }
    for key in [
        short.expect("a short scalar in 64 keys"),
        full.expect("a full one"),
    ] {
        a.add(&key, &[]);
        a.sign_and_check(&public_of(&key));
    }
}

#[test]
fn ecdsa_rsa_and_ed25519_keys_and_certificates_sign() {
    if !have("ssh-keygen") || !have("ssh-add") {
        return;
    }
    let a = start(DEFAULT_PKCS11_ALLOWLIST);
    let ca = a.keygen("ed25519", "ca", &[]);
    for (ty, bits) in [
        ("ecdsa", "256"),
        ("ecdsa", "384"),
        ("ecdsa", "521"),
        ("rsa", "3072"),
        ("ed25519", "256"),
    ] {
        let key = a.keygen(ty, &format!("{ty}{bits}"), &["-b", bits]);
        let cert = a.certify(&ca, &key, &["-V", "-5m:+1h"]);
        a.add(&key, &[]);
        let listed = a.listed();
        assert!(
            listed.contains(&key_line(&cert)),
            "{ty}-{bits} certificate not listed"
        );
        assert!(
            listed.contains(&key_line(&public_of(&key))),
            "{ty}-{bits} key not listed"
        );
        a.sign_and_check(&cert);
        a.sign_and_check(&public_of(&key));
    }
}

#[test]
fn dsa_is_refused_with_a_logged_reason() {
    if !have("ssh-keygen") || !have("ssh-add") {
        return;
    }
    let a = start(DEFAULT_PKCS11_ALLOWLIST);
    let key = a.keygen("dsa", "dsa", &[]);
    let out = a.run("ssh-add", &[key.to_str().expect("utf8")]);
    assert!(!out.status.success(), "ssh-add of a DSA key succeeded");
    assert!(a.listed().is_empty());
    let log = LOG.lock().expect("log").clone();
    assert!(
        log.iter().any(|l| l.contains("DSA") && l.contains("hint:")),
        "{log:?}"
    );
}

/// OpenSSH's test FIDO middleware (Debian's `openssh-tests`).
const SK_DUMMY: &str = "/usr/lib/openssh/regress/misc/sk-dummy/sk-dummy.so";

fn have_sk() -> bool {
    let ok = Path::new(SK_DUMMY).is_file() && Path::new(&mesh_ssh::sk::helper_path()).is_file();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{SK_DUMMY} and ssh-sk-helper are required under CI=true (openssh-tests)"
        );
        eprintln!("skipped: no sk-dummy provider or ssh-sk-helper");
    }
    ok
}

#[test]
fn security_keys_and_their_certificates_sign_through_the_provider() {
    if !have("ssh-keygen") || !have("ssh-add") || !have_sk() {
        return;
    }
    let a = start(DEFAULT_PKCS11_ALLOWLIST);
    let ca = a.keygen("ed25519", "ca", &[]);
    for ty in ["ed25519-sk", "ecdsa-sk"] {
        let key = a.keygen(ty, ty, &["-w", SK_DUMMY]);
        let cert = a.certify(&ca, &key, &[]);
        a.add(&key, &["-S", SK_DUMMY]);
        let listed = a.listed();
        assert!(
            listed.contains(&key_line(&cert)),
            "{ty} certificate not listed"
        );
        a.sign_and_check(&cert);
        a.sign_and_check(&public_of(&key));
    }
    // A provider outside the allow-list is refused, and the refusal logged.
    let copy = a.path("sk-copy.so");
    std::fs::copy(SK_DUMMY, &copy).expect("copy provider");
    let key = a.keygen("ed25519-sk", "outside", &["-w", SK_DUMMY]);
    let out = a.run(
        "ssh-add",
        &[
            "-S",
            copy.to_str().expect("utf8"),
            key.to_str().expect("utf8"),
        ],
    );
    assert!(
        !out.status.success(),
        "a provider outside the allow-list was accepted"
    );
    let log = LOG.lock().expect("log").clone();
    assert!(log.iter().any(|l| l.contains("not allowed")), "{log:?}");
}
