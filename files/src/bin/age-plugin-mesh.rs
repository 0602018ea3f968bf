//! `age-plugin-mesh`: age's plugin for Mesh accounts (c2sp.org/age-plugin),
//! run by `age`/`rage` as `age-plugin-mesh --age-plugin=recipient-v1|identity-v1`.
//!
//! - recipient-v1: wraps each file key to the epoch key the `age1mesh1…`
//!   recipient carries; no home is needed.
//! - identity-v1: hands a file's `mesh` stanzas to `mesh files unwrap`
//!   (next to this binary, else on PATH), which finds this device's home
//!   as every `mesh` command does (MESH_HOME, else the platform default)
//!   and unwraps with the epochs the device holds. The file key comes back
//!   on a pipe; the device's keys never leave `mesh`.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use age_core::format::{FileKey, Stanza};
use age_core::secrecy::ExposeSecret;
use age_plugin::identity::{self, IdentityPluginV1};
use age_plugin::recipient::{self, RecipientPluginV1};
use age_plugin::{run_state_machine, Callbacks, PluginHandler};
use mesh_files::device::{self, MeshStanza, UnwrapRequest, FILE_KEY_LEN};
use mesh_files::encoding::{Identity, Recipient, PLUGIN_NAME};
use mesh_files::FilesError;
use zeroize::Zeroizing;

struct Handler;

impl PluginHandler for Handler {
    type RecipientV1 = Wrapper;
    type IdentityV1 = Unwrapper;

    fn recipient_v1(self) -> io::Result<Wrapper> {
        Ok(Wrapper(Vec::new()))
    }

    fn identity_v1(self) -> io::Result<Unwrapper> {
        Ok(Unwrapper(Vec::new()))
    }
}

/// Message and hint, as age shows a plugin's error.
fn text(e: &FilesError) -> String {
    match e.hint() {
        Some(h) => format!("{e}\nhint: {h}"),
        None => e.to_string(),
    }
}

struct Wrapper(Vec<Recipient>);

impl RecipientPluginV1 for Wrapper {
    fn add_recipient(
        &mut self,
        index: usize,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        match (name == PLUGIN_NAME).then(|| Recipient::from_bytes(bytes)) {
            Some(Ok(r)) => {
                self.0.push(r);
                Ok(())
            }
            Some(Err(e)) => Err(recipient::Error::Recipient {
                index,
                message: text(&e),
            }),
            None => Err(recipient::Error::Recipient {
                index,
                message: "not a Mesh recipient".into(),
            }),
        }
    }

    fn add_identity(&mut self, index: usize, _: &str, _: &[u8]) -> Result<(), recipient::Error> {
        Err(recipient::Error::Identity {
            index,
            message: "encrypt to the recipient: `age -r $(mesh files recipient)`".into(),
        })
    }

    fn labels(&mut self) -> HashSet<String> {
        HashSet::new()
    }

    fn wrap_file_keys(
        &mut self,
        file_keys: Vec<FileKey>,
        _: impl Callbacks<recipient::Error>,
    ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
        let mut out = Vec::with_capacity(file_keys.len());
        for fk in &file_keys {
            let mut stanzas = Vec::with_capacity(self.0.len());
            for (index, r) in self.0.iter().enumerate() {
                match device::wrap(r, fk.expose_secret()) {
                    Ok(s) => stanzas.push(Stanza {
                        tag: s.tag,
                        args: s.args,
                        body: s.body,
                    }),
                    Err(e) => {
                        return Ok(Err(vec![recipient::Error::Recipient {
                            index,
                            message: text(&e),
                        }]))
                    }
                }
            }
            out.push(stanzas);
        }
        Ok(Ok(out))
    }
}

struct Unwrapper(Vec<String>);

impl IdentityPluginV1 for Unwrapper {
    fn add_identity(
        &mut self,
        index: usize,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), identity::Error> {
        match (name == PLUGIN_NAME).then(|| Identity::from_bytes(bytes)) {
            Some(Ok(id)) => {
                self.0.push(id.encode());
                Ok(())
            }
            Some(Err(e)) => Err(identity::Error::Identity {
                index,
                message: text(&e),
            }),
            None => Err(identity::Error::Identity {
                index,
                message: "not a Mesh identity".into(),
            }),
        }
    }

    fn unwrap_file_keys(
        &mut self,
        files: Vec<Vec<Stanza>>,
        _: impl Callbacks<identity::Error>,
    ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
        let mut out = HashMap::new();
        for (file, stanzas) in files.into_iter().enumerate() {
            let ours: Vec<MeshStanza> = stanzas
                .into_iter()
                .filter(|s| s.tag == PLUGIN_NAME)
                .map(|s| MeshStanza {
                    tag: s.tag,
                    args: s.args,
                    body: s.body,
                })
                .collect();
            // Not ours: age tries its other identities (the spec: ignore unknown stanzas).
            if ours.is_empty() {
                continue;
            }
            let mut errors = Vec::new();
            for (index, id) in self.0.iter().enumerate() {
                let req = UnwrapRequest {
                    identity: id.clone(),
                    stanzas: ours.clone(),
                };
                match ask_mesh(&req) {
                    Ok(fk) => {
                        out.insert(file, Ok(fk));
                        errors.clear();
                        break;
                    }
                    Err(message) => errors.push(identity::Error::Identity { index, message }),
                }
            }
            if !errors.is_empty() {
                out.insert(file, Err(errors));
            }
        }
        Ok(out)
    }
}

/// `mesh` next to this binary (installed together), else on PATH.
fn mesh_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("mesh")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("mesh"))
}

/// Ask `mesh files unwrap` for a file key; the error is what mesh said.
fn ask_mesh(req: &UnwrapRequest) -> Result<FileKey, String> {
    let program = mesh_program();
    let no_mesh = |detail: String| {
        text(&FilesError::NoMesh {
            program: program.display().to_string(),
            detail,
        })
    };
    let mut child = Command::new(&program)
        .args(["files", "unwrap"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| no_mesh(e.to_string()))?;
    let body = serde_json::to_vec(req).map_err(|e| no_mesh(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&body).map_err(|e| no_mesh(e.to_string()))?;
    }
    let mut stdout = Zeroizing::new(String::new());
    // The answer is a file key in base64: a few dozen bytes, read no more.
    if let Some(o) = child.stdout.take() {
        o.take(4096)
            .read_to_string(&mut stdout)
            .map_err(|e| no_mesh(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| no_mesh(e.to_string()))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(said.trim().trim_start_matches("mesh: error: ").to_string());
    }
    let fk = Zeroizing::new(
        mesh_core::b64::decode(stdout.trim()).map_err(|_| no_mesh("a malformed answer".into()))?,
    );
    if fk.len() != FILE_KEY_LEN {
        return Err(no_mesh("a malformed answer".into()));
    }
    Ok(FileKey::init_with_mut(|k| k.copy_from_slice(&fk)))
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let machine = args.iter().find_map(|a| a.strip_prefix("--age-plugin="));
    match (machine, args.as_slice()) {
        (Some(m), _) => run_state_machine(m, Handler),
        (None, [flag, m]) if flag == "--age-plugin" => run_state_machine(m, Handler),
        _ => {
            eprintln!(
                "age-plugin-mesh: run by age; see `mesh files recipient` and `mesh files identity`"
            );
            std::process::exit(2)
        }
    }
}
