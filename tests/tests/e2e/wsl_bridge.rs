//! The WSL bridge (issue 26): `mesh agent wsl-bridge` listening on a Unix
//! socket and running `mesh ssh-agent-relay` for each connection, driven
//! with the real ssh-add and ssh against a running Mesh agent and a
//! loopback sshd; and what it refuses: socket paths another user could
//! control or that something serves, relays that cannot start or reach
//! the agent, one connection past the cap.
//!
//! The relay comes from one function ([`RelayFor`]): here the Linux
//! `mesh` binary. A Wine variant (`wine mesh.exe ssh-agent-relay` to an
//! agent on Wine's named pipe) builds its own [`Through`] and calls
//! [`Through::check`]: the same bridge, the same ssh-add and login.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_tests::{
    can_run_sshd, eventually, require_tool, ssh_add, workspace_bin, Device, PortalProc,
    RunningAgent, Scratch, Sshd,
};

const ADDR: &str = "alice@example.com";

/// The relay command line the bridge runs to reach the agent at `agent`.
pub(crate) type RelayFor = fn(&Path) -> String;

/// The Linux relay: this build's `mesh ssh-agent-relay --socket AGENT`.
pub(crate) fn linux_relay(agent: &Path) -> String {
    format!(
        "'{}' ssh-agent-relay --socket '{}'",
        workspace_bin("mesh").display(),
        agent.display()
    )
}

/// A running `mesh agent wsl-bridge`, killed on drop; its standard error
/// is gathered as it comes.
pub(crate) struct Bridge {
    child: Child,
    err: Arc<Mutex<String>>,
}

impl Bridge {
    /// Start a bridge on `sock` with `relay`; returns once it printed its
    /// environment line (it binds first), checking that line.
    pub(crate) fn start(home: &Path, sock: &Path, relay: &str, extra: &[&str]) -> Bridge {
        let (b, line) = Bridge::spawn(bridge_cmd(home, sock, relay, extra));
        assert_eq!(
            line,
            format!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;\n", sock.display()),
            "{}",
            b.log()
        );
        b
    }

    /// Start `c` (a `mesh agent wsl-bridge`); returns with the first line
    /// it printed.
    fn spawn(mut c: Command) -> (Bridge, String) {
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the bridge");
        let err = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = err.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log").push_str(&format!("{line}\n"));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the bridge's first line");
        (Bridge { child, err }, line)
    }

    /// What it said on standard error so far.
    pub(crate) fn log(&self) -> String {
        self.err.lock().expect("log").clone()
    }

    /// Whether it still runs.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The relays it runs now (its child processes).
    fn relays(&self) -> usize {
        let pid = self.child.id();
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .filter_map(|t| t.ok())
                    .map(|t| std::fs::read_to_string(t.path().join("children")).unwrap_or_default())
                    .map(|c| c.split_whitespace().count())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// SIGTERM, and its exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let s = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(s.success());
        self.child.wait().expect("wait")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mesh agent wsl-bridge` on `sock` (the default socket when empty).
fn bridge_cmd(home: &Path, sock: &Path, relay: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(workspace_bin("mesh"));
    c.arg("--home").arg(home).args(["agent", "wsl-bridge"]);
    if !sock.as_os_str().is_empty() {
        c.arg("--socket").arg(sock);
    }
    c.args(["--relay", relay]).args(extra).stdin(Stdio::null());
    c
}

/// Run a bridge that must refuse to start: its standard error. One that
/// starts (prints its environment line) is killed and fails the test.
fn refused(mut c: Command, what: &str) -> String {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    if !line.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}: the bridge started: {line}");
    }
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{what}: {err}");
    assert!(
        err.contains("mesh: error: ") && err.contains("hint: "),
        "{what}: {err}"
    );
    err
}

/// A plain `mesh ssh-agent -D` (a home without an account) at `sock`,
/// killed on drop.
struct PlainAgent(Child);

impl PlainAgent {
    fn start(home: &Path, sock: &Path) -> PlainAgent {
        let child = Command::new(workspace_bin("mesh"))
            .arg("--home")
            .arg(home)
            .args(["ssh-agent", "-D", "-a"])
            .arg(sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent -D");
        assert!(eventually(10, || UnixStream::connect(sock).is_ok()));
        PlainAgent(child)
    }
}

impl Drop for PlainAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SSH_AGENTC_REQUEST_IDENTITIES on `s`: the answer's type byte, or
/// `None` when the bridge closed the connection instead (a blocking read
/// with a generous timeout, not a sleep).
fn ask(s: &mut UnixStream) -> Option<u8> {
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(&[0, 0, 0, 1, 11]).ok()?;
    let mut head = [0u8; 5];
    s.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut rest = vec![0u8; len - 1];
    s.read_exact(&mut rest).ok()?;
    Some(head[4])
}

/// A new connection to `sock`, asked once.
fn ask_new(sock: &Path) -> Option<u8> {
    ask(&mut UnixStream::connect(sock).ok()?)
}

/// SSH_AGENT_IDENTITIES_ANSWER.
const ANSWER: u8 = 12;

#[test]
fn wsl_bridge_carries_ssh_add_and_an_ssh_login() {
    carries_ssh_add_and_an_ssh_login(linux_relay);
}

/// A joined device's agent, reached only through the bridge: `ssh-add -l`
/// lists its key and certificate, ssh logs in with the certificate, each
/// relay ends with its connection, and SIGTERM removes the socket.
pub(crate) fn carries_ssh_add_and_an_ssh_login(relay: RelayFor) {
    if !can_run_sshd() {
        return;
    }
    let dir = Scratch::new("wsl-bridge");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    a.create(ADDR, &portal.url);
    a.ok(&["ssh", "principals", "root", "alice"]);
    let ca = dir.path("ca.pub");
    std::fs::write(&ca, a.ok(&["ssh", "ca"])).expect("ca");
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[
            "AuthorizedKeysFile none".into(),
            format!("TrustedUserCAKeys {}", ca.display()),
        ],
    );
    let agent = RunningAgent::start(&a);
    let cert = dir.path("a-cert.pub");
    std::fs::write(&cert, a.ok(&["ssh", "cert"])).expect("cert");
    let direct = agent.identities();
    assert!(direct.contains("(ED25519-CERT)"), "{direct}");

    let through = Through {
        relay: relay(&agent.sock),
        listed: &|l: &str| l == direct,
        sshd: &sshd,
        identity: &cert,
        accepted: "Accepted certificate ID \"laptop@alice@example.com\"",
    };
    through.check(&dir.path("wsl"));
}

/// What a bridge must carry: `ssh-add -l` (its output judged by
/// `listed`) and an ssh login with `identity`, through `relay`. The
/// Linux test and a Wine variant (its own agent, its own relay) share it.
pub(crate) struct Through<'a> {
    /// The relay command line.
    pub relay: String,
    /// Whether `ssh-add -l`'s output through the bridge is the agent's.
    pub listed: &'a dyn Fn(&str) -> bool,
    /// A server that accepts `identity`.
    pub sshd: &'a Sshd,
    /// The public key or certificate to log in with.
    pub identity: &'a Path,
    /// What sshd logs for that login.
    pub accepted: &'a str,
}

impl Through<'_> {
    /// Start a bridge on a socket in `dir` and check it all: the socket's
    /// modes, `ssh-add -l`, the login, every relay gone after its client,
    /// and the socket removed at SIGTERM.
    pub(crate) fn check(&self, dir: &Path) {
        let sock = dir.join("agent.sock");
        let bridge = Bridge::start(&dir.join("home"), &sock, &self.relay, &[]);
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!((mode(dir), mode(&sock)), (0o700, 0o600));
        let mut listed = String::new();
        assert!(
            eventually(30, || {
                let o = ssh_add(&sock, &["-l"]);
                listed = String::from_utf8_lossy(&o.stdout).into_owned();
                o.status.success() && (self.listed)(&listed)
            }),
            "through the bridge: {listed}\n{}",
            bridge.log()
        );
        assert!(
            self.sshd.logs_in(&sock, self.identity),
            "ssh through the bridge\n{}",
            bridge.log()
        );
        assert!(self.sshd.log_has(self.accepted));
        // Every relay ended with its client.
        assert!(eventually(10, || bridge.relays() == 0), "{}", bridge.log());

        let status = bridge.stop();
        assert!(status.success(), "{status}");
        assert!(
            !sock.exists(),
            "the socket is removed when the bridge stops"
        );
    }
}

/// Socket paths the bridge refuses, each with its reason and a hint, and
/// a stale socket of this user's it replaces.
#[test]
fn wsl_bridge_refuses_socket_paths_others_control_or_something_serves() {
    if !require_tool("ssh-add") {
        return;
    }
    let dir = Scratch::new("wsl-paths");
    let home = dir.path("home");
    let root = my_uid() == 0;
    let relay = linux_relay(&dir.path("none.sock"));
    let private = |name: &str| {
        let d = dir.path(name);
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        d
    };
    // A listener kept open for the "live" case: it answers connects.
    let live = private("live").join("s");
    let _listener = std::os::unix::net::UnixListener::bind(&live).expect("bind");
    let shared = private("shared");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let file = private("file").join("s");
    std::fs::write(&file, "not a socket").expect("file");
    let mut cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "a directory others can write",
            shared.join("s"),
            "not a directory only you can write",
        ),
        ("a live socket", live.clone(), "something answers on"),
        ("a file that is no socket", file.clone(), "is not a socket"),
    ];
    if root {
        // Another user's directory, and another user's (stale) socket.
        let theirs = private("theirs");
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown");
        cases.push((
            "another user's directory",
            theirs.join("s"),
            "owner uid 65534",
        ));
        let stale = private("stale-theirs").join("s");
        drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
        std::os::unix::fs::lchown(&stale, Some(65534), Some(65534)).expect("chown");
        cases.push(("another user's socket", stale, "belongs to uid 65534"));
    }
    for (what, sock, says) in &cases {
        let err = refused(bridge_cmd(&home, sock, &relay, &[]), what);
        assert!(err.contains(says), "{what}: {err}");
    }
    assert!(
        live.exists() && file.exists(),
        "refused paths are left alone"
    );
    assert!(UnixStream::connect(&live).is_ok());

    // A stale socket of this user's (nothing answers) is replaced.
    let stale = private("stale").join("s");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let (b, line) = Bridge::spawn(bridge_cmd(&home, &stale, &relay, &["--json"]));
    let v: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(v["ssh_auth_sock"], stale.display().to_string(), "{v}");
    assert_eq!(v["pid"], b.child.id(), "{v}");
    assert_eq!(v["max_connections"], 64, "{v}");
    assert_eq!(v["relay"][1], "ssh-agent-relay", "{v}");
    assert!(UnixStream::connect(&stale).is_ok(), "{}", b.log());

    // Without --socket: $XDG_RUNTIME_DIR/mesh/wsl-ssh-agent.sock, the
    // directory made 0700.
    let runtime = private("runtime");
    let mut c = bridge_cmd(&home, Path::new(""), &relay, &[]);
    c.env("XDG_RUNTIME_DIR", &runtime);
    let (d, line) = Bridge::spawn(c);
    let default = runtime.join("mesh/wsl-ssh-agent.sock");
    assert_eq!(
        line,
        format!(
            "SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;\n",
            default.display()
        ),
        "{}",
        d.log()
    );
    let mode = std::fs::metadata(runtime.join("mesh"))
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(UnixStream::connect(&default).is_ok(), "{}", d.log());

    // A relay that is not there is said at start, naming it.
    let missing = "/nonexistent/mesh.exe ssh-agent-relay";
    let err = refused(
        bridge_cmd(&home, &dir.path("fresh/s"), missing, &[]),
        "no relay",
    );
    assert!(
        err.contains("`/nonexistent/mesh.exe` was not found"),
        "{err}"
    );
    assert!(err.contains("--relay"), "{err}");
    assert!(!dir.path("fresh/s").exists());
}

fn my_uid() -> u32 {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("proc"))
}

/// Relays that fail: the program is gone, or it cannot reach the agent.
/// The client's connection is closed, the bridge says why (the relay's
/// own error passed on, named) and serves the next connection.
#[test]
fn wsl_bridge_survives_relays_that_fail() {
    let dir = Scratch::new("wsl-relays");
    let agent_sock = dir.path("agent.sock");
    let _agent = PlainAgent::start(&dir.path("agent-home"), &agent_sock);
    let script = dir.path("relay.sh");
    let good = format!("#!/bin/sh\nexec {}\n", linux_relay(&agent_sock));
    let write = |text: &str| {
        std::fs::write(&script, text).expect("script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    write(&good);
    let sock = dir.path("wsl/s");
    let mut bridge = Bridge::start(&dir.path("home"), &sock, &script.display().to_string(), &[]);
    assert_eq!(ask_new(&sock), Some(ANSWER), "{}", bridge.log());
    let unreachable = format!("#!/bin/sh\nexec {}\n", linux_relay(&dir.path("gone.sock")));
    // (what breaks the relay, what the bridge's log then says)
    let cases: &[(&str, Option<&str>, &[&str])] = &[
        (
            "the relay program is gone",
            None,
            &["was not found", "hint: install Mesh for Windows"],
        ),
        (
            "the relay cannot reach the agent",
            Some(&unreachable),
            &["mesh: error: cannot connect to the agent at", "exited with"],
        ),
    ];
    for (what, text, says) in cases {
        match text {
            Some(t) => write(t),
            None => std::fs::remove_file(&script).expect("rm"),
        }
        assert_eq!(ask_new(&sock), None, "{what}: the connection is closed");
        assert!(
            eventually(10, || says.iter().all(|s| bridge.log().contains(s))),
            "{what}: {}",
            bridge.log()
        );
        if text.is_some() {
            // The relay's own words come prefixed with it.
            assert!(bridge
                .log()
                .lines()
                .any(|l| l.starts_with("mesh agent wsl-bridge: relay ")
                    && l.contains("mesh: error: cannot connect")));
        }
        assert!(bridge.alive(), "{what}: the bridge exited");
        write(&good);
        assert_eq!(ask_new(&sock), Some(ANSWER), "{what}: {}", bridge.log());
    }
}

/// With `--max-connections 2`, a third connection at once is closed with
/// a log line while the two keep working; once one closes, a new one is
/// served.
#[test]
fn wsl_bridge_refuses_connections_past_its_cap() {
    let dir = Scratch::new("wsl-cap");
    let agent_sock = dir.path("agent.sock");
    let _agent = PlainAgent::start(&dir.path("agent-home"), &agent_sock);
    let sock = dir.path("wsl/s");
    let bridge = Bridge::start(
        &dir.path("home"),
        &sock,
        &linux_relay(&agent_sock),
        &["--max-connections", "2"],
    );
    let mut first = UnixStream::connect(&sock).expect("connect");
    let mut second = UnixStream::connect(&sock).expect("connect");
    assert_eq!(ask(&mut first), Some(ANSWER), "{}", bridge.log());
    assert_eq!(ask(&mut second), Some(ANSWER), "{}", bridge.log());
    assert_eq!(ask_new(&sock), None, "the third is closed");
    assert!(
        eventually(10, || bridge
            .log()
            .contains("refused a connection: 2 already open")),
        "{}",
        bridge.log()
    );
    assert_eq!(ask(&mut first), Some(ANSWER), "the first still works");
    assert_eq!(ask(&mut second), Some(ANSWER), "the second still works");
    drop(first);
    assert!(
        eventually(10, || ask_new(&sock) == Some(ANSWER)),
        "a slot is free again: {}",
        bridge.log()
    );
}

/// Another user's connection is closed unanswered and logged, even with
/// the socket and its directory opened up to everyone; this user's is
/// still served.
#[test]
fn wsl_bridge_closes_other_users_connections() {
    if my_uid() != 0 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "another user's connection needs root under CI=true"
        );
        eprintln!("skipping: another user's connection needs root");
        return;
    }
    if !require_tool("setpriv") {
        return;
    }
    let dir = Scratch::new("wsl-peer");
    let agent_sock = dir.path("agent.sock");
    let _agent = PlainAgent::start(&dir.path("agent-home"), &agent_sock);
    let sock = dir.path("wsl/s");
    let bridge = Bridge::start(&dir.path("home"), &sock, &linux_relay(&agent_sock), &[]);
    let open = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
    };
    open(&dir.0, 0o755);
    open(&dir.path("wsl"), 0o755);
    open(&sock, 0o666);
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c"])
        .arg(format!(
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(10)\ns.connect({:?})\n\
             try:\n s.sendall(bytes([0,0,0,1,11]))\n d=s.recv(10)\nexcept (ConnectionResetError, BrokenPipeError):\n d=b''\n\
             sys.exit(0 if d==b'' else 1)",
            sock.to_str().expect("path")
        ))
        .output()
        .expect("setpriv");
    assert!(
        o.status.success(),
        "another user got an answer: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        eventually(10, || bridge
            .log()
            .contains("refused a connection from uid Some(65534)")),
        "{}",
        bridge.log()
    );
    assert_eq!(ask_new(&sock), Some(ANSWER), "{}", bridge.log());
}
