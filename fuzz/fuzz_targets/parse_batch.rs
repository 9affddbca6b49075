//! Any body a client may send: a JSON array or NDJSON of native, GA4 or Segment events,
//! also as Segment's `/v1/page` reads it. Parsing must never panic, every event it takes
//! must survive the canonical JSON round trip unchanged (what the store writes is what
//! was validated), and reading its channel (hosts of any referrer and url) never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upshot_model::batch::parse_batch_with;
use upshot_model::{event_to_json, parse_event_value, ParseContext};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let context = ParseContext { currency: "USD".into() };
    let segment_call = (data.first().copied().unwrap_or(0) % 2 == 0).then_some("page");
    let budget = &mut upshot_model::batch::Unbounded;
    if let Ok(events) = parse_batch_with(text, &context, 1_700_000_000_000, 10_000, budget, segment_call) {
        for event in events.into_iter().flatten() {
            let _ = upshot_model::traffic::channel(&event.traffic, event.url.as_deref());
            let again = parse_event_value(&event_to_json(&event), &context).expect("a taken event re-validates");
            assert_eq!(again, event);
        }
    }
});
