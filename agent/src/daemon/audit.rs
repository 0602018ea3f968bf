//! The daemon's audit sink: the agent hands each signature decision over a
//! bounded queue; one thread numbers the record,
//! appends it to `<home>/audit.log` and syncs the file once per burst, so
//! the sign path never waits for the disk. A full queue (a flood of
//! requests) makes the sign path wait rather than drop a record.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use mesh_account::audit_log::AuditLog;
use mesh_ssh::audit::{AuditSink, SignEvent};
use tokio::sync::Notify;

/// Decisions queued before the sign path waits for the writer.
const QUEUE: usize = 4096;
/// Records written between two syncs of the file, at most.
const BURST: usize = 1024;

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
    let mut log = match AuditLog::open(home) {
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
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let burst = std::iter::once(first).chain(rx.try_iter().take(BURST - 1));
                let mut flushed = Vec::new();
                for m in burst {
                    match m {
                        Msg::Event(e) => {
                            let record = e.record(log.next_seq());
                            if let Err(err) = log.append(&record) {
                                crate::agent_log::line(&format!("audit log: {err}"));
                            }
                        }
                        Msg::Flush(done) => flushed.push(done),
                    }
                }
                if let Err(err) = log.sync() {
                    crate::agent_log::line(&format!("audit log: {err}"));
                }
                for done in flushed {
                    let _ = done.send(());
                }
                written.notify_one();
            }
        });
    match spawned {
        Ok(_) => Some(Arc::new(Writer(tx))),
        Err(e) => {
            crate::agent_log::line(&format!("signatures are not logged: {e}"));
            None
        }
    }
}

/// Seconds between a burst of signatures and its upload (later ones join it).
const SETTLE: Duration = Duration::from_secs(2);
/// Seconds between two tries when nothing new was written (a portal that
/// was away, a batch that was refused).
const RETRY: Duration = Duration::from_secs(60);

/// Send the log's new records to the portal (`audit_sync::upload`) after
/// each burst the writer reports, and every minute while some are left;
/// an error is said in the agent's log once, until it changes.
pub(super) async fn upload_loop(home: PathBuf, written: Arc<Notify>, stop: Arc<super::Shared>) {
    let mut said: Option<String> = None;
    loop {
        tokio::select! {
            _ = written.notified() => tokio::time::sleep(SETTLE).await,
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
