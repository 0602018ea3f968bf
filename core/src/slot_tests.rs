//! Slots as data: today's two slots (the channels own their names; here
//! they are test data) give the same bytes and keys as before slots, and a
//! newer client's slot survives a round trip.

use serde_json::json;

use super::*;
use crate::derive::spec;
use crate::envelope::Signed;
use crate::objects::{
    complete_activation, ct, AccountKeys, ActivationKeys, ConnectionDevice, DeviceBaseKeys,
    DeviceDescription, DeviceKeys, ProfileAccount, ProfileDevice, RootKeys,
};

// The two slots the channels declare today, as data.
const COMBINED: Slot = Slot {
    name: "Ssh",
    kind: SlotKind::Combined,
};
const P256: Slot = Slot {
    name: "SmimeSign",
    kind: SlotKind::DeviceP256,
};

// Made by the code before slots (HEAD 836bf96, fields `ssh` and
// `smime_sign`) from the device seed [7; 32] and activation seed [9; 32].
const OLD_PROFILE: &str = r#"{"RootUdfs":["MCTX-MJG3-QR3N-HHOA-PSG2-YEQ7-3KUI"],"ProfileSignature":{"Udf":"MCTX-MJG3-QR3N-HHOA-PSG2-YEQ7-3KUI","Epoch":0,"PublicParameters":{"PublicKeyECDH":{"crv":"Ed25519","Public":"9hKW4r4veIgOTYpHQLUFsf5fpNsfMsf8b2CEvh09ajw"}}},"Encryption":{"Udf":"MAOU-7DXR-H5TH-6NP4-ZWBL-P45S-CN3U","Epoch":0,"PublicParameters":{"PublicKeyECDH":{"crv":"X25519","Public":"SAwJq3foCJxf1vzMPEx1b5Im4h7LP6BZjqcS1g_1pwiA"}}},"Signature":{"Udf":"MDTD-LIH5-TPN2-7VJQ-TTHG-6QQX-KCHM","Epoch":0,"PublicParameters":{"PublicKeyECDH":{"crv":"Ed25519","Public":"4Tcx4_upMUiWIfmJqHoVuc5eTs4OLyFjOk48QALKOAk"}}},"Authentication":{"Udf":"MCF2-KQTE-YHJK-BYDI-ZIUD-AGK2-JT5N","Epoch":0,"PublicParameters":{"PublicKeyECDH":{"crv":"Ed25519","Public":"gD6vdlBt7rNoy17HBsynu78_ev3LLKuTkFNjjA55hl8"}}},"Ssh":{"Udf":"MAHG-UCKC-IFQB-XJD5-L2XY-K4BI-ZXSI","Epoch":0,"PublicParameters":{"PublicKeyECDH":{"crv":"Ed25519","Public":"5fWjKyp-Nr84CGVFHtI2NYA5_4MXENXHiLITqmKam84"}}},"SmimeSign":"BLFe2RxuVrs_bQcyex8FRkh6eI20FTYTeIDgI9KBjqx6BpLu0IEYOMqayDBIhykzaVnnDXFW_19g53awUxC7E_4","Description":{"Name":"laptop","Platform":"linux"}}"#;
const OLD_ENVELOPE: &str = r#"{"ContentType":"ProfileDevice","Payload":"eyJSb290VWRmcyI6WyJNQ1RYLU1KRzMtUVIzTi1ISE9BLVBTRzItWUVRNy0zS1VJIl0sIlByb2ZpbGVTaWduYXR1cmUiOnsiVWRmIjoiTUNUWC1NSkczLVFSM04tSEhPQS1QU0cyLVlFUTctM0tVSSIsIkVwb2NoIjowLCJQdWJsaWNQYXJhbWV0ZXJzIjp7IlB1YmxpY0tleUVDREgiOnsiY3J2IjoiRWQyNTUxOSIsIlB1YmxpYyI6IjloS1c0cjR2ZUlnT1RZcEhRTFVGc2Y1ZnBOc2ZNc2Y4YjJDRXZoMDlhancifX19LCJFbmNyeXB0aW9uIjp7IlVkZiI6Ik1BT1UtN0RYUi1INVRILTZOUDQtWldCTC1QNDVTLUNOM1UiLCJFcG9jaCI6MCwiUHVibGljUGFyYW1ldGVycyI6eyJQdWJsaWNLZXlFQ0RIIjp7ImNydiI6IlgyNTUxOSIsIlB1YmxpYyI6IlNBd0pxM2ZvQ0p4ZjF2ek1QRXgxYjVJbTRoN0xQNkJaanFjUzFnXzFwd2lBIn19fSwiU2lnbmF0dXJlIjp7IlVkZiI6Ik1EVEQtTElINS1UUE4yLTdWSlEtVFRIRy02UVFYLUtDSE0iLCJFcG9jaCI6MCwiUHVibGljUGFyYW1ldGVycyI6eyJQdWJsaWNLZXlFQ0RIIjp7ImNydiI6IkVkMjU1MTkiLCJQdWJsaWMiOiI0VGN4NF91cE1VaVdJZm1KcUhvVnVjNWVUczRPTHlGak9rNDhRQUxLT0FrIn19fSwiQXV0aGVudGljYXRpb24iOnsiVWRmIjoiTUNGMi1LUVRFLVlISkstQllESS1aSVVELUFHSzItSlQ1TiIsIkVwb2NoIjowLCJQdWJsaWNQYXJhbWV0ZXJzIjp7IlB1YmxpY0tleUVDREgiOnsiY3J2IjoiRWQyNTUxOSIsIlB1YmxpYyI6ImdENnZkbEJ0N3JOb3kxN0hCc3ludTc4X2V2M0xMS3VUa0ZOampBNTVobDgifX19LCJTc2giOnsiVWRmIjoiTUFIRy1VQ0tDLUlGUUItWEpENS1MMlhZLUs0QkktWlhTSSIsIkVwb2NoIjowLCJQdWJsaWNQYXJhbWV0ZXJzIjp7IlB1YmxpY0tleUVDREgiOnsiY3J2IjoiRWQyNTUxOSIsIlB1YmxpYyI6IjVmV2pLeXAtTnI4NENHVkZIdEkyTllBNV80TVhFTlhIaUxJVHFtS2FtODQifX19LCJTbWltZVNpZ24iOiJCTEZlMlJ4dVZyc19iUWN5ZXg4RlJraDZlSTIwRlRZVGVJRGdJOUtCanF4NkJwTHUwSUVZT01xYXlEQkloeWt6YVZubkRYRldfMTlnNTNhd1V4QzdFXzQiLCJEZXNjcmlwdGlvbiI6eyJOYW1lIjoibGFwdG9wIiwiUGxhdGZvcm0iOiJsaW51eCJ9fQ","Signatures":[{"kid":"MCTX-MJG3-QR3N-HHOA-PSG2-YEQ7-3KUI","alg":"Ed25519","Signature":"dyYQYPf4_8rPfgOh4dLyYyvcIEsZN9LduqO3GsvTmSdwT-H5THJeZiXdEnHa69rez5Z1_C-pcS021VEIPDZNAw"}]}"#;
const OLD_ACTIVATION_SSH_EPOCH_3: &str = "_0APsxJJiaEyHOsU3jV_X6h5djq8a9LJNhYIg3tPpNM";
const OLD_COMBINED_SSH_EPOCH_3: &str = "g_oNjmwYesHIMjUorPNA_c2M3b5WsJNt1u48Hf7ojcY";

fn base() -> DeviceBaseKeys {
    let seed = Seed::from_parts(spec::MESH_PROFILE_DEVICE, &[7u8; 32]).expect("seed");
    DeviceBaseKeys::from_seed(seed).expect("device seed")
}

fn activation(epoch: u32) -> ActivationKeys {
    let seed = Seed::from_parts(spec::MESH_ACTIVATION_ACCOUNT, &[9u8; 32]).expect("seed");
    ActivationKeys::derive(&seed, epoch).expect("activation seed")
}

fn laptop() -> DeviceDescription {
    DeviceDescription {
        name: "laptop".into(),
        platform: "linux".into(),
    }
}

fn b64_public(k: &SigningKey) -> String {
    crate::b64::encode(&k.public_key().to_bytes())
}

#[test]
fn todays_slots_give_the_same_profile_bytes_and_keys() {
    let env = base()
        .profile(laptop(), &[COMBINED, P256])
        .expect("profile");
    assert_eq!(
        std::str::from_utf8(&env.payload).expect("utf-8"),
        OLD_PROFILE
    );
    let act = activation(3);
    assert_eq!(
        b64_public(&act.ed25519(&COMBINED).expect("slot")),
        OLD_ACTIVATION_SSH_EPOCH_3
    );
    let keys = DeviceKeys::combine(&base(), &act);
    assert_eq!(
        b64_public(&keys.ed25519(&COMBINED).expect("slot")),
        OLD_COMBINED_SSH_EPOCH_3
    );
}

#[test]
fn an_old_profile_signed_by_the_old_code_still_verifies() {
    let env: Signed = serde_json::from_str(OLD_ENVELOPE).expect("envelope");
    let p = ProfileDevice::verify(&env).expect("an old profile verifies");
    let b = base();
    assert_eq!(p.udf(), b.udf());
    assert_eq!(p.description, laptop());
    assert_eq!(p.authentication.key, b.authenticate.public_key());
    let ssh = p.slots.key(COMBINED.name).expect("typed").expect("present");
    assert_eq!(ssh.key, b.ed25519(&COMBINED).expect("slot").public_key());
    let point = p.slots.bytes(P256.name).expect("typed").expect("present");
    let want = b
        .p256(&P256)
        .expect("slot")
        .verifying_key()
        .to_encoded_point(false);
    assert_eq!(point, want.as_bytes());
    assert_eq!(p.slots.names().collect::<Vec<_>>(), ["Ssh", "SmimeSign"]);
}

fn account() -> (AccountKeys, ProfileAccount) {
    let root = RootKeys::generate();
    let admin = AccountKeys::generate(&root.profile_udf());
    let env = root.profile(
        "alice@example.com",
        "http://127.0.0.1:1",
        None,
        &admin,
        crate::claims::Claims::new(),
        None,
    );
    let profile = ProfileAccount::verify(&env, &admin.profile_udf()).expect("profile");
    (admin, profile)
}

#[test]
fn an_old_connection_signed_with_its_ssh_field_still_verifies() {
    let (admin, profile) = account();
    let b = base();
    let keys = DeviceKeys::combine(&b, &activation(3));
    let ssh = KeyData::with_epoch(keys.ed25519(&COMBINED).expect("slot").public_key(), 3);
    let auth = KeyData::with_epoch(keys.authenticate.public_key(), 3);
    // The old struct's fields, written out as the old code wrote them.
    let old = json!({
        "ProfileUdf": admin.profile_udf(),
        "DeviceUdf": b.udf(),
        "Roles": ["ssh"],
        "Authentication": auth,
        "Signature": KeyData::with_epoch(keys.sign.public_key(), 3),
        "Encryption": KeyData::with_epoch(keys.encrypt.public_key(), 3),
        "Ssh": ssh,
        "Issued": 1700000000u64,
    });
    let env = Signed::sign(
        ct::CONNECTION_DEVICE,
        serde_json::to_vec(&old).expect("json"),
        &[&admin.admin_sign],
    );
    let c = ConnectionDevice::verify(&env, &profile).expect("an old connection verifies");
    assert_eq!(c.authentication, auth);
    assert_eq!(c.issued, 1700000000);
    assert_eq!(c.slots.key("Ssh").expect("typed"), Some(ssh));
    assert_eq!(serde_json::to_value(&c).expect("json"), old);
}

#[test]
fn a_newer_clients_slot_is_kept_and_todays_keys_come_out_unchanged() {
    let mut v: serde_json::Value = serde_json::from_str(OLD_PROFILE).expect("json");
    let future = json!({"Kind": "a newer client's key", "Bytes": "AAEC"});
    v["FutureSlot"] = future.clone();
    let p: ProfileDevice = serde_json::from_value(v.clone()).expect("parses");
    assert_eq!(p.slots.get("FutureSlot"), Some(future));
    let again: ProfileDevice =
        serde_json::from_slice(&serde_json::to_vec(&p).expect("json")).expect("round trip");
    assert_eq!(again, p);
    assert_eq!(serde_json::to_value(&again).expect("json"), v);
    let b = base();
    let ssh = again.slots.key("Ssh").expect("typed").expect("present");
    assert_eq!(ssh.key, b.ed25519(&COMBINED).expect("slot").public_key());
}

#[test]
fn named_fields_stay_typed_beside_the_slots() {
    let mut v: serde_json::Value = serde_json::from_str(OLD_PROFILE).expect("json");
    v["Description"] = json!(5);
    assert!(serde_json::from_value::<ProfileDevice>(v).is_err());
    let mut v: serde_json::Value = serde_json::from_str(OLD_PROFILE).expect("json");
    v.as_object_mut().expect("object").remove("Authentication");
    assert!(serde_json::from_value::<ProfileDevice>(v).is_err());
    let mut v: serde_json::Value = serde_json::from_str(OLD_PROFILE).expect("json");
    v["Ssh"] = json!("not a key");
    let p: ProfileDevice = serde_json::from_value(v).expect("a slot is data");
    assert!(
        p.slots.key("Ssh").is_err(),
        "a malformed slot is an error when read"
    );
}

#[test]
fn issue_combines_the_known_slots_the_profile_has() {
    let (admin, profile) = account();
    let extra = Slot {
        name: "Other",
        kind: SlotKind::Combined,
    };
    let b = DeviceBaseKeys::generate();
    let mut dp = ProfileDevice::verify(&b.profile(laptop(), &[COMBINED, P256]).expect("profile"))
        .expect("verify");
    // A newer client's co-generated slot, which this host does not know.
    let future = KeyData::new(b.ed25519(&extra).expect("slot").public_key());
    dp.slots.set("Future", &future).expect("set");
    let issued =
        ConnectionDevice::issue(&admin, &dp, &[], 2, 1, &[COMBINED, P256, extra]).expect("issue");
    let conn = ConnectionDevice::verify(&issued.connection, &profile).expect("connection");
    // Known and in the profile: combined. Device-only: not in the
    // connection. Unknown to the host, or absent from the profile: left out.
    assert_eq!(conn.slots.names().collect::<Vec<_>>(), ["Ssh"]);
    let (keys, _) = complete_activation(&profile, &b, &issued.activation, &conn).expect("complete");
    let ssh = conn.slots.key("Ssh").expect("typed").expect("present");
    assert_eq!(ssh.epoch, 2);
    assert_eq!(ssh.key, keys.ed25519(&COMBINED).expect("slot").public_key());
}

#[test]
fn a_slot_of_another_kind_is_refused_and_debug_shows_no_secret() {
    let b = base();
    assert!(b.p256(&COMBINED).is_err());
    assert!(b.ed25519(&P256).is_err());
    let keys = DeviceKeys::combine(&b, &activation(0));
    let shown = format!("{keys:?} {:?} {b:?}", activation(0));
    let act_seed = Seed::from_parts(spec::MESH_ACTIVATION_ACCOUNT, &[9u8; 32]).expect("seed");
    for secret in [b.seed().to_udf(), act_seed.to_udf()] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
}
