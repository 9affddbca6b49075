//! Facts: what a backend that computes figures next to the data (ClickHouse, by
//! generated SQL) hands the engine, which folds them into a report. Counts keyed by
//! what they count in, and per-order facts that name each order, its session and its
//! touches (money is credited by the engine, in fixed point). One vocabulary for the
//! backend that produces them and the engine that reads them.

/// What a count fact counts in; its keys and values are read by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FactKind {
    /// values: seen (a web event in range), a recommendation visitor.
    Visitor = 1,
    /// Per in-range session, by date. values: 1, bounced, with an order, personalized,
    /// personalized with an order, recommendation, recommendation CTR.
    Session = 2,
    /// keys: placement, kind, campaign, sequence; by date. values: 1, items, clicked,
    /// recommendation.
    Impression = 3,
    /// keys as impressions; by date. values: click, recommendation, recommendation
    /// click, converted click.
    Interaction = 4,
    /// keys: placement, kind, item. values: clicks.
    ClickedItem = 5,
    /// keys: placement, kind (the placement's row). values: clicked, hovered sessions.
    PlacementSession = 61,
    /// keys: -, kind.
    KindSession = 62,
    /// keys: -, -, campaign.
    CampaignSession = 63,
    /// keys: -, -, -, sequence.
    SequenceSession = 64,
    /// keys: placement.
    ActivePlacement = 7,
    /// keys: experiment.
    ActiveExperiment = 8,
    /// keys: journey.
    ActiveJourney = 9,
    /// keys: journey, action, channel, "1" when it has a channel. values: events.
    Journey = 10,
    /// keys: sequence, campaign, person. values: starts.
    SequenceStart = 11,
    /// keys: label. values: visitors who used it, and of them converted.
    Topic = 13,
    /// keys: goal. values: goal events in range, the sum of their positive values and
    /// of their negative values' magnitudes (money units; values are unsigned).
    Goal = 14,
    /// keys: goal. values: sessions in range with one of its events, personalized ones.
    GoalSession = 15,
    /// keys: the crediting click's placement, kind, campaign, sequence. values:
    /// add_to_cart events in range credited to it.
    AddToCart = 16,
    /// keys: placement, kind, `items` length. values: recommendation impressions.
    ImpressionLength = 17,
    /// keys: placement, kind, 1-based position. values: recommendation clicks.
    ClickPosition = 18,
    /// keys: dimension (`device`, ...), value. values: sessions in range, bounced, with
    /// an order, personalized, recommendation, recommendation CTR.
    BreakdownSession = 19,
    /// A counted order (no range); keys: event_id, visitor. The payload is the order.
    Order = 20,
    /// An earliest assignment in range; keys: experiment, variant, visitor. The payload
    /// lists the orders that follow it.
    Experiment = 21,
}

impl FactKind {
    const ALL: [FactKind; 23] = [
        FactKind::Visitor,
        FactKind::Session,
        FactKind::Impression,
        FactKind::Interaction,
        FactKind::ClickedItem,
        FactKind::PlacementSession,
        FactKind::KindSession,
        FactKind::CampaignSession,
        FactKind::SequenceSession,
        FactKind::ActivePlacement,
        FactKind::ActiveExperiment,
        FactKind::ActiveJourney,
        FactKind::Journey,
        FactKind::SequenceStart,
        FactKind::Topic,
        FactKind::Goal,
        FactKind::GoalSession,
        FactKind::AddToCart,
        FactKind::ImpressionLength,
        FactKind::ClickPosition,
        FactKind::BreakdownSession,
        FactKind::Order,
        FactKind::Experiment,
    ];

    pub fn from_code(code: u64) -> Option<FactKind> {
        FactKind::ALL.into_iter().find(|kind| *kind as u64 == code)
    }
}

/// Values per fact.
pub const FACT_VALUES: usize = 7;

/// One summed fact: what it counts in, the date (1-based index into the range's dates,
/// 0 when it has none), its keys, and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountFact {
    pub kind: FactKind,
    pub day: u32,
    pub keys: [String; 4],
    pub values: [u64; FACT_VALUES],
}

/// A touch or a recommendation click an order looks back at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchFact {
    pub ts: i64,
    pub placement: String,
    pub kind: String,
    pub campaign: String,
    pub sequence: String,
    pub page_type: String,
    /// The clicked item ('' when none).
    pub item: String,
}

/// One counted order of a visitor the report looks at, with what crediting it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFact {
    pub visitor: String,
    pub event_id: String,
    pub order_id: String,
    pub ts: i64,
    /// The order event's revenue (money units), before refunds.
    pub revenue: i64,
    /// First ts of the order's session, and whether that session is personalized / a
    /// recommendation session (under the filter).
    pub session_first_ts: i64,
    pub session_personalized: bool,
    pub session_recommendation: bool,
    /// item, quantity, price (money units).
    pub lines: Vec<(String, u32, i64)>,
    /// Qualifying touches with `ts - attribution window <= touch.ts <= ts`, in (ts,
    /// event_id) order.
    pub touches: Vec<TouchFact>,
    /// Recommendation clicks within the recommendation window, in (ts, event_id) order.
    pub recommendation_clicks: Vec<TouchFact>,
    /// The visitor's variants (earliest assignment per experiment) assigned by `ts`.
    pub variants: Vec<(String, String)>,
    /// The attributes of the order's session (SPEC section 9.1), as (dimension, value).
    pub session_attributes: Vec<(String, String)>,
    /// Whether the report's segment filter keeps the order's session (it then counts
    /// and earns credit; either way its net revenue serves experiments).
    pub session_kept: bool,
}

/// A visitor whose earliest assignment to an experiment is in range, and its counted
/// orders from that assignment to the range's end (event ids), and those in the CUPED
/// lookback before the assignment (SPEC section 9.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentFact {
    pub experiment: String,
    pub variant: String,
    pub orders: Vec<String>,
    pub pre_orders: Vec<String>,
}

/// What a backend computed for one report range (its orders are shared by all ranges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub counts: Vec<CountFact>,
    pub experiments: Vec<ExperimentFact>,
}
