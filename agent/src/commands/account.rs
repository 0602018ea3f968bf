//! `mesh account`: create, show, escrow, recover.

use anyhow::Result;
use serde_json::json;

use super::*;
use crate::cli::*;
use mesh_account::store::Store;
use mesh_account::{admin, join, AccountError};

pub(crate) fn run(home: &std::path::Path, cmd: AccountCmd, j: bool) -> Result<()> {
    match cmd {
        AccountCmd::Create {
            address,
            portal,
            name,
            device,
        } => {
            let mut store = Store::open(home, true)?;
            let a = join::create(
                &mut store,
                &mesh_agent::host(),
                &address,
                &portal,
                name,
                device.as_deref(),
            )?;
            eprintln!(
                "mesh: created account {} at {}; this device is its administrator",
                a.address, a.portal
            );
            emit(
                j,
                json!({"address": a.address, "portal": a.portal, "profile_udf": a.profile_udf}),
                &a.profile_udf,
            );
        }
        AccountCmd::Show => show(home, j)?,
        AccountCmd::Escrow { threshold, shares } => {
            let store = Store::open(home, false)?;
            let list = admin::escrow(&store, threshold, shares).map_err(|e| match e {
                AccountError::Core(c) => {
                    hinted(c.to_string(), "use 2 <= --threshold <= --shares <= 15")
                }
                other => other.into(),
            })?;
            eprintln!("mesh: any {threshold} of these {shares} shares rebuild the account; keep them apart");
            if j {
                let v: Vec<&str> = list.iter().map(|s| s.as_str()).collect();
                out!("{}", json!({"threshold": threshold, "shares": v}));
            } else {
                for s in &list {
                    out!("{}", s.as_str());
                }
            }
        }
        AccountCmd::Recover {
            address,
            portal,
            name,
            from,
            shares,
        } => {
            if !shares.is_empty() {
                return Err(secrets::on_argv(
                    "escrow shares",
                    "mesh account recover ADDRESS --portal URL < shares.txt",
                ));
            }
            let shares = secrets::read_lines(from.as_deref(), "escrow shares")?;
            let mut store = Store::open(home, true)?;
            let a = join::recover(
                &mut store,
                &mesh_agent::host(),
                &address,
                &portal,
                &shares,
                name.as_deref(),
            )?;
            eprintln!(
                "mesh: recovered account {}; this device is an administrator",
                a.address
            );
            emit(
                j,
                json!({"address": a.address, "profile_udf": a.profile_udf}),
                &a.profile_udf,
            );
        }
    }
    Ok(())
}

/// `mesh account show`.
fn show(home: &std::path::Path, j: bool) -> Result<()> {
    let store = Store::open(home, false)?;
    let a = mesh_account::account(&store)?;
    let dev = store.state().device.clone();
    let roles: Vec<&str> = a.roles.iter().map(|r| r.name()).collect();
    let membership = format!("{:?}", a.membership).to_lowercase();
    emit(
        j,
        json!({
            "address": a.address, "portal": a.portal, "profile_udf": a.profile_udf,
            "device": dev.as_ref().map(|d| &d.udf), "device_name": dev.as_ref().map(|d| &d.name),
            "roles": roles, "membership": membership,
        }),
        &format!(
            "account:  {}\nportal:   {}\nprofile:  {}\ndevice:   {} ({})\nroles:    {}\nstate:    {}",
            a.address,
            a.portal,
            a.profile_udf,
            dev.as_ref().map(|d| d.udf.as_str()).unwrap_or("-"),
            dev.as_ref().map(|d| d.name.as_str()).unwrap_or("-"),
            if roles.is_empty() { "none".to_string() } else { roles.join(",") },
            membership
        ),
    );
    Ok(())
}
