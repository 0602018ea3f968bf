//! `mesh-pgp`: the pgp plugin. It builds the account's OpenPGP certificate with per-device signing subkeys and provisions GnuPG.
//!
//! Its protocol work is the subject of its own issue; here it registers
//! with the plugin host so the layout and the dependency graph are in place.
#![forbid(unsafe_code)]

use mesh_core::objects::Role;
use mesh_plugins::Plugin;

/// The pgp plugin.
#[derive(Debug, Default)]
pub struct PgpPlugin;

impl Plugin for PgpPlugin {
    fn name(&self) -> &'static str {
        "pgp"
    }

    fn role(&self) -> Role {
        Role::Pgp
    }
}
