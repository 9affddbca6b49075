//! `POST /v1/sites/{site}/shopify`: Shopify's order paid, refund and cancel webhooks,
//! verified by `X-Shopify-Hmac-Sha256` over the raw body, mapped to order, refund and
//! cancel events whose event_id is the webhook id (so a redelivery is a duplicate).
//! Revenue is the subtotal after discounts, without shipping and tax.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use upshot_model::money::MONEY_UNITS_PER_CURRENCY_UNIT;
use upshot_model::{parse_event_value, Money, ParseContext, Rejection};

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
    let native = match map_webhook(topic, payload, &format!("shopify-{webhook_id}")) {
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

fn text_of(value: Option<&Value>) -> Option<Value> {
    match value? {
        Value::Number(number) => Some(Value::from(number.to_string())),
        Value::String(text) if !text.is_empty() => Some(Value::from(text.clone())),
        _ => None,
    }
}

/// The visitor the tracker put on the cart (`upshot_visitor_id` note attribute), else
/// the customer, else the order itself.
fn visitor_of(order: &Map<String, Value>) -> Value {
    let noted = order.get("note_attributes").and_then(Value::as_array).and_then(|attributes| {
        attributes.iter().find(|attribute| attribute.get("name").and_then(Value::as_str) == Some("upshot_visitor_id"))
    });
    if let Some(value) = noted.and_then(|attribute| text_of(attribute.get("value"))) {
        return value;
    }
    if let Some(customer) = text_of(order.get("customer").and_then(|customer| customer.get("id"))) {
        return Value::from(format!("shopify-customer-{}", customer.as_str().unwrap_or_default()));
    }
    let order_id = text_of(order.get("id")).unwrap_or_default();
    Value::from(format!("shopify-order-{}", order_id.as_str().unwrap_or_default()))
}

/// Sums decimal amounts exactly; `None` when one is not a valid amount.
fn sum_amounts<'a>(amounts: impl Iterator<Item = &'a Value>) -> Option<String> {
    let mut total: i64 = 0;
    for amount in amounts {
        let text = text_of(Some(amount))?;
        total = total.checked_add(Money::parse_decimal(text.as_str()?).ok()?.0)?;
    }
    let sign = if total < 0 { "-" } else { "" };
    let units = total.unsigned_abs();
    let per = MONEY_UNITS_PER_CURRENCY_UNIT as u64;
    Some(format!("{sign}{}.{:04}", units / per, units % per))
}

/// The webhook as a native event, or `None` for a topic upshot does not use.
pub fn map_webhook(topic: &str, payload: &Map<String, Value>, event_id: &str) -> Option<Value> {
    let mut native = Map::new();
    native.insert("event_id".into(), Value::from(event_id));
    match topic {
        "orders/paid" | "orders/create" => {
            native.insert("type".into(), json!("order"));
            native.insert("visitor_id".into(), visitor_of(payload));
            let when = payload.get("processed_at").or_else(|| payload.get("created_at"));
            native.insert("ts".into(), when.cloned().unwrap_or(Value::Null));
            native.insert("order_id".into(), text_of(payload.get("id")).unwrap_or(Value::Null));
            native.insert("revenue".into(), payload.get("subtotal_price").cloned().unwrap_or(Value::Null));
            native.insert("currency".into(), payload.get("currency").cloned().unwrap_or(Value::Null));
            if let Some(tax) = payload.get("total_tax") {
                native.insert("tax".into(), tax.clone());
            }
            if let Some(shipping) =
                payload.get("total_shipping_price_set").and_then(|set| set.pointer("/shop_money/amount"))
            {
                native.insert("shipping".into(), shipping.clone());
            }
            if let Some(customer) = text_of(payload.get("customer").and_then(|customer| customer.get("id"))) {
                native.insert("profile_id".into(), customer);
            }
            let lines: Vec<Value> = payload
                .get("line_items")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|item| {
                            let id = text_of(item.get("product_id")).or_else(|| text_of(item.get("sku")));
                            json!({"item": id, "quantity": item.get("quantity"), "price": item.get("price")})
                        })
                        .collect()
                })
                .unwrap_or_default();
            native.insert("items".into(), Value::Array(lines));
        }
        "refunds/create" => {
            native.insert("type".into(), json!("refund"));
            native.insert("ts".into(), payload.get("created_at").cloned().unwrap_or(Value::Null));
            native.insert("order_id".into(), text_of(payload.get("order_id")).unwrap_or(Value::Null));
            let subtotals = payload
                .get("refund_line_items")
                .and_then(Value::as_array)
                .map(|items| items.iter().filter_map(|item| item.get("subtotal")).collect::<Vec<_>>())
                .unwrap_or_default();
            // Merchandise refunded, without tax; a refund of shipping alone refunds no revenue.
            let amount = sum_amounts(subtotals.into_iter()).map_or(Value::from("invalid"), Value::from);
            native.insert("amount".into(), amount);
        }
        "orders/cancelled" => {
            native.insert("type".into(), json!("refund"));
            let when = payload.get("cancelled_at").or_else(|| payload.get("updated_at"));
            native.insert("ts".into(), when.cloned().unwrap_or(Value::Null));
            native.insert("order_id".into(), text_of(payload.get("id")).unwrap_or(Value::Null));
            native.insert("cancel".into(), json!(true));
        }
        _ => return None,
    }
    Some(Value::Object(native))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(native: Value) -> upshot_model::Event {
        parse_event_value(&native, &ParseContext { currency: "USD".into() }).expect("a valid event")
    }

    #[test]
    fn a_paid_order_keeps_the_subtotal_and_the_trackers_visitor() {
        let payload = json!({"id": 820982911946154508u64, "processed_at": "2024-05-01T10:00:00-04:00", "currency": "USD",
            "subtotal_price": "398.00", "total_tax": "11.94", "total_shipping_price_set": {"shop_money": {"amount": "10.00"}},
            "customer": {"id": 115310627314723954u64}, "note_attributes": [{"name": "upshot_visitor_id", "value": "v-1"}],
            "line_items": [{"product_id": 632910392, "quantity": 2, "price": "199.00"}]});
        let event =
            parse(map_webhook("orders/paid", payload.as_object().expect("an object"), "shopify-w1").expect("mapped"));
        assert_eq!((event.event_id.as_str(), event.visitor_id.as_deref()), ("shopify-w1", Some("v-1")));
        assert_eq!(event.profile_id.as_deref(), Some("115310627314723954"));
        let upshot_model::Body::Order { order_id, revenue, shipping, tax, lines } = event.body else {
            panic!("an order")
        };
        assert_eq!(order_id, "820982911946154508");
        assert_eq!((revenue, shipping, tax), (Money(3_980_000), Some(Money(100_000)), Some(Money(119_400))));
        assert_eq!((lines[0].item.as_str(), lines[0].quantity), ("632910392", 2));
    }

    #[test]
    fn refunds_sum_line_subtotals_and_cancellations_cancel() {
        let refund = json!({"order_id": 9, "created_at": "2024-05-02T00:00:00Z",
            "refund_line_items": [{"subtotal": 10.5}, {"subtotal": "4.25"}]});
        let event = parse(map_webhook("refunds/create", refund.as_object().expect("an object"), "r").expect("mapped"));
        assert_eq!(
            event.body,
            upshot_model::Body::Refund { order_id: "9".into(), amount: Some(Money(147_500)), cancel: false }
        );
        let cancel = json!({"id": 9, "cancelled_at": "2024-05-03T00:00:00Z"});
        let event =
            parse(map_webhook("orders/cancelled", cancel.as_object().expect("an object"), "c").expect("mapped"));
        assert_eq!(event.body, upshot_model::Body::Refund { order_id: "9".into(), amount: None, cancel: true });
        assert!(map_webhook("products/update", &Map::new(), "x").is_none());
    }

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
