//! Asking the account's witness (PROTOCOL.md §10.6) whether the head a
//! reader verified is the one it signed. Every reader of an account whose
//! profile names a witness asks: devices on each sync and before a wipe,
//! servers on each fetch. A portal that serves a branch the witness never
//! signed (restored from a backup, a revoked administrator writing on it),
//! or withholds what the witness signed, is refused.

use mesh_core::keys::KeyData;
use mesh_core::objects::ProfileAccount;
use mesh_core::witness::{standing, Standing, WitnessAnswer, WitnessHead, WitnessRequest};

use crate::client::{now, Client};
use crate::error::{AccountError, Result};

/// The key of the witness at `url` (what `mesh account create --witness`
/// names in the profile; the root signs it there).
pub fn key_of(url: &str) -> Result<KeyData> {
    let client = Client::new(url)?;
    let a: WitnessAnswer = client
        .post("Witness", &WitnessRequest::default())
        .map_err(|e| AccountError::Witness {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    Ok(a.key)
}

/// What the witness said of the reader's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The profile names no witness.
    NoWitness,
    /// The witness signed exactly the reader's head.
    Confirmed,
    /// The witness signed a later checkpoint: the portal withheld it, or a
    /// transaction landed between the reader's download and the witness's
    /// read. Download again; [`behind`] is the error when it stays so.
    Behind(u64),
}

/// The error for a portal that stays behind what the witness signed.
pub fn behind(serial: u64, witness: u64) -> AccountError {
    AccountError::Untrusted(format!(
        "the portal serves checkpoint {serial}, but the account's witness signed checkpoint {witness}: the portal withholds what is newer, or was restored from an older backup"
    ))
}

/// [`confirm`], with a witness that is ahead an error: for readers that
/// download once.
pub fn require(profile: &ProfileAccount, serial: u64, digest: &str) -> Result<()> {
    match confirm(profile, serial, digest)? {
        Verdict::Behind(w) => Err(behind(serial, w)),
        _ => Ok(()),
    }
}

/// Whether the account's witness signed exactly `serial`/`digest` (the
/// reader's verified latest checkpoint). The witness reads the portal
/// itself first.
pub fn confirm(profile: &ProfileAccount, serial: u64, digest: &str) -> Result<Verdict> {
    let Some(w) = &profile.witness else {
        return Ok(Verdict::NoWitness);
    };
    let failed = |reason: String| AccountError::Witness {
        url: w.service.clone(),
        reason,
    };
    let client = Client::new(&w.service)?;
    let udf = profile.udf();
    let ans: WitnessAnswer = client
        .post(
            "Witness",
            &WitnessRequest {
                profile_udf: udf.clone(),
                portal: profile.service.clone(),
            },
        )
        .map_err(|e| failed(e.to_string()))?;
    let env = ans
        .head
        .ok_or_else(|| failed(ans.stopped.clone().unwrap_or_else(|| "no head".into())))?;
    let head = WitnessHead::verify(&env, &w.key.key, &udf, now())
        .map_err(|e| failed(format!("its answer does not verify: {e}")))?;
    let why = ans
        .stopped
        .map(|s| format!(" (the witness says: {s})"))
        .unwrap_or_default();
    match standing(&head, serial, digest) {
        Standing::Confirmed => Ok(Verdict::Confirmed),
        Standing::PortalBehind { witness } => Ok(Verdict::Behind(witness)),
        Standing::Fork => Err(AccountError::Untrusted(format!(
            "the portal's checkpoint {serial} is not the one the account's witness signed: the portal serves a branch of the history (restored from a backup and written on with a revoked key?){why}"
        ))),
        Standing::WitnessBehind { witness } => Err(AccountError::Untrusted(format!(
            "the account's witness has signed up to checkpoint {witness}, not the portal's {serial}{why}"
        ))),
    }
}

/// A sync right after this device's own committed write: a witness that
/// could not confirm it is reported as such, never as a failed write.
pub fn after_commit(e: AccountError) -> AccountError {
    match e {
        e @ AccountError::Witness { .. } => AccountError::Unwitnessed(Box::new(e)),
        e => e,
    }
}
