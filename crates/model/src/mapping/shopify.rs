//! Shopify's order paid, refund and cancel webhooks as native events (the signature is
//! checked by the collector before). Each event's id comes from what Shopify signs (the
//! order's id, the refund's id), not from the unsigned `X-Shopify-Webhook-Id`: a
//! replayed webhook with a fresh webhook id is still a duplicate. Revenue is the
//! subtotal after discounts, without shipping and tax.

use serde_json::{json, Map, Value};

use crate::money::MONEY_UNITS_PER_CURRENCY_UNIT;
use crate::Money;

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
/// `webhook_id` names the event only when the payload lacks the id it is named after.
pub fn map_webhook(topic: &str, payload: &Map<String, Value>, webhook_id: &str) -> Option<Value> {
    let mut native = Map::new();
    let own_id = |field: &str, prefix: &str| {
        let id = text_of(payload.get(field)).and_then(|id| id.as_str().map(str::to_string));
        match id {
            Some(id) => format!("shopify-{prefix}-{id}"),
            None => format!("shopify-{prefix}-webhook-{webhook_id}"),
        }
    };
    match topic {
        "orders/paid" | "orders/create" => {
            native.insert("event_id".into(), Value::from(own_id("id", "order")));
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
            native.insert("event_id".into(), Value::from(own_id("id", "refund")));
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
            native.insert("event_id".into(), Value::from(own_id("id", "cancel")));
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

    use crate::{parse_event_value, ParseContext};

    fn parse(native: Value) -> crate::Event {
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
        let ids = (event.event_id.as_str(), event.visitor_id.as_deref());
        assert_eq!(ids, ("shopify-order-820982911946154508", Some("v-1")), "named after the order, not the webhook");
        assert_eq!(event.profile_id.as_deref(), Some("115310627314723954"));
        let crate::Body::Order { order_id, revenue, shipping, tax, lines } = event.body else { panic!("an order") };
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
            crate::Body::Refund { order_id: "9".into(), amount: Some(Money(147_500)), cancel: false }
        );
        let cancel = json!({"id": 9, "cancelled_at": "2024-05-03T00:00:00Z"});
        let event =
            parse(map_webhook("orders/cancelled", cancel.as_object().expect("an object"), "c").expect("mapped"));
        assert_eq!(event.body, crate::Body::Refund { order_id: "9".into(), amount: None, cancel: true });
        assert!(map_webhook("products/update", &Map::new(), "x").is_none());
    }
}
