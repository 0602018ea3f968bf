//! `SSH_AGENTC_ADD_SMARTCARD_KEY` (and its constrained form) and
//! `SSH_AGENTC_REMOVE_SMARTCARD_KEY`: PKCS#11 providers' keys in the agent
//! (the token side is `crate::pkcs11`).

use std::path::Path;
use std::sync::Arc;

use ssh_agent_lib::proto::{KeyConstraint, Response, SmartcardKey};

use super::{key_blob, Agent, Connection, Constraints, Held, Signer, MAX_IDENTITIES};
use crate::pkcs11::{self, Pkcs11Error, Provider};

/// The provider a held key came from, if it is a token's.
fn provider_of(h: &Held) -> Option<&Path> {
    match h.signer.as_ref() {
        Signer::Pkcs11(k) => Some(k.provider().path()),
        _ => None,
    }
}

/// Unload a provider off the runtime (its module may block).
async fn unload(p: Arc<Provider>) {
    let _ = tokio::task::spawn_blocking(move || p.unload()).await;
}

impl Agent {
    fn refuse(&self, e: &Pkcs11Error) -> Response {
        match e.hint() {
            Some(h) => self.log(&e.to_string(), h),
            None => self.log_line(&e.to_string()),
        }
        Response::Failure
    }

    /// `ssh-add -s PROVIDER`: load the provider (within the allow-list), log
    /// in with the PIN and hold the keys its tokens list. Succeeds when at
    /// least one key was added (as OpenSSH's agent).
    pub(super) async fn add_smartcard(
        &self,
        conn: &Connection,
        key: SmartcardKey,
        constraints: Vec<KeyConstraint>,
    ) -> Response {
        let SmartcardKey { id, pin } = key;
        // A provider constraint is a security key's, not a token's.
        let Some(c) = Constraints::parse(constraints, self.options.default_lifetime)
            .filter(|c| c.provider.is_none())
        else {
            return Response::Failure;
        };
        let path = match pkcs11::allowed_path(&id, &self.options) {
            Ok(p) => p,
            Err(e) => return self.refuse(&e),
        };
        // A connection that ssh bound to a session is a forwarded one here:
        // a remote host may not load libraries into this agent unless
        // `-O allow-remote-pkcs11` (as OpenSSH's agent since 9.4).
        if conn.is_bound() && !self.options.allow_remote_pkcs11 {
            return self.refuse(&Pkcs11Error::Remote(path.to_string_lossy().into_owned()));
        }
        let _turn = self.pkcs11_gate.lock().await;
        {
            let mut st = self.state.lock().await;
            if st.lock.is_some() {
                return Response::Failure;
            }
            if let Some(i) = st.providers.iter().position(|p| p.path() == path) {
                if st
                    .held
                    .iter()
                    .any(|h| provider_of(h) == Some(path.as_path()))
                {
                    let shown = path.to_string_lossy().into_owned();
                    return self.refuse(&Pkcs11Error::Loaded(shown));
                }
                // Loaded, but its keys are gone (`ssh-add -D`, lifetimes): load it afresh.
                let old = st.providers.remove(i);
                drop(st);
                unload(old).await;
            }
        }
        let load_path = path.clone();
        let loaded = tokio::task::spawn_blocking(move || Provider::load(&load_path, pin)).await;
        let (provider, keys) = match loaded {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return self.refuse(&e),
            Err(_) => {
                self.log_line(&format!(
                    "PKCS#11 provider {} failed while loading",
                    path.display()
                ));
                return Response::Failure;
            }
        };
        let mut st = self.state.lock().await;
        let mut added = 0;
        for k in keys {
            // A key the agent holds already keeps its entry (as OpenSSH).
            let blob = key_blob(&k.public);
            let known = st.held.iter().any(|h| h.matches(&blob));
            if known || st.lock.is_some() || st.held.len() >= MAX_IDENTITIES {
                continue;
            }
            let comment = if k.label.is_empty() {
                path.to_string_lossy().into_owned()
            } else {
                k.label.clone()
            };
            let (fp, valid_before) = super::identity_meta(&k.public, &blob);
            st.held.push(Held {
                key: k.public.clone(),
                blob,
                comment,
                signer: Arc::new(Signer::Pkcs11(k)),
                from_mesh: false,
                expires: c.expires,
                confirm: c.confirm,
                destinations: c.destinations.clone(),
                fp,
                valid_before,
            });
            added += 1;
        }
        if added == 0 {
            drop(st);
            unload(provider).await;
            self.log_line(&format!(
                "PKCS#11 provider {}: no key added (the agent holds them already)",
                path.display()
            ));
            return Response::Failure;
        }
        st.providers.push(provider);
        Response::Success
    }

    /// `ssh-add -e PROVIDER`: drop the provider's keys and unload it.
    pub(super) async fn remove_smartcard(&self, key: SmartcardKey) -> Response {
        let SmartcardKey { id, pin } = key;
        drop(pin);
        let path = match std::fs::canonicalize(&id) {
            Ok(p) => p,
            Err(e) => return self.refuse(&Pkcs11Error::Path(id, e)),
        };
        let _turn = self.pkcs11_gate.lock().await;
        let mut st = self.state.lock().await;
        if st.lock.is_some() {
            return Response::Failure;
        }
        st.held.retain(|h| provider_of(h) != Some(path.as_path()));
        let Some(i) = st.providers.iter().position(|p| p.path() == path) else {
            let shown = path.to_string_lossy().into_owned();
            return self.refuse(&Pkcs11Error::NotLoaded(shown));
        };
        let p = st.providers.remove(i);
        drop(st);
        unload(p).await;
        Response::Success
    }

    /// Have the token sign, off the runtime; a removed or failing token is
    /// a FAILURE (and a log line), never a hang of other clients. The
    /// signature as it goes on the wire.
    pub(super) async fn sign_on_token(
        &self,
        signer: Arc<Signer>,
        data: Vec<u8>,
        flags: u32,
    ) -> Option<Vec<u8>> {
        let out = tokio::task::spawn_blocking(move || match signer.as_ref() {
            Signer::Pkcs11(k) => Some(k.sign(&data, flags)),
            _ => None,
        })
        .await;
        match out {
            Ok(Some(Ok(sig))) => signature_blob(&sig),
            Ok(Some(Err(Pkcs11Error::Unsupported(_)))) => None,
            Ok(Some(Err(e))) => {
                self.refuse(&e);
                None
            }
            _ => None,
        }
    }
}

/// A signature's wire form; an `ssh-rsa` (SHA-1) one, which the ssh-key
/// crate cannot name, travels as [`crate::server::SSH_RSA_SHA1`] and goes
/// out as `ssh-rsa`.
fn signature_blob(sig: &ssh_key::Signature) -> Option<Vec<u8>> {
    use ssh_encoding::Encode;
    let mut out = Vec::new();
    if sig.algorithm().as_str() == crate::server::SSH_RSA_SHA1 {
        "ssh-rsa".encode(&mut out).ok()?;
        sig.as_bytes().encode(&mut out).ok()?;
    } else {
        sig.encode(&mut out).ok()?;
    }
    Some(out)
}
