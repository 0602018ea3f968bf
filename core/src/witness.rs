//! Witnesses (PROTOCOL.md §10.6): a service the account's root-signed
//! profile names, which reads the account's checkpoints from its portal,
//! verifies each extends the chain it already holds, and signs the head it
//! reached. It never signs a second chain: once it has the checkpoint that
//! revokes an administrator, a portal restored from an older backup (and
//! the revoked administrator's copy writing on it) cannot get a head
//! signed, so every reader that asks the witness refuses that branch,
//! including readers with no history of their own.
//!
//! This module is the sans-io part: the messages, the witness's memory of
//! one account, and how a reader judges the witness's answer.

use serde::{Deserialize, Serialize};

use crate::envelope::Signed;
use crate::history::{History, HistoryError};
use crate::keys::{KeyData, PublicKey};
use crate::profile::ProfileAccount;
use crate::{udf, Error};

/// Content type of a [`WitnessHead`].
pub const CT_WITNESS_HEAD: &str = "WitnessHead";

/// Seconds a witness's signed head may be from the reader's clock.
pub const MAX_SKEW: u64 = 300;

pub use crate::profile::WitnessRef;

/// `POST /mesh/v1/Witness`: "read account X from its portal and tell me
/// your head". `ProfileUdf` empty asks only for the witness's key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessRequest {
    /// The account.
    #[serde(rename = "ProfileUdf")]
    pub profile_udf: String,
    /// Where to read it the first time (later: the profile's `Service`).
    #[serde(rename = "Portal", default, skip_serializing_if = "String::is_empty")]
    pub portal: String,
}

/// The witness's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessAnswer {
    /// The witness's key.
    #[serde(rename = "Key")]
    pub key: KeyData,
    /// Its signed [`WitnessHead`] for the account asked about.
    #[serde(
        rename = "EnvelopedHead",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub head: Option<Signed>,
    /// Why it could not go further than that head (the portal's answer
    /// did not extend its chain, or could not be read): for the message.
    #[serde(rename = "Stopped", default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// What a witness signs: the newest checkpoint of the account's chain it
/// verified, and when it last read the portal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessHead {
    /// The account.
    #[serde(rename = "ProfileUdf")]
    pub profile_udf: String,
    /// The checkpoint's serial (0: none yet).
    #[serde(rename = "Serial")]
    pub serial: u64,
    /// The digest of its signed bytes, base64url (as `Previous`, §10.4).
    #[serde(rename = "Digest")]
    pub digest: String,
    /// When the witness read the portal (Unix seconds).
    #[serde(rename = "Time")]
    pub time: u64,
}

impl WitnessHead {
    /// Verify a signed head: by `key`, for `profile_udf`, and read within
    /// [`MAX_SKEW`] of `now` (a replayed old head says nothing of today).
    pub fn verify(
        env: &Signed,
        key: &PublicKey,
        profile_udf: &str,
        now: u64,
    ) -> Result<WitnessHead, Error> {
        let h: WitnessHead = env.verify_object("witness head", CT_WITNESS_HEAD, &[*key])?;
        if !udf::udf_eq(&h.profile_udf, profile_udf) {
            return Err(Error::Malformed(format!(
                "the witness answered for account {}",
                h.profile_udf
            )));
        }
        if h.time.abs_diff(now) > MAX_SKEW {
            return Err(Error::Malformed(format!(
                "the witness's head is dated {}, more than {MAX_SKEW} s from this clock ({now})",
                h.time
            )));
        }
        Ok(h)
    }
}

/// How a reader stands against the witness's head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The witness signed exactly the reader's latest checkpoint.
    Confirmed,
    /// The witness signed a later checkpoint than the portal served the
    /// reader: the portal withholds, or was restored from a backup.
    PortalBehind {
        /// The witness's serial.
        witness: u64,
    },
    /// The witness has not reached the reader's checkpoint (it could not
    /// read it, or it refused the chain that leads there).
    WitnessBehind {
        /// The witness's serial.
        witness: u64,
    },
    /// The witness signed another checkpoint at the reader's serial: two
    /// branches.
    Fork,
}

/// Judge the witness's `head` against the reader's latest checkpoint.
pub fn standing(head: &WitnessHead, serial: u64, digest: &str) -> Standing {
    use std::cmp::Ordering::*;
    match head.serial.cmp(&serial) {
        Greater => Standing::PortalBehind {
            witness: head.serial,
        },
        Less => Standing::WitnessBehind {
            witness: head.serial,
        },
        Equal if head.digest == digest => Standing::Confirmed,
        Equal => Standing::Fork,
    }
}

/// What a witness keeps of one account: the profile it verified and the
/// history of checkpoints it accepted (the chain, the epochs).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Witnessed {
    /// The account profile (root-signed).
    #[serde(rename = "EnvelopedProfileAccount")]
    pub profile: Signed,
    /// The verified chain.
    #[serde(rename = "History")]
    pub history: History,
}

impl Witnessed {
    /// Start witnessing an account whose profile names `me`.
    pub fn start(
        profile_env: &Signed,
        profile_udf: &str,
        me: &PublicKey,
    ) -> Result<Witnessed, Error> {
        let p = ProfileAccount::verify(profile_env, profile_udf)?;
        match &p.witness {
            Some(w) if w.key.key == *me => Ok(Witnessed {
                profile: profile_env.clone(),
                history: History::default(),
            }),
            _ => Err(Error::Malformed(format!(
                "account {profile_udf} does not name this witness in its profile"
            ))),
        }
    }

    /// The profile, verified when witnessing started.
    pub fn profile(&self) -> Result<ProfileAccount, Error> {
        self.profile.unverified_object("account profile")
    }

    /// Extend the chain with the checkpoint at `index`; refused (and the
    /// chain unchanged) unless it follows the last one, signed by the
    /// current epoch's key: a fork or a rollback is never signed.
    pub fn extend(&mut self, index: u64, env: &Signed) -> Result<(), HistoryError> {
        let base = self.profile().map_err(|e| HistoryError::Checkpoint {
            serial: index,
            detail: e.to_string(),
        })?;
        let mut next = self.history.clone();
        next.checkpoint(index, env, &base)?;
        self.history = next;
        Ok(())
    }

    /// The head to sign now.
    pub fn head(&self, profile_udf: &str, now: u64) -> WitnessHead {
        WitnessHead {
            profile_udf: profile_udf.to_string(),
            serial: self.history.serial(),
            digest: self.history.digest.clone(),
            time: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(serial: u64, digest: &str) -> WitnessHead {
        WitnessHead {
            profile_udf: "MB".into(),
            serial,
            digest: digest.into(),
            time: 0,
        }
    }

    #[test]
    fn a_reader_stands_against_the_witness_head() {
        let cases = [
            (head(3, "d"), 3, "d", Standing::Confirmed),
            (head(3, "e"), 3, "d", Standing::Fork),
            (head(4, "x"), 3, "d", Standing::PortalBehind { witness: 4 }),
            (head(2, "x"), 3, "d", Standing::WitnessBehind { witness: 2 }),
        ];
        for (h, serial, digest, want) in cases {
            assert_eq!(standing(&h, serial, digest), want, "{h:?}");
        }
    }

    #[test]
    fn a_head_is_refused_when_forged_for_another_account_or_stale() {
        let k = crate::keys::SigningKey::from_seed(&[3; 32]);
        let other = crate::keys::SigningKey::from_seed(&[4; 32]);
        let mut h = head(1, "d");
        h.time = 1_000;
        let env = Signed::sign_object(CT_WITNESS_HEAD, &h, &k);
        let pk = k.public_key();
        assert!(WitnessHead::verify(&env, &pk, "MB", 1_000).is_ok());
        let cases: [(&str, Signed, &str, u64); 4] = [
            (
                "another key",
                Signed::sign_object(CT_WITNESS_HEAD, &h, &other),
                "MB",
                1_000,
            ),
            ("another account", env.clone(), "MC", 1_000),
            ("replayed later", env.clone(), "MB", 1_000 + MAX_SKEW + 1),
            ("dated ahead", env.clone(), "MB", 1_000 - MAX_SKEW - 1),
        ];
        for (what, e, udf_, now) in cases {
            assert!(WitnessHead::verify(&e, &pk, udf_, now).is_err(), "{what}");
        }
    }
}
