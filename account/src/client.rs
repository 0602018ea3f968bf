//! The portal client: signed requests over HTTP(S), JSON answers.
//!
//! Plain `http://` is accepted only for loopback hosts; anything else must
//! be `https://` (rustls, with the platform's roots plus `MESH_PORTAL_CA`).

use mesh_core::b64;
use mesh_core::envelope::Signed;
use mesh_core::keys::SigningKey;
use mesh_core::portal::{self as p, ErrorBody};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Errors talking to the portal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A portal URL we will not use.
    #[error("portal URL '{url}': {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Network failure.
    #[error("cannot reach the portal at {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Cause.
        reason: String,
    },
    /// The portal refused the request.
    #[error("the portal refused the request ({code}): {reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Reason.
        reason: String,
        /// Signed access list sent with `DeviceRevoked`.
        access_list: Option<Box<Signed>>,
    },
    /// The answer does not parse.
    #[error("the portal's answer does not parse: {0}")]
    BadAnswer(String),
}

impl ClientError {
    /// The portal's error code, if it refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A portal client.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

fn loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn install_provider() {
    // Once per process; a second install fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client for portals trusting the system's roots and `extra_ca`
/// (a PEM file's content), built once per process: building one loads the
/// system's CA certificates, 76 % of a cached `authorized-keys` login at
/// 1,000 devices (docs/BENCHMARKS.md), and the agent makes two clients per
/// sync. Clients share nothing but their configuration and connection pool.
///
/// A client for a plain-http portal (loopback only) loads no roots at all:
/// it never speaks TLS, and loading them was still a fifth of a cached
/// `authorized-keys` run.
fn http_client(
    extra_ca: Option<Vec<u8>>,
    plain: bool,
) -> Result<reqwest::blocking::Client, String> {
    type Key = (Option<Vec<u8>>, bool);
    type Clients = std::sync::Mutex<Vec<(Key, reqwest::blocking::Client)>>;
    static CLIENTS: std::sync::OnceLock<Clients> = std::sync::OnceLock::new();
    let clients = CLIENTS.get_or_init(Default::default);
    let mut clients = clients.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = clients
        .iter()
        .find(|((ca, p), _)| *ca == extra_ca && *p == plain)
    {
        return Ok(c.clone());
    }
    install_provider();
    let mut b = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .connect_timeout(std::time::Duration::from_secs(10))
        // A portal answers; it never sends a client elsewhere (an https
        // portal redirecting to http would otherwise be followed).
        .redirect(reqwest::redirect::Policy::none());
    if plain {
        b = b.tls_certs_only(Vec::new());
    } else if let Some(pem) = &extra_ca {
        let cert =
            reqwest::Certificate::from_pem(pem).map_err(|e| format!("MESH_PORTAL_CA: {e}"))?;
        b = b.add_root_certificate(cert);
    }
    let c = b.build().map_err(|e| e.to_string())?;
    // A handful of CA files at most in one process; bounded all the same.
    if clients.len() >= 8 {
        clients.remove(0);
    }
    clients.push(((extra_ca, plain), c.clone()));
    Ok(c)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Client {
    /// A client for the portal at `url`.
    pub fn new(url: &str) -> Result<Client, ClientError> {
        let url = url.trim_end_matches('/').to_string();
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.clone(),
            reason: reason.into(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL"))?;
        let host = rest.split('/').next().unwrap_or("");
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        match scheme {
            "https" => {}
            "http" if loopback_host(host) => {}
            "http" => return Err(bad("plain http is only for loopback portals; use https")),
            _ => return Err(bad("the scheme must be https (or http on loopback)")),
        }
        let pem = match std::env::var_os("MESH_PORTAL_CA") {
            Some(ca) => Some(std::fs::read(&ca).map_err(|e| bad(&format!("MESH_PORTAL_CA: {e}")))?),
            None => None,
        };
        let http = http_client(pem, scheme == "http").map_err(|e| bad(&e))?;
        Ok(Client { base: url, http })
    }

    /// The portal URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// POST a JSON body to a transaction and parse the answer.
    pub fn post<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        transaction: &str,
        body: &T,
    ) -> Result<R, ClientError> {
        let url = format!("{}/mesh/v1/{transaction}", self.base);
        let resp =
            self.http
                .post(&url)
                .json(body)
                .send()
                .map_err(|e| ClientError::Unreachable {
                    url: self.base.clone(),
                    reason: chain(&e),
                })?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(ClientError::BadAnswer(format!(
                "the portal answered {status} (a redirect): a portal never redirects; check the URL"
            )));
        }
        let bytes = read_bounded(resp).map_err(|e| match e {
            Bounded::TooLarge => ClientError::BadAnswer(format!(
                "the portal's answer is larger than {MAX_ANSWER} bytes"
            )),
            Bounded::Io(reason) => ClientError::Unreachable {
                url: self.base.clone(),
                reason,
            },
        })?;
        if !status.is_success() {
            let err: ErrorBody =
                serde_json::from_slice(&bytes).map_err(|_| ClientError::Refused {
                    status: status.as_u16(),
                    code: status.to_string(),
                    reason: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                    access_list: None,
                })?;
            return Err(ClientError::Refused {
                status: status.as_u16(),
                code: err.error,
                reason: err.reason,
                access_list: err.access_list.map(Box::new),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// The public stores of the account `profile_udf` past `select`
    /// (the `Public` transaction: no signed request, what servers read).
    pub fn public(
        &self,
        profile_udf: &str,
        select: Vec<p::StoreIndex>,
    ) -> Result<p::DownloadResponse, ClientError> {
        self.post(
            "Public",
            &p::PublicRequest {
                account_address: None,
                profile_udf: Some(profile_udf.to_string()),
                select,
            },
        )
    }

    /// Sign a request with `key` and POST it.
    pub fn signed<R: DeserializeOwned>(
        &self,
        transaction: &str,
        account: &str,
        device: &str,
        body: serde_json::Value,
        key: &SigningKey,
    ) -> Result<R, ClientError> {
        let env = sign_request(transaction, account, device, body, key);
        self.post(transaction, &env)
    }
}

/// The largest answer a client reads: a page of at most 256 entries of
/// at most the portal's request size each would be far above it; a portal
/// that sends more is refused rather than held in memory.
pub const MAX_ANSWER: u64 = 32 << 20;

enum Bounded {
    TooLarge,
    Io(String),
}

fn read_bounded(resp: reqwest::blocking::Response) -> Result<Vec<u8>, Bounded> {
    use std::io::Read;
    if resp.content_length().is_some_and(|n| n > MAX_ANSWER) {
        return Err(Bounded::TooLarge);
    }
    let mut out = Vec::new();
    resp.take(MAX_ANSWER + 1)
        .read_to_end(&mut out)
        .map_err(|e| Bounded::Io(e.to_string()))?;
    if out.len() as u64 > MAX_ANSWER {
        return Err(Bounded::TooLarge);
    }
    Ok(out)
}

/// Build a signed request envelope.
pub fn sign_request(
    transaction: &str,
    account: &str,
    device: &str,
    body: serde_json::Value,
    key: &SigningKey,
) -> Signed {
    let mut n = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut n);
    let req = p::Request {
        account: account.to_string(),
        device: device.to_string(),
        time: now(),
        nonce: b64::encode(&n),
        transaction: transaction.to_string(),
        body,
    };
    Signed::sign_object(p::ct::REQUEST, &req, key)
}
