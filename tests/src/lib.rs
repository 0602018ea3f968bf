//! `mesh-tests`: end-to-end tests that drive the real `mesh` and
//! `mesh-portal` binaries and real peers (ssh, sshd, ssh-add, gpg, sq,
//! openssl, NSS tools) on loopback. This library holds the shared harness:
//! the binaries, a portal process, device homes, and tool checks.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub mod liar;
pub mod pg;
pub mod proxy;
pub mod raw;
pub mod wine;

pub use pg::{Backend, PortalDb, Val};
pub use wine::Wine;

/// Path of a workspace binary next to the running test executable
/// (`target/<profile>/NAME`). `cargo test --workspace` builds the `mesh`
/// and `mesh-portal` binaries before running tests, because their crates
/// have integration tests.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(PathBuf::from)
        .unwrap_or_default();
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is not built; run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// Whether a peer tool is installed. Under `CI=true` a missing tool fails
/// the test instead of skipping it.
pub fn require_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI=true but is not installed"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// libfaketime's multithreaded library (`LD_PRELOAD` for a process that
/// runs threads, as the agent and the portal do).
pub fn faketime_library() -> String {
    std::fs::read_dir("/usr/lib")
        .expect("/usr/lib")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.is_file())
        .expect("libfaketimeMT.so.1 (package faketime)")
        .display()
        .to_string()
}

/// A fresh scratch directory, removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new directory under the system temp dir.
    pub fn new(tag: &str) -> Scratch {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let nanos = format!(
            "{nanos}-{}",
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let d = std::env::temp_dir().join(format!("mesh-e2e-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        Scratch(d)
    }

    /// A path inside.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A `mesh-portal` process on 127.0.0.1, stopped (SIGTERM) on drop.
#[derive(Debug)]
pub struct PortalProc {
    child: Child,
    /// Its URL.
    pub url: String,
    /// Its data directory.
    pub data: PathBuf,
    /// Its database (the SQLite file in `data`, or a PostgreSQL database).
    pub db: PortalDb,
}

impl PortalProc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Start a portal with its data in `data`; returns once it listens
    /// (it prints its URL only after binding).
    pub fn start(data: &Path) -> PortalProc {
        Self::start_with(data, &[])
    }

    /// Start with extra arguments (e.g. TLS files).
    pub fn start_with(data: &Path, extra: &[&str]) -> PortalProc {
        Self::start_on(data, "127.0.0.1:0", extra)
    }

    /// Start on `listen` (e.g. the port of a portal stopped before).
    pub fn start_on(data: &Path, listen: &str, extra: &[&str]) -> PortalProc {
        Self::start_db(&PortalDb::Sqlite(data.to_path_buf()), listen, extra)
    }

    /// Start a portal on `backend`: for SQLite its data in `data`, for
    /// PostgreSQL a new database of the shared test server.
    pub fn on(backend: Backend, data: &Path) -> PortalProc {
        Self::on_with(backend, data, &[])
    }

    /// The same with extra arguments.
    pub fn on_with(backend: Backend, data: &Path, extra: &[&str]) -> PortalProc {
        Self::start_db(&PortalDb::new(backend, data), "127.0.0.1:0", extra)
    }

    /// Start a portal process on `db` (another process may serve it too).
    pub fn start_db(db: &PortalDb, listen: &str, extra: &[&str]) -> PortalProc {
        Self::start_cmd(
            Command::new(workspace_bin("mesh-portal")),
            db,
            listen,
            extra,
        )
    }

    /// Start a portal on SQLite in `data` under a wrapper command (e.g.
    /// `prlimit --nofile=64:64 --`).
    pub fn start_under(wrapper: &[&str], data: &Path, extra: &[&str]) -> PortalProc {
        Self::start_under_on(wrapper, data, "127.0.0.1:0", extra)
    }

    /// [`PortalProc::start_under`] on `listen` (a portal restarted under
    /// another clock keeps its URL).
    pub fn start_under_on(
        wrapper: &[&str],
        data: &Path,
        listen: &str,
        extra: &[&str],
    ) -> PortalProc {
        let (first, rest) = wrapper.split_first().expect("a wrapper command");
        let mut cmd = Command::new(first);
        cmd.args(rest).arg(workspace_bin("mesh-portal"));
        let db = PortalDb::Sqlite(data.to_path_buf());
        Self::start_cmd(cmd, &db, listen, extra)
    }

    fn start_cmd(mut cmd: Command, db: &PortalDb, listen: &str, extra: &[&str]) -> PortalProc {
        let data = match db {
            PortalDb::Sqlite(d) => d.clone(),
            PortalDb::Postgres(_) => PathBuf::new(),
        };
        let mut child = cmd
            .args(["serve", "--listen", listen])
            .args(db.args())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mesh-portal");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("portal URL");
        assert!(line.starts_with("http"), "portal did not start: {line:?}");
        PortalProc {
            child,
            url: line.trim().to_string(),
            data,
            db: db.clone(),
        }
    }

    /// Kill with SIGKILL (no shutdown, no drain) and wait for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop with SIGTERM and return the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait portal")
    }
}

impl Drop for PortalProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.wait();
        }
    }
}

/// One device: a `mesh` home.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its home directory.
    pub home: PathBuf,
}

impl Device {
    /// A device whose home is `dir/name`.
    pub fn new(dir: &Path, name: &str) -> Device {
        Device {
            home: dir.join(name),
        }
    }

    /// Run `mesh --home HOME ARGS` (file key store).
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run mesh")
    }

    /// The command, for callers that spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(workspace_bin("mesh"));
        c.arg("--home")
            .arg(&self.home)
            .args(args)
            .env("MESH_KEYSTORE", "file")
            .stdin(Stdio::null());
        c
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "mesh {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf8")
    }

    /// Run with `input` on standard input (secrets never go on argv) and
    /// require success; returns stdout.
    pub fn ok_input(&self, args: &[&str], input: &str) -> String {
        let o = self.run_input(args, input);
        assert!(
            o.status.success(),
            "mesh {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf8")
    }

    /// Run with `input` on standard input and require failure; returns stderr.
    pub fn fails_input(&self, args: &[&str], input: &str) -> String {
        let o = self.run_input(args, input);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "mesh {args:?} should fail");
        assert!(err.contains("mesh: error: "), "{err}");
        err
    }

    /// Run with `input` on standard input.
    pub fn run_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut c = self.command(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("run mesh");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait mesh")
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            !o.status.success(),
            "mesh {args:?} should fail; stdout: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(err.contains("mesh: error: "), "{err}");
        err
    }

    /// Where `mesh account create` on this device writes its recovery kit:
    /// `--recovery`'s three directories, one per share (beside the home, as
    /// on USB sticks: never inside it).
    pub fn kit(&self) -> String {
        self.kit_n(3)
    }

    /// [`Device::kit`] for `n` shares.
    pub fn kit_n(&self, n: usize) -> String {
        let dirs: Vec<String> = self.kit_dirs()[..n]
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(",")
    }

    /// The directories [`Device::kit`] names (up to 15, for `kit_n`).
    pub fn kit_dirs(&self) -> Vec<PathBuf> {
        (1..=15)
            .map(|i| PathBuf::from(format!("{}.kit/share-{i:02}", self.home.display())))
            .collect()
    }

    /// The recovery kit's shares, one per directory, in order.
    pub fn kit_files(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for d in self.kit_dirs().iter().filter(|d| d.exists()) {
            let files: Vec<PathBuf> = std::fs::read_dir(d)
                .expect("recovery kit")
                .map(|e| e.expect("entry").path())
                .collect();
            assert_eq!(files.len(), 1, "one share per directory: {files:?}");
            v.extend(files);
        }
        v
    }

    /// `mesh account create ADDRESS --portal PORTAL`, the kit to [`Device::kit`];
    /// returns the profile UDF.
    pub fn create(&self, address: &str, portal: &str) -> String {
        self.ok(&[
            "account",
            "create",
            address,
            "--portal",
            portal,
            "--recovery",
            &self.kit(),
        ])
        .trim()
        .to_string()
    }

    /// `dir/a`, the first administrator (device `laptop`) of a new account.
    pub fn create_account(dir: &Path, address: &str, portal: &str) -> Device {
        let a = Device::new(dir, "a");
        a.ok(&[
            "account",
            "create",
            address,
            "--portal",
            portal,
            "--device",
            "laptop",
            "--recovery",
            &a.kit(),
        ]);
        a
    }

    /// Join `admin`'s account: request, accept on the administrator (default
    /// roles), complete with a sync.
    pub fn join(&self, admin: &Device, address: &str, portal: &str, name: &str) {
        let w = self.ok(&[
            "device", "request", address, "--portal", portal, "--name", name,
        ]);
        admin.ok(&["device", "accept", w.trim()]);
        self.ok(&["sync"]);
    }

    /// `--json` output parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).expect("json output")
    }
}

/// A private sshd on 127.0.0.1 (no PAM, public keys only), stopped on drop.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    /// Its port.
    pub port: u16,
    /// Its log.
    pub log: PathBuf,
    /// A known_hosts file pinning its host key.
    pub known_hosts: PathBuf,
    /// Its host public key line.
    pub host_key: String,
}

/// Whether this process can run sshd (root).
pub fn can_run_sshd() -> bool {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "sshd tests need root under CI=true"
        );
        eprintln!("skipping: sshd tests need root");
        return false;
    }
    require_tool("sshd")
        && require_tool("ssh")
        && require_tool("ssh-keygen")
        && require_tool("ssh-add")
}

/// Set the fetch time of a server's cache file (`mesh ssh authorized-keys
/// --cache`), as an attacker with write access to it (or a clock) would:
/// the header's in format 2, the only object's in format 1.
pub fn set_cache_fetched(file: &Path, fetched: u64) {
    let raw = std::fs::read_to_string(file).expect("read the cache");
    let (first, rest) = raw.split_once('\n').unwrap_or((&raw, ""));
    let mut v: serde_json::Value = serde_json::from_str(first).expect("cache header");
    v["fetched"] = fetched.into();
    let sep = if raw.contains('\n') { "\n" } else { "" };
    std::fs::write(file, format!("{v}{sep}{rest}")).expect("write the cache");
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Sshd {
    /// Start sshd in `dir` with extra `sshd_config` lines (AuthorizedKeysFile,
    /// AuthorizedKeysCommand, TrustedUserCAKeys, RevokedKeys, HostCertificate…).
    /// A host key already at `dir/host_ed25519` is kept (a test may certify it first).
    pub fn start(dir: &Path, extra: &[String]) -> Sshd {
        std::fs::create_dir_all(dir).expect("dir");
        let _ = std::fs::create_dir_all("/run/sshd");
        let host = dir.join("host_ed25519");
        if !host.exists() {
            let o = Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "mesh-test-host",
                    "-f",
                ])
                .arg(&host)
                .output()
                .expect("ssh-keygen");
            assert!(o.status.success());
        }
        let port = free_port();
        let config = dir.join("sshd_config");
        let mut c = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             AuthenticationMethods publickey\nPermitRootLogin prohibit-password\nAllowUsers root\nLogLevel VERBOSE\n",
            host.display(),
            dir.join("sshd.pid").display()
        );
        for l in extra {
            c.push_str(l);
            c.push('\n');
        }
        std::fs::write(&config, c).expect("config");
        let t = Command::new("/usr/sbin/sshd")
            .arg("-t")
            .arg("-f")
            .arg(&config)
            .output()
            .expect("sshd -t");
        assert!(
            t.status.success(),
            "sshd -t: {}",
            String::from_utf8_lossy(&t.stderr)
        );
        let log = dir.join("sshd.log");
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .spawn()
            .expect("sshd");
        let host_key = std::fs::read_to_string(host.with_extension("pub")).expect("host pub");
        let known_hosts = dir.join("known_hosts");
        let kh: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}\n", kh.join(" ")),
        )
        .expect("known_hosts");
        // Wait until it accepts connections.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Sshd {
            child,
            port,
            log,
            known_hosts,
            host_key,
        }
    }

    /// Log in as root through the agent at `sock`, offering only the key or
    /// certificate in `identity` (a public file); returns ssh's output.
    pub fn login(&self, sock: &Path, identity: &Path, extra: &[&str]) -> Output {
        let nonce = format!("mesh-login-{}", std::process::id());
        Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-p",
                &self.port.to_string(),
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
            ])
            .arg("-o")
            .arg(format!("IdentityAgent={}", sock.display()))
            .args(["-o", "IdentitiesOnly=yes"])
            .arg("-o")
            .arg(format!("IdentityFile={}", identity.display()))
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .args(extra)
            .args(["root@127.0.0.1", "echo", &nonce])
            .stdin(Stdio::null())
            .output()
            .expect("ssh")
    }

    /// Whether a login succeeded and ran the command.
    pub fn logs_in(&self, sock: &Path, identity: &Path) -> bool {
        let o = self.login(sock, identity, &[]);
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("mesh-login-")
    }

    /// Wait (up to 5 s) until the log contains `needle`.
    pub fn log_has(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .contains(needle)
            {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `ssh-add ARGS` against the agent at `sock`.
pub fn ssh_add(sock: &Path, args: &[&str]) -> Output {
    Command::new("ssh-add")
        .args(args)
        .env("SSH_AUTH_SOCK", sock)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-add")
}

/// Poll `f` until it is true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A copy of a workspace binary where sshd accepts an AuthorizedKeysCommand:
/// sshd refuses commands with a group- or world-writable path component
/// (such as a checkout under /tmp). Removed on drop.
#[derive(Debug)]
pub struct SafeBin {
    dir: PathBuf,
    /// The copied binary.
    pub path: PathBuf,
}

impl SafeBin {
    /// Copy `name` to a root-owned 0755 directory under /usr/local/lib.
    pub fn copy(name: &str) -> SafeBin {
        use std::os::unix::fs::PermissionsExt;
        // One directory per copy: tests in one process run at once, and
        // each removes its own copy when done.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(format!(
            "/usr/local/lib/mesh-tests-{}-{n}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("safe dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = dir.join(name);
        std::fs::copy(workspace_bin(name), &path).expect("copy binary");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        SafeBin { dir, path }
    }
}

impl Drop for SafeBin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running agent for a device, stopped on drop.
#[derive(Debug)]
pub struct RunningAgent {
    /// The device.
    pub dev: Device,
    /// Its SSH_AUTH_SOCK.
    pub sock: PathBuf,
    /// Its process.
    pub pid: u32,
    env: Vec<(String, String)>,
}

impl RunningAgent {
    /// Start `dev`'s agent (sync every second).
    pub fn start(dev: &Device) -> RunningAgent {
        Self::start_with(dev, &[])
    }

    /// The same, with extra environment.
    pub fn start_with(dev: &Device, env: &[(&str, &str)]) -> RunningAgent {
        let mut c = dev.command(&["--json", "agent", "start", "--interval", "1s"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().expect("agent start");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        RunningAgent {
            dev: dev.clone(),
            sock: PathBuf::from(v["ssh_auth_sock"].as_str().expect("sock")),
            pid: v["pid"].as_u64().expect("pid") as u32,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// `ssh-add -l`.
    pub fn identities(&self) -> String {
        String::from_utf8_lossy(&ssh_add(&self.sock, &["-l"]).stdout).to_string()
    }

    /// Its log (`agent.log` next to its socket, where `mesh agent start`
    /// sends its standard error).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.sock.with_file_name("agent.log")).unwrap_or_default()
    }

    /// Whether its process has exited (a zombie has).
    pub fn exited(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "Z" || state == "X"),
            Err(_) => true,
        }
    }
}

/// The lines of an agent's log that contain every one of `words`, each
/// checked to start with an RFC 3339 UTC time (`2026-11-22T10:00:00Z`).
pub fn log_lines(log: &str, words: &[&str]) -> Vec<String> {
    let lines: Vec<String> = log
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(String::from)
        .collect();
    for l in &lines {
        let t = l.split_whitespace().next().unwrap_or_default();
        let b = t.as_bytes();
        assert!(
            t.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z',
            "a log line without its time: {l}"
        );
    }
    lines
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let mut c = self.dev.command(&["agent", "stop"]);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        let _ = c.output();
    }
}

/// Connect to the portal at `url`, send `partial` (a request that never
/// ends) and return whether the portal closes the connection within 8 s
/// (a blocking read, not a sleep).
pub fn closed_by_peer(url: &str, partial: &[u8]) -> bool {
    use std::io::{Read, Write};
    let addr = url.rsplit('/').next().unwrap_or_default();
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(partial).expect("write");
    s.set_read_timeout(Some(std::time::Duration::from_secs(8)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An answer (e.g. 408) is read on to the close.
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}
