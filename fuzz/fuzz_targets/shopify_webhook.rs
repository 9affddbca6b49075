//! Any Shopify webhook body under any topic: the mapping must never panic, and what it
//! maps must either validate or be rejected with a reason, never crash the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upshot_model::{parse_event_value, ParseContext};
use upshot_model::mapping::shopify::map_webhook;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let topic = ["orders/paid", "orders/create", "refunds/create", "orders/cancelled"][usize::from(selector) % 4];
    let Ok(serde_json::Value::Object(payload)) = serde_json::from_slice(body) else { return };
    if let Some(native) = map_webhook(topic, &payload, "shopify-fuzz") {
        let _ = parse_event_value(&native, &ParseContext { currency: "USD".into() });
    }
});
