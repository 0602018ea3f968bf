//! Windows builds under Wine: `mesh.exe` and the pipe client, cross-built
//! for `x86_64-pc-windows-gnu` (`.ci/run` builds them), each test in its
//! own Wine prefix (its own registry, Credential Manager and wineserver).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicUsize;

static CALLS: AtomicUsize = AtomicUsize::new(0);

use crate::require_tool;

/// The cross target's build directory (`target/x86_64-pc-windows-gnu/debug`).
pub fn windows_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test> → target
    let target = exe
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_default();
    target.join("x86_64-pc-windows-gnu").join("debug")
}

/// A Wine prefix of one test; its wineserver (and every Windows process
/// in it) is killed on drop.
#[derive(Debug)]
pub struct Wine {
    prefix: PathBuf,
    bin: PathBuf,
}

impl Wine {
    /// A new prefix under `dir`, or `None` (the test is skipped) where Wine,
    /// MinGW or the Windows build is missing; under `CI=true` each is a
    /// failure.
    pub fn new(dir: &Path) -> Option<Wine> {
        if !require_tool("wine") || !require_tool("x86_64-w64-mingw32-gcc") {
            return None;
        }
        let bin = windows_bin_dir();
        for exe in ["mesh.exe", "mesh-pipe-client.exe"] {
            if !bin.join(exe).is_file() {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{} is not built; CI builds it with `cargo build --target x86_64-pc-windows-gnu -p mesh-agent --no-default-features -p mesh-pipe-client`",
                    bin.join(exe).display()
                );
                eprintln!("skipping: {} is not built", bin.join(exe).display());
                return None;
            }
        }
        shim(&bin);
        let prefix = dir.join("wine");
        std::fs::create_dir_all(&prefix).expect("wine prefix");
        Some(Wine { prefix, bin })
    }

    /// `wine EXE ARGS` in this prefix: no Wine debug output, and the
    /// Linux test's key store setting not passed on (a Windows home keeps
    /// its key in Credential Manager).
    pub fn command(&self, exe: &str, args: &[&str]) -> Command {
        let mut c = Command::new("wine");
        c.arg(self.bin.join(exe))
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env_remove("MESH_KEYSTORE")
            .env_remove("MESH_HOME")
            .env_remove("SSH_AUTH_SOCK");
        c
    }

    /// Run `cmd` with `input` on standard input. Its output goes through
    /// files, not pipes: a Windows process it starts (the agent) inherits
    /// the Unix descriptors under Wine and would hold a pipe open.
    pub fn output(&self, mut cmd: Command, input: &[u8]) -> Output {
        use std::io::Write;
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.prefix.with_extension(format!("{n}.out"));
        let err = self.prefix.with_extension(format!("{n}.err"));
        cmd.stdin(Stdio::piped())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"));
        let mut child = cmd.spawn().expect("wine");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).expect("stdin");
        drop(stdin);
        let status = child.wait().expect("wine");
        Output {
            status,
            stdout: std::fs::read(&out).unwrap_or_default(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        }
    }

    /// `mesh.exe --home HOME ARGS`.
    pub fn mesh(&self, home: &str, args: &[&str]) -> Output {
        self.mesh_input(home, args, "")
    }

    /// [`Wine::mesh`] that must succeed; its stdout.
    pub fn mesh_ok(&self, home: &str, args: &[&str]) -> String {
        let o = self.mesh(home, args);
        assert!(
            o.status.success(),
            "mesh.exe {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// [`Wine::mesh`] with `input` on standard input.
    pub fn mesh_input(&self, home: &str, args: &[&str], input: &str) -> Output {
        let mut a = vec!["--home", home];
        a.extend_from_slice(args);
        self.output(self.command("mesh.exe", &a), input.as_bytes())
    }

    /// The pipe client against `pipe`, `input` on its standard input.
    pub fn pipe_client(&self, pipe: &str, args: &[&str], input: &[u8]) -> Output {
        let mut a = vec![pipe];
        a.extend_from_slice(args);
        self.output(self.command("mesh-pipe-client.exe", &a), input)
    }

    /// `mesh.exe ssh-agent-relay` under this prefix, as one command line
    /// for `mesh agent wsl-bridge --relay` (WSL would run `mesh.exe
    /// ssh-agent-relay` through its interop instead).
    pub fn relay_command(&self) -> String {
        format!(
            "env WINEPREFIX='{}' WINEDEBUG=-all wine '{}' ssh-agent-relay",
            self.prefix.display(),
            self.bin.join("mesh.exe").display()
        )
    }

    /// The generic credentials Mesh keeps in this prefix's Credential
    /// Manager (Wine keeps them in the registry; `reg query` reads them
    /// through the wineserver, not from a file it may not have flushed).
    pub fn mesh_credentials(&self) -> Vec<String> {
        let mut c = Command::new("wine");
        c.args(["reg", "query", r"HKCU\Software\Wine\Credential Manager"])
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all");
        let o = self.output(c, b"");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("mesh-device-store"))
            .map(str::to_string)
            .collect()
    }

    /// One of Wine's own programs (`reg`, `wineboot`) in this prefix.
    pub fn program(&self, args: &[&str]) -> Output {
        let mut c = Command::new("wine");
        c.args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all");
        self.output(c, b"")
    }

    /// A Windows path for `p` (Wine's drive Z: is the Linux root).
    pub fn path(p: &Path) -> String {
        format!("Z:{}", p.display()).replace('/', "\\")
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", &self.prefix)
            .status();
    }
}

/// Wine 8 has no `bcryptprimitives.dll`, whose `ProcessPrng` Rust's
/// standard library imports: build the test-only shim beside the
/// executables once (tests/wine/bcryptprimitives.c).
fn shim(bin: &Path) {
    let dll = bin.join("bcryptprimitives.dll");
    if dll.is_file() {
        return;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("wine");
    let tmp = bin.join(format!("bcryptprimitives.{}.tmp", std::process::id()));
    let ok = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(&tmp)
        .arg(src.join("bcryptprimitives.c"))
        .arg(src.join("bcryptprimitives.def"))
        .arg("-ladvapi32")
        .status()
        .expect("x86_64-w64-mingw32-gcc");
    assert!(ok.success(), "building the ProcessPrng shim");
    // Tests running at once: the first rename wins, the others are the same file.
    let _ = std::fs::rename(&tmp, &dll);
    let _ = std::fs::remove_file(&tmp);
}
