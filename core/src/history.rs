//! The account's history, which a portal cannot rewrite (PROTOCOL.md
//! §10.4).
//!
//! Every administrator transaction appends one signed [`Checkpoint`] to the
//! Checkpoint store. Its serial is its index there, it names the digest of
//! the checkpoint before it, and it gives, for every store an administrator
//! signs ([`store::COVERED`]), the last index and the hash chain over that
//! store's entries:
//!
//! ```text
//! chain(0)     = 32 zero bytes
//! chain(i)     = SHA-256("Mesh.Chain.v1" 0x00 || chain(i-1) || BE64(i)
//!                        || SHA-256(signed bytes of entry i))
//! ```
//!
//! A reader extends each chain with the entries it downloads, checks each
//! checkpoint against the one before it, and at the end of a download
//! requires the latest checkpoint's heads to be exactly where its chains
//! stand. So an entry dropped, inserted, reordered, replayed at a later
//! index or served from a fork breaks a chain, and a store served short of
//! (or past) the signed head is refused. A reader that kept its
//! [`History`] also refuses any answer that puts a store, or the
//! checkpoints, behind what it has seen (rollback). What a reader with no
//! history cannot tell is a whole consistent older state: see
//! docs/DESIGN.md, "History".
//!
//! Hand-written: this is Mesh's own binding, no crate provides it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::Signed;
use crate::portal::{ct, store, StoreIndex, StoreUpdate};
use crate::profile::AdminEpoch;
use crate::profile::ProfileAccount;
use crate::{b64, udf};

/// Where one store stands in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Store name (one of [`store::COVERED`]).
    #[serde(rename = "Store")]
    pub store: String,
    /// Its last index (0: empty).
    #[serde(rename = "Index")]
    pub index: u64,
    /// The hash chain over its entries up to `index`, base64url.
    #[serde(rename = "Chain")]
    pub chain: String,
}

/// A signed head of the account's stores (content type
/// [`ct::CHECKPOINT`], signed by AdministratorSignature).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The account's profile UDF.
    #[serde(rename = "ProfileUdf")]
    pub profile_udf: String,
    /// Its index in the Checkpoint store, from 1.
    #[serde(rename = "Serial")]
    pub serial: u64,
    /// Digest of the previous checkpoint's signed bytes (empty for the first).
    #[serde(rename = "Previous")]
    pub previous: String,
    /// One head per covered store, in [`store::COVERED`] order.
    #[serde(rename = "Heads")]
    pub heads: Vec<Head>,
    /// Seconds since the Unix epoch.
    #[serde(rename = "Issued")]
    pub issued: u64,
    /// The administrator epoch this transaction starts (signed by the
    /// keys of the epoch before it, or by the root).
    #[serde(rename = "Epoch", default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<AdminEpoch>,
}

/// What is wrong with the history a portal served. Every case blames the
/// portal: an administrator's own writes always make a consistent history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// An entry that does not continue its store.
    #[error("the {store} store skips from entry {known} to {served}")]
    Gap {
        /// Store.
        store: String,
        /// The last index the reader has.
        known: u64,
        /// The index served next.
        served: u64,
    },
    /// A store or the checkpoints put behind what the reader has seen.
    #[error("the portal rolled the {store} store back to {served} after serving up to {known}")]
    Rollback {
        /// Store.
        store: String,
        /// What the reader has.
        known: u64,
        /// What the portal says now.
        served: u64,
    },
    /// Entries that are not the ones the checkpoint signs.
    #[error("the {store} store up to entry {index} is not the history the administrators signed (entries dropped, replaced, reordered or from a fork)")]
    Rewritten {
        /// Store.
        store: String,
        /// Where the chains part.
        index: u64,
    },
    /// Fewer entries than the latest checkpoint signs.
    #[error("the {store} store was served up to entry {served}, but the latest checkpoint signs {head}: entries were withheld")]
    Truncated {
        /// Store.
        store: String,
        /// What the checkpoint signs.
        head: u64,
        /// What was served.
        served: u64,
    },
    /// Entries past what any checkpoint signs.
    #[error(
        "the {store} store has entries up to {served}, past the {head} the latest checkpoint signs"
    )]
    Unsigned {
        /// Store.
        store: String,
        /// What the checkpoint signs.
        head: u64,
        /// What was served.
        served: u64,
    },
    /// A checkpoint that does not verify or does not follow the one before.
    #[error("checkpoint {serial}: {detail}")]
    Checkpoint {
        /// Its serial (or index).
        serial: u64,
        /// What is wrong.
        detail: String,
    },
}

/// Result of history checks.
pub type Result<T> = std::result::Result<T, HistoryError>;

/// One step of a store's hash chain.
pub fn chain_step(prev: &[u8; 32], index: u64, entry: &Signed) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"Mesh.Chain.v1\0");
    h.update(prev);
    h.update(index.to_be_bytes());
    h.update(entry.content_digest());
    h.finalize().into()
}

/// Where a reader stands in one store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Last index read (0: none).
    #[serde(rename = "Index")]
    pub index: u64,
    /// The chain up to it, base64url (empty: the zero chain).
    #[serde(rename = "Chain", default)]
    pub chain: String,
}

impl Position {
    fn chain_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(b) = b64::decode(&self.chain) {
            if b.len() == 32 {
                out.copy_from_slice(&b);
            }
        }
        out
    }

    fn step(&mut self, index: u64, entry: &Signed) {
        self.chain = b64::encode(&chain_step(&self.chain_bytes(), index, entry));
        self.index = index;
    }
}

/// What a reader has verified of an account's history: a position per
/// covered store it reads and the latest checkpoint. Kept between runs, it
/// is the lower bound every later answer must continue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Position per covered store read.
    #[serde(rename = "Stores", default)]
    pub stores: BTreeMap<String, Position>,
    /// The latest checkpoint.
    #[serde(
        rename = "Checkpoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub checkpoint: Option<Checkpoint>,
    /// Digest of its signed bytes, base64url.
    #[serde(rename = "Digest", default)]
    pub digest: String,
    /// Every administrator epoch the checkpoints started, oldest first.
    #[serde(rename = "Epochs", default, skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<AdminEpoch>,
}

impl Checkpoint {
    /// Verify a signed checkpoint against the account profile as of the
    /// history before it (`profile` is effective: its administrator key is
    /// the current epoch's). The root may sign any checkpoint; returns
    /// whether it did.
    pub fn verify(env: &Signed, profile: &ProfileAccount) -> Result<(Checkpoint, bool)> {
        let bad = |serial, detail: String| HistoryError::Checkpoint { serial, detail };
        let root = env
            .signatures
            .iter()
            .any(|s| udf::udf_eq(&s.kid, &profile.profile_signature.udf()));
        let signer = if root {
            profile.profile_signature.key
        } else {
            profile.administrator_signature.key
        };
        let c: Checkpoint = env
            .verify_object("checkpoint", ct::CHECKPOINT, &[signer])
            .map_err(|e| {
                let hint = if matches!(e, crate::Error::UnauthorizedSigner(_)) {
                    format!(
                        "{e}: not the administrator key of epoch {} (a revoked administrator's, or another account's)",
                        profile.epoch()
                    )
                } else {
                    e.to_string()
                };
                bad(0, hint)
            })?;
        if !udf::udf_eq(&c.profile_udf, &profile.udf()) {
            return Err(bad(c.serial, format!("is for account {}", c.profile_udf)));
        }
        let names: Vec<&str> = c.heads.iter().map(|h| h.store.as_str()).collect();
        if names != store::COVERED {
            return Err(bad(
                c.serial,
                format!("heads {names:?} are not {:?}", store::COVERED),
            ));
        }
        if let Some(e) = &c.epoch {
            let want = profile.epoch() + 1;
            if e.number != want {
                return Err(bad(
                    c.serial,
                    format!("starts administrator epoch {} after {}", e.number, want - 1),
                ));
            }
        }
        Ok((c, root))
    }

    /// The head of a store.
    pub fn head(&self, store_name: &str) -> Option<&Head> {
        self.heads.iter().find(|h| h.store == store_name)
    }
}

impl History {
    /// The position of a store (0 when nothing was read).
    pub fn position(&self, store_name: &str) -> Position {
        self.stores.get(store_name).cloned().unwrap_or_default()
    }

    /// The latest checkpoint's serial (0: none yet).
    pub fn serial(&self) -> u64 {
        self.checkpoint.as_ref().map_or(0, |c| c.serial)
    }

    /// The next entry of a covered store, at `index`.
    pub fn entry(&mut self, store_name: &str, index: u64, entry: &Signed) -> Result<()> {
        let pos = self.stores.entry(store_name.to_string()).or_default();
        if index != pos.index + 1 {
            return Err(HistoryError::Gap {
                store: store_name.into(),
                known: pos.index,
                served: index,
            });
        }
        pos.step(index, entry);
        Ok(())
    }

    /// The next checkpoint, at `index` of the Checkpoint store: signed by
    /// the account, numbered by its index, naming the one before, and never
    /// taking a store back.
    pub fn checkpoint(&mut self, index: u64, env: &Signed, profile: &ProfileAccount) -> Result<()> {
        let (c, _) = Checkpoint::verify(env, &self.profile(profile))?;
        let bad = |detail: String| HistoryError::Checkpoint {
            serial: index,
            detail,
        };
        if index != self.serial() + 1 {
            return Err(HistoryError::Gap {
                store: store::CHECKPOINT.into(),
                known: self.serial(),
                served: index,
            });
        }
        if c.serial != index {
            return Err(bad(format!("says serial {} at index {index}", c.serial)));
        }
        if c.previous != self.digest {
            return Err(bad(
                "does not follow the checkpoint before it (a fork)".into()
            ));
        }
        if let Some(prev) = &self.checkpoint {
            // Times are chosen by the signer: only their order binds it, so
            // a thief cannot date a checkpoint before the one it follows
            // (and so slip it before a recovery's `--since`).
            if c.issued < prev.issued {
                return Err(bad(format!(
                    "is dated {}, before the checkpoint it follows ({})",
                    c.issued, prev.issued
                )));
            }
            for (old, new) in prev.heads.iter().zip(&c.heads) {
                let rewinds = new.index < old.index;
                let forks = new.index == old.index && new.chain != old.chain;
                if rewinds || forks {
                    return Err(bad(format!("takes the {} store back", new.store)));
                }
            }
        }
        self.digest = b64::encode(&env.content_digest());
        self.epochs.extend(c.epoch.clone());
        self.checkpoint = Some(c);
        Ok(())
    }

    /// The account profile as of this history: the latest administrator
    /// epoch's keys (`base` is the root-signed profile).
    pub fn profile(&self, base: &ProfileAccount) -> ProfileAccount {
        base.with_epochs(&self.epochs)
    }

    /// Start a store nothing was read of at `head` (a head a checkpoint of
    /// this history signs, at or before the latest one's) instead of at its
    /// first entry: a reader that keeps only the newest entry of a store
    /// then downloads only what follows `head`. The chain goes on from the
    /// signed one, so [`History::settle`] still requires the entries served
    /// after it to be exactly the ones the latest checkpoint signs (a
    /// portal would have to find a SHA-256 collision to serve others).
    /// What the reader gives up is only the entries before `head`.
    pub fn start_at(&mut self, head: &Head) -> Result<()> {
        let latest = self
            .checkpoint
            .as_ref()
            .and_then(|c| c.head(&head.store))
            .map_or(0, |h| h.index);
        let read = self.position(&head.store).index;
        if read != 0 || head.index > latest || !store::COVERED.contains(&head.store.as_str()) {
            return Err(HistoryError::Checkpoint {
                serial: self.serial(),
                detail: format!(
                    "cannot start the {} store at {} (read up to {read}, signed up to {latest})",
                    head.store, head.index
                ),
            });
        }
        self.stores.insert(
            head.store.clone(),
            Position {
                index: head.index,
                chain: head.chain.clone(),
            },
        );
        Ok(())
    }

    /// After a complete download: every covered store in `read` must stand
    /// exactly where the latest checkpoint says.
    pub fn settle<'a>(&self, read: impl IntoIterator<Item = &'a str>) -> Result<()> {
        for name in read {
            if !store::COVERED.contains(&name) {
                continue;
            }
            let pos = self.position(name);
            let head = self
                .checkpoint
                .as_ref()
                .and_then(|c| c.head(name))
                .cloned()
                .unwrap_or(Head {
                    store: name.into(),
                    index: 0,
                    chain: String::new(),
                });
            let err = match pos.index.cmp(&head.index) {
                std::cmp::Ordering::Less => HistoryError::Truncated {
                    store: name.into(),
                    head: head.index,
                    served: pos.index,
                },
                std::cmp::Ordering::Greater => HistoryError::Unsigned {
                    store: name.into(),
                    head: head.index,
                    served: pos.index,
                },
                std::cmp::Ordering::Equal if pos.chain_bytes() != head_chain(&head) => {
                    HistoryError::Rewritten {
                        store: name.into(),
                        index: head.index,
                    }
                }
                std::cmp::Ordering::Equal => continue,
            };
            return Err(err);
        }
        Ok(())
    }

    /// A store index the portal reports (Status) that is behind what this
    /// reader has seen is a rollback.
    pub fn behind(&self, reported: &[StoreIndex]) -> Result<()> {
        for r in reported {
            let known = if r.store == store::CHECKPOINT {
                self.serial()
            } else if store::COVERED.contains(&r.store.as_str()) {
                self.position(&r.store).index
            } else {
                continue;
            };
            if r.index < known {
                return Err(HistoryError::Rollback {
                    store: r.store.clone(),
                    known,
                    served: r.index,
                });
            }
        }
        Ok(())
    }

    /// The checkpoint that an administrator appends with `updates` (all
    /// from the positions this history holds): the writer's side. It is
    /// dated `issued`, or the previous checkpoint's date when the writer's
    /// clock is behind it (dates never go back along the chain).
    pub fn next(
        &self,
        profile_udf: &str,
        updates: &[StoreUpdate],
        issued: u64,
        epoch: Option<AdminEpoch>,
    ) -> Checkpoint {
        let mut stores = self.stores.clone();
        for u in updates {
            let pos = stores.entry(u.store.clone()).or_default();
            for env in &u.envelopes {
                let next = pos.index + 1;
                pos.step(next, env);
            }
        }
        let heads = store::COVERED
            .iter()
            .map(|s| {
                let p = stores.get(*s).cloned().unwrap_or_default();
                Head {
                    store: s.to_string(),
                    index: p.index,
                    chain: b64::encode(&p.chain_bytes()),
                }
            })
            .collect();
        Checkpoint {
            profile_udf: profile_udf.to_string(),
            serial: self.serial() + 1,
            previous: self.digest.clone(),
            heads,
            issued: issued.max(self.checkpoint.as_ref().map_or(0, |c| c.issued)),
            epoch,
        }
    }
}

fn head_chain(h: &Head) -> [u8; 32] {
    Position {
        index: h.index,
        chain: h.chain.clone(),
    }
    .chain_bytes()
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
