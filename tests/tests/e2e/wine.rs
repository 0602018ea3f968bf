//! Mesh on Windows, under Wine (issue 26): a Windows home joins a Linux
//! portal's account with a PIN, keeps its store key in Credential Manager,
//! serves its key and certificate on the named pipe Windows' OpenSSH uses,
//! and is cut off by a revocation from a Linux administrator.

use mesh_tests::{eventually, Device, PortalProc, Scratch, Wine};

const ADDR: &str = "alice@example.com";
const PIPE: &str = r"\\.\pipe\openssh-ssh-agent";

/// The Linux administrator's account, and a Windows home joined to it by PIN.
pub(crate) fn joined(dir: &Scratch, portal: &PortalProc, wine: &Wine) -> (Device, String) {
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
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
    let o = wine.mesh(&home, &["agent", "start"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
