//! `mesh agent`: start, stop and ask the background agent.

use anyhow::{Context, Result};
use serde_json::json;

use super::*;
use crate::cli::*;

pub(crate) fn run(home: &std::path::Path, cmd: AgentCmd, j: bool) -> Result<()> {
    use mesh_agent::daemon;
    match cmd {
        AgentCmd::Run { interval } => {
            let p = daemon::paths(home);
            eprintln!("mesh: agent serving SSH_AUTH_SOCK={}", p.ssh.display());
            daemon::run(home, std::time::Duration::from_secs(interval))?;
            eprintln!("mesh: agent stopped");
        }
        AgentCmd::Start { interval } => {
            let exe = std::env::current_exe().context("locating the mesh binary")?;
            // Like ssh-agent users expect of `eval "$(mesh agent start)"`: an
            // agent that already runs is reported the same way, with success.
            let s = match daemon::start(home, &exe, std::time::Duration::from_secs(interval)) {
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
            let s = daemon::query(home, "status")?;
            let when = s
                .last_sync
                .map(|t| format!("{} s ago", mesh_account::client::now().saturating_sub(t)));
            emit(
                j,
                serde_json::to_value(&s)?,
                &format!(
                    "socket:   {}\naccount:  {}\nkeys:     {} from Mesh, {} added\nsync:     {}\nportal:   {}{}",
                    s.ssh_auth_sock,
                    s.account.as_deref().unwrap_or("none"),
                    s.mesh_keys,
                    s.added_keys,
                    when.unwrap_or_else(|| "not yet".into()),
                    match s.portal_reachable {
                        Some(true) => "reachable",
                        Some(false) => "unreachable",
                        None => "not asked yet",
                    },
                    if s.revoked { "\nstate:    this device was revoked" } else { "" }
                ),
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
    }
    Ok(())
}
