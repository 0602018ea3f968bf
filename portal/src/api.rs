//! What every handler shares: the error answer and the small helpers that
//! parse bodies, run database calls and answer JSON. Apart from the router
//! (`server.rs`) and the state (`state.rs`), so that handler modules
//! depend on it and nothing here depends on a handler.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mesh_core::portal::{code, ErrorBody};

use crate::storage::StorageError;

/// An error answer: status, code and reason (and the access list when a
/// revoked device asks).
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: Box<ErrorBody>,
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

pub(crate) fn json<T: serde::Serialize>(v: &T) -> ApiResult {
    Ok(Json(serde_json::to_value(v).unwrap_or_default()).into_response())
}
