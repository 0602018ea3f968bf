//! A device's keeper of the shared page verifier ([`mesh_core::replica`]):
//! what a device's sync and the recovery read keep of each page, and how
//! they differ from a server's reader (the Inbound pool outside the
//! history, access lists sent as changes, every store kept whole, the
//! device's own index per store).

use std::collections::BTreeSet;
use std::sync::Arc;

use mesh_core::envelope::Signed;
use mesh_core::history::History;
use mesh_core::objects::{CatalogedDevice, ConnectionDevice, ProfileAccount, ProfileDevice};
use mesh_core::portal::{
    self as p, store as st, AccessList, DeviceState, InboundRequest, RespondConnection,
};
use mesh_core::replica::{self, Keeper};
use mesh_core::{b64, pin, udf};
use mesh_plugins::DeviceEntry;

use crate::error::Result;
use crate::pull::SyncReport;
use crate::state::*;

/// Verified view of downloaded entries, applied to a copy of the state.
/// Entries must continue each store without a gap; any entry that does not
/// verify refuses the whole download.
pub(crate) fn apply_entries(
    a: &mut AccountState,
    profile: &ProfileAccount,
    updates: &[p::StoreEntries],
    report: &mut SyncReport,
) -> Result<()> {
    // Nothing new (the usual answer): the list of a large account is not
    // parsed again; the rollback checks still run.
    let access = if updates.iter().any(|u| !u.entries.is_empty()) {
        a.access_list()?
    } else {
        None
    };
    let known_revoked = revoked_set(access.as_ref());
    let mut keeper = Device {
        a,
        access,
        report,
        expect: None,
    };
    replica::apply(&mut keeper, profile, updates)?;
    let Device {
        a, access, report, ..
    } = keeper;
    let now_revoked = revoked_set(access.as_ref());
    for d in access.iter().flat_map(|l| &l.devices) {
        if now_revoked.contains(&d.device_udf) && !known_revoked.contains(&d.device_udf) {
            report.revoked_devices.push(d.name.clone());
        }
    }
    forget_answered(a, crate::client::now());
    Ok(())
}

/// A device's state as a page is applied to it.
struct Device<'a> {
    a: &'a mut AccountState,
    access: Option<AccessList>,
    report: &'a mut SyncReport,
    /// The store being read and the index its next entry must have.
    expect: Option<(String, u64)>,
}

impl Device<'_> {
    fn next_index(&self, store: &str) -> u64 {
        match &self.expect {
            Some((s, n)) if s == store => *n,
            _ => self.a.index(store) + 1,
        }
    }
}

impl Keeper for Device<'_> {
    fn history(&mut self) -> &mut History {
        &mut self.a.history
    }

    fn unchained(&self, store: &str) -> bool {
        store == st::INBOUND
    }

    fn arriving(&mut self, store: &str, e: &p::Entry) -> std::result::Result<(), String> {
        let expect = self.next_index(store);
        // Inbound is the portal's pool of unanswered requests (not
        // covered by checkpoints): answered and expired ones leave gaps.
        let skips = store == st::INBOUND && e.index > expect;
        if e.index != expect && !skips {
            return Err(format!("expected entry {expect}"));
        }
        self.expect = Some((store.to_string(), e.index + 1));
        if e.delta.is_some() && (store != st::ACCESS || !e.envelope.is_null()) {
            return Err("a change where only a whole entry may come".into());
        }
        self.report.entries += 1;
        Ok(())
    }

    fn envelope(&self, _store: &str, e: &p::Entry) -> std::result::Result<Signed, String> {
        envelope_of(self.a, e)
    }

    fn loose(
        &mut self,
        profile: &ProfileAccount,
        _store: &str,
        e: &p::Entry,
    ) -> std::result::Result<(), String> {
        let ib = verify_inbound(profile, &e.envelope)?;
        self.report.new_requests.push(ib.witness.clone());
        self.a.inbound.push(ib);
        Ok(())
    }

    fn keep(
        &mut self,
        profile: &ProfileAccount,
        store: &str,
        env: Signed,
    ) -> std::result::Result<(), String> {
        apply_signed(self.a, profile, &mut self.access, store, env, self.report)
    }

    fn stored(&mut self, u: &p::StoreEntries) {
        let mut at = self.next_index(&u.store) - 1;
        if u.store == st::INBOUND && !u.partial {
            // Nothing left unread in the pool: at its last index, or Status
            // would report the gaps as new for ever.
            at = at.max(u.last);
        }
        self.a.indices.insert(u.store.clone(), at);
        self.expect = None;
    }
}

/// An administrator keeps a request's body only while it waits: once
/// answered (its id stays in `answered`), or dropped by the portal's pool
/// (`PENDING_TTL` after it came), it goes, so that what strangers send
/// does not pile up in the state every sync reads and writes.
fn forget_answered(a: &mut AccountState, now: u64) {
    let answered = &a.answered;
    a.inbound.retain(|i| {
        !answered.contains(&i.request_id) && now.saturating_sub(i.received) < p::PENDING_TTL
    });
}

/// An entry's envelope: whole, or an access list rebuilt from its change
/// to the one this state holds (verified afterwards as any entry).
fn envelope_of(a: &AccountState, e: &p::Entry) -> std::result::Result<Signed, String> {
    match &e.delta {
        Some(d) => {
            let base = a
                .access
                .as_ref()
                .ok_or("a change to an access list this device does not hold")?;
            d.apply(base).map_err(|x| x.to_string())
        }
        None => serde_json::from_value(e.envelope.clone()).map_err(|x| x.to_string()),
    }
}

fn revoked_set(list: Option<&AccessList>) -> BTreeSet<String> {
    list.iter()
        .flat_map(|l| &l.devices)
        .filter(|d| d.state == DeviceState::Revoked)
        .map(|d| d.device_udf.clone())
        .collect()
}

/// A connection request: signed by the device it names, with the witness
/// that binds both profiles and both nonces (recomputed here).
fn verify_inbound(
    profile: &ProfileAccount,
    envelope: &serde_json::Value,
) -> std::result::Result<InboundRequest, String> {
    let s = |x: &dyn std::fmt::Display| x.to_string();
    let ib: InboundRequest = serde_json::from_value(envelope.clone()).map_err(|x| s(&x))?;
    let req: p::Request = ib.request.unverified_object("request").map_err(|x| s(&x))?;
    let rc: p::RequestConnection = serde_json::from_value(req.body).map_err(|x| s(&x))?;
    let dp = ProfileDevice::verify(&rc.profile_device).map_err(|x| s(&x))?;
    ib.request
        .verify(p::ct::REQUEST, &[dp.authentication.key])
        .map_err(|x| s(&x))?;
    let w = pin::witness(
        &profile.value(),
        &b64::decode(&ib.server_nonce).map_err(|x| s(&x))?,
        &dp.value(),
        &b64::decode(&rc.client_nonce).map_err(|x| s(&x))?,
    );
    if !udf::udf_eq(&w, &ib.witness) {
        return Err("witness does not match the request".into());
    }
    Ok(ib)
}

/// One administrator-signed entry of the Access, Device, Application or
/// Local store.
fn apply_signed(
    a: &mut AccountState,
    profile: &ProfileAccount,
    access: &mut Option<AccessList>,
    store: &str,
    env: Signed,
    report: &mut SyncReport,
) -> std::result::Result<(), String> {
    let s = |x: &dyn std::fmt::Display| x.to_string();
    // Any epoch of the verified history: the chains tie each entry to the
    // checkpoint that authorised it (signed by its epoch's key).
    let admin = profile.history_signers();
    match store {
        st::ACCESS => {
            let list = replica::next_access(access.as_ref(), &env, profile)?;
            // Verified here: later reads of the state (and views) are served
            // from the host's memo, not verified again.
            mesh_plugins::view::ACCESS_LISTS.keep(&env, &list);
            *access = Some(list);
            a.access = Some(env);
        }
        st::DEVICE => {
            // Verified once, here (as a server verifies it): views of the
            // state do not check it again.
            let d = DeviceEntry::verify(&env, profile).map_err(|x| s(&x))?;
            let (cat, conn) = (d.catalog, d.connection);
            if !a.devices.contains_key(&cat.device_udf) {
                report.new_devices.push(cat.local_name.clone());
            }
            // A rotated key stays revocable: remember the one it replaces.
            if let Some(old) = a.devices.insert(cat.device_udf.clone(), Arc::new(env)) {
                let prev: CatalogedDevice =
                    old.unverified_object("catalog entry").map_err(|x| s(&x))?;
                let prev_conn: ConnectionDevice = prev
                    .connection_device
                    .unverified_object("connection")
                    .map_err(|x| s(&x))?;
                a.superseded
                    .extend(mesh_plugins::view::superseded(&prev_conn, &conn));
            }
        }
        // One uid lives in one of the two: the view merges them.
        st::APPLICATION | st::PUBLISHED => {
            let app = replica::application(&env, profile)?;
            a.applications.insert(app.uid, Arc::new(env));
        }
        st::LOCAL => {
            env.verify(&env.content_type, &admin).map_err(|x| s(&x))?;
            match env.content_type.as_str() {
                p::ct::RESPOND_CONNECTION => {
                    let rc: RespondConnection =
                        env.unverified_object("response").map_err(|x| s(&x))?;
                    a.answered.insert(rc.request_id);
                    if let Some(pid) = rc.pin_id {
                        a.pins_used.insert(mesh_core::pin::canonical_id(&pid));
                    }
                }
                p::ct::MESSAGE_PIN => a.pins.push(env),
                other => return Err(format!("unknown record type {other}")),
            }
        }
        other => return Err(format!("unknown store {other}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::changes::{AccessDelta, Edit};

    /// A change needs the list it changes: a state that holds none refuses
    /// it, and a whole envelope still parses.
    #[test]
    fn a_change_without_the_list_it_changes_is_refused() {
        let k = mesh_core::objects::RootKeys::generate();
        let any = Signed::sign(p::ct::ACCESS_LIST, b"{}".to_vec(), &[&k.authenticate]);
        let a = AccountState::empty(
            "alice@example.com".into(),
            "http://127.0.0.1:1".into(),
            "MB".into(),
            any.clone(),
            Membership::Member,
        );
        let delta = p::Entry {
            index: 1,
            envelope: serde_json::Value::Null,
            delta: Some(AccessDelta {
                edits: vec![Edit::default()],
                signatures: any.signatures.clone(),
            }),
        };
        let e = envelope_of(&a, &delta).expect_err("no base");
        assert!(e.contains("does not hold"), "{e}");
        let whole = p::Entry {
            index: 1,
            envelope: serde_json::to_value(&any).expect("json"),
            delta: None,
        };
        assert_eq!(envelope_of(&a, &whole).expect("whole"), any);
    }
}
