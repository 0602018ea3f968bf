//! The sealed secrets: AES-256-GCM under the store key, bound to the
//! store's id. An open store decrypts them at most once: the home's lock
//! keeps every other process out while it is open, so the file cannot
//! change under it, and one command (or one daemon sync, which opens the
//! store for that sync only) needs them many times (device keys,
//! administrator keys, the channels' keys). What is kept is the plaintext
//! of a value the store owns, zeroized with it; nothing outlives the store.

use std::fs;
use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use super::{io, write_atomic, SealedFile, Secrets, Store, StoreError, SECRETS, STORE_VERSION};

/// The secrets of an open store, once decrypted.
#[derive(Default)]
pub(super) struct Opened(OnceLock<Secrets>);

impl Store {
    fn aad(&self) -> Vec<u8> {
        format!("mesh-store-v{STORE_VERSION}:{}", self.state.store_id).into_bytes()
    }

    /// The secrets (decrypted on first use; see the module's comment).
    pub fn secrets(&self) -> Result<Secrets, StoreError> {
        if self.state.wiped {
            return Ok(Secrets::default());
        }
        if let Some(s) = self.secrets.0.get() {
            return Ok(s.clone());
        }
        let opened = self.decrypt_secrets()?;
        Ok(self.secrets.0.get_or_init(|| opened).clone())
    }

    fn decrypt_secrets(&self) -> Result<Secrets, StoreError> {
        let path = self.home.join(SECRETS);
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.clone(),
            detail,
        };
        crate::count::add(crate::count::What::Secrets);
        let raw = fs::read(&path).map_err(io(&path))?;
        let sealed: SealedFile =
            serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))?;
        if sealed.version != STORE_VERSION || sealed.nonce.len() != 12 {
            return Err(corrupt("unknown format".into()));
        }
        let plain = Zeroizing::new(
            Aes256Gcm::new_from_slice(&self.key[..])
                .map_err(|_| corrupt("bad key".into()))?
                .decrypt(
                    Nonce::from_slice(&sealed.nonce),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: &self.aad(),
                    },
                )
                .map_err(|_| corrupt("it does not decrypt under the store key".into()))?,
        );
        serde_json::from_slice(&plain).map_err(|e| corrupt(e.to_string()))
    }

    /// Encrypt and write the secrets atomically.
    pub fn save_secrets(&mut self, secrets: &Secrets) -> Result<(), StoreError> {
        let path = self.home.join(SECRETS);
        let plain = Zeroizing::new(serde_json::to_vec(secrets).unwrap_or_default());
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = Aes256Gcm::new_from_slice(&self.key[..])
            .map_err(|_| StoreError::Corrupt {
                path: path.clone(),
                detail: "bad key".into(),
            })?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &self.aad(),
                },
            )
            .map_err(|_| StoreError::Corrupt {
                path: path.clone(),
                detail: "encryption failed".into(),
            })?;
        let sealed = SealedFile {
            version: STORE_VERSION,
            nonce: nonce.to_vec(),
            ciphertext,
        };
        // What is written is what the store holds now, written or not.
        self.secrets = Opened::default();
        write_atomic(&path, &serde_json::to_vec(&sealed).unwrap_or_default())?;
        let _ = self.secrets.0.set(secrets.clone());
        Ok(())
    }
}
