//! The agent with real OpenSSH on loopback (issue: the `mesh` agent).

use std::path::{Path, PathBuf};
use std::process::Command;

use mesh_tests::{
    can_run_sshd, eventually, ssh_add, Device, PortalProc, RunningAgent, Scratch, Sshd,
};

const ADDR: &str = "alice@example.com";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{}\n", text.trim())).expect("write");
    p
}

/// An account with an administrator `a` and a member `b` (ssh role).
fn two_devices(dir: &Path, portal: &PortalProc) -> (Device, Device, String) {
    let a = Device::new(dir, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    let udf = a.create(ADDR, &portal.url);
    // Certificates for "root", the user the tests log in as.
    a.ok(&["ssh", "principals", "root", "alice"]);
    let b = Device::new(dir, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    (a, b, udf)
}

#[test]
fn authorized_keys_command_and_revocation_seen_at_the_next_login() {
    if !can_run_sshd() {
        return;
    }
    let dir = Scratch::new("akc");
    let portal = PortalProc::start(&dir.path("portal"));
    let (a, b, udf) = two_devices(&dir.0, &portal);
    let safe = mesh_tests::SafeBin::copy("mesh");
    let mesh = &safe.path;
    let cache = dir.path("akc-cache");
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[
            "AuthorizedKeysFile none".into(),
            format!(
                "AuthorizedKeysCommand {} ssh authorized-keys --account {udf} --portal {} --cache {}",
                mesh.display(),
                portal.url,
                cache.display()
            ),
            "AuthorizedKeysCommandUser root".into(),
        ],
    );
    // What sshd will run prints both devices' keys.
    let lines = a.ok(&[
        "ssh",
        "authorized-keys",
        "--account",
        &udf,
        "--portal",
        &portal.url,
    ]);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    // A wrong pinned UDF is refused: nothing is printed.
    let e = a.fails(&[
        "ssh",
        "authorized-keys",
        "--account",
        "MBQA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA",
        "--portal",
        &portal.url,
    ]);
    assert!(
        e.contains("no such account") || e.contains("UnknownAccount"),
        "{e}"
    );

    let ag_a = RunningAgent::start(&a);
    let ag_b = RunningAgent::start(&b);
    let pub_a = write(&dir.0, "a.pub", &a.ok(&["ssh", "public-key"]));
    let pub_b = write(&dir.0, "b.pub", &b.ok(&["ssh", "public-key"]));
    assert!(sshd.logs_in(&ag_a.sock, &pub_a), "a logs in");
    assert!(sshd.logs_in(&ag_b.sock, &pub_b), "b logs in");
    assert!(sshd.log_has("Accepted publickey for root"));

    a.ok(&["device", "revoke", "phone"]);
    // The very next login of the revoked device is refused; the other still works.
    let o = sshd.login(&ag_b.sock, &pub_b, &[]);
    assert!(!o.status.success(), "revoked device logged in");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied (publickey)"));
    assert!(sshd.logs_in(&ag_a.sock, &pub_a), "a still logs in");
    // The revoked device's agent wipes its home and exits at its next sync.
    assert!(
        eventually(15, || ag_b.exited() && !ag_b.sock.exists()),
        "revoked agent still runs: {}",
        ag_b.identities()
    );
    let e = b.fails(&["agent", "status"]);
    assert!(e.contains("was revoked"), "{e}");

    // Portal down: the cached, verified answer serves until --max-stale, then it fails closed.
    drop(portal);
    let down = "http://127.0.0.1:9";
    let c = cache.to_str().expect("p");
    let out = a.ok(&[
        "ssh",
        "authorized-keys",
        "--account",
        &udf,
        "--portal",
        down,
        "--cache",
        c,
    ]);
    assert_eq!(out.lines().count(), 1, "only the active device: {out}");
    let e = a.fails(&[
        "ssh",
        "authorized-keys",
        "--account",
        &udf,
        "--portal",
        down,
    ]);
    assert!(e.contains("cannot reach the portal"), "{e}");
    // An old cached answer is refused.
    let f = std::fs::read_dir(&cache)
        .expect("cache")
        .next()
        .expect("entry")
        .expect("entry")
        .path();
    mesh_tests::set_cache_fetched(&f, 1);
    let e = a.fails(&[
        "ssh",
        "authorized-keys",
        "--account",
        &udf,
        "--portal",
        down,
        "--cache",
        c,
    ]);
    assert!(e.contains("--max-stale") && e.contains("refusing"), "{e}");
}

#[test]
fn certificates_trusted_by_ca_and_revoked_by_krl() {
    if !can_run_sshd() {
        return;
    }
    let dir = Scratch::new("cert");
    let portal = PortalProc::start(&dir.path("portal"));
    let (a, b, _) = two_devices(&dir.0, &portal);
    let ca = write(&dir.0, "ca.pub", &a.ok(&["ssh", "ca"]));
    let krl = dir.path("revoked.krl");
    a.ok(&["ssh", "krl", "--output", krl.to_str().expect("p")]);
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[
            "AuthorizedKeysFile none".into(),
            format!("TrustedUserCAKeys {}", ca.display()),
            format!("RevokedKeys {}", krl.display()),
        ],
    );
    let ag_a = RunningAgent::start(&a);
    let ag_b = RunningAgent::start(&b);
    let cert_a = write(&dir.0, "a-cert.pub", &a.ok(&["ssh", "cert"]));
    let cert_b = write(&dir.0, "b-cert.pub", &b.ok(&["ssh", "cert"]));
    assert!(
        ag_b.identities().contains("(ED25519-CERT)"),
        "{}",
        ag_b.identities()
    );
    assert!(
        sshd.logs_in(&ag_b.sock, &cert_b),
        "b logs in with its certificate"
    );
    assert!(sshd.log_has("Accepted certificate ID \"phone@alice@example.com\""));
    assert!(sshd.logs_in(&ag_a.sock, &cert_a));

    a.ok(&["device", "revoke", "phone"]);
    a.ok(&["ssh", "krl", "--output", krl.to_str().expect("p")]);
    let q = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&krl)
        .arg(&cert_b)
        .output()
        .expect("ssh-keygen -Q");
    assert!(
        String::from_utf8_lossy(&q.stdout).contains("REVOKED"),
        "{}",
        String::from_utf8_lossy(&q.stdout)
    );
    let o = sshd.login(&ag_b.sock, &cert_b, &[]);
    assert!(!o.status.success(), "revoked certificate logged in");
    assert!(sshd.log_has("revoked by file"));
    assert!(sshd.logs_in(&ag_a.sock, &cert_a), "a still logs in");
}

/// A server set up as the README says on the day the account is created:
/// the KRL timer writes the account's signed empty KRL, which sshd reads
/// (a missing `RevokedKeys` file refuses every key) and `ssh-keygen -Q`
/// queries.
#[test]
fn a_fresh_accounts_krl_lets_its_devices_log_in() {
    if !can_run_sshd() {
        return;
    }
    let dir = Scratch::new("fresh-krl");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    let udf = a.create(ADDR, &portal.url);
    let krl = dir.path("revoked.krl");
    let krl_s = krl.display().to_string();
    let fetch = [
        "ssh",
        "krl",
        "--account",
        &udf,
        "--portal",
        &portal.url,
        "--output",
        &krl_s,
    ];
    let f = a.json(&fetch);
    assert_eq!(f["replaced"], true, "{f}");
    // The next fetch finds it current.
    assert_eq!(a.json(&fetch)["replaced"], false);
    let pub_a = write(&dir.0, "a.pub", &a.ok(&["ssh", "public-key"]));
    let q = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&krl)
        .arg(&pub_a)
        .output()
        .expect("ssh-keygen -Q");
    let said = String::from_utf8_lossy(&q.stdout);
    assert!(q.status.success() && said.contains(": ok"), "{said}");
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[
            format!("AuthorizedKeysFile {}", pub_a.display()),
            format!("RevokedKeys {}", krl.display()),
        ],
    );
    let ag = RunningAgent::start(&a);
    assert!(sshd.logs_in(&ag.sock, &pub_a), "the device logs in");
}

fn keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let k = dir.join(name);
    let o = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name])
        .args(args)
        .arg("-f")
        .arg(&k)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success());
    k
}

#[test]
fn ssh_add_lock_lifetime_confirm_and_sshsig() {
    if !can_run_sshd() {
        return;
    }
    let dir = Scratch::new("sshadd");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);
    // An askpass that answers from a file: the lock passphrase, or yes/no for -c.
    let answer = dir.path("answer");
    let askpass = dir.path("askpass.sh");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\ncase \"$(cat {a})\" in no) exit 1;; *) cat {a};; esac\n",
            a = answer.display()
        ),
    )
    .expect("askpass");
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let ag = RunningAgent::start_with(&a, &[("SSH_ASKPASS", askpass.to_str().expect("p"))]);
    let mesh_pub = write(&dir.0, "mesh.pub", &a.ok(&["ssh", "public-key"]));

    // -l, -L, -T on the Mesh key.
    let l = ssh_add(&ag.sock, &["-l"]);
    assert!(l.status.success());
    let listed = String::from_utf8_lossy(&l.stdout);
    assert!(
        listed.contains("(ED25519)") && listed.contains("(ED25519-CERT)"),
        "{listed}"
    );
    let big_l = String::from_utf8_lossy(&ssh_add(&ag.sock, &["-L"]).stdout).to_string();
    assert!(big_l.contains(mesh_pub_key(&mesh_pub).as_str()), "{big_l}");
    assert!(ssh_add(&ag.sock, &["-T", mesh_pub.to_str().expect("p")])
        .status
        .success());

    // Foreign keys, held in memory only.
    let ed = keygen(&dir.0, "foreign_ed25519", &["-t", "ed25519"]);
    let rsa = keygen(&dir.0, "foreign_rsa", &["-t", "rsa", "-b", "3072"]);
    assert!(ssh_add(&ag.sock, &[ed.to_str().expect("p")])
        .status
        .success());
    assert!(ssh_add(&ag.sock, &[rsa.to_str().expect("p")])
        .status
        .success());
    let authorized = dir.path("authorized_keys");
    let mut ak = String::new();
    for k in [&ed, &rsa] {
        ak.push_str(&std::fs::read_to_string(k.with_extension("pub")).expect("pub"));
        std::fs::remove_file(k).expect("remove private key");
    }
    std::fs::write(&authorized, ak).expect("ak");
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[format!("AuthorizedKeysFile {}", authorized.display())],
    );
    assert!(
        sshd.logs_in(&ag.sock, &ed.with_extension("pub")),
        "foreign ed25519 login"
    );
    for alg in ["rsa-sha2-256", "rsa-sha2-512"] {
        let o = sshd.login(
            &ag.sock,
            &rsa.with_extension("pub"),
            &["-vvv", "-o", &format!("PubkeyAcceptedAlgorithms={alg}")],
        );
        assert!(
            o.status.success(),
            "{alg}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("signing using {alg}")));
    }
    // ECDSA keys sign too.
    let ec = keygen(&dir.0, "foreign_ecdsa", &["-t", "ecdsa", "-b", "256"]);
    assert!(ssh_add(&ag.sock, &[ec.to_str().expect("p")])
        .status
        .success());
    assert!(ssh_add(
        &ag.sock,
        &["-T", ec.with_extension("pub").to_str().expect("p")]
    )
    .status
    .success());
    // SHA-1 RSA signatures are refused (ssh-add -T asks for one).
    assert!(!ssh_add(
        &ag.sock,
        &["-T", rsa.with_extension("pub").to_str().expect("p")]
    )
    .status
    .success());

    // ssh-keygen -Y sign through the agent, verified by ssh-keygen.
    let msg = write(&dir.0, "msg", "signed through the agent");
    let o = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "file", "-f"])
        .arg(&mesh_pub)
        .arg(&msg)
        .env("SSH_AUTH_SOCK", &ag.sock)
        .output()
        .expect("sign");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let allowed = write(
        &dir.0,
        "allowed",
        &format!("alice@example.com {}", mesh_pub_key(&mesh_pub)),
    );
    let v = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "file",
            "-I",
            "alice@example.com",
            "-f",
        ])
        .arg(&allowed)
        .arg("-s")
        .arg(msg.with_extension("sig"))
        .stdin(std::fs::File::open(&msg).expect("msg"))
        .output()
        .expect("verify");
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("Good \"file\" signature"),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );

    // Lifetime: a key added with -t goes away by itself.
    let short = keygen(&dir.0, "short", &["-t", "ed25519"]);
    assert!(ssh_add(&ag.sock, &["-t", "1", short.to_str().expect("p")])
        .status
        .success());
    assert!(ag.identities().contains("short"));
    assert!(
        eventually(10, || !ag.identities().contains("short")),
        "{}",
        ag.identities()
    );

    // Confirm: each use asks; a "no" refuses.
    let conf = keygen(&dir.0, "confirm", &["-t", "ed25519"]);
    assert!(ssh_add(&ag.sock, &["-c", conf.to_str().expect("p")])
        .status
        .success());
    std::fs::write(&answer, "yes").expect("answer");
    assert!(ssh_add(
        &ag.sock,
        &["-T", conf.with_extension("pub").to_str().expect("p")]
    )
    .status
    .success());
    std::fs::write(&answer, "no").expect("answer");
    assert!(!ssh_add(
        &ag.sock,
        &["-T", conf.with_extension("pub").to_str().expect("p")]
    )
    .status
    .success());

    // Lock and unlock (the passphrase comes from the askpass).
    std::fs::write(&answer, "correct horse").expect("answer");
    let lock = |flag: &str| {
        Command::new("ssh-add")
            .arg(flag)
            .env("SSH_AUTH_SOCK", &ag.sock)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("ssh-add lock")
    };
    assert!(lock("-x").status.success());
    let l = ssh_add(&ag.sock, &["-l"]);
    assert!(
        String::from_utf8_lossy(&l.stdout).contains("The agent has no identities"),
        "locked agent lists nothing"
    );
    assert!(
        !sshd.logs_in(&ag.sock, &ed.with_extension("pub")),
        "a locked agent does not sign"
    );
    std::fs::write(&answer, "wrong").expect("answer");
    assert!(!lock("-X").status.success(), "wrong passphrase");
    std::fs::write(&answer, "correct horse").expect("answer");
    assert!(lock("-X").status.success());
    assert!(ag.identities().contains("foreign_ed25519"));

    // Remove one, then all added keys; the Mesh keys stay.
    assert!(ssh_add(
        &ag.sock,
        &["-d", ed.with_extension("pub").to_str().expect("p")]
    )
    .status
    .success());
    assert!(!ag.identities().contains("foreign_ed25519"));
    assert!(ssh_add(&ag.sock, &["-D"]).status.success());
    let ids = ag.identities();
    assert!(
        !ids.contains("foreign_rsa") && ids.contains("(mesh)"),
        "{ids}"
    );
}

fn mesh_pub_key(p: &Path) -> String {
    std::fs::read_to_string(p)
        .expect("pub")
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn malformed_frames_many_clients_and_other_users_do_not_disturb_the_agent() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let dir = Scratch::new("robust");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);
    // Sockets under a runtime directory of the test's own, so that the test can open it up below.
    let runtime = dir.path("run");
    std::fs::create_dir_all(&runtime).expect("run dir");
    let ag = RunningAgent::start_with(&a, &[("XDG_RUNTIME_DIR", runtime.to_str().expect("p"))]);
    let meta = std::fs::metadata(&ag.sock).expect("sock");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let dmeta = std::fs::metadata(ag.sock.parent().expect("dir")).expect("dir");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&dmeta.permissions()) & 0o777,
        0o700
    );

    let ask = |frame: &[u8]| -> Vec<u8> {
        let mut s = UnixStream::connect(&ag.sock).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(frame).expect("write");
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).is_err() {
            return Vec::new();
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).expect("body");
        body
    };
    // Unknown message type: failure, connection kept.
    assert_eq!(ask(&[0, 0, 0, 1, 99]), vec![5]);
    // Trailing bytes after a request-identities: failure.
    assert_eq!(ask(&[0, 0, 0, 2, 11, 0]), vec![5]);
    // A truncated sign request: failure.
    assert_eq!(ask(&[0, 0, 0, 5, 13, 0, 0, 0, 9]), vec![5]);
    // Legacy type 9 (sent by old ssh-add -D): failure, not a dropped connection.
    assert_eq!(ask(&[0, 0, 0, 1, 9]), vec![5]);
    // An oversized frame: the connection is closed without an answer.
    assert!(ask(&[0, 0x10, 0, 0, 11]).is_empty());
    // A well-formed request on the same agent still works.
    let ids = ask(&[0, 0, 0, 1, 11]);
    assert_eq!(ids[0], 12, "identities answer");
    // The query extension lists what the agent supports.
    let q = ask(&[0, 0, 0, 10, 27, 0, 0, 0, 5, b'q', b'u', b'e', b'r', b'y']);
    assert_eq!(q[0], 29, "extension response");
    let text = String::from_utf8_lossy(&q);
    assert!(
        text.contains("session-bind@openssh.com")
            && text.contains("restrict-destination-v00@openssh.com"),
        "{text}"
    );

    // Many clients at once.
    if mesh_tests::require_tool("python3") {
        let load = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/agent_load.py");
        if load.is_file() {
            let o = Command::new("python3")
                .arg(&load)
                .args([
                    "--sock",
                    ag.sock.to_str().expect("p"),
                    "-n",
                    "2000",
                    "-c",
                    "16",
                    "-r",
                    "1",
                    "--json",
                ])
                .output()
                .expect("agent_load");
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "{out}{}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(out.contains("\"errors\": 0"), "{out}");
        }
    }

    // Another user: even with the directory and socket opened up, the agent answers nothing.
    if mesh_tests::require_tool("setpriv") {
        let d = ag.sock.parent().expect("dir");
        for x in [d, d.parent().expect("mesh dir")] {
            std::fs::set_permissions(x, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
        }
        std::fs::set_permissions(
            &ag.sock,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .expect("chmod");
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c"])
            .arg(format!(
                "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(5)\ns.connect({:?})\ntry:\n s.sendall(bytes([0,0,0,1,11]))\n d=s.recv(10)\nexcept (ConnectionResetError, BrokenPipeError):\n d=b''\nsys.exit(0 if d==b'' else 1)",
                ag.sock.to_str().expect("p")
            ))
            .output()
            .expect("setpriv");
        for x in [d, d.parent().expect("mesh dir")] {
            std::fs::set_permissions(x, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .expect("chmod");
        }
        std::fs::set_permissions(
            &ag.sock,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        assert!(
            o.status.success(),
            "another user got an answer: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // And the agent still serves its own user.
    assert!(ag.identities().contains("(mesh)"));
    // Starting a second agent for the same home is refused, wherever its sockets would go.
    let e = a.fails(&["agent", "start"]);
    assert!(e.contains("already running"), "{e}");
    let e = a.fails(&["agent", "run"]);
    assert!(e.contains("already running"), "{e}");
}

#[test]
fn destination_constraints_are_enforced() {
    if !can_run_sshd() {
        return;
    }
    let dir = Scratch::new("dest");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);
    let ag = RunningAgent::start(&a);
    let key = keygen(&dir.0, "restricted", &["-t", "ed25519"]);
    let authorized = dir.path("authorized_keys");
    std::fs::copy(key.with_extension("pub"), &authorized).expect("ak");
    let extra = [format!("AuthorizedKeysFile {}", authorized.display())];
    let allowed = Sshd::start(&dir.path("sshd-a"), &extra);
    let other = Sshd::start(&dir.path("sshd-b"), &extra);
    // Both hosts' keys are known; the key may only be used towards the first.
    let known = dir.path("known_hosts");
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&allowed.known_hosts).expect("kh"),
        std::fs::read_to_string(&other.known_hosts).expect("kh")
    );
    std::fs::write(&known, both).expect("known");
    let o = ssh_add(
        &ag.sock,
        &[
            "-H",
            known.to_str().expect("p"),
            "-h",
            &format!("[127.0.0.1]:{}", allowed.port),
            key.to_str().expect("p"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(&key).expect("remove private key");
    assert!(
        allowed.logs_in(&ag.sock, &key.with_extension("pub")),
        "allowed destination"
    );
    assert!(
        !other.logs_in(&ag.sock, &key.with_extension("pub")),
        "other destination refused"
    );
    // Unbound use (no session-bind) of a constrained key is refused too.
    assert!(!ssh_add(
        &ag.sock,
        &["-T", key.with_extension("pub").to_str().expect("p")]
    )
    .status
    .success());
}

#[test]
fn rotating_a_device_keeps_its_identity_and_takes_effect_without_a_restart() {
    if !can_run_sshd() {
        return;
    }
    let dir = Scratch::new("rotate");
    let portal = PortalProc::start(&dir.path("portal"));
    let (a, b, udf) = two_devices(&dir.0, &portal);
    let safe = mesh_tests::SafeBin::copy("mesh");
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[
            "AuthorizedKeysFile none".into(),
            format!(
                "AuthorizedKeysCommand {} ssh authorized-keys --account {udf} --portal {}",
                safe.path.display(),
                portal.url
            ),
            "AuthorizedKeysCommandUser root".into(),
        ],
    );
    let ag_b = RunningAgent::start(&b);
    let device = b.json(&["account", "show"])["device"].clone();
    let old_pub = write(&dir.0, "old.pub", &b.ok(&["ssh", "public-key"]));
    assert!(sshd.logs_in(&ag_b.sock, &old_pub));

    let r = a.json(&["device", "rotate", "phone"]);
    assert_eq!(r["epoch"], 1);
    // The old key is refused at once.
    assert!(
        !sshd.logs_in(&ag_b.sock, &old_pub),
        "old key still accepted"
    );
    // The device's agent switches to the new keys by itself: a new key, same device.
    let old_line = std::fs::read_to_string(&old_pub).expect("old");
    let old_key: String = old_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        eventually(20, || {
            let l = String::from_utf8_lossy(&ssh_add(&ag_b.sock, &["-L"]).stdout).to_string();
            l.contains("ssh-ed25519 ") && !l.contains(&old_key)
        }),
        "agent still serves the old key"
    );
    let new_pub = write(&dir.0, "new.pub", &b.ok(&["ssh", "public-key"]));
    assert_ne!(std::fs::read_to_string(&new_pub).expect("new"), old_line);
    assert!(sshd.logs_in(&ag_b.sock, &new_pub), "new key logs in");
    assert_eq!(
        b.json(&["account", "show"])["device"],
        device,
        "same identity"
    );
    b.ok(&["sync"]);
    // The replaced key goes into the KRL.
    let krl = dir.path("rotated.krl");
    a.ok(&["ssh", "krl", "--output", krl.to_str().expect("p")]);
    let q = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&krl)
        .arg(&old_pub)
        .output()
        .expect("-Q");
    assert!(
        String::from_utf8_lossy(&q.stdout).contains("REVOKED"),
        "{}",
        String::from_utf8_lossy(&q.stdout)
    );
    let q = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&krl)
        .arg(&new_pub)
        .output()
        .expect("-Q");
    assert!(q.status.success(), "the new key is not revoked");
}
