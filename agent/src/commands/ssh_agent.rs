//! `mesh ssh-agent`: ssh-agent(1) on the Mesh agent (agent/src/ssh_agent_cmd).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use mesh_agent::ssh_agent_cmd::{self as sa, Cleanup, ServeMode, SshAgentError};

use crate::cli::SshAgentArgs;

pub(crate) fn run(home: &Path, a: SshAgentArgs) -> Result<()> {
    if !a.command.is_empty() && (a.csh || a.sh || a.kill || a.debug || a.foreground) {
        return Err(SshAgentError::Usage(
            "COMMAND cannot be given with -c, -s, -k, -d or -D".into(),
        )
        .into());
    }
    let csh =
        a.command.is_empty() && sa::use_csh(a.csh, a.sh, std::env::var_os("SHELL").as_deref());
    if a.kill {
        print(&sa::kill(csh, std::env::var_os("SSH_AGENT_PID"))?);
        return Ok(());
    }
    let options = sa::agent_options(
        a.life.as_deref(),
        a.hash.as_deref(),
        &a.option,
        a.allowed_providers.as_deref(),
    )?;
    if a.serve_child {
        return serve_child(home, &a, options);
    }
    let (socket, dir) = sa::socket_path(a.bind_address.as_deref())?;
    if a.debug || a.foreground {
        let listener = sa::bind(&socket)?;
        let cleanup = Cleanup {
            socket: socket.clone(),
            dir,
        };
        let mode = if a.debug {
            ServeMode::Debug
        } else {
            ServeMode::Foreground
        };
        let lines = sa::env_lines(csh, &socket, std::process::id(), false);
        sa::serve(home, listener, options, mode, cleanup, || print(&lines))?;
        return Ok(());
    }
    let exe = std::env::current_exe().context("locating the mesh binary")?;
    let parent = (!a.command.is_empty()).then(std::process::id);
    let child = sa::ChildArgs {
        home,
        socket: &socket,
        dir: dir.as_deref(),
        parent,
        options: passthrough(&a),
    };
    let pid = match sa::spawn_child(&exe, &child) {
        Ok(pid) => pid,
        Err(e) => {
            if let Some(d) = &dir {
                let _ = std::fs::remove_dir(d);
            }
            return Err(e.into());
        }
    };
    if a.command.is_empty() {
        print(&sa::env_lines(csh, &socket, pid, true));
        return Ok(());
    }
    exec(&a.command, &socket, pid)
}

/// The background process: bind, say `ready` (or why not) on standard
/// output, serve.
fn serve_child(
    home: &Path,
    a: &SshAgentArgs,
    options: mesh_ssh::options::AgentOptions,
) -> Result<()> {
    let Some(socket) = a.bind_address.clone() else {
        return Err(SshAgentError::Usage("--serve-child needs -a".into()).into());
    };
    let cleanup_dir = a.socket_dir.clone();
    let listener = match sa::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            print(&format!("error: {e}\n"));
            if let Some(d) = &cleanup_dir {
                let _ = std::fs::remove_dir(d);
            }
            return Err(e.into());
        }
    };
    let cleanup = Cleanup {
        socket,
        dir: cleanup_dir,
    };
    let mode = ServeMode::Child {
        parent: a.parent_pid,
    };
    let ready = || print(&format!("{}\n", sa::READY));
    sa::serve(home, listener, options, mode, cleanup, ready)?;
    Ok(())
}

/// `-t`, `-E`, `-O`, `-P` for the background process, as given.
fn passthrough(a: &SshAgentArgs) -> Vec<OsString> {
    let mut v: Vec<OsString> = Vec::new();
    let mut put = |flag: &str, value: &str| {
        v.push(flag.into());
        v.push(value.into());
    };
    if let Some(t) = &a.life {
        put("-t", t);
    }
    if let Some(h) = &a.hash {
        put("-E", h);
    }
    for o in &a.option {
        put("-O", o);
    }
    if let Some(p) = &a.allowed_providers {
        put("-P", p);
    }
    v
}

/// Become COMMAND (this pid, so its exit status is ours), with the agent's
/// variables set. Returns only when it cannot be run.
fn exec(command: &[OsString], socket: &Path, pid: u32) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env("SSH_AUTH_SOCK", socket)
        .env("SSH_AGENT_PID", pid.to_string())
        .exec();
    Err(anyhow::Error::new(err).context(format!("cannot run {}", command[0].to_string_lossy())))
}

/// Write to standard output now (before a fork-free exit or exec); a
/// closed output is not the agent's problem.
fn print(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}
