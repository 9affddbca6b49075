//! `POST /v1/sites/{site}/shopify`: Shopify's order paid, refund and cancel webhooks,
//! verified by `X-Shopify-Hmac-Sha256` over the raw body, then mapped by
//! `upshot_model::mapping::shopify` (event ids from the order's and refund's own ids,
//! so a redelivery or a replay is a duplicate).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use upshot_model::mapping::shopify::map_webhook;
use upshot_model::{parse_event_value, ParseContext, Rejection};

use crate::error::ApiError;
use crate::keys::{Authorized, KeyRole};
use crate::AppState;

pub(crate) async fn post_webhook(
    State(state): State<Arc<AppState>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match webhook(&state, &site, &headers, &body).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(error) => {
            state.metrics.reject(error.metrics_reason(), 1);
            error.into_response()
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Whether `signature` (base64) is the HMAC-SHA256 of `body` under `secret`; the
/// comparison takes constant time.
pub fn signature_valid(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn webhook(state: &Arc<AppState>, site: &str, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let keys = state.keys.read().expect("no thread panics while holding the keys").clone();
    let record = keys.site(site).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no site {site:?}")))?;
    let secret = record.shopify_webhook_secret.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "this site takes no Shopify webhooks: set them up with `upshot site set SITE shopify_webhook_secret SECRET`",
        )
    })?;
    let signature = header_text(headers, "x-shopify-hmac-sha256").unwrap_or_default();
    if !signature_valid(secret, body, signature) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "X-Shopify-Hmac-Sha256 does not match the body"));
    }
    let topic = header_text(headers, "x-shopify-topic").unwrap_or_default();
    let webhook_id = header_text(headers, "x-shopify-webhook-id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "X-Shopify-Webhook-Id is missing"))?;
    let payload: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("the webhook body is not JSON: {error}")))?;
    let payload = payload
        .as_object()
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "the webhook body is not a JSON object"))?;
    let native = match map_webhook(topic, payload, webhook_id) {
        Some(native) => native,
        None => return Ok(json!({"taken": 0, "ignored_topic": topic})),
    };
    let context = ParseContext { currency: record.currency.clone() };
    let parsed = vec![parse_event_value(&native, &context).map_err(|rejection| Rejection {
        reason: format!("{} (mapped from Shopify {topic})", rejection.reason),
        ..rejection
    })];
    let authorized = Authorized { site: record, role: KeyRole::Secret, key_hash: [0u8; 32] };
    crate::ingest::append(state, &authorized, parsed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_secret_signs_a_body() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("any key length");
        mac.update(b"{}");
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert!(signature_valid("s3cret", b"{}", &signature));
        assert!(!signature_valid("other", b"{}", &signature));
        assert!(!signature_valid("s3cret", b"{ }", &signature));
        assert!(!signature_valid("s3cret", b"{}", "not base64!"));
    }
}
