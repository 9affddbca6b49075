//! The native event types of SPEC section 2, validated and owned.

use crate::money::Money;

/// The page types SPEC section 2 names (an event may carry any other).
pub const PAGE_TYPES: [&str; 8] =
    ["home", "category", "product", "search", "cart", "checkout", "confirmation", "other"];

/// Kinds of personalization element (SPEC section 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Recommendation,
    Popup,
    Notification,
    Block,
    Widget,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 6] =
        [Kind::Recommendation, Kind::Popup, Kind::Notification, Kind::Block, Kind::Widget, Kind::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Recommendation => "recommendation",
            Kind::Popup => "popup",
            Kind::Notification => "notification",
            Kind::Block => "block",
            Kind::Widget => "widget",
            Kind::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a visitor did with a placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Click,
    Hover,
    Discard,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Click, Action::Hover, Action::Discard];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Click => "click",
            Action::Hover => "hover",
            Action::Discard => "discard",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

/// A step of an automated journey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JourneyAction {
    Started,
    Completed,
    Cancelled,
    Notification,
    Converted,
}

impl JourneyAction {
    pub const ALL: [JourneyAction; 5] = [
        JourneyAction::Started,
        JourneyAction::Completed,
        JourneyAction::Cancelled,
        JourneyAction::Notification,
        JourneyAction::Converted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JourneyAction::Started => "started",
            JourneyAction::Completed => "completed",
            JourneyAction::Cancelled => "cancelled",
            JourneyAction::Notification => "notification",
            JourneyAction::Converted => "converted",
        }
    }

    pub fn parse(text: &str) -> Option<JourneyAction> {
        JourneyAction::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

/// Attributes shared by impressions and interactions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PlacementAttributes {
    pub impression_id: Option<String>,
    pub campaign: Option<String>,
    pub sequence: Option<String>,
    pub experience: Option<String>,
    pub label: Option<String>,
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLine {
    pub item: String,
    pub quantity: u32,
    pub price: Money,
}

/// The type-specific part of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    PageView,
    Impression { placement: String, kind: Kind, items: Vec<String>, attributes: PlacementAttributes },
    Interaction { placement: String, kind: Kind, action: Action, item: Option<String>, attributes: PlacementAttributes },
    ProductView { item: String },
    AddToCart { item: String, quantity: u32, price: Option<Money> },
    Order { order_id: String, revenue: Money, shipping: Option<Money>, tax: Option<Money>, lines: Vec<OrderLine> },
    Refund { order_id: String, amount: Option<Money>, cancel: bool },
    Assignment { experiment: String, variant: String },
    Goal { goal: String, value: Option<Money> },
    Journey { journey: String, action: JourneyAction, channel: Option<String>, run_id: Option<String> },
    SequenceStart { sequence: String, campaign: Option<String> },
}

impl Body {
    /// The `type` field's value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::PageView => "page_view",
            Body::Impression { .. } => "impression",
            Body::Interaction { .. } => "interaction",
            Body::ProductView { .. } => "product_view",
            Body::AddToCart { .. } => "add_to_cart",
            Body::Order { .. } => "order",
            Body::Refund { .. } => "refund",
            Body::Assignment { .. } => "assignment",
            Body::Goal { .. } => "goal",
            Body::Journey { .. } => "journey",
            Body::SequenceStart { .. } => "sequence_start",
        }
    }
}

/// Which of a site's keys an event came with (SPEC section 7). Ids taken through the
/// public key never deduplicate events sent with the secret key: each role has its own
/// set of taken ids. Events imported by the operator, and Shopify webhooks, count as
/// the secret key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyRole {
    /// For browsers: may send events (not orders or refunds when the site says so).
    Public,
    /// For the shop's backend and admins: may send everything and read reports.
    #[default]
    Secret,
}

/// A validated event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub event_id: String,
    /// Milliseconds since the Unix epoch (sub-millisecond digits truncated).
    pub ts: i64,
    /// Absent only on refunds.
    pub visitor_id: Option<String>,
    pub profile_id: Option<String>,
    /// Absent means `other`.
    pub page_type: Option<String>,
    pub url: Option<String>,
    pub sent_at: Option<i64>,
    /// SPEC section 9.1: device, referrer and UTM fields (any event type).
    pub traffic: crate::traffic::Traffic,
    pub body: Body,
    /// The key it was sent with: kept with the event so that deduplication can tell
    /// the roles apart after a restart. Not part of any figure.
    pub sent_with: KeyRole,
}

impl Event {
    /// About how many bytes the event holds in memory (itself and its strings): what a
    /// request's parsed events are bounded by.
    pub fn heap_bytes(&self) -> usize {
        /// An allocation's bookkeeping and rounding, on top of its bytes.
        const ALLOCATION: usize = 16;
        let text = |text: &String| text.capacity() + ALLOCATION;
        let optional = |value: &Option<String>| value.as_ref().map_or(0, text);
        let attributes = |a: &PlacementAttributes| {
            optional(&a.impression_id)
                + optional(&a.campaign)
                + optional(&a.sequence)
                + optional(&a.experience)
                + optional(&a.label)
        };
        let body = match &self.body {
            Body::PageView => 0,
            Body::Impression { placement, items, attributes: a, .. } => {
                text(placement) + items.iter().map(text).sum::<usize>() + items.capacity() * 24 + attributes(a)
            }
            Body::Interaction { placement, item, attributes: a, .. } => {
                text(placement) + optional(item) + attributes(a)
            }
            Body::ProductView { item } | Body::AddToCart { item, .. } => text(item),
            Body::Order { order_id, lines, .. } => {
                text(order_id)
                    + lines.iter().map(|line| text(&line.item)).sum::<usize>()
                    + lines.capacity() * std::mem::size_of::<OrderLine>()
            }
            Body::Refund { order_id, .. } => text(order_id),
            Body::Assignment { experiment, variant } => text(experiment) + text(variant),
            Body::Goal { goal, .. } => text(goal),
            Body::Journey { journey, channel, run_id, .. } => text(journey) + optional(channel) + optional(run_id),
            Body::SequenceStart { sequence, campaign } => text(sequence) + optional(campaign),
        };
        std::mem::size_of::<Event>()
            + text(&self.event_id)
            + optional(&self.visitor_id)
            + optional(&self.profile_id)
            + optional(&self.page_type)
            + optional(&self.url)
            + optional(&self.traffic.referrer)
            + optional(&self.traffic.utm_source)
            + optional(&self.traffic.utm_medium)
            + optional(&self.traffic.utm_campaign)
            + body
    }

    pub fn page_type_or_other(&self) -> &str {
        self.page_type.as_deref().unwrap_or("other")
    }
}
