//! The foundation against real peers: co-generated keys verified by
//! OpenSSH, and the device store's OS key store backend on a real Secret
//! Service.

use mesh_core::keys::SigningKey;
use mesh_tests::{require_tool, Device, Scratch};
use ssh_key::{HashAlg, LineEnding, SshSig};

/// A co-generated Ed25519 key's signature, wrapped as an SSHSIG, verifies
/// with `ssh-keygen -Y verify`: OpenSSH accepts what the combined key signs.
#[test]
fn openssh_verifies_a_cogenerated_key() {
    if !require_tool("ssh-keygen") {
        return;
    }
    let dir = Scratch::new("sshsig");
    for i in 0u8..4 {
        let base = SigningKey::from_seed(&[i; 32]);
        let act = SigningKey::from_seed(&[i.wrapping_add(100); 32]);
        // The administrator's view of the public key: base + activation points.
        let public = base
            .public_key()
            .combine(&act.public_key())
            .expect("combine");
        let key = SigningKey::combine(&base, &act);
        assert_eq!(key.public_key(), public);
        let msg = format!("message {i} signed by a co-generated key\n");
        let data =
            SshSig::signed_data("file", HashAlg::Sha512, msg.as_bytes()).expect("signed data");
        let sig = key.sign(&data);
        let ssh_pub = ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(
            key.verifying_key().to_bytes(),
        ));
        let ssh_sig = ssh_key::Signature::new(ssh_key::Algorithm::Ed25519, sig.to_bytes().to_vec())
            .expect("sig");
        let armored = SshSig::new(ssh_pub.clone(), "file", HashAlg::Sha512, ssh_sig)
            .expect("sshsig")
            .to_pem(LineEnding::LF)
            .expect("pem");
        let (sig_path, msg_path, allowed) = (dir.path("m.sig"), dir.path("m"), dir.path("allowed"));
        std::fs::write(&sig_path, armored).expect("write");
        std::fs::write(&msg_path, &msg).expect("write");
        let line = ssh_key::PublicKey::from(ssh_pub)
            .to_openssh()
            .expect("openssh");
        std::fs::write(&allowed, format!("device@example.com {line}\n")).expect("write");
        let verify = || {
            std::process::Command::new("ssh-keygen")
                .args([
                    "-Y",
                    "verify",
                    "-n",
                    "file",
                    "-I",
                    "device@example.com",
                    "-f",
                ])
                .arg(&allowed)
                .arg("-s")
                .arg(&sig_path)
                .stdin(std::fs::File::open(&msg_path).expect("open"))
                .output()
                .expect("ssh-keygen")
        };
        let o = verify();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            out.contains("Good \"file\" signature for device@example.com with ED25519 key"),
            "{out}"
        );
        // A modified message does not verify.
        std::fs::write(&msg_path, format!("{msg}x")).expect("write");
        assert!(!verify().status.success());
    }
}

/// The default key store backend keeps the store key in the OS keyring: a
/// real Secret Service (gnome-keyring on a private D-Bus session).
#[test]
fn store_key_in_a_real_secret_service() {
    if !require_tool("dbus-run-session")
        || !require_tool("gnome-keyring-daemon")
        || !require_tool("dbus-send")
    {
        return;
    }
    let dir = Scratch::new("keyring");
    let d = Device::new(&dir.0, "home");
    let mesh = mesh_tests::workspace_bin("mesh");
    // `--unlock` returns before the daemon owns its bus name; a client that
    // came first would make D-Bus start a second, locked daemon that prompts.
    // So wait (bounded) until the name is owned.
    let script = format!(
        "printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
         i=0; until dbus-send --session --print-reply --dest=org.freedesktop.DBus \
           /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner \
           string:org.freedesktop.secrets | grep -q 'boolean true'; do \
           i=$((i+1)); [ $i -lt 400 ] || {{ echo 'no Secret Service on the bus' >&2; exit 7; }}; \
           sleep 0.05; done && \
         {m} --home {h} device init --name k && {m} --home {h} --json status && \
         {m} --home {h} key nonce >/dev/null",
        m = mesh.display(),
        h = d.home.display()
    );
    // A private HOME: the keyring files are this test's, as on a fresh machine.
    let home = dir.0.join("user");
    std::fs::create_dir_all(&home).expect("home");
    let o = std::process::Command::new("dbus-run-session")
        .args(["--", "sh", "-c", &script])
        .env_remove("MESH_KEYSTORE")
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("dbus-run-session");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no status line in: {out}"));
    let status: serde_json::Value = serde_json::from_str(line).expect("json");
    assert_eq!(status["keystore"], "os");
    assert!(status["device"].as_str().expect("udf").starts_with("MBQ"));
    // No key file: the key is only in the keyring.
    assert!(!d.home.join("keystore").exists());
    // Without a Secret Service the same home says what is wrong and what to do.
    let o = d
        .command(&["status"])
        .env_remove("MESH_KEYSTORE")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
        .output()
        .expect("run");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && e.contains("is in the OS keyring, which cannot be reached or is locked")
            && e.contains("hint: start or unlock the keyring"),
        "{e}"
    );
    // The hints do not go in a circle (issue 22.11): the file key store
    // cannot open this home, and says to use the keyring instead.
    let e = d.fails(&["status"]);
    assert!(
        e.contains("MESH_KEYSTORE") && e.contains("start or unlock the keyring"),
        "{e}"
    );
}

/// Secrets never go on the command line: `key share` reads the secret and
/// `key recover` the shares from standard input or a file; the old argv
/// forms are refused with a hint, and nothing secret is printed for them.
#[test]
fn secrets_come_from_stdin_or_a_file_never_argv() {
    let dir = Scratch::new("secrets");
    let d = Device::new(&dir.0, "d");
    let secret = "3D02BCFA0011223344556677889900AABBCCDDEEFF";
    let shares = d.ok_input(
        &["key", "share", "--threshold", "2", "--shares", "3"],
        secret,
    );
    let lines: Vec<&str> = shares.lines().collect();
    assert_eq!(lines.len(), 3, "{shares}");
    let two = format!("{}\n{}\n", lines[2], lines[0]);
    let back = d.ok_input(&["key", "recover"], &two);
    assert_eq!(back.trim(), secret);
    let file = dir.path("shares.txt");
    std::fs::write(&file, &two).expect("write");
    let back = d.ok(&["key", "recover", "--from", file.to_str().expect("path")]);
    assert_eq!(back.trim(), secret);
    // The old forms.
    for args in [
        vec!["key", "share", "--threshold", "2", "--shares", "3", secret],
        vec!["key", "recover", lines[0], lines[1]],
    ] {
        let o = d.run(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && o.stdout.is_empty(), "{args:?}");
        assert!(
            e.contains("visible to other users") && e.contains("hint:"),
            "{e}"
        );
        assert!(!e.contains(secret), "the error repeats the secret: {e}");
    }
    // Nothing, too much, or a second line where one is expected.
    let e = d.fails_input(&["key", "recover"], "");
    assert!(e.contains("no shares given"), "{e}");
    let e = d.fails_input(
        &["key", "share", "--threshold", "2", "--shares", "3"],
        "AB\nCD\n",
    );
    assert!(e.contains("one expected"), "{e}");
    let e = d.fails_input(&["key", "recover"], &"x\n".repeat(100));
    assert!(e.contains("at most 64"), "{e}");
}

/// `mesh account create` whose Bind answer is lost after the portal
/// committed (a timeout, as the client sees it) keeps the account it
/// created: the device asks the portal whether its very profile is bound.
/// When the lost answer was a refusal, nothing is kept and a retry works.
#[test]
fn a_lost_bind_answer_keeps_the_account_the_portal_made() {
    std::env::set_var("MESH_KEYSTORE", "file");
    let dir = Scratch::new("lost-bind");
    let portal = mesh_tests::PortalProc::start_with(&dir.path("portal"), &["--max-accounts", "2"]);
    let liar = mesh_tests::liar::LyingPortal::start(&portal.url);
    liar.lose_answer("Bind");
    let create = |d: &Device, address: &str, url: &str, kit: &str| {
        d.run(&[
            "account",
            "create",
            address,
            "--portal",
            url,
            "--device",
            "laptop",
            "--recovery",
            kit,
        ])
    };
    let a = Device::new(&dir.0, "a");
    let o = create(&a, "alice@example.com", &liar.url, &a.kit());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    liar.honest();
    // The account works: its administrator keys were kept.
    let b = Device::new(&dir.0, "b");
    b.join(&a, "alice@example.com", &liar.url, "phone");
    let listed = a.json(&["device", "list"]).to_string();
    assert!(
        listed.contains("laptop") && listed.contains("phone"),
        "{listed}"
    );
    // A refusal whose answer is lost: the portal holds two accounts at most.
    let other = Device::new(&dir.0, "other");
    let o = create(&other, "bob@example.com", &portal.url, &other.kit());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    liar.lose_answer("Bind");
    let c = Device::new(&dir.0, "c");
    let o = create(&c, "carol@example.com", &liar.url, &c.kit());
    assert!(!o.status.success(), "nothing was bound");
    assert!(
        c.run(&["device", "list"]).status.code() != Some(0),
        "no account kept"
    );
    // Nothing kept: a retry on a portal with room works (with a new kit:
    // the first one's shares are for a root that was never bound).
    let roomy = mesh_tests::PortalProc::start(&dir.path("roomy"));
    let kit = ["1", "2", "3"].map(|i| dir.path(&format!("c-second.kit-{i}")).display().to_string());
    let o = create(&c, "carol@example.com", &roomy.url, &kit.join(","));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
