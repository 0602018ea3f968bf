//! The life-cycle entries an administrator makes: a device's catalog
//! entry and connection, and the next access list.

use mesh_core::envelope::Signed;
use mesh_core::objects::{
    ct as oct, AccountKeys, CatalogedDevice, ConnectionDevice, ProfileDevice, Role,
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
) -> Result<(Signed, ConnectionDevice, AccessEntry, Signed)> {
    let dp = ProfileDevice::verify(device_profile_env)?;
    let issued = ConnectionDevice::issue(admin, &dp, roles, 0, now())?;
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
) -> Result<(Signed, ConnectionDevice)> {
    let issued = ConnectionDevice::issue(signer, profile, roles, epoch, now())?;
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
