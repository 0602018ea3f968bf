//! The daemon's audit sink: the agent hands each signature decision over a
//! bounded queue; one thread gathers them for a few milliseconds, numbers
//! them, appends them to `<home>/audit.log` in one write, and flushes the
//! file to the disk at most once a second (and before the agent exits), so
//! the sign path never waits for the disk and a busy agent pays one wake-up
//! per gathering, not per signature. A full queue (a flood of requests)
//! makes the sign path wait rather than drop a record.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use mesh_account::audit_log::AuditLog;
use mesh_ssh::audit::{AuditSink, SignEvent};
use tokio::sync::Notify;

/// Decisions queued before the sign path waits for the writer.
const QUEUE: usize = 1024;
/// Records written in one write, at most.
const BURST: usize = 8192;
/// How long the writer gathers after the first decision of a burst.
const GATHER: Duration = Duration::from_millis(5);
/// The longest a written record waits for the flush to the disk.
const DURABLE: Duration = Duration::from_secs(1);

enum Msg {
    Event(SignEvent),
    /// Answer once everything before is on disk.
    Flush(SyncSender<()>),
}

struct Writer(SyncSender<Msg>);

impl AuditSink for Writer {
    fn record(&self, event: SignEvent) {
        // Err: the writer stopped (it said why in the agent's log).
        let _ = self.0.send(Msg::Event(event));
    }

    fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        if self.0.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// Open the log in `home` and start its writer, which notifies `written`
/// after each burst; `None` (said in the agent's log) when the log cannot
/// be opened.
pub(super) fn start(home: &Path, written: Arc<Notify>) -> Option<Arc<dyn AuditSink>> {
    let log = match AuditLog::open(home) {
        Ok(l) => l,
        Err(e) => {
            let hint = e
                .hint()
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default();
            crate::agent_log::line(&format!("signatures are not logged: {e}{hint}"));
            return None;
        }
    };
    let (tx, rx) = sync_channel::<Msg>(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("mesh-audit".into())
        .spawn(move || write_loop(log, rx, written));
    match spawned {
        Ok(_) => Some(Arc::new(Writer(tx))),
        Err(e) => {
            crate::agent_log::line(&format!("signatures are not logged: {e}"));
            None
        }
    }
}

/// The writer: gather a burst, write it, flush to the disk when a second
/// passed since the last flush, when asked, or when idle with records
/// written but not yet flushed; until every sender is gone.
fn write_loop(mut log: AuditLog, rx: Receiver<Msg>, written: Arc<Notify>) {
    let report = |r: Result<(), mesh_account::audit_log::AuditLogError>| {
        if let Err(err) = r {
            crate::agent_log::line(&format!("audit log: {err}"));
        }
    };
    let mut unsynced = false;
    let mut flushed_at = Instant::now();
    loop {
        let first = match rx.recv_timeout(DURABLE) {
            Ok(m) => m,
            Err(e) => {
                if unsynced {
                    report(log.sync());
                    unsynced = false;
                    flushed_at = Instant::now();
                }
                if e == RecvTimeoutError::Disconnected {
                    return;
                }
                continue;
            }
        };
        std::thread::sleep(GATHER);
        let mut flushed = Vec::new();
        for m in std::iter::once(first).chain(rx.try_iter().take(BURST - 1)) {
            match m {
                Msg::Event(e) => report(log.append(&e.record(log.next_seq()))),
                Msg::Flush(done) => flushed.push(done),
            }
        }
        if !flushed.is_empty() || flushed_at.elapsed() >= DURABLE {
            report(log.sync());
            unsynced = false;
            flushed_at = Instant::now();
        } else {
            report(log.write());
            unsynced = true;
        }
        for done in flushed {
            let _ = done.send(());
        }
        written.notify_one();
    }
}

/// The pause in signing an upload waits for.
const SETTLE: Duration = Duration::from_secs(5);
/// The longest an upload waits for that pause while signatures go on, and
/// the time between two tries when nothing new was written (a portal that
/// was away, a batch that was refused).
const RETRY: Duration = Duration::from_secs(60);

/// Send the log's new records to the portal (`audit_sync::upload`) once
/// signing pauses for [`SETTLE`] (a busy agent's uploads do not take the
/// cores its signatures need), at most [`RETRY`] after they were written,
/// and every [`RETRY`] while some are left; an error is said in the
/// agent's log once, until it changes.
pub(super) async fn upload_loop(home: PathBuf, written: Arc<Notify>, stop: Arc<super::Shared>) {
    let mut said: Option<String> = None;
    loop {
        tokio::select! {
            _ = written.notified() => {
                let due = tokio::time::Instant::now() + RETRY;
                loop {
                    tokio::select! {
                        _ = written.notified() => {}
                        _ = tokio::time::sleep(SETTLE) => break,
                        _ = tokio::time::sleep_until(due) => break,
                    }
                }
            }
            _ = tokio::time::sleep(RETRY) => {}
            _ = stop.stop.notified() => return,
        }
        let h = home.clone();
        let r = tokio::task::spawn_blocking(move || {
            let store = mesh_account::store::Store::open(&h, false).map_err(|e| e.to_string())?;
            mesh_account::audit_sync::upload(&store).map_err(|e| match e.hint() {
                Some(hint) => format!("{e} (hint: {hint})"),
                None => e.to_string(),
            })
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match r {
            Ok(_) => said = None,
            Err(e) if said.as_deref() != Some(e.as_str()) => {
                crate::agent_log::line(&format!("audit log not sent: {e}"));
                said = Some(e);
            }
            Err(_) => {}
        }
    }
}
