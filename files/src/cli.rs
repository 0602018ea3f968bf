//! `mesh files …`: the subcommand the `mesh` binary mounts (it opens the
//! home and builds the verified view; this module only uses them).

use std::io::{Read, Write};

use mesh_plugins::{AccountView, DeviceHost, PluginError};
use zeroize::Zeroizing;

use crate::device::{self, UnwrapRequest};
use crate::FilesError;

/// Bound on a plugin request (a file's stanzas): age headers are small.
const MAX_REQUEST: u64 = 1 << 20;

/// `mesh files`.
#[derive(Debug, clap::Subcommand)]
pub enum FilesCmd {
    /// Print the account's age recipient (`age -r age1mesh1…`): files
    /// encrypted to it open on every active device of the account.
    Recipient,
    /// Print an identity file for `age -d -i FILE`. It holds no secret: it
    /// names the account; age-plugin-mesh opens files with this device's
    /// keys, from its home (MESH_HOME, else the default).
    Identity,
    /// For age-plugin-mesh: unwrap a file key (a JSON request on standard
    /// input; the key, base64, on standard output).
    #[command(hide = true)]
    Unwrap,
}

/// Run `mesh files …` with this device and its verified view.
pub fn run(
    cmd: FilesCmd,
    host: &dyn DeviceHost,
    view: &AccountView,
    json: bool,
) -> Result<(), FilesError> {
    match cmd {
        FilesCmd::Recipient => {
            let r = device::recipient(view)?;
            let s = r.encode();
            if json {
                let v =
                    serde_json::json!({"recipient": s, "epoch": r.epoch, "account": view.address});
                print(&v.to_string())
            } else {
                print(&s)
            }
        }
        FilesCmd::Identity => {
            let id = device::identity(view).encode();
            if json {
                print(&serde_json::json!({"identity": id, "account": view.address}).to_string())
            } else {
                print(&format!(
                    "# Mesh account {}: no secret here; the keys stay in the device's home\n{id}",
                    view.address
                ))
            }
        }
        FilesCmd::Unwrap => {
            let mut raw = Zeroizing::new(Vec::new());
            std::io::stdin()
                .take(MAX_REQUEST)
                .read_to_end(&mut raw)
                .map_err(PluginError::io("standard input"))?;
            let req: UnwrapRequest = serde_json::from_slice(&raw)
                .map_err(|e| FilesError::BadEncoding(format!("plugin request: {e}")))?;
            let fk = device::unwrap_request(host, view, &req)?;
            let out = Zeroizing::new(mesh_core::b64::encode(&fk));
            print(&out)
        }
    }
}

fn print(s: &str) -> Result<(), FilesError> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{s}").map_err(|e| FilesError::Plugin(PluginError::io("standard output")(e)))
}
