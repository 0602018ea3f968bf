//! The epoch policy of secrets shared by the devices of a role (the mail
//! decryption keys of OpenPGP and S/MIME), written once for every channel.
//!
//! Each epoch of a shared secret is one entry, wrapped to each holder: the
//! active devices with the role, the administrators and escrow. The entry
//! records which holder holds it under which key ([`Holders`]), so that:
//!
//! - a device that joined gets the current epoch re-wrapped (same secret);
//! - a device whose keys were rotated gets every epoch it held re-wrapped to
//!   its new key (same secret: old mail still decrypts on it);
//! - a holder that was revoked, or lost the role, starts a new epoch: the
//!   revoked device keeps what it had, and nothing new.

use std::collections::{BTreeMap, BTreeSet};

use mesh_core::envelope::Encrypted;
use mesh_core::keys::PublicKey;
use mesh_core::objects::{AccountKeys, Role};

use crate::{AccountView, PluginError};

/// The administrators' holder name.
pub const ADMIN: &str = "admin";
/// The escrow key's holder name.
pub const ESCROW: &str = "escrow";

/// Holder (a device UDF, [`ADMIN`] or [`ESCROW`]) → UDF of the key the
/// secret is wrapped to.
pub type Holders = BTreeMap<String, String>;

/// Who should hold a secret: holder → the key to wrap to.
pub type Targets = BTreeMap<String, PublicKey>;

/// What to do with one epoch's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Every holder holds it under its current key.
    Keep,
    /// The same secret, wrapped to these holders.
    Rewrap(Targets),
    /// A holder must lose it: a new secret at the next epoch, for these.
    Rotate(Targets),
}

/// The holders a secret of `role` should have now.
pub fn targets(view: &AccountView, admin: &AccountKeys, role: &Role) -> Targets {
    let mut t = Targets::new();
    t.insert(ADMIN.into(), admin.admin_encrypt.public_key());
    t.insert(ESCROW.into(), view.profile.escrow_encryption.key);
    for (e, d) in view.active(role) {
        t.insert(e.device_udf.clone(), d.connection.encryption.key);
    }
    t
}

/// The holders of an entry. Entries written before holders were recorded
/// name only key ids: a key no target has now counts as a holder that must
/// lose the secret.
pub fn holders_of(recorded: &Holders, key: &Encrypted, targets: &Targets) -> Holders {
    if !recorded.is_empty() {
        return recorded.clone();
    }
    key.recipients
        .iter()
        .map(|r| {
            let holder = targets
                .iter()
                .find(|(_, k)| k.udf() == r.kid)
                .map(|(h, _)| h.clone())
                .unwrap_or_else(|| format!("?{}", r.kid));
            (holder, r.kid.clone())
        })
        .collect()
}

fn same(held: &Holders, t: &Targets) -> bool {
    held.len() == t.len() && t.iter().all(|(h, k)| held.get(h) == Some(&k.udf()))
}

/// The plan for the current epoch. A new administrator key means a new
/// administrator epoch (one was revoked, and may hold the old key): the
/// secret rotates as for a revoked holder.
pub fn plan_current(held: &Holders, targets: &Targets) -> Plan {
    let admin_changed = match (held.get(ADMIN), targets.get(ADMIN)) {
        (Some(h), Some(t)) => *h != t.udf(),
        _ => false,
    };
    if admin_changed || held.keys().any(|h| !targets.contains_key(h)) {
        Plan::Rotate(targets.clone())
    } else if same(held, targets) {
        Plan::Keep
    } else {
        Plan::Rewrap(targets.clone())
    }
}

/// The plan for an older epoch: no new holders, but a holder still wanted
/// whose key changed gets it again under its new key.
pub fn plan_old(held: &Holders, targets: &Targets) -> Plan {
    let keep: Targets = targets
        .iter()
        .filter(|(h, _)| held.contains_key(*h))
        .map(|(h, k)| (h.clone(), *k))
        .collect();
    if keep.iter().all(|(h, k)| held.get(h) == Some(&k.udf())) {
        Plan::Keep
    } else {
        Plan::Rewrap(keep)
    }
}

/// Wrap `secret` to `targets`; returns the envelope and its holders.
pub fn wrap(
    content_type: &str,
    secret: &[u8],
    targets: &Targets,
) -> Result<(Encrypted, Holders), PluginError> {
    let keys: Vec<PublicKey> = targets.values().copied().collect();
    let holders = targets.iter().map(|(h, k)| (h.clone(), k.udf())).collect();
    Ok((Encrypted::encrypt(content_type, secret, &keys)?, holders))
}

/// The device UDFs among some holders.
pub fn devices(held: &Holders) -> BTreeSet<&str> {
    held.keys()
        .map(String::as_str)
        .filter(|h| *h != ADMIN && *h != ESCROW && !h.starts_with('?'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::keys::AgreementKey;

    fn key() -> PublicKey {
        AgreementKey::generate().public_key()
    }

    #[test]
    fn the_epoch_policy_by_holder() {
        let (admin, phone, tablet, phone2) = (key(), key(), key(), key());
        let t = |v: &[(&str, PublicKey)]| -> Targets {
            v.iter().map(|(h, k)| (h.to_string(), *k)).collect()
        };
        let held = |v: &[(&str, PublicKey)]| -> Holders {
            v.iter().map(|(h, k)| (h.to_string(), k.udf())).collect()
        };
        let now = held(&[("admin", admin), ("phone", phone)]);
        // Same holders, same keys: keep. A device joined: the same secret for it too.
        assert_eq!(
            plan_current(&now, &t(&[("admin", admin), ("phone", phone)])),
            Plan::Keep
        );
        let joined = t(&[("admin", admin), ("phone", phone), ("tablet", tablet)]);
        assert_eq!(plan_current(&now, &joined), Plan::Rewrap(joined.clone()));
        // Rotated: same holder, new key: re-wrapped, not rotated; older epochs too.
        let rotated = t(&[("admin", admin), ("phone", phone2)]);
        assert_eq!(plan_current(&now, &rotated), Plan::Rewrap(rotated.clone()));
        assert_eq!(plan_old(&now, &rotated), Plan::Rewrap(rotated.clone()));
        // Revoked: a holder must lose it: a new epoch; older ones gain nobody.
        let revoked = t(&[("admin", admin), ("tablet", tablet)]);
        assert_eq!(plan_current(&now, &revoked), Plan::Rotate(revoked.clone()));
        assert_eq!(plan_old(&now, &revoked), Plan::Keep);
        // A new administrator epoch: the old administrator key may be a
        // thief's: a new secret; older epochs re-wrapped to the new key.
        let admin2 = key();
        let epoch = t(&[("admin", admin2), ("phone", phone)]);
        assert_eq!(plan_current(&now, &epoch), Plan::Rotate(epoch.clone()));
        assert_eq!(plan_old(&now, &epoch), Plan::Rewrap(epoch.clone()));
    }
}
