//! Linux: a systemd user unit (agent/dist/mesh-agent.service, generated for
//! this binary and home) in `$XDG_CONFIG_HOME/systemd/user`, enabled with
//! `systemctl --user` when a user manager is reachable.
#![cfg_attr(any(windows, target_os = "macos"), allow(dead_code))]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{check_plain, write_file, Action, AutostartError, Report, Target};

const MECHANISM: &str = "systemd user unit";

/// `mesh-agent.service`, or `mesh-agent-<tag>.service` for another home.
pub fn unit_name(t: &Target) -> String {
    if t.default_home {
        "mesh-agent.service".into()
    } else {
        format!("mesh-agent-{}.service", t.tag())
    }
}

/// `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`.
pub fn unit_dir() -> Result<PathBuf, AutostartError> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| AutostartError::Io {
            what: "finding the systemd user unit directory".into(),
            detail: "neither XDG_CONFIG_HOME nor HOME is set".into(),
            hint: "set HOME (or XDG_CONFIG_HOME)",
        })?;
    Ok(base.join("systemd").join("user"))
}

/// One word of a command line, quoted for systemd: C escapes for `\` and
/// `"`, and `%` and `$` doubled (no specifier or variable expansion).
fn quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '%' => o.push_str("%%"),
            '$' => o.push_str("$$"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The words of an `ExecStart=` value, as [`quote`] wrote them.
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(first) = chars.next() else { break };
        let mut w = String::new();
        if first == '"' {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => w.extend(chars.next()),
                    c => w.push(c),
                }
            }
        } else {
            w.push(first);
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                w.push(c);
            }
        }
        words.push(w.replace("%%", "%").replace("$$", "$"));
    }
    words
}

/// The unit: agent/dist/mesh-agent.service, for this binary and home.
pub fn unit_text(t: &Target) -> Result<String, AutostartError> {
    let exe = check_plain(&t.exe)?;
    let home = check_plain(&t.home)?;
    let described = home.replace('%', "%%");
    Ok(format!(
        "# Written by `mesh agent install` for the home {home}; `mesh agent uninstall` removes it.
[Unit]
Description=Mesh agent (ssh-agent, sync with the Mesh portal) for {described}

[Service]
Type=simple
ExecStart={} --home {} agent run
Restart=on-failure
RestartSec=5
# Secrets live only in this process's memory: no core dumps, no new privileges.
LimitCORE=0
NoNewPrivileges=yes
PrivateTmp=no
UMask=0077

[Install]
WantedBy=default.target
",
        quote(&exe),
        quote(&home),
    ))
}

/// The `ExecStart=` value of a unit file.
fn exec_start(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("ExecStart="))
}

/// Whether a unit runs `mesh --home HOME agent run` for this home (any
/// binary named mesh: an update may move it).
pub fn is_ours(text: &str, t: &Target) -> bool {
    let Some(words) = exec_start(text).map(split) else {
        return false;
    };
    let named_mesh = words
        .first()
        .and_then(|w| Path::new(w).file_name())
        .is_some_and(|n| n == "mesh" || Some(n) == t.exe.file_name());
    named_mesh
        && words.len() == 5
        && words[1..] == ["--home", &*t.home.to_string_lossy(), "agent", "run"]
}

/// `systemctl --user ARGS`: its error output when it fails.
fn systemctl(args: &[&str]) -> Result<(), String> {
    let o = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

/// A user manager answers (not so in most containers and CI runners).
fn reachable() -> Result<(), String> {
    systemctl(&["show-environment"])
}

fn read(path: &Path) -> Result<Option<String>, AutostartError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AutostartError::Io {
            what: format!("reading {}", path.display()),
            detail: e.to_string(),
            hint: "check the file's permissions",
        }),
    }
}

fn foreign(path: &Path, name: &str, text: &str) -> AutostartError {
    AutostartError::Foreign {
        what: format!("the unit {}", path.display()),
        found: format!("`{}`", exec_start(text).unwrap_or("no ExecStart").trim()),
        hint: format!(
            "it was not written by `mesh agent install` for this home; if it should go: \
             `systemctl --user disable --now {name}; rm {}`, then install again",
            path.display()
        ),
    }
}

/// Write (or update) the unit and enable it now where systemd is reachable.
pub fn install(t: &Target) -> Result<Report, AutostartError> {
    let name = unit_name(t);
    let path = unit_dir()?.join(&name);
    let text = unit_text(t)?;
    let action = match read(&path)? {
        Some(old) if !is_ours(&old, t) => return Err(foreign(&path, &name, &old)),
        Some(old) if old == text => Action::Unchanged,
        Some(_) => Action::Updated,
        None => Action::Installed,
    };
    if action != Action::Unchanged {
        write_file(&path, &text)?;
    }
    let todo = match reachable() {
        Ok(()) => enable(t, &name, action),
        Err(why) => Some(not_enabled(&name, &why)),
    };
    Ok(Report {
        action,
        mechanism: MECHANISM,
        location: path.display().to_string(),
        command: exec_start(&text).unwrap_or_default().to_string(),
        active: Some(todo.is_none()),
        todo,
        name,
    })
}

fn not_enabled(name: &str, why: &str) -> String {
    format!(
        "systemctl --user could not enable it ({why}): in your login session, run \
         `systemctl --user daemon-reload && systemctl --user enable --now {name}`"
    )
}

/// Enable the unit, and start it unless an agent started by hand already
/// serves this home (the unit's would be refused, and restarted every few
/// seconds); what is left to do, if anything.
fn enable(t: &Target, name: &str, action: Action) -> Option<String> {
    let by_hand = crate::daemon::query(&t.home, "status").is_ok()
        && systemctl(&["is-active", "--quiet", name]).is_err();
    let mut steps = vec![vec!["daemon-reload"]];
    if by_hand {
        steps.push(vec!["enable", name]);
    } else {
        steps.push(vec!["enable", "--now", name]);
        if action == Action::Updated {
            // The running agent is the old binary's.
            steps.push(vec!["try-restart", name]);
        }
    }
    match steps.iter().try_for_each(|s| systemctl(s)) {
        Err(why) => Some(not_enabled(name, &why)),
        Ok(()) if by_hand => Some(format!(
            "an agent started by hand already runs for this home, so the unit is enabled but \
             not started: it starts at the next logon, or now after `mesh agent stop` with \
             `systemctl --user start {name}`"
        )),
        Ok(()) => None,
    }
}

/// Disable and stop the unit where systemd is reachable, and remove it.
pub fn uninstall(t: &Target) -> Result<Report, AutostartError> {
    let name = unit_name(t);
    let path = unit_dir()?.join(&name);
    let Some(old) = read(&path)? else {
        return Ok(Report {
            action: Action::NotInstalled,
            mechanism: MECHANISM,
            location: path.display().to_string(),
            command: String::new(),
            active: Some(false),
            todo: None,
            name,
        });
    };
    if !is_ours(&old, t) {
        return Err(foreign(&path, &name, &old));
    }
    // No user manager: nothing can have started it.
    let stopped = match reachable() {
        Ok(()) => systemctl(&["disable", "--now", &name]),
        Err(_) => Ok(()),
    };
    std::fs::remove_file(&path).map_err(|e| AutostartError::Io {
        what: format!("removing {}", path.display()),
        detail: e.to_string(),
        hint: "check the directory's permissions",
    })?;
    if stopped.is_ok() {
        let _ = systemctl(&["daemon-reload"]);
    }
    Ok(Report {
        action: Action::Removed,
        mechanism: MECHANISM,
        location: path.display().to_string(),
        command: exec_start(&old).unwrap_or_default().to_string(),
        active: Some(false),
        todo: stopped.err().map(|why| {
            format!(
                "systemctl --user could not disable it ({why}); an agent it started runs until \
                 `mesh agent stop` or logout"
            )
        }),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(home: &str) -> Target {
        Target {
            exe: "/opt/my bin/mesh".into(),
            home: home.into(),
            default_home: false,
        }
    }

    #[test]
    fn exec_start_quotes_spaces_specifiers_and_variables() {
        let t = target("/home/a/My Mesh %h $HOME \\ \"q\"");
        let text = unit_text(&t).expect("unit");
        let line = exec_start(&text).expect("ExecStart");
        assert_eq!(
            line,
            r#""/opt/my bin/mesh" --home "/home/a/My Mesh %%h $$HOME \\ \"q\"" agent run"#
        );
        assert_eq!(
            split(line),
            [
                "/opt/my bin/mesh",
                "--home",
                "/home/a/My Mesh %h $HOME \\ \"q\"",
                "agent",
                "run"
            ]
        );
        assert!(is_ours(&text, &t));
    }

    #[test]
    fn a_unit_for_another_home_or_program_is_not_ours() {
        let t = target("/home/a/mesh");
        let text = unit_text(&t).expect("unit");
        assert!(!is_ours(&text, &target("/home/b/mesh")));
        let planted = text.replace("/opt/my bin/mesh", "/tmp/evil");
        assert!(!is_ours(&planted, &t));
        // agent/dist/mesh-agent.service copied by hand: no --home.
        let dist = include_str!("../../dist/mesh-agent.service");
        assert!(!is_ours(dist, &t));
    }

    #[test]
    fn control_characters_are_refused() {
        let t = target("/home/a/x\ny");
        assert!(matches!(unit_text(&t), Err(AutostartError::Path(_))));
    }
}
