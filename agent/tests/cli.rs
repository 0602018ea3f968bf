//! CLI tests of the `mesh` binary: the commands of the foundation issue,
//! their output on stdout, their errors (`mesh: error:` plus `hint:`) on
//! stderr, and their exit codes.
#![cfg(unix)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn mesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .env("MESH_KEYSTORE", "file")
        .env_remove("MESH_HOME")
        .stdin(Stdio::null())
        .output()
        .expect("run mesh")
}

fn ok(args: &[&str]) -> String {
    let o = mesh(args);
    assert!(
        o.status.success(),
        "mesh {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf8")
}

fn fails(args: &[&str]) -> String {
    let o = mesh(args);
    assert!(!o.status.success(), "mesh {args:?} should fail");
    assert!(o.stdout.is_empty(), "errors print nothing on stdout");
    let e = String::from_utf8(o.stderr).expect("utf8");
    assert!(e.starts_with("mesh: error: "), "{e}");
    e
}

fn mesh_in(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .env("MESH_KEYSTORE", "file")
        .env_remove("MESH_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mesh");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("stdin");
    c.wait_with_output().expect("wait mesh")
}

/// Secrets go on standard input, never argv.
fn ok_in(args: &[&str], input: &str) -> String {
    let o = mesh_in(args, input);
    assert!(
        o.status.success(),
        "mesh {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf8")
}

fn fails_in(args: &[&str], input: &str) -> String {
    let o = mesh_in(args, input);
    assert!(!o.status.success(), "mesh {args:?} should fail");
    assert!(o.stdout.is_empty(), "errors print nothing on stdout");
    let e = String::from_utf8(o.stderr).expect("utf8");
    assert!(e.starts_with("mesh: error: "), "{e}");
    e
}

/// A scratch directory, removed when the test ends (passed or failed).
struct Tmp(PathBuf);

impl std::ops::Deref for Tmp {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(tag: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("mesh-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    Tmp(d)
}

#[test]
fn hash_udf_of_a_file() {
    let d = tmp("hash");
    let f = d.join("value.txt");
    std::fs::write(&f, "UDF Data Value").expect("write");
    let f = f.to_str().expect("path");
    assert_eq!(
        ok(&["hash", "udf", "--content-type", "text/plain", f]).trim(),
        "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF"
    );
    assert_eq!(
        ok(&[
            "hash",
            "udf",
            "--content-type",
            "text/plain",
            "--bits",
            "100",
            f
        ])
        .trim(),
        "MDDK-7N6A-727A-JZNO-STRX"
    );
    assert_eq!(
        ok(&["hash", "udf", "--content-type", "text/plain", "--sha3", f]).trim(),
        "KCFI-NCQG-DRKG-47R7-OVPT-TCHZ-7UXY"
    );
    let j: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "hash",
        "udf",
        "--content-type",
        "text/plain",
        f,
    ]))
    .expect("json");
    assert_eq!(j["udf"], "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF");
    let e = fails(&["hash", "udf", "--bits", "60", f]);
    assert!(
        e.contains("precision of 60 bits") && e.contains("hint: "),
        "{e}"
    );
    let e = fails(&["hash", "udf", d.join("missing").to_str().expect("p")]);
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn hash_udf_of_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["hash", "udf", "--content-type", "text/plain", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"UDF Data Value")
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF"
    );
}

#[test]
fn random_values_have_their_types() {
    let n = ok(&["key", "nonce"]);
    assert!(n.starts_with('N') && n.trim().len() == 28 + 6, "{n}");
    assert_ne!(n, ok(&["key", "nonce"]));
    assert!(ok(&["key", "secret"]).starts_with('E'));
    let z = ok(&["key", "seed", "--type", "account"]);
    // 0xC8, then key spec 0x0102: "ZAAQ".
    assert!(z.starts_with("ZAAQ"), "{z}");
    let e = fails(&["key", "seed", "--type", "rsa"]);
    assert!(e.contains("invalid value 'rsa'"), "{e}");
    assert!(
        e.contains("hint: possible values: ed25519, x25519, device, account"),
        "{e}"
    );
}

#[test]
fn share_and_recover() {
    let secret = "3D02BCFAE7576B0F6958C79E71EC3352";
    let out = ok_in(
        &["key", "share", "--threshold", "3", "--shares", "5"],
        secret,
    );
    let shares: Vec<&str> = out.lines().collect();
    assert_eq!(shares.len(), 5);
    assert!(shares.iter().all(|s| s.starts_with("SA")));
    for pick in [[0, 1, 2], [0, 2, 4], [4, 3, 1]] {
        let input: Vec<&str> = pick.iter().map(|i| shares[*i]).collect();
        assert_eq!(ok_in(&["key", "recover"], &input.join("\n")).trim(), secret);
    }
    // All five: the extra two are checked against the first three.
    assert_eq!(
        ok_in(&["key", "recover"], &shares.join("\n")).trim(),
        secret
    );

    // Fewer than K.
    let e = fails_in(&["key", "recover"], &[shares[0], shares[1]].join("\n"));
    assert!(e.contains("2 share(s) given, 3 needed"), "{e}");
    // A repeated share.
    let e = fails_in(
        &["key", "recover"],
        &[shares[0], shares[1], shares[0]].join("\n"),
    );
    assert!(e.contains("same share"), "{e}");
    // A malformed share (not Base32), a share of another type, a truncated share.
    let e = fails_in(
        &["key", "recover"],
        &["SA1L-V73P", shares[1], shares[2]].join("\n"),
    );
    assert!(e.contains("share 1 is not a valid share"), "{e}");
    let e = fails_in(
        &["key", "recover"],
        &["MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF", shares[1], shares[2]].join("\n"),
    );
    assert!(
        e.contains("expected a share UDF, found a content digest UDF"),
        "{e}"
    );
    let short = &shares[2][..shares[2].len() - 2];
    let e = fails_in(
        &["key", "recover"],
        &[shares[0], shares[1], short].join("\n"),
    );
    // Depending on where the cut falls, the text is no share at all, or a
    // share of a shorter secret: either way a clear error, never a secret.
    assert!(
        e.contains("share 3 is not a valid share") || e.contains("share 3 is for a 15-byte secret"),
        "{e}"
    );
    // A mistyped character: detected when more than K shares are given.
    let typo = mistype(shares[1]);
    let e = fails_in(
        &["key", "recover"],
        &[shares[0], shares[2], shares[3], &typo].join("\n"),
    );
    assert!(e.contains("does not agree"), "{e}");
    // Bad arguments.
    let e = fails_in(
        &["key", "share", "--threshold", "4", "--shares", "3"],
        secret,
    );
    assert!(e.contains("hint:"), "{e}");
    let e = fails_in(
        &["key", "share", "--threshold", "2", "--shares", "3"],
        "xyz",
    );
    assert!(e.contains("not hex"), "{e}");
}

/// Change one character in the middle of a share to another Base32 letter.
fn mistype(share: &str) -> String {
    let mut c: Vec<char> = share.chars().collect();
    let i = 10;
    c[i] = if c[i] == 'A' { 'B' } else { 'A' };
    c.into_iter().collect()
}

#[test]
fn device_init_and_status() {
    let dir = tmp("dev");
    let home = dir.join("home");
    let h = home.to_str().expect("path");
    let s = ok(&["--home", h, "status"]);
    assert!(s.contains("device:   none"), "{s}");
    let udf = ok(&["--home", h, "device", "init", "--name", "laptop"]);
    assert!(udf.starts_with("MBQ"), "{udf}");
    let s: serde_json::Value =
        serde_json::from_str(&ok(&["--home", h, "--json", "status"])).expect("json");
    assert_eq!(s["device"], udf.trim());
    assert_eq!(s["keystore"], "file");
    let e = fails(&["--home", h, "device", "init"]);
    assert!(
        e.contains("already holds device") && e.contains("hint:"),
        "{e}"
    );
    // MESH_HOME is honoured.
    let o = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["--json", "status"])
        .env("MESH_HOME", h)
        .output()
        .expect("run");
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(s["device"], udf.trim());
    // Asking for another key store than the home uses is refused with a hint.
    let o = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["--home", h, "status"])
        .env("MESH_KEYSTORE", "os")
        .output()
        .expect("run");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("hint: set MESH_KEYSTORE=file"),
        "{e}"
    );
}

#[test]
fn completions_and_manual() {
    assert!(ok(&["completions", "bash"]).contains("mesh"));
    let page = ok(&["man"]);
    assert!(
        page.contains(".TH mesh"),
        "{}",
        &page[..page.len().min(200)]
    );
    let d = tmp("man");
    ok(&["man", "--output", d.to_str().expect("p")]);
    // A page for every subcommand, nested ones too, readable by man(1).
    for page in [
        "mesh.1",
        "mesh-key.1",
        "mesh-device-request.1",
        "mesh-smime-install.1",
        "mesh-agent-start.1",
    ] {
        let m = std::fs::metadata(d.join(page)).unwrap_or_else(|_| panic!("{page}"));
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
            0o644,
            "{page}"
        );
    }
}

#[test]
fn a_closed_pipe_ends_quietly() {
    for cmd in ["completions bash", "man", "key nonce"] {
        let o = Command::new("bash")
            .args([
                "-o",
                "pipefail",
                "-c",
                &format!("\"$MESH\" {cmd} | head -c 10 >/dev/null"),
            ])
            .env("MESH", env!("CARGO_BIN_EXE_mesh"))
            .output()
            .expect("bash");
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stderr.is_empty(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn bad_arguments_are_named_with_a_hint_before_anything_is_asked() {
    let d = tmp("args");
    let file = d.join("not-a-dir");
    std::fs::write(&file, "x").expect("file");
    let e = fails(&["--home", file.to_str().expect("p"), "device", "init"]);
    assert!(
        e.contains("is not a directory") && e.contains("hint: --home"),
        "{e}"
    );
    assert!(!e.contains("os error"), "{e}");
    // A profile UDF is checked here; the portal is never asked (port 1 is closed).
    let nonce = ok(&["key", "nonce"]);
    for bad in ["not a udf", nonce.trim()] {
        let e = fails(&[
            "ssh",
            "authorized-keys",
            "--account",
            bad,
            "--portal",
            "http://127.0.0.1:1",
        ]);
        assert!(
            e.contains("is not a profile UDF")
                && e.contains("hint: give the account's profile UDF"),
            "{e}"
        );
    }
}

#[test]
fn quickstart_shows_mesh_working_and_resumes() {
    let d = tmp("quick");
    let dir = d.join("q");
    let dir = dir.to_str().expect("path");
    let out = ok(&[
        "quickstart",
        "--dir",
        dir,
        "--listen",
        "127.0.0.1:0",
        "--once",
    ]);
    assert!(out.contains("Mesh is running."), "{out}");
    assert!(out.contains("laptop") && out.contains("phone"), "{out}");
    assert_eq!(out.matches(" active").count(), 2, "{out}");
    // Where the account's root went: the kit, one share per directory,
    // outside both device homes.
    let kits: Vec<String> = (1..=3).map(|i| format!("{dir}/recovery-{i}")).collect();
    assert!(
        out.contains(&format!("recovery: {}", kits.join(", "))),
        "{out}"
    );
    for kit in &kits {
        let shares = std::fs::read_dir(kit).expect("kit").count();
        assert_eq!(shares, 1, "{kit}: {out}");
    }
    assert!(
        out.contains("export SSH_AUTH_SOCK=") && out.contains("ssh-ed25519 AAAA"),
        "{out}"
    );
    // The commands it suggests run as printed: the binary by its own path.
    let bin = env!("CARGO_BIN_EXE_mesh");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(bin) && l.contains("device list"))
        .unwrap_or_else(|| panic!("{out}"));
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    let listed = Command::new(bin)
        .args(&args)
        .env("MESH_KEYSTORE", "file")
        .output()
        .expect("run");
    assert!(
        listed.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // The homes it made are real device homes.
    let show = ok(&[
        "--home",
        &format!("{dir}/phone"),
        "--json",
        "account",
        "show",
    ]);
    let v: serde_json::Value = serde_json::from_str(&show).expect("json");
    assert_eq!(v["roles"], serde_json::json!(["pgp", "smime", "ssh"]));
}

/// `account create --recovery`: one directory per share, apart, outside
/// every Mesh home; refused before any root exists (no portal is asked),
/// with a hint, and nothing written.
#[test]
fn the_recovery_kit_needs_one_place_per_share_outside_homes() {
    let d = tmp("kit");
    let home = d.join("home");
    let home_s = home.to_str().expect("path");
    ok(&["--home", home_s, "device", "init", "--name", "laptop"]);
    let p = |n: &str| d.join(n).display().to_string();
    let table: &[(String, &str)] = &[
        (p("usb1"), "1 recovery destination(s) for 1 shares"),
        (format!("{},{}", p("usb1"), p("usb1/x")), "are one place"),
        (
            format!("{},{}", p("usb1"), p("usb2/../usb1")),
            "are one place",
        ),
        (
            format!("{},{},{}", p("usb1"), p("usb2"), p("home/kit")),
            "is inside the Mesh home",
        ),
        (format!("{},-", p("usb1")), "is not a recovery destination"),
    ];
    for (recovery, want) in table {
        let e = fails(&[
            "--home",
            home_s,
            "account",
            "create",
            "alice@example.com",
            "--portal",
            "http://127.0.0.1:9",
            "--recovery",
            recovery,
        ]);
        assert!(
            e.contains(want) && e.contains("\nhint: "),
            "{recovery}: {e}"
        );
    }
    let e = fails(&[
        "--home",
        home_s,
        "account",
        "create",
        "alice@example.com",
        "--portal",
        "http://127.0.0.1:9",
        "--recovery",
        &format!("{},{}", p("usb1"), p("usb2")),
        "--shares",
        "3",
    ]);
    assert!(e.contains("2 recovery destination(s) for 3 shares"), "{e}");
    for n in ["usb1", "usb2"] {
        assert!(!d.join(n).exists(), "{n} was written");
    }
}

/// The quick start resumes after its own suggested `device revoke phone`
/// (issue 22.11): the revoked phone's home is kept aside and a new phone
/// joins in its place.
#[test]
fn quickstart_resumes_after_the_phone_is_revoked() {
    let d = tmp("quick-revoke");
    let dir = d.join("q").display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut running = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["quickstart", "--dir", &dir, "--listen", &listen])
        .env("MESH_KEYSTORE", "file")
        .env_remove("MESH_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("quickstart");
    let laptop = format!("{dir}/laptop");
    // Ready once the laptop lists its devices through the embedded portal.
    let mut ready = false;
    for _ in 0..300 {
        if mesh(&["--home", &laptop, "device", "list"])
            .status
            .success()
        {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ready, "the quick start did not come up");
    ok(&["--home", &laptop, "device", "revoke", "phone"]);
    let _ = Command::new("kill")
        .args(["-INT", &running.id().to_string()])
        .status();
    // Stopped (gracefully, or by the signal if it came before the handler).
    running.wait().expect("wait");

    let o = mesh(&["quickstart", "--dir", &dir, "--listen", &listen, "--once"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("its home is kept in {dir}/phone.revoked-1")),
        "{err}"
    );
    let phones: Vec<&str> = out.lines().filter(|l| l.contains(" phone ")).collect();
    assert!(
        phones.iter().any(|l| l.ends_with("revoked"))
            && phones.iter().any(|l| l.ends_with("active")),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "--home",
        &format!("{dir}/phone"),
        "--json",
        "account",
        "show",
    ]))
    .expect("json");
    assert_eq!(v["membership"], "member", "{v}");
}

/// Help a user reads first (issue 22.12): what Mesh is, not how it is
/// built; the environment it reads; `account` lists `history`, not the
/// refused `escrow`; the manual page says the same.
#[test]
fn help_speaks_to_users_and_names_the_environment() {
    let top = ok(&["--help"]);
    assert!(
        top.starts_with("Mesh: your public keys on all your devices"),
        "{top}"
    );
    let man = ok(&["man"]);
    for text in [&top, &man] {
        for var in ["MESH_HOME", "MESH_KEYSTORE", "MESH_PORTAL_CA"] {
            assert!(text.contains(var), "{var}: {text}");
        }
    }
    let account = ok(&["account", "--help"]);
    assert!(
        account.contains("history") && !account.contains("escrow"),
        "{account}"
    );
}

/// Errors that had no hint, or poor grammar (issue 22.12): each now names
/// the problem and says what to do.
#[test]
fn errors_name_the_problem_and_give_a_hint() {
    let d = tmp("hints");
    let home = d.join("home").display().to_string();
    let dir = d.display().to_string();
    let table: &[(&[&str], &str, &str)] = &[
        (
            &[
                "--home",
                &home,
                "device",
                "request",
                "alice@example.com",
                "--portal",
                "",
            ],
            "portal URL '': not a URL",
            "hint: give the portal's URL",
        ),
        (
            &["hash", "udf", "/nonexistent/file"],
            "cannot read /nonexistent/file",
            "hint: check the path",
        ),
        (
            &["key", "recover", "--from", &dir],
            "cannot read",
            "hint: give a file, not a directory",
        ),
    ];
    for (args, what, hint) in table {
        let e = fails(args);
        assert!(e.contains(what) && e.contains(hint), "{args:?}: {e}");
    }
    // "an", not "a", before a vowel.
    let secret = ok(&["key", "secret"]);
    let e = fails_in(
        &["key", "recover"],
        &format!("{}\n{}\n", secret.trim(), secret.trim()),
    );
    assert!(e.contains("found an encryption key UDF"), "{e}");
}
