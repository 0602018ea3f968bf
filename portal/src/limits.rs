//! Bounds on what a client can make the portal spend: time per request,
//! memory for parsed accounts.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mesh_core::portal::{self as p, code};

use crate::api::ApiError;

/// Most parsed accounts kept in memory.
pub(crate) const MAX_CACHED: usize = 4096;

/// Insert, first evicting an arbitrary entry (the map's own random order)
/// when the map is full: memory stays bounded however many accounts ask.
pub(crate) fn insert_bounded<V>(
    map: &mut std::collections::HashMap<String, V>,
    key: String,
    value: V,
    max: usize,
) {
    while map.len() >= max && !map.contains_key(&key) {
        let Some(k) = map.keys().next().cloned() else {
            break;
        };
        map.remove(&k);
    }
    map.insert(key, value);
}

/// Longest a request may take by default, body included: the longest
/// long-poll and then some. A client that trickles its body is cut off.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(p::MAX_WAIT + 25);

pub(crate) async fn deadline(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    limit: std::time::Duration,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            code::BAD_REQUEST,
            "the request took too long",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_cache_stays_bounded() {
        let mut m = std::collections::HashMap::new();
        for i in 0..100 {
            insert_bounded(&mut m, format!("account {i}"), i, 8);
            assert!(m.len() <= 8);
        }
        assert_eq!(m.get("account 99"), Some(&99), "the newest is kept");
        insert_bounded(&mut m, "account 99".into(), 100, 8);
        assert_eq!(m.len(), 8, "replacing evicts nothing");
    }
}
