//! `mesh audit`: this device's signature audit log (PROTOCOL.md §16), as
//! the agent wrote it in `<home>/audit.log`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use mesh_account::audit_log;
use mesh_core::audit::{Decision, Kind, Record};
use serde_json::json;

use super::emit;
use crate::cli::{AuditArgs, AuditCmd};

pub(crate) fn run(home: &Path, args: AuditArgs, json_mode: bool) -> Result<()> {
    match args.command {
        Some(AuditCmd::Verify) => verify(home, json_mode),
        None => show(home, args.since, json_mode),
    }
}

fn records(home: &Path) -> Result<Vec<Record>> {
    let (bytes, _) = audit_log::read(home, 0)?;
    bytes
        .iter()
        .map(|b| serde_json::from_slice(b).context("reading the audit log"))
        .collect()
}

fn show(home: &Path, since: Option<u64>, json_mode: bool) -> Result<()> {
    let from = since.map_or(0, |s| mesh_account::client::now().saturating_sub(s));
    let shown: Vec<Record> = records(home)?
        .into_iter()
        .filter(|r| r.time >= from)
        .collect();
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
            if since.is_some() { " in that time" } else { "" }
        );
    }
    Ok(())
}

/// One record as a line: when, the decision, what, with which key, from where.
fn line(r: &Record) -> String {
    let decision = match r.decision {
        Decision::Allowed => "allowed",
        Decision::Confirmed => "confirmed",
        Decision::Refused => "refused",
        Decision::Unknown => "?",
    };
    let what = match r.kind {
        Kind::Login => format!(
            "login {}@{}",
            r.user.as_deref().unwrap_or("?"),
            r.host_key.as_deref().unwrap_or("unbound")
        ),
        Kind::Sshsig => format!("sshsig {}", r.namespace.as_deref().unwrap_or("?")),
        Kind::Other => "other".into(),
        Kind::Unknown => "?".into(),
    };
    let mut s = format!(
        "{} {:>6} {decision:9} {what} key {}",
        mesh_agent::agent_log::rfc3339(r.time),
        r.seq,
        r.key
    );
    if !r.hops.is_empty() {
        s.push_str(&format!(" via {}", r.hops.join(",")));
    }
    if let Some(p) = &r.process {
        s.push_str(&format!(" by {p}"));
    }
    s
}

fn verify(home: &Path, json_mode: bool) -> Result<()> {
    let (bytes, head) = audit_log::read(home, 0)?;
    let head = data_encoding::HEXLOWER.encode(&head);
    emit(
        json_mode,
        json!({"records": bytes.len(), "head": head}),
        &format!("{} records chain from the first; head {head}", bytes.len()),
    );
    Ok(())
}
