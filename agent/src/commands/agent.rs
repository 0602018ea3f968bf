//! `mesh agent`: start, stop and ask the background agent.

use anyhow::{Context, Result};
use serde_json::json;

use super::*;
use crate::cli::*;

fn options(interval: u64, audit: Switch) -> mesh_agent::daemon::Options {
    mesh_agent::daemon::Options {
        interval: std::time::Duration::from_secs(interval),
        audit: audit == Switch::On,
    }
}

pub(crate) fn run(home: &std::path::Path, cmd: AgentCmd, j: bool) -> Result<()> {
    use mesh_agent::daemon;
    match cmd {
        // It logs what it does, with times, on standard error.
        AgentCmd::Run { interval, audit } => daemon::run(home, options(interval, audit))?,
        AgentCmd::Start { interval, audit } => {
            let exe = std::env::current_exe().context("locating the mesh binary")?;
            // Like ssh-agent users expect of `eval "$(mesh agent start)"`: an
            // agent that already runs is reported the same way, with success.
            let s = match daemon::start(home, &exe, options(interval, audit)) {
                // One whose control socket is elsewhere (another runtime
                // directory) cannot be reported: that stays an error.
                Err(e @ daemon::DaemonError::Running(_)) => {
                    let s = daemon::query(home, "status").map_err(|_| e)?;
                    eprintln!("mesh: agent already running (pid {})", s.pid);
                    s
                }
                r => {
                    let s = r?;
                    eprintln!("mesh: agent started (pid {})", s.pid);
                    s
                }
            };
            emit(
                j,
                serde_json::to_value(&s)?,
                &format!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;", s.ssh_auth_sock),
            );
        }
        AgentCmd::Stop => {
            daemon::stop(home)?;
            eprintln!("mesh: agent stopped");
        }
        AgentCmd::Status => {
            // A revoked home's agent wiped it and exited: say that, not
            // "no agent is running".
            let s = daemon::query(home, "status").map_err(|e| daemon::why_not_running(home, e))?;
            emit(
                j,
                serde_json::to_value(&s)?,
                &status_text(&s, &daemon::paths(home).log),
            );
        }
        AgentCmd::Env => {
            let p = daemon::paths(home);
            emit(
                j,
                json!({"SSH_AUTH_SOCK": p.ssh}),
                &format!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;", p.ssh.display()),
            );
        }
        #[cfg(unix)]
        AgentCmd::WslBridge(a) => super::wsl::bridge(home, a, j)?,
        AgentCmd::Install => autostart(home, true, j)?,
        AgentCmd::Uninstall => autostart(home, false, j)?,
    }
    Ok(())
}

/// `mesh agent install` (`install`) or `mesh agent uninstall`: the report
/// on stdout, what is left to do on stderr.
fn autostart(home: &std::path::Path, install: bool, j: bool) -> Result<()> {
    use mesh_agent::autostart::{self as a, Action};
    let exe = std::env::current_exe().context("locating the mesh binary")?;
    let t = a::Target::new(&exe, home)?;
    let r = if install {
        a::install(&t)?
    } else {
        a::uninstall(&t)?
    };
    let what = format!("{} {}", r.mechanism, r.name);
    let text = match r.action {
        Action::Installed => format!("installed {what} ({}): runs {}", r.location, r.command),
        Action::Updated => format!("updated {what} ({}): runs {}", r.location, r.command),
        Action::Unchanged => format!(
            "already installed: {what} ({}): runs {}",
            r.location, r.command
        ),
        Action::Removed => format!("removed {what} ({})", r.location),
        Action::NotInstalled => format!("nothing to remove: no {what} ({})", r.location),
    };
    emit(j, serde_json::to_value(&r)?, &text);
    if let Some(todo) = &r.todo {
        eprintln!(
            "mesh: {}",
            if install {
                "registered, but not started now"
            } else {
                "removed, but not stopped"
            }
        );
        eprintln!("hint: {todo}");
    }
    Ok(())
}

/// `mesh agent status` for a person.
fn status_text(s: &mesh_agent::daemon::Status, log: &std::path::Path) -> String {
    let now = mesh_account::client::now();
    let ago = |t: u64| {
        format!(
            "{} ({} s ago)",
            mesh_agent::agent_log::rfc3339(t),
            now.saturating_sub(t)
        )
    };
    let mut out = format!(
        "socket:   {}\naccount:  {}\nkeys:     {} from Mesh, {} added\nsync:     {}\nportal:   {}",
        s.ssh_auth_sock,
        s.account.as_deref().unwrap_or("none"),
        s.mesh_keys,
        s.added_keys,
        s.last_sync.map_or_else(|| "not yet".into(), ago),
        match s.portal_reachable {
            Some(true) => "reachable",
            Some(false) => "unreachable",
            None => "not asked yet",
        },
    );
    if let Some(e) = s.epoch {
        out.push_str(&format!("\nepoch:    administrator epoch {e}"));
    }
    out.push_str(if s.audit {
        "\naudit:    every signature logged (`mesh audit`)"
    } else {
        "\naudit:    off (started with --audit off, or the log could not be opened: see the log)"
    });
    if let Some(e) = &s.last_error {
        let since = s.last_error_at.map(|t| format!(", since {}", ago(t)));
        out.push_str(&format!(
            "\nerror:    {e}{}\nlog:      {} (an agent started by `mesh agent start`; else its standard error)",
            since.unwrap_or_default(),
            log.display()
        ));
    }
    if s.revoked {
        out.push_str("\nstate:    this device was revoked");
    }
    out
}
