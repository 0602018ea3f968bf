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
    assert!(
        path.trim()
            .ends_with(".well-known/openpgpkey/hu/kei1q4tipxxu1yj79k9kfukdhfy631xe"),
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
    other.ok(&[
        "account",
        "create",
        "bob@example.com",
        "--portal",
        &portal.url,
    ]);
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
    assert!(e.contains("OpenPGP certificate"), "{e}");
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
