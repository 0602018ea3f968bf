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
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use mesh_core::envelope::Signed;
use mesh_core::objects::{ProfileAccount, ProfileDevice, Role};
use mesh_core::portal::{self as p, code, store, tx, DeviceState};
use mesh_core::{b64, pin, udf};
use rand_core::{OsRng, RngCore};

use crate::api::*;
use crate::state::*;
use crate::storage::{AccountRecord, RequestRecord, Storage};

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
        .route("/mesh/v1/Status", post(crate::status::status))
        .route("/mesh/v1/Download", post(crate::stores::download))
        .route("/mesh/v1/Transact", post(crate::stores::transact))
        .route(
            "/mesh/v1/Audit",
            post(crate::audit::append).layer(small(mesh_core::audit::MAX_BODY)),
        )
        .route(
            "/mesh/v1/Hold",
            post(crate::held::hold).layer(small(mesh_core::held::MAX_BODY)),
        )
        .route(
            "/mesh/v1/Released",
            post(crate::held::released).layer(small(p::MAX_SMALL_BODY)),
        )
        .route(
            "/mesh/v1/Public",
            post(crate::stores::public).layer(small(p::MAX_SMALL_BODY)),
        )
        // What an account's Published entries serve (PROTOCOL.md §18).
        .route("/pki/{udf}/{name}", get(crate::pki::file))
        .route("/pki/{udf}/ocsp/{*req}", get(crate::pki::ocsp_get))
        .route(
            "/pki/{udf}/ocsp",
            post(crate::pki::ocsp_post).layer(small(crate::pki::MAX_OCSP_REQUEST)),
        )
        .layer(DefaultBodyLimit::max(p::MAX_BODY))
        .layer(axum::middleware::map_response(close_unread))
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::limits::deadline(req, next, request_timeout)
        }))
        .with_state(AppState::new(storage, watch, invites))
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
    crate::history::check(&st.storage, None, &profile, &b.updates).await?;
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

/// An answer given before the body was read (413: too large) ends the
/// connection, and says so: the server closes it, and a client that did
/// not know would send its next request into a closed socket (a broken
/// pipe instead of an answer, seen under load in the Connect-flood test).
async fn close_unread(mut r: Response) -> Response {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        r.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    r
}
