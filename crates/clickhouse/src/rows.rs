//! Events as rows of the events table (RowBinary, in the column order of
//! `schema::COLUMNS`), and rows read back (JSONEachRow) into events, validated like any
//! input.

use serde_json::{json, Map, Value};
use upshot_model::{parse_event_value, Body, Event, ParseContext};

/// One event's values in the column order of `schema::COLUMNS`.
#[derive(Debug, Default)]
pub struct RowValues<'a> {
    site: &'a str,
    /// Days since 1970-01-01 (ClickHouse `Date`).
    day: u16,
    visitor_id: &'a str,
    ts: i64,
    event_id: &'a str,
    type_name: &'a str,
    profile_id: Option<&'a str>,
    page_type: Option<&'a str>,
    url: Option<&'a str>,
    placement: &'a str,
    kind: &'a str,
    action: &'a str,
    item: Option<&'a str>,
    items: Vec<&'a str>,
    impression_id: Option<&'a str>,
    campaign: Option<&'a str>,
    sequence: Option<&'a str>,
    experience: Option<&'a str>,
    label: Option<&'a str>,
    quantity: u32,
    price: Option<i64>,
    order_id: &'a str,
    revenue: i64,
    shipping: Option<i64>,
    tax: Option<i64>,
    line_items: Vec<&'a str>,
    line_quantities: Vec<u32>,
    line_prices: Vec<i64>,
    amount: Option<i64>,
    cancel: u8,
    experiment: &'a str,
    variant: &'a str,
    goal: &'a str,
    value: Option<i64>,
    journey: &'a str,
    channel: Option<&'a str>,
    run_id: Option<&'a str>,
    sent_at: Option<i64>,
}

const MILLIS_PER_DAY: i64 = 86_400_000;

impl<'a> RowValues<'a> {
    pub fn of(site: &'a str, event: &'a Event) -> RowValues<'a> {
        let mut row = RowValues {
            site,
            day: u16::try_from(event.ts.div_euclid(MILLIS_PER_DAY).max(0)).unwrap_or(u16::MAX),
            visitor_id: event.visitor_id.as_deref().unwrap_or(""),
            ts: event.ts,
            event_id: &event.event_id,
            type_name: event.body.type_name(),
            profile_id: event.profile_id.as_deref(),
            page_type: event.page_type.as_deref(),
            url: event.url.as_deref(),
            sent_at: event.sent_at,
            ..RowValues::default()
        };
        let attributes = |attributes: &'a upshot_model::PlacementAttributes, row: &mut RowValues<'a>| {
            row.impression_id = attributes.impression_id.as_deref();
            row.campaign = attributes.campaign.as_deref();
            row.sequence = attributes.sequence.as_deref();
            row.experience = attributes.experience.as_deref();
            row.label = attributes.label.as_deref();
        };
        match &event.body {
            Body::PageView => {}
            Body::Impression { placement, kind, items, attributes: placed } => {
                (row.placement, row.kind) = (placement, kind.as_str());
                row.items = items.iter().map(String::as_str).collect();
                attributes(placed, &mut row);
            }
            Body::Interaction { placement, kind, action, item, attributes: placed } => {
                (row.placement, row.kind, row.action) = (placement, kind.as_str(), action.as_str());
                row.item = item.as_deref();
                attributes(placed, &mut row);
            }
            Body::ProductView { item } => row.item = Some(item.as_str()),
            Body::AddToCart { item, quantity, price } => {
                (row.item, row.quantity, row.price) = (Some(item.as_str()), *quantity, price.map(|money| money.0));
            }
            Body::Order { order_id, revenue, shipping, tax, lines } => {
                (row.order_id, row.revenue) = (order_id, revenue.0);
                (row.shipping, row.tax) = (shipping.map(|money| money.0), tax.map(|money| money.0));
                row.line_items = lines.iter().map(|line| line.item.as_str()).collect();
                row.line_quantities = lines.iter().map(|line| line.quantity).collect();
                row.line_prices = lines.iter().map(|line| line.price.0).collect();
            }
            Body::Refund { order_id, amount, cancel } => {
                (row.order_id, row.amount, row.cancel) = (order_id, amount.map(|money| money.0), u8::from(*cancel));
            }
            Body::Assignment { experiment, variant } => (row.experiment, row.variant) = (experiment, variant),
            Body::Goal { goal, value } => (row.goal, row.value) = (goal, value.map(|money| money.0)),
            Body::Journey { journey, action, channel, run_id } => {
                (row.journey, row.action) = (journey, action.as_str());
                (row.channel, row.run_id) = (channel.as_deref(), run_id.as_deref());
            }
            Body::SequenceStart { sequence, campaign } => {
                (row.sequence, row.campaign) = (Some(sequence.as_str()), campaign.as_deref());
            }
        }
        row
    }

    /// The row in ClickHouse's RowBinary format (columns in `schema::COLUMNS` order):
    /// strings as a varint length and bytes, integers little-endian, Nullable as a
    /// null byte then the value, arrays as a varint count then the elements.
    pub fn write_row_binary(&self, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, text: &str| {
            varint(out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        };
        let optional_string = |out: &mut Vec<u8>, text: Option<&str>| match text {
            Some(text) => {
                out.push(0);
                string(out, text);
            }
            None => out.push(1),
        };
        let optional_i64 = |out: &mut Vec<u8>, value: Option<i64>| match value {
            Some(value) => {
                out.push(0);
                out.extend_from_slice(&value.to_le_bytes());
            }
            None => out.push(1),
        };
        string(out, self.site);
        out.extend_from_slice(&self.day.to_le_bytes());
        string(out, self.visitor_id);
        out.extend_from_slice(&self.ts.to_le_bytes());
        string(out, self.event_id);
        string(out, self.type_name);
        optional_string(out, self.profile_id);
        optional_string(out, self.page_type);
        optional_string(out, self.url);
        string(out, self.placement);
        string(out, self.kind);
        string(out, self.action);
        optional_string(out, self.item);
        varint(out, self.items.len() as u64);
        self.items.iter().for_each(|item| string(out, item));
        for text in [self.impression_id, self.campaign, self.sequence, self.experience, self.label] {
            optional_string(out, text);
        }
        out.extend_from_slice(&self.quantity.to_le_bytes());
        optional_i64(out, self.price);
        string(out, self.order_id);
        out.extend_from_slice(&self.revenue.to_le_bytes());
        optional_i64(out, self.shipping);
        optional_i64(out, self.tax);
        varint(out, self.line_items.len() as u64);
        self.line_items.iter().for_each(|item| string(out, item));
        varint(out, self.line_quantities.len() as u64);
        self.line_quantities.iter().for_each(|quantity| out.extend_from_slice(&quantity.to_le_bytes()));
        varint(out, self.line_prices.len() as u64);
        self.line_prices.iter().for_each(|price| out.extend_from_slice(&price.to_le_bytes()));
        optional_i64(out, self.amount);
        out.push(self.cancel);
        string(out, self.experiment);
        string(out, self.variant);
        string(out, self.goal);
        optional_i64(out, self.value);
        string(out, self.journey);
        optional_string(out, self.channel);
        optional_string(out, self.run_id);
        optional_i64(out, self.sent_at);
    }
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
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

    #[test]
    fn row_binary_writes_varints_little_endian_and_null_flags() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let event = upshot_model::parse_event_line(
            r#"{"event_id":"e","type":"page_view","ts":86400001,"visitor_id":"v"}"#,
            &ParseContext { currency: "USD".into() },
        )
        .expect("valid");
        let mut row = Vec::new();
        RowValues::of("s", &event).write_row_binary(&mut row);
        // site "s", day 1, visitor "v", ts, event_id "e", type "page_view", three NULLs...
        assert_eq!(&row[..8], &[1, b's', 1, 0, 1, b'v', 0x01, 0x5c]);
        assert_eq!(&row[12..14], &[0, 0], "ts is 86,400,001 as Int64 little-endian");
    }
}
