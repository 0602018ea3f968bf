//! The agent's log: one line per event, with its UTC time, on the agent's
//! standard error (the file in its runtime directory when `mesh agent
//! start` started it, the journal under systemd). What a user reads when
//! a device stops working: sync errors and refusals (each once, until it
//! changes or clears), revocations, wipes, epoch changes, rotations.

use mesh_account::AccountError;

/// Seconds since the Unix epoch as RFC 3339 (UTC), or the seconds when
/// they are out of range.
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Write one line to the log, after the time.
pub fn line(message: &str) {
    eprintln!(
        "{} mesh agent: {message}",
        rfc3339(mesh_account::client::now())
    );
}

/// A sync error as the log says it: a refusal of what the portal returned
/// is named so, and the error's hint follows.
pub fn sync_error(e: &AccountError) -> String {
    let what = match e {
        AccountError::Untrusted(_)
        | AccountError::History(_)
        | AccountError::Stale(_)
        | AccountError::Witness { .. } => "sync refused",
        _ => "sync failed",
    };
    match e.hint() {
        Some(h) => format!("{what}: {e} (hint: {h})"),
        None => format!("{what}: {e}"),
    }
}

/// The sync errors already logged: each is written once, until the error
/// changes or a sync succeeds (a portal that is down is retried every few
/// seconds; the log must stay readable).
#[derive(Debug, Default)]
pub struct Errors {
    last: Option<String>,
}

impl Errors {
    /// A failed sync: log it unless it is the one logged last.
    pub fn failed(&mut self, message: String) {
        if self.last.as_ref() != Some(&message) {
            line(&message);
            self.last = Some(message);
        }
    }

    /// A sync that worked: say so when the last one had failed.
    pub fn ok(&mut self) {
        if self.last.take().is_some() {
            line("sync works again");
        }
    }
}
