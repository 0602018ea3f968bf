//! macOS: a launchd user agent (agent/dist/org.mesh.agent.plist, generated
//! for this binary and home) in `~/Library/LaunchAgents`, loaded with
//! `launchctl`. Built and unit-tested on Linux; never run on a Mac here.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::path::{Path, PathBuf};

use super::{check_plain, write_file, Action, AutostartError, Report, Target};

const MECHANISM: &str = "launchd agent";

/// `org.mesh.agent`, or `org.mesh.agent.<tag>` for another home.
pub fn label(t: &Target) -> String {
    if t.default_home {
        "org.mesh.agent".into()
    } else {
        format!("org.mesh.agent.{}", t.tag())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The plist: `mesh --home HOME agent run`, kept alive on failure.
pub fn plist_text(t: &Target) -> Result<String, AutostartError> {
    let args = [
        &check_plain(&t.exe)?,
        "--home",
        &check_plain(&t.home)?,
        "agent",
        "run",
    ]
    .iter()
    .map(|a| format!("        <string>{}</string>\n", escape(a)))
    .collect::<String>();
    Ok(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `mesh agent install`; `mesh agent uninstall` removes it. -->
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{}</string>
    <key>ProgramArguments</key>
    <array>
{args}    </array>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <dict>
        <key>SuccessfulExit</key>
        <false/>
    </dict>
    <key>Umask</key>
    <integer>63</integer>
    <key>ProcessType</key>
    <string>Background</string>
</dict>
</plist>
"#,
        escape(&label(t))
    ))
}

/// The `ProgramArguments` strings of a plist.
pub fn program_arguments(text: &str) -> Vec<String> {
    let Some((_, rest)) = text.split_once("<key>ProgramArguments</key>") else {
        return Vec::new();
    };
    let array = rest.split_once("</array>").map_or("", |(a, _)| a);
    array
        .split("<string>")
        .skip(1)
        .filter_map(|s| s.split_once("</string>").map(|(v, _)| unescape(v)))
        .collect()
}

/// Whether a plist runs `mesh --home HOME agent run` for this home.
pub fn is_ours(text: &str, t: &Target) -> bool {
    let words = program_arguments(text);
    let named_mesh = words
        .first()
        .and_then(|w| Path::new(w).file_name())
        .is_some_and(|n| n == "mesh" || Some(n) == t.exe.file_name());
    named_mesh
        && words.len() == 5
        && words[1..] == ["--home", &*t.home.to_string_lossy(), "agent", "run"]
}

fn plist_path(t: &Target) -> Result<PathBuf, AutostartError> {
    let home = std::env::var_os("HOME").ok_or_else(|| AutostartError::Io {
        what: "finding ~/Library/LaunchAgents".into(),
        detail: "HOME is not set".into(),
        hint: "set HOME",
    })?;
    Ok(PathBuf::from(home)
        .join("Library/LaunchAgents")
        .join(format!("{}.plist", label(t))))
}

fn launchctl(args: &[&str], path: &Path) -> Result<(), String> {
    let o = std::process::Command::new("launchctl")
        .args(args)
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run launchctl: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

fn foreign(path: &Path, text: &str) -> AutostartError {
    AutostartError::Foreign {
        what: format!("the launchd agent {}", path.display()),
        found: format!("`{}`", program_arguments(text).join(" ")),
        hint: format!(
            "it was not written by `mesh agent install` for this home; if it should go: \
             `launchctl unload -w {0}; rm {0}`, then install again",
            path.display()
        ),
    }
}

/// Write (or update) the plist and load it.
pub fn install(t: &Target) -> Result<Report, AutostartError> {
    let path = plist_path(t)?;
    let text = plist_text(t)?;
    let old = std::fs::read_to_string(&path).ok();
    let action = match &old {
        Some(o) if !is_ours(o, t) => return Err(foreign(&path, o)),
        Some(o) if *o == text => Action::Unchanged,
        Some(_) => Action::Updated,
        None => Action::Installed,
    };
    if action != Action::Unchanged {
        if action == Action::Updated {
            let _ = launchctl(&["unload"], &path);
        }
        write_file(&path, &text)?;
    }
    let loaded = launchctl(&["load", "-w"], &path);
    Ok(Report {
        action,
        mechanism: MECHANISM,
        name: label(t),
        location: path.display().to_string(),
        command: program_arguments(&text).join(" "),
        active: Some(loaded.is_ok()),
        todo: loaded.err().map(|why| {
            format!(
                "launchctl could not load it ({why}): run `launchctl load -w {}`",
                path.display()
            )
        }),
    })
}

/// Unload and remove the plist if it is Mesh's for this home.
pub fn uninstall(t: &Target) -> Result<Report, AutostartError> {
    let path = plist_path(t)?;
    let mut report = Report {
        action: Action::NotInstalled,
        mechanism: MECHANISM,
        name: label(t),
        location: path.display().to_string(),
        command: String::new(),
        active: Some(false),
        todo: None,
    };
    let Ok(old) = std::fs::read_to_string(&path) else {
        return Ok(report);
    };
    if !is_ours(&old, t) {
        return Err(foreign(&path, &old));
    }
    let _ = launchctl(&["unload", "-w"], &path);
    std::fs::remove_file(&path).map_err(|e| AutostartError::Io {
        what: format!("removing {}", path.display()),
        detail: e.to_string(),
        hint: "check the directory's permissions",
    })?;
    report.action = Action::Removed;
    report.command = program_arguments(&old).join(" ");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plist_names_the_binary_and_home_escaped() {
        let t = Target {
            exe: "/Applications/Mesh & Co/mesh".into(),
            home: "/Users/a/<My Mesh>".into(),
            default_home: false,
        };
        let text = plist_text(&t).expect("plist");
        assert!(text.contains("<string>/Applications/Mesh &amp; Co/mesh</string>"));
        assert_eq!(
            program_arguments(&text),
            [
                "/Applications/Mesh & Co/mesh",
                "--home",
                "/Users/a/<My Mesh>",
                "agent",
                "run"
            ]
        );
        assert!(is_ours(&text, &t));
        let dist = include_str!("../../dist/org.mesh.agent.plist");
        assert!(!is_ours(dist, &t), "the hand-installed plist has no --home");
    }
}
