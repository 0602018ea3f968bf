//! `mesh-smime`: the smime plugin. It issues S/MIME certificates from the account's personal CA and exports PKCS#12.
//!
//! Its protocol work is the subject of its own issue; here it registers
//! with the plugin host so the layout and the dependency graph are in place.
#![forbid(unsafe_code)]

use mesh_core::objects::Role;
use mesh_plugins::Plugin;

/// The smime plugin.
#[derive(Debug, Default)]
pub struct SmimePlugin;

impl Plugin for SmimePlugin {
    fn name(&self) -> &'static str {
        "smime"
    }

    fn role(&self) -> Role {
        Role::Smime
    }
}
