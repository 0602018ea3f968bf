//! Reading and writing an account's stores: Download, Transact and the
//! public read (PROTOCOL.md §10.3), the recovery read and write, and the
//! checks on every entry an administrator appends.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use mesh_core::envelope::Signed;
use mesh_core::objects::{ProfileAccount, Role};
use mesh_core::portal::{self as p, code, store, tx, AccessList, DeviceState};

use crate::api::*;
use crate::state::*;
use crate::storage::{AccountRecord, Append, MAX_PAGE_BYTES};

/// Check one envelope an administrator appends, and note responses to index.
pub(crate) fn check_append(
    profile: &ProfileAccount,
    store_name: &str,
    env: &Signed,
    prev_access: &mut Option<AccessList>,
    responses: &mut Vec<(String, String)>,
) -> Result<(), ApiError> {
    // The current epoch's key (or the one this transaction starts), or the
    // root: a revoked administrator's key of an earlier epoch writes nothing.
    let admin = [
        profile.administrator_signature.key,
        profile.profile_signature.key,
    ];
    match store_name {
        store::ACCESS => {
            let a = AccessList::verify_current(env, profile)
                .map_err(|e| ApiError::forbidden(format!("access list: {e}")))?;
            let want = prev_access.as_ref().map(|p| p.serial + 1).unwrap_or(1);
            if let Some(prev) = prev_access.as_ref().filter(|_| a.serial == want) {
                prev.check_successor(&a, AccessList::by_root(env, profile))
                    .map_err(|e| ApiError::forbidden(format!("access list: {e}")))?;
            }
            if a.serial != want {
                // A writer that built on an older list: the same as a stale index.
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    code::CONFLICT,
                    format!(
                        "access list serial {} does not follow the current list ({want} expected)",
                        a.serial
                    ),
                ));
            }
            *prev_access = Some(a);
        }
        // Checked as a whole by `history::check`.
        store::CHECKPOINT => {}
        store::DEVICE | store::APPLICATION | store::PUBLISHED | store::LOCAL => {
            env.verify(&env.content_type, &admin)
                .map_err(|e| ApiError::forbidden(format!("{store_name} entry: {e}")))?;
            if store_name == store::LOCAL && env.content_type == p::ct::RESPOND_CONNECTION {
                let r: p::RespondConnection = env
                    .unverified_object("response")
                    .map_err(|e| ApiError::bad(e.to_string()))?;
                responses.push((r.request_id, serde_json::to_string(env).unwrap_or_default()));
            }
            if store_name == store::PUBLISHED {
                check_serve(env)?;
            }
        }
        other => {
            return Err(ApiError::forbidden(format!(
                "devices cannot write the {other} store"
            )))
        }
    }
    Ok(())
}

/// A Published entry's `Serve` member (PROTOCOL.md §18) is checked whole:
/// one bad member refuses the transaction, so that the index the storage
/// keeps from it (`storage::served`) holds only what the account signed.
fn check_serve(env: &Signed) -> Result<(), ApiError> {
    if env.content_type != mesh_core::ct::CATALOGED_APPLICATION {
        return Ok(());
    }
    let app: mesh_core::objects::CatalogedApplication = env
        .unverified_object("published entry")
        .map_err(|e| ApiError::bad(format!("Published entry: {e}")))?;
    let bad = |e: mesh_core::serve::ServeError| {
        ApiError::bad(format!("Published entry {}: {e}", app.uid))
    };
    if let Some(serve) = mesh_core::serve::of(&app).map_err(bad)? {
        serve.check().map_err(bad)?;
    }
    Ok(())
}

pub(crate) fn to_appends(updates: &[p::StoreUpdate]) -> Vec<Append> {
    updates
        .iter()
        .map(|u| Append {
            store: u.store.clone(),
            expected: Some(u.expected),
            entries: u
                .envelopes
                .iter()
                .map(|e| serde_json::to_string(e).unwrap_or_default())
                .collect(),
        })
        .collect()
}

/// A selection that names a store twice (each would be read again: seven
/// selections of one store were seven pages in memory) or a store that
/// does not exist.
fn check_select(select: &[p::StoreIndex], allowed: impl Fn(&str) -> bool) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for s in select {
        if !allowed(&s.store) {
            return Err(ApiError::bad(format!("no store {}", s.store)));
        }
        if !seen.insert(s.store.as_str()) {
            return Err(ApiError::bad(format!(
                "the {} store is selected twice; select each store once",
                s.store
            )));
        }
    }
    Ok(())
}

/// A device's audit store (`Audit:<UDF>`), which administrators read.
fn is_audit(store: &str) -> bool {
    store
        .strip_prefix(mesh_core::audit::STORE_PREFIX)
        .is_some_and(|udf| !udf.is_empty() && udf.len() <= 128)
}

/// Entries after each selected index (each store once: [`check_select`]).
/// With `changes`, access lists go as changes from the one before where
/// the reader holds it (§10.3): the Access store is read from one entry
/// earlier, in the same snapshot, and that entry is the first change's base.
async fn read_stores(
    st: &AppState,
    account: &str,
    select: &[p::StoreIndex],
    changes: bool,
) -> Result<Vec<p::StoreEntries>, ApiError> {
    let based = |s: &p::StoreIndex| changes && s.store == store::ACCESS && s.index > 0;
    let select: Vec<(String, u64, bool)> = select
        .iter()
        .take(store::ALL.len())
        .map(|s| (s.store.clone(), s.index - u64::from(based(s)), based(s)))
        .collect();
    // The checkpoints are read first, within the same budget.
    let mut order: Vec<usize> = (0..select.len()).collect();
    order.sort_by_key(|i| select[*i].0 != store::CHECKPOINT);
    let asked: Vec<(String, u64)> = order
        .iter()
        .map(|i| (select[*i].0.clone(), select[*i].1))
        .collect();
    let s = st.storage.clone();
    let a = account.to_string();
    let page = crate::storage::Page::new(p::MAX_RESULTS, MAX_PAGE_BYTES);
    let got = blocking(move || s.read(&a, &asked, page)).await?;
    let mut reads: Vec<crate::storage::StoreRead> = vec![Default::default(); select.len()];
    for (i, r) in order.into_iter().zip(got) {
        reads[i] = r;
    }
    let mut out = Vec::with_capacity(select.len());
    for ((store, from, based), mut r) in select.into_iter().zip(reads) {
        let first_is_base = based && r.entries.first().is_some_and(|(i, _)| *i == from + 1);
        let base = first_is_base.then(|| r.entries.remove(0).1);
        out.push(p::StoreEntries {
            store,
            entries: entries_of(r.entries, base),
            partial: r.partial,
            last: r.last,
        });
    }
    consistent_page(&mut out);
    Ok(out)
}

/// A store's entries for the answer; with a `base`, each access list as its
/// change from the one before when that is smaller.
fn entries_of(read: Vec<(u64, String)>, base: Option<String>) -> Vec<p::Entry> {
    let whole = |index, data: &str| p::Entry {
        index,
        envelope: serde_json::from_str(data).unwrap_or(serde_json::Value::Null),
        delta: None,
    };
    let Some(base) = base else {
        return read.iter().map(|(i, d)| whole(*i, d)).collect();
    };
    let mut prev: &str = &base;
    read.iter()
        .map(|(index, data)| {
            let delta = crate::changes::between_stored(prev, data);
            prev = data;
            match delta {
                Some(d) => p::Entry {
                    index: *index,
                    envelope: serde_json::Value::Null,
                    delta: Some(d),
                },
                None => whole(*index, data),
            }
        })
        .collect()
}

/// A page that stops short of the Checkpoint store's end brings no entry
/// past the heads of the last checkpoint in it: a reader learns an
/// administrator epoch (PROTOCOL.md §10.5) before the entries signed with
/// its key. The reader asks again from where each store stopped.
fn consistent_page(page: &mut [p::StoreEntries]) {
    let Some(cp) = page
        .iter()
        .find(|u| u.store == store::CHECKPOINT && u.partial)
        .and_then(|u| u.entries.last())
        .and_then(|e| serde_json::from_value::<Signed>(e.envelope.clone()).ok())
        .and_then(|env| {
            env.unverified_object::<mesh_core::history::Checkpoint>("checkpoint")
                .ok()
        })
    else {
        return;
    };
    for u in page.iter_mut() {
        let Some(head) = cp.head(&u.store).map(|h| h.index) else {
            continue;
        };
        let before = u.entries.len();
        u.entries.retain(|e| e.index <= head);
        if u.entries.len() < before {
            // More follow, but only once the checkpoints catch up: a store
            // with nothing left in this page is not "partial" (the reader
            // asks every store again while the Checkpoint store is).
            u.partial = !u.entries.is_empty();
        }
    }
}

pub(crate) async fn download(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let (m, req) = match member(&st, &body, tx::DOWNLOAD).await {
        Ok(v) => v,
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            return recover_download(&st, &body, e).await
        }
        Err(e) => return Err(e),
    };
    let d: p::DownloadRequest = from_value("download request", &req.body)?;
    check_select(&d.select, |s| store::ALL.contains(&s) || is_audit(s))?;
    for sel in &d.select {
        // A device reads its own audit store (to check the portal holds
        // what it sent; it cannot open the batches); others' are the
        // administrators'.
        let own = sel.store == mesh_core::audit::store_of(&m.device.device_udf);
        let admin_only = sel.store == store::INBOUND
            || sel.store == store::LOCAL
            || (is_audit(&sel.store) && !own);
        if admin_only && !m.device.roles.contains(&Role::ADMIN) {
            return Err(ApiError::forbidden(format!(
                "only administrators read the {} spool",
                sel.store
            )));
        }
    }
    let updates = read_stores(&st, &m.view.record.udf, &d.select, d.changes).await?;
    let profile: Signed = parse("stored profile", m.view.record.profile.as_bytes())?;
    json(&p::DownloadResponse { profile, updates })
}

pub(crate) async fn transact(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let (m, req) = match member(&st, &body, tx::TRANSACT).await {
        Ok(v) => v,
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            return recover_transact(&st, &body, e).await
        }
        Err(e) => return Err(e),
    };
    if !m.device.roles.contains(&Role::ADMIN) {
        return Err(ApiError::forbidden(
            "only administrators write the account's stores",
        ));
    }
    let t: p::TransactRequest = from_value("transact request", &req.body)?;
    let t = crate::upload::rebuild(t, &m.view.access_env, m.view.access_index)?;
    apply(
        &st,
        &m.view.record,
        &m.view.profile,
        Some((m.view.access.clone(), m.view.access_index)),
        &t,
    )
    .await
}

/// Recovery: a device that is not (or no longer) in the access list may
/// write when the transaction's checkpoint is signed by the account's root
/// and its next access list names the device an active administrator. Only
/// a holder of the recovery shares can produce that: a revoked
/// administrator's keys cannot.
async fn recover_transact(st: &AppState, body: &[u8], original: ApiError) -> ApiResult {
    let (env, req) = open_request(body, tx::TRANSACT)?;
    let view = load_account(st, &req.account).await?;
    let (account, profile) = (&view.record, &view.profile);
    let (access, access_index) = (view.access.clone(), view.access_index);
    let t: p::TransactRequest = from_value("transact request", &req.body)?;
    let t = crate::upload::rebuild(t, &view.access_env, access_index)?;
    if !crate::history::root_signed(profile, &t.updates) {
        return Err(original);
    }
    let next = t
        .updates
        .iter()
        .filter(|u| u.store == store::ACCESS)
        .flat_map(|u| u.envelopes.iter())
        .next_back()
        .and_then(|e| AccessList::verify(e, profile).ok());
    let Some(next) = next else {
        return Err(original);
    };
    let entry = next
        .device(&req.device)
        .filter(|d| d.state == DeviceState::Active && d.roles.contains(&Role::ADMIN))
        .cloned();
    let Some(entry) = entry else {
        return Err(original);
    };
    env.verify(p::ct::REQUEST, &[entry.authentication.key])
        .map_err(|e| ApiError::auth(e.to_string()))?;
    check_nonce(st, &req).await?;
    apply(st, account, profile, Some((access, access_index)), &t).await
}

/// Recovery: a device that is not (or no longer) in the access list may
/// read every store when its request is signed by the account's root key,
/// so that it can make the recovery one transaction with every channel's
/// entries. Only a holder of the recovery shares can sign so.
async fn recover_download(st: &AppState, body: &[u8], original: ApiError) -> ApiResult {
    let (env, req) = open_request(body, tx::DOWNLOAD)?;
    let view = load_account(st, &req.account).await?;
    let (account, profile) = (&view.record, &view.profile);
    if env
        .verify(p::ct::REQUEST, &[profile.profile_signature.key])
        .is_err()
    {
        return Err(original);
    }
    check_nonce(st, &req).await?;
    let d: p::DownloadRequest = from_value("download request", &req.body)?;
    check_select(&d.select, |s| store::ALL.contains(&s))?;
    let updates = read_stores(st, &account.udf, &d.select, false).await?;
    let profile: Signed = parse("stored profile", account.profile.as_bytes())?;
    json(&p::DownloadResponse { profile, updates })
}

async fn apply(
    st: &AppState,
    account: &AccountRecord,
    profile: &ProfileAccount,
    access: Option<(AccessList, u64)>,
    t: &p::TransactRequest,
) -> ApiResult {
    if t.updates.len() > store::ALL.len()
        || t.updates.iter().map(|u| u.envelopes.len()).sum::<usize>() > p::MAX_UPDATES
    {
        return Err(ApiError::bad(format!(
            "at most {} entries per transaction",
            p::MAX_UPDATES
        )));
    }
    let mut prev = access.map(|(a, _)| a);
    let before = prev.clone();
    let mut responses = Vec::new();
    // Entries of a transaction that starts an epoch are signed with its key.
    // An epoch starts with an access list (the parsed-account cache is
    // keyed by the access list's index).
    let announced = crate::history::announced(&t.updates);
    if announced.is_some() && !t.updates.iter().any(|u| u.store == store::ACCESS) {
        return Err(ApiError::bad(
            "a transaction that starts an administrator epoch carries the next access list",
        ));
    }
    let next = profile.with_epochs(&announced);
    for u in &t.updates {
        for e in &u.envelopes {
            check_append(&next, &u.store, e, &mut prev, &mut responses)?;
        }
    }
    crate::history::check(&st.storage, Some(&account.udf), profile, &t.updates).await?;
    let revokes = revokes(before.as_ref(), prev.as_ref());
    let appends = to_appends(&t.updates);
    let s = st.storage.clone();
    let a = account.udf.clone();
    let idx = blocking(move || s.append(&a, &appends, &responses, revokes)).await?;
    st.watch.changed(&account.udf);
    json(&p::TransactResponse {
        stores: idx
            .into_iter()
            .map(|(store, index)| p::StoreIndex { store, index })
            .collect(),
    })
}

/// Whether the access list `after` revokes a device `before` had active:
/// such a transaction may use the quota's reserve.
fn revokes(before: Option<&AccessList>, after: Option<&AccessList>) -> bool {
    let (Some(before), Some(after)) = (before, after) else {
        return false;
    };
    after
        .devices
        .iter()
        .filter(|d| d.state == DeviceState::Revoked)
        .any(|d| {
            before
                .device(&d.device_udf)
                .is_some_and(|b| b.state == DeviceState::Active)
        })
}

/// The unauthenticated read: each store once, at most [`MAX_PUBLIC_READS`]
/// at a time (the others wait their turn), a page as for Download.
pub(crate) async fn public(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let r: p::PublicRequest = parse("public request", &body)?;
    check_select(&r.select, |s| store::ALL.contains(&s))?;
    let _turn = st.public_reads.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::INTERNAL,
            "the portal is stopping",
        )
    })?;
    let s = st.storage.clone();
    let account = match (&r.account_address, &r.profile_udf) {
        (Some(a), _) => {
            let a = a.clone();
            blocking(move || s.account_by_address(&a)).await?
        }
        (None, Some(u)) => {
            let u = u.clone();
            blocking(move || s.account_by_udf(&u)).await?
        }
        (None, None) => return Err(ApiError::bad("give AccountAddress or ProfileUdf")),
    }
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code::UNKNOWN_ACCOUNT,
            "no such account",
        )
    })?;
    for sel in &r.select {
        if !store::PUBLIC.contains(&sel.store.as_str()) {
            return Err(ApiError::forbidden(format!(
                "the {} store is not public",
                sel.store
            )));
        }
    }
    let updates = read_stores(&st, &account.udf, &r.select, false).await?;
    let profile: Signed = parse("stored profile", account.profile.as_bytes())?;
    json(&p::DownloadResponse { profile, updates })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::history::{Checkpoint, Head};

    fn entries(store_name: &str, from: u64, to: u64, partial: bool) -> p::StoreEntries {
        p::StoreEntries {
            store: store_name.into(),
            entries: (from..=to)
                .map(|index| p::Entry {
                    index,
                    envelope: serde_json::Value::Null,
                    delta: None,
                })
                .collect(),
            partial,
            last: to,
        }
    }

    /// Checkpoints stop at serial 2, whose heads put Access at 3 and Device
    /// at 0: the page keeps Access 1..3, no Device entry, all of Inbound.
    #[test]
    fn a_partial_page_stops_every_store_at_its_last_checkpoint() {
        let cp = Checkpoint {
            profile_udf: "MBQ".into(),
            serial: 2,
            previous: String::new(),
            heads: store::COVERED
                .iter()
                .map(|s| Head {
                    store: s.to_string(),
                    index: if *s == store::ACCESS { 3 } else { 0 },
                    chain: String::new(),
                })
                .collect(),
            issued: 0,
            epoch: None,
        };
        let key = mesh_core::keys::SigningKey::from_seed(&[1; 32]);
        let env = Signed::sign_object(p::ct::CHECKPOINT, &cp, &key);
        let mut checkpoints = entries(store::CHECKPOINT, 1, 2, true);
        checkpoints.entries[1].envelope = serde_json::to_value(&env).expect("json");
        let mut page = vec![
            entries(store::ACCESS, 1, 5, false),
            entries(store::DEVICE, 1, 4, true),
            entries(store::INBOUND, 1, 9, false),
            checkpoints,
        ];
        consistent_page(&mut page);
        let got: Vec<(usize, bool)> = page.iter().map(|u| (u.entries.len(), u.partial)).collect();
        assert_eq!(got, vec![(3, true), (0, false), (9, false), (2, true)]);
        // A page that holds every checkpoint is left alone.
        let mut whole = vec![
            entries(store::ACCESS, 1, 5, false),
            entries(store::CHECKPOINT, 1, 2, false),
        ];
        consistent_page(&mut whole);
        assert_eq!(whole[0].entries.len(), 5);
    }
}
