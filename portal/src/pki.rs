//! Public, unauthenticated reads of what an account's Published entries
//! serve (PROTOCOL.md §18): files by name and pre-signed OCSP answers
//! (RFC 6960 over HTTP, GET and POST). The portal signs nothing: it hands
//! back the bytes the account signed, or an unsigned error status.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use der::Decode;
use x509_ocsp::OcspRequest;

use crate::api::{blocking, now, ApiError};
use crate::state::AppState;

/// Most bytes of a POSTed OCSP request (one CertID is about 80).
pub const MAX_OCSP_REQUEST: usize = 16 << 10;
/// Most characters of a GET request's encoded OCSP request.
const MAX_GET: usize = 2 * MAX_OCSP_REQUEST;
/// The request's content type (RFC 6960 Appendix A.1).
const REQUEST_TYPE: &str = "application/ocsp-request";
/// The answer's content type.
const RESPONSE_TYPE: &str = "application/ocsp-response";
/// OCSPResponse { responseStatus malformedRequest (1) }.
const MALFORMED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x01];
/// OCSPResponse { responseStatus unauthorized (6) }: no answer here
/// (RFC 5019 §2.2.3).
const UNAUTHORIZED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x06];
/// id-sha1 (1.3.14.3.2.26): the CertID hash openssl, NSS and Windows send.
const SHA1: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// `GET /pki/<ProfileUdf>/<Name>`.
pub(crate) async fn file(
    State(st): State<AppState>,
    Path((udf, name)): Path<(String, String)>,
) -> Response {
    if mesh_core::serve::check_name(&name).is_err() {
        return not_found();
    }
    let Ok(_turn) = st.public_reads.acquire().await else {
        return stopping();
    };
    let s = st.storage.clone();
    let got = blocking(move || match s.account_by_udf(&udf)? {
        Some(a) => s.served_file(&a.udf, &name),
        None => Ok(None),
    })
    .await;
    match got {
        Ok(Some((ct, body))) => {
            let ct = HeaderValue::from_str(&ct)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let cc = HeaderValue::from_static("no-cache");
            (
                [(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, cc)],
                body,
            )
                .into_response()
        }
        Ok(None) => not_found(),
        Err(e) => e.into_response(),
    }
}

/// `GET /pki/<ProfileUdf>/ocsp/<base64 DER OCSPRequest>` (the path
/// segment is percent-decoded already; a `/` of the base64 may come
/// encoded or not, so the rest of the path is taken).
pub(crate) async fn ocsp_get(
    State(st): State<AppState>,
    Path((udf, encoded)): Path<(String, String)>,
) -> Response {
    if encoded.len() > MAX_GET {
        return ocsp_der(MALFORMED, None);
    }
    let der = mesh_core::serve::decode(encoded.trim_start_matches('/')).ok();
    match der {
        Some(der) => answer(&st, udf, &der).await,
        None => ocsp_der(MALFORMED, None),
    }
}

/// `POST /pki/<ProfileUdf>/ocsp` (the route bounds the body to
/// [`MAX_OCSP_REQUEST`]).
pub(crate) async fn ocsp_post(
    State(st): State<AppState>,
    Path(udf): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.trim().eq_ignore_ascii_case(REQUEST_TYPE) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the OCSP request as {REQUEST_TYPE}\n"),
        )
            .into_response();
    }
    answer(&st, udf, &body).await
}

/// The stored answer for the request's first CertID, or an error status.
async fn answer(st: &AppState, udf: String, der: &[u8]) -> Response {
    let Some((key, serial)) = cert_id(der) else {
        return ocsp_der(MALFORMED, None);
    };
    let Some(key) = key else {
        return ocsp_der(UNAUTHORIZED, None);
    };
    let Ok(_turn) = st.public_reads.acquire().await else {
        return stopping();
    };
    let s = st.storage.clone();
    let got = blocking(move || match s.account_by_udf(&udf)? {
        Some(a) => s.served_ocsp(&a.udf, &key, &serial),
        None => Ok(None),
    })
    .await;
    match got {
        Ok(Some((next_update, response))) => {
            ocsp_der(&response, Some(next_update.saturating_sub(now())))
        }
        Ok(None) => ocsp_der(UNAUTHORIZED, None),
        Err(e) => e.into_response(),
    }
}

/// The lookup key of a DER OCSPRequest's first CertID: `None` when it does
/// not parse; a `None` key hash when it is not SHA-1 (no answer of ours).
pub(crate) fn cert_id(der: &[u8]) -> Option<(Option<String>, String)> {
    let req = OcspRequest::from_der(der).ok()?;
    let first = req.tbs_request.request_list.first()?;
    let id = &first.req_cert;
    let serial = mesh_core::serve::serial_hex(id.serial_number.as_bytes());
    let key = (id.hash_algorithm.oid == SHA1)
        .then(|| data_encoding::HEXLOWER.encode(id.issuer_key_hash.as_bytes()));
    Some((key, serial))
}

/// An OCSP answer; with `max_age`, cacheable that long (until the
/// answer's nextUpdate), else not stored.
fn ocsp_der(der: &[u8], max_age: Option<u64>) -> Response {
    let cc = match max_age {
        Some(s) => HeaderValue::from_str(&format!("max-age={s}"))
            .unwrap_or(HeaderValue::from_static("no-store")),
        None => HeaderValue::from_static("no-store"),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(RESPONSE_TYPE),
            ),
            (header::CACHE_CONTROL, cc),
        ],
        der.to_vec(),
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such file\n").into_response()
}

fn stopping() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        mesh_core::portal::code::INTERNAL,
        "the portal is stopping",
    )
    .into_response()
}
