//! `mesh quickstart`: the embedded portal, an account and two devices (the
//! `quickstart` feature: a device build without it links no portal).

use std::path::Path;

use anyhow::{Context, Result};

use super::*;

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
