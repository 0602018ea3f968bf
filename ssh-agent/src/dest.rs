//! Destination constraints (`ssh-add -h`; OpenSSH PROTOCOL.agent §2 and
//! ssh-agent.c's `identity_permitted`): which hops a key may be used along.
//!
//! A connection records the hosts it was bound to with
//! `session-bind@openssh.com`, in order: every hop but the last is a
//! forwarding, the last is where ssh authenticates (or, for a listing, the
//! last forwarding). A constrained key is usable when a constraint allows
//! each hop (from the previous host to this one), the user at the final
//! host, and — when signing — the signed data is a userauth request for the
//! session last bound. Host certificates match through `@cert-authority`
//! keys (`is_ca`), as OpenSSH's `match_key_hop` does.
//!
//! Everything here reads hostile bytes: each field is length-checked,
//! every list is bounded, and a refused input changes nothing.

use ssh_agent_lib::proto::extension::{DestinationConstraint, HostTuple, RestrictDestination};
use ssh_agent_lib::proto::Extension;
use ssh_encoding::{Decode, Encode};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, Signature};
use subtle::ConstantTimeEq;

/// Most session binds per connection (OpenSSH's `AGENT_MAX_SESSION_IDS`).
pub const MAX_BINDS: usize = 16;
/// Longest session ID bound (OpenSSH's `AGENT_MAX_SID_LEN`).
pub const MAX_SID_LEN: usize = 128;
/// Most destination constraints per key (OpenSSH's `AGENT_MAX_DEST_CONSTRAINTS`).
pub const MAX_DEST_CONSTRAINTS: usize = 1024;
/// Most principals in a host certificate (OpenSSH's `SSHKEY_CERT_MAX_PRINCIPALS`).
const MAX_PRINCIPALS: usize = 256;
/// `SSH2_MSG_USERAUTH_REQUEST`.
const USERAUTH_REQUEST: u8 = 50;
/// `SSH2_CERT_TYPE_USER`, `SSH2_CERT_TYPE_HOST`.
const CERT_USER: u32 = 1;
const CERT_HOST: u32 = 2;
const CERT_SUFFIX: &[u8] = b"-cert-v01@openssh.com";

/// A bounds-checked reader of SSH wire fields.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
    /// A string that must not hold NUL (OpenSSH's `sshbuf_get_cstring`).
    fn cstring(&mut self) -> Option<&'a [u8]> {
        self.string().filter(|s| !s.contains(&0))
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s);
}

/// `*` and `?` wildcards as OpenSSH's `match_pattern` (bytewise, case
/// sensitive), without its recursion: linear backtracking on the last `*`.
pub fn glob(s: &[u8], pattern: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match pattern.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    pattern[pi.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// A plain public key blob, whole (no certificate, nothing left over).
fn plain_key(blob: &[u8]) -> Option<KeyData> {
    let alg = Cur(blob).cstring()?;
    if alg.ends_with(CERT_SUFFIX) {
        return None;
    }
    let mut r = blob;
    let k = KeyData::decode(&mut r).ok()?;
    r.is_empty().then_some(k)
}

/// A signature that is the whole of `bytes`.
fn signature(bytes: &[u8]) -> Option<Signature> {
    let mut r = bytes;
    let s = Signature::decode(&mut r).ok()?;
    r.is_empty().then_some(s)
}

/// OpenSSH's `SSH_ALLOWED_CA_SIGALGS`: no SHA-1 RSA, no DSA.
fn allowed_ca_sigalg(a: &Algorithm) -> bool {
    matches!(
        a,
        Algorithm::Ed25519
            | Algorithm::Ecdsa { .. }
            | Algorithm::SkEd25519
            | Algorithm::SkEcdsaSha2NistP256
            | Algorithm::Rsa { hash: Some(_) }
    )
}

/// A certificate key type: its plain algorithm and how many public-key
/// fields follow the nonce (PROTOCOL.certkeys).
fn cert_layout(alg: &[u8]) -> Option<(&'static [u8], usize)> {
    Some(match alg {
        b"ssh-ed25519-cert-v01@openssh.com" => (b"ssh-ed25519", 1),
        b"ssh-rsa-cert-v01@openssh.com" => (b"ssh-rsa", 2),
        b"ecdsa-sha2-nistp256-cert-v01@openssh.com" => (b"ecdsa-sha2-nistp256", 2),
        b"ecdsa-sha2-nistp384-cert-v01@openssh.com" => (b"ecdsa-sha2-nistp384", 2),
        b"ecdsa-sha2-nistp521-cert-v01@openssh.com" => (b"ecdsa-sha2-nistp521", 2),
        b"sk-ssh-ed25519-cert-v01@openssh.com" => (b"sk-ssh-ed25519@openssh.com", 2),
        b"sk-ecdsa-sha2-nistp256-cert-v01@openssh.com" => {
            (b"sk-ecdsa-sha2-nistp256@openssh.com", 3)
        }
        _ => return None,
    })
}

/// A host key as ssh saw it during key exchange: plain, or a certificate.
#[derive(Debug, Clone)]
pub enum HostKey {
    /// A plain key.
    Plain(KeyData),
    /// A certificate (whose CA signature verified when it was read).
    Cert(Box<HostCert>),
}

/// What the constraints check of a certificate (OpenSSH's `sshkey_cert_check_host`).
#[derive(Debug, Clone)]
pub struct HostCert {
    /// The whole certificate blob: two certificates are the same when it is.
    blob: Vec<u8>,
    /// The certified key.
    key: KeyData,
    cert_type: u32,
    principals: Vec<Vec<u8>>,
    valid_after: u64,
    valid_before: u64,
    has_critical: bool,
    ca: KeyData,
}

impl PartialEq for HostKey {
    /// OpenSSH's `sshkey_equal`: the same type, the same key, the same certificate.
    fn eq(&self, other: &HostKey) -> bool {
        match (self, other) {
            (HostKey::Plain(a), HostKey::Plain(b)) => a == b,
            (HostKey::Cert(a), HostKey::Cert(b)) => a.blob == b.blob,
            _ => false,
        }
    }
}

impl HostKey {
    /// Read a host key blob, plain or certificate; `None` for anything
    /// malformed, a certificate whose CA signature does not verify or an
    /// unsupported type.
    pub fn from_blob(blob: &[u8]) -> Option<HostKey> {
        let alg = Cur(blob).cstring()?;
        if !alg.ends_with(CERT_SUFFIX) {
            return plain_key(blob).map(HostKey::Plain);
        }
        HostCert::parse(blob).map(|c| HostKey::Cert(Box::new(c)))
    }

    /// A host certificate's principals (host names), lossily as text.
    pub fn principals(&self) -> Vec<String> {
        match self {
            HostKey::Plain(_) => Vec::new(),
            HostKey::Cert(c) => c
                .principals
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
        }
    }

    /// The key that signs for the host.
    pub fn public(&self) -> &KeyData {
        match self {
            HostKey::Plain(k) => k,
            HostKey::Cert(c) => &c.key,
        }
    }
}

impl HostCert {
    /// PROTOCOL.certkeys, checked as OpenSSH's `cert_parse`: known type,
    /// bounded principals, well-formed option lists, a plain CA key, and
    /// the CA's signature over everything before it.
    fn parse(blob: &[u8]) -> Option<HostCert> {
        let mut c = Cur(blob);
        let (plain_alg, fields) = cert_layout(c.cstring()?)?;
        c.string()?; // nonce
        let mut plain = Vec::new();
        put_string(&mut plain, plain_alg);
        for _ in 0..fields {
            put_string(&mut plain, c.string()?);
        }
        let key = plain_key(&plain)?;
        c.u64()?; // serial
        let cert_type = c.u32()?;
        c.cstring()?; // key id
        let mut p = Cur(c.string()?);
        let mut principals = Vec::new();
        while !p.done() {
            if principals.len() >= MAX_PRINCIPALS {
                return None;
            }
            principals.push(p.cstring()?.to_vec());
        }
        let valid_after = c.u64()?;
        let valid_before = c.u64()?;
        let critical = c.string()?;
        let extensions = c.string()?;
        if !option_list(critical) || !option_list(extensions) {
            return None;
        }
        c.string()?; // reserved
        let ca = plain_key(c.string()?)?;
        let signed = blob.len() - c.0.len();
        let sig = signature(c.string()?)?;
        if !c.done() || (cert_type != CERT_USER && cert_type != CERT_HOST) {
            return None;
        }
        if !allowed_ca_sigalg(&sig.algorithm()) {
            return None;
        }
        signature::Verifier::verify(&ca, &blob[..signed], &sig).ok()?;
        Some(HostCert {
            blob: blob.to_vec(),
            key,
            cert_type,
            principals,
            valid_after,
            valid_before,
            has_critical: !critical.is_empty(),
            ca,
        })
    }

    /// OpenSSH's `sshkey_cert_check_host(key, hostname, wildcard=1, …)`: a
    /// host certificate, valid now, the hostname among its principals (the
    /// hostname is the pattern; no principals means any host), and no
    /// critical options.
    fn valid_for_host(&self, hostname: &[u8], now: u64) -> bool {
        self.cert_type == CERT_HOST
            && self.valid_after <= now
            && now < self.valid_before
            && (self.principals.is_empty() || self.principals.iter().any(|p| glob(p, hostname)))
            && !self.has_critical
    }
}

/// A critical-options or extensions section: name/data string pairs.
fn option_list(b: &[u8]) -> bool {
    let mut c = Cur(b);
    while !c.done() {
        if c.string().is_none() || c.string().is_none() {
            return false;
        }
    }
    true
}

/// The destination constraints of a `restrict-destination-v00@openssh.com`
/// key constraint, checked as OpenSSH's `parse_dest_constraint`: a "from"
/// with no user, a hostname exactly when it has keys; a "to" with a
/// hostname and keys; reserved fields empty (the encoding must be canonical).
pub fn parse_constraint(e: &Extension) -> Option<Vec<DestinationConstraint>> {
    let r = e.parse_key_constraint::<RestrictDestination>().ok()??;
    let n = r.constraints.len();
    if n == 0 || n > MAX_DEST_CONSTRAINTS {
        return None;
    }
    let mut again = Vec::new();
    r.encode(&mut again).ok()?;
    if again != e.details.as_ref() {
        return None;
    }
    let ok = r.constraints.iter().all(|d| {
        d.from.username.is_empty()
            && d.from.hostname.is_empty() == d.from.keys.is_empty()
            && !d.to.hostname.is_empty()
            && !d.to.keys.is_empty()
    });
    ok.then_some(r.constraints)
}

/// One `session-bind@openssh.com`.
#[derive(Debug, Clone)]
pub struct Bind {
    key: HostKey,
    sid: Vec<u8>,
    forwarded: bool,
    /// The host key's SHA-256 fingerprint (what the learned hosts are named by).
    fp: String,
}

impl Bind {
    /// The host key bound.
    pub fn key(&self) -> &HostKey {
        &self.key
    }

    /// A forwarding (not the session ssh authenticates on).
    pub fn forwarded(&self) -> bool {
        self.forwarded
    }
}

/// The process at the other end of the socket (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its user.
    pub uid: u32,
    /// Its process, when the kernel says.
    pub pid: Option<i32>,
}

/// Per-connection state: the sessions this connection is bound to.
#[derive(Debug, Default)]
pub struct Connection {
    binds: Vec<Bind>,
    /// Its first bind failed: it leads to a host we could not check, so
    /// constrained keys are neither listed nor used on it.
    unknown: bool,
    /// Who connected, when known.
    peer: Option<Peer>,
    /// One more than the learned-hosts generation its last listing was
    /// ordered by (0: none): a login listed before a forget or pin took
    /// effect must not learn the host again.
    listed: std::sync::atomic::AtomicU64,
    /// The peer as `pid exe`, read once, while it waits for a reply.
    program: std::sync::OnceLock<Option<std::sync::Arc<str>>>,
}

impl Connection {
    /// A connection from `peer`.
    pub fn with_peer(peer: Peer) -> Connection {
        Connection {
            peer: Some(peer),
            ..Connection::default()
        }
    }

    /// Remember the learned-hosts generation a listing was ordered by.
    pub(crate) fn set_listed(&self, generation: u64) {
        self.listed.store(
            generation.wrapping_add(1),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The learned-hosts generation its last listing was ordered by.
    pub(crate) fn listed(&self) -> Option<u64> {
        match self.listed.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            g => Some(g - 1),
        }
    }

    /// Who connected, when known.
    pub fn peer(&self) -> Option<Peer> {
        self.peer
    }

    /// The connected program as `pid exe` (`pid` where the system does not
    /// say), read on the first call: a caller asks while the peer waits for
    /// its reply, so a short-lived program is still there to be named.
    pub fn program(&self) -> Option<std::sync::Arc<str>> {
        self.program
            .get_or_init(|| {
                let pid = self.peer?.pid?;
                Some(match std::fs::read_link(format!("/proc/{pid}/exe")) {
                    Ok(exe) => format!("{pid} {}", exe.display()).into(),
                    Err(_) => pid.to_string().into(),
                })
            })
            .clone()
    }

    /// The binds, in order.
    pub fn binds(&self) -> &[Bind] {
        &self.binds
    }

    /// Whether its first bind failed.
    pub fn is_unknown(&self) -> bool {
        self.unknown
    }

    /// Record a `session-bind@openssh.com` (its contents after the name),
    /// as OpenSSH's `process_ext_session_bind`: the host's signature over
    /// the session ID verifies; no bind follows one for authentication; a
    /// session ID is bound to one host key; at most `MAX_BINDS`. A refused
    /// bind changes nothing, except that a connection whose first bind is
    /// refused goes to an unknown host.
    pub fn bind(&mut self, details: &[u8]) -> bool {
        let ok = self.try_bind(details);
        if !ok && self.binds.is_empty() {
            self.unknown = true;
        }
        ok
    }

    fn try_bind(&mut self, details: &[u8]) -> bool {
        let mut c = Cur(details);
        let (Some(key), Some(sid), Some(sig), Some(fwd)) =
            (c.string(), c.string(), c.string(), c.u8())
        else {
            return false;
        };
        if !c.done() || sid.is_empty() || sid.len() > MAX_SID_LEN {
            return false;
        }
        let (Some(key), Some(sig)) = (HostKey::from_blob(key), signature(sig)) else {
            return false;
        };
        if signature::Verifier::verify(key.public(), sid, &sig).is_err() {
            return false;
        }
        for b in &self.binds {
            if !b.forwarded {
                // Bound for authentication already: nothing may follow.
                return false;
            }
            if bool::from(b.sid.as_slice().ct_eq(sid)) {
                // The same bind again is fine; the same session with another key is not.
                return b.key == key;
            }
        }
        if self.binds.len() >= MAX_BINDS {
            return false;
        }
        let fp = key
            .public()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string();
        self.binds.push(Bind {
            key,
            sid: sid.to_vec(),
            forwarded: fwd != 0,
            fp,
        });
        true
    }

    /// The host this connection authenticates to: its last bind, when that
    /// is for authentication (not a forwarding). Its host key fingerprint
    /// and session ID.
    pub fn auth_host(&self) -> Option<(&str, &[u8])> {
        self.binds
            .last()
            .filter(|b| !b.forwarded)
            .map(|b| (b.fp.as_str(), b.sid.as_slice()))
    }

    /// Whether the connection was bound (or tried to be).
    pub fn is_bound(&self) -> bool {
        !self.binds.is_empty() || self.unknown
    }
}

/// OpenSSH's `match_key_hop`: a plain host key matches a plain key of the
/// hop; a certificate matches a CA key of the hop that signed it, when it
/// is valid now for the hop's hostname.
fn match_key_hop(key: &HostKey, hop: &HostTuple, now: u64) -> bool {
    let hostname: &[u8] = if hop.hostname.is_empty() {
        b"(ORIGIN)"
    } else {
        hop.hostname.as_bytes()
    };
    hop.keys.iter().any(|spec| match key {
        HostKey::Plain(k) => !spec.is_ca && spec.keyblob == *k,
        HostKey::Cert(c) => spec.is_ca && spec.keyblob == c.ca && c.valid_for_host(hostname, now),
    })
}

/// OpenSSH's `permitted_by_dest_constraints`: some constraint allows going
/// from `from` (`None`: the origin) to `to` (`None`: anywhere) as `user`
/// (`None`: not checked).
fn permitted_by(
    dests: &[DestinationConstraint],
    from: Option<&HostKey>,
    to: Option<&HostKey>,
    user: Option<&[u8]>,
    now: u64,
) -> bool {
    dests.iter().any(|d| {
        let from_ok = match from {
            None => d.from.hostname.is_empty() && d.from.keys.is_empty(),
            Some(k) => match_key_hop(k, &d.from, now),
        };
        from_ok
            && to.is_none_or(|k| match_key_hop(k, &d.to, now))
            && (d.to.username.is_empty() || user.is_none_or(|u| glob(u, d.to.username.as_bytes())))
    })
}

/// OpenSSH's `identity_permitted`: every hop bound on the connection is
/// allowed, in order; only the last may be for authentication, and a
/// signature (`user` given) must not be made on a forwarding. A listing on
/// a forwarding shows a key only if it may go on from there ("permitted at
/// host but not after").
pub fn identity_permitted(
    dests: &[DestinationConstraint],
    conn: &Connection,
    user: Option<&[u8]>,
    now: u64,
) -> bool {
    if dests.is_empty() {
        return true;
    }
    if conn.unknown {
        return false;
    }
    let Some(last) = conn.binds.last() else {
        return true; // local use
    };
    let n = conn.binds.len();
    let mut from = None;
    for (i, b) in conn.binds.iter().enumerate() {
        let test_user = if i + 1 == n {
            if b.forwarded && user.is_some() {
                return false;
            }
            user
        } else if !b.forwarded {
            return false;
        } else {
            None
        };
        if !permitted_by(dests, from, Some(&b.key), test_user, now) {
            return false;
        }
        from = Some(&b.key);
    }
    !(last.forwarded && user.is_none() && !permitted_by(dests, Some(&last.key), None, None, now))
}

/// What a signed publickey userauth request says (RFC 4252 §7 and
/// OpenSSH's `publickey-hostbound-v00@openssh.com`).
#[derive(Debug)]
pub struct Userauth<'a> {
    /// The user logged in as.
    pub user: &'a [u8],
    /// The session ID signed.
    pub sid: &'a [u8],
    /// The server's host key, for `publickey-hostbound-v00@openssh.com`.
    pub hostkey: Option<HostKey>,
}

/// The key type an algorithm name is for (OpenSSH's `sshkey_type_from_name`).
fn key_type(name: &[u8]) -> Option<&'static str> {
    Some(match name {
        b"ssh-ed25519" => "ed25519",
        b"ssh-ed25519-cert-v01@openssh.com" => "ed25519-cert",
        b"ecdsa-sha2-nistp256" | b"ecdsa-sha2-nistp384" | b"ecdsa-sha2-nistp521" => "ecdsa",
        b"ecdsa-sha2-nistp256-cert-v01@openssh.com"
        | b"ecdsa-sha2-nistp384-cert-v01@openssh.com"
        | b"ecdsa-sha2-nistp521-cert-v01@openssh.com" => "ecdsa-cert",
        b"ssh-rsa" | b"rsa-sha2-256" | b"rsa-sha2-512" => "rsa",
        b"ssh-rsa-cert-v01@openssh.com"
        | b"rsa-sha2-256-cert-v01@openssh.com"
        | b"rsa-sha2-512-cert-v01@openssh.com" => "rsa-cert",
        b"sk-ssh-ed25519@openssh.com" => "sk-ed25519",
        b"sk-ssh-ed25519-cert-v01@openssh.com" => "sk-ed25519-cert",
        b"sk-ecdsa-sha2-nistp256@openssh.com" => "sk-ecdsa",
        b"sk-ecdsa-sha2-nistp256-cert-v01@openssh.com" => "sk-ecdsa-cert",
        _ => return None,
    })
}

/// Read `data` as a publickey userauth request signed with the key whose
/// blob is `key_blob`, as OpenSSH's `parse_userauth_request`: a non-empty
/// session ID, `SSH_MSG_USERAUTH_REQUEST`, service `ssh-connection`, a
/// signature following, an algorithm of the key's type, the key itself, and
/// nothing after (the host key for the hostbound method).
pub fn parse_userauth<'a>(data: &'a [u8], key_blob: &[u8]) -> Option<Userauth<'a>> {
    let mut c = Cur(data);
    let sid = c.string().filter(|s| !s.is_empty())?;
    let (t, user, service, method) = (c.u8()?, c.cstring()?, c.cstring()?, c.cstring()?);
    let (follows, alg, key) = (c.u8()?, c.cstring()?, c.string()?);
    let key_alg = Cur(key_blob).cstring()?;
    if t != USERAUTH_REQUEST
        || follows != 1
        || service != b"ssh-connection"
        || key != key_blob
        || key_type(alg).is_none()
        || key_type(alg) != key_type(key_alg)
    {
        return None;
    }
    let hostkey = match method {
        b"publickey-hostbound-v00@openssh.com" => Some(HostKey::from_blob(c.string()?)?),
        b"publickey" => None,
        _ => return None,
    };
    c.done().then_some(Userauth { user, sid, hostkey })
}

/// Whether a constrained key may sign `data` on this connection (OpenSSH's
/// `process_sign_request2`): the connection is bound, `data` is a userauth
/// request for this key, the hops and the user are allowed, the session is
/// the one bound last, and the host key in the request (required past the
/// first hop) is the one bound last.
pub fn sign_permitted(
    dests: &[DestinationConstraint],
    conn: &Connection,
    key_blob: &[u8],
    data: &[u8],
    now: u64,
) -> bool {
    let Some(last) = conn.binds.last() else {
        return false;
    };
    let Some(ua) = parse_userauth(data, key_blob) else {
        return false;
    };
    if !identity_permitted(dests, conn, Some(ua.user), now) || !bool::from(ua.sid.ct_eq(&last.sid))
    {
        return false;
    }
    match &ua.hostkey {
        None => conn.binds.len() == 1,
        Some(k) => *k == last.key,
    }
}

#[cfg(test)]
#[path = "dest_tests.rs"]
mod tests;
