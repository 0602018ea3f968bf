//! The account's access list (PROTOCOL.md §8.4, §10.2): who may use the
//! portal, with which key and roles, signed by an administrator epoch's
//! key or the root. With it, the memo of lists already verified
//! ([`memo`]) and the changes lists travel as ([`delta`]): one module,
//! below the portal's messages that carry them.

use serde::{Deserialize, Serialize};

use crate::envelope::Signed;
use crate::keys::KeyData;
use crate::objects::{ProfileAccount, Role};
use crate::{udf, Error};

pub mod delta;
pub mod memo;

/// Content type of a signed [`AccessList`] (`portal::CT_ACCESS_LIST`).
pub const CT_ACCESS_LIST: &str = "AccessList";

/// Device state in the access list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceState {
    /// May use the portal.
    Active,
    /// Revoked: the portal refuses it; its keys are revoked.
    Revoked,
}

/// One device in the access list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// The device's UDF.
    #[serde(rename = "DeviceUdf")]
    pub device_udf: String,
    /// Its name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Its combined authentication key: what its requests are signed with.
    #[serde(rename = "Authentication")]
    pub authentication: KeyData,
    /// Its roles.
    #[serde(rename = "Roles")]
    pub roles: Vec<Role>,
    /// Active or revoked.
    #[serde(rename = "State")]
    pub state: DeviceState,
    /// Fields of a newer client (a channel's key slot): kept as they came
    /// in every later list, read by nobody here. (Flattening costs about
    /// a sixth of a list's parse: 0.17 ms at 1,000 devices.)
    #[serde(flatten)]
    pub extra: Extra,
}

/// What a newer client wrote that this one does not know, kept verbatim.
pub type Extra = std::collections::BTreeMap<String, serde_json::Value>;

/// The account's access list (schema: the Access catalog's capabilities),
/// signed by AdministratorSignature. Serials increase by one per version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessList {
    /// The account's profile UDF.
    #[serde(rename = "ProfileUdf")]
    pub profile_udf: String,
    /// Version number, from 1.
    #[serde(rename = "Serial")]
    pub serial: u64,
    /// Every device ever connected.
    #[serde(rename = "Devices")]
    pub devices: Vec<AccessEntry>,
    /// Seconds since the Unix epoch.
    #[serde(rename = "Issued")]
    pub issued: u64,
    /// Fields of a newer client, kept in the next version.
    #[serde(flatten)]
    pub extra: Extra,
}

impl AccessList {
    /// Verify a signed access list against the account profile as of a
    /// verified history: signed in any administrator epoch of it, or by the
    /// root.
    pub fn verify(env: &Signed, account: &ProfileAccount) -> Result<AccessList, Error> {
        Self::verify_by(env, account, &Self::signers(account))
    }

    /// Who may sign an access list: any epoch's administrator key, or the root.
    pub(crate) fn signers(account: &ProfileAccount) -> Vec<crate::keys::PublicKey> {
        let mut signers = account.history_signers();
        signers.push(account.profile_signature.key);
        signers
    }

    /// Verify a list that stands alone (a revocation proof): only the
    /// current epoch's administrator key or the root may have signed it.
    pub fn verify_current(env: &Signed, account: &ProfileAccount) -> Result<AccessList, Error> {
        let signers = [
            account.administrator_signature.key,
            account.profile_signature.key,
        ];
        Self::verify_by(env, account, &signers)
    }

    pub(crate) fn verify_by(
        env: &Signed,
        account: &ProfileAccount,
        signers: &[crate::keys::PublicKey],
    ) -> Result<AccessList, Error> {
        let a: AccessList = env.verify_object("access list", CT_ACCESS_LIST, signers)?;
        Self::check_account(a, account)
    }

    pub(crate) fn check_account(
        a: AccessList,
        account: &ProfileAccount,
    ) -> Result<AccessList, Error> {
        if !udf::udf_eq(&a.profile_udf, &account.udf()) {
            return Err(Error::Malformed(format!(
                "access list is for account {}, not {}",
                a.profile_udf,
                account.udf()
            )));
        }
        Ok(a)
    }

    /// Whether the account's root signed this list (recovery): only the
    /// root may lift a revocation.
    pub fn by_root(env: &Signed, account: &ProfileAccount) -> bool {
        let root = account.profile_signature.udf();
        env.signatures.iter().any(|s| udf::udf_eq(&s.kid, &root))
    }

    /// Whether `next` may follow this list: the next serial, and every
    /// device revoked here still in it and still revoked. Revocation is
    /// irreversible for administrators: a device that comes back gets a
    /// new UDF. Only the root (`by_root`, a recovery) may make a revoked
    /// device active again, to undo what a thief did; it may never drop one.
    pub fn check_successor(&self, next: &AccessList, by_root: bool) -> Result<(), Error> {
        if next.serial != self.serial.saturating_add(1) {
            return Err(Error::Malformed(format!(
                "access list serial {} after {}",
                next.serial, self.serial
            )));
        }
        // Indexed once: a linear search per revoked device made this
        // quadratic (a fifth of a sync at 1,000 devices).
        let mut by_udf = std::collections::HashMap::new();
        for d in &next.devices {
            // The first of a UDF, as `device` finds it.
            by_udf.entry(udf::udf_key(&d.device_udf)).or_insert(d);
        }
        for d in self
            .devices
            .iter()
            .filter(|d| d.state == DeviceState::Revoked)
        {
            match by_udf.get(&udf::udf_key(&d.device_udf)).copied() {
                Some(n) if n.state == DeviceState::Revoked || by_root => {}
                Some(_) => {
                    return Err(Error::Malformed(format!(
                        "access list {} makes revoked device {} ({}) active again; revocation is irreversible",
                        next.serial, d.name, d.device_udf
                    )))
                }
                None => {
                    return Err(Error::Malformed(format!(
                        "access list {} drops revoked device {} ({}); revocation is irreversible",
                        next.serial, d.name, d.device_udf
                    )))
                }
            }
        }
        Ok(())
    }

    /// The entry of a device.
    pub fn device(&self, device_udf: &str) -> Option<&AccessEntry> {
        self.devices
            .iter()
            .find(|d| udf::udf_eq(&d.device_udf, device_udf))
    }

    /// The active entry whose authentication key has this UDF.
    pub fn active_by_key(&self, key_udf: &str) -> Option<&AccessEntry> {
        self.devices.iter().find(|d| {
            d.state == DeviceState::Active && udf::udf_eq(&d.authentication.udf(), key_udf)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Role, RootKeys};

    fn list(serial: u64, devices: &[(&str, DeviceState)]) -> AccessList {
        let k = KeyData::new(RootKeys::generate().authenticate.public_key());
        AccessList {
            profile_udf: "MB".into(),
            serial,
            issued: 0,
            devices: devices
                .iter()
                .map(|(udf, state)| AccessEntry {
                    device_udf: udf.to_string(),
                    name: udf.to_string(),
                    authentication: k.clone(),
                    roles: vec![Role::named("ssh")],
                    state: *state,
                    extra: Default::default(),
                })
                .collect(),
            extra: Default::default(),
        }
    }

    #[test]
    fn revocation_is_irreversible() {
        use DeviceState::{Active, Revoked};
        let now = list(4, &[("MA", Active), ("MB", Revoked)]);
        let cases: [(&str, AccessList, Option<&str>); 6] = [
            (
                "keeps it revoked",
                list(5, &[("MA", Active), ("MB", Revoked)]),
                None,
            ),
            (
                "adds a device",
                list(5, &[("MA", Active), ("MB", Revoked), ("MC", Active)]),
                None,
            ),
            (
                "makes it active",
                list(5, &[("MA", Active), ("MB", Active)]),
                Some("active again"),
            ),
            (
                "drops it",
                list(5, &[("MA", Active)]),
                Some("drops revoked"),
            ),
            (
                "makes it active, spelled otherwise",
                list(5, &[("MA", Active), ("m-b", Active)]),
                Some("active again"),
            ),
            (
                "skips a serial",
                list(6, &[("MA", Active), ("MB", Revoked)]),
                Some("serial 6 after 4"),
            ),
        ];
        for (name, next, want) in cases {
            match (now.check_successor(&next, false), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
                (r, _) => panic!("{name}: {r:?}"),
            }
            // The root (a recovery) may lift a revocation, never drop one.
            let by_root = now.check_successor(&next, true);
            assert_eq!(
                by_root.is_ok(),
                !matches!(name, "drops it" | "skips a serial"),
                "{name} by the root: {by_root:?}"
            );
        }
    }
}
