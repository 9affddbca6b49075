//! Drop-in endpoints: the paths GA4's Measurement Protocol and Segment's HTTP tracking
//! API senders post to, so a shop points what it already runs at upshot by changing a
//! host name. The bodies are read like any other (`upshot_model::mapping` maps them),
//! under the same limits; only where the key comes from differs.
//!
//! - `POST /mp/collect?measurement_id=...&api_secret=KEY` (GA4): the api secret is a
//!   site key; as for beacons, only the public key may travel in a URL.
//! - `POST /v1/track`, `/v1/page`, `/v1/batch` (and analytics.js's short `/v1/t`,
//!   `/v1/p`, `/v1/b`) (Segment): the write key is the Basic auth user name
//!   (`Authorization: Basic base64(KEY:)`), checked before the body is read; or, as
//!   analytics.js sends it from browsers, the body's `writeKey`, picked out of a body of
//!   at most 64 KiB before anything else is done with it. A call without `type` takes
//!   the endpoint's.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde::Deserialize;

use crate::error::ApiError;
use crate::ingest::{self, KeyParams, RequestBody};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct Ga4Params {
    api_secret: Option<String>,
}

/// `POST /mp/collect`: a GA4 Measurement Protocol body.
pub async fn ga4_collect(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Ga4Params>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let result = async {
        let key = params.api_secret.ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "no api_secret: give a site's public key as ?api_secret=")
        })?;
        let authorized = ingest::authorize_request(&state, &headers, &KeyParams::with_key(key)).await?;
        let (bytes, reservation) = ingest::receive_body(&state, &headers, body, state.limits.body_bytes_max).await?;
        let gzip = ingest::is_gzip(&headers, &bytes);
        let body = RequestBody { bytes, gzip, segment_call: None };
        ingest::ingest_body(&state, &headers, &authorized, body, reservation).await
    }
    .await;
    ingest::respond(&state, result)
}

pub async fn segment_track(state: State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Body) -> Response {
    segment(state, headers, body, Some("track")).await
}

pub async fn segment_page(state: State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Body) -> Response {
    segment(state, headers, body, Some("page")).await
}

/// `identify`, `group` and `alias` calls: read and answered like the others, each call
/// rejected as carrying no event upshot counts (analytics.js sends them unasked).
pub async fn segment_other(state: State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Body) -> Response {
    segment(state, headers, body, Some("identify")).await
}

pub async fn segment_batch(state: State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Body) -> Response {
    segment(state, headers, body, None).await
}

/// Largest body read before its key is known (a browser's analytics.js call, with the
/// write key inside): a call is a few KB; this bounds what an unknown sender costs.
const WRITE_KEY_BODY_BYTES_MAX: usize = 64 << 10;

/// A Segment call (`call_type`) or batch (`None`).
async fn segment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Body,
    call_type: Option<&'static str>,
) -> Response {
    let result = async {
        let (authorized, bytes, reservation) = match basic_user(&headers) {
            // The key first: a body from someone without one is never read.
            Some(key) => {
                let authorized = ingest::authorize(&state, Some(&key), None).await?;
                let (bytes, reservation) =
                    ingest::receive_body(&state, &headers, body, state.limits.body_bytes_max).await?;
                (authorized, bytes, reservation)
            }
            // analytics.js in a browser puts the write key in the body: a small body is
            // read and its `writeKey` alone picked out (no tree built) before anything else.
            None => {
                let (bytes, reservation) =
                    ingest::receive_body(&state, &headers, body, WRITE_KEY_BODY_BYTES_MAX).await?;
                if ingest::is_gzip(&headers, &bytes) {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "a gzip body needs its write key in the header: Authorization: Basic base64(<write key>:)",
                    ));
                }
                let key = write_key_of(&bytes)?;
                (ingest::authorize(&state, key.as_deref(), None).await?, bytes, reservation)
            }
        };
        let gzip = ingest::is_gzip(&headers, &bytes);
        let body = RequestBody { bytes, gzip, segment_call: call_type };
        ingest::ingest_body(&state, &headers, &authorized, body, reservation).await
    }
    .await;
    ingest::respond(&state, result)
}

/// The user name of `Authorization: Basic ...` (Segment's write key), or a bearer key.
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim_start();
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return ingest::bearer_key(headers).map(str::to_string);
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(credentials.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    (!user.is_empty()).then(|| user.to_string())
}

/// The body's `writeKey`, read without building the body's tree (other fields are
/// skipped); a body that is not one JSON object is refused.
fn write_key_of(body: &[u8]) -> Result<Option<String>, ApiError> {
    #[derive(Deserialize)]
    struct WriteKey {
        #[serde(rename = "writeKey", default)]
        write_key: Option<String>,
    }
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    let probe: WriteKey = serde_json::from_slice(body).map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not one JSON object (a Segment call): {error}"))
    })?;
    Ok(probe.write_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_key_comes_from_basic_auth_or_the_body() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("up_pub_abc:");
        headers.insert(header::AUTHORIZATION, format!("Basic {encoded}").parse().expect("a header"));
        assert_eq!(basic_user(&headers).as_deref(), Some("up_pub_abc"));
        headers.insert(header::AUTHORIZATION, "Bearer up_pub_def".parse().expect("a header"));
        assert_eq!(basic_user(&headers).as_deref(), Some("up_pub_def"));
        let key = write_key_of(br#"{"event":"Product Viewed","properties":{"a":[1,2]},"writeKey":"k"}"#);
        assert_eq!(key.expect("an object").as_deref(), Some("k"));
        assert_eq!(write_key_of(br#"{"event":"x"}"#).expect("an object"), None);
        assert!(write_key_of(b"[1]").is_err());
        assert!(write_key_of(br#"{"writeKey":"a","writeKey":"b"}"#).is_err(), "a key named twice is refused");
    }
}
