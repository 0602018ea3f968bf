//! OpenPGP with real GnuPG and sq (issue: OpenPGP), following
//! ../shared/recipes/gpg_subkeys.sh.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mesh_tests::{require_tool, Device, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

fn gpg(home: &Path, args: &[&str], input: Option<&Path>) -> Output {
    let mut c = Command::new("gpg");
    c.arg("--homedir")
        .arg(home)
        .args([
            "--batch",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--status-fd",
            "2",
        ])
        .args(args);
    if let Some(i) = input {
        c.stdin(std::fs::File::open(i).expect("input"));
    }
    c.output().expect("gpg")
}

fn home(dir: &Path, name: &str) -> PathBuf {
    let h = dir.join(name);
    std::fs::create_dir_all(&h).expect("home");
    std::fs::set_permissions(&h, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    h
}

fn stop_agents(homes: &[&Path]) {
    for h in homes {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(h)
            .args(["--kill", "all"])
            .output();
    }
}

fn colons(home: &Path, secret: bool) -> String {
    let o = gpg(
        home,
        &[
            "--with-colons",
            if secret {
                "--list-secret-keys"
            } else {
                "--list-keys"
            },
        ],
        None,
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn gnupg_devices_sign_decrypt_and_see_revocation() {
    if !require_tool("gpg") || !require_tool("sq") {
        return;
    }
    let dir = Scratch::new("pgp");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    a.ok(&[
        "account",
        "create",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "Alice",
        "--recovery",
        &a.kit(),
    ]);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    let (ga, gb, gc) = (
        home(&dir.0, "gnupg-a"),
        home(&dir.0, "gnupg-b"),
        home(&dir.0, "gnupg-peer"),
    );
    let fpr = a
        .ok(&["pgp", "install", "--gnupghome", ga.to_str().expect("p")])
        .trim()
        .to_string();
    b.ok(&["pgp", "install", "--gnupghome", gb.to_str().expect("p")]);

    // Each home: the primary as a stub (sec#), its own signing subkey, the encryption subkey.
    for g in [&ga, &gb] {
        let l = colons(g, true);
        let sec = l.lines().find(|l| l.starts_with("sec:")).expect("sec");
        assert_eq!(sec.split(':').nth(14), Some("#"), "{l}");
        let ssb: Vec<&str> = l.lines().filter(|l| l.starts_with("ssb:")).collect();
        assert_eq!(
            ssb.iter().filter(|s| s.contains(":s:::+:")).count(),
            1,
            "{l}"
        );
        assert_eq!(
            ssb.iter().filter(|s| s.contains(":e:::+:")).count(),
            1,
            "{l}"
        );
    }
    // sq shows the structure.
    let cert = dir.path("cert.asc");
    std::fs::write(&cert, a.ok(&["pgp", "cert", "--armor"])).expect("cert");
    let o = Command::new("sq")
        .arg("inspect")
        .arg(&cert)
        .output()
        .expect("sq");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("Fingerprint: {fpr}")) && text.matches("Subkey:").count() == 3,
        "{text}"
    );

    // A signature made by gpg on device A verifies in a third, fresh home.
    let msg = dir.path("msg");
    std::fs::write(&msg, "signed on the laptop\n").expect("msg");
    let o = gpg(
        &ga,
        &[
            "--detach-sign",
            "--output",
            dir.path("msg.sig").to_str().expect("p"),
            msg.to_str().expect("p"),
        ],
        None,
    );
    let created = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{created}");
    let a_subkey = created
        .lines()
        .find(|l| l.contains("SIG_CREATED"))
        .and_then(|l| l.split_whitespace().last())
        .expect("SIG_CREATED")
        .to_string();
    assert!(gpg(&gc, &["--import", cert.to_str().expect("p")], None)
        .status
        .success());
    let o = gpg(
        &gc,
        &[
            "--verify",
            dir.path("msg.sig").to_str().expect("p"),
            msg.to_str().expect("p"),
        ],
        None,
    );
    let v = String::from_utf8_lossy(&o.stderr);
    assert!(
        v.contains(&format!("VALIDSIG {a_subkey}")) && v.contains(&fpr),
        "{v}"
    );

    // A message the third home encrypts to the account address decrypts on both devices.
    let enc = dir.path("msg.gpg");
    let o = gpg(
        &gc,
        &[
            "--trust-model",
            "always",
            "--encrypt",
            "-r",
            ADDR,
            "--output",
            enc.to_str().expect("p"),
            msg.to_str().expect("p"),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for g in [&ga, &gb] {
        let o = gpg(g, &["--decrypt", enc.to_str().expect("p")], None);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "signed on the laptop\n",
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // Revoke the phone: its subkey is revoked, a new encryption subkey takes over.
    a.ok(&["device", "revoke", "phone"]);
    std::fs::write(&cert, a.ok(&["pgp", "cert", "--armor"])).expect("cert");
    assert!(gpg(&gc, &["--import", cert.to_str().expect("p")], None)
        .status
        .success());
    let l = colons(&gc, false);
    assert_eq!(
        l.lines().filter(|l| l.starts_with("sub:r:")).count(),
        2,
        "phone subkey and old encryption subkey: {l}"
    );
    a.ok(&["pgp", "install", "--gnupghome", ga.to_str().expect("p")]);
    let enc2 = dir.path("msg2.gpg");
    let o = gpg(
        &gc,
        &[
            "--trust-model",
            "always",
            "--encrypt",
            "-r",
            ADDR,
            "--output",
            enc2.to_str().expect("p"),
            msg.to_str().expect("p"),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = gpg(&ga, &["--decrypt", enc2.to_str().expect("p")], None);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "signed on the laptop\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = gpg(&gb, &["--decrypt", enc2.to_str().expect("p")], None);
    assert!(
        !o.status.success(),
        "the revoked device still decrypts new mail"
    );
    // Old mail still decrypts on the remaining device.
    let o = gpg(&ga, &["--decrypt", enc.to_str().expect("p")], None);
    assert!(o.status.success());
    // WKD: the certificate where senders look for it.
    let web = dir.path("web");
    let path = a.ok(&["pgp", "wkd", "--output", web.to_str().expect("p")]);
    let path = path.lines().next().unwrap_or("").to_string();
    assert!(
        path.ends_with(".well-known/openpgpkey/hu/kei1q4tipxxu1yj79k9kfukdhfy631xe"),
        "{path}"
    );
    assert!(web.join(".well-known/openpgpkey/policy").is_file());
    let o = Command::new("sq")
        .arg("inspect")
        .arg(path.trim())
        .output()
        .expect("sq");
    assert!(String::from_utf8_lossy(&o.stdout).contains(&fpr));

    // A secret export of another account, or a tampered certificate, is refused.
    let other = Device::new(&dir.0, "other");
    other.create("bob@example.com", &portal.url);
    let bob = dir.path("bob.asc");
    other.ok(&[
        "pgp",
        "export-secret",
        "--armor",
        "--output",
        bob.to_str().expect("p"),
    ]);
    let e = a.fails(&[
        "pgp",
        "install",
        "--gnupghome",
        ga.to_str().expect("p"),
        "--from",
        bob.to_str().expect("p"),
    ]);
    assert!(e.contains("is not this account's"), "{e}");
    let mine = dir.path("mine.asc");
    a.ok(&[
        "pgp",
        "export-secret",
        "--armor",
        "--output",
        mine.to_str().expect("p"),
    ]);
    let text = std::fs::read_to_string(&mine).expect("mine");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let flip = lines
        .iter()
        .position(|l| l.len() > 60)
        .expect("a base64 line");
    let c = lines[flip].remove(10);
    lines[flip].insert(10, if c == 'A' { 'B' } else { 'A' });
    std::fs::write(dir.path("tampered.asc"), lines.join("\n") + "\n").expect("tampered");
    let e = a.fails(&[
        "pgp",
        "install",
        "--gnupghome",
        ga.to_str().expect("p"),
        "--from",
        dir.path("tampered.asc").to_str().expect("p"),
    ]);
    assert!(
        e.contains("tampered.asc: not an OpenPGP export") && e.contains("hint:"),
        "{e}"
    );
    // The untampered export installs.
    a.ok(&[
        "pgp",
        "install",
        "--gnupghome",
        ga.to_str().expect("p"),
        "--from",
        mine.to_str().expect("p"),
    ]);

    // The agent keeps GnuPG current: a device joins, and the laptop's home
    // gets its subkey without anyone running install.
    a.ok(&["pgp", "install", "--gnupghome", ga.to_str().expect("p")]);
    a.ok(&["agent", "start", "--interval", "1s"]);
    let signing_subkeys = || {
        colons(&ga, true)
            .lines()
            .filter(|l| l.starts_with("ssb:") && l.contains(":s:::"))
            .count()
    };
    let before = signing_subkeys();
    let c = Device::new(&dir.0, "c");
    let w = c.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        &portal.url,
        "--name",
        "tablet",
    ]);
    a.ok(&["device", "accept", w.trim()]);
    let updated = mesh_tests::eventually(30, || signing_subkeys() == before + 1);
    let status = String::from_utf8_lossy(&a.run(&["--json", "agent", "status"]).stdout).to_string();
    let _ = a.run(&["agent", "stop"]);
    assert!(
        updated,
        "agent status: {status}; before {before}, now {}",
        signing_subkeys()
    );
    assert!(
        updated,
        "the agent did not update GnuPG: {}",
        colons(&ga, true)
    );
    stop_agents(&[&ga, &gb, &gc]);
}

/// `GET path` over HTTP/1.0 from 127.0.0.1:port: (status line, body).
fn http_get(port: u16, path: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: openpgpkey.example.com\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let status = String::from_utf8_lossy(&raw[..at])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    (status, raw[at + 4..].to_vec())
}

/// A plain static web server (`python3 -m http.server`) over `root`, stopped on drop.
struct StaticServer(std::process::Child, u16);

impl StaticServer {
    fn start(root: &Path) -> StaticServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        assert!(
            mesh_tests::eventually(10, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "the web server did not start"
        );
        StaticServer(child, port)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pgp_exports_install_in_both_formats_stay_current_and_wkd_serves_both_layouts() {
    if !require_tool("gpg") || !require_tool("python3") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("pgp-formats");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let (bin, asc) = (dir.path("export.pgp"), dir.path("export.asc"));
    a.ok(&["pgp", "export-secret", "--output", &s(&bin)]);
    a.ok(&["pgp", "export-secret", "--armor", "--output", &s(&asc)]);
    assert_ne!(std::fs::read(&bin).expect("bin")[0], b'-', "binary");
    assert!(std::fs::read_to_string(&asc)
        .expect("asc")
        .starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
    let (g1, g2) = (home(&dir.0, "gnupg-bin"), home(&dir.0, "gnupg-asc"));
    let fpr = a.ok(&["pgp", "install", "--from", &s(&bin), "--gnupghome", &s(&g1)]);
    assert_eq!(
        a.ok(&["pgp", "install", "--from", &s(&asc), "--gnupghome", &s(&g2)]),
        fpr
    );
    let signing = |g: &Path| {
        colons(g, true)
            .lines()
            .filter(|l| l.starts_with("ssb:") && l.contains(":s:::"))
            .count()
    };
    for g in [&g1, &g2] {
        assert_eq!(signing(g), 1, "{}", colons(g, true));
        assert!(colons(g, true)
            .lines()
            .any(|l| l.starts_with("ssb:") && l.contains(":s:::+:")));
        assert!(colons(g, true)
            .lines()
            .any(|l| l.starts_with("ssb:") && l.contains(":e:::+:")));
    }
    // Damaged files, and a certificate without secrets, are not exports.
    let b = std::fs::read(&bin).expect("bin");
    std::fs::write(dir.path("cut.pgp"), &b[..b.len() / 2]).expect("cut");
    std::fs::write(dir.path("junk.pgp"), "not OpenPGP at all\n").expect("junk");
    std::fs::write(dir.path("public.asc"), a.ok(&["pgp", "cert", "--armor"])).expect("public");
    for (f, why) in [
        ("cut.pgp", "not an OpenPGP export"),
        ("junk.pgp", "not an OpenPGP export"),
        ("public.asc", "holds no secret keys"),
    ] {
        let p = dir.path(f);
        let e = a.fails(&["pgp", "install", "--from", &s(&p), "--gnupghome", &s(&g1)]);
        assert!(
            e.contains(&format!("{}: not an OpenPGP export", p.display()))
                && e.contains(why)
                && e.contains("\nhint: "),
            "{f}: {e}"
        );
    }
    // On another machine, with no Mesh home (issue 22.11): checked against
    // the account as its portal serves it, then imported; without the
    // account named, a hint says how; another account's export is refused.
    let elsewhere = Device::new(&dir.0, "no-mesh-here");
    let g3 = home(&dir.0, "gnupg-elsewhere");
    let e = elsewhere.fails(&["pgp", "install", "--from", &s(&bin), "--gnupghome", &s(&g3)]);
    assert!(e.contains("no Mesh home") && e.contains("--account"), "{e}");
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("udf")
        .to_string();
    let install = |f: &Path, account: &str| {
        elsewhere.run(&[
            "pgp",
            "install",
            "--from",
            &s(f),
            "--gnupghome",
            &s(&g3),
            "--account",
            account,
            "--portal",
            &portal.url,
        ])
    };
    let o = install(&bin, &udf);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), fpr);
    assert_eq!(signing(&g3), 1, "{}", colons(&g3, true));
    assert!(!elsewhere.home.join("state.json").exists());
    let other = Device::create_account(&dir.path("bob"), "bob@example.com", &portal.url);
    let other_export = dir.path("bob.pgp");
    other.ok(&["pgp", "export-secret", "--output", &s(&other_export)]);
    let o = install(&other_export, &udf);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("not an OpenPGP export of this account"),
        "{e}"
    );

    // Every home it installed to is kept current: a device joins, a sync updates both.
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    a.ok(&["sync"]);
    for g in [&g1, &g2] {
        assert_eq!(
            signing(g),
            2,
            "the new device's subkey: {}",
            colons(g, true)
        );
    }

    // WKD, both methods, served by a plain static web server.
    let web = dir.path("web");
    let paths = a.ok(&["pgp", "wkd", "--output", &s(&web)]);
    let hash = "kei1q4tipxxu1yj79k9kfukdhfy631xe";
    let direct = format!(".well-known/openpgpkey/hu/{hash}");
    let advanced = format!(".well-known/openpgpkey/example.com/hu/{hash}");
    let lines: Vec<&str> = paths.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].ends_with(&direct) && lines[1].ends_with(&advanced),
        "{paths}"
    );
    let mut stack = vec![web.join(".well-known")];
    while let Some(p) = stack.pop() {
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        if p.is_dir() {
            assert_eq!(mode, 0o755, "{}", p.display());
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else {
            assert_eq!(mode, 0o644, "{}", p.display());
        }
    }
    let cert = a.run(&["pgp", "cert"]).stdout;
    let server = StaticServer::start(&web);
    for (path, want) in [
        (format!("/{direct}?l=alice"), cert.clone()),
        (format!("/{advanced}?l=alice"), cert.clone()),
        ("/.well-known/openpgpkey/policy".to_string(), Vec::new()),
        (
            "/.well-known/openpgpkey/example.com/policy".to_string(),
            Vec::new(),
        ),
    ] {
        let (status, body) = http_get(server.1, &path);
        assert!(status.contains(" 200 "), "{path}: {status}");
        assert_eq!(body, want, "{path}: byte for byte");
    }
    // What a WKD client fetched imports into GnuPG.
    let (_, fetched) = http_get(server.1, &format!("/{advanced}?l=alice"));
    std::fs::write(dir.path("fetched.pgp"), fetched).expect("fetched");
    let g3 = home(&dir.0, "gnupg-wkd");
    let o = gpg(&g3, &["--import", &s(&dir.path("fetched.pgp"))], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        colons(&g3, false).contains(fpr.trim()),
        "{}",
        colons(&g3, false)
    );
    stop_agents(&[&g1, &g2, &g3]);
}

/// The user ID's preferences as GnuPG reads them: field 13 of the `uid`
/// record `--edit-key` lists.
fn uid_prefs(home: &Path, fpr: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args([
            "--no-tty",
            "--command-fd",
            "0",
            "--with-colons",
            "--edit-key",
            fpr,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gpg");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"quit\n")
        .expect("quit");
    let o = child.wait_with_output().expect("gpg");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.starts_with("uid:"))
        .and_then(|l| l.split(':').nth(12))
        .unwrap_or_default()
        .to_string()
}

/// Issue 22.2: the certificate states its algorithm preferences, so gpg
/// encrypts to it with AES (not 3DES), and `sq` decrypts that mail with
/// the key `pgp export-secret` writes.
#[test]
fn gpg_encrypts_to_the_account_with_aes_and_sq_decrypts_with_the_export() {
    if !require_tool("gpg") || !require_tool("sq") {
        return;
    }
    let dir = Scratch::new("pgp-prefs");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let (peer, mine) = (home(&dir.0, "gnupg-peer"), home(&dir.0, "gnupg-mine"));
    let fpr = a
        .ok(&["pgp", "install", "--gnupghome", &s(&mine)])
        .trim()
        .to_string();
    let cert = dir.path("cert.asc");
    std::fs::write(&cert, a.ok(&["pgp", "cert", "--armor"])).expect("cert");
    assert!(gpg(&peer, &["--import", &s(&cert)], None).status.success());
    // S9 AES-256, S7 AES-128, H10 SHA-512, H8 SHA-256, Z0 uncompressed; MDC.
    for h in [&peer, &mine] {
        assert_eq!(uid_prefs(h, &fpr), "S9 S7 H10 H8 Z0,mdc");
    }

    // A correspondent's gpg encrypts to the account: AES-256.
    let msg = dir.path("msg");
    std::fs::write(&msg, "for alice\n").expect("msg");
    let enc = dir.path("msg.gpg");
    let o = gpg(
        &peer,
        &[
            "--trust-model",
            "always",
            "--encrypt",
            "-r",
            ADDR,
            "--output",
            &s(&enc),
            &s(&msg),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = gpg(&mine, &["--verbose", "--list-packets", &s(&enc)], None);
    let packets = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        packets.contains("AES256") && !packets.contains("3DES"),
        "{packets}"
    );
    // DECRYPTION_INFO <mdc method> <cipher>: 2 SEIPDv1 with MDC, 9 AES-256.
    assert!(
        packets.contains("mdc_method: 2") && packets.contains("DECRYPTION_INFO 2 9 "),
        "{packets}"
    );

    // sq (Sequoia) reads it with the exported key.
    let key = dir.path("key.asc");
    a.ok(&["pgp", "export-secret", "--armor", "--output", &s(&key)]);
    let o = Command::new("sq")
        .args(["decrypt", "--recipient-key"])
        .arg(&key)
        .arg(&enc)
        .output()
        .expect("sq");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "for alice\n");
    stop_agents(&[&peer, &mine]);
}
