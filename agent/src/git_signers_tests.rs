//! The allowed signers format and the windows computed from a history.

use super::*;
use mesh_core::keys::{KeyData as MeshKey, SigningKey};
use mesh_core::objects::ConnectionDevice;
use mesh_core::portal::AccessList;

const ADDR: &str = "alice@example.com";

fn key(n: u8, epoch: u32) -> MeshKey {
    MeshKey::with_epoch(SigningKey::from_seed(&[n; 32]).public_key(), epoch)
}

/// An epoch's claims naming `k` as its SSH CA.
fn ca(k: MeshKey) -> mesh_core::claims::Claims {
    let mut c = mesh_core::claims::Claims::new();
    c.put(mesh_ssh::channel::CA_CLAIM, &k).expect("a key");
    c
}

fn conn(udf: &str, auth: u8, ssh: u8, issued: u64) -> ConnectionDevice {
    let mut slots = mesh_core::objects::Slots::default();
    slots
        .set(mesh_ssh::channel::SLOT.name, &key(ssh, 0))
        .expect("a key");
    ConnectionDevice {
        profile_udf: "P".into(),
        device_udf: udf.into(),
        roles: vec![mesh_ssh::channel::ROLE],
        authentication: key(auth, 0),
        signature: key(auth, 0),
        encryption: key(auth, 0),
        slots,
        issued,
    }
}

fn entry(udf: &str, name: &str, auth: u8, state: DeviceState) -> AccessEntry {
    AccessEntry {
        device_udf: udf.into(),
        name: name.into(),
        authentication: key(auth, 0),
        roles: vec![mesh_ssh::channel::ROLE],
        state,
        extra: Default::default(),
    }
}

fn list(serial: u64, issued: u64, devices: Vec<AccessEntry>) -> AccessList {
    AccessList {
        profile_udf: "P".into(),
        serial,
        devices,
        issued,
        extra: Default::default(),
    }
}

fn ssh(n: u8) -> KeyData {
    mesh_ssh::channel::ssh_key_of(&key(n, 0)).expect("ed25519")
}

/// Phone joins at 100 (key 11), is rotated at 200 (key 12), revoked at 300.
fn rotated_then_revoked() -> KeyHistory {
    use DeviceState::*;
    KeyHistory {
        address: ADDR.into(),
        access: vec![
            list(1, 100, vec![entry("D1", "phone", 1, Active)]),
            list(2, 200, vec![entry("D1", "phone", 2, Active)]),
            list(3, 300, vec![entry("D1", "phone", 2, Revoked)]),
        ],
        connections: vec![conn("D1", 1, 11, 99), conn("D1", 2, 12, 199)],
        epochs: vec![(50, ca(key(40, 0))), (250, ca(key(41, 1)))],
    }
}

#[test]
fn a_rotated_key_closes_at_the_rotation_and_a_revoked_one_at_the_revocation() {
    let h = rotated_then_revoked();
    let w = device_windows(&h);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        (w[0].key.clone(), w[0].after, w[0].before),
        (ssh(11), 99, Some(200))
    );
    assert!(!w[0].revoked, "rotated away, not revoked");
    assert_eq!(
        (w[1].key.clone(), w[1].after, w[1].before),
        (ssh(12), 199, Some(300))
    );
    assert!(w[1].revoked);
    // Only the key the revoked device held goes into git's KRL.
    assert_eq!(revoked_keys(&h, &w), vec![ssh(12)]);
}

#[test]
fn a_restored_device_signs_again_from_its_restoration_and_is_not_in_the_krl() {
    let mut h = rotated_then_revoked();
    h.access.push(list(
        4,
        400,
        vec![entry("D1", "phone", 2, DeviceState::Active)],
    ));
    let w = device_windows(&h);
    assert_eq!(w.len(), 3, "{w:?}");
    assert_eq!(
        (w[2].key.clone(), w[2].after, w[2].before),
        (ssh(12), 400, None)
    );
    assert!(revoked_keys(&h, &w).is_empty());
}

#[test]
fn a_key_rotated_within_its_second_keeps_that_second() {
    use DeviceState::*;
    let h = KeyHistory {
        address: ADDR.into(),
        access: vec![
            list(1, 100, vec![entry("D1", "phone", 1, Active)]),
            list(2, 100, vec![entry("D1", "phone", 2, Active)]),
        ],
        connections: vec![conn("D1", 1, 11, 100), conn("D1", 2, 12, 100)],
        epochs: vec![(100, ca(key(40, 0))), (100, ca(key(41, 1)))],
    };
    let w = device_windows(&h);
    assert_eq!((w[0].after, w[0].before), (100, Some(101)));
    assert_eq!(ca_windows(&h)[0].before, Some(101));
}

#[test]
fn each_ca_epoch_has_its_window() {
    let w = ca_windows(&rotated_then_revoked());
    assert_eq!(
        w.iter().map(|w| (w.after, w.before)).collect::<Vec<_>>(),
        vec![(50, Some(250)), (250, None)]
    );
}

#[test]
fn stamps_are_utc_with_seconds() {
    assert_eq!(stamp(0), "19700101000000Z");
    // 2026-12-07T16:05:48Z
    assert_eq!(stamp(1_796_659_548), "20261207160548Z");
}

#[test]
fn the_file_has_principals_options_and_key_in_ssh_keygen_s_order() {
    let h = rotated_then_revoked();
    let text = allowed_signers(ADDR, &device_windows(&h), &ca_windows(&h));
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let k11 = mesh_ssh::cert::key_line(&ssh(11), "x");
    let b64 = k11.split(' ').nth(1).expect("b64");
    assert_eq!(
        lines[0],
        format!(
            "phone@{ADDR},{ADDR} namespaces=\"git\",valid-after=\"19700101000139Z\",\
             valid-before=\"19700101000320Z\" ssh-ed25519 {b64} phone@{ADDR} (mesh)"
        )
    );
    assert!(
        lines[3].starts_with(
            "* cert-authority,namespaces=\"git\",valid-after=\"19700101000410Z\" ssh-ed25519 "
        ),
        "{}",
        lines[3]
    );
    assert!(
        !lines[3].contains("valid-before"),
        "the current CA has no end"
    );
}

#[test]
fn device_names_cannot_widen_the_principal_pattern() {
    assert_eq!(principal_part("my phone,*?"), "my-phone---");
}
