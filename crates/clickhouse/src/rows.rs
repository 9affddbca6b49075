//! Events as rows of the events table (JSONEachRow, column names of `schema::COLUMNS`),
//! and rows back into events, validated like any input.

use serde_json::{json, Map, Value};
use upshot_model::{parse_event_value, Body, Event, Money, ParseContext};

fn money_units(money: Option<Money>) -> Value {
    money.map_or(Value::Null, |money| Value::from(money.0))
}

fn text(text: &Option<String>) -> Value {
    text.as_deref().map_or(Value::Null, Value::from)
}

/// One event as a JSONEachRow line of the events table.
pub fn event_row(site: &str, event: &Event) -> String {
    let day = jiff::Timestamp::from_millisecond(event.ts)
        .map(|timestamp| timestamp.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_else(|_| "1970-01-01".to_string());
    let mut row = json!({
        "site": site, "day": day, "visitor_id": event.visitor_id.as_deref().unwrap_or(""), "ts": event.ts,
        "event_id": event.event_id, "type": event.body.type_name(), "profile_id": text(&event.profile_id),
        "page_type": text(&event.page_type), "url": text(&event.url), "placement": "", "kind": "", "action": "",
        "item": null, "items": [], "impression_id": null, "campaign": null, "sequence": null, "experience": null,
        "label": null, "quantity": 0, "price": null, "order_id": "", "revenue": 0, "shipping": null, "tax": null,
        "line_items": [], "line_quantities": [], "line_prices": [], "amount": null, "cancel": 0, "experiment": "",
        "variant": "", "goal": "", "value": null, "journey": "", "channel": null, "run_id": null,
        "sent_at": event.sent_at,
    });
    let object = row.as_object_mut().expect("a JSON object");
    let mut put = |key: &str, value: Value| {
        object.insert(key.to_string(), value);
    };
    match &event.body {
        Body::PageView => {}
        Body::Impression { placement, kind, items, attributes } => {
            put("placement", Value::from(placement.as_str()));
            put("kind", Value::from(kind.as_str()));
            put("items", Value::from(items.clone()));
            put_attributes(&mut put, attributes);
        }
        Body::Interaction { placement, kind, action, item, attributes } => {
            put("placement", Value::from(placement.as_str()));
            put("kind", Value::from(kind.as_str()));
            put("action", Value::from(action.as_str()));
            put("item", text(item));
            put_attributes(&mut put, attributes);
        }
        Body::ProductView { item } => put("item", Value::from(item.as_str())),
        Body::AddToCart { item, quantity, price } => {
            put("item", Value::from(item.as_str()));
            put("quantity", Value::from(*quantity));
            put("price", money_units(*price));
        }
        Body::Order { order_id, revenue, shipping, tax, lines } => {
            put("order_id", Value::from(order_id.as_str()));
            put("revenue", Value::from(revenue.0));
            put("shipping", money_units(*shipping));
            put("tax", money_units(*tax));
            put("line_items", lines.iter().map(|line| Value::from(line.item.as_str())).collect());
            put("line_quantities", lines.iter().map(|line| Value::from(line.quantity)).collect());
            put("line_prices", lines.iter().map(|line| Value::from(line.price.0)).collect());
        }
        Body::Refund { order_id, amount, cancel } => {
            put("order_id", Value::from(order_id.as_str()));
            put("amount", money_units(*amount));
            put("cancel", Value::from(u8::from(*cancel)));
        }
        Body::Assignment { experiment, variant } => {
            put("experiment", Value::from(experiment.as_str()));
            put("variant", Value::from(variant.as_str()));
        }
        Body::Goal { goal, value } => {
            put("goal", Value::from(goal.as_str()));
            put("value", money_units(*value));
        }
        Body::Journey { journey, action, channel, run_id } => {
            put("journey", Value::from(journey.as_str()));
            put("action", Value::from(action.as_str()));
            put("channel", text(channel));
            put("run_id", text(run_id));
        }
        Body::SequenceStart { sequence, campaign } => {
            put("sequence", Value::from(sequence.as_str()));
            put("campaign", text(campaign));
        }
    }
    row.to_string()
}

fn put_attributes(put: &mut impl FnMut(&str, Value), attributes: &upshot_model::PlacementAttributes) {
    put("impression_id", text(&attributes.impression_id));
    put("campaign", text(&attributes.campaign));
    put("sequence", text(&attributes.sequence));
    put("experience", text(&attributes.experience));
    put("label", text(&attributes.label));
}

/// A money column as the decimal text the native parser reads (units of 1e-4).
fn money_text(value: &Value) -> Option<Value> {
    let units = match value {
        Value::Number(number) => number.as_i64()?,
        Value::String(text) => text.parse().ok()?,
        _ => return None,
    };
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    Some(Value::from(format!("{sign}{}.{:04}", magnitude / 10_000, magnitude % 10_000)))
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// A row read back (JSONEachRow) as an event, through the native validation.
pub fn row_event(row: &Map<String, Value>, context: &ParseContext) -> Result<Event, String> {
    let field = |name: &str| row.get(name).filter(|value| !value.is_null());
    let texts = |name: &str| field(name).and_then(Value::as_str).filter(|text| !text.is_empty()).map(Value::from);
    let mut native = Map::new();
    let type_name = field("type").and_then(Value::as_str).unwrap_or_default().to_string();
    native.insert("type".into(), Value::from(type_name.as_str()));
    native.insert("event_id".into(), field("event_id").cloned().unwrap_or(Value::Null));
    native.insert("ts".into(), field("ts").and_then(integer).map_or(Value::Null, Value::from));
    for name in ["visitor_id", "placement", "kind", "action", "order_id", "experiment", "variant", "goal", "journey"] {
        if let Some(value) = texts(name) {
            native.insert(name.into(), value);
        }
    }
    for name in [
        "profile_id",
        "page_type",
        "url",
        "item",
        "impression_id",
        "campaign",
        "sequence",
        "experience",
        "label",
        "channel",
        "run_id",
    ] {
        if let Some(value) = field(name) {
            native.insert(name.into(), value.clone());
        }
    }
    for name in ["price", "shipping", "tax", "amount", "value"] {
        if let Some(value) = field(name).and_then(money_text) {
            native.insert(name.into(), value);
        }
    }
    if let Some(sent_at) = field("sent_at").and_then(integer) {
        native.insert("sent_at".into(), Value::from(sent_at));
    }
    match type_name.as_str() {
        "impression" => {
            native.insert("items".into(), field("items").cloned().unwrap_or(Value::Array(Vec::new())));
        }
        "add_to_cart" => {
            native.insert("quantity".into(), field("quantity").and_then(integer).map_or(Value::Null, Value::from));
        }
        "order" => {
            native.insert("revenue".into(), field("revenue").and_then(money_text).unwrap_or(Value::Null));
            let list = |name: &str| field(name).and_then(Value::as_array).cloned().unwrap_or_default();
            let (items, quantities, prices) = (list("line_items"), list("line_quantities"), list("line_prices"));
            let lines: Vec<Value> = items
                .iter()
                .zip(&quantities)
                .zip(&prices)
                .map(|((item, quantity), price)| {
                    json!({"item": item, "quantity": integer(quantity), "price": money_text(price)})
                })
                .collect();
            native.insert("items".into(), Value::Array(lines));
            native.remove("item");
        }
        "refund" => {
            native.insert("cancel".into(), Value::from(field("cancel").and_then(integer) == Some(1)));
        }
        _ => {}
    }
    parse_event_value(&Value::Object(native), context).map_err(|rejection| rejection.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use upshot_model::parse_event_line;

    #[test]
    fn every_type_of_event_comes_back_unchanged() {
        let context = ParseContext { currency: "USD".into() };
        let lines = [
            r#"{"event_id":"1","type":"page_view","ts":5,"visitor_id":"v","page_type":"","url":"/a","profile_id":"p","sent_at":9}"#,
            r#"{"event_id":"2","type":"impression","ts":5,"visitor_id":"v","placement":"p","kind":"recommendation","items":["a","b"],"impression_id":"i","campaign":"c","sequence":"s","experience":"e","label":"l"}"#,
            r#"{"event_id":"3","type":"interaction","ts":5,"visitor_id":"v","placement":"p","kind":"popup","action":"hover","item":"a"}"#,
            r#"{"event_id":"4","type":"product_view","ts":5,"visitor_id":"v","item":"a"}"#,
            r#"{"event_id":"5","type":"add_to_cart","ts":5,"visitor_id":"v","item":"a","quantity":3,"price":"1.2345"}"#,
            r#"{"event_id":"6","type":"order","ts":5,"visitor_id":"v","order_id":"o","revenue":"10.5","shipping":"-1","tax":0,"items":[{"item":"a","quantity":2,"price":"5.25"}]}"#,
            r#"{"event_id":"7","type":"refund","ts":5,"order_id":"o","amount":"1"}"#,
            r#"{"event_id":"8","type":"refund","ts":5,"order_id":"o","cancel":true}"#,
            r#"{"event_id":"9","type":"assignment","ts":5,"visitor_id":"v","experiment":"x","variant":"b"}"#,
            r#"{"event_id":"10","type":"goal","ts":5,"visitor_id":"v","goal":"g","value":"-2"}"#,
            r#"{"event_id":"11","type":"journey","ts":5,"visitor_id":"v","journey":"j","action":"notification","channel":"sms","run_id":"r"}"#,
            r#"{"event_id":"12","type":"sequence_start","ts":5,"visitor_id":"v","sequence":"s","campaign":"c"}"#,
        ];
        for line in lines {
            let event = parse_event_line(line, &context).expect("valid");
            let row: Value = serde_json::from_str(&event_row("shop", &event)).expect("a JSON row");
            let back = row_event(row.as_object().expect("an object"), &context).expect("valid again");
            assert_eq!(back, event, "{line}");
        }
    }
}
