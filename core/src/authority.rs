//! Who speaks for an account: the root, and the administrators' online keys
//! of an epoch (docs/DESIGN.md, "A stolen administrator").
//!
//! - The **root** ([`RootKeys`]) is the account seed: it derives the
//!   profile key (whose fingerprint is the account's identity), the escrow
//!   key and the common keys. `mesh account create` splits it into recovery
//!   shares and keeps no copy; only recovery rebuilds it.
//! - The **online keys** ([`AccountKeys`]) come from a random seed per
//!   *administrator epoch*: administrator signature and encryption, and
//!   the keys channels derive from it by name (an SSH CA, an S/MIME CA, an
//!   OpenPGP primary: [`AccountKeys::online_ed25519`]). Administrator devices hold
//!   the online seeds; revoking an administrator starts the next epoch,
//!   whose seed is wrapped only to the remaining administrators (and to
//!   escrow), so that the revoked device's copy vouches for nothing new.
//! - An [`AdminEpoch`], carried in the checkpoint of the transaction that
//!   starts it and signed by the keys of the epoch before (or by the root),
//!   names the new public keys and the channels' new [`Claims`]. Readers take the current ones from the
//!   verified history ([`crate::history::History::profile`]).
//!
//! Hand-written: this hierarchy is Mesh's own; no crate provides it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::claims::Claims;
use crate::ct;
use crate::derive::{key_name, spec, KeyAlg, Seed};
use crate::envelope::{Encrypted, Signed};
use crate::keys::{AgreementKey, KeyData, PublicKey, SigningKey};
use crate::profile::ProfileAccount;
pub use crate::profile::{AdminEpoch, Superseded};
use crate::{udf, Error};

/// Content type of the online seeds, encrypted to administrator devices.
pub const CT_ONLINE_SEEDS: &str = "OnlineSeeds";

/// The account's root: held by nobody once the account exists (it lives
/// in the recovery shares), rebuilt only to recover.
pub struct RootKeys {
    seed: Seed,
    /// The profile key: the account's identity.
    pub profile: SigningKey,
    /// Escrow: every shared secret is also wrapped to it.
    pub escrow: AgreementKey,
    /// Common encryption key (in the profile).
    pub encrypt: AgreementKey,
    /// Common authentication key (in the profile).
    pub authenticate: SigningKey,
    /// Common signature key (in the profile).
    pub sign: SigningKey,
}

impl std::fmt::Debug for RootKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKeys")
            .field("profile", &self.profile.public_key())
            .finish_non_exhaustive()
    }
}

impl RootKeys {
    /// A fresh root.
    pub fn generate() -> RootKeys {
        RootKeys::from_seed(Seed::generate(spec::MESH_PROFILE_ACCOUNT))
            .unwrap_or_else(|_| unreachable!("a fresh seed has the account spec"))
    }

    /// Rebuild the root from its seed (what the recovery shares give).
    pub fn from_seed(seed: Seed) -> Result<RootKeys, Error> {
        if seed.spec() != spec::MESH_PROFILE_ACCOUNT {
            return Err(Error::Malformed(format!(
                "seed has key spec {:#06x}, not an account seed",
                seed.spec()
            )));
        }
        let n = |op: &str| key_name("Complete", "Account", op, 0);
        Ok(RootKeys {
            profile: SigningKey::derive(&seed, &n("Profile")),
            escrow: AgreementKey::derive(&seed, &n("Escrow")),
            encrypt: AgreementKey::derive(&seed, &n("Encrypt")),
            authenticate: SigningKey::derive(&seed, &n("Authenticate")),
            sign: SigningKey::derive(&seed, &n("Sign")),
            seed,
        })
    }

    /// The seed (what the recovery shares split).
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// The online keys of epoch 0. Their seed is derived from the root (one
    /// way), so that recovery rebuilds them; later epochs' seeds are random
    /// and wrapped to escrow in their [`AdminEpoch`].
    pub fn first_epoch(&self) -> AccountKeys {
        let random = self.seed.derive(
            KeyAlg::Ed25519,
            &key_name("Complete", "Account", "OnlineSeed", 0),
        );
        let seed = Seed::from_parts(spec::MESH_ONLINE_ACCOUNT, &random[..])
            .unwrap_or_else(|_| unreachable!("32 bytes"));
        AccountKeys::from_seeds(&self.profile_udf(), [(0, seed)].into())
            .unwrap_or_else(|_| unreachable!("an online seed"))
            .with_root(self)
    }

    /// The account's profile UDF.
    pub fn profile_udf(&self) -> String {
        udf::profile_udf(&[self.profile.public_key().fingerprint()])
    }

    /// Build and sign the account profile, naming epoch 0's online keys
    /// and what the channels claim ([`Claims`]).
    pub fn profile(
        &self,
        address: &str,
        service: &str,
        description: Option<String>,
        online: &AccountKeys,
        claims: Claims,
        witness: Option<crate::profile::WitnessRef>,
    ) -> Signed {
        let root = KeyData::new(self.profile.public_key());
        let p = ProfileAccount {
            account_address: address.to_string(),
            service: service.to_string(),
            description,
            root_udfs: vec![root.udf()],
            profile_signature: root,
            administrator_signature: KeyData::new(online.admin_sign.public_key()),
            administrator_encryption: KeyData::new(online.admin_encrypt.public_key()),
            common_encryption: KeyData::new(self.encrypt.public_key()),
            common_authentication: KeyData::new(self.authenticate.public_key()),
            common_signature: KeyData::new(self.sign.public_key()),
            escrow_encryption: KeyData::new(self.escrow.public_key()),
            claims,
            witness,
            superseded: Vec::new(),
        };
        Signed::sign_object(ct::PROFILE_ACCOUNT, &p, &self.profile)
    }
}

/// The administrators' online keys of the current epoch, and the seeds of
/// the epochs before it (the OpenPGP channel re-derives keys of the epoch
/// that made them; older wraps open with older keys).
pub struct AccountKeys {
    seeds: BTreeMap<u32, Seed>,
    epoch: u32,
    profile_udf: String,
    escrow: Option<AgreementKey>,
    /// Every held epoch's administrator encryption key, newest first
    /// (derived once: each opening of an older wrap tries them).
    earlier_encrypt: Vec<AgreementKey>,
    /// Administrator signature key.
    pub admin_sign: SigningKey,
    /// Administrator encryption key.
    pub admin_encrypt: AgreementKey,
}

impl std::fmt::Debug for AccountKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKeys")
            .field("epoch", &self.epoch)
            .field("admin_sign", &self.admin_sign.public_key())
            .finish_non_exhaustive()
    }
}

fn online_seed(seed: &Seed) -> Result<(), Error> {
    if seed.spec() != spec::MESH_ONLINE_ACCOUNT {
        return Err(Error::Malformed(format!(
            "seed has key spec {:#06x}, not an administrator epoch's seed",
            seed.spec()
        )));
    }
    Ok(())
}

impl AccountKeys {
    /// The online keys of epoch 0 of a new account.
    pub fn generate(profile_udf: &str) -> AccountKeys {
        let seed = Seed::generate(spec::MESH_ONLINE_ACCOUNT);
        AccountKeys::from_seeds(profile_udf, [(0, seed)].into())
            .unwrap_or_else(|_| unreachable!("a fresh seed has the online spec"))
    }

    /// The keys of the latest epoch among `seeds`.
    pub fn from_seeds(profile_udf: &str, seeds: BTreeMap<u32, Seed>) -> Result<AccountKeys, Error> {
        let (&epoch, seed) = seeds
            .iter()
            .next_back()
            .ok_or_else(|| Error::Malformed("no administrator epoch seed".into()))?;
        for s in seeds.values() {
            online_seed(s)?;
        }
        let n = |op: &str| key_name("Online", "Account", op, epoch);
        let earlier_encrypt = seeds
            .iter()
            .rev()
            .map(|(e, s)| {
                AgreementKey::derive(s, &key_name("Online", "Account", "AdminEncrypt", *e))
            })
            .collect();
        Ok(AccountKeys {
            earlier_encrypt,
            admin_sign: SigningKey::derive(seed, &n("AdminSign")),
            admin_encrypt: AgreementKey::derive(seed, &n("AdminEncrypt")),
            epoch,
            profile_udf: profile_udf.to_string(),
            escrow: None,
            seeds,
        })
    }

    /// Forget the root's escrow key (an administrator device never keeps it).
    pub fn without_root(mut self) -> AccountKeys {
        self.escrow = None;
        self
    }

    /// The keys of the next epoch: a fresh seed, the older ones kept.
    pub fn next_epoch(&self) -> AccountKeys {
        self.next_epoch_at(self.epoch + 1)
    }

    /// The keys of epoch `number` (past every epoch held): a fresh seed.
    pub fn next_epoch_at(&self, number: u32) -> AccountKeys {
        let mut seeds = self.clone_seeds();
        seeds.insert(
            number.max(self.epoch + 1),
            Seed::generate(spec::MESH_ONLINE_ACCOUNT),
        );
        let mut next = AccountKeys::from_seeds(&self.profile_udf, seeds)
            .unwrap_or_else(|_| unreachable!("the seeds were checked"));
        next.escrow = self.escrow.clone();
        next
    }

    /// A second copy of these keys.
    pub fn clone_keys(&self) -> AccountKeys {
        let mut k = AccountKeys::from_seeds(&self.profile_udf, self.clone_seeds())
            .unwrap_or_else(|_| unreachable!("the seeds were checked"));
        k.escrow = self.escrow.clone();
        k
    }

    /// The same keys, able to open what was wrapped to escrow (recovery).
    pub fn with_root(mut self, root: &RootKeys) -> AccountKeys {
        self.escrow = Some(root.escrow.clone());
        self
    }

    fn clone_seeds(&self) -> BTreeMap<u32, Seed> {
        self.seeds
            .iter()
            .map(|(e, s)| {
                let s = Seed::from_udf(&s.to_udf())
                    .unwrap_or_else(|_| unreachable!("a seed's own UDF parses"));
                (*e, s)
            })
            .collect()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The current epoch's Ed25519 key a channel names `name` (the SSH
    /// channel's CA is `SshCa`): derived on demand, never kept here, so
    /// that core names no channel's key.
    pub fn online_ed25519(&self, name: &str) -> SigningKey {
        SigningKey::derive(self.seed(), &self.online_name(name))
    }

    /// The current epoch's P-256 key a channel names `name` (the S/MIME
    /// CA's is `SmimeCa`: P-256 is what mail clients validate).
    pub fn online_p256(&self, name: &str) -> p256::ecdsa::SigningKey {
        crate::keys::p256_signing_key(self.seed(), &self.online_name(name))
    }

    fn online_name(&self, name: &str) -> String {
        key_name("Online", "Account", name, self.epoch)
    }

    /// The current epoch's seed.
    pub fn seed(&self) -> &Seed {
        &self.seeds[&self.epoch]
    }

    /// The seed of an earlier (or the current) epoch, if held.
    pub fn seed_for(&self, epoch: u32) -> Option<&Seed> {
        self.seeds.get(&epoch)
    }

    /// The account's profile UDF.
    pub fn profile_udf(&self) -> String {
        self.profile_udf.clone()
    }

    /// Every key that may open what was wrapped to the administrators:
    /// each epoch's administrator encryption key, newest first, and escrow
    /// when the root is at hand.
    pub fn openers(&self) -> Vec<&AgreementKey> {
        self.earlier_encrypt.iter().chain(&self.escrow).collect()
    }

    /// Decrypt something wrapped to the administrators (any epoch) or escrow.
    pub fn open(&self, e: &Encrypted, content_type: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut last = Error::NotRecipient(String::new());
        for k in self.openers() {
            match e.decrypt(content_type, k) {
                Ok(v) => return Ok(v),
                Err(x) => last = x,
            }
        }
        Err(last)
    }

    /// The seeds, for an administrator's activation or a new epoch.
    pub fn online_seeds(&self) -> OnlineSeeds {
        OnlineSeeds {
            seeds: self.seeds.iter().map(|(e, s)| (*e, s.to_udf())).collect(),
        }
    }

    /// The public keys of this epoch and the channels' claims for it, with
    /// the seeds wrapped to `holders`.
    pub fn epoch_entry(&self, claims: Claims, holders: &[PublicKey]) -> Result<AdminEpoch, Error> {
        Ok(AdminEpoch {
            number: self.epoch,
            administrator_signature: KeyData::with_epoch(self.admin_sign.public_key(), self.epoch),
            administrator_encryption: KeyData::with_epoch(
                self.admin_encrypt.public_key(),
                self.epoch,
            ),
            claims,
            seeds: Encrypted::encrypt_object(CT_ONLINE_SEEDS, &self.online_seeds(), holders)?,
        })
    }

    /// Whether these keys are the ones `profile` (effective, see
    /// [`ProfileAccount::with_epochs`]) names as current.
    pub fn matches(&self, profile: &ProfileAccount) -> bool {
        udf::udf_eq(&self.profile_udf, &profile.udf())
            && self.admin_sign.public_key() == profile.administrator_signature.key
    }
}

/// Every online seed an administrator holds, by epoch: in an
/// administrator's activation, and (encrypted) in each [`AdminEpoch`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineSeeds {
    /// Epoch → `Z…` seed (key spec 0x0104).
    #[serde(rename = "Seeds")]
    pub seeds: BTreeMap<u32, Zeroizing<String>>,
}

impl std::fmt::Debug for OnlineSeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineSeeds")
            .field("epochs", &self.seeds.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl OnlineSeeds {
    /// The keys these seeds give, checked against the account's current
    /// public keys: a seed for another account or epoch is refused.
    pub fn keys(&self, profile: &ProfileAccount) -> Result<AccountKeys, Error> {
        let mut seeds = BTreeMap::new();
        for (e, s) in &self.seeds {
            seeds.insert(*e, Seed::from_udf(s)?);
        }
        let keys = AccountKeys::from_seeds(&profile.udf(), seeds)?;
        if !keys.matches(profile) {
            return Err(Error::BadKey(format!(
                "the administrator seeds give epoch {} keys that are not the account's current ones",
                keys.epoch
            )));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_replace_every_online_key_and_keep_the_identity() {
        let root = RootKeys::generate();
        let e0 = AccountKeys::generate(&root.profile_udf());
        let env = root.profile("a@example.com", "x", None, &e0, Default::default(), None);
        let profile = ProfileAccount::verify(&env, &root.profile_udf()).expect("profile");
        assert!(e0.matches(&profile));
        let e1 = e0.next_epoch();
        assert_eq!(e1.epoch(), 1);
        assert_ne!(e1.admin_sign.public_key(), e0.admin_sign.public_key());
        assert_ne!(
            e1.online_ed25519("X").public_key(),
            e0.online_ed25519("X").public_key()
        );
        let admin = AgreementKey::generate();
        let epoch = e1
            .epoch_entry(Default::default(), &[admin.public_key()])
            .expect("epoch");
        let now = profile.with_epochs([&epoch]);
        assert_eq!(now.udf(), profile.udf());
        assert!(e1.matches(&now) && !e0.matches(&now));
        assert_eq!(now.epoch(), 1);
        assert_eq!(now.history_signers().len(), 2);
        // The wrapped seeds give the new keys to the holder, and only to it.
        let seeds: OnlineSeeds = epoch
            .seeds
            .decrypt_object("seeds", CT_ONLINE_SEEDS, &admin)
            .expect("open");
        assert!(seeds.keys(&now).expect("keys").matches(&now));
        assert!(seeds.keys(&profile).is_err(), "epoch 1 is not epoch 0");
        assert!(epoch
            .seeds
            .decrypt(CT_ONLINE_SEEDS, &AgreementKey::generate())
            .is_err());
        // Older wraps still open, with the older epoch's key.
        let old =
            Encrypted::encrypt("x", b"secret", &[e0.admin_encrypt.public_key()]).expect("wrap");
        assert_eq!(&e1.open(&old, "x").expect("open")[..], b"secret");
    }
}
