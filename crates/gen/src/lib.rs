//! A seeded, deterministic generator of a realistic shop's events: visitors and their
//! sessions, placements of every kind, recommendations with items, orders with lines,
//! refunds and cancellations, duplicates, an experiment with a chosen true lift,
//! journeys and campaigns. The same options always give the same events.

mod rng;
mod shop;

pub use rng::SplitMix64;
pub use shop::{GenOptions, Generator};
