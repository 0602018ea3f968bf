//! `mesh device revoke`: one transaction with the next access list and
//! every channel's entries; a report, channel by channel, of what it did;
//! and, with `--wait`, the time each other device took to apply it.

use std::time::{Duration, Instant};

use mesh_core::objects::Role;
use mesh_core::portal::{self as p, tx, DeviceState};
use mesh_core::udf;
use mesh_plugins::Event;
use serde::Serialize;

use crate::admin::target;
use crate::client::Client;
use crate::error::{AccountError, Result};
use crate::event::{admin_event_on, Draft};
use crate::host::Host;
use crate::pull::{pull, SyncReport};
use crate::state::{account, device_keys, device_udf};
use crate::store::Store;

/// What one channel did.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelReport {
    /// The channel (`ssh`, `smime`, `pgp`).
    pub channel: String,
    /// What it did, one line each.
    pub done: Vec<String>,
}

/// What `mesh device revoke` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeReport {
    /// The device's name.
    pub name: String,
    /// Its UDF.
    pub device: String,
    /// The access list serial that revokes it.
    pub serial: u64,
    /// It was revoked before this command (a retry): nothing was written.
    pub already: bool,
    /// The portal's access list and every channel.
    pub channels: Vec<ChannelReport>,
}

/// Revoke `which`: one transaction, then the report.
pub fn revoke(store: &mut Store, host: &Host, which: &str) -> Result<RevokeReport> {
    let me = device_udf(store)?;
    // The account as the event was built on (the last attempt's, after a conflict).
    let mut before = None;
    let a = pull(store, host, &mut SyncReport::default())?;
    let s = crate::session::Session::new(a);
    let ((t, already), mut s) = admin_event_on(store, host, s, |a, view, admin| {
        let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
        let t = target(&list, which, false)?.clone();
        if udf::udf_eq(&t.device_udf, &me) {
            return Err(AccountError::usage(
                "refusing to revoke this device itself",
                "revoke it from another administrator device",
            ));
        }
        if t.state == DeviceState::Revoked {
            // A retry after a lost answer, or a second administrator: done
            // already, nothing to write.
            return Ok((Draft::default(), (t, true)));
        }
        // An administrator held the online keys: they are replaced by a new
        // epoch's, wrapped only to the administrators that remain, and
        // every entry of this event is signed with them.
        let next_keys = t.roles.contains(&Role::ADMIN).then(|| admin.next_epoch());
        let signer = next_keys.as_ref().unwrap_or(admin);
        let env = crate::entries::next_access(signer, Some(&list), |d| {
            for e in d
                .iter_mut()
                .filter(|e| udf::udf_eq(&e.device_udf, &t.device_udf))
            {
                e.state = DeviceState::Revoked;
            }
        });
        before = Some(view.clone());
        let draft = Draft {
            access: Some(env),
            event: Some(Event::Revoked {
                device: t.device_udf.clone(),
            }),
            next_keys,
            ..Draft::default()
        };
        Ok((draft, (t, false)))
    })?;
    let after = s.view(host)?.1.clone();
    let mut report = RevokeReport {
        name: t.name,
        device: t.device_udf,
        serial: after.serial(),
        already,
        channels: Vec::new(),
    };
    let Some(before) = before.filter(|_| !already) else {
        return Ok(report);
    };
    let event = Event::Revoked {
        device: report.device.clone(),
    };
    let mut portal = vec![format!(
        "access list {} revokes it: every request it makes is refused",
        after.serial()
    )];
    if after.profile.epoch() > before.profile.epoch() {
        portal.push(format!(
            "administrator epoch {}: new administrator keys and every key derived from them (the channels' CAs and primaries), wrapped only to the remaining administrators; what it holds vouches for nothing new",
            after.profile.epoch()
        ));
    }
    report.channels.push(ChannelReport {
        channel: "portal".into(),
        done: portal,
    });
    for pl in host.plugins() {
        report.channels.push(ChannelReport {
            channel: pl.name().into(),
            done: pl.describe(&event, &before, &after),
        });
    }
    Ok(report)
}

/// One other device, waited for.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceWait {
    /// Its name.
    pub name: String,
    /// Its UDF.
    pub device: String,
    /// Seconds from the start of the wait until it reported the serial;
    /// `None`: it did not within the timeout (offline?).
    pub seconds: Option<f64>,
}

/// Wait until every other active device reports it applied access list
/// `serial` (devices report it at their next contact), or `timeout` passes.
pub fn wait_applied(store: &Store, serial: u64, timeout: Duration) -> Result<Vec<DeviceWait>> {
    let start = Instant::now();
    let a = account(store)?;
    let me = device_udf(store)?;
    let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
    let mut waits: Vec<DeviceWait> = list
        .devices
        .iter()
        .filter(|d| d.state == DeviceState::Active && !udf::udf_eq(&d.device_udf, &me))
        .map(|d| DeviceWait {
            name: d.name.clone(),
            device: d.device_udf.clone(),
            seconds: None,
        })
        .collect();
    let client = Client::new(&a.portal)?;
    let auth = device_keys(store)?.authenticate;
    loop {
        let r: p::StatusResponse = client.signed(
            tx::STATUS,
            &a.profile_udf,
            &me,
            serde_json::to_value(p::StatusRequest::default()).unwrap_or_default(),
            &auth,
        )?;
        for w in waits.iter_mut().filter(|w| w.seconds.is_none()) {
            if r.applied
                .iter()
                .any(|x| x.device_udf == w.device && x.serial >= serial)
            {
                w.seconds = Some(start.elapsed().as_secs_f64());
            }
        }
        if waits.iter().all(|w| w.seconds.is_some()) || start.elapsed() >= timeout {
            return Ok(waits);
        }
        // Polling the portal for other devices' reports (product code, not a test).
        std::thread::sleep(Duration::from_millis(100));
    }
}
