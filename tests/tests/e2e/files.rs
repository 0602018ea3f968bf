//! The files channel with the real `age` (Debian's age 1.1): a file
//! encrypted to `mesh files recipient` opens on every device of the
//! account through age-plugin-mesh, and a file made after a revocation
//! does not open on the revoked device, nor with a copy of its home.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use mesh_tests::{require_tool, workspace_bin, Device, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

/// `age ARGS` as a person on the device with `home` runs it: age finds
/// age-plugin-mesh on PATH (next to `mesh`), which finds the home by MESH_HOME.
fn age(home: &Path, args: &[&str]) -> Output {
    let bin = workspace_bin("mesh");
    let dir = bin.parent().expect("target dir");
    let path = std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    Command::new("age")
        .args(args)
        .env("PATH", path)
        .env("MESH_HOME", home)
        .env("MESH_KEYSTORE", "file")
        .stdin(Stdio::null())
        .output()
        .expect("run age")
}

fn encrypt(d: &Device, recipient: &str, plain: &Path, out: &Path) {
    let o = age(
        &d.home,
        &[
            "-r",
            recipient,
            "-o",
            out.to_str().expect("p"),
            plain.to_str().expect("p"),
        ],
    );
    assert!(
        o.status.success(),
        "age -r: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `age -d -i IDENTITY FILE` on `home`: the plaintext, or age's error.
fn decrypt(home: &Path, identity: &Path, file: &Path) -> Result<String, String> {
    let o = age(
        home,
        &[
            "-d",
            "-i",
            identity.to_str().expect("p"),
            file.to_str().expect("p"),
        ],
    );
    if o.status.success() {
        Ok(String::from_utf8(o.stdout).expect("utf8"))
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

#[test]
fn a_file_for_the_account_opens_on_every_device_and_not_on_a_revoked_one() {
    if !require_tool("age") {
        return;
    }
    let dir = Scratch::new("files");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);
    let (b, c) = (Device::new(&dir.0, "b"), Device::new(&dir.0, "c"));
    b.join(&a, ADDR, &portal.url, "phone");
    c.join(&a, ADDR, &portal.url, "tablet");

    let recipient = a.ok(&["files", "recipient"]).trim().to_string();
    assert!(recipient.starts_with("age1mesh1"), "{recipient}");
    assert_eq!(
        b.ok(&["files", "recipient"]).trim(),
        recipient,
        "one account, one recipient"
    );
    // The identity names the account: the same on every device, and no secret.
    let identity = b.ok(&["files", "identity"]);
    assert_eq!(c.ok(&["files", "identity"]), identity);
    let id = dir.path("identity.txt");
    std::fs::write(&id, &identity).expect("identity");

    let (old_plain, old) = (dir.path("old.txt"), dir.path("old.age"));
    std::fs::write(&old_plain, "made before the revocation\n").expect("plain");
    encrypt(&a, &recipient, &old_plain, &old);
    for d in [&b, &c] {
        assert_eq!(
            decrypt(&d.home, &id, &old).as_deref(),
            Ok("made before the revocation\n")
        );
    }

    // A copy of the phone's home, taken before it is revoked (a thief's).
    let copy = dir.path("b-copy");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&b.home)
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(cp.success());
    a.ok(&["device", "revoke", "phone"]);
    a.ok(&["sync"]);
    let new_recipient = a.ok(&["files", "recipient"]).trim().to_string();
    assert_ne!(
        new_recipient, recipient,
        "a revoke starts a new epoch of the file key"
    );
    let (new_plain, new) = (dir.path("new.txt"), dir.path("new.age"));
    std::fs::write(&new_plain, "made after the revocation\n").expect("plain");
    encrypt(&a, &new_recipient, &new_plain, &new);

    // The survivor opens old and new files.
    c.ok(&["sync"]);
    assert_eq!(
        decrypt(&c.home, &id, &old).as_deref(),
        Ok("made before the revocation\n")
    );
    assert_eq!(
        decrypt(&c.home, &id, &new).as_deref(),
        Ok("made after the revocation\n")
    );

    // The copy never had the new epoch, and says so; old files stay readable
    // to it, by design (docs/DESIGN.md), as old mail does.
    let e = decrypt(&copy, &id, &new).expect_err("the copy opens a new file");
    assert!(
        e.contains("epoch 1") && e.contains("never had") && e.contains("hint:"),
        "{e}"
    );
    assert!(decrypt(&copy, &id, &old).is_ok());
    // The revoked phone itself, after it learns of its revocation.
    let _ = b.run(&["sync"]);
    assert!(
        decrypt(&b.home, &id, &new).is_err(),
        "the revoked phone opens a new file"
    );
}

#[test]
fn a_file_for_another_account_or_without_a_home_says_so() {
    if !require_tool("age") {
        return;
    }
    let dir = Scratch::new("files-other");
    let portal = PortalProc::start(&dir.path("portal"));
    let (a, z) = (Device::new(&dir.0, "a"), Device::new(&dir.0, "z"));
    a.create(ADDR, &portal.url);
    z.create("zoe@example.com", &portal.url);
    let plain = dir.path("p.txt");
    std::fs::write(&plain, "for zoe\n").expect("plain");
    let file = dir.path("p.age");
    encrypt(&z, z.ok(&["files", "recipient"]).trim(), &plain, &file);
    // Zoe's identity with Alice's home: the identity names another account.
    let zid = dir.path("zoe.txt");
    std::fs::write(&zid, z.ok(&["files", "identity"])).expect("identity");
    let e = decrypt(&a.home, &zid, &file).expect_err("alice's home opens zoe's file");
    assert!(
        e.contains("another account") && e.contains("MESH_HOME"),
        "{e}"
    );
    // Alice's identity with Alice's home: the file is for another account.
    let aid = dir.path("alice.txt");
    std::fs::write(&aid, a.ok(&["files", "identity"])).expect("identity");
    let e = decrypt(&a.home, &aid, &file).expect_err("alice opens zoe's file");
    assert!(
        e.contains("another Mesh account") && e.contains("hint:"),
        "{e}"
    );
    // No home at all.
    let e = decrypt(&dir.path("nowhere"), &aid, &file).expect_err("no home");
    assert!(e.contains("hint:"), "{e}");
    // `mesh files decrypt` says the same, and writes nothing.
    let out = dir.path("p.out");
    let out = out.to_str().expect("p");
    let e = a.fails(&["files", "decrypt", file.to_str().expect("p"), "-o", out]);
    assert!(
        e.contains("another Mesh account") && e.contains("hint:"),
        "{e}"
    );
    assert!(!Path::new(out).exists());
}

/// The files channel's subcommand comes from its crate (the SDK's
/// `ChannelCommand`), yet `mesh` lists it as its own: help, completions,
/// manual pages, `--json`, and errors with hints.
#[test]
fn the_channels_subcommand_is_part_of_the_command_line() {
    let dir = Scratch::new("files-cli");
    let mesh = |args: &[&str]| {
        Command::new(workspace_bin("mesh"))
            .args(args)
            .output()
            .expect("mesh")
    };
    let help = String::from_utf8(mesh(&["--help"]).stdout).expect("utf8");
    assert!(
        help.lines()
            .any(|l| l.trim_start().starts_with("files") && l.contains("age")),
        "{help}"
    );
    let bash = String::from_utf8(mesh(&["completions", "bash"]).stdout).expect("utf8");
    assert!(
        bash.contains("mesh,files)") && bash.contains("mesh__subcmd__files,recipient)"),
        "{bash}"
    );
    let o = mesh(&["man", "--output", dir.path("man").to_str().expect("p")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for page in ["mesh-files.1", "mesh-files-recipient.1"] {
        assert!(dir.path("man").join(page).is_file(), "{page}");
    }

    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::new(&dir.0, "a");
    a.create(ADDR, &portal.url);
    let j = a.json(&["files", "recipient"]);
    assert!(
        j["recipient"]
            .as_str()
            .is_some_and(|r| r.starts_with("age1mesh1"))
            && j["account"] == ADDR,
        "{j}"
    );
    // The host's errors keep their hints through the channel's subcommand.
    let e = Device::new(&dir.0, "nobody").fails(&["files", "recipient"]);
    assert!(e.contains("no Mesh device") && e.contains("hint:"), "{e}");
    let e = a.fails(&["files", "nonsense"]);
    assert!(e.contains("nonsense") && e.contains("hint:"), "{e}");
}

/// `mesh files encrypt|decrypt` for people without age: what `mesh`
/// writes, `age -d` opens on another device; what `age -r` writes, `mesh`
/// opens; a file cut short or changed is refused, and no output is left.
#[test]
fn mesh_files_encrypt_and_decrypt_interoperate_with_age() {
    if !require_tool("age") {
        return;
    }
    let dir = Scratch::new("files-crypt");
    let portal = PortalProc::start(&dir.path("portal"));
    let (a, b) = (Device::new(&dir.0, "a"), Device::new(&dir.0, "b"));
    a.create(ADDR, &portal.url);
    b.join(&a, ADDR, &portal.url, "phone");
    let out = dir.path("out");
    std::fs::create_dir_all(&out).expect("out");
    let p = |name: &str| out.join(name).to_str().expect("p").to_string();
    // Three chunks and a bit: the STREAM boundaries are crossed.
    let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(p("plain"), &plain).expect("plain");

    let j = a.json(&["files", "encrypt", &p("plain"), "-o", &p("by-mesh.age")]);
    assert_eq!(j["output"], p("by-mesh.age"), "{j}");
    let id = dir.path("identity.txt");
    std::fs::write(&id, b.ok(&["files", "identity"])).expect("identity");
    let o = age(
        &b.home,
        &["-d", "-i", id.to_str().expect("p"), &p("by-mesh.age")],
    );
    assert!(
        o.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout == plain, "age -d opened something else");

    let recipient = a.ok(&["files", "recipient"]).trim().to_string();
    encrypt(&a, &recipient, &out.join("plain"), &out.join("by-age.age"));
    b.ok(&["files", "decrypt", &p("by-age.age"), "-o", &p("opened")]);
    assert!(std::fs::read(p("opened")).expect("opened") == plain);

    // Cut short at a chunk boundary and inside a chunk; one payload bit changed.
    let file = std::fs::read(p("by-age.age")).expect("file");
    let mut changed = file.clone();
    changed[file.len() - 1000] ^= 1;
    let cut_at_boundary = file.len() - (200_000 - 3 * 65_536) - 16;
    for (name, bytes) in [
        ("cut.age", &file[..cut_at_boundary]),
        ("short.age", &file[..file.len() - 7]),
        ("changed.age", &changed[..]),
    ] {
        std::fs::write(p(name), bytes).expect("bad");
        let e = b.fails(&["files", "decrypt", &p(name), "-o", &p("bad-out")]);
        assert!(
            e.contains("damaged, cut short or forged") && e.contains("hint: nothing was written"),
            "{name}: {e}"
        );
        assert!(!out.join("bad-out").exists(), "{name}: an output was left");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .expect("out")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Not an age file at all.
    let e = b.fails(&["files", "decrypt", &p("plain"), "-o", &p("bad-out")]);
    assert!(e.contains("not an age file") && e.contains("hint:"), "{e}");
}
