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
    let agent = Arc::new(
        Agent::new(None)
            .with_providers(providers)
            .with_log(log_line),
    );
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

    fn listed(&self) -> Vec<String> {
        let out = self.run("ssh-add", &["-L"]);
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
    let a = start(mesh_ssh::sk::DEFAULT_ALLOWED);
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
