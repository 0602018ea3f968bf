//! `mesh audit`: the signature audit log (PROTOCOL.md §16). On an
//! administrator device, every device's log as the portal holds it, each
//! chain checked; elsewhere (or with `--local`), this device's own file.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use mesh_account::audit_log;
use mesh_account::audit_sync::{self, DeviceLog};
use mesh_account::store::Store;
use mesh_core::audit::{Decision, Record};
use mesh_core::objects::Role;
use mesh_ssh::audit::{Detail, Kind};
use serde_json::json;

use super::{emit, hinted};
use crate::cli::{AuditArgs, AuditCmd, AuditSince};

pub(crate) fn run(home: &Path, args: AuditArgs, json_mode: bool) -> Result<()> {
    let local = match &args.command {
        Some(AuditCmd::Verify { local }) => *local || args.local,
        None => args.local,
    };
    let portal = !local && is_admin(home)?;
    match (args.command, portal) {
        (Some(AuditCmd::Verify { .. }), true) => verify_all(home, json_mode),
        (Some(AuditCmd::Verify { .. }), false) => verify_local(home, json_mode),
        (None, true) => show_all(home, &args.device, args.since, json_mode),
        (None, false) => {
            if args.device.is_some() {
                return Err(hinted(
                    "--device reads other devices' logs, which only administrators can open",
                    "run it on an administrator device, or leave --device out for this device's log",
                ));
            }
            show(&local_records(home)?, args.since, json_mode)
        }
    }
}

/// The error, with its hint when it has one.
fn with_hint(e: audit_sync::AuditError) -> anyhow::Error {
    match e.hint() {
        Some(h) => hinted(e.to_string(), h),
        None => anyhow::anyhow!("{e}"),
    }
}

fn is_admin(home: &Path) -> Result<bool> {
    let store = Store::open(home, false)?;
    Ok(match mesh_account::account(&store) {
        Ok(a) => a.roles.contains(&Role::ADMIN),
        Err(mesh_account::AccountError::NoAccount) => false,
        Err(e) => return Err(e.into()),
    })
}

fn local_records(home: &Path) -> Result<Vec<Record>> {
    let (bytes, _) = audit_log::read(home, 0)?;
    bytes
        .iter()
        .map(|b| serde_json::from_slice(b).context("reading the audit log"))
        .collect()
}

fn since(records: &[Record], since: Option<AuditSince>) -> Vec<&Record> {
    let from = since.map_or(0, |s| s.at(mesh_account::client::now()));
    records.iter().filter(|r| r.time >= from).collect()
}

fn show(records: &[Record], within: Option<AuditSince>, json_mode: bool) -> Result<()> {
    let shown = since(records, within);
    if json_mode {
        emit(true, serde_json::to_value(&shown)?, "");
        return Ok(());
    }
    for r in &shown {
        out!("{}", line(r));
    }
    if shown.is_empty() {
        eprintln!(
            "no signatures logged{}",
            if within.is_some() {
                " in that time"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn portal_logs(home: &Path, device: &Option<String>) -> Result<Vec<DeviceLog>> {
    let mut store = Store::open(home, false)?;
    let logs = audit_sync::read_all(&mut store).map_err(with_hint)?;
    let logs: Vec<DeviceLog> = logs
        .into_iter()
        .filter(|l| device.as_ref().is_none_or(|d| *d == l.name))
        .collect();
    if let (Some(d), true) = (device, logs.is_empty()) {
        return Err(hinted(
            format!("no device named {d} in the account"),
            "`mesh device list` shows the devices' names",
        ));
    }
    Ok(logs)
}

fn show_all(
    home: &Path,
    device: &Option<String>,
    within: Option<AuditSince>,
    json_mode: bool,
) -> Result<()> {
    let logs = portal_logs(home, device)?;
    if json_mode {
        let v: Vec<serde_json::Value> = logs
            .iter()
            .map(|l| match &l.log {
                Ok(v) => json!({"device": l.device, "name": l.name, "records": since(&v.records, within)}),
                Err(f) => json!({"device": l.device, "name": l.name, "fault": f.to_string()}),
            })
            .collect();
        emit(true, json!(v), "");
        return Ok(());
    }
    for l in &logs {
        match &l.log {
            Ok(v) => {
                for r in since(&v.records, within) {
                    out!("{:12} {}", l.name, line(r));
                }
            }
            Err(f) => eprintln!("mesh: device {}: {f}", l.name),
        }
    }
    Ok(())
}

fn verify_all(home: &Path, json_mode: bool) -> Result<()> {
    let logs = portal_logs(home, &None)?;
    let faults: Vec<String> = logs
        .iter()
        .filter_map(|l| {
            l.log
                .as_ref()
                .err()
                .map(|f| format!("device {}: {f}", l.name))
        })
        .collect();
    let v: Vec<serde_json::Value> = logs
        .iter()
        .map(|l| match &l.log {
            Ok(v) => json!({"device": l.device, "name": l.name, "records": v.records.len(),
                            "head": data_encoding::HEXLOWER.encode(&v.head)}),
            Err(f) => json!({"device": l.device, "name": l.name, "fault": f.to_string()}),
        })
        .collect();
    let text: Vec<String> = logs
        .iter()
        .filter_map(|l| {
            l.log.as_ref().ok().map(|v| {
                format!(
                    "{}: {} records chain from the first",
                    l.name,
                    v.records.len()
                )
            })
        })
        .collect();
    emit(json_mode, json!(v), &text.join("\n"));
    if faults.is_empty() {
        return Ok(());
    }
    Err(hinted(
        format!("the portal's audit logs are not the ones the devices wrote: {}", faults.join("; ")),
        "the portal (or its database) dropped, reordered or changed what it holds; the device still has its own log (`mesh audit --local` on it)",
    ))
}

/// One record as a line: when, the decision, what, with which key, from where.
fn line(r: &Record) -> String {
    let decision = match r.decision {
        Decision::Allowed => "allowed",
        Decision::Confirmed => "confirmed",
        Decision::Refused => "refused",
        Decision::Unknown => "?",
    };
    // The SSH channel's account of the request (the only channel that
    // logs signatures today).
    let d = Detail::of(r);
    let what = match &d {
        Some(Detail {
            kind: Kind::Login,
            user,
            host_key,
            ..
        }) => format!(
            "login {}@{}",
            user.as_deref().unwrap_or("?"),
            host_key.as_deref().unwrap_or("unbound")
        ),
        Some(Detail {
            kind: Kind::Sshsig,
            namespace,
            ..
        }) => format!("sshsig {}", namespace.as_deref().unwrap_or("?")),
        Some(Detail {
            kind: Kind::Other, ..
        }) => "other".into(),
        _ => "?".into(),
    };
    let mut s = format!(
        "{} {:>6} {decision:9} {what} key {}",
        mesh_agent::agent_log::rfc3339(r.time),
        r.seq,
        r.key
    );
    if let Some(d) = d.filter(|d| !d.hops.is_empty()) {
        s.push_str(&format!(" via {}", d.hops.join(",")));
    }
    if let Some(p) = &r.process {
        s.push_str(&format!(" by {p}"));
    }
    s
}

/// This device's log file, and what the portal holds of what it sent
/// (when the device is a member: the portal's answer is counted, since
/// only administrators can open it).
fn verify_local(home: &Path, json_mode: bool) -> Result<()> {
    let (bytes, head) = audit_log::read(home, 0)?;
    let head = data_encoding::HEXLOWER.encode(&head);
    let store = Store::open(home, false)?;
    let member = matches!(
        mesh_account::account(&store),
        Ok(a) if a.membership == mesh_account::Membership::Member
    );
    let own = if member {
        Some(audit_sync::check_own(&store).map_err(with_hint)?)
    } else {
        None
    };
    let mut text = format!("{} records chain from the first; head {head}", bytes.len());
    if let Some(o) = &own {
        text.push_str(&format!(
            "\nthe portal holds {} of the {} records sent",
            o.held_records, o.sent_records
        ));
    }
    emit(
        json_mode,
        json!({"records": bytes.len(), "head": head,
               "sent": own.as_ref().map(|o| o.sent_records),
               "held": own.as_ref().map(|o| o.held_records)}),
        &text,
    );
    match own.and_then(|o| o.fault) {
        None => Ok(()),
        Some(f) => Err(hinted(
            format!("the portal does not hold what this device sent: {f}"),
            "the portal (or its database) dropped or changed this device's audit batches; its own log is intact here",
        )),
    }
}
