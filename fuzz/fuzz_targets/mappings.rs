//! GA4 and Segment payloads shaped as their senders shape them, with fuzzed contents:
//! the mappings must never panic, and every event they take must survive the canonical
//! JSON round trip unchanged. (Random bytes rarely reach the mappings' deeper branches
//! through `parse_batch`; here the outer shape is fixed and the insides are fuzzed.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use upshot_model::mapping::parse_any_value;
use upshot_model::{event_to_json, parse_event_value, ParseContext};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let Ok(inner) = serde_json::from_slice::<Value>(body) else { return };
    let wrapped = match selector % 4 {
        // A GA4 Measurement Protocol body around fuzzed events.
        0 => json!({"client_id": "c.1", "events": inner}),
        // One GA4 event, its name and params fuzzed.
        1 => json!({"client_id": "c.1", "user_id": "u", "events": [inner]}),
        // A Segment batch around fuzzed calls.
        2 => json!({"batch": inner}),
        // One Segment track call with fuzzed properties.
        _ => json!({"type": "track", "event": "Order Completed", "anonymousId": "a", "properties": inner}),
    };
    let context = ParseContext { currency: "USD".into() };
    for event in parse_any_value(&wrapped, &context, 1_700_000_000_000).into_iter().flatten() {
        let again = parse_event_value(&event_to_json(&event), &context).expect("a taken event re-validates");
        assert_eq!(again, event);
    }
});
