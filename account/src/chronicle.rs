//! The account's history as a person reads it (`mesh account history`,
//! and what `account recover --since` turns back): one line per
//! checkpoint, with what it did in words ("accepted tablet (admin,ssh)",
//! "revoked laptop", "ssh principals root,evil", "recovery").
//!
//! The words come from the entries each checkpoint covers: the access list
//! at its head against the one at the head before, and the channels'
//! policy entries (each channel words its own: the host knows none).
//! Everything is read from the public stores (or the recovery read) and
//! verified before it is described.

use std::collections::BTreeMap;

use mesh_core::envelope::Signed;
use mesh_core::history::{Checkpoint, History};
use mesh_core::objects::{CatalogedApplication, ProfileAccount};
use mesh_core::portal::{self as p, store as st, AccessEntry, AccessList, DeviceState, StoreIndex};
use mesh_core::replica;
use mesh_core::udf;

use crate::client::Client;
use crate::error::{AccountError, Result};
use crate::host::Host;

/// One checkpoint of an account's history, as `mesh account history`
/// lists it: what a recovery's `--since @SERIAL` names.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryLine {
    /// Its serial.
    pub serial: u64,
    /// When it was issued (Unix seconds).
    pub issued: u64,
    /// The stores it moved: name, index before, index after.
    pub changed: Vec<(String, u64, u64)>,
    /// The administrator epoch it started, if any.
    pub epoch: Option<u32>,
    /// Signed by the root (a recovery), not by an administrator.
    pub by_root: bool,
    /// What it did, in words.
    pub actions: Vec<String>,
}

/// Verified entries by store (what the recovery read returns, or the
/// public stores read by [`history`]).
pub(crate) type Raw = BTreeMap<String, Vec<p::Entry>>;

fn parse(e: &p::Entry) -> Option<Signed> {
    serde_json::from_value::<Signed>(e.envelope.clone()).ok()
}

fn roles(e: &AccessEntry) -> String {
    let r: Vec<&str> = e.roles.iter().map(|r| r.name()).collect();
    r.join(",")
}

/// What changed from `before` to `after`, device by device.
pub fn device_actions(before: Option<&AccessList>, after: &AccessList) -> Vec<String> {
    let mut out = Vec::new();
    for d in &after.devices {
        let was = before.and_then(|b| b.device(&d.device_udf));
        match (was, d.state) {
            (None, DeviceState::Active) => out.push(format!("accepted {} ({})", d.name, roles(d))),
            (None, DeviceState::Revoked) => out.push(format!("revoked {}", d.name)),
            (Some(w), DeviceState::Revoked) if w.state == DeviceState::Active => {
                out.push(format!("revoked {}", d.name))
            }
            (Some(w), DeviceState::Active) if w.state == DeviceState::Revoked => {
                out.push(format!("restored {} ({})", d.name, roles(d)))
            }
            (Some(w), DeviceState::Active) if w.roles != d.roles => {
                out.push(format!("roles of {}: {} → {}", d.name, roles(w), roles(d)))
            }
            (Some(w), DeviceState::Active) if w.authentication != d.authentication => {
                out.push(format!("rotated {}", d.name))
            }
            _ => {}
        }
    }
    out
}

/// The entry of `store_name` at `index`, parsed as `T`.
fn at<T: serde::de::DeserializeOwned>(raw: &Raw, store_name: &str, index: u64) -> Option<T> {
    raw.get(store_name)?
        .iter()
        .find(|e| e.index == index)
        .and_then(parse)
        .and_then(|env| env.unverified_object::<T>("entry").ok())
}

/// The policy entries (of any channel) in `(from, to]` of the Published
/// and Application stores, in words.
fn policy_actions(host: &Host, raw: &Raw, moved: &[(String, u64, u64)]) -> Vec<String> {
    let mut out = Vec::new();
    for (store_name, from, to) in moved {
        if store_name != st::PUBLISHED && store_name != st::APPLICATION {
            continue;
        }
        for i in from + 1..=*to {
            let Some(app) = at::<CatalogedApplication>(raw, store_name, i) else {
                continue;
            };
            for pl in host.plugins() {
                if pl.policy_uids().contains(&app.uid.as_str()) {
                    out.extend(pl.describe_policy(&app.uid, &app.data));
                }
            }
        }
    }
    out
}

/// Each checkpoint of `raw` (verified), described. `root` is the
/// account's profile signature key's UDF: a checkpoint it signs is a
/// recovery's.
pub(crate) fn lines(host: &Host, raw: &Raw, root: &str) -> Vec<HistoryLine> {
    let mut out = Vec::new();
    let mut before: Option<Checkpoint> = None;
    for e in raw.get(st::CHECKPOINT).into_iter().flatten() {
        let Some(env) = parse(e) else { continue };
        let Ok(c) = env.unverified_object::<Checkpoint>("checkpoint") else {
            continue;
        };
        let head =
            |c: Option<&Checkpoint>, s: &str| c.and_then(|c| c.head(s)).map_or(0, |h| h.index);
        let changed: Vec<(String, u64, u64)> = c
            .heads
            .iter()
            .filter_map(|n| {
                let from = head(before.as_ref(), &n.store);
                (n.index != from).then(|| (n.store.clone(), from, n.index))
            })
            .collect();
        let by_root = env.signatures.iter().any(|s| udf::udf_eq(&s.kid, root));
        let mut actions = Vec::new();
        if by_root {
            actions.push("recovery with the kit".to_string());
        } else if before.is_none() {
            actions.push("account created".to_string());
        }
        if let Some(e) = &c.epoch {
            actions.push(format!("administrator epoch {}", e.number));
        }
        let (a0, a1) = (
            head(before.as_ref(), st::ACCESS),
            head(Some(&c), st::ACCESS),
        );
        if a1 != a0 {
            if let Some(now) = at::<AccessList>(raw, st::ACCESS, a1) {
                let was = (a0 > 0)
                    .then(|| at::<AccessList>(raw, st::ACCESS, a0))
                    .flatten();
                actions.extend(device_actions(was.as_ref(), &now));
            }
        }
        actions.extend(policy_actions(host, raw, &changed));
        if actions.is_empty() {
            actions.push(quiet(&changed).to_string());
        }
        out.push(HistoryLine {
            serial: c.serial,
            issued: c.issued,
            changed,
            epoch: c.epoch.as_ref().map(|e| e.number),
            by_root,
            actions,
        });
        before = Some(c);
    }
    out
}

/// A checkpoint that changed no device and no policy.
fn quiet(changed: &[(String, u64, u64)]) -> &'static str {
    let only = |s: &str| changed.iter().all(|(n, _, _)| n == s);
    match changed {
        [] => "heartbeat",
        _ if only(st::LOCAL) => "an administrators' record (a PIN, an answer to a request)",
        _ => "channel entries (certificates, wrapped keys, renewals)",
    }
}

/// The account's public stores, each entry verified (checkpoints up to the
/// profile, their chains, every access list and application entry by a key
/// of the verified history), pinned to `pinned` when given (a lying portal
/// could otherwise show another account's). Bounded: [`crate::pager`].
fn read_public(
    client: &Client,
    who: &p::PublicRequest,
    pinned: Option<&str>,
) -> Result<(Raw, ProfileAccount, History)> {
    let mut read = Reading::default();
    let fetch = |_: &_, select: &[StoreIndex]| -> Result<p::DownloadResponse> {
        let req = p::PublicRequest {
            select: select.to_vec(),
            ..who.clone()
        };
        Ok(client.post("Public", &req)?)
    };
    let apply = |r: &mut Reading, page: p::DownloadResponse| {
        let base = match pinned {
            Some(u) => ProfileAccount::verify(&page.profile, u),
            None => ProfileAccount::verify_self_signed(&page.profile),
        }
        .map_err(|e| AccountError::Untrusted(format!("account profile: {e}")))?;
        replica::apply(r, &base, &page.updates)?;
        r.base = Some(base);
        Ok::<_, AccountError>(())
    };
    crate::pager::Pager::new(client.url(), "the public read of the account's history").read(
        &mut read,
        |r| public_position(&r.history),
        fetch,
        apply,
    )?;
    let Reading {
        history: h,
        raw,
        base,
    } = read;
    let base = base.ok_or_else(|| AccountError::Untrusted("no page was read".into()))?;
    h.settle(st::PUBLIC)?;
    let profile = h.profile(&base);
    crate::witness::require(&profile, h.serial(), &h.digest)?;
    Ok((raw, base, h))
}

/// What the public read of the history holds: the verified history, every
/// entry as served, and the last page's profile.
#[derive(Default)]
struct Reading {
    history: History,
    raw: Raw,
    base: Option<ProfileAccount>,
}

/// This reader's keeper of the shared replica: every entry kept raw, the
/// access lists and published entries verified (catalog entries are not
/// described here; their chain is checked).
impl replica::Keeper for Reading {
    fn history(&mut self) -> &mut History {
        &mut self.history
    }

    fn arriving(&mut self, store: &str, e: &p::Entry) -> std::result::Result<(), String> {
        self.raw
            .entry(store.to_string())
            .or_default()
            .push(e.clone());
        Ok(())
    }

    fn keep(
        &mut self,
        profile: &ProfileAccount,
        store: &str,
        env: Signed,
    ) -> std::result::Result<(), String> {
        match store {
            st::ACCESS => replica::next_access(None, &env, profile).map(drop),
            st::PUBLISHED => replica::application(&env, profile).map(drop),
            _ => Ok(()),
        }
    }
}

/// Where `h` stands in each public store.
pub fn public_position(h: &History) -> Vec<StoreIndex> {
    st::PUBLIC
        .iter()
        .map(|s| StoreIndex {
            store: s.to_string(),
            index: if *s == st::CHECKPOINT {
                h.serial()
            } else {
                h.position(s).index
            },
        })
        .collect()
}

/// `mesh account history`: the account's checkpoints (public), verified as
/// a reader without history verifies them, each described.
pub fn history(
    host: &Host,
    address: &str,
    portal: &str,
    pinned: Option<&str>,
) -> Result<Vec<HistoryLine>> {
    let client = Client::new(portal)?;
    let who = p::PublicRequest {
        account_address: Some(address.to_string()),
        profile_udf: None,
        select: Vec::new(),
    };
    let (raw, base, _) = read_public(&client, &who, pinned)?;
    Ok(lines(host, &raw, &base.profile_signature.udf()))
}

/// Every access list, device connection and epoch's claims an account ever had,
/// verified as [`history`] verifies them: what the windows of
/// `mesh ssh allowed-signers` are computed from. Servers' views keep only
/// the latest entry of each kind; a key's window needs them all.
#[derive(Debug, Clone)]
pub struct KeyHistory {
    /// The account's address.
    pub address: String,
    /// Every access list, in serial order.
    pub access: Vec<AccessList>,
    /// Every connection any catalog entry carried, in store order.
    pub connections: Vec<mesh_core::objects::ConnectionDevice>,
    /// The channels' claims as they stood in each administrator epoch (its
    /// SSH CA...), with the time the epoch started (epoch 0: the first
    /// checkpoint), in order.
    pub epochs: Vec<(u64, mesh_core::claims::Claims)>,
}

/// [`KeyHistory`] of the account pinned to `profile_udf`, read from the
/// portal's public stores (witness-checked: a portal that rolls the
/// account back is refused).
pub fn key_history(portal: &str, profile_udf: &str) -> Result<KeyHistory> {
    let client = Client::new(portal)?;
    let who = p::PublicRequest {
        account_address: None,
        profile_udf: Some(profile_udf.to_string()),
        select: Vec::new(),
    };
    let (raw, base, h) = read_public(&client, &who, Some(profile_udf))?;
    let profile = h.profile(&base);
    let entries = |s: &str| raw.get(s).into_iter().flatten().filter_map(parse);
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        AccountError::Untrusted(format!("{what} of the public stores: {e}"))
    };
    let mut access = Vec::new();
    for env in entries(st::ACCESS) {
        access.push(
            env.unverified_object::<AccessList>("access list")
                .map_err(|e| bad("an access list", &e))?,
        );
    }
    access.sort_by_key(|a| a.serial);
    let mut connections = Vec::new();
    for env in entries(st::DEVICE) {
        let d = mesh_plugins::DeviceEntry::verify(&env, &profile)
            .map_err(|e| bad("a catalog entry", &e))?;
        connections.push(d.connection);
    }
    let mut epochs: Vec<(u64, mesh_core::claims::Claims)> = Vec::new();
    for env in entries(st::CHECKPOINT) {
        let c = env
            .unverified_object::<Checkpoint>("checkpoint")
            .map_err(|e| bad("a checkpoint", &e))?;
        match &c.epoch {
            Some(e) => {
                let mut now = epochs.last().map_or(base.claims.clone(), |p| p.1.clone());
                now.update(&e.claims);
                epochs.push((c.issued, now));
            }
            None if epochs.is_empty() => epochs.push((c.issued, base.claims.clone())),
            None => {}
        }
    }
    Ok(KeyHistory {
        address: base.account_address.clone(),
        access,
        connections,
        epochs,
    })
}
