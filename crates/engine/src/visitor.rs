//! The per-visitor pass: one visitor's events, in (ts, event_id) order, become sessions,
//! touches, credited orders and counts, added to `Totals`. All of SPEC sections 3 and 4
//! that concern one visitor happens here; nothing here looks at another visitor.

use rustc_hash::FxHashSet as HashSet;

use upshot_model::{Action, Exact, JourneyAction, Kind, Settings};

use crate::accumulate::{targets_of, RecentCandidate, Target, Totals};
use crate::attribution::{Credit, Model};
use crate::breakdown::{self, SessionAttributes, SessionFlags};
use crate::credit::{count_order, credit_item_level, credit_order_level, CreditTouch};
use crate::dataset::{Dictionary, Ev, Payload, PlacementTouch, Span, Sym, VisitorEvents, NONE};
use crate::days::{Accumulator, Active, ACTIVE_WINDOW_MS};
use crate::orders::OrderBook;
use crate::query::{Filter, Window};

const NO_SESSION: u32 = u32::MAX;

/// Everything the pass reads for one visitor and never changes.
pub struct Context<'a> {
    pub dictionary: &'a Dictionary,
    pub visitor: &'a VisitorEvents,
    pub book: &'a OrderBook,
    pub settings: &'a Settings,
    /// The report's range; in a days build, the dates the partials cover.
    pub window: &'a Window,
    /// In a days build, a one-day range for each date of `window`; else empty.
    pub day_windows: &'a [Window],
    pub filter: &'a Filter,
    pub model: Model,
}

#[derive(Clone, Copy, Debug, Default)]
struct Session {
    first_ts: i64,
    attributes: SessionAttributes,
    /// Whether the segment filter keeps it (always without one).
    kept: bool,
    page_views: u32,
    engaged: bool,
    personalized: bool,
    recommendation: bool,
    recommendation_ctr: bool,
    has_order: bool,
    has_direct_order: bool,
}

#[derive(Clone, Copy, Debug)]
struct Order {
    ev: Ev,
    net: Exact,
    net_units: i64,
    lines: Span,
    session: u32,
}

#[derive(Clone, Copy, Debug)]
struct Impression {
    kept: usize,
    session: u32,
    clicked: bool,
}

/// Buffers reused from visitor to visitor, so the pass allocates only as it grows.
#[derive(Default)]
pub struct Scratch {
    kept: Vec<Ev>,
    session_of: Vec<u32>,
    sessions: Vec<Session>,
    orders: Vec<Order>,
    impressions: Vec<Impression>,
    impressions_by_id: Vec<(crate::dataset::TextId, usize)>,
    touches: Vec<Ev>,
    recommendation_clicks: Vec<Ev>,
    shown_items: HashSet<Sym>,
    session_actions: Vec<(u32, Target, bool)>,
    credit_touches: Vec<CreditTouch<Sym>>,
    credit_clicks: Vec<CreditTouch<Sym>>,
    credit_buffers: (Vec<i64>, Vec<Credit>),
    topic_uses: Vec<(Sym, i64)>,
    /// (session, goal) of every goal event, for the sessions that completed a goal.
    goal_sessions: Vec<(u32, Sym)>,
    /// Per kept event: a click's 1-based position in the impression it marks (0: none).
    click_positions: Vec<u32>,
    /// Kept indices of the clicks that carry an item, in order (add_to_cart crediting).
    item_clicks: Vec<usize>,
    assignments: Vec<(Sym, Sym, i64)>,
    /// Days (coverage indices) the visitor was seen on, and saw a recommendation on;
    /// for one range, non-empty is all that matters.
    seen_days: Vec<u32>,
    /// `seen_days` without the segment filter (what lenses without one share).
    all_seen_days: Vec<u32>,
    recommendation_days: Vec<u32>,
    day_buffers: (Vec<u32>, Vec<u32>),
}

impl Context<'_> {
    /// Adds the visitor's events (ordered by (ts, event_id)) to `accumulator`.
    pub fn add_visitor(&self, scratch: &mut Scratch, accumulator: &mut Accumulator) {
        debug_assert!(self.visitor.is_sorted(), "a visitor's events come ordered by (ts, event_id)");
        // Events outside the coverage do not depend on the lens: the first lens counts them.
        if let Accumulator::Days(build) = accumulator {
            if build.keeps_shared {
                let events = &self.visitor.events;
                build.before += events.iter().filter(|ev| ev.ts < self.window.start).count() as u64;
                build.after += events.iter().filter(|ev| ev.ts >= self.window.end).count() as u64;
            }
        }
        self.keep_counted_events(&self.visitor.events, scratch);
        self.form_sessions(scratch);
        for session in &mut scratch.sessions {
            session.kept = self.filter.keeps_session(&session.attributes);
        }
        self.mark_clicked_impressions(scratch);
        for index in 0..scratch.orders.len() {
            self.credit_order(index, scratch, accumulator);
        }
        self.count_events(scratch, accumulator);
        self.count_add_to_carts(scratch, accumulator);
        self.count_sessions(scratch, accumulator);
        self.count_experiments(scratch, accumulator);
        self.count_topics(scratch, accumulator);
    }

    /// The totals an addition keyed on `ts` goes to, with the range they are of: the
    /// report's, or in a days build the day of `ts` (`None` outside the coverage).
    fn slot<'s>(&'s self, accumulator: &'s mut Accumulator, ts: i64) -> Option<(&'s mut Totals, &'s Window)> {
        match accumulator {
            Accumulator::Range(totals) => Some((totals, self.window)),
            Accumulator::Days(build) => {
                if !self.window.contains(ts) {
                    return None;
                }
                let day = self.window.day_index(ts);
                Some((&mut build.days[day], &self.day_windows[day]))
            }
        }
    }

    /// Notes that the visitor was seen at `ts` (in range) in `days`.
    fn note_seen(&self, days: &mut Vec<u32>, ts: i64) {
        if self.day_windows.is_empty() {
            if days.is_empty() {
                days.push(0);
            }
            return;
        }
        let day = self.window.day_index(ts) as u32;
        if days.last() != Some(&day) {
            days.push(day);
        }
    }

    /// An entity with an event at `ts`, for the active counts.
    fn note_active(&self, accumulator: &mut Accumulator, what: Active, sym: Sym, ts: i64) {
        match accumulator {
            Accumulator::Range(totals) => {
                let end = self.window.active_end;
                if end - ACTIVE_WINDOW_MS <= ts && ts < end {
                    let set = match what {
                        Active::Placement => &mut totals.active_placements,
                        Active::Experiment => &mut totals.active_experiments,
                        Active::Journey => &mut totals.active_journeys,
                    };
                    set.insert(sym);
                }
            }
            Accumulator::Days(build) => {
                if self.window.contains(ts) {
                    build.note_active(what, sym, self.window.day_index(ts) as u32, ts);
                }
            }
        }
    }

    /// Drops duplicate and cancelled orders (they are not events at all) and collects
    /// the visitor's orders, touches and recommendation clicks.
    fn keep_counted_events(&self, events: &[Ev], scratch: &mut Scratch) {
        scratch.kept.clear();
        scratch.orders.clear();
        scratch.touches.clear();
        scratch.recommendation_clicks.clear();
        for ev in events {
            match ev.payload {
                Payload::Order { order_id, revenue, lines, sent_with } => {
                    let order_id = self.visitor.texts.get(order_id);
                    let event_id = self.visitor.event_ids.get(ev.event_id);
                    let counted = self.book.counted_net_revenue(order_id, ev.ts, event_id, sent_with, revenue);
                    let Some(net_units) = counted else {
                        continue;
                    };
                    scratch.orders.push(Order {
                        ev: *ev,
                        net: upshot_model::Money(net_units).to_exact(),
                        net_units,
                        lines,
                        session: NO_SESSION,
                    });
                }
                Payload::Interaction { at, action, .. } => {
                    let kind = self.dictionary.placements[at.placement as usize].1;
                    if self.settings.qualifying[kind.index()].qualifies(action) {
                        scratch.touches.push(*ev);
                    }
                    if kind == Kind::Recommendation && action == Action::Click {
                        scratch.recommendation_clicks.push(*ev);
                    }
                }
                _ => {}
            }
            scratch.kept.push(*ev);
        }
    }

    /// Splits web events into sessions at gaps longer than the session gap.
    fn form_sessions(&self, scratch: &mut Scratch) {
        scratch.session_of.clear();
        scratch.sessions.clear();
        scratch.impressions.clear();
        scratch.shown_items.clear();
        scratch.goal_sessions.clear();
        let mut last_web_ts: Option<i64> = None;
        let mut order_index = 0;
        for (kept_index, ev) in scratch.kept.iter().enumerate() {
            if !ev.is_web() {
                scratch.session_of.push(NO_SESSION);
                continue;
            }
            if last_web_ts.is_none_or(|last| ev.ts - last > self.settings.session_gap_ms) {
                // Landed on this event until a page view comes (SPEC section 9.1); the
                // visitor's first session over all its events is its `new` one.
                let attributes = SessionAttributes {
                    landing: ev.landing,
                    landing_page_type: ev.page_type,
                    new: scratch.sessions.is_empty(),
                };
                scratch.sessions.push(Session { first_ts: ev.ts, attributes, ..Session::default() });
                scratch.shown_items.clear();
            }
            last_web_ts = Some(ev.ts);
            let session_index = (scratch.sessions.len() - 1) as u32;
            scratch.session_of.push(session_index);
            let session = scratch.sessions.last_mut().expect("a session was just pushed");
            match ev.payload {
                Payload::PageView => {
                    if session.page_views == 0 {
                        session.attributes.landing = ev.landing;
                        session.attributes.landing_page_type = ev.page_type;
                    }
                    session.page_views += 1;
                }
                Payload::Impression { at, items } => {
                    scratch.impressions.push(Impression { kept: kept_index, session: session_index, clicked: false });
                    if self.filter.passes(self.dictionary, at.placement, ev) {
                        session.personalized = true;
                        if self.dictionary.placements[at.placement as usize].1 == Kind::Recommendation {
                            session.recommendation = true;
                            scratch.shown_items.extend(&self.visitor.items[items.range()]);
                        }
                    }
                }
                Payload::ProductView { item } => {
                    session.engaged = true;
                    if scratch.shown_items.contains(&item) {
                        session.recommendation_ctr = true;
                    }
                }
                Payload::Order { .. } => {
                    session.engaged = true;
                    session.has_order = true;
                    // Orders are kept in the same order as `kept`, so they meet in step.
                    scratch.orders[order_index].session = session_index;
                    order_index += 1;
                }
                Payload::Goal { goal, .. } => {
                    session.engaged = true;
                    scratch.goal_sessions.push((session_index, goal));
                }
                Payload::Interaction { .. } | Payload::AddToCart { .. } => session.engaged = true,
                _ => {}
            }
        }
    }

    /// A click with an impression_id marks every impression carrying it; a click
    /// without marks the latest impression of its placement in its session at or
    /// before it. Both lookups stay near-linear however many events a visitor has.
    /// Each click's position (SPEC section 9.3) is read from one impression it marks.
    fn mark_clicked_impressions(&self, scratch: &mut Scratch) {
        scratch.impressions_by_id.clear();
        for (position, impression) in scratch.impressions.iter().enumerate() {
            let id = impression_of(&scratch.kept[impression.kept]).impression_id;
            if id != NONE {
                scratch.impressions_by_id.push((id, position));
            }
        }
        let texts = &self.visitor.texts;
        scratch.impressions_by_id.sort_unstable_by(|a, b| texts.get(a.0).cmp(texts.get(b.0)).then(a.1.cmp(&b.1)));
        scratch.click_positions.clear();
        scratch.click_positions.resize(scratch.kept.len(), 0);
        for (kept_index, ev) in scratch.kept.iter().enumerate() {
            let Payload::Interaction { at, action: Action::Click, item, .. } = ev.payload else {
                continue;
            };
            let marked = if at.impression_id != NONE {
                let wanted = texts.get(at.impression_id);
                let by_id = &scratch.impressions_by_id;
                let first = by_id.partition_point(|&(id, _)| texts.get(id) < wanted);
                let carrying = by_id[first..].iter().take_while(|&&(id, _)| texts.get(id) == wanted);
                let mut marked = None;
                for &(_, position) in carrying {
                    scratch.impressions[position].clicked = true;
                    // The latest carrying it at or before the click, else the earliest.
                    let at_or_before = scratch.kept[scratch.impressions[position].kept].ts <= ev.ts;
                    if marked.is_none() || at_or_before {
                        marked = Some(position);
                    }
                }
                marked
            } else {
                self.latest_impression_of_placement(scratch, kept_index, ev)
            };
            if let Some(position) = marked {
                scratch.impressions[position].clicked = true;
                scratch.click_positions[kept_index] = self.item_position(scratch, position, item);
            }
        }
    }

    /// The latest impression of the click's placement in its session at or before it.
    /// Impressions are in time order and a session's are contiguous: walk back from the
    /// last one at or before the click until the session changes.
    fn latest_impression_of_placement(&self, scratch: &Scratch, kept_index: usize, click: &Ev) -> Option<usize> {
        let Payload::Interaction { at, .. } = click.payload else { return None };
        let session = scratch.session_of[kept_index];
        let placement_text = self.dictionary.placements[at.placement as usize].0;
        let kept = &scratch.kept;
        let end = scratch.impressions.partition_point(|impression| kept[impression.kept].ts <= click.ts);
        (0..end).rev().take_while(|&position| scratch.impressions[position].session == session).find(|&position| {
            let candidate = impression_of(&kept[scratch.impressions[position].kept]);
            self.dictionary.placements[candidate.placement as usize].0 == placement_text
        })
    }

    /// The 1-based position of the first occurrence of `item` in the impression's
    /// items; 0 when the click has no item or the impression does not show it.
    fn item_position(&self, scratch: &Scratch, impression: usize, item: Sym) -> u32 {
        let Payload::Impression { items, .. } = scratch.kept[scratch.impressions[impression].kept].payload else {
            return 0;
        };
        if item == NONE {
            return 0;
        }
        let shown = &self.visitor.items[items.range()];
        shown.iter().position(|&shown_item| shown_item == item).map_or(0, |index| index as u32 + 1)
    }

    /// Order-level and item-level credit of one order, and the order's own figures
    /// (the rules are in `credit.rs`, shared with the fold of a backend's facts).
    fn credit_order(&self, index: usize, scratch: &mut Scratch, accumulator: &mut Accumulator) {
        let order = scratch.orders[index];
        // Under a segment filter an order counts, and earns credit, only when its own
        // session has the value (attribution still looked at every touch).
        if order.session != NO_SESSION && !scratch.sessions[order.session as usize].kept {
            return;
        }
        // Outside a days build's coverage nothing is added; the session still learns
        // whether the order had a direct line.
        let mut spare: Option<Totals> = None;
        let (totals, window) = match self.slot(accumulator, order.ev.ts) {
            Some(slot) => slot,
            None => (spare.insert(Totals::default()), self.window),
        };
        let in_range = window.contains(order.ev.ts);
        let touches = window_slice(&scratch.touches, order.ev.ts, self.settings.attribution_window_ms);
        let last_touch = touches.last().copied();
        let as_credit = |ev: &Ev| {
            let at = interaction_of(ev);
            let item = match ev.payload {
                Payload::Interaction { item, .. } => item,
                _ => NONE,
            };
            CreditTouch { ts: ev.ts, at: Some(at), passes: self.filter.passes(self.dictionary, at.placement, ev), item }
        };
        // Order-level credit is for orders in range only: only they need their touches.
        scratch.credit_touches.clear();
        if in_range {
            scratch.credit_touches.extend(touches.iter().map(as_credit));
        }
        let clicks = window_slice(&scratch.recommendation_clicks, order.ev.ts, self.settings.recommendation_window_ms);
        scratch.credit_clicks.clear();
        scratch.credit_clicks.extend(clicks.iter().map(as_credit));
        let mut credit = (0, Exact::ZERO);
        if in_range {
            let buffers = &mut scratch.credit_buffers;
            credit = credit_order_level(
                self.model,
                order.ev.ts,
                order.net,
                &scratch.credit_touches,
                window,
                self.dictionary,
                totals,
                buffers,
            );
        }
        let lines = self.visitor.lines[order.lines.range()].iter().map(|line| (line.item, line.quantity, line.price));
        let has_direct_line =
            credit_item_level(order.net, in_range, &scratch.credit_clicks, lines, self.dictionary, totals);
        let mut personalized = false;
        if order.session != NO_SESSION {
            let session = &mut scratch.sessions[order.session as usize];
            session.has_direct_order |= has_direct_line;
            personalized = session.personalized;
            if in_range {
                breakdown::add_order(totals, &session.attributes.rows(), order.net, credit);
            }
        }
        count_order(totals, window, order.ev.ts, order.net, personalized);
        if !in_range || !totals.may_be_recent(order.ev.ts, self.visitor.event_ids.get(order.ev.event_id)) {
            return;
        }
        let Payload::Order { order_id, .. } = order.ev.payload else { unreachable!("orders hold order events") };
        let text = |sym: Sym| self.dictionary.strings.resolve(sym).to_string();
        let variants = scratch.assignments_before(&scratch.kept, order.ev.ts);
        totals.push_recent(RecentCandidate {
            ts: order.ev.ts,
            event_id: String::from_utf8_lossy(self.visitor.event_ids.get(order.ev.event_id)).into_owned(),
            order_id: String::from_utf8_lossy(self.visitor.texts.get(order_id)).into_owned(),
            visitor: self.visitor.visitor.clone(),
            net: order.net_units,
            placement: last_touch
                .map(|touch| self.dictionary.placement_text(interaction_of(&touch).placement).to_string()),
            variants: variants.into_iter().map(|(experiment, variant)| (text(experiment), text(variant))).collect(),
        });
    }

    /// Counts of events in range: impressions, clicks, converted clicks, journeys,
    /// sequence starts, active counts, visitors.
    fn count_events(&self, scratch: &mut Scratch, accumulator: &mut Accumulator) {
        scratch.seen_days.clear();
        scratch.all_seen_days.clear();
        scratch.recommendation_days.clear();
        scratch.session_actions.clear();
        let mut impression_index = 0;
        for (kept_index, ev) in scratch.kept.iter().enumerate() {
            let in_range = self.window.contains(ev.ts);
            // A web event counts only when the segment filter keeps its session.
            let kept_session = scratch.session_kept(kept_index);
            if in_range && ev.is_web() {
                self.note_seen(&mut scratch.all_seen_days, ev.ts);
                if kept_session {
                    self.note_seen(&mut scratch.seen_days, ev.ts);
                }
            }
            match ev.payload {
                Payload::Impression { at, items } => {
                    let clicked = scratch.impressions[impression_index].clicked;
                    impression_index += 1;
                    if !kept_session || !self.filter.passes(self.dictionary, at.placement, ev) {
                        continue;
                    }
                    let (placement_text, kind) = self.dictionary.placements[at.placement as usize];
                    self.note_active(accumulator, Active::Placement, placement_text, ev.ts);
                    let Some((totals, window)) = self.slot(accumulator, ev.ts).filter(|_| in_range) else {
                        continue;
                    };
                    let is_recommendation = kind == Kind::Recommendation;
                    if is_recommendation {
                        self.note_seen(&mut scratch.recommendation_days, ev.ts);
                        *totals.impression_lengths.entry((at.placement, items.len)).or_default() += 1;
                    }
                    let day = totals.placement_days.entry((at.placement, window.day_index(ev.ts) as u32)).or_default();
                    day.impressions += 1;
                    day.clicked_impressions += u64::from(clicked);
                    totals.update_rows(self.dictionary, &at, |row| {
                        row.impressions += 1;
                        row.product_impressions += u64::from(items.len);
                        row.clicked_impressions += u64::from(clicked);
                        row.recommendation_events += u64::from(is_recommendation);
                    });
                }
                Payload::Interaction { at, action, item, .. } => {
                    if !kept_session || !self.filter.passes(self.dictionary, at.placement, ev) {
                        continue;
                    }
                    let session = scratch.session_of[kept_index];
                    if action != Action::Discard && session != NO_SESSION {
                        for target in targets_of(self.dictionary, &at).into_iter().flatten() {
                            scratch.session_actions.push((session, target, action == Action::Click));
                        }
                    }
                    let Some((totals, window)) = self.slot(accumulator, ev.ts).filter(|_| in_range) else {
                        continue;
                    };
                    let is_recommendation = self.dictionary.placements[at.placement as usize].1 == Kind::Recommendation;
                    let click = action == Action::Click;
                    let converted =
                        is_recommendation && click && item != NONE && self.click_converts(ev, item, scratch);
                    if click {
                        let day = (at.placement, window.day_index(ev.ts) as u32);
                        totals.placement_days.entry(day).or_default().clicks += 1;
                        if item != NONE {
                            *totals.placement_items.entry((at.placement, item)).or_default() += 1;
                        }
                        let position = scratch.click_positions[kept_index];
                        if is_recommendation && position > 0 {
                            *totals.position_clicks.entry((at.placement, position)).or_default() += 1;
                        }
                    }
                    totals.update_rows(self.dictionary, &at, |row| {
                        row.clicks += u64::from(click);
                        row.recommendation_events += u64::from(is_recommendation);
                        row.recommendation_clicks += u64::from(is_recommendation && click);
                        row.converted_clicks += u64::from(converted);
                    });
                }
                Payload::Assignment { experiment, .. } => {
                    self.note_active(accumulator, Active::Experiment, experiment, ev.ts);
                }
                Payload::Journey { journey, action, channel } => {
                    self.note_active(accumulator, Active::Journey, journey, ev.ts);
                    if let Some((totals, _)) = self.slot(accumulator, ev.ts).filter(|_| in_range) {
                        count_journey(totals, journey, action, channel);
                    }
                }
                Payload::Goal { goal, value } if in_range && kept_session => {
                    let Some((totals, _)) = self.slot(accumulator, ev.ts) else { continue };
                    let row = totals.goals.entry(goal).or_default();
                    row.completions += 1;
                    row.value += upshot_model::Money(value).to_exact();
                }
                Payload::SequenceStart { sequence, campaign } if in_range => {
                    let Some((totals, _)) = self.slot(accumulator, ev.ts) else { continue };
                    let person = if ev.profile != NONE { ev.profile } else { self.visitor.visitor_sym };
                    for rollup in [
                        Some(totals.sequences.entry(sequence).or_default()),
                        (campaign != NONE).then(|| totals.campaigns.entry(campaign).or_default()),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        rollup.started += 1;
                        rollup.profiles.insert(person);
                    }
                }
                _ => {}
            }
        }
        match accumulator {
            Accumulator::Range(totals) => {
                totals.visitors += u64::from(!scratch.seen_days.is_empty());
                totals.recommendation_visitors += u64::from(!scratch.recommendation_days.is_empty());
            }
            Accumulator::Days(build) => {
                if build.keeps_shared {
                    build.visitors.add_visitor(&mut scratch.all_seen_days);
                }
                if self.filter.has_segment() {
                    build.segment_visitors.add_visitor(&mut scratch.seen_days);
                }
                build.recommendation_visitors.add_visitor(&mut scratch.recommendation_days);
            }
        }
    }

    /// An add_to_cart of item `p` in range is credited to the placement of the latest
    /// click (by (ts, event_id), at or before the add_to_cart's ts) carrying `p` in the
    /// same session, of any kind; the filters keep it when that click passes them.
    fn count_add_to_carts(&self, scratch: &mut Scratch, accumulator: &mut Accumulator) {
        scratch.item_clicks.clear();
        for (kept_index, ev) in scratch.kept.iter().enumerate() {
            if let Payload::Interaction { action: Action::Click, item, .. } = ev.payload {
                if item != NONE {
                    scratch.item_clicks.push(kept_index);
                }
            }
        }
        for (kept_index, ev) in scratch.kept.iter().enumerate() {
            let Payload::AddToCart { item } = ev.payload else { continue };
            if !self.window.contains(ev.ts) || !scratch.session_kept(kept_index) {
                continue;
            }
            let session = scratch.session_of[kept_index];
            let kept = &scratch.kept;
            let end = scratch.item_clicks.partition_point(|&click| kept[click].ts <= ev.ts);
            let crediting = scratch.item_clicks[..end]
                .iter()
                .rev()
                .take_while(|&&click| scratch.session_of[click] == session)
                .map(|&click| &kept[click])
                .find(|click| matches!(click.payload, Payload::Interaction { item: clicked, .. } if clicked == item));
            let Some(click) = crediting else { continue };
            let at = interaction_of(click);
            if !self.filter.passes(self.dictionary, at.placement, click) {
                continue;
            }
            let Some((totals, _)) = self.slot(accumulator, ev.ts) else { continue };
            totals.update_rows(self.dictionary, &at, |row| row.add_to_carts += 1);
        }
    }

    /// A recommendation click converts when an order of the clicked item follows it
    /// within the recommendation window (even after the range).
    fn click_converts(&self, click: &Ev, item: Sym, scratch: &Scratch) -> bool {
        let horizon = click.ts + self.settings.recommendation_window_ms;
        scratch.orders.iter().any(|order| {
            click.ts <= order.ev.ts
                && order.ev.ts <= horizon
                && self.visitor.lines[order.lines.range()].iter().any(|line| line.item == item)
        })
    }

    fn count_sessions(&self, scratch: &mut Scratch, accumulator: &mut Accumulator) {
        for session in &scratch.sessions {
            if !session.kept || !self.window.contains(session.first_ts) {
                continue;
            }
            let Some((totals, window)) = self.slot(accumulator, session.first_ts) else { continue };
            totals.sessions += 1;
            totals.daily[window.day_index(session.first_ts)].sessions += 1;
            totals.bounced_sessions += u64::from(session.page_views <= 1 && !session.engaged);
            totals.sessions_with_order += u64::from(session.has_order);
            totals.sessions_with_direct_order += u64::from(session.has_direct_order);
            if session.personalized {
                totals.personalized_sessions += 1;
                totals.personalized_sessions_with_order += u64::from(session.has_order);
            }
            if session.recommendation {
                totals.recommendation_sessions += 1;
                totals.recommendation_ctr_sessions += u64::from(session.recommendation_ctr);
                totals.recommendation_sessions_with_direct_order += u64::from(session.has_direct_order);
            }
            let flags = SessionFlags {
                bounced: session.page_views <= 1 && !session.engaged,
                with_order: session.has_order,
                personalized: session.personalized,
                recommendation: session.recommendation,
                recommendation_ctr: session.recommendation && session.recommendation_ctr,
            };
            breakdown::add_session(totals, &session.attributes, flags);
        }
        scratch.goal_sessions.sort_unstable();
        scratch.goal_sessions.dedup();
        for &(session, goal) in &scratch.goal_sessions {
            let session = &scratch.sessions[session as usize];
            if !session.kept || !self.window.contains(session.first_ts) {
                continue;
            }
            let Some((totals, _)) = self.slot(accumulator, session.first_ts) else { continue };
            let row = totals.goals.entry(goal).or_default();
            row.sessions += 1;
            row.personalized_sessions += u64::from(session.personalized);
        }
        scratch.session_actions.sort_unstable();
        scratch.session_actions.dedup();
        for &(session, target, click) in &scratch.session_actions {
            let first_ts = scratch.sessions[session as usize].first_ts;
            if !self.window.contains(first_ts) {
                continue;
            }
            let Some((totals, _)) = self.slot(accumulator, first_ts) else { continue };
            let row = totals.row(target);
            if click {
                row.clicked_sessions += 1;
            } else {
                row.hovered_sessions += 1;
            }
        }
    }

    /// A visitor belongs to the variant of its earliest assignment per experiment, and
    /// counts when that assignment is in range, with its orders at or after it and
    /// before the range's end (a days build keeps the orders' days: any range's end is
    /// applied when the partials are summed), and for CUPED the net revenue of its
    /// orders in the lookback before the assignment.
    fn count_experiments(&self, scratch: &mut Scratch, accumulator: &mut Accumulator) {
        scratch.collect_assignments();
        let window = self.window;
        for &(experiment, variant, assigned_at) in &scratch.assignments {
            if !window.contains(assigned_at) {
                continue;
            }
            let lookback_start = assigned_at - self.settings.cuped_lookback_ms;
            let pre_revenue: i64 = scratch
                .orders
                .iter()
                .filter(|order| lookback_start <= order.ev.ts && order.ev.ts < assigned_at)
                .fold(0i64, |sum, order| sum.saturating_add(order.net_units));
            let after = scratch.orders.iter().filter(|order| assigned_at <= order.ev.ts);
            match accumulator {
                Accumulator::Range(totals) => {
                    let (mut orders, mut revenue) = (0u64, 0i128);
                    for order in after.filter(|order| order.ev.ts < window.end) {
                        orders += 1;
                        revenue += i128::from(order.net_units);
                    }
                    let groups = totals.experiments.entry(experiment).or_default();
                    groups.entry(variant).or_default().add_visitor(orders, revenue, i128::from(pre_revenue));
                }
                Accumulator::Days(build) if !build.keeps_shared => {}
                Accumulator::Days(build) => {
                    let orders = after
                        .filter(|order| window.contains(order.ev.ts))
                        .map(|order| (window.day_index(order.ev.ts) as u32, order.net_units));
                    let assigned_day = window.day_index(assigned_at) as u32;
                    build.add_experiment_row((experiment, variant), assigned_day, orders, pre_revenue);
                }
            }
        }
    }

    /// Per interaction label used in range: the visitor, and whether an order followed
    /// one of those uses within the attribution window.
    fn count_topics(&self, scratch: &mut Scratch, accumulator: &mut Accumulator) {
        scratch.topic_uses.clear();
        for ev in &scratch.kept {
            if let Payload::Interaction { at, label, .. } = ev.payload {
                if label != NONE && self.window.contains(ev.ts) && self.filter.passes(self.dictionary, at.placement, ev)
                {
                    scratch.topic_uses.push((label, ev.ts));
                }
            }
        }
        scratch.topic_uses.sort_unstable();
        let window_ms = self.settings.attribution_window_ms;
        let orders = &scratch.orders;
        let converts =
            |used_at: i64| orders.iter().any(|order| used_at <= order.ev.ts && order.ev.ts <= used_at + window_ms);
        let mut start = 0;
        while start < scratch.topic_uses.len() {
            let label = scratch.topic_uses[start].0;
            let end = start + scratch.topic_uses[start..].partition_point(|use_| use_.0 == label);
            let uses = &scratch.topic_uses[start..end];
            match accumulator {
                Accumulator::Range(totals) => {
                    let topic = totals.topics.entry(label).or_default();
                    topic.0 += 1;
                    topic.1 += u64::from(uses.iter().any(|&(_, used_at)| converts(used_at)));
                }
                Accumulator::Days(build) => {
                    let (used, converting) = &mut scratch.day_buffers;
                    used.clear();
                    converting.clear();
                    for &(_, used_at) in uses {
                        let day = self.window.day_index(used_at) as u32;
                        used.push(day);
                        if converts(used_at) {
                            converting.push(day);
                        }
                    }
                    let topic = build.topics.entry(label).or_default();
                    topic.0.add_visitor(used);
                    topic.1.add_visitor(converting);
                }
            }
            start = end;
        }
    }
}

impl Scratch {
    /// Whether the segment filter keeps the session of the kept event at `kept_index`
    /// (an event outside sessions is not a web event and is never filtered by it).
    fn session_kept(&self, kept_index: usize) -> bool {
        let session = self.session_of[kept_index];
        session == NO_SESSION || self.sessions[session as usize].kept
    }

    /// The earliest assignment per experiment, as (experiment, variant, ts).
    fn collect_assignments(&mut self) {
        self.assignments.clear();
        for ev in &self.kept {
            if let Payload::Assignment { experiment, variant } = ev.payload {
                if !self.assignments.iter().any(|&(seen, _, _)| seen == experiment) {
                    self.assignments.push((experiment, variant, ev.ts));
                }
            }
        }
    }

    /// The visitor's variants (earliest assignment) assigned at or before `ts`.
    fn assignments_before(&self, kept: &[Ev], ts: i64) -> Vec<(Sym, Sym)> {
        let mut variants: Vec<(Sym, Sym)> = Vec::new();
        for ev in kept {
            if let Payload::Assignment { experiment, variant } = ev.payload {
                if !variants.iter().any(|&(seen, _)| seen == experiment) && ev.ts <= ts {
                    variants.push((experiment, variant));
                }
                if ev.ts > ts {
                    break;
                }
            }
        }
        variants
    }
}

fn count_journey(totals: &mut Totals, journey: Sym, action: JourneyAction, channel: Sym) {
    let row = totals.journeys.entry(journey).or_default();
    match action {
        JourneyAction::Started => row.started += 1,
        JourneyAction::Completed => row.completed += 1,
        JourneyAction::Cancelled => row.cancelled += 1,
        JourneyAction::Converted => row.converted += 1,
        JourneyAction::Notification => {
            row.notifications += 1;
            if channel != NONE {
                *row.channels.entry(channel).or_default() += 1;
            }
        }
    }
}

/// The events (ordered by ts) with `order_ts - window_ms <= ts <= order_ts`.
fn window_slice(events: &[Ev], order_ts: i64, window_ms: i64) -> &[Ev] {
    let low = events.partition_point(|ev| ev.ts < order_ts - window_ms);
    let high = events.partition_point(|ev| ev.ts <= order_ts);
    &events[low..high.max(low)]
}

fn interaction_of(ev: &Ev) -> PlacementTouch {
    match ev.payload {
        Payload::Interaction { at, .. } => at,
        _ => unreachable!("touches and clicks are interactions"),
    }
}

fn impression_of(ev: &Ev) -> PlacementTouch {
    match ev.payload {
        Payload::Impression { at, .. } => at,
        _ => unreachable!("impressions are impression events"),
    }
}
