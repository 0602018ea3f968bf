//! `mesh sync` and the agent's quick check: pull, then (administrators)
//! answer PIN requests and publish what the channels need, then let every
//! channel bring this device up to date.

use mesh_core::objects::Role;
use mesh_core::portal::{self as p, store as st, tx};

use crate::client::{Client, ClientError};
use crate::error::{AccountError, Result};
use crate::host::Host;
use crate::pull::pull;
pub use crate::pull::SyncReport;
use crate::state::*;
use crate::store::Store;

/// `mesh sync`: complete a pending connection, download and verify what is
/// new, (administrators) accept requests that carry a valid PIN and publish
/// what the channels need, then let every channel bring this device up to
/// date.
pub fn sync(store: &mut Store, host: &Host) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let a = account(store)?;
    match a.membership {
        Membership::Revoked => return Err(AccountError::Revoked(a.address)),
        Membership::Pending => {
            report.completed = crate::join::complete(store)?;
        }
        Membership::Member => {}
    }
    pull(store, host, &mut report)?;
    let a = account(store)?;
    if a.roles.contains(&Role::Admin) {
        let pins = crate::admin::accept_by_pin(store, host)?;
        report.auto_accepted = pins.accepted;
        report.pin_refused = pins.refused;
        report.entries_published = crate::admin::maintain(store, host)?;
        // Report only the requests that still wait for an answer.
        let a = account(store)?;
        report.new_requests.retain(|w| {
            a.inbound
                .iter()
                .any(|i| &i.witness == w && !a.answered.contains(&i.request_id))
        });
    }
    for (name, r) in crate::host::apply(store, host)? {
        match r {
            Ok(actions) => report
                .applied
                .extend(actions.into_iter().map(|x| format!("{name}: {x}"))),
            Err(e) => report.warnings.push(format!("{name}: {e}")),
        }
    }
    Ok(report)
}

/// What the agent keeps in memory to ask the portal cheaply whether
/// anything changed, without opening the store.
pub struct QuickView {
    client: Client,
    profile_udf: String,
    device_udf: String,
    auth: mesh_core::keys::SigningKey,
    known: Vec<p::StoreIndex>,
    serial: u64,
}

impl std::fmt::Debug for QuickView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickView")
            .field("device_udf", &self.device_udf)
            .finish_non_exhaustive()
    }
}

/// The quick view of a connected device, after a sync.
pub fn quick_view(store: &Store) -> Result<QuickView> {
    let a = account(store)?;
    if a.membership != Membership::Member {
        return Err(AccountError::NoAccount);
    }
    let admin = a.roles.contains(&Role::Admin);
    // The stores this device reads: members do not read the spools.
    let known = st::ALL
        .iter()
        .filter(|s| admin || !matches!(**s, st::INBOUND | st::LOCAL))
        .map(|s| p::StoreIndex {
            store: s.to_string(),
            index: a.index(s),
        })
        .collect();
    Ok(QuickView {
        client: Client::new(&a.portal)?,
        profile_udf: a.profile_udf.clone(),
        device_udf: device_udf(store)?,
        auth: device_keys(store)?.authenticate,
        known,
        serial: a.access_list()?.map(|l| l.serial).unwrap_or(0),
    })
}

impl QuickView {
    /// Whether the account's stores moved since the last sync: one signed
    /// Status request, held by the portal up to `wait` seconds until they
    /// do (a long-poll). It also reports the access list serial this device
    /// applied.
    pub fn changed(&self, wait: u64) -> std::result::Result<bool, ClientError> {
        let body = p::StatusRequest {
            wait,
            known: self.known.clone(),
            applied: Some(self.serial),
        };
        let r: p::StatusResponse = self.client.signed(
            tx::STATUS,
            &self.profile_udf,
            &self.device_udf,
            serde_json::to_value(&body).unwrap_or_default(),
            &self.auth,
        )?;
        let now = |k: &p::StoreIndex| {
            r.stores
                .iter()
                .find(|s| s.store == k.store)
                .map_or(0, |s| s.index)
        };
        // Behind what this device has: a rollback, for the full sync to
        // prove and refuse.
        if let Some(k) = self.known.iter().find(|k| now(k) < k.index) {
            return Err(ClientError::BadAnswer(format!(
                "the portal says the {} store is at {}, behind the {} this device has",
                k.store,
                now(k),
                k.index
            )));
        }
        Ok(self.known.iter().any(|k| now(k) != k.index))
    }
}
