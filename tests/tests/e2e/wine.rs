//! Mesh on Windows, under Wine (issue 26): a Windows home joins a Linux
//! portal's account with a PIN, keeps its store key in Credential Manager,
//! serves its key and certificate on the named pipe Windows' OpenSSH uses,
//! and is cut off by a revocation from a Linux administrator.

use mesh_tests::{can_run_sshd, eventually, Device, PortalProc, Scratch, Sshd, Wine};

use crate::wsl_bridge::Through;

const ADDR: &str = "alice@example.com";
const PIPE: &str = r"\\.\pipe\openssh-ssh-agent";

/// The Linux administrator's account, and a Windows home joined to it by PIN.
pub(crate) fn joined(dir: &Scratch, portal: &PortalProc, wine: &Wine) -> (Device, String) {
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    // Certificates for "root", the user the login tests log in as.
    a.ok(&["ssh", "principals", "root", "alice"]);
    let pin = a.json(&["device", "pin"])["pin"]
        .as_str()
        .expect("pin")
        .to_string();
    let home = Wine::path(&dir.path("win"));
    let o = wine.mesh_input(
        &home,
        &[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--name",
            "win",
            "--pin",
            "--no-wait",
        ],
        &pin,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.ok(&["sync"]);
    wine.mesh_ok(&home, &["sync"]);
    (a, home)
}

#[test]
fn a_windows_home_serves_its_keys_on_the_pipe_until_revoked() {
    let dir = Scratch::new("wine-agent");
    let Some(wine) = Wine::new(&dir.0) else {
        return;
    };
    let portal = PortalProc::start(&dir.path("portal"));
    let (a, home) = joined(&dir, &portal, &wine);

    // The store key is in Credential Manager, and `status` says so.
    let status: serde_json::Value =
        serde_json::from_str(&wine.mesh_ok(&home, &["--json", "status"])).expect("json");
    assert_eq!(
        status["key_store"], "Windows Credential Manager",
        "{status}"
    );
    assert_eq!(wine.mesh_credentials().len(), 1);
    assert!(
        !dir.path("win").join("store.key").exists(),
        "no key file beside the store"
    );

    // The agent on the pipe: the device's key and certificate, and an
    // SSHSIG through the pipe that OpenSSH's ssh-keygen verifies.
    let started = wine.mesh_ok(&home, &["agent", "start"]);
    assert!(started.contains(PIPE), "{started}");
    let listed = wine.pipe_client(PIPE, &["list"], b"");
    assert!(listed.status.success(), "{listed:?}");
    let lines = String::from_utf8_lossy(&listed.stdout).to_string();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(
        lines.contains("ssh-ed25519-cert-v01@openssh.com"),
        "{lines}"
    );
    let key = lines
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .expect("plain key")
        .to_string();
    let msg = b"a release tag, signed on Windows\n";
    let sig = wine.pipe_client(PIPE, &["sign", "1", "file"], msg);
    assert!(sig.status.success(), "{sig:?}");
    std::fs::write(dir.path("msg"), msg).expect("msg");
    std::fs::write(dir.path("msg.sig"), &sig.stdout).expect("sig");
    let allowed = dir.path("allowed");
    std::fs::write(&allowed, format!("win@example.com {key}\n")).expect("allowed");
    let verify = std::process::Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "file", "-I", "win@example.com", "-f"])
        .arg(&allowed)
        .arg("-s")
        .arg(dir.path("msg.sig"))
        .stdin(std::fs::File::open(dir.path("msg")).expect("msg"))
        .output()
        .expect("ssh-keygen");
    assert!(verify.status.success(), "{verify:?}");

    // Outlook's store: the account's encryption certificate with a key
    // that opens in CurrentUser\My, the CA in CurrentUser\Root. The
    // device's P-256 signing key is left out under Wine, whose PKCS#12
    // import takes RSA keys only, and the install says so.
    let o = wine.mesh(&home, &["smime", "install", "--windows-store"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{said}");
    assert!(said.contains("ECDSA P-256"), "{said}");
    let my = certs(&wine, "My");
    assert!(
        my.iter()
            .any(|(k, n)| *k && n.contains(ADDR) && n.contains("encryption")),
        "{my:?}"
    );
    let root = certs(&wine, "Root");
    assert!(
        root.iter()
            .any(|(_, n)| n == &format!("{ADDR} (Mesh personal CA)")),
        "{root:?}"
    );

    // A second agent on the same pipe is refused, saying why.
    let other = Wine::path(&dir.path("win2"));
    let o = wine.mesh(&other, &["agent", "start"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("already served by another program"), "{err}");
    assert!(err.contains("hint: "), "{err}");

    // Revoked from Linux: the Windows agent serves nothing and the key
    // store's entry is deleted.
    a.ok(&["device", "revoke", "win"]);
    assert!(
        eventually(60, || !wine
            .pipe_client(PIPE, &["list"], b"")
            .status
            .success()),
        "the revoked agent still answers on the pipe"
    );
    assert!(
        eventually(30, || wine.mesh_credentials().is_empty()),
        "the Credential Manager entry is still there"
    );
    assert!(
        eventually(30, || !certs(&wine, "My")
            .iter()
            .any(|(_, n)| n.contains(ADDR))),
        "the revoked device's certificates are still in CurrentUser\\My"
    );
    assert!(
        !certs(&wine, "Root").iter().any(|(_, n)| n.contains(ADDR)),
        "the account's CA is still trusted"
    );
    let o = wine.mesh(&home, &["agent", "start"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `(key opens, friendly name)` of each certificate in CurrentUser\STORE,
/// read by the Windows-built client.
fn certs(wine: &Wine, store: &str) -> Vec<(bool, String)> {
    let o = wine.output(wine.command("mesh-pipe-client.exe", &["certs", store]), b"");
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, n)| (k == "1", n.to_string()))
        .collect()
}

/// WSL's bridge on Linux, its relay `mesh.exe ssh-agent-relay` under Wine:
/// a real `ssh-add -l` lists the Windows agent's key and certificate, and
/// a real `ssh` logs in to a loopback sshd with them.
#[test]
fn the_wsl_bridge_reaches_the_windows_agent_through_the_relay() {
    if !can_run_sshd() {
        return;
    }
    let dir = Scratch::new("wine-bridge");
    let Some(wine) = Wine::new(&dir.0) else {
        return;
    };
    let portal = PortalProc::start(&dir.path("portal"));
    let (a, home) = joined(&dir, &portal, &wine);
    let ca = dir.path("ca.pub");
    std::fs::write(&ca, a.ok(&["ssh", "ca"])).expect("ca");
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[
            "AuthorizedKeysFile none".into(),
            format!("TrustedUserCAKeys {}", ca.display()),
        ],
    );
    wine.mesh_ok(&home, &["agent", "start"]);
    let listed = wine.pipe_client(PIPE, &["list"], b"");
    assert!(listed.status.success(), "{listed:?}");
    let cert_line = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find(|l| l.starts_with("ssh-ed25519-cert-v01@openssh.com "))
        .expect("certificate")
        .to_string();
    let cert = dir.path("win-cert.pub");
    std::fs::write(&cert, format!("{cert_line}\n")).expect("cert");

    let through = Through {
        relay: wine.relay_command(),
        listed: &|l: &str| l.lines().count() == 2 && l.contains("(ED25519-CERT)"),
        sshd: &sshd,
        identity: &cert,
        accepted: "Accepted certificate ID \"win@alice@example.com\"",
    };
    through.check(&dir.path("wsl"));
    wine.mesh_ok(&home, &["agent", "stop"]);
}

/// Windows' own agent service holding the pipe is named in the error,
/// with what to do: here a stand-in, a process named `ssh-agent.exe` (a
/// copy of `mesh.exe`) serving `\\.\pipe\openssh-ssh-agent`.
#[test]
fn a_pipe_held_by_windows_ssh_agent_service_is_named() {
    let dir = Scratch::new("wine-service");
    let Some(wine) = Wine::new(&dir.0) else {
        return;
    };
    let bin = mesh_tests::wine::windows_bin_dir();
    let fake = dir.path("ssh-agent.exe");
    std::fs::copy(bin.join("mesh.exe"), &fake).expect("copy");
    std::fs::copy(
        bin.join("bcryptprimitives.dll"),
        dir.path("bcryptprimitives.dll"),
    )
    .expect("copy the shim");
    let held = Wine::path(&dir.path("service-home"));
    let o = wine.output(
        wine.command(
            &fake.display().to_string(),
            &["--home", &held, "agent", "start"],
        ),
        b"",
    );
    assert!(o.status.success(), "{o:?}");

    let home = Wine::path(&dir.path("win"));
    let o = wine.mesh(&home, &["agent", "start"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("already served by another program"), "{err}");
    assert!(
        err.contains("OpenSSH Authentication Agent service (ssh-agent.exe) is running"),
        "{err}"
    );
    assert!(err.contains("Stop-Service ssh-agent"), "{err}");
}
