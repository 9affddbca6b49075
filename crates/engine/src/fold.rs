//! Folding a backend's facts (`upshot_model::facts`, computed next to the data by
//! generated SQL) into the same totals the per-visitor pass builds, so the report is
//! finished by the same code. Counts are added as they are; each order is credited from
//! its touches and the order book, in fixed point, by the crediting core the pass uses
//! too (`credit.rs`); the tests compare the two figure for figure.

use rustc_hash::FxHashSet as HashSet;

use upshot_model::facts::{CountFact, ExperimentFact, FactKind, Facts, OrderFact, TouchFact};
use upshot_model::{JourneyAction, Kind, Money};

use crate::accumulate::{Breakdown, RecentCandidate, Target, Totals};
use crate::attribution::Model;
use crate::breakdown;
use crate::credit::{count_order, credit_item_level, credit_order_level, CreditTouch};
use crate::dataset::{Dictionary, PlacementId, PlacementTouch, Sym, NONE};
use crate::orders::OrderBook;
use crate::query::{Filter, Window};

/// One query's totals being built from facts.
pub struct FactFolder<'a> {
    pub dictionary: Dictionary,
    pub totals: Totals,
    filter: Filter,
    window: &'a Window,
    model: Model,
    book: &'a OrderBook,
}

impl<'a> FactFolder<'a> {
    pub fn new(query: &crate::Query, window: &'a Window, book: &'a OrderBook) -> FactFolder<'a> {
        let mut dictionary = Dictionary::default();
        let filter = Filter::resolve(query, &mut dictionary);
        FactFolder { dictionary, totals: Totals::new(window.dates.len()), filter, window, model: query.model, book }
    }

    /// Adds the range's facts and the site's order facts (shared by every range).
    pub fn fold(&mut self, facts: &Facts, orders: &[OrderFact]) {
        facts.counts.iter().for_each(|fact| self.add_count(fact));
        let mut direct_sessions: HashSet<(&str, i64)> = HashSet::default();
        let mut net_by_event: rustc_hash::FxHashMap<&str, i64> = rustc_hash::FxHashMap::default();
        for order in orders {
            let Some(net_units) = self.book.counted_net_revenue(
                order.order_id.as_bytes(),
                order.ts,
                order.event_id.as_bytes(),
                // The cluster keeps no key role yet: every order counts as the backend's.
                upshot_model::KeyRole::Secret,
                order.revenue,
            ) else {
                continue;
            };
            net_by_event.insert(&order.event_id, net_units);
            if !order.session_kept {
                continue;
            }
            if self.add_order(order, net_units) && self.window.contains(order.session_first_ts) {
                direct_sessions.insert((&order.visitor, order.session_first_ts));
            }
        }
        // A session counts once however many of its orders have a direct line.
        let sessions_with_direct_order =
            orders.iter().filter(|order| direct_sessions.remove(&(order.visitor.as_str(), order.session_first_ts)));
        for order in sessions_with_direct_order {
            self.totals.sessions_with_direct_order += 1;
            self.totals.recommendation_sessions_with_direct_order += u64::from(order.session_recommendation);
        }
        facts.experiments.iter().for_each(|fact| self.add_experiment(fact, &net_by_event));
    }

    fn sym(&mut self, text: &str) -> Sym {
        self.dictionary.strings.intern(text)
    }

    /// '' is absent.
    fn optional(&mut self, text: &str) -> Sym {
        if text.is_empty() {
            NONE
        } else {
            self.sym(text)
        }
    }

    fn placement(&mut self, placement: &str, kind: &str) -> Option<PlacementId> {
        let kind = Kind::parse(kind)?;
        let text = self.sym(placement);
        Some(self.dictionary.placement(text, kind))
    }

    fn touch(&mut self, placement: &str, kind: &str, campaign: &str, sequence: &str) -> Option<PlacementTouch> {
        Some(PlacementTouch {
            placement: self.placement(placement, kind)?,
            impression_id: NONE,
            campaign: self.optional(campaign),
            sequence: self.optional(sequence),
        })
    }

    fn add_count(&mut self, fact: &CountFact) {
        let [k1, k2, k3, k4] = &fact.keys;
        let v = fact.values;
        let day = (fact.day as usize).checked_sub(1);
        let totals = &mut self.totals;
        match fact.kind {
            FactKind::Visitor => {
                totals.visitors += v[0];
                totals.recommendation_visitors += v[1];
            }
            FactKind::Session => {
                let Some(day) = day else { return };
                totals.sessions += v[0];
                totals.daily[day].sessions += v[0];
                totals.bounced_sessions += v[1];
                totals.sessions_with_order += v[2];
                totals.personalized_sessions += v[3];
                totals.personalized_sessions_with_order += v[4];
                totals.recommendation_sessions += v[5];
                totals.recommendation_ctr_sessions += v[6];
            }
            FactKind::Impression | FactKind::Interaction => {
                let (Some(day), Some(at)) = (day, self.touch(k1, k2, k3, k4)) else { return };
                let figures = self.totals.placement_days.entry((at.placement, day as u32)).or_default();
                if fact.kind == FactKind::Impression {
                    figures.impressions += v[0];
                    figures.clicked_impressions += v[2];
                    self.totals.update_rows(&self.dictionary, &at, |row| {
                        row.impressions += v[0];
                        row.product_impressions += v[1];
                        row.clicked_impressions += v[2];
                        row.recommendation_events += v[3];
                    });
                } else {
                    figures.clicks += v[0];
                    self.totals.update_rows(&self.dictionary, &at, |row| {
                        row.clicks += v[0];
                        row.recommendation_events += v[1];
                        row.recommendation_clicks += v[2];
                        row.converted_clicks += v[3];
                    });
                }
            }
            FactKind::ClickedItem => {
                let Some(placement) = self.placement(k1, k2) else { return };
                let item = self.sym(k3);
                *self.totals.placement_items.entry((placement, item)).or_default() += v[0];
            }
            FactKind::PlacementSession
            | FactKind::KindSession
            | FactKind::CampaignSession
            | FactKind::SequenceSession => {
                let target = match fact.kind {
                    FactKind::PlacementSession => self.placement(k1, k2).map(Target::Placement),
                    FactKind::KindSession => Kind::parse(k2).map(|kind| Target::Kind(kind.index())),
                    FactKind::CampaignSession => Some(Target::Campaign(self.sym(k3))),
                    _ => Some(Target::Sequence(self.sym(k4))),
                };
                let Some(target) = target else { return };
                let row = self.totals.row(target);
                row.clicked_sessions += v[0];
                row.hovered_sessions += v[1];
            }
            FactKind::ActivePlacement => {
                let sym = self.sym(k1);
                self.totals.active_placements.insert(sym);
            }
            FactKind::ActiveExperiment => {
                let sym = self.sym(k1);
                self.totals.active_experiments.insert(sym);
            }
            FactKind::ActiveJourney => {
                let sym = self.sym(k1);
                self.totals.active_journeys.insert(sym);
            }
            FactKind::Journey => {
                let Some(action) = JourneyAction::parse(k2) else { return };
                let journey = self.sym(k1);
                let channel = if k4 == "1" { self.sym(k3) } else { NONE };
                let row = self.totals.journeys.entry(journey).or_default();
                match action {
                    JourneyAction::Started => row.started += v[0],
                    JourneyAction::Completed => row.completed += v[0],
                    JourneyAction::Cancelled => row.cancelled += v[0],
                    JourneyAction::Converted => row.converted += v[0],
                    JourneyAction::Notification => {
                        row.notifications += v[0];
                        if channel != NONE {
                            *row.channels.entry(channel).or_default() += v[0];
                        }
                    }
                }
            }
            FactKind::SequenceStart => {
                let (sequence, campaign, person) = (self.sym(k1), self.optional(k2), self.sym(k3));
                let mut rollups = vec![self.totals.sequences.entry(sequence).or_default()];
                if campaign != NONE {
                    rollups.push(self.totals.campaigns.entry(campaign).or_default());
                }
                for rollup in rollups {
                    rollup.started += v[0];
                    rollup.profiles.insert(person);
                }
            }
            // Carried with their payloads, read by `fold` (never counts).
            FactKind::Order | FactKind::Experiment => {}
            FactKind::BreakdownSession => {
                let Some(row) = breakdown::parse(k1, k2, |page| self.dictionary.strings.intern(page)) else { return };
                breakdown::add_sessions(&mut self.totals, &[row], v[0], &[v[1], v[2], v[3], v[4], v[5]]);
            }
            FactKind::AddToCart => {
                let Some(at) = self.touch(k1, k2, k3, k4) else { return };
                self.totals.update_rows(&self.dictionary, &at, |row| row.add_to_carts += v[0]);
            }
            FactKind::ImpressionLength | FactKind::ClickPosition => {
                let (Some(placement), Ok(at)) = (self.placement(k1, k2), k3.parse::<u32>()) else { return };
                let counts = if fact.kind == FactKind::ImpressionLength {
                    &mut self.totals.impression_lengths
                } else {
                    &mut self.totals.position_clicks
                };
                *counts.entry((placement, at)).or_default() += v[0];
            }
            FactKind::Goal | FactKind::GoalSession => {
                let goal = self.sym(k1);
                let row = self.totals.goals.entry(goal).or_default();
                if fact.kind == FactKind::Goal {
                    row.completions += v[0];
                    let units = i128::from(v[1]) - i128::from(v[2]);
                    row.value += upshot_model::Exact(units * upshot_model::money::EXACT_UNITS_PER_MONEY_UNIT);
                } else {
                    row.sessions += v[0];
                    row.personalized_sessions += v[1];
                }
            }
            FactKind::Topic => {
                let label = self.sym(k1);
                let topic = self.totals.topics.entry(label).or_default();
                topic.0 += v[0];
                topic.1 += v[1];
            }
        }
    }

    /// A touch's placement and whether it passes the filter.
    fn touch_of(&mut self, fact: &TouchFact) -> Option<(PlacementTouch, bool)> {
        let at = self.touch(&fact.placement, &fact.kind, &fact.campaign, &fact.sequence)?;
        let page_type = self.sym(&fact.page_type);
        let passes = self.filter.passes_on_page(&self.dictionary, at.placement, page_type);
        Some((at, passes))
    }

    /// Credits one counted order by the rules in `credit.rs` (those of the per-visitor
    /// pass); returns whether it has a direct line whose click passes the filter.
    fn add_order(&mut self, order: &OrderFact, net_units: i64) -> bool {
        let net = Money(net_units).to_exact();
        let window = self.window;
        let in_range = window.contains(order.ts);
        let touches: Vec<CreditTouch<&str>> = order.touches.iter().map(|touch| self.credit_touch(touch)).collect();
        let clicks: Vec<CreditTouch<&str>> =
            order.recommendation_clicks.iter().map(|click| self.credit_touch(click)).collect();
        if in_range {
            let mut buffers = (Vec::new(), Vec::new());
            let (dictionary, totals) = (&self.dictionary, &mut self.totals);
            let credit =
                credit_order_level(self.model, order.ts, net, &touches, window, dictionary, totals, &mut buffers);
            let rows: Vec<Breakdown> = order
                .session_attributes
                .iter()
                .filter_map(|(dimension, value)| {
                    breakdown::parse(dimension, value, |page| self.dictionary.strings.intern(page))
                })
                .collect();
            breakdown::add_order(&mut self.totals, &rows, net, credit);
        }
        let lines = order.lines.iter().map(|(item, quantity, price)| (item.as_str(), *quantity, *price));
        let has_direct_line = credit_item_level(net, in_range, &clicks, lines, &self.dictionary, &mut self.totals);
        count_order(&mut self.totals, window, order.ts, net, order.session_personalized);
        if in_range && self.totals.may_be_recent(order.ts, order.event_id.as_bytes()) {
            self.totals.push_recent(RecentCandidate {
                ts: order.ts,
                event_id: order.event_id.clone(),
                order_id: order.order_id.clone(),
                visitor: order.visitor.clone(),
                net: net_units,
                placement: order.touches.last().map(|touch| touch.placement.clone()),
                variants: order.variants.clone(),
            });
        }
        has_direct_line
    }

    /// A touch or click fact as crediting sees it ('' is no item, as in the facts).
    fn credit_touch<'f>(&mut self, fact: &'f TouchFact) -> CreditTouch<&'f str> {
        let resolved = self.touch_of(fact);
        CreditTouch {
            ts: fact.ts,
            at: resolved.map(|(at, _)| at),
            passes: resolved.is_some_and(|(_, passes)| passes),
            item: fact.item.as_str(),
        }
    }

    fn add_experiment(&mut self, fact: &ExperimentFact, net_by_event: &rustc_hash::FxHashMap<&str, i64>) {
        let (mut orders, mut revenue) = (0u64, 0i128);
        for event_id in &fact.orders {
            if let Some(net_units) = net_by_event.get(event_id.as_str()) {
                orders += 1;
                revenue += i128::from(*net_units);
            }
        }
        let pre_revenue = fact
            .pre_orders
            .iter()
            .filter_map(|event_id| net_by_event.get(event_id.as_str()))
            .fold(0i64, |sum, net_units| sum.saturating_add(*net_units));
        let (experiment, variant) = (self.sym(&fact.experiment), self.sym(&fact.variant));
        let group = self.totals.experiments.entry(experiment).or_default().entry(variant).or_default();
        group.add_visitor(orders, revenue, i128::from(pre_revenue));
    }
}
