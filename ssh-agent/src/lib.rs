//! `mesh-ssh`: the ssh plugin. It serves per-device SSH keys and certificates to ssh through SSH_AUTH_SOCK (RFC 9987).
//!
//! Its protocol work is the subject of its own issue; here it registers
//! with the plugin host so the layout and the dependency graph are in place.
#![forbid(unsafe_code)]

use mesh_core::objects::Role;
use mesh_plugins::Plugin;

/// The ssh plugin.
#[derive(Debug, Default)]
pub struct SshPlugin;

impl Plugin for SshPlugin {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn role(&self) -> Role {
        Role::Ssh
    }
}
