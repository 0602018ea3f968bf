//! A rotation after an administrator epoch changed (an administrator
//! revoked, or the account recovered): the rotated device, which has not
//! seen the new epoch, learns its key from the public checkpoints and
//! switches to its new keys; the administrator's own command succeeds.

use mesh_tests::Device;

use super::{account, Account};

/// Rotate the phone from `admin`; the phone's next sync takes the new
/// key, which servers then list instead of the old one.
fn rotation_takes(acc: &Account, admin: &Device) {
    let old = acc.c.ok(&["ssh", "public-key"]);
    admin.ok(&["device", "rotate", "phone"]);
    let r = acc.c.json(&["sync"]);
    assert_eq!(r["rotated"], true, "{r}");
    let new = acc.c.ok(&["ssh", "public-key"]);
    assert_ne!(old, new, "the phone kept its old key");
    let keys = Device::new(&acc.dir.0, "server").ok(&[
        "ssh",
        "authorized-keys",
        "--account",
        &acc.udf,
        "--portal",
        &acc.portal.url,
    ]);
    let body = |k: &str| k.split_whitespace().nth(1).expect("key").to_string();
    assert!(
        keys.contains(&body(&new)) && !keys.contains(&body(&old)),
        "{keys}"
    );
    acc.c.ok(&["sync"]);
}

#[test]
fn a_rotation_after_an_administrator_revocation_takes() {
    let acc = account("rotate-after-revoke", true);
    acc.a.ok(&["device", "revoke", "desktop"]);
    rotation_takes(&acc, &acc.a);
}

#[test]
fn a_rotation_after_a_recovery_takes() {
    let acc = account("rotate-after-recovery", false);
    let owner = Device::new(&acc.dir.0, "owner");
    super::recover_revoking_laptop(&acc, &owner);
    rotation_takes(&acc, &owner);
}
