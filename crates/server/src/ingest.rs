//! `POST /v1/events`, the beacon and the pixel: authorize, decode, validate, rate-limit,
//! queue for the writer, and answer per event once the taken ones are on disk.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use upshot_model::batch::{parse_batch, BatchError};
use upshot_model::{Body, Event, ParseContext, Rejection};
use upshot_store::Appended;

use crate::error::ApiError;
use crate::keys::{Authorized, KeyRole};
use crate::writer::{AppendRequest, QueueError};
use crate::AppState;

/// Bodies larger than this are parsed on a blocking thread, not the async one.
const INLINE_PARSE_BYTES_MAX: usize = 16 << 10;

/// User-Agent fragments of known bots (lowercase). Their events are counted, not stored.
const BOT_AGENT_FRAGMENTS: [&str; 12] = [
    "bot",
    "crawler",
    "spider",
    "slurp",
    "bingpreview",
    "facebookexternalhit",
    "headlesschrome",
    "lighthouse",
    "pingdom",
    "phantomjs",
    "python-requests",
    "preview",
];

#[derive(Debug, Default, Deserialize)]
pub struct KeyParams {
    /// For the beacon and the pixel, which cannot set headers.
    key: Option<String>,
    /// Optional: when given, it must be the key's own site.
    site: Option<String>,
    /// The pixel's events (one JSON object, an array, or NDJSON).
    e: Option<String>,
}

pub async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    add_cors(response.headers_mut());
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, GET, OPTIONS"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, content-encoding"),
    );
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

fn add_cors(headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
}

pub async fn post_events(
    State(state): State<Arc<AppState>>,
    Query(params): Query<KeyParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {} bytes; send smaller batches", state.limits.body_bytes_max),
                )
            } else {
                ApiError::new(rejection.status(), format!("reading the body: {rejection}"))
            }
        })?;
        let text = decode_body(&headers, &body, state.limits.decompressed_bytes_max)?;
        ingest_text(&state, &headers, &params, text).await
    }
    .await;
    respond(&state, result)
}

/// `GET /v1/pixel.gif?key=K&e=EVENTS`: for pages that can run no script. Answers a
/// transparent GIF whatever happened; the status says what.
pub async fn pixel(
    State(state): State<Arc<AppState>>,
    Query(params): Query<KeyParams>,
    headers: HeaderMap,
) -> Response {
    const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let text = params.e.clone().unwrap_or_default();
    let status = match ingest_text(&state, &headers, &params, text).await {
        Ok(_) => StatusCode::OK,
        Err(error) => {
            state.metrics.reject(error.metrics_reason(), 1);
            error.status
        }
    };
    let mut response =
        (status, [(header::CONTENT_TYPE, "image/gif"), (header::CACHE_CONTROL, "no-store")], GIF).into_response();
    add_cors(response.headers_mut());
    response
}

fn respond(state: &AppState, result: Result<Value, ApiError>) -> Response {
    let mut response = match result {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(error) => {
            state.metrics.reject(error.metrics_reason(), 1);
            error.into_response()
        }
    };
    add_cors(response.headers_mut());
    response
}

/// The body as text: gunzipped when it says so (or starts like gzip), at most
/// `decompressed_bytes_max` bytes, UTF-8.
fn decode_body(headers: &HeaderMap, body: &[u8], decompressed_bytes_max: usize) -> Result<String, ApiError> {
    let gzip_header = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().contains("gzip"));
    let bytes = if gzip_header || body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body).take(decompressed_bytes_max as u64 + 1).read_to_end(&mut out).map_err(
            |error| ApiError::new(StatusCode::BAD_REQUEST, format!("the gzip body does not decompress: {error}")),
        )?;
        if out.len() > decompressed_bytes_max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body decompresses to more than {decompressed_bytes_max} bytes; send smaller batches"),
            ));
        }
        out
    } else {
        body.to_vec()
    };
    String::from_utf8(bytes).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not UTF-8 (at byte {})", error.utf8_error().valid_up_to()),
        )
    })
}

/// The key from `Authorization: Bearer K`.
pub(crate) fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The key from `Authorization: Bearer K`, or from `?key=` (beacon, pixel).
fn presented_key<'a>(headers: &'a HeaderMap, params: &'a KeyParams) -> Option<&'a str> {
    bearer_key(headers).or(params.key.as_deref())
}

pub(crate) async fn authorize(
    state: &Arc<AppState>,
    key: Option<&str>,
    site: Option<&str>,
) -> Result<Authorized, ApiError> {
    let key = key.ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "no key: send `Authorization: Bearer <key>` (or `?key=` for beacons)")
    })?;
    let authorized = state.authorize(key).await.ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unknown key: use a key printed by `upshot site create`")
    })?;
    if let Some(site) = site {
        if site != authorized.site.site {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this key belongs to another site, not {site:?}"),
            ));
        }
    }
    Ok(authorized)
}

fn is_bot(headers: &HeaderMap) -> bool {
    let agent = headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let agent = agent.to_ascii_lowercase();
    BOT_AGENT_FRAGMENTS.iter().any(|fragment| agent.contains(fragment))
}

async fn ingest_text(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    params: &KeyParams,
    text: String,
) -> Result<Value, ApiError> {
    let authorized = authorize(state, presented_key(headers, params), params.site.as_deref()).await?;
    let received_at_ms = jiff::Timestamp::now().as_millisecond();
    let context = ParseContext { currency: authorized.site.currency.clone() };
    let events_max = state.limits.batch_events_max;
    let inline = text.len() <= INLINE_PARSE_BYTES_MAX;
    let parse = move || parse_batch(&text, &context, received_at_ms, events_max);
    let parsed = if inline { parse() } else { run_parse(parse).await? };
    let mut parsed = parsed.map_err(|error| match error {
        BatchError::Malformed { .. } => ApiError::new(StatusCode::BAD_REQUEST, error.to_string()),
        BatchError::TooManyEvents { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()),
    })?;
    if authorized.role == KeyRole::Public && is_bot(headers) {
        state.metrics.bot_events.fetch_add(parsed.len() as u64, Ordering::Relaxed);
        return Ok(json!({"taken": 0, "duplicate": 0, "rejected": 0, "bot_events_ignored": parsed.len()}));
    }
    if let Err(seconds) = state.rate.take(authorized.key_hash, parsed.len(), Instant::now()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this key sent more than {} events a second; retry in {seconds} s",
                state.limits.key_events_per_second
            ),
        )
        .retry_after(seconds));
    }
    for result in &mut parsed {
        if let Ok(event) = result {
            if let Err(rejection) = admit(event, &authorized, received_at_ms, state.limits.future_ms_max) {
                *result = Err(rejection);
            }
        }
    }
    append(state, &authorized, parsed).await
}

/// Parses off the async threads: a large body takes milliseconds.
async fn run_parse<T: Send + 'static>(parse: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(parse)
        .await
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("parsing the batch failed: {error}")))
}

/// Collector rules on a valid event: clock-skew correction, the future limit, and
/// orders only from the backend when the site says so.
fn admit(event: &mut Event, authorized: &Authorized, received_at_ms: i64, future_ms_max: i64) -> Result<(), Rejection> {
    if let Some(sent_at) = event.sent_at {
        event.ts = received_at_ms.saturating_sub(sent_at.saturating_sub(event.ts));
    }
    if event.ts > received_at_ms.saturating_add(future_ms_max) {
        return Err(Rejection::new(
            "ts",
            format!(
                "more than {} hours in the future (check the sender's clock, or send sent_at)",
                future_ms_max / 3_600_000
            ),
        ));
    }
    let backend_only = matches!(event.body, Body::Order { .. } | Body::Refund { .. });
    if backend_only && authorized.role == KeyRole::Public && authorized.site.orders_from_backend {
        return Err(Rejection::new("type", "this site takes orders and refunds only from its backend (secret key)"));
    }
    Ok(())
}

pub(crate) async fn append(
    state: &Arc<AppState>,
    authorized: &Authorized,
    parsed: Vec<Result<Event, Rejection>>,
) -> Result<Value, ApiError> {
    // Each role deduplicates only against its own ids (SPEC section 7): the role goes
    // with the event into the log and the segments.
    let valid: Vec<Event> = parsed
        .iter()
        .filter_map(|result| result.as_ref().ok())
        .map(|event| Event { sent_with: authorized.role, ..event.clone() })
        .collect();
    let outcomes = if valid.is_empty() {
        Vec::new()
    } else {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = AppendRequest { site: authorized.site.clone(), events: valid, reply };
        state.writer.try_send(request).map_err(|error| match error {
            QueueError::Full => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the write queue is full; retry shortly").retry_after(1)
            }
            QueueError::SpoolFull => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ClickHouse is behind and the spool is full; retry shortly",
            )
            .retry_after(5),
            QueueError::Closed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down; retry shortly")
                    .retry_after(5)
            }
        })?;
        let reply = answer.await.map_err(|_| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the writer stopped before saving the batch; retry")
                .retry_after(5)
        })?;
        reply.map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the batch could not be saved ({error}); nothing of it was taken, retry"),
            )
        })?
    };
    let mut outcomes = outcomes.into_iter();
    let (mut taken, mut duplicate, mut rejected) = (0u64, 0u64, 0u64);
    let results: Vec<Value> = parsed
        .iter()
        .map(|result| match result {
            Ok(event) => match outcomes.next() {
                Some(Appended::Taken) => {
                    taken += 1;
                    json!({"status": "taken", "event_id": event.event_id})
                }
                _ => {
                    duplicate += 1;
                    json!({"status": "duplicate", "event_id": event.event_id})
                }
            },
            Err(rejection) => {
                rejected += 1;
                state.metrics.reject(&metrics_field(&rejection.field), 1);
                json!({"status": "rejected", "field": rejection.field, "reason": rejection.reason})
            }
        })
        .collect();
    Ok(json!({"taken": taken, "duplicate": duplicate, "rejected": rejected, "events": results}))
}

/// A rejected field as a metrics reason: indices dropped (`items[3].price` is
/// `items[].price`), so the reasons stay few.
fn metrics_field(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut in_brackets = false;
    for character in field.chars() {
        match character {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            _ if in_brackets => continue,
            _ => {}
        }
        out.push(character);
    }
    out
}
