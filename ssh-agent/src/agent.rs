//! The agent's keys and what it does with each request (RFC 9987; OpenSSH
//! PROTOCOL.agent for the extensions).
//!
//! Two kinds of identities: the device's Mesh key (and its certificate),
//! which come from the device's profile and are replaced whenever sync
//! changes them; and keys added with `ssh-add`, held in memory only, with
//! their lifetime, confirmation and destination constraints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::keys::SigningKey as MeshKey;
use ssh_agent_lib::proto::extension::{DestinationConstraint, QueryResponse};
use ssh_agent_lib::proto::{
    Extension, Identity, KeyConstraint, PublicCredential, Request, Response,
};
use ssh_encoding::{Decode, Encode};
use ssh_key::public::KeyData;
use ssh_key::{Certificate, Signature};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::dest;
pub use crate::dest::{Connection, MAX_BINDS, MAX_DEST_CONSTRAINTS};
use crate::forward::ForwardPolicy;
use crate::keys::{KeyError, Material, NewKey};
use crate::wire::{KeyReply, KeyRequest};

mod batch;
mod learn;
mod sign;
mod smartcard;
#[cfg(test)]
mod test_support;

/// Most identities the agent holds (OpenSSH's `MAX_AGENT_IDENTITIES` bounds clients similarly).
pub const MAX_IDENTITIES: usize = 1024;
const LOCK_ITERATIONS: u32 = 100_000;

/// What signs for an identity.
enum Signer {
    /// The device's co-generated Mesh key.
    Mesh(Arc<MeshKey>),
    /// A key added with `ssh-add` (Ed25519, ECDSA, RSA).
    Key(Material),
    /// A security key: its private serialization and the provider that signs.
    Sk(Vec<u8>, String),
    /// A key on a PKCS#11 token (`ssh-add -s`): the token signs.
    Pkcs11(crate::pkcs11::TokenKey),
}

struct Held {
    /// The public key (plain).
    key: KeyData,
    /// The public key or certificate blob, as the client sent it: what is
    /// listed and what requests name.
    blob: Vec<u8>,
    comment: String,
    signer: Arc<Signer>,
    from_mesh: bool,
    expires: Option<Instant>,
    confirm: bool,
    destinations: Vec<DestinationConstraint>,
    /// The plain key's SHA-256 fingerprint (what learned hosts name).
    fp: String,
    /// A certificate's `valid_before` (seconds since the Unix epoch): it is
    /// neither listed nor used from then on, and dropped.
    valid_before: Option<u64>,
}

impl Held {
    fn matches(&self, blob: &[u8]) -> bool {
        self.blob == blob
    }

    fn expired(&self, now: u64) -> bool {
        self.valid_before.is_some_and(|v| now >= v)
    }
}

/// The fingerprint and certificate expiry of an identity.
fn identity_meta(key: &KeyData, blob: &[u8]) -> (String, Option<u64>) {
    (
        key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        crate::keys::cert_valid_before(blob),
    )
}

/// A Mesh identity handed to the agent by the device.
pub struct MeshIdentity {
    /// The device's SSH key.
    pub key: Arc<MeshKey>,
    /// Its certificate from the account's CA, if any.
    pub cert: Option<Certificate>,
    /// Comment shown by `ssh-add -l`.
    pub comment: String,
    /// Ask the user (`SSH_ASKPASS`) before each use (the account's policy).
    pub confirm: bool,
}

impl std::fmt::Debug for MeshIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshIdentity")
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

/// The public ssh form of a Mesh Ed25519 key.
pub fn mesh_public(key: &MeshKey) -> KeyData {
    KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(
        key.verifying_key().to_bytes(),
    ))
}

struct Lock {
    salt: [u8; 16],
    hash: Zeroizing<[u8; 32]>,
}

#[derive(Default)]
struct State {
    held: Vec<Held>,
    lock: Option<Lock>,
    failed_unlocks: u32,
    /// PKCS#11 providers loaded with `ssh-add -s`.
    providers: Vec<Arc<crate::pkcs11::Provider>>,
    /// The account's forwarding policy, once a sync handed it over.
    forwarding: Option<ForwardPolicy>,
}

/// The agent, shared by every connection.
pub struct Agent {
    state: Mutex<State>,
    askpass: Option<std::path::PathBuf>,
    /// Unlock attempts take turns, across every connection, delay included:
    /// parallel connections do not multiply the guessing rate.
    unlock_gate: Mutex<()>,
    /// Provider loads and unloads take turns (a module is initialised once).
    pkcs11_gate: Mutex<()>,
    /// ssh-agent's command line (`-t`, `-E`, `-P`, `-O`): set before serving.
    options: crate::options::AgentOptions,
    /// Where refusals are logged (the agent's log), if anywhere.
    log: Option<fn(&str)>,
    /// Which identity each host accepts (see [`crate::hosts`]).
    hosts: learn::Hosts,
    /// Confirmations that cover several requests.
    batches: batch::Batches,
    /// Where each signature decision is reported (the audit log), if anywhere.
    audit: Option<Arc<dyn crate::audit::AuditSink>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").finish_non_exhaustive()
    }
}

fn pbkdf(pass: &[u8], salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(pass, salt, LOCK_ITERATIONS, &mut out[..]);
    out
}

impl Default for Agent {
    fn default() -> Self {
        // As OpenSSH's agent: SSH_ASKPASS, else the system's ssh-askpass.
        let askpass = std::env::var_os("SSH_ASKPASS").map(Into::into).or_else(|| {
            [
                "/usr/bin/ssh-askpass",
                "/usr/lib/ssh/ssh-askpass",
                "/usr/libexec/openssh/ssh-askpass",
            ]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file())
        });
        Agent::new(askpass)
    }
}

impl Agent {
    /// An empty agent; `askpass` confirms uses of `-c` keys.
    pub fn new(askpass: Option<std::path::PathBuf>) -> Agent {
        Agent {
            state: Mutex::new(State::default()),
            askpass,
            unlock_gate: Mutex::new(()),
            pkcs11_gate: Mutex::new(()),
            options: crate::options::AgentOptions::default(),
            log: None,
            hosts: learn::Hosts::default(),
            batches: batch::Batches::default(),
            audit: None,
        }
    }

    /// Wait until the audit sink has every decision so far on disk; for
    /// an agent about to exit. It blocks: call it off the runtime's
    /// workers or from `block_in_place`.
    pub fn flush_audit(&self) {
        if let Some(sink) = &self.audit {
            sink.flush();
        }
    }

    /// Report every signature decision to `sink` (the device's audit log).
    pub fn with_audit(mut self, sink: Arc<dyn crate::audit::AuditSink>) -> Agent {
        self.audit = Some(sink);
        self
    }

    /// Log refusals (a DSA key, a provider not allowed) with `log`.
    pub fn with_log(mut self, log: fn(&str)) -> Agent {
        self.log = Some(log);
        self
    }

    fn log(&self, what: &str, hint: &str) {
        self.log_line(&format!("{what} (hint: {hint})"));
    }

    fn log_line(&self, line: &str) {
        if let Some(log) = self.log {
            log(line);
        }
    }

    /// This agent with ssh-agent's command-line settings.
    pub fn with_options(mut self, options: crate::options::AgentOptions) -> Agent {
        self.options = options;
        self
    }

    /// The settings it runs with (the PKCS#11 allow-list among them).
    pub fn options(&self) -> &crate::options::AgentOptions {
        &self.options
    }

    /// Replace the Mesh identities (after a sync). An empty list drops them
    /// at once: what a revoked device does.
    pub async fn set_mesh_identities(&self, ids: Vec<MeshIdentity>) {
        let mut st = self.state.lock().await;
        st.held.retain(|h| !h.from_mesh);
        for id in ids {
            let key = mesh_public(&id.key);
            let signer = Arc::new(Signer::Mesh(id.key));
            if let Some(blob) = id.cert.and_then(|c| c.to_bytes().ok()) {
                let (fp, valid_before) = identity_meta(&key, &blob);
                st.held.push(Held {
                    key: key.clone(),
                    blob,
                    comment: id.comment.clone(),
                    signer: signer.clone(),
                    from_mesh: true,
                    expires: None,
                    confirm: id.confirm,
                    destinations: Vec::new(),
                    fp,
                    valid_before,
                });
            }
            let blob = key_blob(&key);
            let (fp, valid_before) = identity_meta(&key, &blob);
            st.held.push(Held {
                blob,
                key,
                comment: id.comment,
                signer,
                from_mesh: true,
                expires: None,
                confirm: id.confirm,
                destinations: Vec::new(),
                fp,
                valid_before,
            });
        }
    }

    /// The account's forwarding policy (after each sync; `None`: no account).
    pub async fn set_forwarding(&self, policy: Option<ForwardPolicy>) {
        self.state.lock().await.forwarding = policy;
    }

    /// Number of identities (Mesh and added), for status.
    pub async fn count(&self) -> (usize, usize) {
        let st = self.state.lock().await;
        let mesh = st.held.iter().filter(|h| h.from_mesh).count();
        (mesh, st.held.len() - mesh)
    }

    /// When the next added key expires.
    pub async fn next_expiry(&self) -> Option<Instant> {
        self.state
            .lock()
            .await
            .held
            .iter()
            .filter_map(|h| h.expires)
            .min()
    }

    /// Drop expired keys, and certificates past their `valid_before`.
    pub async fn expire(&self) {
        let (now, unix) = (Instant::now(), unix_now());
        self.state
            .lock()
            .await
            .held
            .retain(|h| h.expires.map(|e| e > now).unwrap_or(true) && !h.expired(unix));
    }

    /// Handle one request decoded by ssh-agent-lib. Key requests are
    /// re-encoded and handled as [`Agent::handle_key`] does (what the
    /// socket uses), so both paths behave the same.
    pub async fn handle(&self, conn: &mut Connection, req: Request) -> Response {
        match req {
            Request::RequestIdentities
            | Request::SignRequest(_)
            | Request::AddIdentity(_)
            | Request::AddIdConstrained(_)
            | Request::RemoveIdentity(_) => {
                let mut body = Vec::new();
                if req.encode(&mut body).is_err() {
                    return Response::Failure;
                }
                let reply = match crate::wire::decode(&body) {
                    Some(Ok(k)) => self.handle_key(conn, k).await,
                    _ => KeyReply::Status(false),
                };
                lib_response(reply)
            }
            Request::RemoveAllIdentities => {
                self.expire().await;
                // Mesh keys are the device's own and come back with the next
                // sync anyway; remove-all removes what ssh-add added.
                let mut st = self.state.lock().await;
                if st.lock.is_some() {
                    return Response::Failure;
                }
                st.held.retain(|h| h.from_mesh);
                Response::Success
            }
            Request::Lock(p) => self.lock(Zeroizing::new(p)).await,
            Request::Unlock(p) => self.unlock(Zeroizing::new(p)).await,
            Request::Extension(e) => self.extension(conn, e).await,
            Request::AddSmartcardKey(k) => self.add_smartcard(conn, k, Vec::new()).await,
            Request::AddSmartcardKeyConstrained(c) => {
                self.add_smartcard(conn, c.key, c.constraints).await
            }
            Request::RemoveSmartcardKey(k) => self.remove_smartcard(k).await,
        }
    }

    /// Handle one key request (list, sign, add, remove).
    pub async fn handle_key(&self, conn: &mut Connection, req: KeyRequest) -> KeyReply {
        self.expire().await;
        match req {
            KeyRequest::Identities => self.identities(conn).await,
            KeyRequest::Sign { blob, data, flags } => self.sign(conn, &blob, &data, flags).await,
            KeyRequest::Add(key, constraints) => {
                KeyReply::Status(self.insert(*key, constraints).await)
            }
            KeyRequest::Remove(blob) => {
                let mut st = self.state.lock().await;
                if st.lock.is_some() {
                    return KeyReply::Status(false);
                }
                let before = st.held.len();
                st.held.retain(|h| h.from_mesh || !h.matches(&blob));
                KeyReply::Status(st.held.len() < before)
            }
            KeyRequest::Refused(e) => {
                self.log(&format!("ssh-add: {e}"), e.hint());
                KeyReply::Status(false)
            }
        }
    }

    async fn identities(&self, conn: &Connection) -> KeyReply {
        let st = self.state.lock().await;
        if st.lock.is_some() {
            return KeyReply::Identities(Vec::new());
        }
        let now = unix_now();
        let listed = st.held.iter().filter(|h| {
            !h.expired(now) && dest::identity_permitted(&h.destinations, conn, None, now)
        });
        // Bound to a host that accepted an identity before: that one first.
        let first = conn.auth_host().and_then(|(host, _)| {
            let (first, generation) = self.hosts.identity_for(host);
            conn.set_listed(generation);
            first
        });
        let ids: Vec<_> = match &first {
            Some(fp) => listed
                .clone()
                .filter(|h| h.fp == *fp)
                .chain(listed.filter(|h| h.fp != *fp))
                .map(|h| (h.blob.clone(), h.comment.clone()))
                .collect(),
            None => listed
                .map(|h| (h.blob.clone(), h.comment.clone()))
                .collect(),
        };
        KeyReply::Identities(ids)
    }

    /// Add a key (replacing the same key or certificate), with its constraints.
    async fn insert(&self, key: NewKey, constraints: Vec<KeyConstraint>) -> bool {
        let Some(Constraints {
            expires,
            confirm,
            destinations,
            provider,
        }) = Constraints::parse(constraints, self.options.default_lifetime)
        else {
            return false;
        };
        let signer = match (key.material, provider) {
            (Material::Sk(k), p) => {
                // OpenSSH's ssh-add always names one; "internal" when none is set.
                let p = p.unwrap_or_else(|| "internal".into());
                match crate::sk::canonical_provider(&p, &self.options.pkcs11_allowlist) {
                    Ok(p) => Signer::Sk(k, p),
                    Err(e) => {
                        self.log(&format!("ssh-add: refused a security key: {e}"), e.hint());
                        return false;
                    }
                }
            }
            (_, Some(_)) => {
                let e = KeyError::Unsupported("with a provider (not a security key)".into());
                self.log(&format!("ssh-add: {e}"), e.hint());
                return false;
            }
            (m, None) => Signer::Key(m),
        };
        let (fp, valid_before) = identity_meta(&key.key, &key.blob);
        let mut st = self.state.lock().await;
        if st.lock.is_some() {
            return false;
        }
        // Adding a key again replaces it (and its constraints).
        st.held.retain(|h| h.from_mesh || !h.matches(&key.blob));
        if st.held.len() >= MAX_IDENTITIES {
            return false;
        }
        st.held.push(Held {
            key: key.key,
            blob: key.blob,
            comment: key.comment,
            signer: Arc::new(signer),
            from_mesh: false,
            expires,
            confirm,
            destinations,
            fp,
            valid_before,
        });
        true
    }

    async fn lock(&self, pass: Zeroizing<String>) -> Response {
        let mut st = self.state.lock().await;
        if st.lock.is_some() {
            return Response::Failure;
        }
        let mut salt = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
        let p = pass.clone();
        let hash = tokio::task::spawn_blocking(move || pbkdf(p.as_bytes(), &salt))
            .await
            .unwrap_or_else(|_| Zeroizing::new([0u8; 32]));
        st.lock = Some(Lock { salt, hash });
        st.failed_unlocks = 0;
        Response::Success
    }

    async fn unlock(&self, pass: Zeroizing<String>) -> Response {
        let _turn = self.unlock_gate.lock().await;
        let (salt, want) = {
            let st = self.state.lock().await;
            let Some(l) = &st.lock else {
                return Response::Failure;
            };
            (l.salt, l.hash.clone())
        };
        let got = tokio::task::spawn_blocking(move || pbkdf(pass.as_bytes(), &salt))
            .await
            .unwrap_or_else(|_| Zeroizing::new([0u8; 32]));
        let ok: bool = got.ct_eq(&*want).into();
        let mut st = self.state.lock().await;
        if ok {
            st.lock = None;
            st.failed_unlocks = 0;
            return Response::Success;
        }
        st.failed_unlocks = st.failed_unlocks.saturating_add(1);
        let delay = Duration::from_millis(100u64 << st.failed_unlocks.min(6));
        drop(st);
        // A growing delay on each wrong passphrase; the next attempt, on any
        // connection, waits for it (the gate is held).
        tokio::time::sleep(delay).await;
        Response::Failure
    }

    async fn extension(&self, conn: &mut Connection, e: Extension) -> Response {
        match e.name.as_str() {
            "query" => {
                let q = QueryResponse {
                    extensions: vec![
                        "query".into(),
                        "session-bind@openssh.com".into(),
                        "restrict-destination-v00@openssh.com".into(),
                    ],
                };
                match Extension::new_message(q) {
                    Ok(m) => Response::ExtensionResponse(m),
                    Err(_) => Response::Failure,
                }
            }
            "session-bind@openssh.com" => {
                if conn.bind(e.details.as_ref()) {
                    Response::Success
                } else {
                    Response::Failure
                }
            }
            _ => Response::Failure,
        }
    }
}

/// What `ssh-add -t/-c/-h` (and a security key's provider) asked for a key.
struct Constraints {
    expires: Option<Instant>,
    confirm: bool,
    destinations: Vec<DestinationConstraint>,
    provider: Option<String>,
}

impl Constraints {
    /// `None` for unknown or malformed constraints: the key is refused
    /// rather than added unconstrained. `default_lifetime`: ssh-agent -t,
    /// for keys added without one.
    fn parse(constraints: Vec<KeyConstraint>, default_lifetime: Option<Duration>) -> Option<Self> {
        let mut out = Constraints {
            expires: default_lifetime.map(|d| Instant::now() + d),
            confirm: false,
            destinations: Vec::new(),
            provider: None,
        };
        for c in constraints {
            match c {
                KeyConstraint::Lifetime(secs) => {
                    out.expires = Some(Instant::now() + Duration::from_secs(u64::from(secs)))
                }
                KeyConstraint::Confirm => out.confirm = true,
                KeyConstraint::Extension(e) if e.name == "sk-provider@openssh.com" => {
                    out.provider = Some(String::from_utf8(e.details.as_ref().to_vec()).ok()?);
                }
                KeyConstraint::Extension(e) => match dest::parse_constraint(&e) {
                    // Given once (OpenSSH refuses a second one too).
                    Some(d) if out.destinations.is_empty() => out.destinations = d,
                    _ => return None,
                },
            }
        }
        Some(out)
    }
}

/// Seconds since the Unix epoch (for host certificate validity).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The wire blob of a plain public key.
fn key_blob(key: &KeyData) -> Vec<u8> {
    let mut out = Vec::new();
    key.encode(&mut out).map(|()| out).unwrap_or_default()
}

/// A key reply as ssh-agent-lib's response (for [`Agent::handle`]).
fn lib_response(reply: KeyReply) -> Response {
    match reply {
        KeyReply::Status(true) => Response::Success,
        KeyReply::Status(false) => Response::Failure,
        KeyReply::Identities(ids) => Response::IdentitiesAnswer(
            ids.into_iter()
                .filter_map(|(blob, comment)| {
                    let credential = PublicCredential::decode(&mut &blob[..]).ok()?;
                    Some(Identity {
                        credential,
                        comment,
                    })
                })
                .collect(),
        ),
        KeyReply::Signature(sig) => match Signature::decode(&mut &sig[..]) {
            Ok(sig) => Response::SignResponse(sig),
            Err(_) => Response::Failure,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_unlocks_take_turns_across_connections() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let agent = Arc::new(Agent::new(None));
            let ok = |r: Response| matches!(r, Response::Success);
            assert!(ok(agent.lock(Zeroizing::new("right".into())).await));
            let start = std::time::Instant::now();
            let tries: Vec<_> = (0..3)
                .map(|_| {
                    let a = agent.clone();
                    tokio::spawn(async move { a.unlock(Zeroizing::new("wrong".into())).await })
                })
                .collect();
            for t in tries {
                assert!(!ok(t.await.expect("join")), "a wrong passphrase unlocked");
            }
            // 200 + 400 + 800 ms one after the other; in parallel they took
            // about 800 ms, however many connections guessed at once.
            assert!(
                start.elapsed() >= Duration::from_millis(1400),
                "{:?}",
                start.elapsed()
            );
            assert!(ok(agent.unlock(Zeroizing::new("right".into())).await));
        });
    }
}
