//! The Windows certificate store for real (Windows, or Wine with
//! `CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine`): `mesh smime install
//! --windows-store`'s install puts a test account's certificates in
//! CurrentUser\My with their private keys and its CA in CurrentUser\Root;
//! the revocation's wipe takes them out again. Each look goes through a
//! fresh store handle, which reads what the store persisted.
#![cfg(windows)]

use mesh_core::objects::Role;
use mesh_plugins::testing::TestAccount;
use mesh_plugins::{DeviceHost, Event, Plugin};
use mesh_smime::winstore::{self, thumbprint, Key, Store};
use mesh_smime::SmimePlugin;
use schannel::cert_store::CertStore;

/// The certificate with this thumbprint in a store, and whether its private key opens.
fn look(store: Store, thumb: &str) -> Option<bool> {
    let st = CertStore::open_current_user(store.name()).expect("open the store");
    let found = st.certs().find(|c| thumbprint(c.to_der()) == thumb)?;
    Some(found.private_key().silent(true).acquire().is_ok())
}

/// The friendly name of the certificate with this thumbprint in CurrentUser\My.
fn name(thumb: &str) -> Option<String> {
    let st = CertStore::open_current_user("My").expect("open the store");
    let found = st.certs().find(|c| thumbprint(c.to_der()) == thumb)?;
    found.friendly_name().ok()
}

#[test]
fn install_puts_the_keys_in_my_and_the_ca_in_root_and_wipe_takes_them_out() {
    let mut account = TestAccount::new(&[&SmimePlugin as &dyn Plugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, mesh_smime::entries::ROLE]);
    account.sync(&SmimePlugin, &Event::Created).expect("create");
    let phone = account.join("phone", &[mesh_smime::entries::ROLE]);
    account.sync(&SmimePlugin, &Event::Periodic).expect("join");
    let view = account.view();
    let plan = winstore::plan(&laptop, &view).expect("plan");

    let out = winstore::install(&laptop, &view).expect("install");
    for item in &plan {
        let thumb = thumbprint(&item.cert);
        let seen = look(item.store, &thumb);
        match item.key {
            Key::None => assert_eq!(seen, Some(false), "{item:?}: the CA, no key"),
            Key::Rsa(_) => assert_eq!(seen, Some(true), "{item:?}: with its key"),
            // Windows imports it through CNG; Wine 8's PKCS#12 import takes
            // RSA keys only, and the install says it left it out.
            Key::P256(_) if out.skipped.is_empty() => {
                assert_eq!(seen, Some(true), "{item:?}: with its key")
            }
            Key::P256(_) => {
                assert_eq!(seen, None, "{item:?}: left out");
                assert!(out.skipped[0].contains("ECDSA P-256"), "{:?}", out.skipped);
            }
        }
    }
    println!("installed {:?}, left out {:?}", out.installed, out.skipped);

    // A revocation elsewhere rotates the encryption key: the next sync
    // adds the new epoch and renames the old one, whose key old mail needs.
    account.revoke(&phone);
    let event = Event::Revoked {
        device: phone.device_udf().into(),
    };
    account.sync(&SmimePlugin, &event).expect("revoke");
    let lines = SmimePlugin.apply(&laptop, &account.view()).expect("sync");
    assert!(lines[0].contains("updated"), "{lines:?}");
    let plan = winstore::plan(&laptop, &account.view()).expect("plan");
    let rsa: Vec<_> = plan
        .iter()
        .filter(|i| matches!(i.key, Key::Rsa(_)))
        .collect();
    assert_eq!(rsa.len(), 2);
    for item in rsa {
        let thumb = thumbprint(&item.cert);
        assert_eq!(look(Store::My, &thumb), Some(true), "{item:?}");
        assert_eq!(name(&thumb).as_deref(), Some(item.name.as_str()));
    }

    let removed = SmimePlugin.wipe(&laptop).expect("wipe");
    assert_eq!(removed.len(), 1, "{removed:?}");
    for item in &plan {
        assert_eq!(
            look(item.store, &thumbprint(&item.cert)),
            None,
            "{item:?} gone"
        );
    }
}
