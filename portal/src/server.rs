//! The HTTP service: one POST route per transaction (PROTOCOL.md §10).
//!
//! The portal is untrusted by clients, but it still enforces what it can
//! check: every device request is signed by a key the account's current,
//! administrator-signed access list names, and is fresh; every entry an
//! administrator appends is signed by the account's AdministratorSignature.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_core::envelope::Signed;
use mesh_core::objects::{ProfileAccount, ProfileDevice, Role};
use mesh_core::portal::{self as p, code, store, tx, AccessList, DeviceState, ErrorBody};
use mesh_core::{b64, pin, udf};
use rand_core::{OsRng, RngCore};

use crate::storage::{AccountRecord, RequestRecord, Storage, StorageError};

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
    invites: Option<Arc<crate::invite::InviteKey>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The router of the service: `request_timeout` bounds each request,
/// `sources` rates Connect and Bind per source.
pub fn router(
    storage: Arc<dyn Storage>,
    request_timeout: std::time::Duration,
    sources: &crate::SourceLimits,
    invites: Option<Arc<crate::invite::InviteKey>>,
) -> Router {
    let watch = Arc::new(crate::watch::Watch::default());
    // Other portal processes' writes (PostgreSQL) wake this one's long-polls.
    if let Err(e) = storage.listen(watch.hook()) {
        eprintln!("mesh-portal: cannot listen for other processes' changes: {e}");
    }
    // What anyone may send is small: the route's own limit wins over the
    // router's.
    let small = |n| DefaultBodyLimit::max(n);
    let rate = |what, per_minute| {
        axum::middleware::from_fn_with_state(
            crate::rate::Limiter::new(what, per_minute),
            crate::rate::per_source,
        )
    };
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/mesh/v1/Bind",
            post(bind).layer(rate(tx::BIND, sources.binds_per_minute)),
        )
        .route(
            "/mesh/v1/Connect",
            post(connect)
                .layer(small(p::MAX_CONNECT_BODY))
                .layer(rate(tx::CONNECT, sources.connects_per_minute)),
        )
        .route(
            "/mesh/v1/Complete",
            post(complete).layer(small(p::MAX_SMALL_BODY)),
        )
        .route("/mesh/v1/Status", post(crate::watch::status))
        .route("/mesh/v1/Download", post(crate::stores::download))
        .route("/mesh/v1/Transact", post(crate::stores::transact))
        .route(
            "/mesh/v1/Public",
            post(crate::stores::public).layer(small(p::MAX_SMALL_BODY)),
        )
        .layer(DefaultBodyLimit::max(p::MAX_BODY))
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::limits::deadline(req, next, request_timeout)
        }))
        .with_state(AppState {
            storage,
            cache: Arc::default(),
            watch,
            public_reads: Arc::new(tokio::sync::Semaphore::new(MAX_PUBLIC_READS)),
            invites,
        })
}

/// Public reads served at once (each holds up to a 16 MiB page).
pub const MAX_PUBLIC_READS: usize = 4;

/// An error answer: status, code and reason (and the access list when a
/// revoked device asks).
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    body: Box<ErrorBody>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: Box::new(ErrorBody {
                error: code.into(),
                reason: reason.into(),
                access_list: None,
            }),
        }
    }
    /// What the answer says.
    #[cfg(test)]
    pub(crate) fn reason(&self) -> &str {
        &self.body.reason
    }
    pub(crate) fn bad(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST, reason)
    }
    pub(crate) fn auth(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code::NOT_AUTHENTICATED, reason)
    }
    pub(crate) fn forbidden(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code::NOT_AUTHORIZED, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(*self.body)).into_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, code::CONFLICT, e.to_string())
            }
            StorageError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, code::ACCOUNT_EXISTS, e.to_string())
            }
            StorageError::Quota { code: c, reason } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, c, reason)
            }
            // Details stay in the portal's log; the peer learns only that it failed.
            StorageError::Corrupt(err) => {
                eprintln!("mesh-portal: database holds a damaged entry: {err}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code::INTERNAL,
                    "storage failure",
                )
            }
            StorageError::Db(err) => {
                eprintln!("mesh-portal: database error: {err}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code::INTERNAL,
                    "storage failure",
                )
            }
        }
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    // On the multi-threaded runtime a database call runs in place: the
    // worker hands its other tasks to a peer, with no thread hop per call
    // (each signed request makes three).
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread
    {
        return tokio::task::block_in_place(f).map_err(ApiError::from);
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL,
                "task failed",
            )
        })?
        .map_err(ApiError::from)
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("{what}: {e}")))
}

pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    what: &str,
    v: &serde_json::Value,
) -> Result<T, ApiError> {
    T::deserialize(v).map_err(|e| ApiError::bad(format!("{what}: {e}")))
}

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

pub(crate) fn json<T: serde::Serialize>(v: &T) -> ApiResult {
    Ok(Json(serde_json::to_value(v).unwrap_or_default()).into_response())
}

async fn bind(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let (env, req) = open_request(&body, tx::BIND)?;
    let b: p::BindRequest = from_value("bind request", &req.body)?;
    let profile = ProfileAccount::verify_self_signed(&b.profile)
        .map_err(|e| ApiError::bad(format!("profile: {e}")))?;
    if !udf::udf_eq(&profile.udf(), &req.account) {
        return Err(ApiError::bad(
            "request names another account than the profile",
        ));
    }
    if b.updates.len() > store::ALL.len()
        || b.updates.iter().map(|u| u.envelopes.len()).sum::<usize>() > p::MAX_UPDATES
    {
        return Err(ApiError::bad("too many entries"));
    }
    let mut prev = None;
    let mut responses = Vec::new();
    for u in &b.updates {
        if u.expected != 0 {
            return Err(ApiError::bad("a new account's stores start at index 0"));
        }
        for e in &u.envelopes {
            crate::stores::check_append(&profile, &u.store, e, &mut prev, &mut responses)?;
        }
    }
    // The signer must be an administrator the first access list names.
    let access = prev.ok_or_else(|| ApiError::bad("bind needs the first access list"))?;
    let entry = access
        .device(&req.device)
        .filter(|d| d.state == DeviceState::Active && d.roles.contains(&Role::ADMIN))
        .ok_or_else(|| {
            ApiError::forbidden("the signer is not an administrator of the new account")
        })?;
    env.verify(p::ct::REQUEST, &[entry.authentication.key])
        .map_err(|e| ApiError::auth(e.to_string()))?;
    crate::history::check(&st, None, &profile, &b.updates).await?;
    check_nonce(&st, &req).await?;
    let rec = AccountRecord {
        udf: profile.udf(),
        address: profile.account_address.to_lowercase(),
        profile: serde_json::to_string(&b.profile).unwrap_or_default(),
    };
    invited(&st, b.invite.as_deref().map(String::as_str)).await?;
    let appends = crate::stores::to_appends(&b.updates);
    let s = st.storage.clone();
    let account_udf = rec.udf.clone();
    blocking(move || s.bind(&rec, &appends)).await?;
    st.watch.changed(&account_udf);
    json(&serde_json::json!({"ProfileUdf": profile.udf()}))
}

/// On a portal that creates accounts by invitation only, a Bind carries a
/// code made with its key, unexpired and unused (used from now on, even
/// if the Bind is then refused: ask the operator for another).
async fn invited(st: &AppState, code: Option<&str>) -> Result<(), ApiError> {
    let Some(key) = &st.invites else {
        return Ok(());
    };
    let refuse =
        |reason: String| ApiError::new(StatusCode::FORBIDDEN, code::INVITE_REQUIRED, reason);
    let code =
        code.ok_or_else(|| refuse("this portal creates accounts by invitation only".into()))?;
    let t = now();
    let inv = mesh_core::invite::check(key.bytes(), code, t).map_err(|e| refuse(e.to_string()))?;
    if inv.expires > t + mesh_core::invite::MAX_LIFETIME {
        return Err(refuse(
            "the invitation code claims a life longer than any code has".into(),
        ));
    }
    let s = st.storage.clone();
    let once = format!("invite:{}", b64::encode(&inv.nonce));
    if !blocking(move || s.use_nonce(&once, t, inv.expires)).await? {
        return Err(refuse("the invitation code was used already".into()));
    }
    Ok(())
}

/// Whether the account takes a connection request from `device`: never
/// from a revoked device (it would need a new UDF, a new home), and not
/// past the pending cap (nobody may flood the administrators' list; the
/// storage checks the cap again atomically).
async fn admit(st: &AppState, account: &AccountRecord, device: &str) -> Result<(), ApiError> {
    let view = load_account(st, &account.udf).await?;
    if let Some(d) = view
        .access
        .device(device)
        .filter(|d| d.state == DeviceState::Revoked)
    {
        return Err(ApiError::forbidden(format!(
            "device {} was revoked from this account; a revoked device never rejoins",
            d.name
        )));
    }
    let s = st.storage.clone();
    let a = account.udf.clone();
    if blocking(move || s.pending_requests(&a)).await? >= p::MAX_PENDING {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::TOO_MANY_PENDING,
            format!(
                "account {} has {} unanswered connection requests; an administrator must accept or reject them first",
                account.address,
                p::MAX_PENDING
            ),
        ));
    }
    Ok(())
}

async fn connect(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let (env, req) = open_request(&body, tx::CONNECT)?;
    let c: p::RequestConnection = from_value("connection request", &req.body)?;
    let device = ProfileDevice::verify(&c.profile_device)
        .map_err(|e| ApiError::bad(format!("device profile: {e}")))?;
    if !udf::udf_eq(&device.udf(), &req.device) {
        return Err(ApiError::bad(
            "request names another device than its profile",
        ));
    }
    env.verify(p::ct::REQUEST, &[device.authentication.key])
        .map_err(|e| ApiError::auth(e.to_string()))?;
    let client_nonce =
        b64::decode(&c.client_nonce).map_err(|e| ApiError::bad(format!("client nonce: {e}")))?;
    if !p::CLIENT_NONCE_BYTES.contains(&client_nonce.len()) {
        return Err(ApiError::bad(format!(
            "the client nonce is {} bytes; it must be {} to {}",
            client_nonce.len(),
            p::CLIENT_NONCE_BYTES.start(),
            p::CLIENT_NONCE_BYTES.end()
        )));
    }
    let s = st.storage.clone();
    let addr = c.account_address.clone();
    let account = blocking(move || s.account_by_address(&addr))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                code::UNKNOWN_ACCOUNT,
                format!("no account {}", c.account_address),
            )
        })?;
    admit(&st, &account, &req.device).await?;
    // Only now is the nonce kept: a request for no account, or one past
    // the cap, costs the portal nothing (anyone can sign a Connect with a
    // key of their own).
    check_nonce(&st, &req).await?;
    let profile_env: Signed = parse("stored profile", account.profile.as_bytes())?;
    let profile: ProfileAccount = profile_env
        .unverified_object("profile")
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let mut server_nonce = [0u8; 16];
    OsRng.fill_bytes(&mut server_nonce);
    let witness = pin::witness(
        &profile.value(),
        &server_nonce,
        &device.value(),
        &client_nonce,
    );
    let request_id =
        udf::presentation_whole(&udf::nonce(128).map_err(|e| ApiError::bad(e.to_string()))?);
    let inbound = p::InboundRequest {
        request_id: request_id.clone(),
        request: env,
        server_nonce: b64::encode(&server_nonce),
        witness: witness.clone(),
        received: now(),
    };
    let rec = RequestRecord {
        account: account.udf.clone(),
        auth_key: serde_json::to_string(&device.authentication).unwrap_or_default(),
        response: None,
    };
    let s = st.storage.clone();
    let id = request_id.clone();
    let inbound_json = serde_json::to_string(&inbound).unwrap_or_default();
    let account_udf = rec.account.clone();
    let t = inbound.received;
    blocking(move || s.add_request(&id, &rec, &inbound_json, t)).await?;
    st.watch.changed(&account_udf);
    json(&p::ConnectResponse {
        profile: profile_env,
        request_id,
        server_nonce: inbound.server_nonce,
        witness,
    })
}

async fn complete(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let (env, req) = open_request(&body, tx::COMPLETE)?;
    let c: p::CompleteRequest = from_value("complete request", &req.body)?;
    let s = st.storage.clone();
    let id = c.request_id.clone();
    let rec = blocking(move || s.request(&id)).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code::BAD_REQUEST,
            format!("no request {}", c.request_id),
        )
    })?;
    let s = st.storage.clone();
    let a = rec.account.clone();
    let account = blocking(move || s.account_by_udf(&a))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, code::UNKNOWN_ACCOUNT, "no account"))?;
    if account.address != c.account_address.to_lowercase() {
        return Err(ApiError::forbidden("request is for another account"));
    }
    // Only the device that asked may poll: its base authentication key signs.
    let key: mesh_core::keys::KeyData = parse("stored device key", rec.auth_key.as_bytes())?;
    env.verify(p::ct::REQUEST, &[key.key])
        .map_err(|_| ApiError::forbidden("only the requesting device may complete its request"))?;
    check_nonce(&st, &req).await?;
    let resp = match rec.response {
        None => p::CompleteResponse {
            result: p::ConnectResult::Pending,
            response: None,
        },
        Some(r) => {
            let env: Signed = parse("stored response", r.as_bytes())?;
            let rc: p::RespondConnection = env
                .unverified_object("response")
                .map_err(|e| ApiError::bad(e.to_string()))?;
            p::CompleteResponse {
                result: rc.result,
                response: Some(env),
            }
        }
    };
    json(&resp)
}
