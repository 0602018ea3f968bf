//! `mesh.exe pgp install` finds Gpg4win's gpg.exe (issue 26): not on PATH,
//! then through the registry's `Install Directory` (`HKLM\SOFTWARE\GnuPG`,
//! else the WOW6432Node key), `bin\gpg.exe` under it; GnuPG's home is
//! `%APPDATA%\gnupg` unless GNUPGHOME is set. The gpg.exe here is a
//! stand-in that logs its calls (tests/wine/fake-gpg.c): no real Gpg4win
//! runs under Wine here.

use std::path::Path;
use std::process::Command;

use mesh_tests::{PortalProc, Scratch, Wine};

/// A stand-in gpg.exe at `dir/bin/gpg.exe`, built with MinGW.
fn fake_gpg(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).expect("bin");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("wine/fake-gpg.c");
    let ok = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-o"])
        .arg(dir.join("bin/gpg.exe"))
        .arg(src)
        .status()
        .expect("x86_64-w64-mingw32-gcc");
    assert!(ok.success(), "building the stand-in gpg.exe");
}

fn install_dir(wine: &Wine, key: &str, dir: &Path) {
    let o = wine.program(&[
        "reg",
        "add",
        key,
        "/v",
        "Install Directory",
        "/d",
        &Wine::path(dir),
        "/f",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn calls(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("bin/gpg-calls.log")).unwrap_or_default()
}

#[test]
fn pgp_install_runs_the_gpg_exe_the_registry_names_with_appdata_gnupg() {
    let dir = Scratch::new("wine-gpg");
    let Some(wine) = Wine::new(&dir.0) else {
        return;
    };
    let portal = PortalProc::start(&dir.path("portal"));
    let (_admin, home) = super::wine::joined(&dir, &portal, &wine);

    // No gpg.exe anywhere: the error says to install Gpg4win.
    let o = wine.mesh(&home, &["pgp", "install"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("hint:") && err.contains("Gpg4win"), "{err}");

    // A 32-bit Gpg4win: only the WOW6432Node key names it.
    let x86 = dir.path("Program Files (x86)/GnuPG");
    fake_gpg(&x86);
    install_dir(&wine, r"HKLM\SOFTWARE\WOW6432Node\GnuPG", &x86);
    let r: serde_json::Value =
        serde_json::from_str(&wine.mesh_ok(&home, &["--json", "pgp", "install"])).expect("json");
    let exe = Wine::path(&x86.join("bin/gpg.exe"));
    assert_eq!(r["gpg"], exe.as_str(), "{r}");
    let gnupghome = r["gnupghome"].as_str().expect("gnupghome");
    assert!(
        gnupghome
            .to_lowercase()
            .ends_with(r"\appdata\roaming\gnupg"),
        "{gnupghome}"
    );
    let log = calls(&x86);
    assert!(
        log.lines().any(|l| l.ends_with("--import"))
            && log.lines().any(|l| l.ends_with("--import-ownertrust")),
        "{log}"
    );
    assert!(
        !log.contains("--homedir"),
        "GnuPG's own default home: {log}"
    );

    // The 64-bit key comes first; GNUPGHOME names the home.
    let x64 = dir.path("Program Files/GnuPG");
    fake_gpg(&x64);
    install_dir(&wine, r"HKLM\SOFTWARE\GnuPG", &x64);
    let mut c = wine.command("mesh.exe", &["--home", &home, "--json", "pgp", "install"]);
    c.env("GNUPGHOME", r"C:\keys");
    let o = wine.output(c, b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        r["gpg"],
        Wine::path(&x64.join("bin/gpg.exe")).as_str(),
        "{r}"
    );
    assert_eq!(r["gnupghome"], r"C:\keys", "{r}");
    assert!(calls(&x64).contains("--import-ownertrust"));
}
