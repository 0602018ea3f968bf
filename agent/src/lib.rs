//! `mesh-agent`: the `mesh` binary's library: a thin host over the account
//! life cycle (`mesh-account`) and the channels (`mesh-ssh`, `mesh-pgp`,
//! `mesh-smime`): the daemon, the quick start, and what servers run
//! (`authorized-keys`). The binary in `main.rs` is the CLI; it alone uses
//! `anyhow`.
#![forbid(unsafe_code)]

pub mod agent_log;
pub mod autostart;
pub mod channel_cli;
pub mod channel_host;
pub mod daemon;
pub mod git_signers;
pub mod hardening;
#[cfg(feature = "quickstart")]
pub mod quickstart;
pub mod recovery;
pub mod server_cache;
pub mod servers;
#[cfg(unix)]
pub mod ssh_agent_cmd;
pub mod ssh_agent_relay;
pub mod ssh_hosts;
#[cfg(unix)]
pub mod wsl_bridge;

pub use mesh_account as account;

/// The host with every channel this build has, in the order they react.
pub fn host() -> mesh_account::Host {
    mesh_account::Host::new(vec![
        Box::new(mesh_ssh::SshPlugin),
        Box::new(mesh_smime::SmimePlugin),
        Box::new(mesh_pgp::PgpPlugin),
        Box::new(mesh_files::FilesPlugin),
    ])
}

#[cfg(test)]
mod tests {
    /// The host's device key slots are its channels', in their order: a
    /// new device's profile lists them so (the order profiles had before
    /// slots were data), each once.
    #[test]
    fn the_hosts_slots_are_the_channels_in_order() {
        let names: Vec<&str> = super::host().slots().iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [mesh_ssh::channel::SLOT.name, mesh_smime::channel::SLOT.name]
        );
        assert_eq!(names, ["Ssh", "SmimeSign"]);
    }
}
