//! Administrator events: accept, reject, PINs, revoke, rotate, escrow.

use std::collections::BTreeSet;

use mesh_core::envelope::{Encrypted, Signed};
use mesh_core::freshness::{self, Heartbeat};
use mesh_core::objects::{AccountKeys, ProfileDevice, Role, Slot};
use mesh_core::portal::{
    self as p, store as st, AccessEntry, AccessList, ConnectResult, DeviceState, InboundRequest,
    MessagePin, RespondConnection,
};
use mesh_core::{b64, pin, udf};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::client::now;
use crate::error::{AccountError, Result};
use crate::event::{admin_event, admin_event_on, Draft};
use crate::host::Host;
use crate::pull::{adopt_rotation, pull, SyncReport};
use crate::session::Session;
use crate::state::*;
use crate::store::Store;
use mesh_plugins::{AccountView, AppEntry, Event, PluginError};

/// A pending request as `mesh device pending` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PendingView {
    /// Witness.
    pub witness: String,
    /// Device name.
    pub name: String,
    /// Device UDF.
    pub device: String,
    /// Request id.
    pub request_id: String,
    /// Carries a PIN.
    pub pin: bool,
}

fn request_parts(ib: &InboundRequest) -> Result<(p::RequestConnection, ProfileDevice)> {
    let req: p::Request = ib.request.unverified_object("request")?;
    let rc: p::RequestConnection =
        serde_json::from_value(req.body).map_err(|e| AccountError::Untrusted(e.to_string()))?;
    let dp = ProfileDevice::verify(&rc.profile_device)?;
    Ok((rc, dp))
}

/// Requests without an answer.
pub fn pending(store: &mut Store) -> Result<Vec<PendingView>> {
    let a = account(store)?;
    if !a.roles.contains(&Role::ADMIN) {
        return Err(AccountError::NotAdmin(a.address));
    }
    let mut out = Vec::new();
    for ib in a
        .inbound
        .iter()
        .filter(|i| !a.answered.contains(&i.request_id))
    {
        let (rc, dp) = request_parts(ib)?;
        out.push(PendingView {
            witness: ib.witness.clone(),
            name: dp.description.name.clone(),
            device: dp.udf(),
            request_id: ib.request_id.clone(),
            pin: rc.pin_id.is_some(),
        });
    }
    Ok(out)
}

fn find_request<'a>(a: &'a AccountState, which: &str) -> Result<&'a InboundRequest> {
    a.inbound
        .iter()
        .filter(|i| !a.answered.contains(&i.request_id))
        .find(|i| udf::udf_eq(&i.witness, which) || udf::udf_eq(&i.request_id, which))
        .ok_or_else(|| AccountError::UnknownRequest(which.to_string()))
}

/// The draft of an acceptance: the device's catalog entry, the next access
/// list naming it, and the signed response, for one transaction.
fn accept_draft(
    a: &AccountState,
    admin: &AccountKeys,
    ib: &InboundRequest,
    roles: &[Role],
    pin: Option<(&str, &str)>,
    slots: &[Slot],
) -> Result<(Draft, String)> {
    let (rc, dp) = request_parts(ib)?;
    let name = dp.description.name.clone();
    let (cat_env, _, entry, _) =
        crate::entries::connect_device(admin, &rc.profile_device, &name, roles, slots)?;
    let prev = a.access_list()?;
    if let Some(old) = prev.as_ref().and_then(|l| l.device(&entry.device_udf)) {
        if old.state == DeviceState::Revoked {
            return Err(AccountError::usage(
                format!(
                    "{name} ({}) was revoked; a revoked device cannot join again",
                    entry.device_udf
                ),
                "reject the request (`mesh device reject`); the device joins again from a new home",
            ));
        }
    }
    // Names are how people (and `device revoke NAME`) tell devices apart:
    // a second active device of the same name would make them ambiguous.
    if prev.as_ref().is_some_and(|l| {
        l.devices.iter().any(|d| {
            d.state == DeviceState::Active
                && d.name == name
                && !udf::udf_eq(&d.device_udf, &entry.device_udf)
        })
    }) {
        return Err(AccountError::usage(
            format!("the account already has an active device named {name}"),
            "reject this request (`mesh device reject`) and ask the device to request again with another --name, or revoke the old device first",
        ));
    }
    let device = entry.device_udf.clone();
    let access_env = crate::entries::next_access(admin, prev.as_ref(), |d| {
        d.retain(|x| !udf::udf_eq(&x.device_udf, &entry.device_udf));
        d.push(entry);
    });
    // Accepted by PIN: prove the PIN over this account and this request,
    // so that the device knows the answer is its administrators'.
    let pin_proof = pin
        .map(|(_, salted)| {
            pin::pin_proof(
                salted,
                &a.profile_udf,
                &ib.request_id,
                &crate::entries::payload_digest(&rc.profile_device),
            )
            .map(|m| b64::encode(&m))
        })
        .transpose()?;
    let response = RespondConnection {
        request_id: ib.request_id.clone(),
        result: ConnectResult::Accept,
        cataloged_device: Some(cat_env.clone()),
        pin_id: pin.map(|(id, _)| id.to_string()),
        reason: None,
        pin_proof,
    };
    let resp_env = Signed::sign_object(p::ct::RESPOND_CONNECTION, &response, &admin.admin_sign);
    let draft = Draft {
        access: Some(access_env),
        devices: vec![cat_env],
        local: vec![resp_env],
        event: Some(Event::Joined { device }),
        ..Draft::default()
    };
    Ok((draft, name))
}

/// `mesh device accept`: one transaction with the device's entries and
/// every channel's (its certificates and wrapped keys are there when it completes).
pub fn accept(store: &mut Store, host: &Host, which: &str, roles: &[Role]) -> Result<String> {
    admin_event(store, host, |a, _, admin| {
        let ib = find_request(a, which)?.clone();
        accept_draft(a, admin, &ib, roles, None, &host.slots())
    })
}

fn reject_draft(admin: &AccountKeys, request_id: &str, reason: Option<String>) -> Draft {
    let response = RespondConnection {
        request_id: request_id.to_string(),
        result: ConnectResult::Reject,
        cataloged_device: None,
        pin_id: None,
        reason,
        pin_proof: None,
    };
    Draft {
        local: vec![Signed::sign_object(
            p::ct::RESPOND_CONNECTION,
            &response,
            &admin.admin_sign,
        )],
        ..Draft::default()
    }
}

/// `mesh device reject`.
pub fn reject(store: &mut Store, host: &Host, which: &str) -> Result<String> {
    admin_event(store, host, |a, _, admin| {
        let ib = find_request(a, which)?;
        let (_, dp) = request_parts(ib)?;
        Ok((
            reject_draft(admin, &ib.request_id, None),
            dp.description.name,
        ))
    })
}

/// `mesh device pin`: register a one-time PIN; returns it.
///
/// The record names this device and the current administrator epoch: it is
/// honoured only while both hold (a revoked administrator's PINs, and every
/// PIN from before a recovery, are void). It lives at most
/// [`pin::MAX_LIFETIME`].
pub fn new_pin(
    store: &mut Store,
    host: &Host,
    roles: &[Role],
    valid_for: u64,
) -> Result<(Zeroizing<String>, u64)> {
    if valid_for == 0 || valid_for > pin::MAX_LIFETIME {
        return Err(AccountError::usage(
            format!(
                "a PIN may be valid for 1 s to {} h, not {valid_for} s",
                pin::MAX_LIFETIME / 3600
            ),
            "mint it shortly before the new device asks (`--expires 1h` is the default)",
        ));
    }
    let pin_text = Zeroizing::new(pin::new_pin());
    let expires = now() + valid_for;
    let a = account(store)?;
    let admin = admin_keys(store, &a)?;
    let salted = Zeroizing::new(pin::salted_pin(&pin_text, pin::ACTION_DEVICE)?);
    let record = MessagePin {
        pin_id: pin::pin_id(&salted, &a.address)?,
        salted_pin: salted,
        roles: roles.to_vec(),
        expires,
        automatic: true,
        issuer: Some(device_udf(store)?),
        epoch: Some(admin.epoch()),
    };
    let enc = Encrypted::encrypt_object(
        p::ct::MESSAGE_PIN,
        &record,
        &[admin.admin_encrypt.public_key()],
    )?;
    let env = Signed::sign_object(p::ct::MESSAGE_PIN, &enc, &admin.admin_sign);
    admin_event(store, host, |_, _, _| {
        Ok((
            Draft {
                local: vec![env.clone()],
                ..Draft::default()
            },
            (),
        ))
    })?;
    Ok((pin_text, expires))
}

/// What the administrator decided about a request that carries a PIN.
enum PinVerdict {
    Accept {
        roles: Vec<Role>,
        pin_id: String,
        salted: Zeroizing<String>,
    },
    Refuse(String),
}

/// The PIN records this administrator honours: signed with the current
/// epoch's key, opened with the current epoch's key, minted in this epoch by
/// an administrator device that is still active. Every other record is
/// void; one that should be readable and is not is reported in `unreadable`
/// (never fatal: one bad record must not stop every PIN).
fn live_pins(
    a: &AccountState,
    admin: &AccountKeys,
    unreadable: &mut Vec<String>,
) -> Result<Vec<MessagePin>> {
    let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
    let issuer_active = |u: &str| {
        list.device(u)
            .is_some_and(|d| d.state == DeviceState::Active && d.roles.contains(&Role::ADMIN))
    };
    let signer = [admin.admin_sign.public_key()];
    let mut out = Vec::new();
    for (i, penv) in a.pins.iter().enumerate() {
        // An earlier epoch's record: void, and not worth a report.
        if penv.verify(p::ct::MESSAGE_PIN, &signer).is_err() {
            continue;
        }
        let rec = penv
            .unverified_object::<Encrypted>("PIN record")
            .and_then(|enc| enc.decrypt(p::ct::MESSAGE_PIN, &admin.admin_encrypt))
            .and_then(|plain| mesh_core::envelope::from_json::<MessagePin>("PIN record", &plain));
        match rec {
            Ok(r)
                if r.epoch == Some(admin.epoch())
                    && r.issuer.as_deref().is_some_and(issuer_active) =>
            {
                out.push(r)
            }
            Ok(_) => {}
            Err(e) => unreadable.push(format!("PIN record {} of this epoch: {e}", i + 1)),
        }
    }
    Ok(out)
}

/// Judge one request that carries a PIN against the live PIN records.
fn judge_pin(
    a: &AccountState,
    live: &[MessagePin],
    rc: &p::RequestConnection,
    id: &str,
    w: &str,
) -> Result<PinVerdict> {
    if !pin::is_canonical_id(id) {
        return Ok(PinVerdict::Refuse(
            "the PIN id is not spelled as `mesh device request` writes it".into(),
        ));
    }
    if a.pins_used.contains(id) {
        return Ok(PinVerdict::Refuse("the PIN was used already".into()));
    }
    let mut expired = false;
    for rec in live.iter().filter(|r| r.pin_id == id && r.automatic) {
        // A record that claims a longer life than any PIN may have is void.
        if rec.expires <= now() || rec.expires > now() + pin::MAX_LIFETIME {
            expired = true;
            continue;
        }
        let nonce = b64::decode(&rc.client_nonce)?;
        let want = pin::pin_witness(
            &rec.salted_pin,
            &a.address,
            &nonce,
            &crate::entries::payload_digest(&rc.profile_device),
        )?;
        let got = b64::decode(w)?;
        if subtle::ConstantTimeEq::ct_eq(&want[..], &got[..]).into() {
            return Ok(PinVerdict::Accept {
                roles: rec.roles.clone(),
                pin_id: id.to_string(),
                salted: rec.salted_pin.clone(),
            });
        }
        return Ok(PinVerdict::Refuse(
            "the PIN witness does not match the request (wrong PIN)".into(),
        ));
    }
    Ok(PinVerdict::Refuse(if expired {
        "the PIN has expired".into()
    } else {
        "the PIN is wrong, or void (no such PIN in this administrator epoch)".into()
    }))
}

/// What `accept_by_pin` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PinOutcome {
    /// Devices accepted by PIN.
    pub accepted: Vec<String>,
    /// Devices refused, with the reason they were told.
    pub refused: Vec<(String, String)>,
    /// PIN records of this epoch that could not be read (skipped).
    pub unreadable: Vec<String>,
}

/// The first pending request that carries a PIN and is not in `done`,
/// with its device's name.
fn next_pin_request(
    a: &AccountState,
    done: &BTreeSet<String>,
) -> Result<Option<(InboundRequest, String)>> {
    for ib in a
        .inbound
        .iter()
        .filter(|i| !a.answered.contains(&i.request_id) && !done.contains(&i.request_id))
    {
        let (rc, dp) = request_parts(ib)?;
        if rc.pin_id.is_some() && rc.pin_witness.is_some() {
            return Ok(Some((ib.clone(), dp.description.name.clone())));
        }
    }
    Ok(None)
}

/// Answer every pending request that carries a PIN: accept those whose PIN
/// is live, unused and unexpired; refuse the others with the reason, so
/// that the device stops waiting. Each answer is one transaction, judged on
/// the state that transaction writes on. `a` is the state the sync just
/// pulled; the state after the answers is returned (not read again).
pub(crate) fn accept_by_pin(
    store: &mut Store,
    host: &Host,
    mut a: Session,
) -> Result<(PinOutcome, Session)> {
    let mut out = PinOutcome::default();
    // Each request is judged once per sync, whatever the portal says.
    let mut done = BTreeSet::new();
    while let Some((ib, name)) = next_pin_request(a.state(), &done)? {
        done.insert(ib.request_id.clone());
        let rid = ib.request_id.clone();
        let mut unreadable = Vec::new();
        let (accepted, after) = admin_event_on(store, host, a, |a, _, admin| {
            if a.answered.contains(&rid) {
                return Ok((Draft::default(), None));
            }
            let (rc, _) = request_parts(&ib)?;
            let (Some(id), Some(w)) = (&rc.pin_id, &rc.pin_witness) else {
                return Ok((Draft::default(), None));
            };
            unreadable.clear();
            let live = live_pins(a, admin, &mut unreadable)?;
            match judge_pin(a, &live, &rc, id, w)? {
                PinVerdict::Accept {
                    roles,
                    pin_id,
                    salted,
                } => match accept_draft(
                    a,
                    admin,
                    &ib,
                    &roles,
                    Some((&pin_id, &salted)),
                    &host.slots(),
                ) {
                    Ok((d, _)) => Ok((d, Some(Ok(())))),
                    // Refused for what it is (a revoked device asking again):
                    // told, so that neither it nor this sync waits for ever.
                    Err(e @ AccountError::Usage { .. }) => {
                        let why = e.to_string();
                        Ok((reject_draft(admin, &rid, Some(why.clone())), Some(Err(why))))
                    }
                    Err(e) => Err(e),
                },
                PinVerdict::Refuse(why) => {
                    Ok((reject_draft(admin, &rid, Some(why.clone())), Some(Err(why))))
                }
            }
        })?;
        a = after;
        for u in unreadable {
            if !out.unreadable.contains(&u) {
                out.unreadable.push(u);
            }
        }
        match accepted {
            Some(Ok(())) => out.accepted.push(name),
            Some(Err(why)) => out.refused.push((name, why)),
            // Answered meanwhile (another administrator): nothing to report.
            None => {}
        }
    }
    Ok((out, a))
}

/// Administrators' routine: every channel publishes what the current state
/// needs (renewals, new holders); nothing when all is current. Returns how
/// many entries were published, and the state after them (`a` is the
/// state the sync just pulled; neither is read again).
pub(crate) fn maintain(store: &mut Store, host: &Host, a: Session) -> Result<(usize, Session)> {
    let count = |a: &AccountState| a.index(st::APPLICATION) + a.index(st::PUBLISHED);
    let before = count(a.state());
    let ((), a) = admin_event_on(store, host, a, |a, view, _| {
        // The administrators' promise, kept: an empty checkpoint when the
        // newest is half the promise old.
        let newest = a.history.checkpoint.as_ref().map_or(0, |c| c.issued);
        let heartbeat = view
            .app::<Heartbeat>(freshness::UID)?
            .is_some_and(|h| h.every > 0 && h.due(newest, now()));
        Ok((
            Draft {
                event: Some(Event::Periodic),
                heartbeat,
                ..Draft::default()
            },
            (),
        ))
    })?;
    let published = usize::try_from(count(a.state()).saturating_sub(before)).unwrap_or(0);
    Ok((published, a))
}

/// `mesh account heartbeat`: promise a checkpoint at least every `every`
/// seconds (`None`: no promise). Published, so that servers read it too;
/// every reader then refuses a newest checkpoint older than twice it.
pub fn set_heartbeat(store: &mut Store, host: &Host, every: Option<u64>) -> Result<()> {
    if let Some(e) = every.filter(|e| *e < freshness::MIN_EVERY) {
        return Err(AccountError::usage(
            format!("a heartbeat every {e} s is shorter than the shortest, {} s", freshness::MIN_EVERY),
            "promise one every hour or more (`mesh account heartbeat 1h`); the agents write it on their hourly pass",
        ));
    }
    let data = serde_json::to_value(Heartbeat {
        every: every.unwrap_or(0),
    })
    .map_err(|e| AccountError::Untrusted(e.to_string()))?;
    admin_event(store, host, |_, _, _| {
        Ok((
            Draft {
                apps: vec![AppEntry {
                    uid: freshness::UID.into(),
                    data: data.clone(),
                    public: true,
                }],
                event: Some(Event::Periodic),
                // A promise starts kept.
                heartbeat: true,
                ..Draft::default()
            },
            (),
        ))
    })
}

/// Publish application entries the user asked for (a channel's policy)
/// and whatever the channels derive from them, in one transaction.
pub fn publish(
    store: &mut Store,
    host: &Host,
    build: impl Fn(&AccountView) -> std::result::Result<Vec<AppEntry>, PluginError>,
) -> Result<()> {
    admin_event(store, host, |_, view, _| {
        Ok((
            Draft {
                apps: build(view)?,
                event: Some(Event::Periodic),
                ..Draft::default()
            },
            (),
        ))
    })
}

/// A device as `mesh device list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// Name.
    pub name: String,
    /// Device UDF.
    pub device: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// active or revoked.
    pub state: String,
    /// This device.
    pub this: bool,
}

/// Every device of the account.
pub fn list(store: &Store) -> Result<Vec<DeviceView>> {
    let a = account(store)?;
    let me = device_udf(store)?;
    let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
    Ok(list
        .devices
        .iter()
        .map(|d| DeviceView {
            name: d.name.clone(),
            device: d.device_udf.clone(),
            roles: d.roles.clone(),
            state: match d.state {
                DeviceState::Active => "active".into(),
                DeviceState::Revoked => "revoked".into(),
            },
            this: udf::udf_eq(&d.device_udf, &me),
        })
        .collect())
}

/// The one active or revoked device named `which` (name or UDF).
pub(crate) fn target<'a>(
    list: &'a AccessList,
    which: &str,
    active_only: bool,
) -> Result<&'a AccessEntry> {
    let matches: Vec<&AccessEntry> = list
        .devices
        .iter()
        .filter(|d| !active_only || d.state == DeviceState::Active)
        .filter(|d| d.name == which || udf::udf_eq(&d.device_udf, which))
        .collect();
    match matches.as_slice() {
        [] => Err(AccountError::UnknownDevice(
            which.to_string(),
            if active_only { "active " } else { "" },
        )),
        [one] => Ok(one),
        _ => Err(AccountError::usage(
            format!("{} devices are named {which}", matches.len()),
            "give the device UDF (`mesh device list` shows them)",
        )),
    }
}

/// `mesh device rotate NAME|UDF`: new keys for a device, computed here
/// from its base public keys and a fresh activation at the next epoch (the
/// device may be offline). Its identity (device UDF, name, roles) stays; the
/// portal refuses its old authentication key at once, and the device
/// switches to the new keys at its next sync. One transaction, with every
/// channel's entries for the new keys (its certificate, its wrapped keys).
pub fn rotate(store: &mut Store, host: &Host, which: &str) -> Result<(String, u32)> {
    let out = admin_event(store, host, |a, view, admin| {
        let list = a.access_list()?.ok_or(AccountError::NoAccount)?;
        let target = target(&list, which, true)?.clone();
        let d = view
            .devices
            .get(&target.device_udf)
            .ok_or_else(|| AccountError::NotFound(format!("no catalog entry for {which}")))?;
        let epoch = d.connection.authentication.epoch + 1;
        let (cat_env, new_conn) = crate::entries::reissue(
            admin,
            &d.catalog,
            &d.profile,
            &d.connection.roles,
            epoch,
            &host.slots(),
        )?;
        let access_env = crate::entries::next_access(admin, Some(&list), |d| {
            for e in d.iter_mut() {
                if udf::udf_eq(&e.device_udf, &target.device_udf) {
                    e.authentication = new_conn.authentication.clone();
                }
            }
        });
        let draft = Draft {
            access: Some(access_env),
            devices: vec![cat_env],
            event: Some(Event::Rotated {
                device: target.device_udf.clone(),
            }),
            ..Draft::default()
        };
        Ok((draft, (target.name, epoch)))
    })?;
    // This device rotated itself: adopt the new keys now.
    if adopt_rotation(store)? {
        pull(store, host, &mut SyncReport::default())?;
    }
    Ok(out)
}

/// `mesh account escrow`: refused. The account's root is on no device:
/// `mesh account create` handed it out once, as recovery shares.
pub fn escrow(store: &Store, _k: u8, _n: u8) -> Result<Vec<Zeroizing<String>>> {
    let a = account(store)?;
    Err(AccountError::usage(
        format!(
            "no device holds the root of {}: its recovery shares were written once, by `mesh account create`",
            a.address
        ),
        "recover with those shares (`mesh account recover`); a device that held the root could not be revoked",
    ))
}
