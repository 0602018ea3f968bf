//! What the agent tells the device's signature audit log (PROTOCOL.md
//! §16): one [`SignEvent`] per signature request for a key it holds, with
//! what it decided. The agent builds the event from the request it already
//! parsed and hands it to an [`AuditSink`], which must not block: the sink
//! (the host) numbers, chains and writes it off the sign path.

use mesh_core::audit::{Decision, Record};
use serde::{Deserialize, Serialize};
use ssh_key::HashAlg;

use crate::dest::{self, Connection};

/// Bytes kept of a user name or namespace (longer ones are cut).
const MAX_FIELD: usize = 256;
/// "SSHSIG" (OpenSSH PROTOCOL.sshsig: the blob to sign starts with it).
const SSHSIG: &[u8] = b"SSHSIG";

/// Where the agent reports its signature decisions.
pub trait AuditSink: Send + Sync {
    /// One decision. Called on the sign path: it must not block.
    fn record(&self, event: SignEvent);

    /// Wait until every decision recorded so far is on disk (the agent
    /// is about to exit).
    fn flush(&self) {}
}

/// What kind of signature the agent was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A login (a userauth request).
    Login,
    /// An SSHSIG signature (git, `ssh-keygen -Y sign`).
    Sshsig,
    /// Anything else.
    Other,
    /// A kind a newer agent wrote.
    #[serde(other)]
    Unknown,
}

/// What the SSH channel says of a request in its record (the record's
/// channel members, PROTOCOL.md §16).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// What was asked.
    #[serde(rename = "Kind")]
    pub kind: Kind,
    /// A login's user name.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The destination's host key: from the hostbound request, else the
    /// connection's last local session-bind.
    #[serde(rename = "HostKey", default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// An SSHSIG signature's namespace.
    #[serde(rename = "Namespace", default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The forwarded hops, nearest first (`unknown` for a bind that failed).
    #[serde(rename = "Hops", default, skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<String>,
}

impl Detail {
    /// The SSH members of a record (`None`: not an SSH record).
    pub fn of(record: &Record) -> Option<Detail> {
        let map: serde_json::Map<String, serde_json::Value> =
            record.detail.clone().into_iter().collect();
        serde_json::from_value(serde_json::Value::Object(map)).ok()
    }
}

/// One signature request for a key the agent holds, and the outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignEvent {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The key's SHA-256 fingerprint (the plain key of a certificate).
    pub key: String,
    /// What the request was.
    pub detail: Detail,
    /// The requesting program (`pid exe`), when the system says.
    pub program: Option<std::sync::Arc<str>>,
    /// The decision.
    pub decision: Decision,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_FIELD)]).into_owned()
}

/// The namespace of an SSHSIG blob: `"SSHSIG" string namespace …`.
fn sshsig_namespace(data: &[u8]) -> Option<String> {
    let rest = data.strip_prefix(SSHSIG)?;
    let n = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    rest.get(4..4 + n).map(text)
}

impl SignEvent {
    /// The event of a request on `conn` to sign `data` with the key `blob`
    /// (fingerprint `key`), decided `decision`.
    pub fn of(
        conn: &Connection,
        blob: &[u8],
        data: &[u8],
        key: String,
        decision: Decision,
        time: u64,
    ) -> SignEvent {
        let login = dest::parse_userauth(data, blob);
        let fp = |k: &dest::HostKey| k.public().fingerprint(HashAlg::Sha256).to_string();
        let mut hops: Vec<String> = Vec::new();
        if conn.is_unknown() {
            hops.push("unknown".into());
        }
        let mut local = None;
        for b in conn.binds() {
            if b.forwarded() {
                hops.push(fp(b.key()));
            } else {
                local = Some(b.key());
            }
        }
        let (kind, namespace) = match (&login, sshsig_namespace(data)) {
            (Some(_), _) => (Kind::Login, None),
            (None, Some(ns)) => (Kind::Sshsig, Some(ns)),
            (None, None) => (Kind::Other, None),
        };
        SignEvent {
            time,
            key,
            detail: Detail {
                kind,
                user: login.as_ref().map(|l| text(l.user)),
                host_key: login
                    .as_ref()
                    .and_then(|l| l.hostkey.as_ref())
                    .or(local)
                    .map(fp),
                namespace,
                hops,
            },
            program: conn.program(),
            decision,
        }
    }

    /// The log's record of it, at `seq`.
    pub fn record(self, seq: u64) -> Record {
        let detail = match serde_json::to_value(&self.detail) {
            Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => Default::default(),
        };
        Record {
            seq,
            time: self.time,
            key: self.key,
            process: self.program.map(|p| p.to_string()),
            decision: self.decision,
            detail,
        }
    }
}
