//! `mesh ssh-agent-relay` and `mesh agent wsl-bridge` (issue 26): the two
//! halves of `SSH_AUTH_SOCK` inside WSL reaching the Mesh agent on Windows
//! (agent/src/ssh_agent_relay.rs, agent/src/wsl_bridge.rs).

use anyhow::Result;

use crate::cli::SshAgentRelayArgs;

/// `mesh ssh-agent-relay`: nothing is printed of its own, standard
/// output is the agent's answers.
pub(crate) fn relay(args: SshAgentRelayArgs) -> Result<()> {
    use mesh_agent::ssh_agent_relay as r;
    let endpoint = r::endpoint(args.socket)?;
    r::run(&endpoint)?;
    Ok(())
}

/// `mesh agent wsl-bridge`: check the relay, bind, print the environment
/// line (or JSON) once it listens, and serve in the foreground.
#[cfg(unix)]
pub(crate) fn bridge(
    home: &std::path::Path,
    args: crate::cli::WslBridgeArgs,
    j: bool,
) -> Result<()> {
    use mesh_agent::wsl_bridge as w;
    let relay = w::split_command(&args.relay)?;
    // A relay that cannot start is said now, not at the first connection.
    w::find_relay(&relay[0])?;
    let socket = args.socket.unwrap_or_else(|| w::default_socket(home));
    let config = w::Config {
        relay,
        max_connections: usize::from(args.max_connections),
    };
    let listener = w::bind(&socket)?;
    super::emit(
        j,
        w::describe(&socket, &config),
        &format!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;", socket.display()),
    );
    w::serve(listener, &socket, config)?;
    Ok(())
}
