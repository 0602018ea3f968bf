//! Windows: a value under `HKCU\Software\Microsoft\Windows\CurrentVersion\Run`
//! (per user, no administrator rights) whose command line is
//! `"<mesh.exe>" --home "<home>" agent start`.
//!
//! `agent start`, not `agent run`: mesh.exe is a console program, so what
//! the Run key starts gets a console window. `agent start` starts the agent
//! detached (no console; its output in the home's agent.log), waits for its
//! pipe and exits, so the window closes within seconds, and an agent that
//! already runs is left alone with success. `agent run` would keep a console
//! window open for the whole session, and closing it would stop the agent.
#![cfg_attr(not(windows), allow(dead_code))]

use super::{check_plain, AutostartError, Target};
#[cfg(windows)]
use super::{Action, Report};

const MECHANISM: &str = "Run registry value";
/// The key, under HKEY_CURRENT_USER.
pub const RUN_KEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";

/// `Mesh agent`, or `Mesh agent (<home>)` for another home.
pub fn value_name(t: &Target) -> String {
    if t.default_home {
        "Mesh agent".into()
    } else {
        format!("Mesh agent ({})", t.home.display())
    }
}

/// One argument quoted as CommandLineToArgvW and the C runtime read it:
/// backslashes doubled only before a quote or the closing quote.
fn quote(s: &str) -> String {
    let mut o = String::from("\"");
    let mut slashes = 0;
    for c in s.chars() {
        match c {
            '\\' => slashes += 1,
            '"' => {
                o.push_str(&"\\".repeat(2 * slashes + 1));
                o.push('"');
                slashes = 0;
            }
            c => {
                o.push_str(&"\\".repeat(slashes));
                o.push(c);
                slashes = 0;
            }
        }
    }
    o.push_str(&"\\".repeat(2 * slashes));
    o.push('"');
    o
}

/// The command line the Run value holds.
pub fn command_line(t: &Target) -> Result<String, AutostartError> {
    let exe = check_plain(&t.exe)?;
    let home = check_plain(&t.home)?;
    // The program name is read up to the next quote, without escapes
    // (a Windows path has no quote).
    Ok(format!("\"{exe}\" --home {} agent start", quote(&home)))
}

/// The words of a command line, as Windows splits it.
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let line = line.trim_start();
    let rest = if let Some(q) = line.strip_prefix('"') {
        let (exe, rest) = q.split_once('"').unwrap_or((q, ""));
        words.push(exe.to_string());
        rest
    } else {
        let (exe, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        words.push(exe.to_string());
        rest
    };
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let (mut w, mut quoted, mut slashes) = (String::new(), false, 0usize);
        while let Some(c) = chars.next_if(|c| quoted || (*c != ' ' && *c != '\t')) {
            match c {
                '\\' => slashes += 1,
                '"' => {
                    w.push_str(&"\\".repeat(slashes / 2));
                    if slashes % 2 == 1 {
                        w.push('"');
                    } else {
                        quoted = !quoted;
                    }
                    slashes = 0;
                }
                c => {
                    w.push_str(&"\\".repeat(slashes));
                    w.push(c);
                    slashes = 0;
                }
            }
        }
        w.push_str(&"\\".repeat(slashes));
        words.push(w);
    }
    words
}

/// Whether a Run value is Mesh's agent for this home: mesh.exe (any
/// directory: an update may move it) `--home HOME agent start`.
pub fn is_ours(value: &str, t: &Target) -> bool {
    let words = split(value);
    let named_mesh = words.first().is_some_and(|w| {
        let name = w.rsplit(['\\', '/']).next().unwrap_or(w);
        name.eq_ignore_ascii_case("mesh.exe")
            || t.exe
                .file_name()
                .is_some_and(|n| name.eq_ignore_ascii_case(&n.to_string_lossy()))
    });
    let home = t.home.to_string_lossy();
    named_mesh
        && words.len() == 5
        && words[1] == "--home"
        && words[2].eq_ignore_ascii_case(&home)
        && words[3..] == ["agent", "start"]
}

fn foreign(name: &str, found: &str) -> AutostartError {
    AutostartError::Foreign {
        what: format!(r"the value {name:?} under HKCU\{RUN_KEY}"),
        found: format!("`{found}`"),
        hint: format!(
            "another program registered it; if it should go: \
             `reg delete HKCU\\{RUN_KEY} /v \"{name}\" /f`, then install again"
        ),
    }
}

#[cfg(windows)]
fn reg_err(what: String) -> impl FnOnce(std::io::Error) -> AutostartError {
    move |e| AutostartError::Io {
        what,
        detail: e.to_string(),
        hint:
            "check that your user may write HKEY_CURRENT_USER (no administrator rights are needed)",
    }
}

/// The Run key, opened for writing, and the value `name` if there is one
/// (`Err` with what is there if it is not a string).
#[cfg(windows)]
fn open(name: &str) -> Result<(winreg::RegKey, Option<Result<String, String>>), AutostartError> {
    use winreg::enums::HKEY_CURRENT_USER;
    let (key, _) = winreg::RegKey::predef(HKEY_CURRENT_USER)
        .create_subkey(RUN_KEY)
        .map_err(reg_err(format!(r"opening HKCU\{RUN_KEY}")))?;
    let value = match key.get_raw_value(name) {
        Ok(raw) => Some(
            key.get_value::<String, _>(name)
                .map_err(|_| format!("a {:?} value", raw.vtype)),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(reg_err(format!("reading {name:?}"))(e)),
    };
    Ok((key, value))
}

#[cfg(windows)]
fn report(action: Action, name: String, command: String) -> Report {
    Report {
        action,
        mechanism: MECHANISM,
        name,
        location: format!(r"HKEY_CURRENT_USER\{RUN_KEY}"),
        command,
        active: None,
        todo: None,
    }
}

/// Set the Run value (replacing only Mesh's own for this home).
#[cfg(windows)]
pub fn install(t: &Target) -> Result<Report, AutostartError> {
    let name = value_name(t);
    let cmd = command_line(t)?;
    let (key, value) = open(&name)?;
    let action = match value {
        Some(Err(what)) => return Err(foreign(&name, &what)),
        Some(Ok(old)) if !is_ours(&old, t) => return Err(foreign(&name, &old)),
        Some(Ok(old)) if old == cmd => Action::Unchanged,
        Some(Ok(_)) => Action::Updated,
        None => Action::Installed,
    };
    if action != Action::Unchanged {
        key.set_value(&name, &cmd)
            .map_err(reg_err(format!("writing {name:?}")))?;
    }
    Ok(report(action, name, cmd))
}

/// Delete the Run value if it is Mesh's for this home.
#[cfg(windows)]
pub fn uninstall(t: &Target) -> Result<Report, AutostartError> {
    let name = value_name(t);
    let (key, value) = open(&name)?;
    let old = match value {
        None => return Ok(report(Action::NotInstalled, name, String::new())),
        Some(Err(what)) => return Err(foreign(&name, &what)),
        Some(Ok(old)) if !is_ours(&old, t) => return Err(foreign(&name, &old)),
        Some(Ok(old)) => old,
    };
    key.delete_value(&name)
        .map_err(reg_err(format!("deleting {name:?}")))?;
    Ok(report(Action::Removed, name, old))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(exe: &str, home: &str) -> Target {
        Target {
            exe: exe.into(),
            home: home.into(),
            default_home: false,
        }
    }

    #[test]
    fn the_command_line_quotes_spaces_and_trailing_backslashes() {
        let t = target(r"C:\Program Files\Mesh\mesh.exe", r"C:\Users\a b\Mesh\");
        let cmd = command_line(&t).expect("cmd");
        assert_eq!(
            cmd,
            r#""C:\Program Files\Mesh\mesh.exe" --home "C:\Users\a b\Mesh\\" agent start"#
        );
        assert_eq!(
            split(&cmd),
            [
                r"C:\Program Files\Mesh\mesh.exe",
                "--home",
                r"C:\Users\a b\Mesh\",
                "agent",
                "start"
            ]
        );
        assert!(is_ours(&cmd, &t));
        assert_eq!(split(r#"x "a\"b" c\\d"#), ["x", "a\"b", r"c\\d"]);
    }

    #[test]
    fn another_program_or_home_is_not_ours() {
        let t = target(r"C:\m\mesh.exe", r"C:\Users\a\Mesh");
        let moved = command_line(&target(r"D:\new\mesh.exe", r"C:\Users\a\Mesh")).expect("cmd");
        assert!(is_ours(&moved, &t), "the same home from a moved binary");
        let other = command_line(&target(r"C:\m\mesh.exe", r"C:\Users\b\Mesh")).expect("cmd");
        assert!(!is_ours(&other, &t));
        assert!(!is_ours(
            r#""C:\evil\evil.exe" --home "C:\Users\a\Mesh" agent start"#,
            &t
        ));
        assert!(!is_ours(
            r"C:\m\mesh.exe --home C:\Users\a\Mesh agent start & calc",
            &t
        ));
    }
}
