//! The service's shared state and what member requests need of it: the
//! signed request opened and checked, the account parsed once per
//! access-list version, the member found.

use std::sync::Arc;

use axum::http::StatusCode;
use mesh_core::b64;
use mesh_core::envelope::Signed;
use mesh_core::objects::ProfileAccount;
use mesh_core::portal::{self as p, code, store, AccessList, DeviceState};

use crate::api::*;
use crate::storage::{AccountRecord, Storage};

/// Shared service state.
#[derive(Clone)]
pub struct AppState {
    pub(crate) storage: Arc<dyn Storage>,
    /// Parsed accounts, keyed by profile UDF; an entry is used only while
    /// the account's access list is at the same index.
    cache: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<AccountView>>>>,
    /// Waiting devices and what they applied.
    pub(crate) watch: Arc<crate::watch::Watch>,
    /// Turns for unauthenticated Public reads.
    pub(crate) public_reads: Arc<tokio::sync::Semaphore>,
    /// The invitation key, when accounts are created by invitation only.
    pub(crate) invites: Option<Arc<crate::invite::InviteKey>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// The state the router serves with.
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        watch: Arc<crate::watch::Watch>,
        invites: Option<Arc<crate::invite::InviteKey>>,
    ) -> AppState {
        AppState {
            storage,
            cache: Arc::default(),
            watch,
            public_reads: Arc::new(tokio::sync::Semaphore::new(MAX_PUBLIC_READS)),
            invites,
        }
    }
}

/// Public reads served at once (each holds up to a 16 MiB page).
pub const MAX_PUBLIC_READS: usize = 4;

/// Longest request nonce kept (bytes): 128 bits are required, 256 are plenty.
const MAX_NONCE: usize = 32;

/// Parse a signed request, check its transaction and its time.
pub(crate) fn open_request(
    body: &[u8],
    transaction: &str,
) -> Result<(Signed, p::Request), ApiError> {
    let env: Signed = parse("request envelope", body)?;
    let req: p::Request = env
        .unverified_object("request")
        .map_err(|e| ApiError::bad(e.to_string()))?;
    if req.transaction != transaction {
        return Err(ApiError::bad(format!(
            "request is for transaction {}, sent to {transaction}",
            req.transaction
        )));
    }
    let t = now();
    // Checked arithmetic: a `Time` near u64::MAX must not overflow.
    if req.time.saturating_add(p::FRESHNESS_WINDOW) < t
        || req.time > t.saturating_add(p::FRESHNESS_WINDOW)
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::REPLAY,
            "request time is outside the freshness window",
        ));
    }
    let n = b64::decode(&req.nonce).map_err(|e| ApiError::bad(format!("nonce: {e}")))?;
    if n.len() < 16 {
        return Err(ApiError::bad("nonce is shorter than 128 bits"));
    }
    // The nonce table keeps what anyone sends: bounded.
    if n.len() > MAX_NONCE {
        return Err(ApiError::bad(format!(
            "nonce is longer than {MAX_NONCE} bytes"
        )));
    }
    Ok((env, req))
}

pub(crate) async fn check_nonce(st: &AppState, req: &p::Request) -> Result<(), ApiError> {
    let s = st.storage.clone();
    let nonce = req.nonce.clone();
    let t = now();
    let fresh = blocking(move || s.use_nonce(&nonce, t, t + 2 * p::FRESHNESS_WINDOW)).await?;
    if fresh {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::REPLAY,
            "replayed request (nonce seen before)",
        ))
    }
}

/// The account a member request is for, with its profile and access list.
pub(crate) struct Member {
    /// The account as of its current access list (shared, not copied: at
    /// 1,000 devices the list is half a megabyte).
    pub(crate) view: Arc<AccountView>,
    pub(crate) device: p::AccessEntry,
}

/// An account as requests need it, parsed once per access-list version.
pub(crate) struct AccountView {
    pub(crate) record: AccountRecord,
    /// As of the stored history: the current administrator epoch's keys.
    pub(crate) profile: ProfileAccount,
    /// The administrator epochs the stored checkpoints started, and the
    /// last checkpoint read for them (a later miss reads only past it).
    epochs: Vec<mesh_core::authority::AdminEpoch>,
    epochs_read: u64,
    pub(crate) access_env: Signed,
    pub(crate) access: AccessList,
    pub(crate) access_index: u64,
}

pub(crate) async fn load_account(st: &AppState, udf_: &str) -> Result<Arc<AccountView>, ApiError> {
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code::UNKNOWN_ACCOUNT,
            format!("no account {udf_}"),
        )
    };
    let s = st.storage.clone();
    let u = udf_.to_string();
    let index = blocking(move || s.last_index(&u, store::ACCESS)).await?;
    let Some(index) = index else {
        return Err(unknown());
    };
    let cached = st
        .cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(udf_)
        .cloned();
    let view = match cached {
        Some(v) if v.access_index == index => v,
        stale => {
            let s = st.storage.clone();
            let u = udf_.to_string();
            let record = blocking(move || s.account_by_udf(&u))
                .await?
                .ok_or_else(unknown)?;
            let profile_env: Signed = parse("stored profile", record.profile.as_bytes())?;
            let profile: ProfileAccount = profile_env
                .unverified_object("profile")
                .map_err(|e| ApiError::bad(e.to_string()))?;
            let (mut epochs, after) = stale
                .map(|v| (v.epochs.clone(), v.epochs_read))
                .unwrap_or_default();
            let s = st.storage.clone();
            let u = record.udf.clone();
            let (more, epochs_read) =
                blocking(move || crate::history::epochs_after(s.as_ref(), &u, after)).await?;
            epochs.extend(more);
            let profile = profile.with_epochs(&epochs);
            let s = st.storage.clone();
            let u = record.udf.clone();
            let (access_index, raw) = blocking(move || s.last(&u, store::ACCESS))
                .await?
                .ok_or_else(|| ApiError::forbidden("account has no access list"))?;
            let access_env: Signed = parse("stored access list", raw.as_bytes())?;
            let access: AccessList = access_env
                .unverified_object("access list")
                .map_err(|e| ApiError::bad(e.to_string()))?;
            let v = Arc::new(AccountView {
                record,
                profile,
                epochs,
                epochs_read,
                access_env,
                access,
                access_index,
            });
            let mut cache = st.cache.lock().unwrap_or_else(|p| p.into_inner());
            crate::limits::insert_bounded(
                &mut cache,
                udf_.to_string(),
                v.clone(),
                crate::limits::MAX_CACHED,
            );
            v
        }
    };
    Ok(view)
}

/// Authenticate a member request: the device is active in the account's
/// access list and signed with the key it names; the request is fresh.
pub(crate) async fn member(
    st: &AppState,
    body: &[u8],
    transaction: &str,
) -> Result<(Member, p::Request), ApiError> {
    let (env, req) = open_request(body, transaction)?;
    let view = load_account(st, &req.account).await?;
    let account = &view.record;
    let entry = view.access.device(&req.device).cloned().ok_or_else(|| {
        ApiError::forbidden(format!(
            "device {} is not a device of account {}",
            req.device, account.udf
        ))
    })?;
    if entry.state == DeviceState::Revoked {
        let mut e = ApiError::new(
            StatusCode::FORBIDDEN,
            code::DEVICE_REVOKED,
            format!(
                "device {} was revoked from account {}",
                req.device, account.udf
            ),
        );
        e.body.access_list = Some(view.access_env.clone());
        return Err(e);
    }
    env.verify(mesh_core::portal::ct::REQUEST, &[entry.authentication.key])
        .map_err(|e| ApiError::auth(e.to_string()))?;
    check_nonce(st, &req).await?;
    Ok((
        Member {
            view: view.clone(),
            device: entry,
        },
        req,
    ))
}
