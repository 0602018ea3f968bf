//! `mesh`: the command line of a Mesh device.
//!
//! Data goes to standard output, messages to standard error. Every command
//! that reports takes `--json`. Errors print as `mesh: error: …`, with a
//! `hint:` line when there is something to do about it, and exit non-zero.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::FromArgMatches as _;

/// `println!` that ends the program quietly when standard output is a
/// closed pipe (`mesh … | head`), instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        let mut o = std::io::stdout().lock();
        if let Err(e) = writeln!(o, $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod cli;
mod commands;

use cli::{Cli, Command};
#[cfg(feature = "quickstart")]
use commands::quickstart;
#[cfg(unix)]
use commands::ssh_agent;
use commands::{account, agent, audit, device, local, wsl};

fn main() -> ExitCode {
    // Before anything can read a secret (agent/src/hardening.rs).
    if let Err(e) = mesh_agent::hardening::harden() {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "mesh: error: {e}");
        let _ = writeln!(err, "hint: {}", e.hint());
        return ExitCode::FAILURE;
    }
    let matches = match cli::command().try_get_matches_from(args()) {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    let host = mesh_agent::host();
    let result = match mesh_agent::channel_cli::find(&host, &matches) {
        Some((channel, sub)) => commands::channel::run(channel, sub, &matches),
        None => match Cli::from_arg_matches(&matches) {
            Ok(c) => run(c),
            Err(e) => return usage_error(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "mesh: error: {e:#}");
            if let Some(h) = commands::hint_of(&e) {
                let _ = writeln!(err, "hint: {h}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The command line; a binary invoked as `ssh-agent` (a link to mesh) is
/// `mesh ssh-agent`.
fn args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked = args.first().and_then(|a| {
        std::path::Path::new(a)
            .file_name()
            .map(|n| n == "ssh-agent")
    });
    if invoked == Some(true) {
        args.splice(0..1, ["mesh".into(), "ssh-agent".into()]);
    }
    args
}

/// Help and version print as clap prints them; a bad command line prints
/// as every other error: `mesh: error:` and a `hint:`, exit status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("bad command line");
    let rest: Vec<&str> = lines
        .filter(|l| !l.starts_with("For more information"))
        .map(|l| l.trim_start_matches('[').trim_end_matches(']'))
        .collect();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "mesh: error: {}", first.trim_start_matches("error: "));
    let hint = if rest.is_empty() {
        "see `mesh help` and `mesh COMMAND --help`".to_string()
    } else {
        format!("{}; see `--help`", rest.join("; "))
    };
    let _ = writeln!(err, "hint: {hint}");
    ExitCode::from(2)
}

fn run(cli: Cli) -> Result<()> {
    let home = cli
        .home
        .clone()
        .unwrap_or_else(mesh_account::store::default_home);
    let j = cli.json;
    match cli.command {
        #[cfg(feature = "quickstart")]
        Command::Quickstart {
            dir,
            listen,
            address,
            once,
        } => quickstart::quickstart(&dir, listen, &address, once, j),
        Command::Status => local::status(&home, j),
        Command::Hash(h) => local::hash(h, j),
        Command::Key(k) => local::key(k, j),
        Command::Account(a) => account::run(&home, a, j),
        Command::Device(d) => device::run(&home, d, j),
        Command::Sync => local::sync(&home, j),
        Command::Audit(a) => audit::run(&home, a, j),
        Command::Agent(a) => agent::run(&home, a, j),
        #[cfg(unix)]
        Command::SshAgent(a) => ssh_agent::run(&home, a),
        Command::SshAgentRelay(a) => wsl::relay(a),
        Command::Completions { shell } => local::completions(shell),
        Command::Man { output } => local::man(output),
    }
}
