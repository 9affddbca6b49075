//! Validation of untrusted JSON into `Event`s, and the canonical JSON form of an event.
//!
//! Every rejection names the field at fault (SPEC section 2). JSON `null` counts as
//! absent; fields unknown to the event's type are ignored.

use serde_json::{Map, Value};

use crate::event::{Action, Body, Event, JourneyAction, KeyRole, Kind, OrderLine, PlacementAttributes};
use crate::money::{Money, MoneyError};
use crate::time::parse_timestamp;
use crate::traffic::{Device, Traffic, TRAFFIC_CHARS_MAX};

/// Longest id (`event_id`, `visitor_id`), in Unicode code points (SPEC section 2).
pub const ID_CHARS_MAX: usize = 128;
/// Longest free-text field (placement, campaign, label, ...), in code points.
pub const TEXT_CHARS_MAX: usize = 1024;
/// Longest `url`, in code points.
pub const URL_CHARS_MAX: usize = 8192;
/// Most entries in an impression's `items` or an order's `items`.
pub const ITEMS_MAX: usize = 1000;
/// Largest single NDJSON line, in bytes.
pub const LINE_BYTES_MAX: usize = 1 << 20;

/// Why an event was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Rejection {
    /// The field at fault (`items[2].price`), or `event` for the event as a whole.
    pub field: String,
    pub reason: String,
}

impl Rejection {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
        Rejection { field: field.into(), reason: reason.into() }
    }
}

/// What validation needs to know about the site.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// The site's ISO 4217 currency; an order in another currency is rejected.
    pub currency: String,
}

/// Parses one NDJSON line (already known not to be blank).
pub fn parse_event_line(line: &str, context: &ParseContext) -> Result<Event, Rejection> {
    if line.len() > LINE_BYTES_MAX {
        return Err(Rejection::new("event", format!("line longer than {LINE_BYTES_MAX} bytes")));
    }
    let line = crate::json::without_byte_order_mark(line);
    let value =
        crate::json::parse_strict(line).map_err(|error| Rejection::new("event", format!("malformed JSON: {error}")))?;
    parse_event_value(&value, context)
}

/// Validates one JSON value as an event.
pub fn parse_event_value(value: &Value, context: &ParseContext) -> Result<Event, Rejection> {
    let object = value.as_object().ok_or_else(|| Rejection::new("event", "not a JSON object"))?;
    let fields = Fields { object, prefix: "" };
    let type_name = fields.required_text("type", TEXT_CHARS_MAX)?;
    let event_id = fields.required_text("event_id", ID_CHARS_MAX)?;
    let ts = fields.timestamp("ts")?.ok_or_else(|| Rejection::new("ts", "missing"))?;
    let visitor_id = fields.optional_text("visitor_id", ID_CHARS_MAX)?;
    if visitor_id.is_none() && type_name != "refund" {
        return Err(Rejection::new("visitor_id", "missing"));
    }
    let body = parse_body(&type_name, &fields, context)?;
    Ok(Event {
        event_id,
        ts,
        visitor_id,
        profile_id: fields.optional_text("profile_id", TEXT_CHARS_MAX)?,
        page_type: fields.any_text("page_type", TEXT_CHARS_MAX)?,
        url: fields.optional_text("url", URL_CHARS_MAX)?,
        sent_at: fields.timestamp("sent_at")?,
        traffic: parse_traffic(&fields)?,
        body,
        sent_with: KeyRole::Secret,
    })
}

/// The traffic fields of SPEC section 9.1: strings of at most 512 code points (an empty
/// one is present), `device` one of four values (case-sensitive).
fn parse_traffic(fields: &Fields) -> Result<Traffic, Rejection> {
    let device = match fields.optional_text("device", TRAFFIC_CHARS_MAX)? {
        None => None,
        Some(text) => Some(Device::parse(&text).ok_or_else(|| {
            Rejection::new("device", format!("{text:?} is not one of desktop, mobile, tablet, other"))
        })?),
    };
    Ok(Traffic {
        device,
        referrer: fields.any_text("referrer", TRAFFIC_CHARS_MAX)?,
        utm_source: fields.any_text("utm_source", TRAFFIC_CHARS_MAX)?,
        utm_medium: fields.any_text("utm_medium", TRAFFIC_CHARS_MAX)?,
        utm_campaign: fields.any_text("utm_campaign", TRAFFIC_CHARS_MAX)?,
    })
}

fn parse_body(type_name: &str, fields: &Fields, context: &ParseContext) -> Result<Body, Rejection> {
    let body = match type_name {
        "page_view" => Body::PageView,
        "impression" => Body::Impression {
            placement: fields.required_text("placement", TEXT_CHARS_MAX)?,
            kind: fields.kind()?,
            items: fields.item_ids("items")?,
            attributes: fields.placement_attributes()?,
        },
        "interaction" => Body::Interaction {
            placement: fields.required_text("placement", TEXT_CHARS_MAX)?,
            kind: fields.kind()?,
            action: fields.enumerated("action", Action::parse, "click, hover, discard")?,
            item: fields.optional_text("item", TEXT_CHARS_MAX)?,
            attributes: fields.placement_attributes()?,
        },
        "product_view" => Body::ProductView { item: fields.required_text("item", TEXT_CHARS_MAX)? },
        "add_to_cart" => Body::AddToCart {
            item: fields.required_text("item", TEXT_CHARS_MAX)?,
            quantity: fields.quantity("quantity")?,
            price: fields.money("price", Sign::NonNegative)?,
        },
        "order" => parse_order(fields, context)?,
        "refund" => Body::Refund {
            order_id: fields.required_text("order_id", TEXT_CHARS_MAX)?,
            amount: fields.money("amount", Sign::NonNegative)?,
            cancel: fields.boolean("cancel")?.unwrap_or(false),
        },
        "assignment" => Body::Assignment {
            experiment: fields.required_text("experiment", TEXT_CHARS_MAX)?,
            variant: fields.required_text("variant", TEXT_CHARS_MAX)?,
        },
        "goal" => {
            Body::Goal { goal: fields.required_text("goal", TEXT_CHARS_MAX)?, value: fields.money("value", Sign::Any)? }
        }
        "journey" => Body::Journey {
            journey: fields.required_text("journey", TEXT_CHARS_MAX)?,
            action: fields.enumerated(
                "action",
                JourneyAction::parse,
                "started, completed, cancelled, notification, converted",
            )?,
            channel: fields.any_text("channel", TEXT_CHARS_MAX)?,
            run_id: fields.optional_text("run_id", TEXT_CHARS_MAX)?,
        },
        "sequence_start" => Body::SequenceStart {
            sequence: fields.required_text("sequence", TEXT_CHARS_MAX)?,
            campaign: fields.optional_text("campaign", TEXT_CHARS_MAX)?,
        },
        other => {
            return Err(Rejection::new(
                "type",
                format!(
                    "unknown type {other:?} (expected page_view, impression, interaction, \
                     product_view, add_to_cart, order, refund, assignment, goal, journey, \
                     sequence_start)"
                ),
            ))
        }
    };
    Ok(body)
}

fn parse_order(fields: &Fields, context: &ParseContext) -> Result<Body, Rejection> {
    let order_id = fields.required_text("order_id", TEXT_CHARS_MAX)?;
    let revenue = fields.money("revenue", Sign::NonNegative)?.ok_or_else(|| Rejection::new("revenue", "missing"))?;
    if let Some(currency) = fields.optional_text("currency", TEXT_CHARS_MAX)? {
        if currency != context.currency {
            return Err(Rejection::new(
                "currency",
                format!("{currency:?} differs from the site's currency {:?}", context.currency),
            ));
        }
    }
    let mut lines = Vec::new();
    if let Some(items) = fields.array("items")? {
        for (index, entry) in items.iter().enumerate() {
            let prefix = format!("items[{index}]");
            let object = entry.as_object().ok_or_else(|| Rejection::new(prefix.clone(), "expected an object"))?;
            let line = Fields { object, prefix: &prefix };
            lines.push(OrderLine {
                item: line.required_text("item", TEXT_CHARS_MAX)?,
                quantity: line.quantity("quantity")?,
                price: line
                    .money("price", Sign::NonNegative)?
                    .ok_or_else(|| Rejection::new(line.name("price"), "missing"))?,
            });
        }
    }
    Ok(Body::Order {
        order_id,
        revenue,
        shipping: fields.money("shipping", Sign::Any)?,
        tax: fields.money("tax", Sign::Any)?,
        lines,
    })
}

#[derive(Clone, Copy)]
enum Sign {
    Any,
    NonNegative,
}

/// Typed access to an object's fields; every error names the field with its prefix.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: &'a str,
}

impl Fields<'_> {
    fn name(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }

    /// The field's value, with JSON null read as absent.
    fn get(&self, field: &str) -> Option<&Value> {
        self.object.get(field).filter(|value| !value.is_null())
    }

    fn optional_text(&self, field: &str, chars_max: usize) -> Result<Option<String>, Rejection> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let text = value.as_str().ok_or_else(|| Rejection::new(self.name(field), "expected a string"))?;
        check_length(text, chars_max).map_err(|reason| Rejection::new(self.name(field), reason))?;
        Ok(Some(text.to_string()))
    }

    /// Like `optional_text`, but the empty string is a value too (SPEC: `page_type`
    /// and `channel` accept any string).
    fn any_text(&self, field: &str, chars_max: usize) -> Result<Option<String>, Rejection> {
        match self.get(field) {
            Some(Value::String(text)) if text.is_empty() => Ok(Some(String::new())),
            _ => self.optional_text(field, chars_max),
        }
    }

    fn required_text(&self, field: &str, chars_max: usize) -> Result<String, Rejection> {
        self.optional_text(field, chars_max)?.ok_or_else(|| Rejection::new(self.name(field), "missing"))
    }

    fn enumerated<T>(&self, field: &str, parse: fn(&str) -> Option<T>, expected: &str) -> Result<T, Rejection> {
        let text = self.required_text(field, TEXT_CHARS_MAX)?;
        parse(&text).ok_or_else(|| Rejection::new(self.name(field), format!("{text:?} is not one of {expected}")))
    }

    fn kind(&self) -> Result<Kind, Rejection> {
        self.enumerated("kind", Kind::parse, "recommendation, popup, notification, block, widget, other")
    }

    fn placement_attributes(&self) -> Result<PlacementAttributes, Rejection> {
        Ok(PlacementAttributes {
            impression_id: self.optional_text("impression_id", TEXT_CHARS_MAX)?,
            campaign: self.optional_text("campaign", TEXT_CHARS_MAX)?,
            sequence: self.optional_text("sequence", TEXT_CHARS_MAX)?,
            experience: self.optional_text("experience", TEXT_CHARS_MAX)?,
            label: self.optional_text("label", TEXT_CHARS_MAX)?,
        })
    }

    fn array(&self, field: &str) -> Result<Option<&Vec<Value>>, Rejection> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let array = value.as_array().ok_or_else(|| Rejection::new(self.name(field), "expected an array"))?;
        if array.len() > ITEMS_MAX {
            return Err(Rejection::new(self.name(field), format!("more than {ITEMS_MAX} entries")));
        }
        Ok(Some(array))
    }

    fn item_ids(&self, field: &str) -> Result<Vec<String>, Rejection> {
        let Some(array) = self.array(field)? else {
            return Ok(Vec::new());
        };
        array
            .iter()
            .enumerate()
            .map(|(index, value)| {
                let name = || format!("{}[{index}]", self.name(field));
                let text = value.as_str().ok_or_else(|| Rejection::new(name(), "expected a product id string"))?;
                check_length(text, TEXT_CHARS_MAX).map_err(|reason| Rejection::new(name(), reason))?;
                Ok(text.to_string())
            })
            .collect()
    }

    fn boolean(&self, field: &str) -> Result<Option<bool>, Rejection> {
        self.get(field)
            .map(|value| value.as_bool().ok_or_else(|| Rejection::new(self.name(field), "expected true or false")))
            .transpose()
    }

    /// A non-negative whole number, 1 when absent.
    fn quantity(&self, field: &str) -> Result<u32, Rejection> {
        let Some(value) = self.get(field) else {
            return Ok(1);
        };
        let whole = match value.as_u64() {
            Some(quantity) => Some(quantity),
            // 2.0 is a whole number too, however the sender wrote it.
            None => {
                value.as_f64().filter(|q| q.fract() == 0.0 && *q >= 0.0 && *q <= f64::from(u32::MAX)).map(|q| q as u64)
            }
        };
        whole
            .and_then(|quantity| u32::try_from(quantity).ok())
            .ok_or_else(|| Rejection::new(self.name(field), "expected a whole number >= 0"))
    }

    fn money(&self, field: &str, sign: Sign) -> Result<Option<Money>, Rejection> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Number(number) => match number.as_f64() {
                Some(float) => Money::from_json_number(float),
                None => Err(MoneyError::Syntax),
            },
            Value::String(text) => Money::parse_decimal(text),
            _ => return Err(Rejection::new(self.name(field), "expected a number or a decimal string")),
        };
        let money = parsed.map_err(|error| Rejection::new(self.name(field), error.to_string()))?;
        if matches!(sign, Sign::NonNegative) && money.0 < 0 {
            return Err(Rejection::new(self.name(field), "must be >= 0"));
        }
        Ok(Some(money))
    }

    fn timestamp(&self, field: &str) -> Result<Option<i64>, Rejection> {
        self.get(field)
            .map(|value| parse_timestamp(value).map_err(|reason| Rejection::new(self.name(field), reason)))
            .transpose()
    }
}

fn check_length(text: &str, chars_max: usize) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".to_string());
    }
    // Byte length bounds the code-point count from above, so most strings skip the count.
    if text.len() > chars_max && text.chars().count() > chars_max {
        return Err(format!("longer than {chars_max} characters"));
    }
    Ok(())
}

/// The canonical JSON form of a validated event: native field names, `ts` in integer
/// milliseconds, money as decimal strings. Parsing it again gives the same event.
pub fn event_to_json(event: &Event) -> Value {
    let mut object = Map::new();
    let mut put = |key: &str, value: Value| {
        object.insert(key.to_string(), value);
    };
    put("event_id", Value::from(event.event_id.as_str()));
    put("type", Value::from(event.body.type_name()));
    put("ts", Value::from(event.ts));
    let optional = |text: &Option<String>| text.as_deref().map(Value::from);
    for (key, value) in [
        ("visitor_id", optional(&event.visitor_id)),
        ("profile_id", optional(&event.profile_id)),
        ("page_type", optional(&event.page_type)),
        ("url", optional(&event.url)),
        ("sent_at", event.sent_at.map(Value::from)),
        ("device", event.traffic.device.map(|device| Value::from(device.as_str()))),
        ("referrer", optional(&event.traffic.referrer)),
        ("utm_source", optional(&event.traffic.utm_source)),
        ("utm_medium", optional(&event.traffic.utm_medium)),
        ("utm_campaign", optional(&event.traffic.utm_campaign)),
    ] {
        if let Some(value) = value {
            put(key, value);
        }
    }
    body_to_json(&event.body, &mut object);
    Value::Object(object)
}

fn body_to_json(body: &Body, object: &mut Map<String, Value>) {
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            object.insert(key.to_string(), value);
        }
    };
    let text = |text: &str| Some(Value::from(text));
    let optional = |text: &Option<String>| text.as_deref().map(Value::from);
    let money = |money: &Option<Money>| money.map(|m| Value::from(m.to_string()));
    let attributes = |put: &mut dyn FnMut(&str, Option<Value>), a: &PlacementAttributes| {
        put("impression_id", optional(&a.impression_id));
        put("campaign", optional(&a.campaign));
        put("sequence", optional(&a.sequence));
        put("experience", optional(&a.experience));
        put("label", optional(&a.label));
    };
    match body {
        Body::PageView => {}
        Body::Impression { placement, kind, items, attributes: a } => {
            put("placement", text(placement));
            put("kind", text(kind.as_str()));
            if !items.is_empty() {
                put("items", Some(Value::from(items.clone())));
            }
            attributes(&mut put, a);
        }
        Body::Interaction { placement, kind, action, item, attributes: a } => {
            put("placement", text(placement));
            put("kind", text(kind.as_str()));
            put("action", text(action.as_str()));
            put("item", optional(item));
            attributes(&mut put, a);
        }
        Body::ProductView { item } => put("item", text(item)),
        Body::AddToCart { item, quantity, price } => {
            put("item", text(item));
            put("quantity", Some(Value::from(*quantity)));
            put("price", money(price));
        }
        Body::Order { order_id, revenue, shipping, tax, lines } => {
            put("order_id", text(order_id));
            put("revenue", money(&Some(*revenue)));
            put("shipping", money(shipping));
            put("tax", money(tax));
            let lines: Vec<Value> = lines
                .iter()
                .map(|line| {
                    serde_json::json!({"item": line.item, "quantity": line.quantity,
                        "price": line.price.to_string()})
                })
                .collect();
            put("items", Some(Value::from(lines)));
        }
        Body::Refund { order_id, amount, cancel } => {
            put("order_id", text(order_id));
            put("amount", money(amount));
            put("cancel", Some(Value::from(*cancel)));
        }
        Body::Assignment { experiment, variant } => {
            put("experiment", text(experiment));
            put("variant", text(variant));
        }
        Body::Goal { goal, value } => {
            put("goal", text(goal));
            put("value", money(value));
        }
        Body::Journey { journey, action, channel, run_id } => {
            put("journey", text(journey));
            put("action", text(action.as_str()));
            put("channel", optional(channel));
            put("run_id", optional(run_id));
        }
        Body::SequenceStart { sequence, campaign } => {
            put("sequence", text(sequence));
            put("campaign", optional(campaign));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Event, Rejection> {
        parse_event_line(line, &ParseContext { currency: "USD".into() })
    }

    #[test]
    fn rejections_name_the_field() {
        let field = |line: &str| parse(line).map(|_| ()).expect_err("the line is invalid").field;
        assert_eq!(field(r#"{"type":"page_view","ts":1}"#), "event_id");
        assert_eq!(field(r#"{"event_id":"e","type":"page_view","ts":1}"#), "visitor_id");
        assert_eq!(field(r#"{"event_id":"","type":"page_view","ts":1,"visitor_id":"v"}"#), "event_id");
        let long = "x".repeat(129);
        assert_eq!(
            field(&format!(r#"{{"event_id":"{long}","type":"page_view","ts":1,"visitor_id":"v"}}"#)),
            "event_id"
        );
        assert_eq!(
            field(
                r#"{"event_id":"e","type":"interaction","ts":1,"visitor_id":"v","placement":"p","kind":"popup","action":"Click"}"#
            ),
            "action"
        );
        assert_eq!(
            field(r#"{"event_id":"e","type":"order","ts":1,"visitor_id":"v","order_id":"o","revenue":-1}"#),
            "revenue"
        );
        assert_eq!(
            field(
                r#"{"event_id":"e","type":"order","ts":1,"visitor_id":"v","order_id":"o","revenue":1,"items":[{"item":"i","price":1,"quantity":1.5}]}"#
            ),
            "items[0].quantity"
        );
        assert_eq!(field(r#"{"event_id":"e","type":"refund","ts":1,"order_id":"o","cancel":"yes"}"#), "cancel");
        assert_eq!(field(r#"[1]"#), "event");
    }

    #[test]
    fn lenient_where_the_spec_is() {
        let event = parse(
            r#"{"event_id":"e","type":"page_view","ts":1,"visitor_id":"v","page_type":"","campaign":5,"url":null}"#,
        )
        .expect("unknown fields are ignored, empty page types accepted");
        assert_eq!(event.page_type.as_deref(), Some(""));
        let order = parse(r#"{"event_id":"e","type":"order","ts":1,"visitor_id":"v","order_id":"o","revenue":"10","items":[{"item":"i","price":"5","quantity":2.0}]}"#)
            .expect("2.0 is a whole quantity");
        let Body::Order { lines, .. } = order.body else { panic!("an order") };
        assert_eq!(lines[0].quantity, 2);
        let refund = parse(r#"{"event_id":"e","type":"refund","ts":"2024-01-01T00:00:00Z","order_id":"o"}"#)
            .expect("refunds need no visitor");
        assert!(refund.visitor_id.is_none());
    }

    #[test]
    fn traffic_fields_are_validated_on_every_type() {
        let with = |fields: &str| {
            parse(&format!(r#"{{"event_id":"e","type":"goal","ts":1,"visitor_id":"v","goal":"g",{fields}}}"#))
        };
        let event = with(r#""device":"tablet","referrer":"","utm_source":"","utm_medium":"cpc","utm_campaign":"c""#)
            .expect("valid");
        assert_eq!(event.traffic.device, Some(crate::Device::Tablet));
        assert_eq!((event.traffic.referrer.as_deref(), event.traffic.utm_source.as_deref()), (Some(""), Some("")));
        let rejection = with(r#""device":"Mobile""#).expect_err("device is case-sensitive");
        assert_eq!(rejection.field, "device");
        assert!(rejection.reason.contains("desktop, mobile, tablet, other"), "{}", rejection.reason);
        let long = "é".repeat(513);
        assert_eq!(with(&format!(r#""utm_campaign":"{long}""#)).expect_err("too long").field, "utm_campaign");
        assert!(with(&format!(r#""utm_campaign":"{}""#, "é".repeat(512))).is_ok(), "512 code points fit");
        assert_eq!(with(r#""referrer":5"#).expect_err("not a string").field, "referrer");
        // They survive the canonical JSON form.
        let again = parse(&event_to_json(&event).to_string()).expect("canonical form is valid");
        assert_eq!(again, event);
    }

    #[test]
    fn canonical_json_parses_back_to_the_same_event() {
        let line = r#"{"event_id":"e","type":"order","ts":"2024-01-01T00:00:00.123456Z","visitor_id":"v","order_id":"o","revenue":19.99,"shipping":"4.95","items":[{"item":"i","price":9.995,"quantity":2}]}"#;
        let event = parse(line).expect("valid");
        assert_eq!(event.ts, 1_704_067_200_123);
        let again = parse(&event_to_json(&event).to_string()).expect("canonical form is valid");
        assert_eq!(again, event);
    }
}
