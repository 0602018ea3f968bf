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
use ssh_agent_lib::proto::extension::{QueryResponse, RestrictDestination, SessionBind};
use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, Extension, Identity, KeyConstraint, PrivateCredential,
    PublicCredential, Request, Response, SignRequest,
};
use ssh_key::private::KeypairData;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, Certificate, HashAlg, Signature};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

mod smartcard;

/// `SSH_AGENT_RSA_SHA2_256`.
pub(crate) const RSA_SHA2_256: u32 = 2;
/// `SSH_AGENT_RSA_SHA2_512`.
pub(crate) const RSA_SHA2_512: u32 = 4;
/// Most identities the agent holds (OpenSSH's `MAX_AGENT_IDENTITIES` bounds clients similarly).
pub const MAX_IDENTITIES: usize = 1024;
/// Most session binds per connection (OpenSSH's `AGENT_MAX_SESSION_IDS`).
pub const MAX_BINDS: usize = 16;
/// Most destination constraints per key (OpenSSH's `AGENT_MAX_DEST_CONSTRAINTS`).
pub const MAX_DEST_CONSTRAINTS: usize = 1024;
const LOCK_ITERATIONS: u32 = 100_000;

/// What signs for an identity.
enum Signer {
    /// The device's co-generated Mesh key.
    Mesh(Arc<MeshKey>),
    /// An added key that ssh-key signs with (Ed25519, ECDSA).
    Ssh(Box<ssh_key::PrivateKey>),
    /// An added RSA key, signed with the `rsa` crate (SHA-2 only).
    Rsa(Box<rsa::RsaPrivateKey>),
    /// A key on a PKCS#11 token (`ssh-add -s`): the token signs.
    Pkcs11(crate::pkcs11::TokenKey),
}

struct Held {
    /// The public key (plain).
    key: KeyData,
    /// The certificate, for certificate identities.
    cert: Option<Box<Certificate>>,
    comment: String,
    signer: Arc<Signer>,
    from_mesh: bool,
    expires: Option<Instant>,
    confirm: bool,
    destinations: Vec<ssh_agent_lib::proto::extension::DestinationConstraint>,
}

impl Held {
    fn credential(&self) -> PublicCredential {
        match &self.cert {
            Some(c) => PublicCredential::Cert(c.clone()),
            None => PublicCredential::Key(self.key.clone()),
        }
    }

    fn matches(&self, cred: &PublicCredential) -> bool {
        match (cred, &self.cert) {
            (PublicCredential::Key(k), None) => *k == self.key,
            (PublicCredential::Cert(c), Some(mine)) => c.as_ref() == mine.as_ref(),
            _ => false,
        }
    }
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
}

/// Per-connection state: the sessions this connection is bound to.
#[derive(Debug, Default)]
pub struct Connection {
    binds: Vec<(KeyData, Vec<u8>, bool)>,
    /// A bind failed: refuse constrained keys for the rest of the connection.
    bind_failed: bool,
}

/// The agent, shared by every connection.
pub struct Agent {
    state: Mutex<State>,
    askpass: Option<std::path::PathBuf>,
    /// Unlock attempts take turns, across every connection, delay included:
    /// parallel connections do not multiply the guessing rate.
    unlock_gate: Mutex<()>,
    /// ssh-agent's command line (`-t`, `-E`, `-P`, `-O`): set before serving.
    options: crate::options::AgentOptions,
    /// Provider loads and unloads take turns (a module is initialised once).
    pkcs11_gate: Mutex<()>,
    /// Where refusals worth a line go (the daemon's log).
    log: fn(&str),
}

fn log_stderr(message: &str) {
    eprintln!("mesh ssh-agent: {message}");
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
            options: crate::options::AgentOptions::default(),
            pkcs11_gate: Mutex::new(()),
            log: log_stderr,
        }
    }

    /// Where the agent writes refusals worth a log line (standard error by default).
    pub fn set_log(&mut self, log: fn(&str)) {
        self.log = log;
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
            if let Some(cert) = id.cert {
                st.held.push(Held {
                    key: key.clone(),
                    cert: Some(Box::new(cert)),
                    comment: id.comment.clone(),
                    signer: signer.clone(),
                    from_mesh: true,
                    expires: None,
                    confirm: id.confirm,
                    destinations: Vec::new(),
                });
            }
            st.held.push(Held {
                key,
                cert: None,
                comment: id.comment,
                signer,
                from_mesh: true,
                expires: None,
                confirm: id.confirm,
                destinations: Vec::new(),
            });
        }
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

    /// Drop expired keys.
    pub async fn expire(&self) {
        let now = Instant::now();
        self.state
            .lock()
            .await
            .held
            .retain(|h| h.expires.map(|e| e > now).unwrap_or(true));
    }

    /// Handle one request.
    pub async fn handle(&self, conn: &mut Connection, req: Request) -> Response {
        self.expire().await;
        match req {
            Request::RequestIdentities => self.identities(conn).await,
            Request::SignRequest(r) => self.sign(conn, r).await,
            Request::AddIdentity(a) => self.add(a, Vec::new()).await,
            Request::AddIdConstrained(AddIdentityConstrained {
                identity,
                constraints,
            }) => self.add(identity, constraints).await,
            Request::RemoveIdentity(r) => {
                let mut st = self.state.lock().await;
                if st.lock.is_some() {
                    return Response::Failure;
                }
                let before = st.held.len();
                st.held.retain(|h| h.from_mesh || !h.matches(&r.credential));
                if st.held.len() < before {
                    Response::Success
                } else {
                    Response::Failure
                }
            }
            Request::RemoveAllIdentities => {
                // Mesh keys are the device's own and come back with the next
                // sync anyway; remove-all removes what ssh-add added.
                let mut st = self.state.lock().await;
                if st.lock.is_some() {
                    return Response::Failure;
                }
                st.held.retain(|h| h.from_mesh);
                // Providers stay loaded (as OpenSSH's): `ssh-add -e` unloads them.
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

    async fn identities(&self, conn: &Connection) -> Response {
        let st = self.state.lock().await;
        if st.lock.is_some() {
            return Response::IdentitiesAnswer(Vec::new());
        }
        Response::IdentitiesAnswer(
            st.held
                .iter()
                .filter(|h| permitted(h, conn))
                .map(|h| Identity {
                    credential: h.credential(),
                    comment: h.comment.clone(),
                })
                .collect(),
        )
    }

    async fn sign(&self, conn: &Connection, r: SignRequest) -> Response {
        let (signer, key, confirm, comment) = {
            let st = self.state.lock().await;
            if st.lock.is_some() {
                return Response::Failure;
            }
            let Some(h) = st.held.iter().find(|h| h.matches(&r.credential)) else {
                return Response::Failure;
            };
            if !h.destinations.is_empty()
                && (conn.binds.is_empty() || conn.bind_failed || !permitted(h, conn))
            {
                return Response::Failure;
            }
            (
                h.signer.clone(),
                h.key.clone(),
                h.confirm,
                h.comment.clone(),
            )
        };
        if confirm && !self.confirm(&comment, &key).await {
            return Response::Failure;
        }
        if let Signer::Pkcs11(_) = signer.as_ref() {
            return self.sign_on_token(signer, r.data, r.flags).await;
        }
        match sign_with(&signer, &key, &r.data, r.flags) {
            Some(sig) => Response::SignResponse(sig),
            None => Response::Failure,
        }
    }

    async fn confirm(&self, comment: &str, key: &KeyData) -> bool {
        let Some(askpass) = &self.askpass else {
            return false;
        };
        let fp = key.fingerprint(self.options.fingerprint_hash.alg());
        let prompt = format!("Allow use of key {comment}?\nKey fingerprint {fp}.");
        tokio::process::Command::new(askpass)
            .arg(prompt)
            .env("SSH_ASKPASS_PROMPT", "confirm")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .map(|s| s.success())
            .unwrap_or(false)
    }

    async fn add(&self, a: AddIdentity, constraints: Vec<KeyConstraint>) -> Response {
        let PrivateCredential::Key { privkey, comment } = a.credential else {
            // Certificates with their private key: take the key, keep the cert.
            return match a.credential {
                PrivateCredential::Cert {
                    certificate,
                    privkey,
                    comment,
                    ..
                } => {
                    let Some(kp) = cert_keypair(certificate.public_key(), privkey) else {
                        return Response::Failure;
                    };
                    self.insert(kp, Some(certificate), comment, constraints)
                        .await
                }
                PrivateCredential::Key { .. } => Response::Failure,
            };
        };
        self.insert(privkey, None, comment, constraints).await
    }

    async fn insert(
        &self,
        kp: KeypairData,
        cert: Option<Box<Certificate>>,
        comment: String,
        constraints: Vec<KeyConstraint>,
    ) -> Response {
        let Ok(key) = KeyData::try_from(&kp) else {
            return Response::Failure;
        };
        if let Some(c) = &cert {
            if *c.public_key() != key {
                return Response::Failure;
            }
        }
        let signer = match &kp {
            KeypairData::Rsa(rsa_kp) => match rsa_key(rsa_kp) {
                Some(k) => Signer::Rsa(Box::new(k)),
                None => return Response::Failure,
            },
            KeypairData::Ed25519(_) | KeypairData::Ecdsa(_) => {
                match ssh_key::PrivateKey::new(kp, comment.clone()) {
                    Ok(k) => Signer::Ssh(Box::new(k)),
                    Err(_) => return Response::Failure,
                }
            }
            _ => return Response::Failure,
        };
        let Some(Constraints {
            expires,
            confirm,
            destinations,
        }) = Constraints::parse(constraints, self.options.default_lifetime)
        else {
            return Response::Failure;
        };
        let mut st = self.state.lock().await;
        if st.lock.is_some() {
            return Response::Failure;
        }
        // Adding a key again replaces it (and its constraints).
        let credential = match &cert {
            Some(c) => PublicCredential::Cert(c.clone()),
            None => PublicCredential::Key(key.clone()),
        };
        st.held.retain(|h| h.from_mesh || !h.matches(&credential));
        if st.held.len() >= MAX_IDENTITIES {
            return Response::Failure;
        }
        st.held.push(Held {
            key,
            cert,
            comment,
            signer: Arc::new(signer),
            from_mesh: false,
            expires,
            confirm,
            destinations,
        });
        Response::Success
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
                let Ok(Some(bind)) = e.parse_message::<SessionBind>() else {
                    conn.bind_failed = true;
                    return Response::Failure;
                };
                if bind.verify_signature().is_err() || conn.binds.len() >= MAX_BINDS {
                    conn.bind_failed = true;
                    return Response::Failure;
                }
                // A session id already bound must be bound to the same host key.
                if let Some((k, _, _)) = conn
                    .binds
                    .iter()
                    .find(|(_, sid, _)| *sid == bind.session_id)
                {
                    if *k != bind.host_key {
                        conn.bind_failed = true;
                        return Response::Failure;
                    }
                    return Response::Success;
                }
                conn.binds
                    .push((bind.host_key, bind.session_id, bind.is_forwarding));
                Response::Success
            }
            _ => Response::Failure,
        }
    }
}

/// What `ssh-add -t/-c/-h` asked for a key.
struct Constraints {
    expires: Option<Instant>,
    confirm: bool,
    destinations: Vec<ssh_agent_lib::proto::extension::DestinationConstraint>,
}

impl Constraints {
    /// `None` for unknown or malformed constraints: the key is refused
    /// rather than added unconstrained.
    /// `default_lifetime`: ssh-agent -t, for keys added without one.
    fn parse(
        constraints: Vec<KeyConstraint>,
        default_lifetime: Option<Duration>,
    ) -> Option<Constraints> {
        let mut out = Constraints {
            expires: default_lifetime.map(|d| Instant::now() + d),
            confirm: false,
            destinations: Vec::new(),
        };
        for c in constraints {
            match c {
                KeyConstraint::Lifetime(secs) => {
                    out.expires = Some(Instant::now() + Duration::from_secs(u64::from(secs)))
                }
                KeyConstraint::Confirm => out.confirm = true,
                KeyConstraint::Extension(e) => {
                    match e.parse_key_constraint::<RestrictDestination>() {
                        Ok(Some(r))
                            if !r.constraints.is_empty()
                                && r.constraints.len() <= MAX_DEST_CONSTRAINTS =>
                        {
                            out.destinations = r.constraints;
                        }
                        _ => return None,
                    }
                }
            }
        }
        Some(out)
    }
}

/// Whether a key may be used on this connection: keys without destination
/// constraints always; constrained keys only along a chain of hops whose
/// every host key the constraints allow (OpenSSH's `identity_permitted`;
/// user names in the constraints are not checked).
fn permitted(h: &Held, conn: &Connection) -> bool {
    if h.destinations.is_empty() || conn.binds.is_empty() {
        return true;
    }
    if conn.bind_failed {
        return false;
    }
    let mut from: Option<&KeyData> = None;
    for (hostkey, _, _) in &conn.binds {
        let ok = h.destinations.iter().any(|d| {
            let from_ok = match from {
                None => d.from.hostname.is_empty(),
                Some(prev) => d.from.keys.iter().any(|k| &k.keyblob == prev),
            };
            from_ok && d.to.keys.iter().any(|k| &k.keyblob == hostkey)
        });
        if !ok {
            return false;
        }
        from = Some(hostkey);
    }
    true
}

/// The key pair of a certificate add: the private half sent, the public half from the certificate.
fn cert_keypair(
    public: &KeyData,
    private: ssh_agent_lib::proto::PrivateKeyData,
) -> Option<KeypairData> {
    use ssh_agent_lib::proto::PrivateKeyData as P;
    match (public, private) {
        (KeyData::Ed25519(_), P::Ed25519(kp)) => Some(KeypairData::Ed25519(kp)),
        (KeyData::Rsa(public), P::Rsa(private)) => {
            Some(KeypairData::Rsa(ssh_key::private::RsaKeypair {
                public: public.clone(),
                private,
            }))
        }
        // ECDSA and DSA certificates are not supported.
        _ => None,
    }
}

fn rsa_key(kp: &ssh_key::private::RsaKeypair) -> Option<rsa::RsaPrivateKey> {
    let n = rsa::BigUint::from_bytes_be(kp.public.n.as_bytes());
    let e = rsa::BigUint::from_bytes_be(kp.public.e.as_bytes());
    let d = rsa::BigUint::from_bytes_be(kp.private.d.as_bytes());
    let p = rsa::BigUint::from_bytes_be(kp.private.p.as_bytes());
    let q = rsa::BigUint::from_bytes_be(kp.private.q.as_bytes());
    let k = rsa::RsaPrivateKey::from_components(n, e, d, vec![p, q]).ok()?;
    k.validate().ok()?;
    // Keys below 2048 bits are refused (OpenSSH's own minimum is 1024; we are stricter).
    (rsa::traits::PublicKeyParts::size(&k) >= 256).then_some(k)
}

fn sign_with(signer: &Signer, key: &KeyData, data: &[u8], flags: u32) -> Option<Signature> {
    match signer {
        Signer::Mesh(k) => {
            Signature::new(Algorithm::Ed25519, k.sign(data).to_bytes().to_vec()).ok()
        }
        Signer::Ssh(k) => {
            let _ = key;
            signature::Signer::try_sign(k.as_ref(), data).ok()
        }
        Signer::Rsa(k) => {
            use rsa::signature::{SignatureEncoding, Signer as _};
            // No SHA-1: a request without a SHA-2 flag is refused.
            let (hash, bytes) = if flags & RSA_SHA2_512 != 0 {
                let s = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(k.as_ref().clone())
                    .try_sign(data)
                    .ok()?;
                (HashAlg::Sha512, s.to_vec())
            } else if flags & RSA_SHA2_256 != 0 {
                let s = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.as_ref().clone())
                    .try_sign(data)
                    .ok()?;
                (HashAlg::Sha256, s.to_vec())
            } else {
                return None;
            };
            Signature::new(Algorithm::Rsa { hash: Some(hash) }, bytes).ok()
        }
        // Signed off the runtime (Agent::sign_on_token).
        Signer::Pkcs11(_) => None,
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
