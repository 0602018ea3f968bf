//! This device's secret export: the account's certificate with this
//! device's signing subkey and the encryption subkeys it holds (what
//! `mesh pgp export` prints and GnuPG provisioning imports).

use mesh_plugins::{AccountView, DeviceHost, PluginError};
use zeroize::Zeroizing;

use crate::entries::{cert, check_cert, encryption_subkeys, pgp_err, PgpSubkey, CT_PGP_KEY};

type Result<T> = std::result::Result<T, PluginError>;

/// The certificate with this device's signing subkey and the encryption
/// subkeys it holds, the primary as a stub (GnuPG shows `sec#`).
pub fn export_secret_bytes(
    device: &dyn DeviceHost,
    view: &AccountView,
    armor: bool,
) -> Result<Zeroizing<Vec<u8>>> {
    use sequoia_openpgp::serialize::SerializeInto;
    let keys = device.keys()?;
    let c = check_cert(view, cert(view)?.as_bytes())?;
    let open = |sub: &PgpSubkey| -> Option<Zeroizing<[u8; 32]>> {
        let plain = sub.key.decrypt(CT_PGP_KEY, &keys.encrypt).ok()?;
        let arr: [u8; 32] = plain.as_slice().try_into().ok()?;
        Some(Zeroizing::new(arr))
    };
    let mine = view
        .app::<PgpSubkey>(&format!("pgp-key:{}", device.device_udf()))?
        .ok_or_else(|| {
            PluginError::NotFound(
                "this device has no OpenPGP signing subkey (it needs the pgp role)".into(),
            )
        })?;
    let s = open(&mine).ok_or_else(|| {
        PluginError::Untrusted("this device's OpenPGP subkey does not decrypt".into())
    })?;
    let mut secrets: Vec<sequoia_openpgp::Packet> =
        vec![crate::cert::signing_subkey(&s, mine.created)
            .map_err(pgp_err)?
            .into()];
    for sub in encryption_subkeys(view)? {
        let Some(s) = open(&sub) else { continue };
        secrets.push(
            crate::cert::encryption_subkey(&s, sub.created)
                .map_err(pgp_err)?
                .into(),
        );
    }
    let tsk = c.insert_packets(secrets).map_err(pgp_err)?.0;
    let t = tsk.as_tsk().emit_secret_key_stubs(true);
    let out = if armor {
        t.armored().to_vec()
    } else {
        t.to_vec()
    };
    out.map(Zeroizing::new).map_err(pgp_err)
}
