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
            "key_store": store.backend().store_name(),
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
    mesh_plugins::platform::set_mode(&dir.join(format!("{name}.1")), 0o644)?;
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
