//! Session attributes and breakdowns (SPEC sections 9.1 and 9.2): the four attributes
//! of a session, and what a session in range or an order in range adds to the rows of
//! its attributes. The per-visitor pass and the fold of a backend's facts both call
//! these, so each rule lives here once.

use upshot_model::{Channel, Exact};

use crate::accumulate::{Breakdown, Totals};
use crate::dataset::{Landing, Sym};

/// The segments offered (the dashboard's control) and kept ready in the day partials:
/// every value of each dimension, a landing page type among those of SPEC section 2.
pub const OFFERED_SEGMENTS: [(&str, &[&str]); 4] = [
    ("device", &["desktop", "mobile", "tablet", "other", "unknown"]),
    ("visitor_type", &["new", "returning"]),
    ("channel", &["paid", "email", "social", "search", "campaign", "referral", "direct"]),
    ("landing_page_type", &upshot_model::PAGE_TYPES),
];

/// A session's four attributes (SPEC section 9.1): three from its landing event (its
/// first page_view by (ts, event_id), or its first web event without one), and whether
/// it is the visitor's first session over all data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionAttributes {
    pub landing: Landing,
    pub landing_page_type: Sym,
    pub new: bool,
}

impl SessionAttributes {
    pub fn rows(&self) -> [Breakdown; 4] {
        [
            Breakdown::Device(self.landing.device),
            Breakdown::VisitorType { new: self.new },
            Breakdown::Channel(self.landing.channel),
            Breakdown::LandingPageType(self.landing_page_type),
        ]
    }
}

/// What one session in range is, for its breakdown rows.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionFlags {
    pub bounced: bool,
    pub with_order: bool,
    pub personalized: bool,
    pub recommendation: bool,
    pub recommendation_ctr: bool,
}

/// Adds `sessions` sessions alike to each row of `rows`.
pub fn add_sessions(totals: &mut Totals, rows: &[Breakdown], sessions: u64, flags: &[u64; 5]) {
    for row in rows {
        let figures = totals.breakdowns.entry(*row).or_default();
        figures.sessions += sessions;
        figures.bounced_sessions += flags[0];
        figures.sessions_with_order += flags[1];
        figures.personalized_sessions += flags[2];
        figures.recommendation_sessions += flags[3];
        figures.recommendation_ctr_sessions += flags[4];
    }
}

/// Adds one session in range to the rows of its attributes.
pub fn add_session(totals: &mut Totals, attributes: &SessionAttributes, flags: SessionFlags) {
    let counts = [flags.bounced, flags.with_order, flags.personalized, flags.recommendation, flags.recommendation_ctr]
        .map(u64::from);
    add_sessions(totals, &attributes.rows(), 1, &counts);
}

/// Adds one order in range (net revenue `net`, order-level credit kept by the filter
/// `credit`) to the rows of its own session's attributes.
pub fn add_order(totals: &mut Totals, rows: &[Breakdown], net: Exact, credit: (i128, Exact)) {
    for row in rows {
        let figures = totals.breakdowns.entry(*row).or_default();
        figures.orders += 1;
        figures.revenue += net;
        figures.attributed_shares += credit.0;
        figures.attributed_value += credit.1;
    }
}

/// A row's dimension and its value as the report names them (`landing` resolves a
/// landing page type's symbol).
pub fn name(row: Breakdown, page_type: impl Fn(Sym) -> String) -> (usize, String) {
    match row {
        Breakdown::Device(device) => (0, device.map_or("unknown", |device| device.as_str()).to_string()),
        Breakdown::VisitorType { new } => (1, if new { "new" } else { "returning" }.to_string()),
        Breakdown::Channel(channel) => (2, channel.as_str().to_string()),
        Breakdown::LandingPageType(page) => (3, page_type(page)),
    }
}

/// The row a dimension and value name, for facts and the segment filter
/// (`landing_page_type` values become symbols through `page_type`); `None` for an
/// unknown dimension or value.
pub fn parse(dimension: &str, value: &str, page_type: impl FnOnce(&str) -> Sym) -> Option<Breakdown> {
    Some(match dimension {
        "device" if value == "unknown" => Breakdown::Device(None),
        "device" => Breakdown::Device(Some(upshot_model::Device::parse(value)?)),
        "visitor_type" => Breakdown::VisitorType {
            new: match value {
                "new" => true,
                "returning" => false,
                _ => return None,
            },
        },
        "channel" => Breakdown::Channel(Channel::parse(value)?),
        "landing_page_type" => Breakdown::LandingPageType(page_type(value)),
        _ => return None,
    })
}
