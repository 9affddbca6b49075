//! The typed report: every figure of SPEC section 5, named and shaped as section 8.
//! Money stays exact here; it is rounded half-even to cents only when serialized.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use upshot_model::Exact;

use crate::attribution::SHARE_ONE;

/// Exact money, serialized rounded half-even to 2 decimals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(pub Exact);

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let cents = self.0.round_to_cents();
        if cents % 100 == 0 {
            serializer.serialize_i64((cents / 100) as i64)
        } else {
            serializer.serialize_f64(cents as f64 / 100.0)
        }
    }
}

/// A sum of order shares (fixed point); whole numbers serialize as integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shares(pub i128);

impl Shares {
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / SHARE_ONE as f64
    }
}

impl Serialize for Shares {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % SHARE_ONE == 0 {
            serializer.serialize_i64((self.0 / SHARE_ONE) as i64)
        } else {
            serializer.serialize_f64(self.to_f64())
        }
    }
}

/// A fraction, `None` (JSON null) when its denominator is 0.
pub type Ratio = Option<f64>;

pub fn ratio(numerator: f64, denominator: f64) -> Ratio {
    (denominator != 0.0).then(|| numerator / denominator)
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RangeInfo {
    pub from: String,
    pub to: String,
    pub timezone: String,
    pub currency: String,
    pub model: String,
    pub page_type: Option<String>,
    pub placement: Option<String>,
    pub kind: Option<String>,
    /// The segment filter as asked (`device:mobile`), absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SegmentFigures {
    pub conversion_rate: Ratio,
    pub orders: u64,
    pub revenue: Amount,
    pub aov: Ratio,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Overview {
    pub visitors: u64,
    pub sessions: u64,
    pub personalized_sessions: u64,
    pub bounce_rate: Ratio,
    pub conversion_rate: Ratio,
    pub orders: u64,
    pub revenue: Amount,
    pub aov: Ratio,
    pub personalized: SegmentFigures,
    pub non_personalized: SegmentFigures,
    pub active_placements: u64,
    pub active_experiments: u64,
    pub active_journeys: u64,
    /// Every local date in range (an addition to SPEC section 8's shape): sessions by
    /// their first event, orders and net revenue by the order's time.
    pub daily: Vec<DailyOverview>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DailyOverview {
    pub date: String,
    pub sessions: u64,
    pub orders: u64,
    pub revenue: Amount,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DailyRevenue {
    pub date: String,
    pub revenue: Amount,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Personalization {
    pub orders: u64,
    pub revenue: Amount,
    pub conversion_rate: Ratio,
    pub aov: Ratio,
    pub revenue_change: Ratio,
    pub daily: Vec<DailyRevenue>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Recommendations {
    pub direct_revenue: Amount,
    pub assisted_revenue: Amount,
    pub sessions: u64,
    pub ctr: Ratio,
    pub conversion_rate: Ratio,
    pub unique_visitors: u64,
    pub purchases: u64,
    pub purchase_sessions_share: Ratio,
}

/// The figures of a placement, and of each rollup of placements.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlacementFigures {
    pub impressions: u64,
    pub product_impressions: u64,
    pub clicks: u64,
    pub clicked_sessions: u64,
    pub hovered_sessions: u64,
    pub ctr: Ratio,
    pub converted_clicks: Option<u64>,
    pub cr: Ratio,
    pub orders: Shares,
    pub value: Amount,
    pub direct_revenue: Amount,
    pub assisted_revenue: Amount,
    /// Order-level credit per thousand impressions (SPEC section 9.3).
    pub rpm: Option<Amount>,
    pub add_to_carts: u64,
    pub add_to_cart_rate: Ratio,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlacementRow {
    pub placement: String,
    pub kind: String,
    #[serde(flatten)]
    pub figures: PlacementFigures,
    /// Every local date in range (an addition to SPEC section 8's shape).
    pub daily: Vec<PlacementDaily>,
    /// The most clicked items, most clicks first (at most 10; an addition).
    pub top_items: Vec<ItemClicks>,
    /// Recommendation placements only (SPEC section 9.3): one row per position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positions: Option<Vec<PositionRow>>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PositionRow {
    pub position: u32,
    pub product_impressions: u64,
    pub clicks: u64,
    pub ctr: Ratio,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlacementDaily {
    pub date: String,
    pub impressions: u64,
    pub clicks: u64,
    /// Clicked impressions / impressions of the day.
    pub ctr: Ratio,
    /// Order-level credit of the day's orders.
    pub value: Amount,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ItemClicks {
    pub item: String,
    pub clicks: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct KindRow {
    pub kind: String,
    #[serde(flatten)]
    pub figures: PlacementFigures,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CampaignRow {
    pub campaign: String,
    pub started: u64,
    pub profiles: u64,
    #[serde(flatten)]
    pub figures: PlacementFigures,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SequenceRow {
    pub sequence: String,
    pub started: u64,
    pub profiles: u64,
    #[serde(flatten)]
    pub figures: PlacementFigures,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct JourneyFigures {
    pub started: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub notifications: u64,
    pub channels: BTreeMap<String, u64>,
    pub converted: u64,
    pub conversion_rate: Ratio,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JourneyRow {
    pub journey: String,
    #[serde(flatten)]
    pub figures: JourneyFigures,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Journeys {
    pub total: JourneyFigures,
    pub journeys: Vec<JourneyRow>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VariantRow {
    pub variant: String,
    pub visitors: u64,
    pub converted: u64,
    pub conversion_rate: Ratio,
    pub orders: u64,
    pub revenue: Amount,
    pub aov: Ratio,
    pub revenue_per_visitor: Ratio,
    pub incremental_revenue: Option<Amount>,
    pub cr_lift: Option<f64>,
    pub cr_lift_ci: Option<[f64; 2]>,
    pub cr_lift_p_value: Option<f64>,
    pub rpv_lift: Option<f64>,
    pub rpv_lift_ci: Option<[f64; 2]>,
    pub rpv_lift_p_value: Option<f64>,
    /// SPEC section 9.5 (null on the control, and on every variant of an experiment
    /// whose control has no counted visitor).
    pub rpv_lift_cuped: Option<f64>,
    pub rpv_lift_cuped_ci: Option<[f64; 2]>,
    pub rpv_lift_cuped_p_value: Option<f64>,
    pub cr_lift_p_value_adjusted: Option<f64>,
    pub rpv_lift_p_value_adjusted: Option<f64>,
    pub cr_lift_ci_sequential: Option<[f64; 2]>,
    pub rpv_lift_ci_sequential: Option<[f64; 2]>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Funnel {
    pub visitors: u64,
    pub variants: BTreeMap<String, u64>,
    pub converted: u64,
    pub orders: u64,
    pub aov: Ratio,
    pub revenue: Amount,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ExperimentRow {
    pub experiment: String,
    pub control: String,
    pub visitors: u64,
    pub srm_p_value: Option<f64>,
    /// SPEC section 9.5.
    pub srm_warning: Option<bool>,
    pub cuped_theta: f64,
    pub cuped_variance_reduction: Option<f64>,
    pub variants: Vec<VariantRow>,
    pub funnel: Funnel,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TopicRow {
    pub label: String,
    pub visitors: u64,
    pub converted: u64,
}

/// One value of a session attribute (SPEC section 9.2).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BreakdownRow {
    pub value: String,
    pub sessions: u64,
    pub personalized_sessions: u64,
    pub bounce_rate: Ratio,
    pub conversion_rate: Ratio,
    pub orders: u64,
    pub revenue: Amount,
    pub aov: Ratio,
    pub attributed_orders: Shares,
    pub attributed_value: Amount,
    pub recommendation_sessions: u64,
    pub recommendation_ctr: Ratio,
}

/// The figures by each session attribute (SPEC section 9.2).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Breakdowns {
    pub device: Vec<BreakdownRow>,
    pub visitor_type: Vec<BreakdownRow>,
    pub channel: Vec<BreakdownRow>,
    pub landing_page_type: Vec<BreakdownRow>,
}

/// One goal (SPEC section 9.4).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GoalRow {
    pub goal: String,
    pub completions: u64,
    pub sessions: u64,
    pub personalized_sessions: u64,
    pub value: Amount,
    pub conversion_rate: Ratio,
    pub personalized_conversion_rate: Ratio,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RecentConversion {
    pub time: String,
    pub order_id: String,
    pub visitor_id: String,
    pub revenue: Amount,
    pub placement: Option<String>,
    pub variants: BTreeMap<String, String>,
}

/// The whole report (SPEC section 8).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub range: RangeInfo,
    pub overview: Overview,
    pub breakdowns: Breakdowns,
    pub personalization: Personalization,
    pub recommendations: Recommendations,
    pub placements: Vec<PlacementRow>,
    pub kinds: Vec<KindRow>,
    pub campaigns: Vec<CampaignRow>,
    pub sequences: Vec<SequenceRow>,
    pub journeys: Journeys,
    pub experiments: Vec<ExperimentRow>,
    pub topics: Vec<TopicRow>,
    pub goals: Vec<GoalRow>,
    pub recent_conversions: Vec<RecentConversion>,
    /// Damaged stored data the figures had to leave out (named, never silent); absent
    /// from the JSON when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
