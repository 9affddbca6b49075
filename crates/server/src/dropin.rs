//! Drop-in endpoints: the paths GA4's Measurement Protocol and Segment's HTTP tracking
//! API senders post to, so a shop points what it already runs at upshot by changing a
//! host name. The bodies are read like any other (`upshot_model::mapping` maps them),
//! under the same limits; only where the key comes from differs.
//!
//! - `POST /mp/collect?measurement_id=...&api_secret=KEY` (GA4): the api secret is a
//!   site key; as for beacons, only the public key may travel in a URL.
//! - `POST /v1/track`, `/v1/page`, `/v1/batch` (and analytics.js's short `/v1/t`,
//!   `/v1/p`, `/v1/b`) (Segment): the write key is the Basic auth user name
//!   (`Authorization: Basic base64(KEY:)`), or, as analytics.js sends it from browsers,
//!   the body's `writeKey`. A call without `type` takes the endpoint's.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use upshot_model::batch::MemoryBudget;

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
        ingest::ingest_body(&state, &headers, &authorized, RequestBody { bytes, gzip }, reservation).await
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

pub async fn segment_batch(state: State<Arc<AppState>>, headers: HeaderMap, body: axum::body::Body) -> Response {
    segment(state, headers, body, None).await
}

/// A Segment call (`call_type`) or batch (`None`).
async fn segment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Body,
    call_type: Option<&'static str>,
) -> Response {
    let result = async {
        let header_key = basic_user(&headers);
        // With the key in a header it is checked before the body is read; a browser's
        // analytics.js puts it in the body, which is then read (within the limits) first.
        let authorized = match &header_key {
            Some(key) => Some(ingest::authorize(&state, Some(key), None).await?),
            None => None,
        };
        let (bytes, mut reservation) =
            ingest::receive_body(&state, &headers, body, state.limits.body_bytes_max).await?;
        let plain = if ingest::is_gzip(&headers, &bytes) {
            Bytes::from(ingest::gunzip(&bytes, state.limits.decompressed_bytes_max, &mut reservation)?)
        } else {
            bytes
        };
        let (rewritten, write_key) = with_call_type(&plain, call_type)?;
        if !reservation.reserve(rewritten.len()) {
            return Err(ingest::over_budget());
        }
        let authorized = match authorized {
            Some(authorized) => authorized,
            None => ingest::authorize(&state, write_key.as_deref(), None).await?,
        };
        let body = RequestBody { bytes: Bytes::from(rewritten), gzip: false };
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

/// The body with each call's `type` set where it is missing (the endpoint's), and the
/// body's `writeKey`; a body that is not one JSON object is refused.
fn with_call_type(body: &[u8], call_type: Option<&str>) -> Result<(Vec<u8>, Option<String>), ApiError> {
    let body = upshot_model::json::without_byte_order_mark(
        std::str::from_utf8(body).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the body is not UTF-8"))?,
    );
    let mut value = upshot_model::json::parse_strict(body)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not one JSON object: {error}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "the body is not one JSON object (a Segment call)"))?;
    let write_key = object.remove("writeKey").and_then(|key| key.as_str().map(str::to_string));
    match call_type {
        Some(call_type) => {
            object.entry("type").or_insert_with(|| Value::from(call_type));
        }
        None if !object.get("batch").is_some_and(Value::is_array) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "a Segment batch needs a `batch` array of calls"));
        }
        None => {}
    }
    let bytes = serde_json::to_vec(&value).map_err(|error| ApiError::internal("writing the Segment call", error))?;
    Ok((bytes, write_key))
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
        let (body, key) =
            with_call_type(br#"{"event":"Product Viewed","writeKey":"k"}"#, Some("track")).expect("an object");
        assert_eq!(key.as_deref(), Some("k"));
        let call: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!((call["type"].as_str(), call.get("writeKey")), (Some("track"), None));
        assert!(with_call_type(b"[1]", Some("track")).is_err());
        assert!(with_call_type(br#"{"type":"track"}"#, None).is_err(), "a batch needs its array");
    }
}
