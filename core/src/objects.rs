//! Mesh objects: profiles, activations, connections, catalog entries
//! (mesh-schema; notes `mesh-spec.md` §1). JSON field names follow the
//! schema where it has one; what we add (epochs, the channels' key slots,
//! application entries) is marked and described in PROTOCOL.md.
//!
//! Key model: the account seed derives the account keys; each device seed
//! derives that device's base keys; an administrator issues an activation
//! seed per device, and the device's working keys are base + activation.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::authority::OnlineSeeds;
pub use crate::authority::{AccountKeys, RootKeys};
use crate::derive::{key_name, spec, Seed};
use crate::envelope::{Encrypted, Signed};
use crate::keys::{AgreementKey, KeyData, PublicKey, SigningKey};
pub use crate::profile::ProfileAccount;
pub use crate::slot::{Slot, SlotKind, Slots};
use crate::{udf, Error};

pub use crate::ct;

pub use crate::role::Role;

/// Free-text description of a device (schema `DeviceDescription`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDescription {
    /// A name the user chose, e.g. "laptop".
    #[serde(rename = "Name")]
    pub name: String,
    /// Operating system.
    #[serde(rename = "Platform", default)]
    pub platform: String,
}

/// A device profile (schema `ProfileDevice`): the device's base key
/// contributions, signed by its own root key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileDevice {
    /// Root key UDFs.
    #[serde(rename = "RootUdfs")]
    pub root_udfs: Vec<String>,
    /// The device's root key.
    #[serde(rename = "ProfileSignature")]
    pub profile_signature: KeyData,
    /// Base encryption contribution.
    #[serde(rename = "Encryption")]
    pub encryption: KeyData,
    /// Base signature contribution.
    #[serde(rename = "Signature")]
    pub signature: KeyData,
    /// Base authentication contribution.
    #[serde(rename = "Authentication")]
    pub authentication: KeyData,
    /// The channels' key slots (our extension): each a field named by
    /// the slot, its public key or contribution; a newer client's slots
    /// are kept and ignored.
    #[serde(flatten)]
    pub slots: Slots,
    /// What the device says about itself.
    #[serde(rename = "Description")]
    pub description: DeviceDescription,
}

impl ProfileDevice {
    /// The device's UDF.
    pub fn udf(&self) -> String {
        udf::profile_udf(&[self.profile_signature.key.fingerprint()])
    }

    /// The 65-byte profile value.
    pub fn value(&self) -> Vec<u8> {
        udf::profile_value(&[self.profile_signature.key.fingerprint()])
    }

    /// Verify a self-signed device profile.
    pub fn verify(env: &Signed) -> Result<ProfileDevice, Error> {
        let p: ProfileDevice = env.unverified_object("device profile")?;
        let root = p.profile_signature.udf();
        if p.root_udfs.len() != 1 || !udf::udf_eq(&p.root_udfs[0], &root) {
            return Err(Error::Malformed(
                "RootUdfs does not match ProfileSignature".into(),
            ));
        }
        env.verify_object(
            "device profile",
            ct::PROFILE_DEVICE,
            &[p.profile_signature.key],
        )
    }
}

/// A device's base keys, from its own seed. Only the device holds them.
pub struct DeviceBaseKeys {
    seed: Seed,
    /// Root key.
    pub profile: SigningKey,
    /// Base encryption key (activations are encrypted to it).
    pub encrypt: AgreementKey,
    /// Base signature contribution.
    pub sign: SigningKey,
    /// Base authentication key (signs the connection request).
    pub authenticate: SigningKey,
}

impl std::fmt::Debug for DeviceBaseKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBaseKeys")
            .field("profile", &self.profile.public_key())
            .finish_non_exhaustive()
    }
}

impl DeviceBaseKeys {
    /// A fresh device.
    pub fn generate() -> DeviceBaseKeys {
        DeviceBaseKeys::from_seed(Seed::generate(spec::MESH_PROFILE_DEVICE))
            .unwrap_or_else(|_| unreachable!("a fresh seed has the device spec"))
    }

    /// Derive from the device seed.
    pub fn from_seed(seed: Seed) -> Result<DeviceBaseKeys, Error> {
        if seed.spec() != spec::MESH_PROFILE_DEVICE {
            return Err(Error::Malformed(format!(
                "seed has key spec {:#06x}, not a device seed",
                seed.spec()
            )));
        }
        let n = |op: &str| key_name("Base", "Device", op, 0);
        Ok(DeviceBaseKeys {
            profile: SigningKey::derive(&seed, &n("Profile")),
            encrypt: AgreementKey::derive(&seed, &n("Encrypt")),
            sign: SigningKey::derive(&seed, &n("Sign")),
            authenticate: SigningKey::derive(&seed, &n("Authenticate")),
            seed,
        })
    }

    /// The base contribution of a co-generated slot (derived on demand).
    pub fn ed25519(&self, slot: &Slot) -> Result<SigningKey, Error> {
        slot.ed25519(&self.seed, None)
    }

    /// The key of a device-only P-256 slot (derived on demand).
    pub fn p256(&self, slot: &Slot) -> Result<p256::ecdsa::SigningKey, Error> {
        slot.p256(&self.seed)
    }

    /// Put in `slots` what the profile carries for `slot`: the public key
    /// (or contribution).
    fn slot_public(&self, slot: &Slot, slots: &mut Slots) -> Result<(), Error> {
        match slot.kind {
            SlotKind::Combined => {
                slots.set(slot.name, &KeyData::new(self.ed25519(slot)?.public_key()))
            }
            SlotKind::DeviceP256 => {
                let point = self.p256(slot)?.verifying_key().to_encoded_point(false);
                slots.set(slot.name, &crate::b64::encode(point.as_bytes()))
            }
        }
    }

    /// The seed (kept in the device store).
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// Build and sign the device profile, with a key in each of the
    /// channels' `slots` (in their order).
    pub fn profile(&self, description: DeviceDescription, slots: &[Slot]) -> Result<Signed, Error> {
        let root = KeyData::new(self.profile.public_key());
        let mut p = ProfileDevice {
            root_udfs: vec![root.udf()],
            profile_signature: root,
            encryption: KeyData::new(self.encrypt.public_key()),
            signature: KeyData::new(self.sign.public_key()),
            authentication: KeyData::new(self.authenticate.public_key()),
            slots: Slots::default(),
            description,
        };
        for slot in slots {
            self.slot_public(slot, &mut p.slots)?;
        }
        Ok(Signed::sign_object(ct::PROFILE_DEVICE, &p, &self.profile))
    }

    /// The device's UDF.
    pub fn udf(&self) -> String {
        udf::profile_udf(&[self.profile.public_key().fingerprint()])
    }
}

/// The activation an administrator issues to a device (schema
/// `ActivationAccount`): the seed of the device's activation contributions.
/// Secret; travels encrypted to the device's base encryption key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationAccount {
    /// The account's profile UDF.
    #[serde(rename = "AccountUdf")]
    pub account_udf: String,
    /// The device's UDF.
    #[serde(rename = "DeviceUdf")]
    pub device_udf: String,
    /// `Z…` seed with key spec 0x0103.
    #[serde(rename = "ActivationKey")]
    pub activation_key: Zeroizing<String>,
    /// Key epoch these contributions are for (our extension).
    #[serde(rename = "Epoch", default)]
    pub epoch: u32,
    /// The administrators' online seeds, for devices granted the admin
    /// role (never the account's root: see [`crate::authority`]).
    #[serde(
        rename = "OnlineSeeds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub online_seeds: Option<OnlineSeeds>,
}

impl std::fmt::Debug for ActivationAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationAccount")
            .field("account_udf", &self.account_udf)
            .field("device_udf", &self.device_udf)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The activation contributions derived from an activation seed.
pub struct ActivationKeys {
    seed: Seed,
    epoch: u32,
    /// Encryption contribution.
    pub encrypt: AgreementKey,
    /// Signature contribution.
    pub sign: SigningKey,
    /// Authentication contribution.
    pub authenticate: SigningKey,
}

impl std::fmt::Debug for ActivationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationKeys").finish_non_exhaustive()
    }
}

impl ActivationKeys {
    /// Derive the contributions for `epoch`.
    pub fn derive(seed: &Seed, epoch: u32) -> Result<ActivationKeys, Error> {
        if seed.spec() != spec::MESH_ACTIVATION_ACCOUNT {
            return Err(Error::Malformed(format!(
                "seed has key spec {:#06x}, not an activation seed",
                seed.spec()
            )));
        }
        let n = |op: &str| key_name("Activation", "Device", op, epoch);
        Ok(ActivationKeys {
            encrypt: AgreementKey::derive(seed, &n("Encrypt")),
            sign: SigningKey::derive(seed, &n("Sign")),
            authenticate: SigningKey::derive(seed, &n("Authenticate")),
            seed: seed.clone(),
            epoch,
        })
    }

    /// The activation contribution of a co-generated slot (on demand).
    pub fn ed25519(&self, slot: &Slot) -> Result<SigningKey, Error> {
        slot.ed25519(&self.seed, Some(self.epoch))
    }
}

/// A device's working keys: base + activation. Only the device computes them.
pub struct DeviceKeys {
    // The two seeds, for the channels' slots (derived when asked for).
    base: Seed,
    activation: Seed,
    epoch: u32,
    /// Combined encryption key.
    pub encrypt: AgreementKey,
    /// Combined signature key.
    pub sign: SigningKey,
    /// Combined authentication key (signs portal requests).
    pub authenticate: SigningKey,
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("epoch", &self.epoch)
            .field("authenticate", &self.authenticate)
            .finish_non_exhaustive()
    }
}

impl DeviceKeys {
    /// Combine the device's base keys with an activation.
    pub fn combine(base: &DeviceBaseKeys, act: &ActivationKeys) -> DeviceKeys {
        DeviceKeys {
            base: base.seed.clone(),
            activation: act.seed.clone(),
            epoch: act.epoch,
            encrypt: AgreementKey::combine(&base.encrypt, &act.encrypt),
            sign: SigningKey::combine(&base.sign, &act.sign),
            authenticate: SigningKey::combine(&base.authenticate, &act.authenticate),
        }
    }

    /// The key epoch of the activation.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The combined key of a co-generated slot (base + activation, derived
    /// when asked for): the private half of the connection's slot.
    pub fn ed25519(&self, slot: &Slot) -> Result<SigningKey, Error> {
        Ok(SigningKey::combine(
            &slot.ed25519(&self.base, None)?,
            &slot.ed25519(&self.activation, Some(self.epoch))?,
        ))
    }
}

/// The public half of a connection: the device's combined keys and roles,
/// signed by the account's AdministratorSignature key (schema
/// `ConnectionDevice`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionDevice {
    /// The account's profile UDF.
    #[serde(rename = "ProfileUdf")]
    pub profile_udf: String,
    /// The device's UDF.
    #[serde(rename = "DeviceUdf")]
    pub device_udf: String,
    /// Roles granted.
    #[serde(rename = "Roles")]
    pub roles: Vec<Role>,
    /// Combined authentication key.
    #[serde(rename = "Authentication")]
    pub authentication: KeyData,
    /// Combined signature key.
    #[serde(rename = "Signature")]
    pub signature: KeyData,
    /// Combined encryption key.
    #[serde(rename = "Encryption")]
    pub encryption: KeyData,
    /// The combined keys of the channels' co-generated slots, with their
    /// epoch (our extension), each a field named by the slot; a newer
    /// client's slots are kept and ignored.
    #[serde(flatten)]
    pub slots: Slots,
    /// Seconds since the Unix epoch at issue.
    #[serde(rename = "Issued")]
    pub issued: u64,
}

/// What an administrator issues when it accepts a device.
#[derive(Debug)]
pub struct Issued {
    /// The signed connection (public).
    pub connection: Signed,
    /// The signed, encrypted activation (for the device only).
    pub activation: Signed,
}

impl ConnectionDevice {
    /// Administrator side: issue an activation for `device` and the
    /// connection with the combined public keys, computed without any of the
    /// device's private keys: the Mesh's own, and those of the co-generated
    /// `slots` (the host's channels') that the device's profile has. A slot
    /// the host does not know is left out: no key is made for it.
    pub fn issue(
        admin: &AccountKeys,
        device: &ProfileDevice,
        roles: &[Role],
        epoch: u32,
        now: u64,
        slots: &[Slot],
    ) -> Result<Issued, Error> {
        let act_seed = Seed::generate(spec::MESH_ACTIVATION_ACCOUNT);
        let act = ActivationKeys::derive(&act_seed, epoch)?;
        let sum = |base: &KeyData, contribution: PublicKey| -> Result<KeyData, Error> {
            Ok(KeyData::with_epoch(base.key.combine(&contribution)?, epoch))
        };
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let admin_role = roles.contains(&Role::ADMIN);
        let mut conn = ConnectionDevice {
            profile_udf: admin.profile_udf(),
            device_udf: device.udf(),
            roles,
            authentication: sum(&device.authentication, act.authenticate.public_key())?,
            signature: sum(&device.signature, act.sign.public_key())?,
            encryption: sum(&device.encryption, act.encrypt.public_key())?,
            slots: Slots::default(),
            issued: now,
        };
        for slot in slots.iter().filter(|s| s.kind == SlotKind::Combined) {
            if let Some(base) = device.slots.key(slot.name)? {
                let k = sum(&base, act.ed25519(slot)?.public_key())?;
                conn.slots.set(slot.name, &k)?;
            }
        }
        let activation = ActivationAccount {
            account_udf: admin.profile_udf(),
            device_udf: device.udf(),
            activation_key: act_seed.to_udf(),
            epoch,
            online_seeds: admin_role.then(|| admin.online_seeds()),
        };
        let enc = Encrypted::encrypt_object(
            ct::ACTIVATION_ACCOUNT,
            &activation,
            &[device.encryption.key],
        )?;
        Ok(Issued {
            connection: Signed::sign_object(ct::CONNECTION_DEVICE, &conn, &admin.admin_sign),
            activation: Signed::sign_object(ct::ACTIVATION_ACCOUNT, &enc, &admin.admin_sign),
        })
    }

    /// Verify a connection against the account profile (as of a verified
    /// history: signed in any of its administrator epochs).
    pub fn verify(env: &Signed, account: &ProfileAccount) -> Result<ConnectionDevice, Error> {
        let c: ConnectionDevice = env.verify_object(
            "device connection",
            ct::CONNECTION_DEVICE,
            &account.history_signers(),
        )?;
        if !udf::udf_eq(&c.profile_udf, &account.udf()) {
            return Err(Error::Malformed(format!(
                "connection is for account {}, not {}",
                c.profile_udf,
                account.udf()
            )));
        }
        Ok(c)
    }

    /// Whether the connection grants `role`.
    pub fn has(&self, role: &Role) -> bool {
        self.roles.contains(role)
    }
}

/// Device side: check the activation (admin signature, addressed to us),
/// combine keys, and check that they match the signed connection.
pub fn complete_activation(
    account: &ProfileAccount,
    base: &DeviceBaseKeys,
    activation: &Signed,
    connection: &ConnectionDevice,
) -> Result<(DeviceKeys, ActivationAccount), Error> {
    if !udf::udf_eq(&connection.device_udf, &base.udf())
        || !udf::udf_eq(&connection.profile_udf, &account.udf())
    {
        return Err(Error::Malformed(
            "connection is for another device or account".into(),
        ));
    }
    let enc: Encrypted = activation.verify_object(
        "activation",
        ct::ACTIVATION_ACCOUNT,
        &account.history_signers(),
    )?;
    let act: ActivationAccount =
        enc.decrypt_object("activation", ct::ACTIVATION_ACCOUNT, &base.encrypt)?;
    if !udf::udf_eq(&act.device_udf, &base.udf()) || !udf::udf_eq(&act.account_udf, &account.udf())
    {
        return Err(Error::Malformed(
            "activation is for another device or account".into(),
        ));
    }
    let seed = Seed::from_udf(&act.activation_key)?;
    let keys = DeviceKeys::combine(base, &ActivationKeys::derive(&seed, act.epoch)?);
    // The Mesh's own keys bind the activation to the connection; a
    // channel checks its slot's key where it uses it.
    let epochs_match = [
        &connection.authentication,
        &connection.signature,
        &connection.encryption,
    ]
    .iter()
    .all(|k| k.epoch == act.epoch);
    let matches = epochs_match
        && keys.authenticate.public_key() == connection.authentication.key
        && keys.sign.public_key() == connection.signature.key
        && keys.encrypt.public_key() == connection.encryption.key;
    if !matches {
        return Err(Error::BadKey(
            "combined keys do not match the administrator's connection".into(),
        ));
    }
    Ok((keys, act))
}

/// A device's entry in the account's device catalog (schema `CatalogedDevice`).
/// Like every signed object here, fields a newer client adds (a channel's
/// key slot) are ignored, not refused: the signature covers the bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogedDevice {
    /// The device's UDF.
    #[serde(rename = "DeviceUdf")]
    pub device_udf: String,
    /// Name the user knows the device by.
    #[serde(rename = "LocalName")]
    pub local_name: String,
    /// The device's own signed profile.
    #[serde(rename = "EnvelopedProfileDevice")]
    pub profile_device: Signed,
    /// The administrator-signed connection.
    #[serde(rename = "EnvelopedConnectionDevice")]
    pub connection_device: Signed,
    /// The activation, encrypted to the device.
    #[serde(rename = "EnvelopedActivationAccount")]
    pub activation_account: Signed,
}

/// An application's entry in the account's application catalog (schema
/// `CatalogedApplication`): public, per-application data the plugins share.
/// Members a newer writer adds are ignored (the signature covers the bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogedApplication {
    /// Unique id, e.g. `ssh`, `pgp`, `smime`.
    #[serde(rename = "Uid")]
    pub uid: String,
    /// Application-defined, public JSON (e.g. SSH principals).
    #[serde(rename = "Data")]
    pub data: serde_json::Value,
    /// What the portal serves for the account (PROTOCOL.md §18), the first
    /// design's place: writers put it in `Data.Serve` instead, which clients
    /// before issue 28 parse ([`crate::serve::of`] reads both). Absent, the
    /// entry's bytes are as before.
    #[serde(rename = "Serve", default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<crate::serve::Serve>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(address: &str) -> (RootKeys, AccountKeys, Signed) {
        let root = RootKeys::generate();
        let online = AccountKeys::generate(&root.profile_udf());
        let env = root.profile(
            address,
            "http://127.0.0.1:1",
            None,
            &online,
            Default::default(),
            None,
        );
        (root, online, env)
    }

    #[test]
    fn connect_a_device_end_to_end() {
        let (_, admin, profile_env) = account("alice@example.com");
        let profile = ProfileAccount::verify(&profile_env, &admin.profile_udf()).expect("profile");
        assert!(profile.udf().starts_with("MBQ"));

        let slot = Slot {
            name: "Key",
            kind: SlotKind::Combined,
        };
        let dev = DeviceBaseKeys::generate();
        let dev_env = dev
            .profile(
                DeviceDescription {
                    name: "laptop".into(),
                    platform: "linux".into(),
                },
                &[slot],
            )
            .expect("profile");
        let dev_profile = ProfileDevice::verify(&dev_env).expect("device profile");

        let issued =
            ConnectionDevice::issue(&admin, &dev_profile, &[Role::named("ssh")], 0, 1, &[slot])
                .expect("issue");
        let conn = ConnectionDevice::verify(&issued.connection, &profile).expect("conn");
        let (keys, act) =
            complete_activation(&profile, &dev, &issued.activation, &conn).expect("complete");
        assert_eq!(act.epoch, 0);
        let combined = keys.ed25519(&slot).expect("slot").public_key();
        assert_eq!(
            Some(combined),
            conn.slots.key("Key").expect("typed").map(|k| k.key)
        );

        // A second device cannot open the first one's activation.
        let other = DeviceBaseKeys::generate();
        assert!(complete_activation(&profile, &other, &issued.activation, &conn).is_err());
    }

    #[test]
    fn profile_pinning_refuses_another_account() {
        let (a, _, _) = account("alice@example.com");
        let (_, _, env) = account("bob@example.com");
        let err = ProfileAccount::verify(&env, &a.profile_udf()).expect_err("pinned");
        assert!(err.to_string().contains(&a.profile_udf()), "{err}");
    }

    #[test]
    fn recovery_from_seed_rebuilds_the_same_identity() {
        let (a, _, _) = account("alice@example.com");
        let seed = Seed::from_udf(&a.seed().to_udf()).expect("seed");
        let b = RootKeys::from_seed(seed).expect("from seed");
        assert_eq!(a.profile_udf(), b.profile_udf());
        assert_eq!(a.escrow.public_key(), b.escrow.public_key());
    }
}
