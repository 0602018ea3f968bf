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
            recovery,
            threshold,
            shares,
            witness,
            invite,
        } => {
            let (kit, shares) = mesh_agent::recovery::KitTarget::parse(&recovery, shares, home)?;
            if !(2..=15).contains(&threshold) || threshold > shares || shares > 15 {
                return Err(hinted(
                    format!("{threshold} of {shares} recovery shares"),
                    "use 2 <= --threshold <= --shares <= 15 (one --recovery directory per share)",
                ));
            }
            create(
                home,
                &kit,
                NewAccountArgs {
                    address,
                    portal,
                    name,
                    device,
                    threshold,
                    shares,
                    witness,
                    invite: match invite.as_deref() {
                        None => None,
                        Some("-") => Some(secrets::read_one(None, "invitation code")?),
                        Some(_) => {
                            return Err(secrets::on_argv(
                                "an invitation code",
                                "echo \"$CODE\" | mesh account create ADDRESS --portal URL --recovery D1,D2,D3 --invite",
                            ))
                        }
                    },
                },
                j,
            )?;
        }
        AccountCmd::Show => show(home, j)?,
        AccountCmd::History {
            address,
            portal,
            account,
        } => history(&address, &portal, account.as_deref(), j)?,
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
        AccountCmd::Heartbeat { every } => {
            let mut store = Store::open(home, false)?;
            mesh_account::admin::set_heartbeat(&mut store, &mesh_agent::host(), every.0)?;
            match every.0 {
                Some(s) => eprintln!(
                    "mesh: promised a checkpoint at least every {s} s; devices and servers refuse the account when its newest is {} s old",
                    2 * s
                ),
                None => eprintln!("mesh: no heartbeat promised: readers no longer bound the account's age"),
            }
            emit(j, json!({"every": every.0}), "");
        }
        AccountCmd::Recover {
            address,
            portal,
            name,
            from,
            revoke,
            since,
            dry_run,
            shares,
        } => {
            if !shares.is_empty() {
                return Err(secrets::on_argv(
                    "recovery shares",
                    "mesh account recover ADDRESS --portal URL --from SHARE_FILE --from ANOTHER",
                ));
            }
            let shares = secrets::read_lines_from(&from, "recovery shares")?;
            let mut store = Store::open(home, true)?;
            let r = mesh_account::recover::recover(
                &mut store,
                &mesh_agent::host(),
                &address,
                &portal,
                &shares,
                name.as_deref(),
                &mesh_account::recover::Overrides {
                    revoke: revoke.clone(),
                    since,
                    dry_run,
                },
            )?;
            if let Some(u) = &r.undo {
                show_undo(u, r.account.is_some());
            }
            let Some(a) = r.account else {
                eprintln!("mesh: dry run: nothing was written");
                emit(j, json!({"undo": r.undo}), "");
                return Ok(());
            };
            eprintln!(
                "mesh: recovered account {}; this device is an administrator of a new epoch",
                a.address
            );
            if !revoke.is_empty() {
                eprintln!("mesh: revoked: {}", revoke.join(", "));
            }
            emit(
                j,
                json!({"address": a.address, "profile_udf": a.profile_udf, "undo": r.undo}),
                &a.profile_udf,
            );
        }
    }
    Ok(())
}

/// What `mesh account create` was given.
struct NewAccountArgs {
    address: String,
    portal: String,
    name: Option<String>,
    device: Option<String>,
    threshold: u8,
    shares: u8,
    witness: Option<String>,
    invite: Option<zeroize::Zeroizing<String>>,
}

/// `mesh account create`: the kit goes to `kit` before the portal binds
/// the account; a refused Bind removes it.
fn create(
    home: &std::path::Path,
    kit: &mesh_agent::recovery::KitTarget,
    args: NewAccountArgs,
    j: bool,
) -> Result<()> {
    use mesh_agent::recovery::{write_kit, KitTarget, Written};
    let NewAccountArgs {
        address,
        portal,
        name,
        device,
        threshold,
        shares,
        witness,
        invite,
    } = args;
    let mut store = Store::open(home, true)?;
    let mut written = Written::default();
    let a = join::create(
        &mut store,
        &mesh_agent::host(),
        join::NewAccount {
            address: &address,
            portal: &portal,
            name,
            device_name: device.as_deref(),
            recovery: join::Recovery { threshold, shares },
            witness: witness.as_deref(),
            invite,
        },
        |list| {
            written = write_kit(kit, &address, &portal, threshold, list)?;
            Ok(())
        },
    );
    let a = match a {
        Ok(a) => a,
        // The portal refused the account: the kit is for a root nothing
        // uses. After a transport error it stays: the account may exist.
        Err(e @ AccountError::Client(mesh_account::client::ClientError::Refused { .. })) => {
            written.remove();
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "mesh: created account {} at {}; this device is its administrator",
        a.address, a.portal
    );
    match kit {
        KitTarget::Dirs(d) => eprintln!(
            "mesh: the recovery kit is in {}, one share each: any {threshold} of the {shares} shares rebuild the account; no device keeps them. Keep them apart, off this machine.",
            d.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
        KitTarget::Stdout => eprintln!(
            "mesh: the recovery kit was printed above: any {threshold} of its {shares} shares rebuild the account; no device keeps them. Store them apart, now."
        ),
    }
    if !matches!(kit, KitTarget::Stdout) || j {
        emit(
            j,
            json!({"address": a.address, "portal": a.portal, "profile_udf": a.profile_udf, "recovery": written.files}),
            &a.profile_udf,
        );
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

/// A time as RFC 3339, or the seconds when it has none.
fn rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// What `recover --since` turns back (stderr: messages).
fn show_undo(u: &mesh_account::recover::Undo, done: bool) {
    let verb = if done { "turned" } else { "would turn" };
    eprintln!(
        "mesh: --since resolves to checkpoint @{} ({}); the recovery {verb} back {} checkpoint(s) after it:",
        u.serial,
        rfc3339(u.issued),
        u.undone.len()
    );
    for (serial, issued) in &u.undone {
        let what = u
            .lines
            .iter()
            .find(|l| l.serial == *serial)
            .map(|l| l.actions.join("; "))
            .unwrap_or_default();
        eprintln!("mesh:   @{serial} {}  {what}", rfc3339(*issued));
    }
    for (what, names) in [
        ("revoked (added since)", &u.revoked),
        ("active again (revoked since)", &u.restored),
    ] {
        if !names.is_empty() {
            eprintln!("mesh:   {what}: {}", names.join(", "));
        }
    }
}

/// `mesh account history`: one line per checkpoint.
fn history(address: &str, portal: &str, pinned: Option<&str>, j: bool) -> Result<()> {
    let lines = mesh_account::chronicle::history(&mesh_agent::host(), address, portal, pinned)?;
    if j {
        out!("{}", serde_json::to_value(&lines)?);
        return Ok(());
    }
    for l in &lines {
        out!(
            "@{:<5} {}  {}",
            l.serial,
            rfc3339(l.issued),
            l.actions.join("; ")
        );
    }
    Ok(())
}
