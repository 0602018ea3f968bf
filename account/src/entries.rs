//! The life-cycle entries an administrator makes: a device's catalog
//! entry and connection, and the next access list.

use mesh_core::envelope::Signed;
use mesh_core::objects::{
    ct as oct, AccountKeys, CatalogedDevice, ConnectionDevice, ProfileDevice, Role, Slot,
};
use mesh_core::portal::{self as p, AccessEntry, AccessList, DeviceState};

use crate::client::now;
use crate::error::Result;

/// Build a catalog entry and access-list entry for a device being connected.
pub(crate) fn connect_device(
    admin: &AccountKeys,
    device_profile_env: &Signed,
    name: &str,
    roles: &[Role],
    slots: &[Slot],
) -> Result<(Signed, ConnectionDevice, AccessEntry, Signed)> {
    let dp = ProfileDevice::verify(device_profile_env)?;
    let issued = ConnectionDevice::issue(admin, &dp, roles, 0, now(), slots)?;
    let conn: ConnectionDevice = issued.connection.unverified_object("connection")?;
    let cataloged = CatalogedDevice {
        device_udf: dp.udf(),
        local_name: name.to_string(),
        profile_device: device_profile_env.clone(),
        connection_device: issued.connection.clone(),
        activation_account: issued.activation,
    };
    let entry = AccessEntry {
        device_udf: dp.udf(),
        name: name.to_string(),
        authentication: conn.authentication.clone(),
        roles: conn.roles.clone(),
        state: DeviceState::Active,
        extra: Default::default(),
    };
    let cat_env = Signed::sign_object(oct::CATALOGED_DEVICE, &cataloged, &admin.admin_sign);
    Ok((cat_env, conn, entry, issued.connection))
}

pub(crate) fn next_access(
    admin: &AccountKeys,
    prev: Option<&AccessList>,
    edit: impl FnOnce(&mut Vec<AccessEntry>),
) -> Signed {
    let mut devices = prev.map(|a| a.devices.clone()).unwrap_or_default();
    edit(&mut devices);
    let list = AccessList {
        profile_udf: admin.profile_udf(),
        serial: prev.map(|a| a.serial + 1).unwrap_or(1),
        devices,
        issued: now(),
        // What a newer client added to the list stays in it.
        extra: prev.map(|a| a.extra.clone()).unwrap_or_default(),
    };
    Signed::sign_object(p::ct::ACCESS_LIST, &list, &admin.admin_sign)
}

/// PayloadDigest of a signed object (SHA-512 of its payload), as the PIN
/// witness and proof bind it (PROTOCOL.md §6).
pub fn payload_digest(env: &Signed) -> Vec<u8> {
    <sha2::Sha512 as sha2::Digest>::digest(&env.payload).to_vec()
}

/// A device's new connection at `epoch` with `roles`: its catalog entry
/// (same identity, fresh activation) and the new connection, signed by
/// `signer`. What a rotation and a change of roles write.
pub(crate) fn reissue(
    signer: &AccountKeys,
    catalog: &CatalogedDevice,
    profile: &ProfileDevice,
    roles: &[Role],
    epoch: u32,
    slots: &[Slot],
) -> Result<(Signed, ConnectionDevice)> {
    let issued = ConnectionDevice::issue(signer, profile, roles, epoch, now(), slots)?;
    let conn: ConnectionDevice = issued.connection.unverified_object("connection")?;
    let cataloged = CatalogedDevice {
        device_udf: catalog.device_udf.clone(),
        local_name: catalog.local_name.clone(),
        profile_device: catalog.profile_device.clone(),
        connection_device: issued.connection,
        activation_account: issued.activation,
    };
    let env = Signed::sign_object(oct::CATALOGED_DEVICE, &cataloged, &signer.admin_sign);
    Ok((env, conn))
}

#[cfg(test)]
mod tests {
    use mesh_core::objects::{DeviceBaseKeys, DeviceDescription, ProfileAccount, RootKeys};
    use mesh_plugins::AccountView;
    use serde_json::{json, Value};

    use super::*;

    /// `object` with `add` merged in, signed by `key` as `ct`: what a newer
    /// client writes.
    fn newer(
        ct: &str,
        object: &impl serde::Serialize,
        add: Value,
        key: &mesh_core::keys::SigningKey,
    ) -> Signed {
        let mut v = serde_json::to_value(object).expect("json");
        for (k, x) in add.as_object().expect("object") {
            v[k] = x.clone();
        }
        Signed::sign_object(ct, &v, key)
    }

    /// An access list, connection and device profile written by a newer
    /// client, with a role and a key slot this one does not know: they
    /// verify, the unknown role grants nothing here, and the next list
    /// this client writes keeps them as they were.
    #[test]
    fn a_newer_clients_role_and_key_slot_are_kept_and_ignored() {
        let root = RootKeys::generate();
        let admin = AccountKeys::generate(&root.profile_udf());
        let profile_env = root.profile(
            "alice@example.com",
            "https://portal",
            None,
            &admin,
            Default::default(),
            None,
        );
        let profile = ProfileAccount::verify(&profile_env, &admin.profile_udf()).expect("profile");
        let base = DeviceBaseKeys::generate();
        // A slot this host's channels own, and a newer client's.
        let known = Slot {
            name: "Known",
            kind: mesh_core::objects::SlotKind::Combined,
        };
        let description = DeviceDescription {
            name: "phone".into(),
            platform: String::new(),
        };
        let plain = base.profile(description, &[known]).expect("profile");
        let plain = ProfileDevice::verify(&plain).expect("device");
        let slot = json!({"Files": {"PublicParameters": "ignored by today's client"}});
        let dev_env = newer(oct::PROFILE_DEVICE, &plain, slot.clone(), &base.profile);
        let ssh = Role::named("ssh");
        let (cat_env, conn, mut entry, _) = connect_device(
            &admin,
            &dev_env,
            "phone",
            std::slice::from_ref(&ssh),
            &[known],
        )
        .expect("connect");
        // The host combines the slot it knows and leaves the other out.
        assert_eq!(conn.slots.names().collect::<Vec<_>>(), ["Known"]);
        // The newer client's connection: an unknown role and slot.
        let mut roles = serde_json::to_value(&conn.roles).expect("roles");
        roles.as_array_mut().expect("array").push(json!("files-v9"));
        let mut add = slot.clone();
        add["Roles"] = roles.clone();
        let conn_env = newer(oct::CONNECTION_DEVICE, &conn, add, &admin.admin_sign);
        let mut cat: CatalogedDevice = cat_env.unverified_object("catalog").expect("catalog");
        cat.connection_device = conn_env;
        let cat_env = Signed::sign_object(oct::CATALOGED_DEVICE, &cat, &admin.admin_sign);
        entry.roles.push(Role::parse("files-v9").expect("role"));
        entry
            .extra
            .insert("FilesKey".into(), json!({"Udf": "MDXYZ"}));
        let first = next_access(&admin, None, |d| d.push(entry));
        let first: AccessList = first.unverified_object("list").expect("list");
        let access = newer(
            p::ct::ACCESS_LIST,
            &first,
            json!({"Checkpoint": 7}),
            &admin.admin_sign,
        );

        let pinned = admin.profile_udf();
        let none: [&Signed; 0] = [];
        let view = AccountView::verify(&pinned, &profile_env, &[], Some(&access), [&cat_env], none)
            .expect("a newer client's objects verify");
        assert_eq!(view.active(&ssh).len(), 1, "its known role still counts");
        // The unknown slot is kept in the profile and connection as read,
        // and the known one still comes out as it was issued.
        let d = &view.devices[&conn.device_udf];
        for slots in [&d.profile.slots, &d.connection.slots] {
            assert_eq!(slots.get("Files"), Some(slot["Files"].clone()));
        }
        assert_eq!(
            d.connection.slots.key("Known").expect("typed"),
            conn.slots.key("Known").expect("typed")
        );
        let again: Value = serde_json::to_value(&d.profile).expect("json");
        assert_eq!(again["Files"], slot["Files"], "written back as read");
        for other in ["pgp", "smime"] {
            assert!(view.active(&Role::named(other)).is_empty(), "{other}");
        }
        // Today's administrator writes the next list: everything kept.
        let list = AccessList::verify(&access, &profile).expect("list");
        let next = next_access(&admin, Some(&list), |_| {});
        let next: Value = serde_json::from_slice(&next.payload).expect("json");
        assert_eq!(next["Checkpoint"], json!(7));
        assert_eq!(next["Serial"], json!(2));
        assert_eq!(next["Devices"][0]["FilesKey"], json!({"Udf": "MDXYZ"}));
        assert_eq!(next["Devices"][0]["Roles"], json!(["ssh", "files-v9"]));
    }
}
