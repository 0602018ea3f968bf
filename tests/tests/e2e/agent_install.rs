//! `mesh agent install` / `uninstall` on Linux (issue 26): a systemd user
//! unit for this binary and home in a scratch XDG_CONFIG_HOME, accepted by
//! `systemd-analyze verify`, written once, removed again; a unit of the
//! same name that is not Mesh's for this home is neither replaced nor
//! removed. No user manager is reachable here (a scratch runtime
//! directory, no session bus), as in CI: install says what to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mesh_tests::{require_tool, workspace_bin, Scratch};

/// `mesh --home HOME [--json] ARGS` with the scratch config and runtime
/// dirs (and `dir/bin` first on PATH, where a test puts a `systemctl`).
fn mesh(dir: &Scratch, home: &Path, args: &[&str]) -> Output {
    let path = std::env::join_paths(
        std::iter::once(dir.path("bin")).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .expect("PATH");
    Command::new(workspace_bin("mesh"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("XDG_CONFIG_HOME", dir.path("config"))
        .env("XDG_RUNTIME_DIR", dir.path("run"))
        .env("PATH", path)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("MESH_HOME")
        .output()
        .expect("mesh")
}

fn json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

fn units(dir: &Scratch) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.path("config/systemd/user"))
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `systemd-analyze verify --user` accepts the unit (it also checks that
/// ExecStart's binary is there and executable).
fn verify(dir: &Scratch, unit: &Path) {
    if !require_tool("systemd-analyze") {
        return;
    }
    let o = Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(unit)
        .env("XDG_CONFIG_HOME", dir.path("config"))
        .env("XDG_RUNTIME_DIR", dir.path("run"))
        .output()
        .expect("systemd-analyze");
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn install_writes_one_verified_unit_for_this_binary_and_home_and_uninstall_removes_it() {
    let dir = Scratch::new("agent-install");
    std::fs::create_dir_all(dir.path("run")).expect("run dir");
    let home = dir.path("my mesh home");
    let exe = workspace_bin("mesh");

    let o = mesh(&dir, &home, &["--json", "agent", "install"]);
    let r = json(&o);
    assert_eq!(r["action"], "installed", "{r}");
    assert_eq!(r["active"], false, "no user manager here: {r}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("hint:") && err.contains("systemctl --user enable --now mesh-agent-"),
        "what to run, on stderr: {err}"
    );
    let [unit] = &units(&dir)[..] else {
        panic!("one unit: {:?}", units(&dir));
    };
    let text = std::fs::read_to_string(unit).expect("unit");
    let exec = format!(
        "ExecStart=\"{}\" --home \"{}\" agent run\n",
        exe.display(),
        home.display()
    );
    assert!(text.contains(&exec), "{exec} in:\n{text}");
    assert!(text.contains("WantedBy=default.target\n"), "{text}");
    assert!(text.contains("LimitCORE=0\n"), "{text}");
    verify(&dir, unit);

    // Again: the same single unit, unchanged.
    let r = json(&mesh(&dir, &home, &["--json", "agent", "install"]));
    assert_eq!(r["action"], "unchanged", "{r}");
    assert_eq!(units(&dir).len(), 1);

    // Mesh's unit for this home from a binary since moved: updated to this one.
    std::fs::write(
        unit,
        text.replace(&*exe.to_string_lossy(), "/opt/old mesh/mesh"),
    )
    .expect("old");
    let r = json(&mesh(&dir, &home, &["--json", "agent", "install"]));
    assert_eq!(r["action"], "updated", "{r}");
    assert_eq!(std::fs::read_to_string(unit).expect("unit"), text);

    // Another home: its own unit beside the first.
    let other = dir.path("other");
    json(&mesh(&dir, &other, &["--json", "agent", "install"]));
    assert_eq!(units(&dir).len(), 2);
    json(&mesh(&dir, &other, &["--json", "agent", "uninstall"]));

    let r = json(&mesh(&dir, &home, &["--json", "agent", "uninstall"]));
    assert_eq!(r["action"], "removed", "{r}");
    assert!(units(&dir).is_empty(), "{:?}", units(&dir));
    let o = mesh(&dir, &home, &["agent", "uninstall"]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing to remove"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Hostile: a unit of Mesh's name planted by someone else (or copied by
/// hand from agent/dist) runs another program: install does not replace
/// it and uninstall does not remove it; both name what is there.
#[test]
fn a_unit_of_the_same_name_that_is_not_meshs_is_neither_replaced_nor_removed() {
    let dir = Scratch::new("agent-install-foreign");
    std::fs::create_dir_all(dir.path("run")).expect("run dir");
    let home = dir.path("home");
    let r = json(&mesh(&dir, &home, &["--json", "agent", "install"]));
    let unit = PathBuf::from(r["location"].as_str().expect("location"));
    let planted = std::fs::read_to_string(&unit).expect("unit").replace(
        &*workspace_bin("mesh").to_string_lossy(),
        "/tmp/not-mesh/evil",
    );
    std::fs::write(&unit, &planted).expect("plant");

    for cmd in ["install", "uninstall"] {
        let o = mesh(&dir, &home, &["agent", cmd]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{cmd} must refuse: {err}");
        assert!(
            err.contains("not Mesh's agent for this home") && err.contains("/tmp/not-mesh/evil"),
            "{cmd}: {err}"
        );
        assert!(err.contains("hint:"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&unit).expect("unit"),
            planted,
            "{cmd} left it"
        );
    }
}

/// A reachable user manager: no systemd user instance runs in these
/// containers, so a stand-in `systemctl` logs what it is asked (and says
/// no unit is active). Install enables and starts the unit; with an agent
/// started by hand already serving the home it enables it only (the
/// unit's agent would be refused and restarted every few seconds) and
/// says so; uninstall disables and stops it.
#[test]
fn with_a_user_manager_install_enables_now_unless_an_agent_already_runs() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Scratch::new("agent-install-systemctl");
    std::fs::create_dir_all(dir.path("run")).expect("run dir");
    std::fs::create_dir_all(dir.path("bin")).expect("bin dir");
    let log = dir.path("systemctl.log");
    let stub = dir.path("bin/systemctl");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$2\" = is-active ] && exit 3\nexit 0\n",
            log.display()
        ),
    )
    .expect("stub");
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = dir.path("home");
    let calls = || {
        let c = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        c
    };

    let o = mesh(&dir, &home, &["--json", "agent", "install"]);
    let r = json(&o);
    let name = r["name"].as_str().expect("name").to_string();
    assert_eq!(r["active"], true, "{r}");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let c = calls();
    assert!(c.contains(&format!("--user enable --now {name}\n")), "{c}");
    json(&mesh(&dir, &home, &["--json", "agent", "uninstall"]));
    let c = calls();
    assert!(c.contains(&format!("--user disable --now {name}\n")), "{c}");

    // An agent started by hand serves the home: enabled, not started.
    std::fs::create_dir_all(&home).expect("home");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let o = mesh(&dir, &home, &["agent", "start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = mesh(&dir, &home, &["--json", "agent", "install"]);
    mesh(&dir, &home, &["agent", "stop"]);
    let r = json(&o);
    assert_eq!(r["active"], false, "{r}");
    let c = calls();
    assert!(
        c.contains(&format!("--user enable {name}\n")) && !c.contains("--now"),
        "{c}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("hint:") && err.contains("already runs"),
        "{err}"
    );
}
