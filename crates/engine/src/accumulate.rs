//! Running totals that the per-visitor pass adds to, kept exact until `finish`, and
//! merged across workers by re-keying one worker's symbols into another's dictionary.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};

use upshot_model::Exact;

use crate::dataset::{Dictionary, PlacementId, PlacementTouch, Sym, NONE};

/// The totals of one placement, kind, campaign or sequence.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PlacementTotals {
    /// Whether the row has anything in range (after filters) and so is listed.
    pub present: bool,
    pub impressions: u64,
    pub product_impressions: u64,
    pub clicks: u64,
    pub clicked_impressions: u64,
    pub clicked_sessions: u64,
    pub hovered_sessions: u64,
    pub recommendation_events: u64,
    pub recommendation_clicks: u64,
    pub converted_clicks: u64,
    /// add_to_cart events credited to it (SPEC section 9.3).
    pub add_to_carts: u64,
    pub order_shares: i128,
    pub value: Exact,
    pub direct_revenue: Exact,
    pub assisted_revenue: Exact,
}

impl PlacementTotals {
    fn absorb(&mut self, other: &PlacementTotals) {
        self.present |= other.present;
        self.impressions += other.impressions;
        self.product_impressions += other.product_impressions;
        self.clicks += other.clicks;
        self.clicked_impressions += other.clicked_impressions;
        self.clicked_sessions += other.clicked_sessions;
        self.hovered_sessions += other.hovered_sessions;
        self.recommendation_events += other.recommendation_events;
        self.recommendation_clicks += other.recommendation_clicks;
        self.converted_clicks += other.converted_clicks;
        self.add_to_carts += other.add_to_carts;
        self.order_shares += other.order_shares;
        self.value += other.value;
        self.direct_revenue += other.direct_revenue;
        self.assisted_revenue += other.assisted_revenue;
    }
}

/// One placement's figures on one local date.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct PlacementDay {
    pub impressions: u64,
    pub clicked_impressions: u64,
    pub clicks: u64,
    pub value: Exact,
}

/// One local date's overall figures.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct DayTotals {
    pub sessions: u64,
    pub orders: u64,
    pub revenue: Exact,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RollupTotals {
    pub figures: PlacementTotals,
    pub started: u64,
    pub profiles: HashSet<Sym>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JourneyTotals {
    pub started: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub notifications: u64,
    pub channels: HashMap<Sym, u64>,
    pub converted: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VariantTotals {
    pub visitors: u64,
    pub converted: u64,
    pub orders: u64,
    /// Net revenue in money units (1e-4), and the sum of each visitor's revenue squared.
    pub revenue: i128,
    pub revenue_squares: i128,
    /// CUPED (SPEC section 9.5): the sums of each visitor's pre-assignment revenue, of
    /// its square, and of its product with the visitor's revenue (money units).
    pub pre_revenue: i128,
    pub pre_revenue_squares: i128,
    pub revenue_cross: i128,
}

impl VariantTotals {
    pub(crate) fn absorb(&mut self, other: &VariantTotals) {
        self.visitors += other.visitors;
        self.converted += other.converted;
        self.orders += other.orders;
        self.revenue += other.revenue;
        self.revenue_squares = self.revenue_squares.saturating_add(other.revenue_squares);
        self.pre_revenue += other.pre_revenue;
        self.pre_revenue_squares = self.pre_revenue_squares.saturating_add(other.pre_revenue_squares);
        self.revenue_cross = self.revenue_cross.saturating_add(other.revenue_cross);
    }

    /// Adds one counted visitor whose orders (after its assignment, before the range's
    /// end) are `orders`, with net revenue `revenue`, and whose orders in the CUPED
    /// lookback before the assignment had net revenue `pre_revenue` (money units).
    pub(crate) fn add_visitor(&mut self, orders: u64, revenue: i128, pre_revenue: i128) {
        self.add_visitors(1, orders, revenue, pre_revenue);
    }

    /// Adds `visitors` counted visitors alike.
    pub(crate) fn add_visitors(&mut self, visitors: u64, orders: u64, revenue: i128, pre_revenue: i128) {
        let many = i128::from(visitors);
        self.visitors += visitors;
        self.converted += if orders > 0 { visitors } else { 0 };
        self.orders += visitors * orders;
        self.revenue += many * revenue;
        let square = |a: i128, b: i128| a.saturating_mul(b).saturating_mul(many);
        self.revenue_squares = self.revenue_squares.saturating_add(square(revenue, revenue));
        self.pre_revenue += many * pre_revenue;
        self.pre_revenue_squares = self.pre_revenue_squares.saturating_add(square(pre_revenue, pre_revenue));
        self.revenue_cross = self.revenue_cross.saturating_add(square(revenue, pre_revenue));
    }

    /// The sums CUPED reads.
    pub(crate) fn paired_sums(&self) -> crate::stats::PairedSums {
        crate::stats::PairedSums {
            count: self.visitors,
            sum_x: self.pre_revenue,
            sum_y: self.revenue,
            sum_xx: self.pre_revenue_squares,
            sum_yy: self.revenue_squares,
            sum_xy: self.revenue_cross,
        }
    }
}

/// One goal's figures (SPEC section 9.4).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GoalTotals {
    /// Goal events in range, and the sum of their values.
    pub completions: u64,
    pub value: Exact,
    /// Sessions in range with at least one of its goal events, and of them the
    /// personalized ones.
    pub sessions: u64,
    pub personalized_sessions: u64,
}

impl GoalTotals {
    fn absorb(&mut self, other: &GoalTotals) {
        self.completions += other.completions;
        self.value += other.value;
        self.sessions += other.sessions;
        self.personalized_sessions += other.personalized_sessions;
    }
}

/// A session attribute of SPEC section 9.1 with one of its values: a breakdown row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Breakdown {
    /// `None`: the landing event had no device (`unknown`).
    Device(Option<upshot_model::Device>),
    VisitorType {
        new: bool,
    },
    Channel(upshot_model::Channel),
    LandingPageType(Sym),
}

/// One breakdown row's figures (SPEC section 9.2): sessions in range having the value,
/// orders in range whose own session has it, and their order-level credit.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BreakdownTotals {
    pub sessions: u64,
    pub personalized_sessions: u64,
    pub bounced_sessions: u64,
    pub sessions_with_order: u64,
    pub recommendation_sessions: u64,
    pub recommendation_ctr_sessions: u64,
    pub orders: u64,
    pub revenue: Exact,
    pub attributed_shares: i128,
    pub attributed_value: Exact,
}

impl BreakdownTotals {
    fn absorb(&mut self, other: &BreakdownTotals) {
        self.sessions += other.sessions;
        self.personalized_sessions += other.personalized_sessions;
        self.bounced_sessions += other.bounced_sessions;
        self.sessions_with_order += other.sessions_with_order;
        self.recommendation_sessions += other.recommendation_sessions;
        self.recommendation_ctr_sessions += other.recommendation_ctr_sessions;
        self.orders += other.orders;
        self.revenue += other.revenue;
        self.attributed_shares += other.attributed_shares;
        self.attributed_value += other.attributed_value;
    }
}

/// Turns another dictionary's symbols and placements into ours.
pub(crate) trait Rekey {
    fn sym(&mut self, sym: Sym) -> Sym;
    fn placement(&mut self, id: PlacementId) -> PlacementId;
}

/// Another worker's symbols, interned into our dictionary.
pub(crate) struct Reintern<'a> {
    pub ours: &'a mut Dictionary,
    pub theirs: &'a Dictionary,
}

impl Rekey for Reintern<'_> {
    fn sym(&mut self, sym: Sym) -> Sym {
        if sym == NONE {
            NONE
        } else {
            self.ours.strings.intern(self.theirs.strings.resolve(sym))
        }
    }

    fn placement(&mut self, id: PlacementId) -> PlacementId {
        let (text, kind) = self.theirs.placements[id as usize];
        let text = self.ours.strings.intern(self.theirs.strings.resolve(text));
        self.ours.placement(text, kind)
    }
}

/// Symbols of the same dictionary.
pub(crate) struct SameDictionary;

impl Rekey for SameDictionary {
    fn sym(&mut self, sym: Sym) -> Sym {
        sym
    }

    fn placement(&mut self, id: PlacementId) -> PlacementId {
        id
    }
}

/// An order that may be among the latest 50; owns its strings so it outlives the
/// visitor's buffers and merges across workers as is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecentCandidate {
    pub ts: i64,
    pub event_id: String,
    pub order_id: String,
    pub visitor: String,
    pub net: i64,
    pub placement: Option<String>,
    pub variants: Vec<(String, String)>,
}

/// Which rows an event or a credit counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Placement(PlacementId),
    Kind(usize),
    Campaign(Sym),
    Sequence(Sym),
}

/// The rows a placement event (or a credit through it) counts in.
pub fn targets_of(dictionary: &Dictionary, at: &PlacementTouch) -> [Option<Target>; 4] {
    [
        Some(Target::Placement(at.placement)),
        Some(Target::Kind(dictionary.kind(at.placement).index())),
        (at.campaign != NONE).then_some(Target::Campaign(at.campaign)),
        (at.sequence != NONE).then_some(Target::Sequence(at.sequence)),
    ]
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    /// By placement id: sparse, as a day of a day partial touches few of a site's
    /// placements (and a site may have many).
    pub placements: HashMap<PlacementId, PlacementTotals>,
    pub kinds: [PlacementTotals; 6],
    pub campaigns: HashMap<Sym, RollupTotals>,
    pub sequences: HashMap<Sym, RollupTotals>,

    pub visitors: u64,
    pub sessions: u64,
    pub bounced_sessions: u64,
    pub sessions_with_order: u64,
    pub personalized_sessions: u64,
    pub personalized_sessions_with_order: u64,
    pub orders: u64,
    pub revenue: Exact,
    pub personalized_orders: u64,
    pub personalized_revenue: Exact,
    pub previous_personalized_revenue: Exact,
    pub daily_personalized_revenue: Vec<Exact>,
    /// Per local date of the range: sessions (by their first event), orders, net revenue.
    pub daily: Vec<DayTotals>,
    /// Per placement and day of the range (index): its daily figures.
    pub placement_days: HashMap<(PlacementId, u32), PlacementDay>,
    /// Clicks per placement and clicked item.
    pub placement_items: HashMap<(PlacementId, Sym), u64>,
    /// Recommendation placements' positions (SPEC section 9.3): impressions per
    /// placement and `items` length, and clicks per placement and 1-based position.
    pub impression_lengths: HashMap<(PlacementId, u32), u64>,
    pub position_clicks: HashMap<(PlacementId, u32), u64>,

    pub recommendation_sessions: u64,
    pub recommendation_ctr_sessions: u64,
    pub recommendation_sessions_with_direct_order: u64,
    pub sessions_with_direct_order: u64,
    pub recommendation_visitors: u64,
    pub direct_lines: u64,
    pub direct_revenue: Exact,
    pub assisted_revenue: Exact,

    pub active_placements: HashSet<Sym>,
    pub active_experiments: HashSet<Sym>,
    pub active_journeys: HashSet<Sym>,

    pub journeys: HashMap<Sym, JourneyTotals>,
    pub experiments: HashMap<Sym, HashMap<Sym, VariantTotals>>,
    /// Per label: visitors who used it, and of them visitors who converted.
    pub topics: HashMap<Sym, (u64, u64)>,
    pub goals: HashMap<Sym, GoalTotals>,
    pub breakdowns: HashMap<Breakdown, BreakdownTotals>,
    pub recent: Vec<RecentCandidate>,
    /// The 50th latest (ts, event_id) kept so far: an order older than it can never be
    /// among the latest 50, so no candidate (and no string) is built for it.
    pub recent_floor: Option<(i64, Vec<u8>)>,
}

/// How many recent conversions a report lists.
pub const RECENT_CONVERSIONS_MAX: usize = 50;

impl Totals {
    pub fn new(days: usize) -> Totals {
        Totals {
            daily_personalized_revenue: vec![Exact::ZERO; days],
            daily: vec![DayTotals::default(); days],
            ..Totals::default()
        }
    }

    pub fn row(&mut self, target: Target) -> &mut PlacementTotals {
        match target {
            Target::Placement(id) => self.placements.entry(id).or_default(),
            Target::Kind(index) => &mut self.kinds[index],
            Target::Campaign(sym) => &mut self.campaigns.entry(sym).or_default().figures,
            Target::Sequence(sym) => &mut self.sequences.entry(sym).or_default().figures,
        }
    }

    /// Applies `update` to every row a placement event or credit counts in.
    pub fn update_rows(&mut self, dictionary: &Dictionary, at: &PlacementTouch, update: impl Fn(&mut PlacementTotals)) {
        for target in targets_of(dictionary, at).into_iter().flatten() {
            let row = self.row(target);
            row.present = true;
            update(row);
        }
    }

    /// Whether every symbol and placement id is below `strings` and `placements` (the
    /// sizes of the dictionary they belong to): totals read back from bytes are checked
    /// before anything indexes the dictionary with them.
    pub(crate) fn symbols_within(&self, strings: usize, placements: usize) -> bool {
        let sym = |sym: &Sym| *sym == NONE || (*sym as usize) < strings;
        let placement = |id: &PlacementId| (*id as usize) < placements;
        let rollups = |rollups: &HashMap<Sym, RollupTotals>| {
            rollups.iter().all(|(key, rollup)| sym(key) && rollup.profiles.iter().all(sym))
        };
        self.placements.keys().all(placement)
            && self.placement_days.keys().all(|(id, _)| placement(id))
            && self.placement_items.keys().all(|(id, item)| placement(id) && sym(item))
            && self.impression_lengths.keys().chain(self.position_clicks.keys()).all(|(id, _)| placement(id))
            && rollups(&self.campaigns)
            && rollups(&self.sequences)
            && [&self.active_placements, &self.active_experiments, &self.active_journeys]
                .iter()
                .all(|set| set.iter().all(sym))
            && self.journeys.iter().all(|(key, row)| sym(key) && row.channels.keys().all(sym))
            && self.experiments.iter().all(|(key, groups)| sym(key) && groups.keys().all(sym))
            && self.topics.keys().all(sym)
            && self.goals.keys().all(sym)
            && self.breakdowns.keys().all(|key| !matches!(key, Breakdown::LandingPageType(page) if !sym(page)))
    }

    /// Keeps the candidate list bounded while visitors stream through.
    /// Whether an order at (ts, event_id) could still be among the latest 50.
    pub fn may_be_recent(&self, ts: i64, event_id: &[u8]) -> bool {
        self.recent_floor.as_ref().is_none_or(|(floor_ts, floor_id)| (ts, event_id) > (*floor_ts, floor_id.as_slice()))
    }

    pub fn push_recent(&mut self, candidate: RecentCandidate) {
        self.recent.push(candidate);
        if self.recent.len() >= RECENT_CONVERSIONS_MAX * 20 {
            self.trim_recent();
        }
    }

    /// Keeps the latest 50 by (ts, event_id), latest first.
    pub fn trim_recent(&mut self) {
        self.recent.sort_by(|a, b| b.ts.cmp(&a.ts).then_with(|| b.event_id.as_bytes().cmp(a.event_id.as_bytes())));
        self.recent.truncate(RECENT_CONVERSIONS_MAX);
        if self.recent.len() == RECENT_CONVERSIONS_MAX {
            let last = &self.recent[RECENT_CONVERSIONS_MAX - 1];
            self.recent_floor = Some((last.ts, last.event_id.as_bytes().to_vec()));
        }
    }

    /// Adds another worker's totals, whose symbols belong to `theirs`, re-keyed into
    /// `ours`.
    pub fn absorb(&mut self, ours: &mut Dictionary, other: Totals, theirs: &Dictionary) {
        self.absorb_rekeyed(&other, &mut Reintern { ours, theirs }, 0);
    }

    /// Adds `other`, whose symbols `rekey` turns into ours, with its day `i` counted
    /// as our day `i + day_offset` (a day partial added into a range's totals).
    pub(crate) fn absorb_rekeyed(&mut self, other: &Totals, rekey: &mut impl Rekey, day_offset: usize) {
        self.add_counts(other, day_offset);
        for (&id, row) in &other.placements {
            let mine = rekey.placement(id);
            self.row(Target::Placement(mine)).absorb(row);
        }
        for (&(id, day), figures) in &other.placement_days {
            let key = (rekey.placement(id), day + day_offset as u32);
            let mine = self.placement_days.entry(key).or_default();
            mine.impressions += figures.impressions;
            mine.clicked_impressions += figures.clicked_impressions;
            mine.clicks += figures.clicks;
            mine.value += figures.value;
        }
        for (&(id, item), &clicks) in &other.placement_items {
            *self.placement_items.entry((rekey.placement(id), rekey.sym(item))).or_default() += clicks;
        }
        for (mine, theirs) in [
            (&mut self.impression_lengths, &other.impression_lengths),
            (&mut self.position_clicks, &other.position_clicks),
        ] {
            for (&(id, at), &count) in theirs {
                *mine.entry((rekey.placement(id), at)).or_default() += count;
            }
        }
        for (mine, row) in self.kinds.iter_mut().zip(&other.kinds) {
            mine.absorb(row);
        }
        for (rollups, other_rollups) in
            [(&mut self.campaigns, &other.campaigns), (&mut self.sequences, &other.sequences)]
        {
            for (&key, rollup) in other_rollups {
                let mine = rollups.entry(rekey.sym(key)).or_default();
                mine.figures.absorb(&rollup.figures);
                mine.started += rollup.started;
                mine.profiles.extend(rollup.profiles.iter().map(|&sym| rekey.sym(sym)));
            }
        }
        for (set, other_set) in [
            (&mut self.active_placements, &other.active_placements),
            (&mut self.active_experiments, &other.active_experiments),
            (&mut self.active_journeys, &other.active_journeys),
        ] {
            set.extend(other_set.iter().map(|&sym| rekey.sym(sym)));
        }
        for (&journey, row) in &other.journeys {
            let mine = self.journeys.entry(rekey.sym(journey)).or_default();
            mine.started += row.started;
            mine.completed += row.completed;
            mine.cancelled += row.cancelled;
            mine.notifications += row.notifications;
            mine.converted += row.converted;
            for (&channel, &count) in &row.channels {
                *mine.channels.entry(rekey.sym(channel)).or_default() += count;
            }
        }
        for (&experiment, groups) in &other.experiments {
            let mine = self.experiments.entry(rekey.sym(experiment)).or_default();
            for (&variant, group) in groups {
                mine.entry(rekey.sym(variant)).or_default().absorb(group);
            }
        }
        for (&label, &(visitors, converted)) in &other.topics {
            let mine = self.topics.entry(rekey.sym(label)).or_default();
            mine.0 += visitors;
            mine.1 += converted;
        }
        for (&goal, row) in &other.goals {
            self.goals.entry(rekey.sym(goal)).or_default().absorb(row);
        }
        for (&key, row) in &other.breakdowns {
            let key = match key {
                Breakdown::LandingPageType(page) => Breakdown::LandingPageType(rekey.sym(page)),
                other => other,
            };
            self.breakdowns.entry(key).or_default().absorb(row);
        }
        if !other.recent.is_empty() {
            self.recent.extend(other.recent.iter().cloned());
            self.trim_recent();
        }
    }

    fn add_counts(&mut self, other: &Totals, day_offset: usize) {
        self.visitors += other.visitors;
        self.sessions += other.sessions;
        self.bounced_sessions += other.bounced_sessions;
        self.sessions_with_order += other.sessions_with_order;
        self.personalized_sessions += other.personalized_sessions;
        self.personalized_sessions_with_order += other.personalized_sessions_with_order;
        self.orders += other.orders;
        self.revenue += other.revenue;
        self.personalized_orders += other.personalized_orders;
        self.personalized_revenue += other.personalized_revenue;
        self.previous_personalized_revenue += other.previous_personalized_revenue;
        let days = self.daily_personalized_revenue.iter_mut().skip(day_offset);
        for (mine, theirs) in days.zip(&other.daily_personalized_revenue) {
            *mine += *theirs;
        }
        for (mine, theirs) in self.daily.iter_mut().skip(day_offset).zip(&other.daily) {
            mine.sessions += theirs.sessions;
            mine.orders += theirs.orders;
            mine.revenue += theirs.revenue;
        }
        self.recommendation_sessions += other.recommendation_sessions;
        self.recommendation_ctr_sessions += other.recommendation_ctr_sessions;
        self.recommendation_sessions_with_direct_order += other.recommendation_sessions_with_direct_order;
        self.sessions_with_direct_order += other.sessions_with_direct_order;
        self.recommendation_visitors += other.recommendation_visitors;
        self.direct_lines += other.direct_lines;
        self.direct_revenue += other.direct_revenue;
        self.assisted_revenue += other.assisted_revenue;
    }
}
