//! The daemon's audit sink: the agent hands each signature decision over a
//! bounded queue; one thread numbers the record,
//! appends it to `<home>/audit.log` and syncs the file once per burst, so
//! the sign path never waits for the disk. A full queue (a flood of
//! requests) makes the sign path wait rather than drop a record.

use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use mesh_account::audit_log::AuditLog;
use mesh_ssh::audit::{AuditSink, SignEvent};

/// Decisions queued before the sign path waits for the writer.
const QUEUE: usize = 4096;
/// Records written between two syncs of the file, at most.
const BURST: usize = 1024;

struct Writer(SyncSender<SignEvent>);

impl AuditSink for Writer {
    fn record(&self, event: SignEvent) {
        // Err: the writer stopped (it said why in the agent's log).
        let _ = self.0.send(event);
    }
}

/// Open the log in `home` and start its writer; `None` (said in the
/// agent's log) when the log cannot be opened.
pub(super) fn start(home: &Path) -> Option<Arc<dyn AuditSink>> {
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
    let (tx, rx) = sync_channel::<SignEvent>(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("mesh-audit".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let burst = std::iter::once(first).chain(rx.try_iter().take(BURST - 1));
                for e in burst {
                    let record = e.record(log.next_seq());
                    if let Err(err) = log.append(&record) {
                        crate::agent_log::line(&format!("audit log: {err}"));
                    }
                }
                if let Err(err) = log.sync() {
                    crate::agent_log::line(&format!("audit log: {err}"));
                }
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
