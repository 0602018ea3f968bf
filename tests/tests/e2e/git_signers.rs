//! Git commit signatures through the agent, checked with the allowed
//! signers `mesh ssh allowed-signers` writes, across a rotation and a
//! revocation (issue 25: git signatures that survive rotation).

use std::path::Path;
use std::process::{Command, Output};

use mesh_tests::{eventually, free_port, require_tool, Device, PortalProc, RunningAgent, Scratch};

const ADDR: &str = "alice@example.com";

/// git, isolated from the user's and the system's configuration.
fn git(repo: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("SSH_AUTH_SOCK");
    c
}

fn ok(mut c: Command) -> String {
    let o = c.output().expect("git");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// "ssh-ed25519 AAAA…" of a public key line (without its comment).
fn bare(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// An empty commit signed through the agent at `sock` with `key`, dated
/// `date` when given; its hash.
fn commit(repo: &Path, sock: &Path, key: &str, msg: &str, date: Option<&str>) -> String {
    let signing = format!("user.signingkey=key::{key}");
    let mut c = git(
        repo,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &signing,
            "commit",
            "-q",
            "--allow-empty",
            "-S",
            "-m",
            msg,
        ],
    );
    c.env("SSH_AUTH_SOCK", sock);
    if let Some(d) = date {
        c.env("GIT_COMMITTER_DATE", d).env("GIT_AUTHOR_DATE", d);
    }
    ok(c);
    ok(git(repo, &["rev-parse", "HEAD"]))
}

/// `git verify-commit` with `signers` and, if given, `krl` as the
/// revocation file.
fn verify(repo: &Path, rev: &str, signers: &Path, krl: Option<&Path>) -> Output {
    let s = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    let mut args = vec!["-c".to_string(), s];
    if let Some(k) = krl {
        args.extend([
            "-c".into(),
            format!("gpg.ssh.revocationFile={}", k.display()),
        ]);
    }
    args.extend(["verify-commit".into(), rev.into()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    git(repo, &a).output().expect("verify-commit")
}

/// Whether it verifies; git's and ssh-keygen's words go to the test's
/// output, to read when an assertion fails.
fn verifies(repo: &Path, rev: &str, signers: &Path, krl: Option<&Path>) -> bool {
    let o = verify(repo, rev, signers, krl);
    eprintln!(
        "verify-commit {rev}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o.status.success()
}

fn cp_home(from: &Device, to: &Path) -> Device {
    let s = Command::new("cp")
        .arg("-a")
        .arg(&from.home)
        .arg(to)
        .status()
        .expect("cp");
    assert!(s.success());
    Device {
        home: to.to_path_buf(),
    }
}

/// An allowed signers line without its `valid-before` option.
fn without_end(line: &str) -> String {
    const OPT: &str = ",valid-before=\"";
    match line.find(OPT) {
        Some(i) => {
            let end = i + OPT.len() + line[i + OPT.len()..].find('"').expect("closing quote") + 1;
            format!("{}{}\n", &line[..i], &line[end..])
        }
        None => format!("{line}\n"),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// The account (admin `a`, member `b` "phone") on a portal at `listen`.
fn account(dir: &Path, data: &Path, listen: &str) -> (PortalProc, Device, Device, String) {
    let portal = PortalProc::start_on(data, listen, &[]);
    let a = Device::new(dir, "a");
    a.ok(&["device", "init", "--name", "laptop"]);
    let udf = a.create(ADDR, &portal.url);
    let b = Device::new(dir, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    (portal, a, b, udf)
}

#[test]
fn commits_signed_before_a_rotation_verify_after_it_and_a_revoked_key_s_never() {
    if !require_tool("git") || !require_tool("ssh-keygen") {
        return;
    }
    let dir = Scratch::new("git-signers");
    let (data, listen) = (dir.path("portal"), format!("127.0.0.1:{}", free_port()));
    let (portal, a, b, udf) = account(&dir.0, &data, &listen);
    let repo = dir.path("repo");
    ok(git(&dir.0, &["init", "-q", path(&repo)]));
    ok(git(&repo, &["config", "user.name", "Alice"]));
    ok(git(&repo, &["config", "user.email", ADDR]));
    // What a thief (or a stale agent) keeps: the home before the rotation.
    let stale = cp_home(&b, &dir.path("stale"));

    let ag_b = RunningAgent::start(&b);
    let k1 = bare(&b.ok(&["ssh", "public-key"]));
    let c1 = commit(&repo, &ag_b.sock, &k1, "before the rotation", None);

    a.ok(&["device", "rotate", "phone"]);
    assert!(
        eventually(20, || !ag_b.identities().is_empty() && {
            let k2 = bare(&b.ok(&["ssh", "public-key"]));
            k2 != k1
                && String::from_utf8_lossy(&mesh_tests::ssh_add(&ag_b.sock, &["-L"]).stdout)
                    .contains(&k2)
        }),
        "the agent never served the rotated key"
    );
    let k2 = bare(&b.ok(&["ssh", "public-key"]));
    let c2 = commit(&repo, &ag_b.sock, &k2, "after the rotation", None);

    // A server (or CI runner) writes the file from the pinned account.
    let signers = dir.path("allowed_signers");
    let cache = dir.path("cache");
    a.ok(&[
        "ssh",
        "allowed-signers",
        "--account",
        &udf,
        "--portal",
        &portal.url,
        "--cache",
        path(&cache),
        "--output",
        path(&signers),
    ]);
    let text = std::fs::read_to_string(&signers).expect("signers");
    assert!(text.contains(&k1) && text.contains(&k2), "{text}");
    assert!(
        verifies(&repo, &c1, &signers, None),
        "the old key's commit before the rotation"
    );
    assert!(verifies(&repo, &c2, &signers, None), "the new key's commit");
    let shown = ok(git(
        &repo,
        &[
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", signers.display()),
            "log",
            "--show-signature",
            "-1",
            &c1,
        ],
    ));
    assert!(
        shown.contains(&format!("Good \"git\" signature for phone@{ADDR}")),
        "{shown}"
    );

    // The rotated-away key, signing after the rotation, is refused.
    let _ = portal.stop();
    let ag_stale = RunningAgent::start(&stale);
    assert!(
        ag_stale.identities().contains("ED25519"),
        "the stale agent serves the old key"
    );
    let late = commit(
        &repo,
        &ag_stale.sock,
        &k1,
        "stolen",
        Some("@4102444800 +0000"),
    );
    drop(ag_stale);
    let out = verify(&repo, &late, &signers, None);
    assert!(
        !out.status.success(),
        "a rotated-away key signed after its rotation"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expired"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... because of its window: without valid-before it would verify.
    let open = dir.path("no_windows");
    std::fs::write(&open, text.lines().map(without_end).collect::<String>()).expect("write");
    assert!(
        verifies(&repo, &late, &open, None),
        "the test's own check: the window is what refuses it"
    );

    // Revoked: every commit of the key it held is refused through git's KRL;
    // the key rotated away before stays good for its own window.
    let portal = PortalProc::start_on(&data, &listen, &[]);
    a.ok(&["device", "revoke", "phone"]);
    let krl = dir.path("git.krl");
    a.ok(&[
        "ssh",
        "allowed-signers",
        "--output",
        path(&signers),
        "--krl",
        path(&krl),
    ]);
    assert!(
        verifies(&repo, &c2, &signers, None),
        "before the revocation, by its window"
    );
    assert!(
        !verifies(&repo, &c2, &signers, Some(&krl)),
        "a revoked key's commit"
    );
    assert!(
        verifies(&repo, &c1, &signers, Some(&krl)),
        "a rotated key is not in git's KRL"
    );
    // The account's KRL for sshd also revokes rotated keys: not for git.
    let sshd_krl = dir.path("sshd.krl");
    a.ok(&["ssh", "krl", "--output", path(&sshd_krl)]);
    assert!(!verifies(&repo, &c1, &signers, Some(&sshd_krl)));
    drop(portal);
}

#[test]
fn allowed_signers_need_the_pinned_account() {
    let dir = Scratch::new("git-signers-pin");
    let (data, listen) = (dir.path("portal"), format!("127.0.0.1:{}", free_port()));
    let (portal, a, _b, _udf) = account(&dir.0, &data, &listen);
    let e = a.fails(&[
        "ssh",
        "allowed-signers",
        "--account",
        "MBQA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA",
        "--portal",
        &portal.url,
    ]);
    assert!(
        e.contains("no such account") || e.contains("UnknownAccount"),
        "{e}"
    );
}
