//! The sign path: which key, whether the destination constraints and the
//! forwarding policy allow it, a confirmation when one is due, and the
//! signature; each outcome reported to the audit sink when there is one.

use mesh_core::audit::Decision;
use ssh_key::public::KeyData;

use super::{batch, learn, unix_now, Agent, Signer, State};
use crate::audit::SignEvent;
use crate::dest::{self, Connection};
use crate::forward::{Action, Route};
use crate::wire::KeyReply;

/// What the audit log needs of a request beyond its reply: the key's
/// fingerprint (only when a sink listens, and only for a key the agent
/// holds), and whether the user confirmed it.
#[derive(Default)]
struct Trail {
    key: Option<String>,
    confirmed: bool,
}

impl Agent {
    /// Sign `data` with the key `blob`, and report the decision.
    pub(super) async fn sign(
        &self,
        conn: &Connection,
        blob: &[u8],
        data: &[u8],
        flags: u32,
    ) -> KeyReply {
        let mut trail = Trail::default();
        let reply = self.sign_checked(conn, blob, data, flags, &mut trail).await;
        if let (Some(sink), Some(key)) = (&self.audit, trail.key) {
            let decision = match (&reply, trail.confirmed) {
                (KeyReply::Signature(_), true) => Decision::Confirmed,
                (KeyReply::Signature(_), false) => Decision::Allowed,
                _ => Decision::Refused,
            };
            sink.record(SignEvent::of(conn, blob, data, key, decision, unix_now()));
        }
        reply
    }

    async fn sign_checked(
        &self,
        conn: &Connection,
        blob: &[u8],
        data: &[u8],
        flags: u32,
        trail: &mut Trail,
    ) -> KeyReply {
        let (signer, confirm, learn) = {
            let st = self.state.lock().await;
            let Some(h) = st.held.iter().find(|h| h.matches(blob)) else {
                return KeyReply::Status(false);
            };
            if self.audit.is_some() {
                trail.key = Some(h.fp.clone());
            }
            if st.lock.is_some() {
                return KeyReply::Status(false);
            }
            if h.valid_before.is_some() && h.expired(unix_now()) {
                return KeyReply::Status(false);
            }
            // Only constrained keys pay for this (the common sign path does not).
            if !h.destinations.is_empty()
                && !dest::sign_permitted(&h.destinations, conn, blob, data, unix_now())
            {
                return KeyReply::Status(false);
            }
            // Only bound connections pay for the forwarding policy.
            let (route, ask) = if conn.is_bound() {
                match self.forwarded(&st, conn, blob, data) {
                    Err(()) => return KeyReply::Status(false),
                    Ok(Some((r, a))) => (Some(r), a == Action::Confirm),
                    Ok(None) => (None, false),
                }
            } else {
                (None, false)
            };
            // The key and comment only for a confirmation: no copies on the hot path.
            // The policy's confirmations come in batches; `ssh-add -c` asks at each use.
            let batch = h.from_mesh || ask;
            let confirm =
                (h.confirm || ask).then(|| (h.key.clone(), h.comment.clone(), route, batch));
            // Only bound connections pay for this: a login to a known host.
            let learn = learn::login_host(conn, blob, data).map(|host| (host, h.fp.clone()));
            (h.signer.clone(), confirm, learn)
        };
        if let Some((key, comment, route, batch)) = confirm {
            let yes = if batch {
                self.confirm_batch(conn, blob, &comment, &key, route.as_ref())
                    .await
            } else {
                self.confirm(&comment, &key, route.as_ref()).await
            };
            if !yes {
                return KeyReply::Status(false);
            }
            trail.confirmed = true;
        }
        let sig = match signer.as_ref() {
            Signer::Mesh(k) => Some(crate::keys::ed25519_blob(&k.sign(data).to_bytes())),
            Signer::Key(m) => m.sign(data, flags),
            // Off the runtime: the token may block.
            Signer::Pkcs11(_) => {
                self.sign_on_token(signer.clone(), data.to_vec(), flags)
                    .await
            }
            Signer::Sk(key, provider) => {
                let helper = crate::sk::helper_path();
                match crate::sk::sign(&helper, key, provider, data).await {
                    Ok(sig) => Some(sig),
                    Err(e) => {
                        self.log(&format!("security key signature: {e}"), e.hint());
                        None
                    }
                }
            }
        };
        match sig {
            Some(sig) => {
                if let Some((host, identity)) = learn {
                    self.hosts.learned(host, identity, conn.listed());
                }
                KeyReply::Signature(sig)
            }
            None => KeyReply::Status(false),
        }
    }

    /// The forwarding policy's word on a request of a bound connection:
    /// `Err` to refuse; a forwarded request's route with `Allow` or
    /// `Confirm`; `None` for a local connection.
    fn forwarded(
        &self,
        st: &State,
        conn: &Connection,
        blob: &[u8],
        data: &[u8],
    ) -> Result<Option<(Route, Action)>, ()> {
        if !crate::forward::is_forwarded(conn) {
            return Ok(None);
        }
        let login = dest::parse_userauth(data, blob);
        let Some(route) = Route::of(conn, login.as_ref()) else {
            return Ok(None);
        };
        let (account, local) = (st.forwarding.as_ref(), self.options.forwarding.as_ref());
        match crate::forward::decide(account, local, &route) {
            a @ (Action::Allow | Action::Confirm) => Ok(Some((route, a))),
            Action::Refuse => {
                self.log(
                    &format!("refused {} over forwarded hops {}", route.what(), route.chain()),
                    "the forwarding policy refuses it: `mesh ssh policy forwarding` (or `mesh ssh-agent -O forward-…`) changes that",
                );
                Err(())
            }
        }
    }

    /// A confirmation, shared by the requests of its batch (key,
    /// destination, requesting program) for a short window.
    async fn confirm_batch(
        &self,
        conn: &Connection,
        blob: &[u8],
        comment: &str,
        key: &KeyData,
        route: Option<&Route>,
    ) -> bool {
        let bk = batch::BatchKey {
            key: blob.to_vec(),
            destination: route
                .and_then(|r| r.destination.clone())
                .or_else(|| crate::forward::bound_destination(conn))
                .map(|d| d.fingerprint().to_string()),
            hops: route.map_or_else(Vec::new, |r| {
                r.hops
                    .iter()
                    .map(|h| h.as_ref().map_or("", |h| h.fingerprint()).to_string())
                    .collect()
            }),
            requester: batch::Requester::of(conn.peer()),
        };
        self.batches
            .confirm(bk, || self.confirm(comment, key, route))
            .await
    }

    async fn confirm(&self, comment: &str, key: &KeyData, route: Option<&Route>) -> bool {
        let Some(askpass) = &self.askpass else {
            return false;
        };
        let fp = key.fingerprint(self.options.fingerprint_hash.alg());
        let prompt = match route {
            None => format!("Allow use of key {comment}?\nKey fingerprint {fp}."),
            Some(r) => format!(
                "Allow use of key {comment} for {} over forwarded hops {}?\nKey fingerprint {fp}.",
                r.what(),
                r.chain()
            ),
        };
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
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
