//! `entries()` of the SSH channel on a test account (no portal, no sshd):
//! a certificate per active `ssh` device, the KRL, and nothing when all
//! is current.

use mesh_core::objects::Role;
use mesh_plugins::testing::{uids, FakeDevice, TestAccount};
use mesh_plugins::{AccountView, DeviceHost, Event};
use ssh_key::{Certificate, HashAlg};

use super::*;

/// The published certificate of `d`, checked: the account's CA, its key.
fn cert_of(view: &AccountView, d: &FakeDevice) -> (Certificate, u64) {
    let key = device_key(&view.devices[d.device_udf()].connection).expect("ed25519");
    device_cert(view, d.device_udf(), &key)
        .expect("verifies")
        .expect("published")
}

fn published_krl_entry(view: &AccountView) -> SshKrlEntry {
    view.app(APP_KRL).expect("parses").expect("published")
}

fn created() -> (TestAccount, FakeDevice) {
    let mut account = TestAccount::new(&[&SshPlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    (account, laptop)
}

#[test]
fn a_new_account_gets_a_certificate_and_an_empty_krl_once() {
    let (mut account, laptop) = created();
    let out = account.sync(&SshPlugin, &Event::Created).expect("entries");
    let cert = format!("ssh-cert:{}", laptop.device_udf());
    assert_eq!(uids(&out), vec![cert, APP_KRL.to_string()]);
    assert!(
        out.iter().any(|e| e.uid == APP_KRL && e.public),
        "servers read the KRL"
    );
    let view = account.view();
    let (c, _) = cert_of(&view, &laptop);
    assert_eq!(c.valid_principals(), ["alice"], "the address's local part");
    assert_eq!(c.key_id(), "laptop@alice@example.com");
    let fp = ca_key(&view.profile)
        .expect("ca")
        .fingerprint(HashAlg::Sha256);
    c.validate([&fp]).expect("valid now, by the account's CA");
    assert_eq!(
        published_krl_entry(&view).content,
        "",
        "nothing revoked yet"
    );
    // All current: an administrator's sync publishes nothing.
    let again = account
        .entries(&SshPlugin, &Event::Periodic)
        .expect("entries");
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_joining_ssh_device_gets_its_certificate_others_get_none() {
    let (mut account, laptop) = created();
    account.sync(&SshPlugin, &Event::Created).expect("create");
    let before = cert_of(&account.view(), &laptop).1;
    let phone = account.join("phone", &[ROLE]);
    let tablet = account.join("tablet", &[Role::named("pgp")]);
    let event = Event::Joined {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&SshPlugin, &event).expect("join");
    assert_eq!(uids(&out), vec![format!("ssh-cert:{}", phone.device_udf())]);
    let view = account.view();
    cert_of(&view, &phone);
    assert_eq!(cert_of(&view, &laptop).1, before, "the laptop's is current");
    assert!(view
        .app::<SshCertEntry>(&format!("ssh-cert:{}", tablet.device_udf()))
        .expect("parses")
        .is_none());
    assert!(account
        .entries(&SshPlugin, &event)
        .expect("again")
        .is_empty());
}

#[test]
fn a_revoked_device_lands_in_the_krl_key_and_serial() {
    let (mut account, _laptop) = created();
    let phone = account.join("phone", &[ROLE]);
    account.sync(&SshPlugin, &Event::Created).expect("create");
    let (_, serial) = cert_of(&account.view(), &phone);
    account.revoke(&phone);
    let event = Event::Revoked {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&SshPlugin, &event).expect("revoke");
    assert_eq!(
        uids(&out),
        vec![APP_KRL.to_string()],
        "no certificate for it"
    );
    let view = account.view();
    let key = device_key(&view.devices[phone.device_udf()].connection).expect("key");
    let krl = published_krl_entry(&view);
    assert_eq!(krl.version, view.serial());
    assert!(
        krl.content.contains(&cert::fingerprint(&key)),
        "{}",
        krl.content
    );
    assert!(
        krl.content.contains(&format!("serial:{serial}")),
        "{}",
        krl.content
    );
    let (version, bytes) = published_krl(&view).expect("valid").expect("one");
    assert_eq!(
        (version, krl_version(&bytes)),
        (view.serial(), Some(view.serial()))
    );
    assert!(account
        .entries(&SshPlugin, &Event::Periodic)
        .expect("again")
        .is_empty());
}

#[test]
fn a_rotated_device_gets_a_new_certificate_and_its_old_key_is_revoked() {
    let (mut account, _laptop) = created();
    let mut phone = account.join("phone", &[ROLE]);
    account.sync(&SshPlugin, &Event::Created).expect("create");
    let old = device_key(&account.view().devices[phone.device_udf()].connection).expect("key");
    account.rotate(&mut phone);
    let event = Event::Rotated {
        device: phone.device_udf().into(),
    };
    let out = account.sync(&SshPlugin, &event).expect("rotate");
    let cert = format!("ssh-cert:{}", phone.device_udf());
    assert_eq!(uids(&out), vec![cert, APP_KRL.to_string()]);
    let view = account.view();
    let (c, _) = cert_of(&view, &phone);
    assert_eq!(
        c.public_key(),
        &mesh_public(&std::sync::Arc::new(
            phone.keys().expect("keys").ed25519(&SLOT).expect("slot")
        )),
        "for the key the device now holds"
    );
    let krl = published_krl_entry(&view);
    assert!(
        krl.content.contains(&cert::fingerprint(&old)),
        "{}",
        krl.content
    );
    assert!(account
        .entries(&SshPlugin, &event)
        .expect("again")
        .is_empty());
}

#[test]
fn new_principals_reissue_every_certificate() {
    let (mut account, laptop) = created();
    let phone = account.join("phone", &[ROLE]);
    account.sync(&SshPlugin, &Event::Created).expect("create");
    let policy =
        principals_entry(&account.view(), &["root".into(), "deploy".into()], None).expect("policy");
    account.publish(&policy);
    let out = account.sync(&SshPlugin, &Event::Periodic).expect("reissue");
    let mut want = vec![
        format!("ssh-cert:{}", laptop.device_udf()),
        format!("ssh-cert:{}", phone.device_udf()),
    ];
    want.sort();
    assert_eq!(uids(&out), want);
    let view = account.view();
    assert_eq!(
        cert_of(&view, &phone).0.valid_principals(),
        ["root", "deploy"]
    );
    assert!(account
        .entries(&SshPlugin, &Event::Periodic)
        .expect("again")
        .is_empty());
}

#[test]
fn the_channel_declares_its_slot_and_serves_the_key_the_connection_names() {
    assert_eq!(SshPlugin.slots(), [SLOT]);
    let (account, laptop) = created();
    let view = account.view();
    let served = identities(&laptop, &view).expect("identities");
    let published = device_key(&view.devices[laptop.device_udf()].connection).expect("slot");
    assert_eq!(mesh_public(&served[0].key), published);
}

/// The account's SSH CA without the channel's slot: a host whose channels
/// claim the CA but give devices no SSH key.
#[derive(Debug)]
struct CaOnly;

impl mesh_plugins::Plugin for CaOnly {
    fn name(&self) -> &'static str {
        "ca-only"
    }
    fn role(&self) -> Option<Role> {
        None
    }
    fn entries(&self, _: &Event, _: &AccountView, _: &AccountKeys) -> Result<Vec<AppEntry>> {
        Ok(Vec::new())
    }
    fn claims(&self, admin: &AccountKeys, claims: &mut Claims) -> Result<()> {
        SshPlugin.claims(admin, claims)
    }
}

/// A device joined through a host without this channel has no SSH key in
/// its profile or connection: no certificate, and the agent says why.
#[test]
fn a_device_without_the_ssh_slot_gets_no_certificate_and_is_told_why() {
    let mut account = TestAccount::new(&[&CaOnly]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    let view = account.view();
    assert!(!view.devices[laptop.device_udf()]
        .connection
        .slots
        .names()
        .any(|n| n == SLOT.name));
    let out = SshPlugin
        .entries(&Event::Created, &view, account.admin())
        .expect("entries");
    assert!(
        !uids(&out).iter().any(|u| u.starts_with("ssh-cert:")),
        "{out:?}"
    );
    let e = match identities(&laptop, &view) {
        Err(e) => e,
        Ok(ids) => panic!("served {} identities without a published key", ids.len()),
    };
    assert!(
        matches!(e, PluginError::NoSlotKey { slot: "Ssh", .. }),
        "{e}"
    );
    assert!(
        e.hint().expect("a hint").contains("mesh device rotate"),
        "{e}"
    );
}

/// A profile and an epoch record as the code before claims wrote them
/// (the CA a field of its own, derived by core under "SshCa"): they
/// verify, the CA read by its claim is that key in both epochs, the KRL's
/// superseded CA is epoch 0's, and what the channel claims now is the
/// same key (existing accounts keep their CA).
#[test]
fn an_old_form_profile_and_epoch_record_keep_their_ca() {
    use mesh_core::authority::AdminEpoch;
    use mesh_core::derive::key_name;
    use mesh_core::envelope::Signed;
    use mesh_core::keys::{KeyData as K, PublicKey, SigningKey};
    use mesh_core::objects::{ct, ProfileAccount, RootKeys};
    let old_ca = |k: &AccountKeys| {
        let name = key_name("Online", "Account", "SshCa", k.epoch());
        K::with_epoch(SigningKey::derive(k.seed(), &name).public_key(), k.epoch())
    };
    let kd = |k: PublicKey| serde_json::to_value(K::new(k)).expect("json");
    let root = RootKeys::generate();
    let e0 = root.first_epoch();
    let old = serde_json::json!({
        "AccountAddress": "alice@example.com",
        "Service": "https://portal",
        "RootUdfs": [K::new(root.profile.public_key()).udf()],
        "ProfileSignature": kd(root.profile.public_key()),
        "AdministratorSignature": kd(e0.admin_sign.public_key()),
        "AdministratorEncryption": kd(e0.admin_encrypt.public_key()),
        "CommonEncryption": kd(root.encrypt.public_key()),
        "CommonAuthentication": kd(root.authenticate.public_key()),
        "CommonSignature": kd(root.sign.public_key()),
        "EscrowEncryption": kd(root.escrow.public_key()),
        "SshCertificationAuthority": kd(old_ca(&e0).key),
        "OpenpgpFingerprint": "00ff",
    });
    let env = Signed::sign_object(ct::PROFILE_ACCOUNT, &old, &root.profile);
    let profile = ProfileAccount::verify(&env, &root.profile_udf()).expect("an old profile");
    let ssh = |k: K| ssh_key_of(&k).expect("ed25519");
    assert_eq!(ca_key(&profile).expect("ca"), ssh(old_ca(&e0)));
    let mut claims = Claims::new();
    SshPlugin.claims(&e0, &mut claims).expect("claims");
    assert_eq!(claims.key(CA_CLAIM).expect("key"), Some(old_ca(&e0)));

    // Epoch 1's record as the code before wrote it.
    let e1 = e0.next_epoch();
    let seeds = e1
        .epoch_entry(Claims::new(), &[root.escrow.public_key()])
        .expect("epoch")
        .seeds;
    let record: AdminEpoch = serde_json::from_value(serde_json::json!({
        "Number": 1,
        "AdministratorSignature": serde_json::to_value(K::with_epoch(e1.admin_sign.public_key(), 1)).expect("json"),
        "AdministratorEncryption": serde_json::to_value(K::with_epoch(e1.admin_encrypt.public_key(), 1)).expect("json"),
        "SshCertificationAuthority": serde_json::to_value(old_ca(&e1)).expect("json"),
        "EnvelopedSeeds": seeds,
    }))
    .expect("an old epoch record");
    let now = profile.with_epochs([&record]);
    assert!(e1.matches(&now));
    assert_eq!(ca_key(&now).expect("ca"), ssh(old_ca(&e1)));
    assert_eq!(
        ca_of(&now.superseded[0].claims).expect("ca"),
        Some(ssh(old_ca(&e0))),
        "the KRL names epoch 0's CA"
    );
    assert_eq!(now.claims.text("OpenpgpFingerprint"), Some("00ff"), "kept");
    let mut claims = Claims::new();
    SshPlugin.claims(&e1, &mut claims).expect("claims");
    assert_eq!(claims.key(CA_CLAIM).expect("key"), Some(old_ca(&e1)));
}
