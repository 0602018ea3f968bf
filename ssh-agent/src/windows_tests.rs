//! Short-lived certificates on a test account (no portal): the windows an
//! administrator holds, and what a device keeps of what is released.

use mesh_core::held::Held;
use mesh_core::objects::Role;
use mesh_plugins::testing::{FakeDevice, TestAccount};
use mesh_plugins::{DeviceHost, Event, Plugin};

use super::*;
use crate::channel::{cert_lifetime_entry, identities, SshPlugin};

fn account(lifetime: u64, ahead: u64) -> (TestAccount, FakeDevice) {
    let mut account = TestAccount::new(&[&SshPlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, crate::entries::ROLE]);
    let pol = cert_lifetime_entry(&account.view(), Some(lifetime), Some(ahead)).expect("policy");
    account.publish(&pol);
    account.sync(&SshPlugin, &Event::Periodic).expect("entries");
    (account, laptop)
}

fn held_of(account: &TestAccount) -> Vec<HeldBatch> {
    SshPlugin
        .held(&Event::Periodic, &account.view(), account.admin())
        .expect("held")
}

#[test]
fn an_administrator_holds_the_coming_windows_once() {
    let (mut account, laptop) = account(600, 1800);
    let t = now();
    let batches = held_of(&account);
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.device, laptop.device_udf());
    let (_, end) = window_of(t, 600);
    let certs: Vec<Certificate> = b
        .entries
        .iter()
        .map(|h| {
            let c: HeldCert = serde_json::from_value(h.data.clone()).expect("cert");
            Certificate::from_openssh(&c.certificate).expect("line")
        })
        .collect();
    // The windows after the current one, up to half an hour from now.
    assert!((3..=4).contains(&certs.len()), "{}", certs.len());
    for (k, (c, h)) in certs.iter().zip(&b.entries).enumerate() {
        let start = end + 600 * k as u64;
        assert_eq!(c.valid_before(), start + 600);
        assert_eq!(c.valid_after(), start - 150);
        assert_eq!(h.not_before, c.valid_after());
        assert_eq!(c.serial(), window_serial(laptop.device_udf(), start));
    }
    // The current window's is the ssh-cert entry, no longer than it.
    let view = account.view();
    let key =
        crate::entries::device_key(&view.devices[laptop.device_udf()].connection).expect("key");
    let (cur, _) = crate::entries::device_cert(&view, laptop.device_udf(), &key)
        .expect("verifies")
        .expect("issued");
    assert_eq!(cur.valid_before(), end);
    // Recorded: the next pass holds nothing new.
    account.publish(&b.record);
    assert!(held_of(&account).is_empty());
}

#[test]
fn a_device_keeps_only_what_is_released_and_verifies() {
    let (mut account, laptop) = account(600, 1800);
    let phone = account.join("phone", &[crate::entries::ROLE]);
    account.sync(&SshPlugin, &Event::Periodic).expect("entries");
    let batches = held_of(&account);
    let mine = batches
        .iter()
        .find(|b| b.device == laptop.device_udf())
        .expect("laptop's");
    let theirs = batches
        .iter()
        .find(|b| b.device == phone.device_udf())
        .expect("phone's");
    // Released now: a certificate for another device's key (refused),
    // then laptop's next window, as if its time had come; the rest waits.
    let now_ = now();
    let mut entries = vec![
        Held {
            not_before: now_,
            ..theirs.entries[0].clone()
        },
        Held {
            not_before: now_,
            ..mine.entries[0].clone()
        },
    ];
    entries.extend(mine.entries[1..].iter().cloned());
    laptop.hold(&entries);
    let view = account.view();
    let out = SshPlugin.apply(&laptop, &view).expect("apply");
    assert!(
        out.iter().any(|a| a.contains("skipped released entry 1")),
        "{out:?}"
    );
    assert!(out.iter().any(|a| a.contains("released")), "{out:?}");
    let rec = laptop.records()["ssh"].clone();
    assert_eq!(rec["Released"], 2, "{rec}");
    assert_eq!(rec["Held"].as_array().map(Vec::len), Some(1), "{rec}");
    // The next window's ends later; the due time is an overlap before it.
    let next: HeldCert = serde_json::from_value(mine.entries[0].data.clone()).expect("cert");
    let next = Certificate::from_openssh(&next.certificate).expect("line");
    assert_eq!(rec["Due"], next.valid_before() - 150);
    assert_eq!(SshPlugin.due(&laptop), Some(next.valid_before() - 150));
    // Served: the one valid now that ends last (the next window's from
    // its overlap on, the current window's before).
    let ids = identities(&laptop, &view).expect("ids");
    let served = ids[0].cert.as_ref().expect("a certificate");
    let want = if now() >= next.valid_after() {
        next.valid_before()
    } else {
        window_of(now_, 600).1
    };
    assert_eq!(served.valid_before(), want);
}
