//! A seeded, deterministic generator of a realistic shop's events: visitors and their
//! sessions, placements of every kind, recommendations with items, orders with lines,
//! refunds and cancellations, duplicates, an experiment with a chosen true lift,
//! journeys and campaigns. The same options always give the same events.

mod rng;
mod shop;

pub use rng::SplitMix64;
pub use shop::{GenOptions, Generator};

use upshot_model::{parse_event_value, Event, ParseContext};

/// The generated shop as validated events, keeping the first event of each id as a
/// store takes them (the generator repeats a few, as retrying senders do).
pub fn generate_events(options: GenOptions) -> Vec<Event> {
    let context = ParseContext { currency: options.currency.clone() };
    let mut seen = std::collections::HashSet::new();
    let mut events = Vec::new();
    Generator::new(options).run(|value| {
        let event = parse_event_value(&value, &context).expect("the generator writes only valid events");
        if seen.insert(event.event_id.clone()) {
            events.push(event);
        }
    });
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_generates_no_event_in_the_future() {
        let start_ms = 1_714_521_600_000;
        let end_ms = start_ms + 20 * 86_400_000;
        let unbounded = generate_events(GenOptions { visitors: 300, days: 20, start_ms, ..GenOptions::default() });
        assert!(unbounded.iter().any(|event| event.ts > end_ms), "visitors come back after the period");
        let bounded = generate_events(GenOptions {
            visitors: 300,
            days: 20,
            start_ms,
            end_ms: Some(end_ms),
            ..GenOptions::default()
        });
        assert!(!bounded.is_empty() && bounded.iter().all(|event| event.ts <= end_ms));
    }
}
