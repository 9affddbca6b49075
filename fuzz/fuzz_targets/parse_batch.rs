//! Any body a client may send: a JSON array or NDJSON of native, GA4 or Segment events.
//! Parsing must never panic, and every event it takes must survive the canonical JSON
//! round trip unchanged (what the store writes is what was validated).
#![no_main]

use libfuzzer_sys::fuzz_target;
use upshot_model::batch::parse_batch;
use upshot_model::{event_to_json, parse_event_value, ParseContext};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let context = ParseContext { currency: "USD".into() };
    if let Ok(events) = parse_batch(text, &context, 1_700_000_000_000, 10_000, &mut upshot_model::batch::Unbounded) {
        for event in events.into_iter().flatten() {
            let again = parse_event_value(&event_to_json(&event), &context).expect("a taken event re-validates");
            assert_eq!(again, event);
        }
    }
});
