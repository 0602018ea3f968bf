//! Commands that need no account: status, hashes, keys, the quick start,
//! sync, completions and manual pages.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use super::*;
use crate::cli::*;
use mesh_account::store::{self, Store, StoreError};
use mesh_core::derive::{spec, Seed};
use mesh_core::shamir;
use mesh_core::udf::{self, DigestAlg};

pub(crate) fn quickstart(
    dir: &std::path::Path,
    listen: std::net::SocketAddr,
    address: &str,
    once: bool,
    j: bool,
) -> Result<()> {
    // Demo homes keep their store keys in files: say so, and never touch the user's own home.
    std::env::set_var("MESH_KEYSTORE", "file");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", dir.display()))?;
    let portal = mesh_agent::quickstart::EmbeddedPortal::start(listen, &dir.join("portal"))
        .map_err(|e| {
            hinted(
                e.to_string(),
                "another quickstart may be running; use --listen 127.0.0.1:0 or stop it",
            )
        })?;
    let q = mesh_agent::quickstart::run(&dir, &portal, address)?;
    if j {
        out!("{}", serde_json::to_value(&q)?);
    } else {
        print_quickstart(&q, &dir);
    }
    // The laptop's agent: its Mesh SSH key and certificate on SSH_AUTH_SOCK.
    let exe = std::env::current_exe().context("locating the mesh binary")?;
    let agent = match mesh_agent::daemon::start(
        &q.laptop,
        &exe,
        mesh_agent::daemon::Options {
            interval: std::time::Duration::from_secs(5),
            audit: true,
        },
    ) {
        Ok(s) => s,
        Err(mesh_agent::daemon::DaemonError::Running(_)) => {
            mesh_agent::daemon::query(&q.laptop, "status")?
        }
        Err(e) => return Err(e.into()),
    };
    let key = {
        with_view(&q.laptop, |dh, view| {
            Ok(mesh_ssh::channel::public_key_line(dh, view)?)
        })?
    };
    if !j {
        out!("");
        out!("The laptop's agent is running; use it with:");
        out!("  export SSH_AUTH_SOCK={}", agent.ssh_auth_sock);
        out!("  ssh-add -l");
        out!("Its SSH public key (for authorized_keys):");
        out!("  {key}");
    }
    if once {
        let _ = mesh_agent::daemon::stop(&q.laptop);
        return Ok(());
    }
    eprintln!("mesh: serving the portal until Ctrl-C");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(mesh_portal::shutdown_signal());
    let _ = mesh_agent::daemon::stop(&q.laptop);
    drop(portal);
    eprintln!("mesh: stopped; run `mesh quickstart` again to continue where you left off");
    Ok(())
}

/// What the quick start shows, and the commands to try next.
fn print_quickstart(q: &mesh_agent::quickstart::Quickstart, dir: &Path) {
    if let Some(old) = &q.revoked_phone {
        eprintln!(
            "mesh: the phone was revoked: its home is kept in {}, and a new phone joined in its place",
            old.display()
        );
    }
    out!("Mesh is running.");
    out!(
        "  portal:   {} (embedded, SQLite in {})",
        q.portal,
        dir.join("portal").display()
    );
    out!("  account:  {}  profile {}", q.address, q.profile_udf);
    out!("  devices (as the phone verified them):");
    for d in &q.devices {
        let roles: Vec<&str> = d.roles.iter().map(|r| r.name()).collect();
        out!(
            "    {:<8} {}  {:<20} {}",
            d.name,
            d.device,
            roles.join(","),
            d.state
        );
    }
    out!(
        "  recovery: {} (one share each; any 2 of 3 rebuild the account's root; no device keeps it: move them apart, off this machine)",
        q.recovery
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    out!("");
    out!("Try, in another terminal (demo homes keep their keys in files):");
    // The binary by a path that works as printed (after `cargo run`,
    // `mesh` is not on PATH).
    let mesh = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "mesh".into());
    out!("  export MESH_KEYSTORE=file");
    out!("  {mesh} --home {} device list", q.laptop.display());
    out!("  {mesh} --home {} device pin", q.laptop.display());
    out!("  {mesh} --home {} device revoke phone", q.laptop.display());
    out!("  {mesh} --home {} sync", q.phone.display());
}

pub(crate) fn status(home: &std::path::Path, j: bool) -> Result<()> {
    let store = match Store::open(home, false) {
        Err(StoreError::NoStore(_)) => {
            emit(
                j,
                json!({"home": home, "device": null}),
                &format!(
                    "home:     {}\ndevice:   none (run `mesh device init`)",
                    home.display()
                ),
            );
            return Ok(());
        }
        other => other?,
    };
    let st = store.state();
    let dev = st.device.as_ref();
    emit(
        j,
        json!({
            "home": home,
            "keystore": store.backend().name(),
            "device": dev.map(|d| &d.udf),
            "name": dev.map(|d| &d.name),
        }),
        &format!(
            "home:     {}\nkeystore: {} ({})\ndevice:   {}",
            home.display(),
            store.backend().name(),
            store.backend().describe(),
            dev.map(|d| format!("{} ({})", d.udf, d.name))
                .unwrap_or_else(|| "none (run `mesh device init`)".into())
        ),
    );
    Ok(())
}

pub(crate) fn key(cmd: KeyCmd, j: bool) -> Result<()> {
    match cmd {
        KeyCmd::Nonce { bits } => {
            let n = udf::presentation_whole(&udf::nonce(bits)?);
            emit(j, json!({"nonce": n}), &n);
        }
        KeyCmd::Secret { bits } => {
            let s = zeroize::Zeroizing::new(udf::presentation_whole(&udf::encryption_key(bits)?));
            emit(j, json!({"secret": &*s}), &s);
        }
        KeyCmd::Seed { kind, bits } => {
            let code = match kind {
                SeedKind::Ed25519 => spec::ED25519,
                SeedKind::X25519 => spec::X25519,
                SeedKind::Device => spec::MESH_PROFILE_DEVICE,
                SeedKind::Account => spec::MESH_PROFILE_ACCOUNT,
            };
            let s =
                zeroize::Zeroizing::new(udf::presentation_whole(&udf::secret_seed(code, bits)?));
            // Seeds parse back through the same code that derives keys.
            Seed::from_udf(&s)?;
            let kind = clap::ValueEnum::to_possible_value(&kind).map(|v| v.get_name().to_string());
            emit(j, json!({"seed": &*s, "type": kind}), &s);
        }
        KeyCmd::Share {
            threshold,
            shares,
            from,
            secret,
        } => {
            if secret.is_some() {
                return Err(secrets::on_argv(
                    "the secret",
                    "mesh key share --threshold 2 --shares 3 < secret.hex",
                ));
            }
            let secret = secrets::read_one(from.as_deref(), "secret (hex)")?;
            let bytes = zeroize::Zeroizing::new(
                data_encoding::HEXUPPER_PERMISSIVE
                    .decode(secret.trim().as_bytes())
                    .map_err(|e| {
                        hinted(
                            format!("the secret is not hex: {e}"),
                            "give the secret as hex digits, e.g. 3D02BCFA…",
                        )
                    })?,
            );
            let list = shamir::split(&bytes, threshold, shares)
                .map_err(|e| hinted(e.to_string(), "use 2 <= --threshold <= --shares <= 15"))?;
            let texts: Vec<zeroize::Zeroizing<String>> = list.iter().map(|s| s.to_udf()).collect();
            if j {
                let v: Vec<&str> = texts.iter().map(|t| t.as_str()).collect();
                out!("{}", json!({"threshold": threshold, "shares": v}));
            } else {
                for t in &texts {
                    out!("{}", t.as_str());
                }
            }
        }
        KeyCmd::Recover { from, shares } => {
            if !shares.is_empty() {
                return Err(secrets::on_argv("shares", "mesh key recover < shares.txt"));
            }
            let shares = secrets::read_lines(from.as_deref(), "shares")?;
            let mut parsed = Vec::with_capacity(shares.len());
            for (i, s) in shares.iter().enumerate() {
                parsed.push(
                    shamir::Share::from_udf(s)
                        .with_context(|| format!("share {} is not a valid share", i + 1))?,
                );
            }
            let secret = shamir::recover(&parsed)?;
            let hex = zeroize::Zeroizing::new(data_encoding::HEXUPPER.encode(&secret));
            emit(j, json!({"secret": &*hex}), &hex);
        }
    }
    Ok(())
}

pub(crate) fn man(output: Option<PathBuf>) -> Result<()> {
    let cmd = crate::cli::command();
    let Some(dir) = output else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        return print_bytes(&page);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let n = man_pages(&cmd, "mesh", &dir)?;
    eprintln!("mesh: wrote {n} manual pages to {}", dir.display());
    Ok(())
}

/// `NAME.1` for `cmd`, then `NAME-SUB.1` for every subcommand, recursively.
fn man_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<usize> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.to_string())).render(&mut page)?;
    store::write_atomic(&dir.join(format!("{name}.1")), &page)?;
    std::fs::set_permissions(
        dir.join(format!("{name}.1")),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        n += man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}

/// `mesh sync`.
pub(crate) fn sync(home: &Path, j: bool) -> Result<()> {
    let mut store = Store::open(home, false)?;
    let r = mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
    let mut lines = Vec::new();
    if r.completed {
        lines.push("connection completed: this device is now part of the account".to_string());
    }
    for d in &r.new_devices {
        lines.push(format!("new device: {d}"));
    }
    for d in &r.revoked_devices {
        lines.push(format!("revoked device: {d}"));
    }
    for d in &r.auto_accepted {
        lines.push(format!("accepted by PIN: {d}"));
    }
    for (d, why) in &r.pin_refused {
        lines.push(format!("refused a PIN request from {d}: {why}"));
    }
    for w in &r.new_requests {
        lines.push(format!(
            "new connection request: {w} (see `mesh device pending`)"
        ));
    }
    if r.rotated {
        lines.push("this device's keys were rotated: it now uses the new ones".into());
    }
    if r.entries_published > 0 {
        lines.push(format!(
            "channel entries published: {}",
            r.entries_published
        ));
    }
    lines.extend(r.applied.iter().cloned());
    for w in &r.warnings {
        eprintln!("mesh: warning: {w}");
    }
    if lines.is_empty() {
        lines.push(if r.entries > 0 {
            format!(
                "{} new entries verified; nothing on this device needed a change",
                r.entries
            )
        } else {
            "up to date: nothing new at the portal since this device's last sync".into()
        });
    }
    drop(store);
    // A running agent reloads what this sync changed.
    let _ = mesh_agent::daemon::query(home, "sync");
    emit(j, serde_json::to_value(&r)?, &lines.join("\n"));
    Ok(())
}

/// `mesh hash udf`.
pub(crate) fn hash(cmd: HashCmd, j: bool) -> Result<()> {
    let HashCmd::Udf {
        file,
        content_type,
        sha3,
        bits,
    } = cmd;

    let data = read_input(&file)?;
    let alg = if sha3 {
        DigestAlg::Sha3
    } else {
        DigestAlg::Sha2
    };
    let u = udf::content_digest_string(alg, &content_type, &data, bits)
        .map_err(|e| hinted(e.to_string(), "use --bits between 100 and 440"))?;
    emit(
        j,
        json!({"udf": u, "content_type": content_type, "alg": if sha3 {"sha3-512"} else {"sha2-512"}, "bits": bits}),
        &u,
    );
    Ok(())
}

/// `mesh completions SHELL`.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::command(), "mesh", &mut script);
    print_bytes(&script)
}
