//! `mesh device`: this device and the account's other devices.

use anyhow::Result;
use serde_json::json;

use super::*;
use crate::cli::*;
use mesh_account::device;
use mesh_account::store::Store;
use mesh_account::{admin, join, AccountError};

pub(crate) fn run(home: &std::path::Path, cmd: DeviceCmd, j: bool) -> Result<()> {
    match cmd {
        DeviceCmd::Init { name } => {
            let mut store = Store::open(home, true)?;
            let name = name.unwrap_or_else(device::default_name);
            let d = device::init(&mut store, &name, &mesh_agent::host().slots())?;
            eprintln!("mesh: created device {} in {}", d.name, home.display());
            emit(
                j,
                json!({"device": d.udf, "name": d.name, "home": home}),
                &d.udf,
            );
        }
        DeviceCmd::Request {
            address,
            portal,
            name,
            pin,
            wait,
            no_wait,
            timeout,
        } => request(
            home,
            &address,
            &portal,
            name.as_deref(),
            read_pin(pin.as_deref())?.as_deref().map(|p| p.as_str()),
            (wait || (pin.is_some() && !no_wait)).then_some(timeout),
            j,
        )?,
        DeviceCmd::Pending => pending(home, j)?,
        DeviceCmd::Accept { which, roles: r } => {
            let roles = roles_or_channels(&r)?;
            let mut store = Store::open(home, false)?;
            let name = admin::accept(&mut store, &mesh_agent::host(), &which, &roles)?;
            eprintln!("mesh: accepted {name}");
            emit(j, json!({"accepted": name}), "");
        }
        DeviceCmd::Reject { which } => {
            let mut store = Store::open(home, false)?;
            let name = admin::reject(&mut store, &mesh_agent::host(), &which)?;
            eprintln!("mesh: rejected {name}");
            emit(j, json!({"rejected": name}), "");
        }
        DeviceCmd::Pin { roles: r, expires } => {
            let roles = roles_or_channels(&r)?;
            let mut store = Store::open(home, false)?;
            let (pin, until) = admin::new_pin(&mut store, &mesh_agent::host(), &roles, expires)?;
            eprintln!("mesh: one-time PIN, valid for {expires} s: give it to the new device's `mesh device request --pin`");
            emit(j, json!({"pin": pin, "expires": until}), &pin);
        }
        DeviceCmd::Complete => {
            let mut store = Store::open(home, false)?;
            if join::complete(&mut store)? {
                mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
                eprintln!("mesh: connection completed");
            } else {
                eprintln!("mesh: nothing to complete: this device is connected");
            }
            emit(j, json!({"completed": true}), "");
        }
        DeviceCmd::List => list(home, j)?,
        DeviceCmd::Rotate { which } => {
            let mut store = Store::open(home, false)?;
            let (name, epoch) = admin::rotate(&mut store, &mesh_agent::host(), &which)?;
            eprintln!(
                "mesh: {name} has new keys (epoch {epoch}); it switches to them at its next sync"
            );
            emit(j, json!({"rotated": name, "epoch": epoch}), "");
        }
        DeviceCmd::Roles { which, add, remove } => set_roles(home, &which, &add, &remove, j)?,
        DeviceCmd::Revoke { which, wait } => revoke(home, &which, wait, j)?,
    }
    Ok(())
}

/// `mesh device request`, and with `--wait`, until it is answered.
fn request(
    home: &std::path::Path,
    address: &str,
    portal: &str,
    name: Option<&str>,
    pin: Option<&str>,
    wait: Option<u64>,
    j: bool,
) -> Result<()> {
    let mut store = Store::open(home, true)?;
    let r = join::request(
        &mut store,
        address,
        portal,
        name,
        pin,
        &mesh_agent::host().slots(),
    )?;
    if pin.is_some() {
        eprintln!("mesh: request sent with a PIN; an administrator device accepts it when it syncs (its agent does so every few seconds)");
    } else {
        eprintln!("mesh: request sent; on an administrator device check that `mesh device pending` shows this witness:");
    }
    emit(j, serde_json::to_value(&r)?, &r.witness);
    if let Some(timeout) = wait {
        let who = if pin.is_some() {
            "an administrator device to sync (a running agent there, or `mesh sync`)"
        } else {
            "an administrator to accept it (`mesh device accept WITNESS`)"
        };
        eprintln!(
            "mesh: waiting up to {} for {who}; Ctrl-C stops waiting, `mesh sync` completes later",
            crate::cli::human_duration(timeout)
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
        loop {
            match join::complete(&mut store) {
                Ok(_) => break,
                Err(AccountError::Pending(..)) if std::time::Instant::now() < deadline => {
                    // Polling the portal for the answer (not a test synchronisation).
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                Err(e) => return Err(e.into()),
            }
        }
        mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
        eprintln!("mesh: accepted; this device is now part of {address}");
    }
    Ok(())
}

/// `mesh device pending`: after a sync (which answers PIN requests), the
/// requests still waiting, and what was answered by PIN.
fn pending(home: &std::path::Path, j: bool) -> Result<()> {
    let mut store = Store::open(home, false)?;
    let r = mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
    for d in &r.auto_accepted {
        eprintln!("mesh: accepted by PIN: {d}");
    }
    for (d, why) in &r.pin_refused {
        eprintln!("mesh: refused a PIN request from {d}: {why}");
    }
    let list = admin::pending(&mut store)?;
    if j {
        out!("{}", serde_json::to_value(&list)?);
    } else if list.is_empty() {
        eprintln!("mesh: no pending requests");
    } else {
        for p in &list {
            out!(
                "{}  {}  {}{}",
                p.witness,
                p.name,
                p.request_id,
                if p.pin { "  (PIN)" } else { "" }
            );
        }
    }
    Ok(())
}

/// `mesh device list`.
fn list(home: &std::path::Path, j: bool) -> Result<()> {
    let mut store = Store::open(home, false)?;
    // Offline, the list is the last one this device verified, and says so.
    match mesh_account::sync::sync(&mut store, &mesh_agent::host()) {
        Err(AccountError::Client(e @ mesh_account::client::ClientError::Unreachable { .. })) => {
            eprintln!("mesh: warning: {e}; showing the list as of the last sync");
        }
        r => {
            r?;
        }
    }
    let list = admin::list(&store)?;
    if j {
        out!("{}", serde_json::to_value(&list)?);
    } else {
        for d in &list {
            let roles: Vec<&str> = d.roles.iter().map(|r| r.name()).collect();
            out!(
                "{:<16} {}  {:<20} {}{}",
                d.name,
                d.device,
                roles.join(","),
                d.state,
                if d.this { "  (this device)" } else { "" }
            );
        }
    }
    Ok(())
}

/// `mesh device revoke`: what each channel did, then (`--wait`) each other
/// device's time to apply it.
fn revoke(home: &std::path::Path, which: &str, wait: Option<u64>, j: bool) -> Result<()> {
    let mut store = Store::open(home, false)?;
    let r = mesh_account::revoke::revoke(&mut store, &mesh_agent::host(), which)?;
    let mut text = Vec::new();
    if r.already {
        eprintln!(
            "mesh: {} was revoked already (access list {})",
            r.name, r.serial
        );
    } else {
        eprintln!("mesh: revoked {} ({})", r.name, r.device);
        for c in &r.channels {
            for line in &c.done {
                text.push(format!("{:<7} {line}", c.channel));
            }
        }
    }
    let waited = match wait {
        Some(secs) => {
            let w = mesh_account::revoke::wait_applied(
                &store,
                r.serial,
                std::time::Duration::from_secs(secs),
            )?;
            for d in &w {
                text.push(match d.seconds {
                    Some(s) => format!("{:<7} {} applied it after {s:.2} s", "device", d.name),
                    None => format!(
                        "{:<7} {} has not applied it (offline?): it will at its next contact",
                        "device", d.name
                    ),
                });
            }
            Some(w)
        }
        None => None,
    };
    emit(
        j,
        json!({"revoked": r, "devices": waited}),
        &text.join("\n"),
    );
    Ok(())
}

/// `--pin` reads the PIN from standard input; a PIN given on the command
/// line (the old form) is refused.
fn read_pin(arg: Option<&str>) -> Result<Option<zeroize::Zeroizing<String>>> {
    match arg {
        None => Ok(None),
        Some("-") => Ok(Some(secrets::read_one(None, "PIN")?)),
        Some(_) => Err(secrets::on_argv(
            "a PIN",
            "echo \"$PIN\" | mesh device request ADDRESS --portal URL --pin",
        )),
    }
}

fn set_roles(
    home: &std::path::Path,
    which: &str,
    add: &[RoleArg],
    remove: &[RoleArg],
    j: bool,
) -> Result<()> {
    if add.is_empty() && remove.is_empty() {
        return Err(hinted(
            "no role to change",
            "name roles with --add and --remove, e.g. `mesh device roles phone --add admin --remove smime`",
        ));
    }
    let mut store = Store::open(home, false)?;
    let r = mesh_account::roles::set_roles(
        &mut store,
        &mesh_agent::host(),
        which,
        &roles(add)?,
        &roles(remove)?,
    )?;
    let names =
        |v: &[mesh_core::objects::Role]| v.iter().map(|r| r.name()).collect::<Vec<_>>().join(",");
    match r.epoch {
        None => eprintln!(
            "mesh: {} already has roles {}: nothing to change",
            r.name,
            names(&r.roles)
        ),
        Some(epoch) => {
            eprintln!(
                "mesh: {} now has roles {} (was {}); new keys at epoch {epoch}, which it switches to at its next sync",
                r.name,
                names(&r.roles),
                names(&r.before)
            );
            if let Some(e) = r.admin_epoch {
                eprintln!("mesh: administrator epoch {e}: new administrator keys and CAs, wrapped only to the remaining administrators");
            }
        }
    }
    emit(j, serde_json::to_value(&r)?, &names(&r.roles));
    Ok(())
}
