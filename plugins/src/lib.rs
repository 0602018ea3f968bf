//! `mesh-plugins`: the trait through which the agent hosts its plugins
//! (ssh-agent, OpenPGP, S/MIME), in process. A plugin turns the device's
//! Mesh keys and the account's catalog into what one tool needs, and redoes
//! that whenever a device joins, a key rotates or a device is revoked.
#![forbid(unsafe_code)]

use mesh_core::objects::Role;

/// What every plugin provides to the agent.
pub trait Plugin {
    /// Short name used in commands and logs (`ssh`, `pgp`, `smime`).
    fn name(&self) -> &'static str;
    /// The device role this plugin serves.
    fn role(&self) -> Role;
}
