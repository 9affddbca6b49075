//! upshot's engine: from a site's events to every figure of SPEC sections 3 to 5.
//! Synchronous and pure: no IO, no clock (the report range is passed in), no threads of
//! its own. A caller may run several `Worker`s on threads, each fed whole visitors, and
//! `ReportPlan::finish` merges them. Data flows: events -> order book (site-wide) ->
//! per-visitor pass -> totals -> report.

pub mod accumulate;
pub mod attribution;
pub mod breakdown;
mod credit;
pub mod dataset;
pub mod days;
pub mod figures;
mod finish;
mod fold;
pub mod orders;
pub mod query;
pub mod stats;
mod visitor;

pub use attribution::Model;
pub use dataset::{Dataset, Dictionary, VisitorEvents};
pub use figures::Report;
pub use orders::OrderBook;
pub use query::{Query, QueryError};

use upshot_model::{Body, Event, Settings};

use crate::accumulate::Totals;
use crate::days::{Accumulator, DayPartials, DaysBuild, Lens, PartialsError};
use crate::finish::Finisher;
use crate::query::{Filter, Window};
use crate::visitor::{Context, Scratch};

/// A report being computed: the query resolved once, shared by every worker. It may
/// carry companion queries (other ranges, models or filters over the same site): the
/// events are read and converted once, the costly part, and each query adds them to its
/// own totals (`finish_all`).
pub struct ReportPlan<'a> {
    settings: &'a Settings,
    query: &'a Query,
    window: Window,
    companions: Vec<(&'a Query, Window)>,
    /// For day partials: a one-day range for each date of `window` (the coverage);
    /// empty for reports.
    day_windows: Vec<Window>,
}

/// A companion query's share of a worker: its filter and totals.
struct Lane {
    filter: Filter,
    totals: Accumulator,
}

/// One thread's share of a report: its dictionary, totals and buffers.
pub struct Worker {
    pub dictionary: Dictionary,
    pub visitor: VisitorEvents,
    filter: Filter,
    totals: Accumulator,
    scratch: Scratch,
    /// One for each companion query of the plan.
    lanes: Vec<Lane>,
}

impl<'a> ReportPlan<'a> {
    pub fn new(settings: &'a Settings, query: &'a Query) -> Result<ReportPlan<'a>, QueryError> {
        Ok(ReportPlan {
            settings,
            query,
            window: Window::resolve(query)?,
            companions: Vec::new(),
            day_windows: Vec::new(),
        })
    }

    /// A plan that computes day partials (ADR 0008) rather than reports: one set per
    /// lens (each query's model and filters), every one over the first query's dates,
    /// the coverage, which must hold every event the plan is fed.
    pub fn for_day_partials(settings: &'a Settings, lenses: &'a [Query]) -> Result<ReportPlan<'a>, QueryError> {
        let (coverage, others) = lenses.split_first().expect("at least one lens");
        let window = Window::resolve(coverage)?;
        let day_windows = window
            .dates
            .iter()
            .map(|&date| Window::resolve(&Query { from: date, to: date, now_ms: None, ..coverage.clone() }))
            .collect::<Result<_, _>>()?;
        let companions = others.iter().map(|lens| (lens, window.clone())).collect();
        Ok(ReportPlan { settings, query: coverage, window, companions, day_windows })
    }

    /// A plan for `query` and every one of `companions`, computed in the same pass.
    pub fn with_companions(
        settings: &'a Settings,
        query: &'a Query,
        companions: &'a [Query],
    ) -> Result<ReportPlan<'a>, QueryError> {
        let companions = companions
            .iter()
            .map(|companion| Ok((companion, Window::resolve(companion)?)))
            .collect::<Result<_, _>>()?;
        Ok(ReportPlan { settings, query, window: Window::resolve(query)?, companions, day_windows: Vec::new() })
    }

    /// The earliest instant any of the plan's figures looks at (the previous period's
    /// start of its earliest query): a visitor with no event from there to the latest
    /// end counts in no figure.
    pub fn earliest_start(&self) -> i64 {
        self.companions.iter().map(|(_, window)| window.previous_start).fold(self.window.previous_start, i64::min)
    }

    /// The latest end of the plan's queries.
    pub fn latest_end(&self) -> i64 {
        self.companions.iter().map(|(_, window)| window.end).fold(self.window.end, i64::max)
    }

    pub fn worker(&self) -> Worker {
        self.worker_with_dictionary(Dictionary::default())
    }

    /// A worker whose dictionary already holds strings (visitors prepared with it
    /// can be handed over without converting again, as the benchmark does).
    pub fn worker_with_dictionary(&self, mut dictionary: Dictionary) -> Worker {
        let filter = Filter::resolve(self.query, &mut dictionary);
        let lanes = self
            .companions
            .iter()
            .map(|(query, window)| Lane {
                filter: Filter::resolve(query, &mut dictionary),
                totals: self.accumulator(window, false),
            })
            .collect();
        Worker {
            dictionary,
            visitor: VisitorEvents::default(),
            filter,
            totals: self.accumulator(&self.window, true),
            scratch: Scratch::default(),
            lanes,
        }
    }

    /// A worker's accumulator for one query; for day partials, `first` is the lens
    /// that keeps what no filter changes.
    fn accumulator(&self, window: &Window, first: bool) -> Accumulator {
        if self.day_windows.is_empty() {
            Accumulator::Range(Box::new(Totals::new(window.dates.len())))
        } else {
            Accumulator::Days(Box::new(DaysBuild::new(window.dates.len(), first)))
        }
    }

    /// Merges the workers' day partials (of a plan made by `for_day_partials`).
    pub fn finish_day_partials(&self, workers: Vec<Worker>) -> Result<DayPartials, PartialsError> {
        let days = self.window.dates.len();
        let builds = |worker: Worker| {
            let accumulators = std::iter::once(worker.totals).chain(worker.lanes.into_iter().map(|lane| lane.totals));
            let builds = accumulators
                .enumerate()
                .map(|(index, accumulator)| match accumulator {
                    Accumulator::Days(build) => *build,
                    Accumulator::Range(_) => DaysBuild::new(days, index == 0),
                })
                .collect();
            (worker.dictionary, builds)
        };
        let lenses = self.queries().map(|(query, _)| Lens::of(query)).collect();
        DayPartials::merge(
            self.settings,
            self.query,
            self.window.clone(),
            lenses,
            workers.into_iter().map(builds).collect(),
        )
    }

    /// Merges the workers' totals into the report (of the plan's main query).
    pub fn finish(&self, workers: Vec<Worker>) -> Report {
        self.finish_all(workers).swap_remove(0)
    }

    /// Merges the workers' totals into every report: the main query's first, then each
    /// companion's, in order.
    pub fn finish_all(&self, workers: Vec<Worker>) -> Vec<Report> {
        debug_assert!(self.day_windows.is_empty(), "a plan for day partials finishes with finish_day_partials");
        let range = |accumulator: Accumulator| match accumulator {
            Accumulator::Range(totals) => *totals,
            Accumulator::Days(_) => Totals::default(),
        };
        let mut workers = workers.into_iter();
        let base = workers.next().unwrap_or_else(|| self.worker());
        let mut dictionary = base.dictionary;
        let mut totals = range(base.totals);
        let mut lanes: Vec<Totals> = base.lanes.into_iter().map(|lane| range(lane.totals)).collect();
        for worker in workers {
            totals.absorb(&mut dictionary, range(worker.totals), &worker.dictionary);
            for (mine, theirs) in lanes.iter_mut().zip(worker.lanes) {
                mine.absorb(&mut dictionary, range(theirs.totals), &worker.dictionary);
            }
        }
        let finisher = |query: &Query, window: &Window, totals: Totals| {
            Finisher { dictionary: &dictionary, settings: self.settings, query, window }.report(totals)
        };
        let mut reports = vec![finisher(self.query, &self.window, totals)];
        for ((query, window), lane) in self.companions.iter().zip(lanes) {
            reports.push(finisher(query, window, lane));
        }
        reports
    }
}

impl ReportPlan<'_> {
    /// The plan's queries with their resolved windows: the main query first.
    fn queries(&self) -> impl Iterator<Item = (&Query, &Window)> {
        std::iter::once((self.query, &self.window))
            .chain(self.companions.iter().map(|(query, window)| (*query, window)))
    }

    /// The reports from facts a backend computed next to the data: for each query of the
    /// plan (the main query's first) its range's facts and the order facts of its filter;
    /// and the site's order book.
    pub fn finish_facts(
        &self,
        facts: &[(&upshot_model::facts::Facts, &[upshot_model::facts::OrderFact])],
        book: &OrderBook,
    ) -> Vec<Report> {
        self.queries()
            .zip(facts)
            .map(|((query, window), &(facts, orders))| {
                let mut folder = fold::FactFolder::new(query, window, book);
                folder.fold(facts, orders);
                Finisher { dictionary: &folder.dictionary, settings: self.settings, query, window }
                    .report(folder.totals)
            })
            .collect()
    }

    /// Each query's range as instants (start, end, the previous period's start, the
    /// local midnight of every date in range, the active counts' end).
    pub fn windows(&self) -> Vec<WindowInstants> {
        self.queries()
            .map(|(_, window)| {
                let mut day_starts = window.day_starts.clone();
                day_starts.pop();
                WindowInstants {
                    start: window.start,
                    end: window.end,
                    previous_start: window.previous_start,
                    day_starts,
                    active_end: window.active_end,
                }
            })
            .collect()
    }
}

/// A query's range as instants, for a backend computing figures next to the data.
#[derive(Debug, Clone)]
pub struct WindowInstants {
    pub start: i64,
    pub end: i64,
    pub previous_start: i64,
    /// Local midnight of every date in range.
    pub day_starts: Vec<i64>,
    /// Where the 24 hours of the active counts end.
    pub active_end: i64,
}

impl Worker {
    /// Starts a visitor: fill `self.visitor` (in any order), then `end_visitor`.
    pub fn begin_visitor(&mut self, visitor: &str) {
        self.visitor.clear(visitor);
    }

    /// Adds one validated event of the current visitor.
    pub fn push_event(&mut self, event: &Event) {
        self.visitor.push_event(&mut self.dictionary, event);
    }

    /// Orders the visitor's events and adds them to the totals.
    pub fn end_visitor(&mut self, plan: &ReportPlan, book: &OrderBook) {
        if !self.visitor.is_sorted() {
            self.visitor.sort();
        }
        self.visitor.intern_visitor_if_needed(&mut self.dictionary);
        let context = Context {
            dictionary: &self.dictionary,
            visitor: &self.visitor,
            book,
            settings: plan.settings,
            window: &plan.window,
            day_windows: &plan.day_windows,
            filter: &self.filter,
            model: plan.query.model,
        };
        context.add_visitor(&mut self.scratch, &mut self.totals);
        for ((query, window), lane) in plan.companions.iter().zip(&mut self.lanes) {
            let context = Context {
                dictionary: &self.dictionary,
                visitor: &self.visitor,
                book,
                settings: plan.settings,
                window,
                day_windows: &plan.day_windows,
                filter: &lane.filter,
                model: query.model,
            };
            context.add_visitor(&mut self.scratch, &mut lane.totals);
        }
    }
}

/// Adds an event's order or refund to the book.
pub fn add_to_order_book(book: &mut OrderBook, event: &Event) {
    match &event.body {
        Body::Order { order_id, .. } => {
            book.add_order(order_id.as_bytes(), event.ts, event.event_id.as_bytes(), event.sent_with)
        }
        Body::Refund { order_id, amount, cancel } => {
            book.add_refund(order_id.as_bytes(), amount.map(|a| a.0), *cancel, event.sent_with)
        }
        _ => {}
    }
}

/// Computes the whole report of `query` over a site's events held in memory.
pub fn compute_report(dataset: &Dataset, settings: &Settings, query: &Query) -> Result<Report, QueryError> {
    let plan = ReportPlan::new(settings, query)?;
    let mut book = OrderBook::default();
    for event in &dataset.events {
        add_to_order_book(&mut book, event);
    }
    let mut worker = plan.worker();
    for events in dataset.visitors() {
        worker.begin_visitor(events[0].visitor_id.as_deref().unwrap_or_default());
        for event in events {
            worker.push_event(event);
        }
        worker.end_visitor(&plan, &book);
    }
    Ok(plan.finish(vec![worker]))
}
