//! Per-source rate limits on what anyone may ask without being a member:
//! Connect and Bind (PROTOCOL.md §10, "Limits"). A token bucket per
//! source (an IPv4 address or an IPv6 /64), in the process's memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mesh_core::portal::code;

use crate::api::ApiError;
use crate::conn::{source, Peer};

/// Most sources one limiter remembers (a full bucket is forgotten first).
const MAX_SOURCES: usize = 65_536;

/// Requests per source: `burst` at once, then one per `60 / per_minute` s.
#[derive(Debug)]
pub(crate) struct Limiter {
    what: &'static str,
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Limiter {
    pub(crate) fn new(what: &'static str, per_minute: u32) -> Arc<Limiter> {
        Arc::new(Limiter {
            what,
            per_minute,
            buckets: Mutex::default(),
        })
    }

    /// Take a token for `ip`, or say how long until the next one.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.per_minute.max(1));
        let per_sec = burst / 60.0;
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_SOURCES && !b.contains_key(&ip) {
            evict(&mut b, now, per_sec, burst);
        }
        let (tokens, at) = b.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_sec).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_sec))
        }
    }
}

/// Forget the sources whose buckets are full again, else one at random
/// (the map's order): memory stays bounded however many sources ask.
fn evict(b: &mut HashMap<IpAddr, (f64, Instant)>, now: Instant, per_sec: f64, burst: f64) {
    b.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * per_sec < burst);
    if b.len() >= MAX_SOURCES {
        if let Some(k) = b.keys().next().copied() {
            b.remove(&k);
        }
    }
}

/// The middleware: a request over its source's rate is answered `429
/// RateLimited` with `Retry-After`. Requests without a peer (none reach
/// the router so) pass.
pub(crate) async fn per_source(
    State(limiter): State<Arc<Limiter>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(Peer(ip)) = req.extensions().get::<Peer>().copied() else {
        return next.run(req).await;
    };
    match limiter.take(source(ip), Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = wait.as_secs().max(1);
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                code::RATE_LIMITED,
                format!(
                    "too many {} requests from this address (at most {} a minute); try again in {secs} s",
                    limiter.what, limiter.per_minute
                ),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let l = Limiter::new("Connect", 6);
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        );
        let t0 = Instant::now();
        for i in 0..6 {
            assert!(l.take(a, t0).is_ok(), "request {i} of the burst");
        }
        let wait = l.take(a, t0).expect_err("the seventh");
        assert!(wait <= Duration::from_secs(10), "{wait:?}");
        assert!(l.take(b, t0).is_ok(), "another source is not charged");
        assert!(l.take(a, t0 + Duration::from_secs(10)).is_ok(), "refilled");
        assert!(l.take(a, t0 + Duration::from_secs(10)).is_err());
    }
}
