//! Turns exact running totals into the typed report: ratios, rows, experiment statistics.

use std::collections::BTreeMap;

use upshot_model::time::format_utc_millis;
use upshot_model::{Exact, Kind, Money, Settings};

use crate::accumulate::{JourneyTotals, PlacementDay, PlacementTotals, RollupTotals, Totals, VariantTotals};
use crate::dataset::{Dictionary, PlacementId, Sym};
use crate::figures::*;
use crate::query::{Query, Window};
use crate::stats::{
    always_valid_interval, chi_square_p_value, cuped, holm_adjusted, mean_estimate, proportion_estimate, relative_lift,
    Lift,
};

/// `srm_warning` is raised below this sample-ratio-mismatch p-value (SPEC section 9.5).
const SRM_WARNING_P_VALUE: f64 = 0.001;
/// Money units per currency unit, as the statistics read revenue.
const MONEY_UNIT: f64 = upshot_model::money::MONEY_UNITS_PER_CURRENCY_UNIT as f64;

/// Most clicked items listed per placement.
const TOP_ITEMS_MAX: usize = 10;

pub struct Finisher<'a> {
    pub dictionary: &'a Dictionary,
    pub settings: &'a Settings,
    pub query: &'a Query,
    pub window: &'a Window,
}

fn money_ratio(numerator: Exact, denominator: u64) -> Ratio {
    ratio(numerator.to_f64(), denominator as f64)
}

fn count_ratio(numerator: u64, denominator: u64) -> Ratio {
    ratio(numerator as f64, denominator as f64)
}

fn segment(sessions_with_order: u64, sessions: u64, orders: u64, revenue: Exact) -> SegmentFigures {
    SegmentFigures {
        conversion_rate: count_ratio(sessions_with_order, sessions),
        orders,
        revenue: Amount(revenue),
        aov: money_ratio(revenue, orders),
    }
}

fn placement_figures(totals: &PlacementTotals) -> PlacementFigures {
    let has_recommendation_event = totals.recommendation_events > 0;
    PlacementFigures {
        impressions: totals.impressions,
        product_impressions: totals.product_impressions,
        clicks: totals.clicks,
        clicked_sessions: totals.clicked_sessions,
        hovered_sessions: totals.hovered_sessions,
        ctr: count_ratio(totals.clicked_impressions, totals.impressions),
        converted_clicks: has_recommendation_event.then_some(totals.converted_clicks),
        cr: if has_recommendation_event {
            count_ratio(totals.converted_clicks, totals.recommendation_clicks)
        } else {
            None
        },
        orders: Shares(totals.order_shares),
        value: Amount(totals.value),
        direct_revenue: Amount(totals.direct_revenue),
        assisted_revenue: Amount(totals.assisted_revenue),
        rpm: (totals.impressions > 0).then(|| Amount(totals.value.scale(1000, i128::from(totals.impressions)))),
        add_to_carts: totals.add_to_carts,
        add_to_cart_rate: count_ratio(totals.add_to_carts, totals.clicks),
    }
}

impl Finisher<'_> {
    fn text(&self, sym: Sym) -> String {
        self.dictionary.strings.resolve(sym).to_string()
    }

    pub fn report(&self, mut totals: Totals) -> Report {
        let query = self.query;
        Report {
            range: RangeInfo {
                from: query.from.to_string(),
                to: query.to.to_string(),
                timezone: query.time_zone_name.clone(),
                currency: query.currency.clone(),
                model: query.model.as_str().to_string(),
                page_type: query.page_type.clone(),
                placement: query.placement.clone(),
                kind: query.kind.map(|kind| kind.as_str().to_string()),
                segment: query.segment.as_ref().map(crate::query::Segment::text),
            },
            overview: self.overview(&totals),
            breakdowns: self.breakdowns(&totals),
            personalization: self.personalization(&totals),
            recommendations: Recommendations {
                direct_revenue: Amount(totals.direct_revenue),
                assisted_revenue: Amount(totals.assisted_revenue),
                sessions: totals.recommendation_sessions,
                ctr: count_ratio(totals.recommendation_ctr_sessions, totals.recommendation_sessions),
                conversion_rate: count_ratio(
                    totals.recommendation_sessions_with_direct_order,
                    totals.recommendation_sessions,
                ),
                unique_visitors: totals.recommendation_visitors,
                purchases: totals.direct_lines,
                purchase_sessions_share: count_ratio(totals.sessions_with_direct_order, totals.sessions_with_order),
            },
            placements: self.placement_rows(&totals),
            kinds: Kind::ALL
                .iter()
                .filter(|kind| totals.kinds[kind.index()].present)
                .map(|kind| KindRow {
                    kind: kind.as_str().to_string(),
                    figures: placement_figures(&totals.kinds[kind.index()]),
                })
                .collect(),
            campaigns: self
                .rollup_rows(&totals.campaigns)
                .map(|(campaign, started, profiles, figures)| CampaignRow { campaign, started, profiles, figures })
                .collect(),
            sequences: self
                .rollup_rows(&totals.sequences)
                .map(|(sequence, started, profiles, figures)| SequenceRow { sequence, started, profiles, figures })
                .collect(),
            journeys: self.journeys(&totals),
            experiments: self.experiments(&totals),
            topics: self.topics(&totals),
            goals: self.goals(&totals),
            recent_conversions: self.recent_conversions(&mut totals),
            warnings: Vec::new(),
        }
    }

    fn overview(&self, totals: &Totals) -> Overview {
        let non_personalized_sessions = totals.sessions - totals.personalized_sessions;
        Overview {
            visitors: totals.visitors,
            sessions: totals.sessions,
            personalized_sessions: totals.personalized_sessions,
            bounce_rate: count_ratio(totals.bounced_sessions, totals.sessions),
            conversion_rate: count_ratio(totals.sessions_with_order, totals.sessions),
            orders: totals.orders,
            revenue: Amount(totals.revenue),
            aov: money_ratio(totals.revenue, totals.orders),
            personalized: segment(
                totals.personalized_sessions_with_order,
                totals.personalized_sessions,
                totals.personalized_orders,
                totals.personalized_revenue,
            ),
            non_personalized: segment(
                totals.sessions_with_order - totals.personalized_sessions_with_order,
                non_personalized_sessions,
                totals.orders - totals.personalized_orders,
                totals.revenue - totals.personalized_revenue,
            ),
            active_placements: totals.active_placements.len() as u64,
            active_experiments: totals.active_experiments.len() as u64,
            active_journeys: totals.active_journeys.len() as u64,
            daily: self
                .window
                .dates
                .iter()
                .zip(&totals.daily)
                .map(|(date, day)| DailyOverview {
                    date: date.to_string(),
                    sessions: day.sessions,
                    orders: day.orders,
                    revenue: Amount(day.revenue),
                })
                .collect(),
        }
    }

    fn personalization(&self, totals: &Totals) -> Personalization {
        let current = totals.personalized_revenue;
        let previous = totals.previous_personalized_revenue;
        Personalization {
            orders: totals.personalized_orders,
            revenue: Amount(current),
            conversion_rate: count_ratio(totals.personalized_sessions_with_order, totals.personalized_sessions),
            aov: money_ratio(current, totals.personalized_orders),
            revenue_change: ratio((current - previous).to_f64(), previous.to_f64()),
            daily: self
                .window
                .dates
                .iter()
                .zip(&totals.daily_personalized_revenue)
                .map(|(date, revenue)| DailyRevenue { date: date.to_string(), revenue: Amount(*revenue) })
                .collect(),
        }
    }

    fn placement_daily(&self, totals: &Totals, placement: PlacementId) -> Vec<PlacementDaily> {
        let empty = PlacementDay::default();
        (0..self.window.dates.len())
            .map(|day| {
                let figures = totals.placement_days.get(&(placement, day as u32)).unwrap_or(&empty);
                PlacementDaily {
                    date: self.window.dates[day].to_string(),
                    impressions: figures.impressions,
                    clicks: figures.clicks,
                    ctr: ratio(figures.clicked_impressions as f64, figures.impressions as f64),
                    value: Amount(figures.value),
                }
            })
            .collect()
    }

    fn top_items(&self, totals: &Totals, placement: PlacementId) -> Vec<ItemClicks> {
        let mut items: Vec<ItemClicks> = totals
            .placement_items
            .iter()
            .filter(|((id, _), _)| *id == placement)
            .map(|((_, item), clicks)| ItemClicks { item: self.text(*item), clicks: *clicks })
            .collect();
        items.sort_by(|a, b| b.clicks.cmp(&a.clicks).then_with(|| a.item.cmp(&b.item)));
        items.truncate(TOP_ITEMS_MAX);
        items
    }

    fn placement_rows(&self, totals: &Totals) -> Vec<PlacementRow> {
        let mut rows: Vec<PlacementRow> = totals
            .placements
            .iter()
            .filter(|(_, row)| row.present)
            .map(|(&id, row)| {
                let (placement, kind) = self.dictionary.placements[id as usize];
                PlacementRow {
                    placement: self.text(placement),
                    kind: kind.as_str().to_string(),
                    figures: placement_figures(row),
                    daily: self.placement_daily(totals, id),
                    top_items: self.top_items(totals, id),
                    positions: (kind == Kind::Recommendation).then(|| positions(totals, id)),
                }
            })
            .collect();
        rows.sort_by(|a, b| a.placement.cmp(&b.placement).then_with(|| a.kind.cmp(&b.kind)));
        rows
    }

    fn rollup_rows<'t>(
        &'t self,
        rollups: &'t rustc_hash::FxHashMap<Sym, RollupTotals>,
    ) -> impl Iterator<Item = (String, u64, u64, PlacementFigures)> + 't {
        let mut rows: Vec<(String, &RollupTotals)> = rollups
            .iter()
            .filter(|(_, rollup)| rollup.figures.present || rollup.started > 0)
            .map(|(&sym, rollup)| (self.text(sym), rollup))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.into_iter().map(|(name, rollup)| {
            (name, rollup.started, rollup.profiles.len() as u64, placement_figures(&rollup.figures))
        })
    }

    fn journey_figures(&self, totals: &JourneyTotals) -> JourneyFigures {
        JourneyFigures {
            started: totals.started,
            completed: totals.completed,
            cancelled: totals.cancelled,
            notifications: totals.notifications,
            channels: totals.channels.iter().map(|(&sym, &count)| (self.text(sym), count)).collect(),
            converted: totals.converted,
            conversion_rate: count_ratio(totals.converted, totals.started),
        }
    }

    fn journeys(&self, totals: &Totals) -> Journeys {
        let mut sum = JourneyTotals::default();
        let mut rows = Vec::new();
        for (&journey, row) in &totals.journeys {
            sum.started += row.started;
            sum.completed += row.completed;
            sum.cancelled += row.cancelled;
            sum.notifications += row.notifications;
            sum.converted += row.converted;
            for (&channel, &count) in &row.channels {
                *sum.channels.entry(channel).or_default() += count;
            }
            rows.push(JourneyRow { journey: self.text(journey), figures: self.journey_figures(row) });
        }
        rows.sort_by(|a, b| a.journey.cmp(&b.journey));
        Journeys { total: self.journey_figures(&sum), journeys: rows }
    }

    fn topics(&self, totals: &Totals) -> Vec<TopicRow> {
        let mut rows: Vec<TopicRow> = totals
            .topics
            .iter()
            .map(|(&label, &(visitors, converted))| TopicRow { label: self.text(label), visitors, converted })
            .collect();
        rows.sort_by(|a, b| a.label.cmp(&b.label));
        rows
    }

    /// Per attribute, one row per value of a session in range or of an in-range order's
    /// session, by sessions (most first), then value (SPEC section 9.2).
    fn breakdowns(&self, totals: &Totals) -> Breakdowns {
        let mut lists: [Vec<BreakdownRow>; 4] = Default::default();
        for (&key, row) in &totals.breakdowns {
            if row.sessions == 0 && row.orders == 0 {
                continue;
            }
            let (dimension, value) = crate::breakdown::name(key, |sym| self.text(sym));
            lists[dimension].push(BreakdownRow {
                value,
                sessions: row.sessions,
                personalized_sessions: row.personalized_sessions,
                bounce_rate: count_ratio(row.bounced_sessions, row.sessions),
                conversion_rate: count_ratio(row.sessions_with_order, row.sessions),
                orders: row.orders,
                revenue: Amount(row.revenue),
                aov: money_ratio(row.revenue, row.orders),
                attributed_orders: Shares(row.attributed_shares),
                attributed_value: Amount(row.attributed_value),
                recommendation_sessions: row.recommendation_sessions,
                recommendation_ctr: count_ratio(row.recommendation_ctr_sessions, row.recommendation_sessions),
            });
        }
        for list in &mut lists {
            list.sort_by(|a, b| b.sessions.cmp(&a.sessions).then_with(|| a.value.cmp(&b.value)));
        }
        let [device, visitor_type, channel, landing_page_type] = lists;
        Breakdowns { device, visitor_type, channel, landing_page_type }
    }

    /// One row per goal with an event in range, by name (SPEC section 9.4).
    fn goals(&self, totals: &Totals) -> Vec<GoalRow> {
        let mut rows: Vec<GoalRow> = totals
            .goals
            .iter()
            .filter(|(_, row)| row.completions > 0)
            .map(|(&goal, row)| GoalRow {
                goal: self.text(goal),
                completions: row.completions,
                sessions: row.sessions,
                personalized_sessions: row.personalized_sessions,
                value: Amount(row.value),
                conversion_rate: count_ratio(row.sessions, totals.sessions),
                personalized_conversion_rate: count_ratio(row.personalized_sessions, totals.personalized_sessions),
            })
            .collect();
        rows.sort_by(|a, b| a.goal.cmp(&b.goal));
        rows
    }

    fn recent_conversions(&self, totals: &mut Totals) -> Vec<RecentConversion> {
        totals.trim_recent();
        totals
            .recent
            .iter()
            .map(|candidate| RecentConversion {
                time: format_utc_millis(candidate.ts),
                order_id: candidate.order_id.clone(),
                visitor_id: candidate.visitor.clone(),
                revenue: Amount(Money(candidate.net).to_exact()),
                placement: candidate.placement.clone(),
                variants: candidate.variants.iter().cloned().collect(),
            })
            .collect()
    }

    fn experiments(&self, totals: &Totals) -> Vec<ExperimentRow> {
        let mut rows: Vec<ExperimentRow> = totals
            .experiments
            .iter()
            .filter_map(|(&experiment, groups)| self.experiment(&self.text(experiment), groups))
            .collect();
        rows.sort_by(|a, b| a.experiment.cmp(&b.experiment));
        rows
    }

    fn experiment(&self, name: &str, groups: &rustc_hash::FxHashMap<Sym, VariantTotals>) -> Option<ExperimentRow> {
        let mut groups: Vec<(String, &VariantTotals)> = groups
            .iter()
            .filter(|(_, group)| group.visitors > 0)
            .map(|(&variant, group)| (self.text(variant), group))
            .collect();
        if groups.is_empty() {
            return None;
        }
        let control_name = self.settings.control_variant(name).to_string();
        groups.sort_by(|a, b| (a.0 != control_name).cmp(&(b.0 != control_name)).then_with(|| a.0.cmp(&b.0)));
        let control = groups.iter().find(|(variant, _)| *variant == control_name).map(|(_, group)| *group);
        let tuning = self.settings.sequential_tuning_visitors;
        let mut variants: Vec<VariantRow> = groups
            .iter()
            .map(|(variant, group)| {
                variant_row(variant, group, (*variant != control_name).then_some(control).flatten(), tuning)
            })
            .collect();
        let paired: Vec<_> = groups.iter().map(|(_, group)| group.paired_sums()).collect();
        let adjustment = cuped(&paired, MONEY_UNIT);
        if let Some(control_index) = groups.iter().position(|(variant, _)| *variant == control_name) {
            add_cuped_lifts(&mut variants, &adjustment.adjusted, control_index);
        }
        add_holm_adjusted_p_values(&mut variants);
        let observed: Vec<u64> = groups.iter().map(|(_, group)| group.visitors).collect();
        let shares: Option<Vec<f64>> = match self.settings.expected_split(name) {
            None => Some(vec![1.0; groups.len()]),
            Some(split) => groups.iter().map(|(variant, _)| split.get(variant).copied()).collect(),
        };
        let srm_p_value = shares.and_then(|shares| chi_square_p_value(&observed, &shares));
        let visitors: u64 = observed.iter().sum();
        let converted: u64 = groups.iter().map(|(_, group)| group.converted).sum();
        let orders: u64 = groups.iter().map(|(_, group)| group.orders).sum();
        let revenue = money_units(groups.iter().map(|(_, group)| group.revenue).sum());
        Some(ExperimentRow {
            experiment: name.to_string(),
            control: control_name,
            visitors,
            srm_p_value,
            srm_warning: srm_p_value.map(|p_value| p_value < SRM_WARNING_P_VALUE),
            cuped_theta: adjustment.theta,
            cuped_variance_reduction: adjustment.variance_reduction,
            funnel: Funnel {
                visitors,
                variants: groups
                    .iter()
                    .map(|(variant, group)| (variant.clone(), group.visitors))
                    .collect::<BTreeMap<_, _>>(),
                converted,
                orders,
                aov: money_ratio(revenue, orders),
                revenue: Amount(revenue),
            },
            variants,
        })
    }
}

/// Positions 1 to the longest `items` among the placement's impressions in range:
/// impressions with at least that many items, and clicks at that position.
fn positions(totals: &Totals, placement: PlacementId) -> Vec<PositionRow> {
    let lengths: Vec<(u32, u64)> = totals
        .impression_lengths
        .iter()
        .filter(|((id, _), count)| *id == placement && **count > 0)
        .map(|(&(_, length), &count)| (length, count))
        .collect();
    let longest = lengths.iter().map(|(length, _)| *length).max().unwrap_or(0);
    (1..=longest)
        .map(|position| {
            let product_impressions: u64 =
                lengths.iter().filter(|(length, _)| *length >= position).map(|(_, count)| count).sum();
            let clicks = totals.position_clicks.get(&(placement, position)).copied().unwrap_or(0);
            PositionRow { position, product_impressions, clicks, ctr: count_ratio(clicks, product_impressions) }
        })
        .collect()
}

fn money_units(units: i128) -> Exact {
    Exact(units * upshot_model::money::EXACT_UNITS_PER_MONEY_UNIT)
}

/// One variant's figures; lifts against `control` unless it is the control itself,
/// with their always-valid intervals (SPEC section 9.5, tuned at `tuning` visitors).
fn variant_row(variant: &str, group: &VariantTotals, control: Option<&VariantTotals>, tuning: u64) -> VariantRow {
    let revenue = money_units(group.revenue);
    let mut row = VariantRow {
        variant: variant.to_string(),
        visitors: group.visitors,
        converted: group.converted,
        conversion_rate: count_ratio(group.converted, group.visitors),
        orders: group.orders,
        revenue: Amount(revenue),
        aov: money_ratio(revenue, group.orders),
        revenue_per_visitor: money_ratio(revenue, group.visitors),
        incremental_revenue: None,
        cr_lift: None,
        cr_lift_ci: None,
        cr_lift_p_value: None,
        rpv_lift: None,
        rpv_lift_ci: None,
        rpv_lift_p_value: None,
        rpv_lift_cuped: None,
        rpv_lift_cuped_ci: None,
        rpv_lift_cuped_p_value: None,
        cr_lift_p_value_adjusted: None,
        rpv_lift_p_value_adjusted: None,
        cr_lift_ci_sequential: None,
        rpv_lift_ci_sequential: None,
    };
    let Some(control) = control else {
        return row;
    };
    // revenue - visitors x control revenue per visitor, kept exact as a rational.
    let expected = money_units(control.revenue).scale(i128::from(group.visitors), i128::from(control.visitors));
    row.incremental_revenue = Some(Amount(revenue - expected));
    let both = group.visitors + control.visitors;
    let sequential = |lift: &Lift| always_valid_interval(lift.lift, lift.se, both, tuning);
    let cr = proportion_estimate(group.converted, group.visitors)
        .zip(proportion_estimate(control.converted, control.visitors))
        .and_then(|(v, c)| relative_lift(v, c));
    if let Some(lift) = cr {
        (row.cr_lift, row.cr_lift_ci, row.cr_lift_p_value) = (Some(lift.lift), Some(lift.interval), lift.p_value);
        row.cr_lift_ci_sequential = sequential(&lift);
    }
    let rpv = mean_estimate(group.visitors, group.revenue, group.revenue_squares, MONEY_UNIT)
        .zip(mean_estimate(control.visitors, control.revenue, control.revenue_squares, MONEY_UNIT))
        .and_then(|(v, c)| relative_lift(v, c));
    if let Some(lift) = rpv {
        (row.rpv_lift, row.rpv_lift_ci, row.rpv_lift_p_value) = (Some(lift.lift), Some(lift.interval), lift.p_value);
        row.rpv_lift_ci_sequential = sequential(&lift);
    }
    row
}

/// The CUPED lift of each non-control variant whose plain revenue-per-visitor lift is
/// defined, against the adjusted control mean when that is positive (SPEC section 9.5).
fn add_cuped_lifts(variants: &mut [VariantRow], adjusted: &[Option<crate::stats::GroupEstimate>], control: usize) {
    let Some(adjusted_control) = adjusted[control].filter(|estimate| estimate.mean > 0.0) else {
        return;
    };
    for (index, row) in variants.iter_mut().enumerate() {
        if index == control || row.rpv_lift.is_none() {
            continue;
        }
        if let Some(lift) = adjusted[index].and_then(|estimate| relative_lift(estimate, adjusted_control)) {
            (row.rpv_lift_cuped, row.rpv_lift_cuped_ci, row.rpv_lift_cuped_p_value) =
                (Some(lift.lift), Some(lift.interval), lift.p_value);
        }
    }
}

/// Holm-Bonferroni over one experiment: the family is every non-null conversion-rate
/// and revenue-per-visitor lift p-value of its variants.
fn add_holm_adjusted_p_values(variants: &mut [VariantRow]) {
    let family: Vec<f64> =
        variants.iter().flat_map(|row| [row.cr_lift_p_value, row.rpv_lift_p_value]).flatten().collect();
    let mut adjusted = holm_adjusted(&family).into_iter();
    for row in variants.iter_mut() {
        if row.cr_lift_p_value.is_some() {
            row.cr_lift_p_value_adjusted = adjusted.next();
        }
        if row.rpv_lift_p_value.is_some() {
            row.rpv_lift_p_value_adjusted = adjusted.next();
        }
    }
}
