//! Learned hosts in the device home (issue 25): `<home>/ssh-hosts.json`,
//! the map of [`mesh_ssh::hosts`], shared by every agent of the home
//! (`mesh agent run`, `mesh ssh-agent`) and `mesh ssh hosts`.
//!
//! The file is the truth. Each writer (an agent that learned a host, the
//! CLI pinning or forgetting one) takes `<home>/ssh-hosts.lock`, reads the
//! file, applies its changes and writes it atomically, so that no change
//! is lost between writers. An agent loads it at start, takes the merged
//! map after each write, and reloads it within a second when another
//! process changed it (a pin takes effect without a restart). None of this
//! runs on the sign path: the agent hands its changes over a channel.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mesh_ssh::agent::Agent;
use mesh_ssh::hosts::Op;
// The file itself (its lock, load and update) is the channel's, shared
// with `mesh ssh hosts`.
pub use mesh_ssh::hosts_file::{load, path, update, HostsFileError};
use mesh_ssh::hosts_file::{seen, Seen};

/// Keep `agent`'s learned hosts in `home`'s file until aborted: load it,
/// write what the agent learns, reload what others change.
pub fn spawn(home: &Path, agent: Arc<Agent>) -> Option<tokio::task::JoinHandle<()>> {
    if !home.is_dir() {
        return None; // no home: the agent learns in memory only
    }
    let rx = agent.persist_hosts()?;
    Some(tokio::spawn(persist(home.to_path_buf(), agent, rx)))
}

async fn persist(home: PathBuf, agent: Arc<Agent>, mut rx: tokio::sync::mpsc::Receiver<Op>) {
    let mut last: Seen = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let ops = tokio::select! {
            op = rx.recv() => match op {
                Some(op) => {
                    let mut ops = vec![op];
                    while let Ok(o) = rx.try_recv() {
                        ops.push(o);
                    }
                    ops
                }
                None => return,
            },
            _ = tick.tick() => {
                if seen(&home) == last {
                    continue;
                }
                Vec::new()
            }
        };
        let h = home.clone();
        match tokio::task::spawn_blocking(move || update(&h, &ops, true)).await {
            Ok(Ok((map, s))) => {
                agent.set_hosts(map);
                last = s;
            }
            Ok(Err(e)) => {
                crate::agent_log::line(&format!("learned hosts: {e} (hint: {})", e.hint()));
                // Not again each second for the same file.
                last = seen(&home);
            }
            Err(_) => return,
        }
    }
}
