//! `POST /v1/events`, the beacon and the pixel: authorize, decode, validate, rate-limit,
//! queue for the writer, and answer per event once the taken ones are on disk.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use upshot_model::batch::{parse_batch_with, BatchError, MemoryBudget};
use upshot_model::{Body, Event, ParseContext, Rejection};
use upshot_store::Appended;

use crate::error::ApiError;
use crate::keys::{Authorized, KeyRole};
use crate::memory::Reservation;
use crate::writer::{AppendRequest, QueueError};
use crate::AppState;

/// Plain bodies larger than this (and every gzip'd one) are read on a blocking thread,
/// not the async one.
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

impl KeyParams {
    /// A key given outside `?key=` (GA4's `api_secret`), under the same rules.
    pub(crate) fn with_key(key: String) -> KeyParams {
        KeyParams { key: Some(key), ..KeyParams::default() }
    }
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

pub(crate) fn add_cors(headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    // The tracker honours Retry-After on 429 and 503: a page may read it only if told so.
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Retry-After"));
}

pub async fn post_events(
    State(state): State<Arc<AppState>>,
    Query(params): Query<KeyParams>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let result = async {
        // The key first: a body from someone without one is never read, let alone
        // decompressed.
        let authorized = authorize_request(&state, &headers, &params).await?;
        let (bytes, reservation) = receive_body(&state, &headers, body, state.limits.body_bytes_max).await?;
        let gzip = is_gzip(&headers, &bytes);
        ingest_body(&state, &headers, &authorized, RequestBody { bytes, gzip, segment_call: None }, reservation).await
    }
    .await;
    respond(&state, result)
}

/// Reads a body within `body_read_timeout_ms` and `body_bytes_max`, each chunk asked
/// of the memory budget as it arrives (never waiting: this is an async thread). Small
/// plain bodies (by their `Content-Length`) use the share kept for them.
pub(crate) async fn receive_body(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<(Bytes, Reservation), ApiError> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes; send smaller batches"),
        )
    };
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let small = declared.is_some_and(|length| length <= INLINE_PARSE_BYTES_MAX)
        && headers.get(header::CONTENT_ENCODING).is_none();
    let budget = if small { &state.small_bodies } else { &state.large_bodies };
    let mut reservation = budget.reservation(Instant::now());
    let read = async {
        let mut body = body;
        // Grown as chunks arrive (and are reserved), not from what a header promises.
        let mut out: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0).min(INLINE_PARSE_BYTES_MAX));
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("reading the body: {error}")))?;
            let Ok(chunk) = frame.into_data() else { continue };
            if out.len() + chunk.len() > limit {
                return Err(too_large());
            }
            if !reservation.reserve(chunk.len()) {
                return Err(over_budget());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    let deadline = Duration::from_millis(state.limits.body_read_timeout_ms);
    let bytes = tokio::time::timeout(deadline, read).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {} s; send it at once", deadline.as_secs()),
        )
    })??;
    Ok((Bytes::from(bytes), reservation))
}

/// `GET /v1/pixel.gif?key=K&e=EVENTS`: for pages that can run no script. Answers a
/// transparent GIF whatever happened; the status says what.
pub async fn pixel(
    State(state): State<Arc<AppState>>,
    Query(params): Query<KeyParams>,
    headers: HeaderMap,
) -> Response {
    const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let result = async {
        let authorized = authorize_request(&state, &headers, &params).await?;
        let text = params.e.clone().unwrap_or_default();
        let mut reservation = state.small_bodies.reservation(Instant::now());
        if !reservation.reserve(text.len()) {
            return Err(over_budget());
        }
        let body = RequestBody { bytes: Bytes::from(text), gzip: false, segment_call: None };
        ingest_body(&state, &headers, &authorized, body, reservation).await
    };
    let status = match result.await {
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

pub(crate) fn respond(state: &AppState, result: Result<Value, ApiError>) -> Response {
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

/// A body as received: gzip'd or plain.
pub(crate) struct RequestBody {
    pub bytes: Bytes,
    pub gzip: bool,
    /// Read an object without `type` as a Segment call of this type (Segment's
    /// `/v1/track` and `/v1/page` imply it).
    pub segment_call: Option<&'static str>,
}

/// Whether the body is gzip'd: it says so, or starts like gzip.
pub(crate) fn is_gzip(headers: &HeaderMap, body: &[u8]) -> bool {
    let gzip_header = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().contains("gzip"));
    gzip_header || body.starts_with(&[0x1f, 0x8b])
}

/// Decompressed output is asked of the memory budget this much at a time.
const DECOMPRESS_STEP_BYTES: usize = 64 << 10;

/// The gunzipped body (every member of a multi-member gzip), at most
/// `decompressed_bytes_max` bytes, each step of its growth reserved first.
fn gunzip(body: &[u8], decompressed_bytes_max: usize, reservation: &mut Reservation) -> Result<Vec<u8>, ApiError> {
    let mut decoder = flate2::read::MultiGzDecoder::new(body);
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() == out.capacity() {
            let wanted = (out.capacity() * 2).max(DECOMPRESS_STEP_BYTES).min(decompressed_bytes_max + 1);
            if wanted <= out.capacity() {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body decompresses to more than {decompressed_bytes_max} bytes; send smaller batches"),
                ));
            }
            if !reservation.reserve(wanted - out.capacity()) {
                return Err(over_budget());
            }
            out.reserve_exact(wanted - out.len());
        }
        let start = out.len();
        out.resize(out.capacity(), 0);
        let read = decoder.read(&mut out[start..]);
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the gzip body does not decompress: {error}"),
                ))
            }
        };
        out.truncate(start + read);
        if read == 0 {
            return Ok(out);
        }
    }
}

fn over_budget() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is holding as many request bodies as its memory limit allows; retry shortly",
    )
    .retry_after(1)
}

/// The body's events, parsed with every byte they hold reserved in `reservation`.
fn read_events(
    body: RequestBody,
    context: &ParseContext,
    received_at_ms: i64,
    limits: &crate::Limits,
    reservation: &mut Reservation,
) -> Result<Vec<Result<Event, Rejection>>, ApiError> {
    let gunzipped;
    let bytes: &[u8] = if body.gzip {
        gunzipped = gunzip(&body.bytes, limits.decompressed_bytes_max, reservation)?;
        &gunzipped
    } else {
        &body.bytes
    };
    let text = std::str::from_utf8(bytes).map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not UTF-8 (at byte {})", error.valid_up_to()))
    })?;
    let events_max = limits.batch_events_max;
    let parsed = parse_batch_with(text, context, received_at_ms, events_max, reservation, body.segment_call);
    parsed.map_err(|error| match error {
        BatchError::Malformed { .. } => ApiError::new(StatusCode::BAD_REQUEST, error.to_string()),
        BatchError::TooManyEvents { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()),
        BatchError::OverBudget => over_budget(),
    })
    // The body and its text are dropped here; their reserved bytes stay reserved until
    // the answer (the events take their place), a bound that errs on the safe side.
}

/// The key from `Authorization: Bearer K` (the scheme's case does not matter, RFC 9110).
pub(crate) fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim_start();
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// The key of an ingest request: `Authorization: Bearer K`, or `?key=` for beacons and
/// pixels, which cannot set headers. Only the public key may travel in a URL (URLs end
/// up in logs and browser histories): the secret key there is refused.
pub(crate) async fn authorize_request(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    params: &KeyParams,
) -> Result<Authorized, ApiError> {
    // A secret key in the URL is refused even beside a header: the URL was logged.
    if let Some(in_url) = params.key.as_deref() {
        if state.authorize(in_url).await.is_some_and(|found| found.role == KeyRole::Secret) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the secret key must not be put in a URL (it ends up in logs): send it as `Authorization: Bearer <key>`, \
                 and rotate it if this URL was shared",
            ));
        }
    }
    let key = bearer_key(headers).or(params.key.as_deref());
    authorize(state, key, params.site.as_deref()).await
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

/// Reads, checks and appends an authorized request's body, received under
/// `reservation`. Small plain bodies are read on the async thread (never waiting for
/// memory); the rest on a blocking thread, where waiting for memory other requests
/// hold is allowed.
pub(crate) async fn ingest_body(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    authorized: &Authorized,
    body: RequestBody,
    mut reservation: Reservation,
) -> Result<Value, ApiError> {
    let received_at_ms = jiff::Timestamp::now().as_millisecond();
    let context = ParseContext { currency: authorized.site.currency.clone() };
    let limits = state.limits.clone();
    if body.gzip && reservation.draws_on(&state.small_bodies) {
        // Gzip that did not say so in its headers was received under the small bodies'
        // share; it unpacks like any gzip, so it moves to the large share first.
        let mut moved = state.large_bodies.reservation(Instant::now());
        if !moved.reserve(reservation.held()) {
            return Err(over_budget());
        }
        reservation = moved;
    }
    let (mut parsed, _reservation) = if !body.gzip && body.bytes.len() <= INLINE_PARSE_BYTES_MAX {
        let parsed = read_events(body, &context, received_at_ms, &limits, &mut reservation)?;
        (parsed, reservation)
    } else {
        // As many large bodies are read at once as there are cores (the work is CPU
        // bound): more would not go faster, and each would hold memory meanwhile.
        let slot = tokio::time::timeout(crate::memory::WAIT_MAX, state.large_body_slots.clone().acquire_owned())
            .await
            .map_err(|_| over_budget())?
            .map_err(|_| over_budget())?;
        run_parse(move || {
            reservation.wait_until(Instant::now() + crate::memory::WAIT_MAX);
            let parsed = read_events(body, &context, received_at_ms, &limits, &mut reservation);
            drop(slot);
            parsed.map(|parsed| (parsed, reservation))
        })
        .await??
    };
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
    // An event without a device gets the one its request's User-Agent names.
    let device = crate::device::from_headers(headers);
    for result in &mut parsed {
        if let Ok(event) = result {
            if let Err(rejection) = admit(event, authorized, received_at_ms, state.limits.future_ms_max) {
                *result = Err(rejection);
            } else if event.traffic.device.is_none() {
                event.traffic.device = device;
            }
        }
    }
    append(state, authorized, parsed).await
}

/// Parses off the async threads: a large body takes milliseconds.
async fn run_parse<T: Send + 'static>(parse: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(parse).await.map_err(|error| ApiError::internal("parsing the batch failed", error))
}

/// Collector rules on a valid event: clock-skew correction, the future limit, and
/// orders only from the backend when the site says so.
fn admit(event: &mut Event, authorized: &Authorized, received_at_ms: i64, future_ms_max: i64) -> Result<(), Rejection> {
    if let Some(sent_at) = event.sent_at {
        let corrected = received_at_ms.saturating_sub(sent_at.saturating_sub(event.ts));
        // A sent_at far from ts could move it out of what the parser itself accepts.
        upshot_model::time::check_millis(corrected).map_err(|reason| {
            Rejection::new("sent_at", format!("correcting ts by it gives an instant out of range ({reason})"))
        })?;
        event.ts = corrected;
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
    // The events move to the writer (no second copy outside the memory budget); the
    // answer needs only their ids. Each role deduplicates only against its own ids
    // (SPEC section 7): the role goes with the event into the log and the segments.
    let mut valid: Vec<Event> = Vec::with_capacity(parsed.len());
    let fates: Vec<Result<String, Rejection>> = parsed
        .into_iter()
        .map(|result| {
            result.map(|event| {
                let event_id = event.event_id.clone();
                valid.push(Event { sent_with: authorized.role, ..event });
                event_id
            })
        })
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
            ApiError::internal("the batch could not be saved; nothing of it was taken, retry", error)
        })?
    };
    let mut outcomes = outcomes.into_iter();
    let (mut taken, mut duplicate, mut rejected) = (0u64, 0u64, 0u64);
    let results: Vec<Value> = fates
        .iter()
        .map(|fate| match fate {
            Ok(event_id) => match outcomes.next() {
                Some(Appended::Taken) => {
                    taken += 1;
                    json!({"status": "taken", "event_id": event_id})
                }
                _ => {
                    duplicate += 1;
                    json!({"status": "duplicate", "event_id": event_id})
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
