//! A portal that creates accounts by invitation only (`--bind invite`):
//! a stranger who reaches it creates nothing, and each code from
//! `mesh-portal invite` creates one account, once, before it expires.

use std::process::Command;

use mesh_tests::{workspace_bin, Backend, Device, PortalProc, Scratch};

/// A code from `mesh-portal invite` (its clock moved by `faketime`
/// when `ago` is given).
fn invite(key: &std::path::Path, expires: &str, ago: Option<&str>) -> String {
    let mut c = match ago {
        Some(a) => {
            let mut c = Command::new("faketime");
            c.arg("-f")
                .arg(format!("-{a}"))
                .arg(workspace_bin("mesh-portal"));
            c
        }
        None => Command::new(workspace_bin("mesh-portal")),
    };
    let o = c
        .args(["invite", "--invite-key"])
        .arg(key)
        .args(["--expires", expires])
        .output()
        .expect("mesh-portal invite");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

fn accounts_by_invitation_only(backend: Backend) {
    if !mesh_tests::require_tool("faketime") {
        return;
    }
    let dir = Scratch::new("invite");
    let key = dir.path("invite.key");
    let first = invite(&key, "1h", None);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key file is the operator's alone");
    let k = key.to_str().expect("path");
    let portal = PortalProc::on_with(
        backend,
        &dir.path("portal"),
        &["--bind", "invite", "--invite-key", k],
    );
    let create = |d: &Device, addr: &str, code: Option<&str>| {
        let mut args = vec![
            "account",
            "create",
            addr,
            "--portal",
            &portal.url,
            "--recovery",
        ];
        let kit = d.kit();
        args.push(&kit);
        match code {
            Some(c) => {
                args.push("--invite");
                d.run_input(&args, &format!("{c}\n"))
            }
            None => d.run(&args),
        }
    };
    let other_key = dir.path("other.key");
    let forged = invite(&other_key, "1h", None);
    let expired = invite(&key, "1h", Some("2h"));
    let mut altered = first.clone().into_bytes();
    altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("utf8");
    for (what, code, says) in [
        ("no code", None, "by invitation only"),
        (
            "another portal's code",
            Some(forged.as_str()),
            "not one of this portal's",
        ),
        (
            "an altered code",
            Some(altered.as_str()),
            "not one of this portal's",
        ),
        ("an expired code", Some(expired.as_str()), "expired"),
        ("not a code", Some("hello"), "malformed"),
    ] {
        let d = Device::new(&dir.0, &format!("stranger-{}", what.len()));
        let o = create(&d, "eve@example.com", code);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what}: created");
        assert!(e.contains(says) && e.contains("hint:"), "{what}: {e}");
        // The kit of a root that no account uses is taken back.
        assert!(d.kit_files().is_empty(), "{what}: a kit was left");
    }
    let a = Device::new(&dir.0, "a");
    let o = create(&a, "alice@example.com", Some(&first));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Once.
    let b = Device::new(&dir.0, "b");
    let o = create(&b, "bob@example.com", Some(&first));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("used already"), "{e}");
    // The code is a secret: never on the command line.
    let e = b.fails(&[
        "account",
        "create",
        "bob@example.com",
        "--portal",
        &portal.url,
        "--recovery",
        &b.kit(),
        "--invite",
        &first,
    ]);
    assert!(e.contains("standard input"), "{e}");
    a.ok(&["sync"]);
}

mesh_tests::on_both_backends!(accounts_by_invitation_only);
