//! The Windows store's logic on a test account, through a fake store: what
//! is installed, kept current, left out and removed.

use std::collections::BTreeMap;

use mesh_core::objects::Role;
use mesh_plugins::testing::{FakeDevice, TestAccount};

use super::*;
use crate::entries::ROLE;
use crate::SmimePlugin;
use mesh_plugins::Event;

/// A store in memory: (store, thumbprint) → (friendly name, key kind).
#[derive(Default)]
struct Fake {
    certs: BTreeMap<(&'static str, String), (String, &'static str)>,
    /// Refuse P-256 keys, as Wine 8 does.
    no_ecdsa: bool,
    /// Fail when adding to this store.
    fail_on: Option<Store>,
    removed: Vec<Installed>,
}

impl Backend for Fake {
    fn add(&mut self, item: &Item) -> std::result::Result<(), AddError> {
        let kind = match item.key {
            Key::None => "none",
            Key::Rsa(_) => "rsa",
            Key::P256(_) if self.no_ecdsa => {
                return Err(AddError::Unsupported("no ECDSA here".into()))
            }
            Key::P256(_) => "p256",
        };
        if self.fail_on == Some(item.store) {
            return Err(AddError::Failed(PluginError::Internal("full".into())));
        }
        self.certs.insert(
            (item.store.name(), thumbprint(&item.cert)),
            (item.name.clone(), kind),
        );
        Ok(())
    }

    fn remove(&mut self, entry: &Installed) -> Result<()> {
        self.certs
            .remove(&(entry.store.name(), entry.thumbprint.clone()));
        self.removed.push(entry.clone());
        Ok(())
    }
}

impl Fake {
    /// What a store holds: (friendly name, key kind), sorted.
    fn names(&self, store: Store) -> Vec<(String, &'static str)> {
        let mut v: Vec<_> = self
            .certs
            .iter()
            .filter(|((s, _), _)| *s == store.name())
            .map(|(_, v)| v.clone())
            .collect();
        v.sort();
        v
    }
}

fn account() -> (TestAccount, FakeDevice) {
    let mut account = TestAccount::new(&[&SmimePlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    account.sync(&SmimePlugin, &Event::Created).expect("create");
    (account, laptop)
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn the_signing_key_every_held_epoch_and_the_ca_are_installed() {
    let (account, laptop) = account();
    let mut store = Fake::default();
    let out = install_with(&laptop, &account.view(), &mut store).expect("install");
    let a = &account.view().address;
    assert_eq!(
        store.names(Store::My),
        [
            (format!("{a} (encryption epoch 0)"), "rsa"),
            (format!("{a} (signing)"), "p256"),
        ]
    );
    assert_eq!(
        store.names(Store::Root),
        [(format!("{a} (Mesh personal CA)"), "none")]
    );
    assert_eq!(out.installed.len(), 3);
    assert!(out.skipped.is_empty());
    // Each RSA key its own container, named by its certificate.
    let plan = plan(&laptop, &account.view()).expect("plan");
    let containers: Vec<_> = plan
        .iter()
        .filter_map(|i| i.installed().container)
        .collect();
    assert_eq!(containers, [format!("Mesh {}", thumbprint(&plan[1].cert))]);
}

#[test]
fn a_store_without_ecdsa_gets_the_rest_and_the_install_says_what_it_left_out() {
    let (account, laptop) = account();
    let mut store = Fake {
        no_ecdsa: true,
        ..Fake::default()
    };
    let out = install_with(&laptop, &account.view(), &mut store).expect("install");
    let a = &account.view().address;
    assert_eq!(out.skipped, [format!("{a} (signing): no ECDSA here")]);
    assert_eq!(
        store.names(Store::My),
        [(format!("{a} (encryption epoch 0)"), "rsa")]
    );
    // Nothing changed: a sync does not try again.
    assert!(refresh_with(&laptop, &account.view(), &mut store)
        .expect("refresh")
        .is_empty());
}

#[test]
fn a_sync_after_a_new_encryption_epoch_installs_it_and_keeps_the_old_one() {
    let (mut account, laptop) = account();
    let phone = account.join("phone", &[ROLE]);
    account.sync(&SmimePlugin, &Event::Periodic).expect("join");
    let mut store = Fake::default();
    install_with(&laptop, &account.view(), &mut store).expect("install");
    assert!(refresh_with(&laptop, &account.view(), &mut store)
        .expect("refresh")
        .is_empty());
    account.revoke(&phone);
    let event = Event::Revoked {
        device: phone.device_udf().into(),
    };
    account.sync(&SmimePlugin, &event).expect("revoke");
    let lines = refresh_with(&laptop, &account.view(), &mut store).expect("refresh");
    assert_eq!(
        lines,
        ["Windows certificate store: 4 certificate(s) updated"]
    );
    let a = &account.view().address;
    assert_eq!(
        store.names(Store::My),
        [
            (format!("{a} (encryption epoch 1)"), "rsa"),
            (format!("{a} (retired encryption epoch 0)"), "rsa"),
            (format!("{a} (signing)"), "p256"),
        ]
    );
    assert!(
        store.removed.is_empty(),
        "every certificate is still wanted"
    );
}

#[test]
fn a_superseded_certificate_is_removed_on_the_next_install() {
    let (account, laptop) = account();
    let mut store = Fake::default();
    install_with(&laptop, &account.view(), &mut store).expect("install");
    // An earlier install's certificate (a re-issued one's predecessor).
    let stale = Installed {
        store: Store::My,
        thumbprint: "00".repeat(20),
        container: Some(format!("Mesh {}", "00".repeat(20))),
    };
    let mut rec = record(&laptop);
    rec.installed.push(stale.clone());
    rec.content = String::new();
    save(&laptop, &rec).expect("save");
    store
        .certs
        .insert(("My", stale.thumbprint.clone()), (s("old"), "rsa"));
    let lines = refresh_with(&laptop, &account.view(), &mut store).expect("refresh");
    assert_eq!(lines.len(), 1);
    assert_eq!(store.removed, [stale]);
    assert_eq!(store.names(Store::My).len(), 2);
}

#[test]
fn revocation_removes_every_certificate_and_key_mesh_installed() {
    let (account, laptop) = account();
    let mut store = Fake::default();
    install_with(&laptop, &account.view(), &mut store).expect("install");
    let lines = wipe_with(&laptop, &mut store).expect("wipe");
    assert_eq!(
        lines,
        ["3 certificate(s) and their keys removed from the Windows certificate store"]
    );
    assert!(store.certs.is_empty());
    assert_eq!(
        store
            .removed
            .iter()
            .filter(|r| r.container.is_some())
            .count(),
        1,
        "the RSA key's container goes too"
    );
    assert!(!laptop.records().contains_key(RECORD));
    assert!(wipe_with(&laptop, &mut store).expect("again").is_empty());
}

#[test]
fn an_install_that_fails_midway_leaves_what_it_added_known_to_a_revocation() {
    let (account, laptop) = account();
    let mut store = Fake {
        fail_on: Some(Store::Root),
        ..Fake::default()
    };
    install_with(&laptop, &account.view(), &mut store).expect_err("the CA fails");
    assert_eq!(store.names(Store::My).len(), 2);
    // Not current: the next sync installs again.
    store.fail_on = None;
    let lines = refresh_with(&laptop, &account.view(), &mut store).expect("refresh");
    assert_eq!(lines.len(), 1);
    store.fail_on = Some(Store::Root);
    wipe_with(&laptop, &mut store).expect("wipe");
    assert!(store.certs.is_empty());
}

#[test]
fn a_device_that_never_installed_has_nothing_to_refresh_or_wipe() {
    let (account, laptop) = account();
    let mut store = Fake::default();
    assert!(refresh_with(&laptop, &account.view(), &mut store)
        .expect("refresh")
        .is_empty());
    assert!(wipe_with(&laptop, &mut store).expect("wipe").is_empty());
    assert!(store.certs.is_empty() && store.removed.is_empty());
}

#[cfg(not(windows))]
#[test]
fn installing_into_the_windows_store_elsewhere_says_so_with_a_hint() {
    let (account, laptop) = account();
    let e = install(&laptop, &account.view()).expect_err("not Windows");
    assert!(e.to_string().contains("not built for Windows"), "{e}");
    assert!(e.hint().unwrap_or_default().contains("--nssdb"));
}
