//! `mesh sync` and the agent's quick check: pull, then (administrators)
//! answer PIN requests and publish what the channels need, then let every
//! channel bring this device up to date.

use std::collections::BTreeMap;

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
    indices: BTreeMap<String, u64>,
    admin: bool,
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
    Ok(QuickView {
        client: Client::new(&a.portal)?,
        profile_udf: a.profile_udf.clone(),
        device_udf: device_udf(store)?,
        auth: device_keys(store)?.authenticate,
        indices: a.indices.clone(),
        admin: a.roles.contains(&Role::Admin),
    })
}

impl QuickView {
    /// Whether the account's stores are where the last sync left them (one
    /// signed Status request).
    pub fn unchanged(&self) -> std::result::Result<bool, ClientError> {
        let r: p::StatusResponse = self.client.signed(
            tx::STATUS,
            &self.profile_udf,
            &self.device_udf,
            serde_json::json!({}),
            &self.auth,
        )?;
        Ok(r.stores.iter().all(|s| {
            let mine = matches!(
                s.store.as_str(),
                st::ACCESS | st::DEVICE | st::APPLICATION | st::PUBLISHED
            ) || self.admin;
            !mine || self.indices.get(&s.store).copied().unwrap_or(0) == s.index
        }))
    }
}
