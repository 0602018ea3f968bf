//! `mesh files …`: the channel's subcommand, mounted by the `mesh` binary
//! through the SDK ([`ChannelCommand`]): the host opens the home and
//! builds the verified view; this module only uses them.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{FromArgMatches, Subcommand};
use mesh_plugins::{
    AccountView, ChannelCommand, CommandContext, CommandError, DeviceHost, PluginError,
};
use zeroize::Zeroizing;

use crate::device::{self, UnwrapRequest};
use crate::FilesError;

/// Bound on a plugin request (a file's stanzas): age headers are small.
const MAX_REQUEST: u64 = 1 << 20;

/// `mesh files`, as the SDK mounts it.
#[derive(Debug, Default)]
pub struct FilesCommand;

impl ChannelCommand for FilesCommand {
    fn command(&self) -> clap::Command {
        // The enum's own doc would be the about; the channel's is set after.
        FilesCmd::augment_subcommands(clap::Command::new("files"))
            .about("Files for age: the account's recipient and identity (age-plugin-mesh)")
            .subcommand_required(true)
            .arg_required_else_help(true)
    }

    fn run(&self, m: &clap::ArgMatches, ctx: &dyn CommandContext) -> Result<(), CommandError> {
        let cmd =
            FilesCmd::from_arg_matches(m).map_err(|e| CommandError::new(e.to_string(), None))?;
        let json = ctx.json();
        ctx.with_view(&mut |host, view| Ok(run(&cmd, host, view, json)?))
    }
}

impl From<FilesError> for CommandError {
    fn from(e: FilesError) -> CommandError {
        CommandError::new(e.to_string(), e.hint())
    }
}

/// `mesh files`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum FilesCmd {
    /// Print the account's age recipient (`age -r age1mesh1…`): files
    /// encrypted to it open on every active device of the account.
    Recipient,
    /// Print an identity file for `age -d -i FILE`. It holds no secret: it
    /// names the account; age-plugin-mesh opens files with this device's
    /// keys, from its home (MESH_HOME, else the default).
    Identity,
    /// Encrypt a file to the account, as `age -r RECIPIENT` does: it opens
    /// on every active device (`mesh files decrypt`, or `age -d -i`).
    Encrypt {
        /// The file to encrypt ("-": standard input).
        input: PathBuf,
        /// Where the age file goes (written whole, or not at all).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Decrypt an age file encrypted to the account (by `age -r` or
    /// `mesh files encrypt`) with this device's keys.
    Decrypt {
        /// The age file ("-": standard input).
        input: PathBuf,
        /// Where the plaintext goes (written whole, once every chunk has
        /// authenticated, or not at all).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// For age-plugin-mesh: unwrap a file key (a JSON request on standard
    /// input; the key, base64, on standard output).
    #[command(hide = true)]
    Unwrap,
}

/// Run `mesh files …` with this device and its verified view.
pub fn run(
    cmd: &FilesCmd,
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
        FilesCmd::Encrypt { input, output } => report(
            json,
            &crate::file_cmd::encrypt(view, input, output)?,
            "encrypted",
        ),
        FilesCmd::Decrypt { input, output } => report(
            json,
            &crate::file_cmd::decrypt(host, view, input, output)?,
            "decrypted",
        ),
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

/// Data (JSON) on standard output, the message on standard error.
fn report(json: bool, d: &crate::file_cmd::Done, verb: &str) -> Result<(), FilesError> {
    if json {
        return print(&serde_json::to_string(d).unwrap_or_default());
    }
    eprintln!(
        "mesh: {verb} into {} (file key epoch {})",
        d.output, d.epoch
    );
    Ok(())
}

fn print(s: &str) -> Result<(), FilesError> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{s}").map_err(|e| FilesError::Plugin(PluginError::io("standard output")(e)))
}
