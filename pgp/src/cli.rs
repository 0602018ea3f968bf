//! `mesh pgp`: the account's OpenPGP certificate, this device's secrets,
//! GnuPG, WKD. The channel's own subcommand, mounted by the host through
//! the SDK ([`ChannelCommand`]); the host hands it the verified view and,
//! for `install --account --portal`, the public view a server reads.

use std::path::{Path, PathBuf};

use clap::{FromArgMatches, Subcommand};
use mesh_plugins::cli::{emit, print_line, write_atomic, write_opt};
use mesh_plugins::command::Lookup;
use mesh_plugins::{AccountView, ChannelCommand, CommandContext, CommandError, PluginError};
use serde_json::json;

/// `mesh pgp`, as the SDK mounts it.
#[derive(Debug, Default)]
pub struct PgpCommand;

impl ChannelCommand for PgpCommand {
    fn command(&self) -> clap::Command {
        PgpCmd::augment_subcommands(clap::Command::new("pgp"))
            .about("OpenPGP: the account's certificate, this device's secrets, GnuPG")
            .subcommand_required(true)
            .arg_required_else_help(true)
    }

    fn run(&self, m: &clap::ArgMatches, ctx: &dyn CommandContext) -> Result<(), CommandError> {
        let cmd =
            PgpCmd::from_arg_matches(m).map_err(|e| CommandError::new(e.to_string(), None))?;
        run(ctx, cmd)
    }
}

/// `mesh pgp`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum PgpCmd {
    /// Print the account's certificate, with every binding and revocation.
    Cert {
        /// ASCII armor instead of binary.
        #[arg(long)]
        armor: bool,
    },
    /// Write the certificate with this device's signing subkey and the encryption subkeys (no primary secret).
    ExportSecret {
        /// The file (replaced atomically; 0600).
        #[arg(long)]
        output: PathBuf,
        /// ASCII armor instead of binary.
        #[arg(long)]
        armor: bool,
    },
    /// Import the certificate and this device's secrets into GnuPG and trust the account's key.
    Install {
        /// The GnuPG home (default: GnuPG's own).
        #[arg(long)]
        gnupghome: Option<PathBuf>,
        /// Import this export (from `export-secret`) instead; it must be this account's.
        #[arg(long)]
        from: Option<PathBuf>,
        /// With --from on a machine with no Mesh home: the account's profile
        /// UDF, to check the export against what the portal serves (verified).
        #[arg(long, requires_all = ["from", "portal"])]
        account: Option<String>,
        /// The portal's URL (with --account).
        #[arg(long, requires = "account")]
        portal: Option<String>,
    },
    /// Write a Web Key Directory tree for the account's domain (direct and advanced methods).
    Wkd {
        /// The web root to write `.well-known/openpgpkey/` (and `…/<domain>/`) under.
        #[arg(long)]
        output: PathBuf,
    },
}

/// A channel's failure as the host prints it (message, causes, hint).
fn err(e: PluginError) -> CommandError {
    CommandError::of(&e, None)
}

fn hinted(message: impl Into<String>, hint: &str) -> CommandError {
    CommandError::new(message, Some(hint.into()))
}

/// Run `mesh pgp …`.
pub fn run(ctx: &dyn CommandContext, c: PgpCmd) -> Result<(), CommandError> {
    let (home, j) = (ctx.home(), ctx.json());
    if let PgpCmd::Install {
        gnupghome,
        from: Some(from),
        account: Some(account),
        portal: Some(portal),
    } = &c
    {
        return install_elsewhere(ctx, gnupghome.as_deref(), from, account, portal);
    }
    if let PgpCmd::Install { from: Some(_), .. } = &c {
        if !home.join("state.json").exists() {
            return Err(hinted(
                format!("there is no Mesh home at {} to check the export against", home.display()),
                "on a machine without Mesh, name the account: `mesh pgp install --from FILE --account PROFILE_UDF --portal URL` (`mesh account show` on a device prints the profile UDF)",
            ));
        }
    }
    let mut c = Some(c);
    ctx.with_view(&mut |dh, view| {
        let Some(c) = c.take() else {
            return Ok(());
        };
        match c {
            PgpCmd::Cert { armor } => {
                if j {
                    print_line(
                        &json!({"certificate": crate::channel::cert(view).map_err(err)?})
                            .to_string(),
                    );
                } else {
                    write_opt(
                        None,
                        &crate::channel::cert_bytes(view, armor).map_err(err)?,
                    )?;
                }
            }
            PgpCmd::ExportSecret { output, armor } => {
                let a = crate::channel::export_secret_bytes(dh, view, armor).map_err(err)?;
                write_atomic(&output, &a)?;
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
                    Some(f) => Some(zeroize::Zeroizing::new(mesh_plugins::cli::read(f)?)),
                    None => None,
                };
                let fpr = crate::gnupg::install(
                    dh,
                    view,
                    gnupghome.as_deref(),
                    data.as_ref().map(|d| d.as_slice()),
                )
                .map_err(|e| match (&from, e) {
                    (Some(f), PluginError::BadInput(m)) => hinted(
                        format!("{}: {m}", f.display()),
                        "make it with `mesh pgp export-secret --output FILE` (binary, or --armor) on a device of this account, and copy it unchanged",
                    ),
                    (_, e) => err(e),
                })?;
                let gnupghome = gnupghome.or_else(crate::gpg_exe::default_home);
                let gpg = crate::gpg_exe::program();
                eprintln!(
                    "mesh: imported the account's certificate {fpr} and this device's secrets into GnuPG ({}, home {})",
                    gpg.to_string_lossy(),
                    gnupghome.as_deref().map_or("GnuPG's default".into(), |h| h.display().to_string())
                );
                emit(
                    j,
                    json!({"fingerprint": fpr, "gpg": gpg.to_string_lossy(), "gnupghome": gnupghome}),
                    &fpr,
                );
            }
        }
        Ok(())
    })
}

/// `mesh pgp install --from FILE --account UDF --portal URL`: on a machine
/// with no Mesh home, the export is checked against the account as its
/// portal serves it (verified up to the pinned profile UDF), then imported.
fn install_elsewhere(
    ctx: &dyn CommandContext,
    gnupghome: Option<&Path>,
    from: &Path,
    account: &str,
    portal: &str,
) -> Result<(), CommandError> {
    let data = zeroize::Zeroizing::new(mesh_plugins::cli::read(from)?);
    let view = ctx.servers()?.public_view(&Lookup {
        profile_udf: account,
        portal,
        cache: None,
        max_stale: 0,
    })?;
    let fpr = crate::gnupg::install_export(&view, gnupghome, &data).map_err(|e| match e {
        PluginError::BadInput(m) => hinted(
            format!("{}: {m}", from.display()),
            "make it with `mesh pgp export-secret --output FILE` on a device of this account, and copy it unchanged",
        ),
        e => err(e),
    })?;
    eprintln!(
        "mesh: imported the certificate {fpr} of {} and the secrets of the export into GnuPG (checked against the account as its portal serves it; no Mesh agent here removes them if this device is revoked)",
        view.address
    );
    emit(ctx.json(), json!({"fingerprint": fpr}), &fpr);
    Ok(())
}

/// `mesh pgp wkd`: the Web Key Directory tree for both methods
/// (draft-koch-openpgp-webkey-service §3.1), readable by a web server
/// (directories 0755, files 0644): the direct method's
/// `.well-known/openpgpkey/hu/<hash>` (served as the domain itself), and
/// the advanced method's `.well-known/openpgpkey/<domain>/hu/<hash>`
/// (served as `openpgpkey.<domain>`), each with its `policy` file.
/// Returns both certificate paths, direct first.
pub fn write_wkd(view: &AccountView, root: &Path) -> Result<[PathBuf; 2], CommandError> {
    use mesh_plugins::platform::set_mode;
    let (name, cert) = crate::gnupg::wkd(view).map_err(err)?;
    let domain = view
        .address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let well_known = root.join(".well-known");
    let direct = well_known.join("openpgpkey");
    let advanced = direct.join(&domain);
    let mut paths = Vec::new();
    let io = |e: std::io::Error| CommandError::of(&e, None);
    for base in [&direct, &advanced] {
        let hu = base.join("hu");
        std::fs::create_dir_all(&hu).map_err(|e| {
            mesh_plugins::cli::context(&format!("cannot create {}", hu.display()), e)
        })?;
        let path = hu.join(&name);
        for (f, data) in [(base.join("policy"), &b""[..]), (path.clone(), &cert[..])] {
            write_atomic(&f, data)?;
            set_mode(&f, 0o644).map_err(io)?;
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
        set_mode(d, 0o755).map_err(io)?;
    }
    let [d, a]: [PathBuf; 2] = paths
        .try_into()
        .map_err(|_| CommandError::new("two WKD paths", None))?;
    Ok([d, a])
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
