//! Crediting one counted order (SPEC sections 4 and 8): the order's own figures,
//! order-level credit under the report's model, and item-level direct and assisted
//! revenue. The per-visitor pass (`visitor.rs`) and the fold of a backend's facts
//! (`fold.rs`) both call these functions: each rule lives here once. The callers only
//! say, for each touch and click, when it was, which rows it counts in, whether the
//! filter keeps it, and which item it clicked.

use upshot_model::Exact;

use crate::accumulate::Totals;
use crate::attribution::{split_order, Credit, Model};
use crate::dataset::{Dictionary, PlacementTouch};
use crate::query::Window;

/// `time_decay` halves a touch's weight every 7 days (SPEC section 8).
pub(crate) const TIME_DECAY_HALF_LIFE_MS: i64 = 7 * 86_400_000;

/// A qualifying touch or a recommendation click, as crediting sees it. `item` is
/// whatever the caller compares line items with (a symbol, or a string), with a value
/// that matches no line when the click carried none.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CreditTouch<K> {
    pub ts: i64,
    /// The rows it counts in; `None` when they cannot be known (it then earns nothing).
    pub at: Option<PlacementTouch>,
    /// Whether the report's filter keeps credit through it.
    pub passes: bool,
    pub item: K,
}

impl<K> CreditTouch<K> {
    fn credited_rows(&self) -> Option<PlacementTouch> {
        self.at.filter(|_| self.passes)
    }
}

/// The order's own figures: in range, an order of the overview and of its date; in a
/// personalized session also personalized revenue, or the previous period's.
pub(crate) fn count_order(totals: &mut Totals, window: &Window, ts: i64, net: Exact, personalized: bool) {
    let in_range = window.contains(ts);
    if personalized {
        if in_range {
            totals.personalized_orders += 1;
            totals.personalized_revenue += net;
            totals.daily_personalized_revenue[window.day_index(ts)] += net;
        } else if window.previous_start <= ts && ts < window.start {
            totals.previous_personalized_revenue += net;
        }
    }
    if in_range {
        totals.orders += 1;
        totals.revenue += net;
        let day = &mut totals.daily[window.day_index(ts)];
        day.orders += 1;
        day.revenue += net;
    }
}

/// Order-level credit of an order in range: `net` split over `touches` (those of the
/// attribution window, in (ts, event_id) order) by `model`, added to the rows of each
/// touch the filter keeps and to its placement's day. Returns the order's credit that
/// the filter kept (shares, value): its attributed orders and value.
#[allow(clippy::too_many_arguments)]
pub(crate) fn credit_order_level<K>(
    model: Model,
    order_ts: i64,
    net: Exact,
    touches: &[CreditTouch<K>],
    window: &Window,
    dictionary: &Dictionary,
    totals: &mut Totals,
    buffers: &mut (Vec<i64>, Vec<Credit>),
) -> (i128, Exact) {
    if touches.is_empty() {
        return (0, Exact::ZERO);
    }
    let (ages, credits) = buffers;
    ages.clear();
    ages.extend(touches.iter().map(|touch| order_ts - touch.ts));
    split_order(model, net, ages, TIME_DECAY_HALF_LIFE_MS, credits);
    let day = window.day_index(order_ts) as u32;
    let (mut shares, mut value) = (0, Exact::ZERO);
    for (touch, credit) in touches.iter().zip(credits.iter()) {
        let Some(at) = touch.credited_rows() else { continue };
        totals.placement_days.entry((at.placement, day)).or_default().value += credit.value;
        totals.update_rows(dictionary, &at, |row| {
            row.order_shares += credit.share;
            row.value += credit.value;
        });
        shares += credit.share;
        value += credit.value;
    }
    (shares, value)
}

/// Item-level credit of an order with recommendation `clicks` (those of the
/// recommendation window, in (ts, event_id) order): each line is direct when a click
/// carried its item (the latest such click earns it), else assisted (the latest click
/// earns it); an order without lines is assisted whole. Credit is added only for an
/// order in range. Returns whether the order has a direct line whose click the filter
/// keeps.
pub(crate) fn credit_item_level<K: PartialEq + Copy>(
    net: Exact,
    in_range: bool,
    clicks: &[CreditTouch<K>],
    lines: impl Iterator<Item = (K, u32, i64)> + Clone,
    dictionary: &Dictionary,
    totals: &mut Totals,
) -> bool {
    let Some(latest) = clicks.last() else {
        return false;
    };
    if lines.clone().next().is_none() {
        if in_range {
            credit_line(latest, net, false, dictionary, totals);
        }
        return false;
    }
    let line_total: i128 = lines.clone().map(|(_, quantity, price)| i128::from(quantity) * i128::from(price)).sum();
    let mut has_direct_line = false;
    for (item, quantity, price) in lines {
        let value =
            if line_total == 0 { Exact::ZERO } else { net.scale(i128::from(quantity) * i128::from(price), line_total) };
        let (click, direct) = match clicks.iter().rev().find(|click| click.item == item) {
            Some(click) => (click, true),
            None => (latest, false),
        };
        has_direct_line |= direct && click.credited_rows().is_some();
        if in_range {
            credit_line(click, value, direct, dictionary, totals);
        }
    }
    has_direct_line
}

fn credit_line<K>(click: &CreditTouch<K>, value: Exact, direct: bool, dictionary: &Dictionary, totals: &mut Totals) {
    let Some(at) = click.credited_rows() else { return };
    if direct {
        totals.direct_lines += 1;
        totals.direct_revenue += value;
        totals.update_rows(dictionary, &at, |row| row.direct_revenue += value);
    } else {
        totals.assisted_revenue += value;
        totals.update_rows(dictionary, &at, |row| row.assisted_revenue += value);
    }
}
