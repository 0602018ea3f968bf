//! `mesh.exe agent install` / `uninstall` under Wine (issue 26): a value
//! under HKCU's Run key that starts the agent at logon (Wine's `wineboot`
//! runs the Run values as a logon does), one per home, removed again; a
//! value of the same name that another program planted is neither replaced
//! nor removed.

use mesh_tests::{eventually, Scratch, Wine};

const RUN: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run";

/// The Run key's values that Mesh's names could be (`reg query` lines).
fn run_values(wine: &Wine) -> Vec<String> {
    let o = wine.program(&["reg", "query", RUN]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("Mesh agent"))
        .map(|l| l.trim().to_string())
        .collect()
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn install_registers_one_run_value_that_starts_the_agent_at_logon_and_uninstall_removes_it() {
    let dir = Scratch::new("wine-install");
    let Some(wine) = Wine::new(&dir.0) else {
        return;
    };
    let home = Wine::path(&dir.path("win home"));
    let r = json(&wine.mesh_ok(&home, &["--json", "agent", "install"]));
    assert_eq!(r["action"], "installed", "{r}");
    let name = format!("Mesh agent ({home})");
    assert_eq!(r["name"], name.as_str(), "{r}");

    let values = run_values(&wine);
    let [value] = &values[..] else {
        panic!("one Run value: {values:?}");
    };
    let exe = Wine::path(&mesh_tests::wine::windows_bin_dir().join("mesh.exe"));
    let command = format!("\"{exe}\" --home \"{home}\" agent start");
    assert!(
        value.starts_with(&name) && value.ends_with(&format!("REG_SZ    {command}")),
        "{value}\nnot {command}"
    );

    // Again: still one value, unchanged.
    let r = json(&wine.mesh_ok(&home, &["--json", "agent", "install"]));
    assert_eq!(r["action"], "unchanged", "{r}");
    assert_eq!(run_values(&wine).len(), 1, "{:?}", run_values(&wine));

    // Mesh's value for this home from a mesh.exe since moved: updated.
    let old = format!(r#""C:\Old Mesh\mesh.exe" --home "{home}" agent start"#);
    let o = wine.program(&["reg", "add", RUN, "/v", &name, "/d", &old, "/f"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json(&wine.mesh_ok(&home, &["--json", "agent", "install"]));
    assert_eq!(r["action"], "updated", "{r}");
    assert_eq!(run_values(&wine), values, "the current mesh.exe again");

    // A logon: wineboot runs the Run values, and the agent comes up.
    let o = wine.program(&["wineboot"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        eventually(60, || wine
            .mesh(&home, &["agent", "status"])
            .status
            .success()),
        "the agent did not start at logon"
    );
    wine.mesh_ok(&home, &["agent", "stop"]);

    let r = json(&wine.mesh_ok(&home, &["--json", "agent", "uninstall"]));
    assert_eq!(r["action"], "removed", "{r}");
    assert!(run_values(&wine).is_empty(), "{:?}", run_values(&wine));
    let out = wine.mesh_ok(&home, &["agent", "uninstall"]);
    assert!(out.contains("nothing to remove"), "{out}");
}

/// Hostile: another program planted a Run value under Mesh's name for this
/// home. Install does not overwrite it, uninstall does not delete it; both
/// fail naming what is there, with a hint.
#[test]
fn a_run_value_planted_under_meshs_name_is_neither_replaced_nor_removed() {
    let dir = Scratch::new("wine-install-foreign");
    let Some(wine) = Wine::new(&dir.0) else {
        return;
    };
    let home = Wine::path(&dir.path("win"));
    let name = format!("Mesh agent ({home})");
    let planted = format!(r#""C:\evil\evil.exe" --home "{home}" agent start"#);
    let o = wine.program(&["reg", "add", RUN, "/v", &name, "/d", &planted, "/f"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = run_values(&wine);
    assert_eq!(before.len(), 1, "{before:?}");

    for cmd in ["install", "uninstall"] {
        let o = wine.mesh(&home, &["agent", cmd]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{cmd} must refuse: {err}");
        assert!(
            err.contains("is not Mesh's agent for this home") && err.contains(r"C:\evil\evil.exe"),
            "{cmd}: {err}"
        );
        assert!(err.contains("hint:") && err.contains("reg delete"), "{err}");
        assert_eq!(run_values(&wine), before, "{cmd} left it as it was");
    }
}
