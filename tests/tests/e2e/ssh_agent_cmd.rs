//! `mesh ssh-agent` (issue 23.5 and 23.6): ssh-agent(1)'s command line,
//! output and COMMAND mode, driven with the real ssh-add and ssh-keygen;
//! and a same-user debugger refused by the agent (PR_SET_DUMPABLE 0).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mesh_tests::{eventually, require_tool, ssh_add, workspace_bin, Device, PortalProc, Scratch};

/// `mesh ssh-agent ARGS` with a home that has no account (a plain agent).
fn agent_cmd(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(workspace_bin("mesh"));
    c.arg("--home")
        .arg(home)
        .arg("ssh-agent")
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SSH_AGENT_PID")
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

/// A background agent started by `eval`-able output: its socket and pid;
/// killed on drop.
struct Started {
    sock: PathBuf,
    pid: u32,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// A foreground agent, killed on drop (a failed assertion included).
struct Fg(std::process::Child);

impl Drop for Fg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Parse ssh-agent's three lines, in the Bourne or C shell form, checking
/// each word of them.
fn parse(out: &str, csh: bool) -> Started {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let value = |line: &str, name: &str| -> String {
        if csh {
            let v = line.strip_prefix(&format!("setenv {name} ")).expect(line);
            v.strip_suffix(';').expect(line).to_string()
        } else {
            let v = line.strip_prefix(&format!("{name}=")).expect(line);
            v.strip_suffix(&format!("; export {name};"))
                .expect(line)
                .to_string()
        }
    };
    let sock = PathBuf::from(value(lines[0], "SSH_AUTH_SOCK"));
    let pid: u32 = value(lines[1], "SSH_AGENT_PID").parse().expect("pid");
    assert_eq!(lines[2], format!("echo Agent pid {pid};"));
    Started { sock, pid }
}

#[test]
fn the_output_is_ssh_agents_and_k_kills_the_agent_it_names() {
    if !require_tool("ssh-add") {
        return;
    }
    let dir = Scratch::new("ssh-agent-out");
    // (arguments, $SHELL, C shell output)
    let cases: &[(&[&str], &str, bool)] = &[
        (&["-s"], "/bin/sh", false),
        (&["-c"], "/bin/sh", true),
        (&[], "/bin/tcsh", true),
        (&[], "/bin/bash", false),
        (&["-s"], "/bin/csh", false),
    ];
    for (args, shell, csh) in cases {
        let o = agent_cmd(&dir.path("home"), args)
            .env("SHELL", shell)
            .output()
            .expect("run");
        let (out, err) = text(&o);
        assert!(o.status.success(), "{args:?}: {err}");
        let a = parse(&out, *csh);
        // $TMPDIR/ssh-XXXXXXXXXX/agent.<pid>, 0600 in a 0700 directory.
        let d = a.sock.parent().expect("dir");
        let name = d.file_name().expect("name").to_string_lossy().into_owned();
        assert!(
            name.starts_with("ssh-") && name.len() == 14,
            "{}",
            a.sock.display()
        );
        let file = a
            .sock
            .file_name()
            .expect("f")
            .to_string_lossy()
            .into_owned();
        assert!(file.starts_with("agent."), "{file}");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!((mode(d), mode(&a.sock)), (0o700, 0o600));
        // It serves: no identities (exit 1), not "cannot connect" (2).
        assert_eq!(ssh_add(&a.sock, &["-l"]).status.code(), Some(1));

        let kill_args: Vec<&str> = args.iter().copied().chain(["-k"]).collect();
        let k = agent_cmd(&dir.path("home"), &kill_args)
            .env("SHELL", shell)
            .env("SSH_AGENT_PID", a.pid.to_string())
            .output()
            .expect("-k");
        let unset = if *csh { "unsetenv" } else { "unset" };
        assert_eq!(
            text(&k).0,
            format!(
                "{unset} SSH_AUTH_SOCK;\n{unset} SSH_AGENT_PID;\necho Agent pid {} killed;\n",
                a.pid
            ),
            "{args:?} {shell}"
        );
        assert!(eventually(10, || !alive(a.pid)), "the agent still runs");
        assert!(!a.sock.exists() && !d.exists(), "socket or directory left");
    }
    // -k without an agent to kill, or with a bad pid: exit 1, and why.
    for pid in [None, Some("1"), Some("x")] {
        let mut c = agent_cmd(&dir.path("home"), &["-k"]);
        if let Some(p) = pid {
            c.env("SSH_AGENT_PID", p);
        }
        let o = c.output().expect("-k");
        assert_eq!(o.status.code(), Some(1), "{pid:?}");
        assert!(text(&o).1.contains("SSH_AGENT_PID"), "{:?}", text(&o));
    }
}

#[test]
fn command_runs_with_the_agent_and_its_exit_status_is_the_status() {
    if !require_tool("ssh-add") {
        return;
    }
    let dir = Scratch::new("ssh-agent-cmd");
    for status in [0, 3, 42] {
        let pidfile = dir.path(&format!("pid{status}"));
        let script = format!(
            "echo \"$SSH_AGENT_PID $SSH_AUTH_SOCK\" > {}; ssh-add -l >/dev/null 2>&1; [ $? -eq 1 ] || exit 99; exit {status}",
            pidfile.display()
        );
        let o = agent_cmd(&dir.path("home"), &["sh", "-c", &script])
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(status), "{:?}", text(&o));
        let seen = std::fs::read_to_string(&pidfile).expect("pidfile");
        let (pid, sock) = seen.trim().split_once(' ').expect("both variables");
        let pid: u32 = pid.parse().expect("pid");
        // The agent exits with COMMAND, and takes its socket along.
        assert!(
            eventually(10, || !alive(pid)),
            "agent {pid} outlived COMMAND"
        );
        assert!(!Path::new(sock).exists(), "{sock} left behind");
    }
    // A COMMAND that cannot run: exit 1, and no agent left behind.
    let o = agent_cmd(&dir.path("home"), &["/nonexistent/cmd"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("cannot run /nonexistent/cmd"),
        "{:?}",
        text(&o)
    );
    // COMMAND with an output or foreground flag is a usage error.
    let o = agent_cmd(&dir.path("home"), &["-s", "true"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("COMMAND cannot be given"),
        "{:?}",
        text(&o)
    );
}

#[test]
fn a_link_named_ssh_agent_is_mesh_ssh_agent() {
    let dir = Scratch::new("ssh-agent-link");
    let link = dir.path("ssh-agent");
    std::os::unix::fs::symlink(workspace_bin("mesh"), &link).expect("link");
    let o = Command::new(&link)
        .args(["sh", "-c", "test -S \"$SSH_AUTH_SOCK\" && exit 5"])
        .env("MESH_HOME", dir.path("home"))
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(5), "{:?}", text(&o));
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let o = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-C", name, "-f"])
        .arg(&p)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success());
    p
}

#[test]
fn t_is_the_default_lifetime_and_ssh_add_t_overrides_it() {
    if !require_tool("ssh-add") || !require_tool("ssh-keygen") {
        return;
    }
    let dir = Scratch::new("ssh-agent-t");
    let o = agent_cmd(&dir.path("home"), &["-s", "-t", "2s"])
        .output()
        .expect("run");
    let a = parse(&text(&o).0, false);
    let short = keygen(&dir.0, "short");
    let long = keygen(&dir.0, "long");
    assert!(ssh_add(&a.sock, &[short.to_str().expect("p")])
        .status
        .success());
    assert!(ssh_add(&a.sock, &["-t", "1h", long.to_str().expect("p")])
        .status
        .success());
    let list = || text(&ssh_add(&a.sock, &["-l"])).0;
    assert!(list().contains("short"), "{}", list());
    assert!(eventually(10, || !list().contains("short")), "{}", list());
    assert!(
        list().contains("long"),
        "ssh-add -t did not override -t: {}",
        list()
    );
    // A lifetime that is no time is refused.
    let o = agent_cmd(&dir.path("home"), &["-s", "-t", "1x"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("Invalid lifetime"), "{:?}", text(&o));
}

#[test]
fn a_binds_there_and_an_existing_file_is_refused() {
    if !require_tool("ssh-add") {
        return;
    }
    let dir = Scratch::new("ssh-agent-a");
    let sock = dir.path("my.sock");
    let o = agent_cmd(&dir.path("home"), &["-s", "-a", sock.to_str().expect("p")])
        .output()
        .expect("run");
    let a = parse(&text(&o).0, false);
    assert_eq!(a.sock, sock);
    let mode = std::fs::metadata(&sock).expect("sock").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = agent_cmd(&dir.path("home"), &["-s", "-a", sock.to_str().expect("p")])
        .output()
        .expect("run");
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).1.contains("hint:"), "{:?}", text(&again));
    // The first one still serves on it.
    assert_eq!(ssh_add(&sock, &["-l"]).status.code(), Some(1));
}

#[test]
fn d_stays_in_the_foreground_and_tells_on_standard_error() {
    use std::io::BufRead;
    if !require_tool("ssh-add") {
        return;
    }
    let dir = Scratch::new("ssh-agent-d");
    let sock = dir.path("d.sock");
    let mut child = agent_cmd(&dir.path("home"), &["-d", "-a", sock.to_str().expect("p")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("out"));
    let (mut l1, mut l2) = (String::new(), String::new());
    out.read_line(&mut l1).expect("line");
    out.read_line(&mut l2).expect("line");
    // No SSH_AGENT_PID in the foreground modes: the pid is this process's.
    assert_eq!(
        l1,
        format!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;\n", sock.display())
    );
    assert_eq!(l2, format!("echo Agent pid {};\n", child.id()));
    assert_eq!(ssh_add(&sock, &["-l"]).status.code(), Some(1));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("err"), &mut err).expect("read");
    assert!(
        err.contains("new connection") && err.contains("exiting"),
        "{err}"
    );
    assert!(!sock.exists(), "socket left behind");
}

#[test]
fn with_an_account_the_devices_mesh_key_is_served() {
    if !require_tool("ssh-add") {
        return;
    }
    let dir = Scratch::new("ssh-agent-mesh");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, "alice@example.com", &portal.url);
    let public = a.ok(&["ssh", "public-key"]);
    let blob = public.split_whitespace().nth(1).expect("key").to_string();
    let o = a
        .command(&["ssh-agent", "sh", "-c", "ssh-add -L"])
        .output()
        .expect("run");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains(&blob), "the Mesh key is not served: {out}");
    // Without an account: a plain agent, empty.
    let o = agent_cmd(&dir.path("plain"), &["sh", "-c", "ssh-add -L"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
}

/// Run `args` as an unprivileged user: nobody when the tests run as root
/// (as in CI), else this user.
fn as_user(args: &[&str]) -> Command {
    let root = my_uid() == 0;
    let mut c = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        c.args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    c.stdin(Stdio::null());
    c
}

fn my_uid() -> u32 {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("proc"))
}

/// What a same-user process gets of `pid`: (its environment readable, gdb attached).
fn spy(pid: u32) -> (bool, String) {
    let env = as_user(&["cat", &format!("/proc/{pid}/environ")])
        .output()
        .expect("cat");
    let gdb = as_user(&[
        "gdb",
        "-nx",
        "-p",
        &pid.to_string(),
        "-batch",
        "-ex",
        "info proc",
    ])
    .output()
    .expect("gdb");
    let (o, e) = text(&gdb);
    (env.status.success(), format!("{o}{e}"))
}

#[test]
fn a_same_user_debugger_cannot_attach_to_the_agent() {
    if !require_tool("gdb") || !require_tool("setpriv") {
        return;
    }
    let dir = Scratch::new("ssh-agent-ptrace");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    // The binary where the unprivileged user can run it.
    let mesh = dir.path("mesh");
    std::fs::copy(workspace_bin("mesh"), &mesh).expect("copy");
    std::fs::set_permissions(&mesh, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = dir.path("home");
    let home = home.to_str().expect("p");

    // The control: a process of that user that is dumpable is readable
    // and attachable, so a refusal below is the agent's own doing.
    let mut sleeper = as_user(&["sleep", "60"]).spawn().expect("sleep");
    // setpriv is not dumpable between its setuid and its exec of sleep.
    let exe = format!("/proc/{}/exe", sleeper.id());
    assert!(eventually(10, || std::fs::read_link(&exe)
        .is_ok_and(|p| p.ends_with("sleep"))));
    let (env, gdb) = spy(sleeper.id());
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(
        env && gdb.contains("exe = "),
        "the control was refused: {gdb}"
    );

    // The daemonized agent (the re-executed background process) ...
    let sock = dir.path("bg.sock");
    let o = as_user(&[
        mesh.to_str().expect("p"),
        "--home",
        home,
        "ssh-agent",
        "-s",
        "-a",
        sock.to_str().expect("p"),
    ])
    .output()
    .expect("agent");
    assert!(o.status.success(), "{:?}", text(&o));
    let bg = parse(&text(&o).0, false);
    // ... and one in the foreground (-D).
    let fg_sock = dir.path("fg.sock");
    let fg = Fg(as_user(&[
        mesh.to_str().expect("p"),
        "--home",
        home,
        "ssh-agent",
        "-D",
        "-a",
        fg_sock.to_str().expect("p"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("agent -D"));
    assert!(eventually(10, || fg_sock.exists()), "-D did not bind");
    for pid in [bg.pid, fg.0.id()] {
        let (env, gdb) = spy(pid);
        assert!(!env, "pid {pid}: its environment is readable");
        assert!(
            gdb.contains("ptrace: Operation not permitted") && !gdb.contains("exe = "),
            "pid {pid}: gdb attached: {gdb}"
        );
    }
    drop(fg);
}
