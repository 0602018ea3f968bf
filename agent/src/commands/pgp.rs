//! `mesh pgp`: the account's OpenPGP certificate, this device's secrets, GnuPG, WKD.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use super::*;
use crate::cli::*;

/// Run `mesh pgp …`.
pub(crate) fn run(home: &Path, c: PgpCmd, j: bool) -> Result<()> {
    if let PgpCmd::Install {
        gnupghome,
        from: Some(from),
        account: Some(account),
        portal: Some(portal),
    } = &c
    {
        return install_elsewhere(gnupghome.as_deref(), from, account, portal, j);
    }
    if let PgpCmd::Install { from: Some(_), .. } = &c {
        if !home.join("state.json").exists() {
            return Err(hinted(
                format!("there is no Mesh home at {} to check the export against", home.display()),
                "on a machine without Mesh, name the account: `mesh pgp install --from FILE --account PROFILE_UDF --portal URL` (`mesh account show` on a device prints the profile UDF)",
            ));
        }
    }
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
                let [direct, advanced] = write_wkd(view, &output)?;
                eprintln!(
                    "mesh: wrote {} (direct method) and {} (advanced method)",
                    direct.display(),
                    advanced.display()
                );
                emit(
                    j,
                    json!({"path": direct, "advanced": advanced}),
                    &format!("{}\n{}", direct.display(), advanced.display()),
                );
            }
            PgpCmd::Install {
                gnupghome, from, ..
            } => {
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
                )
                .map_err(|e| match (&from, e) {
                    (Some(f), mesh_plugins::PluginError::BadInput(m)) => hinted(
                        format!("{}: {m}", f.display()),
                        "make it with `mesh pgp export-secret --output FILE` (binary, or --armor) on a device of this account, and copy it unchanged",
                    ),
                    (_, e) => e.into(),
                })?;
                eprintln!("mesh: imported the account's certificate {fpr} and this device's secrets into GnuPG");
                emit(j, json!({"fingerprint": fpr}), &fpr);
            }
        }
        Ok(())
    })
}

/// `mesh pgp install --from FILE --account UDF --portal URL`: on a machine
/// with no Mesh home, the export is checked against the account as its
/// portal serves it (verified up to the pinned profile UDF), then imported.
fn install_elsewhere(
    gnupghome: Option<&Path>,
    from: &Path,
    account: &str,
    portal: &str,
    j: bool,
) -> Result<()> {
    let data = zeroize::Zeroizing::new(
        std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?,
    );
    let view = mesh_agent::servers::public_view(&mesh_agent::servers::Lookup {
        profile_udf: account,
        portal,
        cache: None,
        max_stale: 0,
    })?;
    let fpr = mesh_pgp::gnupg::install_export(&view, gnupghome, &data).map_err(|e| match e {
        mesh_plugins::PluginError::BadInput(m) => hinted(
            format!("{}: {m}", from.display()),
            "make it with `mesh pgp export-secret --output FILE` on a device of this account, and copy it unchanged",
        ),
        e => e.into(),
    })?;
    eprintln!(
        "mesh: imported the certificate {fpr} of {} and the secrets of the export into GnuPG (checked against the account as its portal serves it; no Mesh agent here removes them if this device is revoked)",
        view.address
    );
    emit(j, json!({"fingerprint": fpr}), &fpr);
    Ok(())
}

/// `mesh pgp wkd`: the Web Key Directory tree for both methods
/// (draft-koch-openpgp-webkey-service §3.1), readable by a web server
/// (directories 0755, files 0644): the direct method's
/// `.well-known/openpgpkey/hu/<hash>` (served as the domain itself), and
/// the advanced method's `.well-known/openpgpkey/<domain>/hu/<hash>`
/// (served as `openpgpkey.<domain>`), each with its `policy` file.
/// Returns both certificate paths, direct first.
pub(crate) fn write_wkd(view: &AccountView, root: &std::path::Path) -> Result<[PathBuf; 2]> {
    use std::os::unix::fs::PermissionsExt;
    let (name, cert) = mesh_pgp::gnupg::wkd(view)?;
    let domain = view
        .address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let well_known = root.join(".well-known");
    let direct = well_known.join("openpgpkey");
    let advanced = direct.join(&domain);
    let mut paths = Vec::new();
    for base in [&direct, &advanced] {
        let hu = base.join("hu");
        std::fs::create_dir_all(&hu).with_context(|| format!("cannot create {}", hu.display()))?;
        let path = hu.join(&name);
        for (f, data) in [(base.join("policy"), &b""[..]), (path.clone(), &cert[..])] {
            store::write_atomic(&f, data)?;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644))?;
        }
        paths.push(path);
    }
    for d in [
        &well_known,
        &direct,
        &direct.join("hu"),
        &advanced,
        &advanced.join("hu"),
    ] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    let [d, a]: [PathBuf; 2] = paths
        .try_into()
        .map_err(|_| anyhow::anyhow!("two WKD paths"))?;
    Ok([d, a])
}
