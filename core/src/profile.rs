//! The account profile and the administrator epochs that move it on
//! (PROTOCOL.md §8.1, §10.5): what a reader trusts about an account, as of
//! its verified history. A leaf below the authority (which builds them) and
//! the device objects (which are checked against them).

use serde::{Deserialize, Serialize};

use crate::claims::Claims;
use crate::ct;
use crate::envelope::{Encrypted, Signed};
use crate::keys::{KeyData, PublicKey};
use crate::{udf, Error};

/// The account profile (schema `ProfileUser`, a `ProfileAccount`). Signed by
/// `ProfileSignature`, whose fingerprint is the account's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileAccount {
    /// `alice@example.com`.
    #[serde(rename = "AccountAddress")]
    pub account_address: String,
    /// The portal URL that serves the account (ours; the schema has `ServiceUdf`).
    #[serde(rename = "Service")]
    pub service: String,
    /// Optional display name.
    #[serde(
        rename = "Description",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// UDFs of the root keys; the profile UDF is computed from them.
    #[serde(rename = "RootUdfs")]
    pub root_udfs: Vec<String>,
    /// The root signature key.
    #[serde(rename = "ProfileSignature")]
    pub profile_signature: KeyData,
    /// Signs connections, access lists and catalog entries.
    #[serde(rename = "AdministratorSignature")]
    pub administrator_signature: KeyData,
    /// Administrators' shared encryption key.
    #[serde(rename = "AdministratorEncryption")]
    pub administrator_encryption: KeyData,
    /// The account's encryption key.
    #[serde(rename = "CommonEncryption")]
    pub common_encryption: KeyData,
    /// The account's authentication key.
    #[serde(rename = "CommonAuthentication")]
    pub common_authentication: KeyData,
    /// The account's signature key.
    #[serde(rename = "CommonSignature")]
    pub common_signature: KeyData,
    /// Escrow encryption key (application keys escrowed to it).
    #[serde(rename = "EscrowEncryption")]
    pub escrow_encryption: KeyData,
    /// What the channels claim (our extension, named by them: the SSH
    /// user CA `SshCertificationAuthority`, the OpenPGP primary's
    /// `OpenpgpFingerprint`). Every other field lands here: a newer
    /// client's claims are kept and ignored.
    #[serde(flatten)]
    pub claims: Claims,
    /// The witness that cosigns the account's checkpoints (ours,
    /// PROTOCOL.md §10.6): every reader asks it before it trusts a head.
    #[serde(rename = "Witness", default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<WitnessRef>,
    /// Not in the signed profile: the keys of earlier administrator
    /// epochs, when this is the profile as of a verified history
    /// ([`ProfileAccount::with_epochs`]).
    #[serde(skip)]
    pub superseded: Vec<Superseded>,
}

impl ProfileAccount {
    /// The profile's UDF: the account's identity.
    pub fn udf(&self) -> String {
        udf::profile_udf(&[self.profile_signature.key.fingerprint()])
    }

    /// The 65-byte profile value (used in witnesses).
    pub fn value(&self) -> Vec<u8> {
        udf::profile_value(&[self.profile_signature.key.fingerprint()])
    }

    /// Verify a signed profile against the pinned profile UDF and return it.
    /// Everything a client trusts about an account chains up to this check.
    pub fn verify(env: &Signed, pinned_udf: &str) -> Result<ProfileAccount, Error> {
        let p: ProfileAccount = env.unverified_object("account profile")?;
        if !udf::udf_eq(&p.udf(), pinned_udf) {
            return Err(Error::BadKey(format!(
                "account profile has UDF {}, expected {pinned_udf}",
                p.udf()
            )));
        }
        p.check_roots()?;
        env.verify_object(
            "account profile",
            ct::PROFILE_ACCOUNT,
            &[p.profile_signature.key],
        )
    }

    /// Verify a signed profile whose UDF is not yet pinned (first contact):
    /// self-consistency only. Returns the profile; the caller pins its UDF.
    pub fn verify_self_signed(env: &Signed) -> Result<ProfileAccount, Error> {
        let p: ProfileAccount = env.unverified_object("account profile")?;
        Self::verify(env, &p.udf())
    }

    fn check_roots(&self) -> Result<(), Error> {
        let want = self.profile_signature.udf();
        if self.root_udfs.len() != 1 || !udf::udf_eq(&self.root_udfs[0], &want) {
            return Err(Error::Malformed(
                "RootUdfs does not match ProfileSignature".into(),
            ));
        }
        Ok(())
    }
}

/// The start of an administrator epoch (our extension, PROTOCOL.md §10.5):
/// its public keys, and its seeds wrapped to the administrator devices that
/// hold it and to escrow. Not `deny_unknown_fields`: the channels'
/// claims are its other fields, and a newer client's are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminEpoch {
    /// Its number: one past the epoch before.
    #[serde(rename = "Number")]
    pub number: u32,
    /// Signs connections, access lists, catalog entries and checkpoints.
    #[serde(rename = "AdministratorSignature")]
    pub administrator_signature: KeyData,
    /// What administrators' shares of secrets are wrapped to.
    #[serde(rename = "AdministratorEncryption")]
    pub administrator_encryption: KeyData,
    /// What the channels claim for this epoch (its SSH CA, its OpenPGP
    /// primary's fingerprint), by the channels' names.
    #[serde(flatten)]
    pub claims: Claims,
    /// [`crate::authority::OnlineSeeds`], encrypted.
    #[serde(rename = "EnvelopedSeeds")]
    pub seeds: Encrypted,
}

impl ProfileAccount {
    /// The profile as of `epochs` (oldest first): the current
    /// administrator keys are the latest epoch's, each epoch's claims
    /// replace the same-named ones before it, and what they replaced is
    /// listed in [`ProfileAccount::superseded`] (the KRL names old SSH CAs;
    /// readers of a verified history accept entries signed in any epoch of
    /// it).
    pub fn with_epochs<'a>(
        &self,
        epochs: impl IntoIterator<Item = &'a AdminEpoch>,
    ) -> ProfileAccount {
        let mut p = self.clone();
        for e in epochs {
            p.superseded.push(Superseded {
                administrator_signature: p.administrator_signature.clone(),
                claims: p.claims.clone(),
            });
            p.administrator_signature = e.administrator_signature.clone();
            p.administrator_encryption = e.administrator_encryption.clone();
            p.claims.update(&e.claims);
        }
        p
    }

    /// The current administrator epoch (0: the profile's own keys).
    pub fn epoch(&self) -> u32 {
        self.superseded.len() as u32
    }

    /// Keys an entry of a verified history may be signed with: every
    /// epoch's administrator key.
    pub fn history_signers(&self) -> Vec<PublicKey> {
        let mut v: Vec<PublicKey> = self
            .superseded
            .iter()
            .map(|s| s.administrator_signature.key)
            .collect();
        v.push(self.administrator_signature.key);
        v
    }
}

/// Keys an earlier administrator epoch used (not serialized: derived from
/// the verified history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superseded {
    /// That epoch's administrator signature key.
    pub administrator_signature: KeyData,
    /// The claims as they stood in that epoch (its SSH CA...).
    pub claims: Claims,
}

/// The witness an account names in its profile (ours).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessRef {
    /// The witness's URL (a portal run with `--witness`).
    #[serde(rename = "Service")]
    pub service: String,
    /// The key its heads are signed with.
    #[serde(rename = "Key")]
    pub key: KeyData,
}
