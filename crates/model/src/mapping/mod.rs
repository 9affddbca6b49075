//! GA4 ecommerce and Segment Ecommerce v2 events, mapped onto upshot's own (SPEC
//! section 2). Each mapped event is rewritten as a native JSON object and validated by
//! the native parser, so every rule (lengths, money, currency) holds for them too. The
//! mapping table is in docs/ingest.md; keep the two in step. Shopify's webhooks are
//! mapped in `shopify`.

pub mod shopify;
mod traffic;

use serde_json::{json, Map, Value};

use crate::parse::{parse_event_value, ParseContext, Rejection};
use crate::Event;

/// Which form a JSON object is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Native,
    /// A GA4 Measurement Protocol body: `{client_id, user_id?, timestamp_micros?, events: [{name, params}]}`.
    Ga4,
    /// A Segment `track` or `page` call, or a Segment `{batch: [...]}` of them.
    Segment,
}

pub fn detect_form(object: &Map<String, Value>) -> Form {
    if object.get("events").is_some_and(Value::is_array) && object.contains_key("client_id") {
        return Form::Ga4;
    }
    // No native event type is `track` or `page`: these are Segment's calls.
    let call_type = object.get("type").and_then(Value::as_str);
    if matches!(call_type, Some("track" | "page")) || object.get("batch").is_some_and(Value::is_array) {
        return Form::Segment;
    }
    Form::Native
}

/// One JSON value of a body or file: a native event, or a GA4 / Segment object that
/// may hold several events. `received_at_ms` stands in for a missing timestamp in
/// GA4 and Segment forms (their senders may leave it to the collector).
pub fn parse_any_value(value: &Value, context: &ParseContext, received_at_ms: i64) -> Vec<Result<Event, Rejection>> {
    parse_any_value_as(value, context, received_at_ms, None)
}

/// `parse_any_value`, with an object that has no `type` read as a Segment call of
/// `segment_call` when one is given.
pub fn parse_any_value_as(
    value: &Value,
    context: &ParseContext,
    received_at_ms: i64,
    segment_call: Option<&str>,
) -> Vec<Result<Event, Rejection>> {
    let Some(object) = value.as_object() else {
        return vec![Err(Rejection::new("event", "not a JSON object"))];
    };
    if let Some(call_type) = segment_call.filter(|_| !object.contains_key("type")) {
        return vec![segment_event(object, call_type, context, received_at_ms)];
    }
    match detect_form(object) {
        Form::Native => vec![parse_event_value(value, context)],
        Form::Ga4 => ga4_events(object, context, received_at_ms),
        Form::Segment => match object.get("batch").and_then(Value::as_array) {
            Some(batch) => batch
                .iter()
                .map(|call| match call.as_object() {
                    Some(call) => {
                        let call_type = call.get("type").and_then(Value::as_str).unwrap_or_default();
                        segment_event(call, call_type, context, received_at_ms)
                    }
                    None => Err(Rejection::new("batch", "an element is not a JSON object")),
                })
                .collect(),
            None => {
                let call_type = object.get("type").and_then(Value::as_str).unwrap_or_default();
                vec![segment_event(object, call_type, context, received_at_ms)]
            }
        },
    }
}

/// A stable id for an event that came without one: the same input maps to the same
/// id, so a resent GA4 event is a duplicate, not a second event.
fn derived_id(prefix: &str, parts: &[&Value]) -> String {
    let text = parts.iter().map(|part| part.to_string()).collect::<Vec<_>>().join("\u{1f}");
    let hash =
        |seed: u64| text.bytes().fold(seed, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{prefix}-{:016x}{:016x}", hash(0xcbf2_9ce4_8422_2325), hash(0x6c62_272e_07bb_0142))
}

fn put(target: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    if let Some(value) = value.filter(|value| !value.is_null()) {
        target.insert(key.to_string(), value.clone());
    }
}

fn rename_rejection(form: &str, name: &str, rejection: Rejection) -> Rejection {
    Rejection { reason: format!("{} (mapped from {form} {name:?})", rejection.reason), ..rejection }
}

fn ga4_events(body: &Map<String, Value>, context: &ParseContext, received_at_ms: i64) -> Vec<Result<Event, Rejection>> {
    let events = body.get("events").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let body_ts = body.get("timestamp_micros");
    events
        .iter()
        .enumerate()
        .flat_map(|(index, event)| {
            let Some(event) = event.as_object() else {
                return vec![Err(Rejection::new(format!("events[{index}]"), "not a JSON object"))];
            };
            let name = event.get("name").and_then(Value::as_str).unwrap_or_default();
            let empty = Map::new();
            let params = event.get("params").and_then(Value::as_object).unwrap_or(&empty);
            let micros = event.get("timestamp_micros").or(body_ts);
            let ts = match micros {
                Some(Value::Number(number)) => number.as_i64().map_or(Value::Null, |micros| json!(micros / 1000)),
                Some(other) => other.clone(),
                None => json!(received_at_ms),
            };
            let id = derived_id(
                "ga4",
                &[
                    body.get("client_id").unwrap_or(&Value::Null),
                    &ts,
                    &Value::from(name),
                    &Value::Object(params.clone()),
                ],
            );
            let mut common = Map::new();
            common.insert("ts".into(), ts);
            put(&mut common, "visitor_id", body.get("client_id"));
            put(&mut common, "profile_id", body.get("user_id"));
            put(&mut common, "url", params.get("page_location"));
            put(&mut common, "page_type", params.get("page_type"));
            traffic::ga4(body, params, &mut common);
            ga4_mapped(name, params, common, &id)
                .into_iter()
                .map(|mapped| mapped.and_then(|value| parse_event_value(&value, context)))
                .map(|result| result.map_err(|rejection| rename_rejection("GA4", name, rejection)))
                .collect()
        })
        .collect()
}

fn first_item(params: &Map<String, Value>) -> Option<&Map<String, Value>> {
    params.get("items").and_then(Value::as_array).and_then(|items| items.first()).and_then(Value::as_object)
}

fn item_ids(items: Option<&Value>, id_field: &str) -> Value {
    let ids = items.and_then(Value::as_array).map(|items| {
        items.iter().filter_map(|item| item.get(id_field).cloned()).filter(|id| !id.is_null()).collect::<Vec<_>>()
    });
    ids.map_or(Value::Null, Value::Array)
}

/// Order lines from GA4 `items` / Segment `products`.
fn order_lines(items: Option<&Value>, id_field: &str) -> Value {
    let lines = items.and_then(Value::as_array).map(|items| {
        items
            .iter()
            .map(|item| {
                let mut line = Map::new();
                put(&mut line, "item", item.get(id_field));
                put(&mut line, "quantity", item.get("quantity"));
                put(&mut line, "price", item.get("price"));
                Value::Object(line)
            })
            .collect::<Vec<_>>()
    });
    lines.map_or(Value::Null, Value::Array)
}

/// The GA4 event as native JSON objects (several for a multi-item `add_to_cart`).
fn ga4_mapped(
    name: &str,
    params: &Map<String, Value>,
    common: Map<String, Value>,
    id: &str,
) -> Vec<Result<Value, Rejection>> {
    let item = first_item(params);
    let from_event_or_item = |key: &str| params.get(key).or_else(|| item.and_then(|item| item.get(key)));
    let mut native = common;
    native.insert("event_id".into(), Value::from(id));
    let kind_or = |default: &str| params.get("kind").cloned().unwrap_or_else(|| Value::from(default));
    match name {
        "page_view" => {
            native.insert("type".into(), json!("page_view"));
        }
        "view_promotion" | "select_promotion" => {
            put(
                &mut native,
                "placement",
                from_event_or_item("promotion_id").or_else(|| from_event_or_item("promotion_name")),
            );
            native.insert("kind".into(), kind_or("other"));
            put(&mut native, "campaign", from_event_or_item("promotion_name"));
            put(&mut native, "label", from_event_or_item("creative_name"));
            if name == "view_promotion" {
                native.insert("type".into(), json!("impression"));
                put(&mut native, "items", Some(&item_ids(params.get("items"), "item_id")));
            } else {
                native.insert("type".into(), json!("interaction"));
                native.insert("action".into(), json!("click"));
                put(&mut native, "item", item.and_then(|item| item.get("item_id")));
            }
        }
        "view_item_list" | "select_item" => {
            put(
                &mut native,
                "placement",
                from_event_or_item("item_list_id").or_else(|| from_event_or_item("item_list_name")),
            );
            native.insert("kind".into(), kind_or("recommendation"));
            if name == "view_item_list" {
                native.insert("type".into(), json!("impression"));
                put(&mut native, "items", Some(&item_ids(params.get("items"), "item_id")));
            } else {
                native.insert("type".into(), json!("interaction"));
                native.insert("action".into(), json!("click"));
                put(&mut native, "item", item.and_then(|item| item.get("item_id")));
            }
        }
        "view_item" => {
            native.insert("type".into(), json!("product_view"));
            put(&mut native, "item", item.and_then(|item| item.get("item_id")));
        }
        "add_to_cart" => {
            let items = params.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            if items.is_empty() {
                return vec![Err(Rejection::new("items", "missing: add_to_cart needs at least one item"))];
            }
            return items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    let mut line = native.clone();
                    line.insert("type".into(), json!("add_to_cart"));
                    if index > 0 {
                        line.insert("event_id".into(), Value::from(format!("{id}-{index}")));
                    }
                    put(&mut line, "item", item.get("item_id"));
                    put(&mut line, "quantity", item.get("quantity"));
                    put(&mut line, "price", item.get("price"));
                    Ok(Value::Object(line))
                })
                .collect();
        }
        "purchase" => {
            native.insert("type".into(), json!("order"));
            put(&mut native, "order_id", params.get("transaction_id"));
            put(&mut native, "revenue", params.get("value"));
            put(&mut native, "shipping", params.get("shipping"));
            put(&mut native, "tax", params.get("tax"));
            put(&mut native, "currency", params.get("currency"));
            put(&mut native, "items", Some(&order_lines(params.get("items"), "item_id")));
        }
        "refund" => {
            native.insert("type".into(), json!("refund"));
            put(&mut native, "order_id", params.get("transaction_id"));
            put(&mut native, "amount", params.get("value"));
        }
        _ => return vec![Err(Rejection::new("name", format!("{name:?} is not a GA4 ecommerce event upshot maps")))],
    }
    vec![Ok(Value::Object(native))]
}

fn segment_event(
    call: &Map<String, Value>,
    call_type: &str,
    context: &ParseContext,
    received_at_ms: i64,
) -> Result<Event, Rejection> {
    let name = call.get("event").and_then(Value::as_str).unwrap_or_default();
    let empty = Map::new();
    let properties = call.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let mut native = Map::new();
    // Segment's API makes up a messageId when a sender leaves it out. Here it is derived
    // from the call and its time (the time of receipt when it has no timestamp, so that
    // two equal calls at different times stay two); a resend of a timed call is a
    // duplicate.
    let ts = call.get("timestamp").cloned().unwrap_or_else(|| json!(received_at_ms));
    let id = call
        .get("messageId")
        .cloned()
        .unwrap_or_else(|| Value::from(derived_id("segment", &[&Value::Object(call.clone()), &ts])));
    native.insert("event_id".into(), id);
    native.insert("ts".into(), ts);
    put(&mut native, "visitor_id", call.get("anonymousId").or_else(|| call.get("userId")));
    put(&mut native, "profile_id", call.get("userId"));
    let page_url = properties.get("url").filter(|_| call_type == "page");
    put(&mut native, "url", page_url.or_else(|| call.get("context").and_then(|context| context.pointer("/page/url"))));
    put(&mut native, "page_type", properties.get("page_type"));
    traffic::segment(call, properties, &mut native);
    if !matches!(call_type, "track" | "page") {
        let reason =
            format!("a Segment {call_type:?} call carries no event upshot counts; only track and page calls do");
        return Err(Rejection::new("type", reason));
    }
    if call_type == "page" {
        native.insert("type".into(), json!("page_view"));
        return parse_event_value(&Value::Object(native), context)
            .map_err(|rejection| rename_rejection("Segment", "page", rejection));
    }
    segment_mapped(name, properties, &mut native)
        .and_then(|()| parse_event_value(&Value::Object(native), context))
        .map_err(|rejection| rename_rejection("Segment", name, rejection))
}

fn segment_mapped(
    name: &str,
    properties: &Map<String, Value>,
    native: &mut Map<String, Value>,
) -> Result<(), Rejection> {
    let kind_or = |default: &str| properties.get("kind").cloned().unwrap_or_else(|| Value::from(default));
    match name {
        "Promotion Viewed" | "Promotion Clicked" => {
            put(native, "placement", properties.get("promotion_id").or_else(|| properties.get("name")));
            native.insert("kind".into(), kind_or("other"));
            put(native, "campaign", properties.get("name"));
            put(native, "label", properties.get("creative"));
            if name == "Promotion Viewed" {
                native.insert("type".into(), json!("impression"));
            } else {
                native.insert("type".into(), json!("interaction"));
                native.insert("action".into(), json!("click"));
            }
        }
        "Product List Viewed" => {
            native.insert("type".into(), json!("impression"));
            put(native, "placement", properties.get("list_id").or_else(|| properties.get("category")));
            native.insert("kind".into(), kind_or("recommendation"));
            put(native, "items", Some(&item_ids(properties.get("products"), "product_id")));
        }
        "Product Clicked" => {
            native.insert("type".into(), json!("interaction"));
            native.insert("action".into(), json!("click"));
            put(native, "placement", properties.get("list_id"));
            native.insert("kind".into(), kind_or("recommendation"));
            put(native, "item", properties.get("product_id"));
        }
        "Product Viewed" => {
            native.insert("type".into(), json!("product_view"));
            put(native, "item", properties.get("product_id"));
        }
        "Product Added" => {
            native.insert("type".into(), json!("add_to_cart"));
            put(native, "item", properties.get("product_id"));
            put(native, "quantity", properties.get("quantity"));
            put(native, "price", properties.get("price"));
        }
        "Order Completed" => {
            native.insert("type".into(), json!("order"));
            put(native, "order_id", properties.get("order_id"));
            put(native, "revenue", properties.get("revenue").or_else(|| properties.get("subtotal")));
            put(native, "shipping", properties.get("shipping"));
            put(native, "tax", properties.get("tax"));
            put(native, "currency", properties.get("currency"));
            put(native, "items", Some(&order_lines(properties.get("products"), "product_id")));
        }
        "Order Refunded" | "Order Cancelled" => {
            native.insert("type".into(), json!("refund"));
            put(native, "order_id", properties.get("order_id"));
            if name == "Order Cancelled" {
                native.insert("cancel".into(), json!(true));
            } else {
                put(native, "amount", properties.get("total").or_else(|| properties.get("amount")));
            }
        }
        _ => return Err(Rejection::new("event", format!("{name:?} is not a Segment ecommerce event upshot maps"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Body, Kind, Money};

    fn context() -> ParseContext {
        ParseContext { currency: "EUR".into() }
    }

    fn ga4(name: &str, params: Value) -> Vec<Result<Event, Rejection>> {
        let body = json!({"client_id": "c1", "user_id": "u1", "timestamp_micros": 1_700_000_000_123_456i64,
            "events": [{"name": name, "params": params}]});
        parse_any_value(&body, &context(), 0)
    }

    fn segment(name: &str, properties: Value) -> Result<Event, Rejection> {
        let call = json!({"type": "track", "event": name, "messageId": "m1", "anonymousId": "a1", "userId": "u1",
            "timestamp": "2024-05-01T10:00:00Z", "properties": properties});
        let mut events = parse_any_value(&call, &context(), 0);
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    fn money(text: &str) -> Money {
        Money::parse_decimal(text).expect("a valid amount")
    }

    #[test]
    fn ga4_promotions_become_impressions_and_clicks() {
        let params = json!({"promotion_id": "summer", "promotion_name": "Summer sale", "creative_name": "hero",
            "items": [{"item_id": "p1"}, {"item_id": "p2"}]});
        let event = ga4("view_promotion", params.clone()).remove(0).expect("valid");
        assert_eq!(
            (event.ts, event.visitor_id.as_deref(), event.profile_id.as_deref()),
            (1_700_000_000_123, Some("c1"), Some("u1"))
        );
        let Body::Impression { placement, kind, items, attributes } = event.body else { panic!("an impression") };
        assert_eq!((placement.as_str(), kind, items.len()), ("summer", Kind::Other, 2));
        assert_eq!((attributes.campaign.as_deref(), attributes.label.as_deref()), (Some("Summer sale"), Some("hero")));
        let click = ga4("select_promotion", params).remove(0).expect("valid");
        let Body::Interaction { placement, action, item, .. } = click.body else { panic!("an interaction") };
        assert_eq!((placement.as_str(), action, item.as_deref()), ("summer", Action::Click, Some("p1")));
    }

    #[test]
    fn ga4_item_lists_are_recommendation_placements() {
        let params = json!({"item_list_id": "similar", "items": [{"item_id": "p1"}]});
        let Body::Impression { placement, kind, .. } =
            ga4("view_item_list", params.clone()).remove(0).expect("valid").body
        else {
            panic!("an impression")
        };
        assert_eq!((placement.as_str(), kind), ("similar", Kind::Recommendation));
        let Body::Interaction { kind, item, .. } = ga4("select_item", params).remove(0).expect("valid").body else {
            panic!("an interaction")
        };
        assert_eq!((kind, item.as_deref()), (Kind::Recommendation, Some("p1")));
    }

    #[test]
    fn ga4_view_item_add_to_cart_purchase_and_refund() {
        let viewed = ga4("view_item", json!({"items": [{"item_id": "p1"}]})).remove(0).expect("valid");
        assert_eq!(viewed.body, Body::ProductView { item: "p1".into() });
        let added =
            ga4("add_to_cart", json!({"items": [{"item_id": "p1", "quantity": 2, "price": 5}, {"item_id": "p2"}]}));
        assert_eq!(added.len(), 2, "one add_to_cart per item");
        let ids: Vec<String> = added.iter().map(|event| event.as_ref().expect("valid").event_id.clone()).collect();
        assert_ne!(ids[0], ids[1]);
        let purchase = ga4(
            "purchase",
            json!({"transaction_id": "o1", "value": 30, "shipping": 4.5, "tax": 2, "currency": "EUR",
            "items": [{"item_id": "p1", "quantity": 2, "price": 15}]}),
        )
        .remove(0)
        .expect("valid");
        let Body::Order { order_id, revenue, shipping, lines, .. } = purchase.body else { panic!("an order") };
        assert_eq!((order_id.as_str(), revenue, shipping, lines.len()), ("o1", money("30"), Some(money("4.5")), 1));
        let refund = ga4("refund", json!({"transaction_id": "o1", "value": 10})).remove(0).expect("valid");
        assert_eq!(refund.body, Body::Refund { order_id: "o1".into(), amount: Some(money("10")), cancel: false });
    }

    #[test]
    fn ga4_resent_events_keep_their_id_and_unknown_names_are_rejected() {
        let first = ga4("view_item", json!({"items": [{"item_id": "p1"}]})).remove(0).expect("valid");
        let again = ga4("view_item", json!({"items": [{"item_id": "p1"}]})).remove(0).expect("valid");
        assert_eq!(first.event_id, again.event_id);
        let unknown = ga4("login", json!({})).remove(0).expect_err("not mapped");
        assert_eq!(unknown.field, "name");
        let wrong_currency = ga4("purchase", json!({"transaction_id": "o", "value": 1, "currency": "USD"})).remove(0);
        assert_eq!(wrong_currency.expect_err("other currency").field, "currency");
    }

    #[test]
    fn segment_promotions_lists_and_products() {
        let viewed = segment("Promotion Viewed", json!({"promotion_id": "hero", "name": "Spring", "creative": "a"}))
            .expect("valid");
        assert_eq!((viewed.event_id.as_str(), viewed.visitor_id.as_deref()), ("m1", Some("a1")));
        let Body::Impression { placement, attributes, .. } = viewed.body else { panic!("an impression") };
        assert_eq!((placement.as_str(), attributes.campaign.as_deref()), ("hero", Some("Spring")));
        let clicked = segment("Promotion Clicked", json!({"promotion_id": "hero"})).expect("valid");
        assert!(matches!(clicked.body, Body::Interaction { action: Action::Click, .. }));
        let list = segment("Product List Viewed", json!({"list_id": "recs", "products": [{"product_id": "p1"}]}))
            .expect("valid");
        assert!(
            matches!(list.body, Body::Impression { kind: Kind::Recommendation, ref items, .. } if items.len() == 1)
        );
        let product_click = segment("Product Clicked", json!({"list_id": "recs", "product_id": "p1"})).expect("valid");
        assert!(matches!(product_click.body, Body::Interaction { ref item, .. } if item.as_deref() == Some("p1")));
        assert_eq!(segment("Product Clicked", json!({"product_id": "p1"})).expect_err("no list").field, "placement");
        let product = segment("Product Viewed", json!({"product_id": "p1"})).expect("valid");
        assert_eq!(product.body, Body::ProductView { item: "p1".into() });
        let added =
            segment("Product Added", json!({"product_id": "p1", "quantity": 3, "price": "2.50"})).expect("valid");
        assert_eq!(added.body, Body::AddToCart { item: "p1".into(), quantity: 3, price: Some(money("2.5")) });
    }

    #[test]
    fn segment_orders_refunds_and_cancellations() {
        let order = segment(
            "Order Completed",
            json!({"order_id": "o1", "revenue": 25, "total": 31, "shipping": 4, "tax": 2,
            "currency": "EUR", "products": [{"product_id": "p1", "quantity": 1, "price": 25}]}),
        )
        .expect("valid");
        assert!(
            matches!(order.body, Body::Order { ref order_id, revenue, .. } if order_id == "o1" && revenue == money("25"))
        );
        let subtotal = segment("Order Completed", json!({"order_id": "o2", "subtotal": 9})).expect("valid");
        assert!(matches!(subtotal.body, Body::Order { revenue, .. } if revenue == money("9")));
        let refunded = segment("Order Refunded", json!({"order_id": "o1", "total": 5})).expect("valid");
        assert_eq!(refunded.body, Body::Refund { order_id: "o1".into(), amount: Some(money("5")), cancel: false });
        let cancelled = segment("Order Cancelled", json!({"order_id": "o1"})).expect("valid");
        assert_eq!(cancelled.body, Body::Refund { order_id: "o1".into(), amount: None, cancel: true });
        assert_eq!(segment("Signed Up", json!({})).expect_err("not mapped").field, "event");
        let batch = json!({"batch": [{"type": "track", "event": "Product Viewed", "messageId": "x", "anonymousId": "a",
            "properties": {"product_id": "p"}}, 5]});
        let events = parse_any_value(&batch, &context(), 42);
        assert_eq!(events[0].as_ref().expect("valid").ts, 42, "a missing timestamp is the time of receipt");
        assert!(events[1].is_err());
    }

    #[test]
    fn ga4_page_views_carry_the_referrer_utm_and_device_category() {
        // A Measurement Protocol body as Google documents it: client id, a device
        // object, events with their params.
        let body = json!({"client_id": "123.456", "timestamp_micros": 1_700_000_000_000_000i64,
            "device": {"category": "Tablet", "operating_system": "Android"},
            "events": [{"name": "page_view", "params": {
                "page_location": "https://shop.example/p1?utm_source=google&utm_medium=cpc&utm_campaign=brand",
                "page_referrer": "https://www.google.com/", "page_type": "product"}}]});
        let event = parse_any_value(&body, &context(), 0).remove(0).expect("valid");
        assert_eq!(event.body, Body::PageView);
        let traffic = &event.traffic;
        assert_eq!(traffic.device, Some(crate::Device::Tablet));
        assert_eq!(traffic.referrer.as_deref(), Some("https://www.google.com/"));
        assert_eq!(
            (traffic.utm_source.as_deref(), traffic.utm_medium.as_deref(), traffic.utm_campaign.as_deref()),
            (Some("google"), Some("cpc"), Some("brand"))
        );
        // Explicit campaign params win over the URL's.
        let explicit = json!({"client_id": "123.456", "events": [{"name": "page_view",
            "params": {"page_location": "https://shop.example/?utm_source=a", "source": "newsletter", "medium": "email"}}]});
        let event = parse_any_value(&explicit, &context(), 0).remove(0).expect("valid");
        assert_eq!(
            (event.traffic.utm_source.as_deref(), event.traffic.utm_medium.as_deref()),
            (Some("newsletter"), Some("email"))
        );
        assert_eq!(event.traffic.device, None);
    }

    #[test]
    fn segment_page_and_track_calls_carry_referrer_and_campaign() {
        // A page call as Segment's HTTP API documents it (no messageId: one is derived).
        let page = json!({"type": "page", "userId": "019mr8mf4r", "name": "Shoes",
            "properties": {"url": "https://shop.example/shoes", "referrer": "https://blog.example/", "path": "/shoes"},
            "context": {"campaign": {"name": "spring", "source": "newsletter", "medium": "email"}},
            "timestamp": "2012-12-02T00:30:08.276Z"});
        let event = parse_any_value(&page, &context(), 0).remove(0).expect("valid");
        assert_eq!(event.body, Body::PageView);
        assert_eq!(event.url.as_deref(), Some("https://shop.example/shoes"));
        assert_eq!(event.traffic.referrer.as_deref(), Some("https://blog.example/"));
        assert_eq!(
            (
                event.traffic.utm_source.as_deref(),
                event.traffic.utm_medium.as_deref(),
                event.traffic.utm_campaign.as_deref()
            ),
            (Some("newsletter"), Some("email"), Some("spring"))
        );
        let again = parse_any_value(&page, &context(), 0).remove(0).expect("valid");
        assert_eq!(event.event_id, again.event_id, "a resent call keeps its derived id");
        let track = json!({"type": "track", "userId": "019mr8mf4r", "event": "Product Viewed",
            "properties": {"product_id": "p1"}, "context": {"page": {"referrer": "https://t.co/x"}}});
        let viewed = parse_any_value(&track, &context(), 0).remove(0).expect("valid");
        assert_eq!(viewed.traffic.referrer.as_deref(), Some("https://t.co/x"));
    }
}
