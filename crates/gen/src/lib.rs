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
