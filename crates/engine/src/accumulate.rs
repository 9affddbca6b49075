//! Running totals that the per-visitor pass adds to, kept exact until `finish`.

use std::collections::{HashMap, HashSet};

use upshot_model::{Exact, Kind};

use crate::dataset::{Dataset, PlacementId, PlacementTouch, Sym, NONE};

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

#[derive(Clone, Debug)]
pub struct RecentCandidate {
    pub ts: i64,
    pub event_id: u32,
    pub order_id: Sym,
    pub visitor: Sym,
    pub net: i64,
    pub placement: Option<PlacementId>,
    pub variants: Vec<(Sym, Sym)>,
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
pub fn targets_of(dataset: &Dataset, at: &PlacementTouch) -> [Option<Target>; 4] {
    let kind: Kind = dataset.placements[at.placement as usize].1;
    [
        Some(Target::Placement(at.placement)),
        Some(Target::Kind(kind.index())),
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
}

/// How many recent conversions a report lists.
pub const RECENT_CONVERSIONS_MAX: usize = 50;

impl Totals {
    pub fn new(dataset: &Dataset, days: usize) -> Totals {
        Totals {
            placements: vec![PlacementTotals::default(); dataset.placements.len()],
            daily_personalized_revenue: vec![Exact::ZERO; days],
            ..Totals::default()
        }
    }

    pub fn row(&mut self, target: Target) -> &mut PlacementTotals {
        match target {
            Target::Placement(id) => &mut self.placements[id as usize],
            Target::Kind(index) => &mut self.kinds[index],
            Target::Campaign(sym) => &mut self.campaigns.entry(sym).or_default().figures,
            Target::Sequence(sym) => &mut self.sequences.entry(sym).or_default().figures,
        }
    }

    /// Applies `update` to every row a placement event or credit counts in.
    pub fn update_rows(
        &mut self,
        dataset: &Dataset,
        at: &PlacementTouch,
        update: impl Fn(&mut PlacementTotals),
    ) {
        for target in targets_of(dataset, at).into_iter().flatten() {
            let row = self.row(target);
            row.present = true;
            update(row);
        }
    }

    /// Keeps the candidate list bounded while visitors stream through.
    pub fn push_recent(&mut self, dataset: &Dataset, candidate: RecentCandidate) {
        self.recent.push(candidate);
        if self.recent.len() >= RECENT_CONVERSIONS_MAX * 20 {
            self.trim_recent(dataset);
        }
    }

    pub fn trim_recent(&mut self, dataset: &Dataset) {
        self.recent.sort_by(|a, b| {
            b.ts.cmp(&a.ts).then_with(|| {
                dataset
                    .event_ids
                    .get(b.event_id)
                    .as_bytes()
                    .cmp(dataset.event_ids.get(a.event_id).as_bytes())
            })
        });
        self.recent.truncate(RECENT_CONVERSIONS_MAX);
    }
}
