//! `mesh pgp`: the account's OpenPGP certificate, this device's secrets, GnuPG, WKD.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use super::*;
use crate::cli::*;

/// Run `mesh pgp …`.
pub(crate) fn run(home: &Path, c: PgpCmd, j: bool) -> Result<()> {
    with_view(home, |dh, view| {
        match c {
            PgpCmd::Cert { armor } => {
                if j {
                    out!("{}", json!({"certificate": mesh_pgp::channel::cert(view)?}));
                } else {
                    write_opt(None, &mesh_pgp::channel::cert_bytes(view, armor)?)?;
                }
            }
            PgpCmd::ExportSecret { output, armor } => {
                let a = mesh_pgp::channel::export_secret_bytes(dh, view, armor)?;
                store::write_atomic(&output, &a)?;
                eprintln!("mesh: wrote {}", output.display());
                emit(j, json!({"output": output}), "");
            }
            PgpCmd::Wkd { output } => {
                let path = write_wkd(view, &output)?;
                eprintln!("mesh: wrote {}", path.display());
                emit(j, json!({"path": path}), &path.display().to_string());
            }
            PgpCmd::Install { gnupghome, from } => {
                let data = match &from {
                    Some(f) => Some(zeroize::Zeroizing::new(
                        std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
                    )),
                    None => None,
                };
                let fpr = mesh_pgp::gnupg::install(
                    dh,
                    view,
                    gnupghome.as_deref(),
                    data.as_ref().map(|d| d.as_slice()),
                )?;
                eprintln!("mesh: imported the account's certificate {fpr} and this device's secrets into GnuPG");
                emit(j, json!({"fingerprint": fpr}), &fpr);
            }
        }
        Ok(())
    })
}

/// `mesh pgp wkd`: the direct-method tree, readable by a web server
/// (directories 0755, files 0644).
pub(crate) fn write_wkd(view: &AccountView, root: &std::path::Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let (name, cert) = mesh_pgp::gnupg::wkd(view)?;
    let base = root.join(".well-known/openpgpkey");
    let hu = base.join("hu");
    std::fs::create_dir_all(&hu).with_context(|| format!("cannot create {}", hu.display()))?;
    for d in [root.join(".well-known"), base.clone(), hu.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    }
    let path = hu.join(name);
    for (f, data) in [(base.join("policy"), &b""[..]), (path.clone(), &cert[..])] {
        store::write_atomic(&f, data)?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(path)
}
