//! upshot's event model: the events of SPEC section 2, money, time, site settings, and
//! the validation that turns untrusted JSON into events. No IO happens here.

pub mod batch;
pub mod event;
pub mod facts;
pub mod json;
pub mod mapping;
pub mod money;
pub mod parse;
pub mod site;
pub mod time;
pub mod traffic;

pub use event::{Action, Body, Event, JourneyAction, KeyRole, Kind, OrderLine, PlacementAttributes, PAGE_TYPES};
pub use money::{Exact, Money};
pub use parse::{event_to_json, parse_event_line, parse_event_value, ParseContext, Rejection};
pub use site::{SettingError, Settings};
pub use traffic::{Channel, Device, Traffic};
