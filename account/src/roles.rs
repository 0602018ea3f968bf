//! `mesh device roles NAME --add R --remove R`: change an existing
//! device's roles in one transaction.
//!
//! Roles are signed twice: in the device's connection (what the device
//! itself checks) and in the access list (what the channels and the portal
//! read). A change writes both, so it is a rotation with other roles: the
//! device gets a fresh activation at the next key epoch (an added
//! administrator role carries the current online seeds, encrypted to the
//! device) and switches at its next sync, as after `device rotate`.
//! Giving up the administrator role is, for the online keys, a revocation
//! of that role: a new administrator epoch starts, its seeds wrapped only
//! to the administrators that remain (PROTOCOL.md §14.2).

use mesh_core::objects::Role;
use mesh_core::udf;
use mesh_plugins::Event;
use serde::Serialize;

use crate::admin::target;
use crate::error::{AccountError, Result};
use crate::event::{admin_event, Draft};
use crate::host::Host;
use crate::pull::{adopt_rotation, pull, SyncReport};
use crate::state::device_udf;
use crate::store::Store;

/// What `mesh device roles` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RolesReport {
    /// The device's name.
    pub name: String,
    /// Its UDF.
    pub device: String,
    /// Its roles before.
    pub before: Vec<Role>,
    /// Its roles now.
    pub roles: Vec<Role>,
    /// Its new key epoch (`None`: nothing changed, nothing written).
    pub epoch: Option<u32>,
    /// The administrator epoch this change started (it gave up the
    /// administrator role).
    pub admin_epoch: Option<u32>,
}

/// The roles after adding `add` and removing `remove` (sorted, no
/// duplicates); a role in both is a usage error.
pub fn next_roles(before: &[Role], add: &[Role], remove: &[Role]) -> Result<Vec<Role>> {
    if let Some(r) = add.iter().find(|r| remove.contains(r)) {
        return Err(AccountError::usage(
            format!("role {} is both added and removed", r.name()),
            "name each role in --add or in --remove, not both",
        ));
    }
    let mut roles: Vec<Role> = before
        .iter()
        .chain(add)
        .filter(|r| !remove.contains(r))
        .cloned()
        .collect();
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// Refuse taking the administrator role from the device making the
/// change (the account then always keeps one: this device).
fn check_admin_loss(device: &str, me: &str) -> Result<()> {
    if udf::udf_eq(device, me) {
        return Err(AccountError::usage(
            "refusing to give up the administrator role of this device itself",
            "change it from another administrator device (`mesh device roles NAME --remove admin` there)",
        ));
    }
    Ok(())
}

/// `mesh device roles`: one transaction with the device's new connection,
/// the next access list and every channel's entries for them.
pub fn set_roles(
    store: &mut Store,
    host: &Host,
    which: &str,
    add: &[Role],
    remove: &[Role],
) -> Result<RolesReport> {
    let me = device_udf(store)?;
    let report = admin_event(store, host, |a, view, admin| {
        let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
        let t = target(&list, which, true)?.clone();
        let d = view
            .devices
            .get(&t.device_udf)
            .ok_or_else(|| AccountError::NotFound(format!("no catalog entry for {which}")))?;
        let roles = next_roles(&t.roles, add, remove)?;
        let mut report = RolesReport {
            name: t.name.clone(),
            device: t.device_udf.clone(),
            before: t.roles.clone(),
            roles: roles.clone(),
            epoch: None,
            admin_epoch: None,
        };
        if roles == t.roles {
            return Ok((Draft::default(), report));
        }
        let loses_admin = t.roles.contains(&Role::ADMIN) && !roles.contains(&Role::ADMIN);
        if loses_admin {
            check_admin_loss(&t.device_udf, &me)?;
        }
        let next_keys = loses_admin.then(|| admin.next_epoch());
        let signer = next_keys.as_ref().unwrap_or(admin);
        let epoch = d.connection.authentication.epoch + 1;
        let (cat_env, conn) =
            crate::entries::reissue(signer, &d.catalog, &d.profile, &roles, epoch, &host.slots())?;
        let access = crate::entries::next_access(signer, Some(&list), |d| {
            for e in d
                .iter_mut()
                .filter(|e| udf::udf_eq(&e.device_udf, &t.device_udf))
            {
                e.authentication = conn.authentication.clone();
                e.roles = conn.roles.clone();
            }
        });
        report.epoch = Some(epoch);
        report.admin_epoch = next_keys.as_ref().map(|_| view.profile.epoch() + 1);
        let draft = Draft {
            access: Some(access),
            devices: vec![cat_env],
            event: Some(Event::Rotated {
                device: t.device_udf.clone(),
            }),
            next_keys,
            ..Draft::default()
        };
        Ok((draft, report))
    })?;
    // This device changed its own roles: adopt the new connection now.
    if report.epoch.is_some() && udf::udf_eq(&report.device, &me) && adopt_rotation(store)? {
        pull(store, host, &mut SyncReport::default())?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Roles from names, `""` for none.
    fn r(names: &str) -> Vec<Role> {
        names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|n| Role::parse(n).expect("role"))
            .collect()
    }

    #[test]
    fn next_roles_adds_removes_and_refuses_both() {
        let cases = [
            ("ssh,pgp", "admin", "", Some("admin,ssh,pgp")),
            ("admin,ssh", "", "admin", Some("ssh")),
            ("ssh", "ssh", "", Some("ssh")),
            ("ssh", "", "smime", Some("ssh")),
            ("ssh,smime", "pgp", "smime", Some("ssh,pgp")),
            ("ssh", "pgp", "pgp", None),
            // A newer client's role is kept through a change of others.
            ("ssh,files-v2", "pgp", "", Some("ssh,pgp,files-v2")),
        ];
        for (before, add, remove, want) in cases {
            let got = next_roles(&r(before), &r(add), &r(remove)).ok();
            let mut want = want.map(r);
            let mut got = got;
            if let (Some(w), Some(g)) = (want.as_mut(), got.as_mut()) {
                w.sort();
                g.sort();
            }
            assert_eq!(got, want, "{before} +{add} -{remove}");
        }
    }
}
