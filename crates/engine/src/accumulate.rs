//! Running totals that the per-visitor pass adds to, kept exact until `finish`, and
//! merged across workers by re-keying one worker's symbols into another's dictionary.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::hash::Hash;

use upshot_model::Exact;

use crate::dataset::{Dictionary, PlacementId, PlacementTouch, Sym, NONE};

/// The totals of one placement, kind, campaign or sequence.
#[derive(Clone, Debug, Default)]
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
        self.order_shares += other.order_shares;
        self.value += other.value;
        self.direct_revenue += other.direct_revenue;
        self.assisted_revenue += other.assisted_revenue;
    }
}

/// One placement's figures on one local date.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlacementDay {
    pub impressions: u64,
    pub clicked_impressions: u64,
    pub clicks: u64,
    pub value: Exact,
}

/// One local date's overall figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct DayTotals {
    pub sessions: u64,
    pub orders: u64,
    pub revenue: Exact,
}

#[derive(Clone, Debug, Default)]
pub struct RollupTotals {
    pub figures: PlacementTotals,
    pub started: u64,
    pub profiles: HashSet<Sym>,
}

#[derive(Clone, Debug, Default)]
pub struct JourneyTotals {
    pub started: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub notifications: u64,
    pub channels: HashMap<Sym, u64>,
    pub converted: u64,
}

#[derive(Clone, Debug, Default)]
pub struct VariantTotals {
    pub visitors: u64,
    pub converted: u64,
    pub orders: u64,
    /// Net revenue in money units (1e-4), and the sum of each visitor's revenue squared.
    pub revenue: i128,
    pub revenue_squares: i128,
}

/// An order that may be among the latest 50; owns its strings so it outlives the
/// visitor's buffers and merges across workers as is.
#[derive(Clone, Debug)]
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

#[derive(Debug, Default)]
pub struct Totals {
    pub placements: Vec<PlacementTotals>,
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
            Target::Placement(id) => {
                let index = id as usize;
                if index >= self.placements.len() {
                    self.placements.resize(index + 1, PlacementTotals::default());
                }
                &mut self.placements[index]
            }
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
        self.add_counts(&other);
        let placement = |ours: &mut Dictionary, id: PlacementId| {
            let (text, kind) = theirs.placements[id as usize];
            let text = ours.strings.intern(theirs.strings.resolve(text));
            ours.placement(text, kind)
        };
        for (id, row) in other.placements.iter().enumerate() {
            let mine = placement(ours, id as PlacementId);
            self.row(Target::Placement(mine)).absorb(row);
        }
        for ((id, day), figures) in other.placement_days {
            let mine = self.placement_days.entry((placement(ours, id), day)).or_default();
            mine.impressions += figures.impressions;
            mine.clicked_impressions += figures.clicked_impressions;
            mine.clicks += figures.clicks;
            mine.value += figures.value;
        }
        let placement_items: Vec<((PlacementId, Sym), u64)> = other.placement_items.into_iter().collect();
        for ((id, item), clicks) in placement_items {
            let id = placement(ours, id);
            let item = ours.strings.intern(theirs.strings.resolve(item));
            *self.placement_items.entry((id, item)).or_default() += clicks;
        }
        for (mine, row) in self.kinds.iter_mut().zip(&other.kinds) {
            mine.absorb(row);
        }
        let mut sym = |sym: Sym| {
            if sym == NONE {
                NONE
            } else {
                ours.strings.intern(theirs.strings.resolve(sym))
            }
        };
        for (rollups, other_rollups) in [(&mut self.campaigns, other.campaigns), (&mut self.sequences, other.sequences)]
        {
            for (key, rollup) in other_rollups {
                let mine = rollups.entry(sym(key)).or_default();
                mine.figures.absorb(&rollup.figures);
                mine.started += rollup.started;
                mine.profiles.extend(rollup.profiles.into_iter().map(&mut sym));
            }
        }
        for (set, other_set) in [
            (&mut self.active_placements, other.active_placements),
            (&mut self.active_experiments, other.active_experiments),
            (&mut self.active_journeys, other.active_journeys),
        ] {
            set.extend(other_set.into_iter().map(&mut sym));
        }
        for (journey, row) in other.journeys {
            let mine = self.journeys.entry(sym(journey)).or_default();
            mine.started += row.started;
            mine.completed += row.completed;
            mine.cancelled += row.cancelled;
            mine.notifications += row.notifications;
            mine.converted += row.converted;
            for (channel, count) in row.channels {
                *mine.channels.entry(sym(channel)).or_default() += count;
            }
        }
        for (experiment, groups) in other.experiments {
            let mine = self.experiments.entry(sym(experiment)).or_default();
            for (variant, group) in groups {
                let into = mine.entry(sym(variant)).or_default();
                into.visitors += group.visitors;
                into.converted += group.converted;
                into.orders += group.orders;
                into.revenue += group.revenue;
                into.revenue_squares = into.revenue_squares.saturating_add(group.revenue_squares);
            }
        }
        merge_counts(&mut self.topics, other.topics, &mut sym);
        self.recent.extend(other.recent);
        self.trim_recent();
    }

    fn add_counts(&mut self, other: &Totals) {
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
        for (mine, theirs) in self.daily_personalized_revenue.iter_mut().zip(&other.daily_personalized_revenue) {
            *mine += *theirs;
        }
        for (mine, theirs) in self.daily.iter_mut().zip(&other.daily) {
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

fn merge_counts<K: Eq + Hash>(
    into: &mut HashMap<K, (u64, u64)>,
    from: HashMap<Sym, (u64, u64)>,
    key: &mut impl FnMut(Sym) -> K,
) {
    for (label, (visitors, converted)) in from {
        let mine = into.entry(key(label)).or_default();
        mine.0 += visitors;
        mine.1 += converted;
    }
}
