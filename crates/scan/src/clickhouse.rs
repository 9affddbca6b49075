//! A site's report from the ClickHouse backend: a first query has ClickHouse aggregate
//! the order book (each shard groups its orders and refunds, the node merges them by
//! order_id: orders are deduplicated site-wide, refunds need no visitor); a second streams each visitor's events, sorted on its shard and
//! merged by the node, into the engine one visitor at a time (only visitors active from
//! the previous period's start to the range's end: no other can count). Events still in the
//! collector's spool (`spooled`) join their visitors. Memory holds the order book and
//! one visitor, however large the site.

use std::collections::HashMap;

use upshot_clickhouse::{order_summaries, stored_event_ids, stream_site_visitors, ClickHouseError, Node};
use upshot_engine::{add_to_order_book, OrderBook, Query, QueryError, Report, ReportPlan};
use upshot_model::Event;
use upshot_store::SiteRecord;

#[derive(Debug, thiserror::Error)]
pub enum ClickHouseReportError {
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error(transparent)]
    Query(#[from] QueryError),
}

pub fn report(
    node: &Node,
    record: &SiteRecord,
    query: &Query,
    spooled: Vec<Event>,
) -> Result<Report, ClickHouseReportError> {
    Ok(reports(node, record, std::slice::from_ref(query), spooled)?.swap_remove(0))
}

/// Several reports in one pass over the cluster's rows (`queries` not empty).
pub fn reports(
    node: &Node,
    record: &SiteRecord,
    queries: &[Query],
    spooled: Vec<Event>,
) -> Result<Vec<Report>, ClickHouseReportError> {
    let (query, companions) = queries.split_first().expect("at least one query");
    let plan = ReportPlan::with_companions(&record.settings, query, companions)?;
    // The order book, aggregated by ClickHouse per shard and merged by order_id.
    let mut book = OrderBook::default();
    for summary in order_summaries(node, &record.site)? {
        let order_id = summary.order_id.as_bytes();
        if let Some((ts, event_id)) = &summary.first_order {
            book.add_order(order_id, *ts, event_id.as_bytes());
        }
        if summary.refunded != 0 {
            book.add_refund(order_id, Some(summary.refunded), false);
        }
        if summary.refund_all {
            book.add_refund(order_id, None, false);
        }
        if summary.cancelled {
            book.add_refund(order_id, Some(0), true);
        }
    }
    // Orders and refunds still in the spool count unless already shipped (a batch can
    // be in both for a moment).
    let spooled_orders: Vec<&str> = spooled
        .iter()
        .filter(|event| matches!(event.body, upshot_model::Body::Order { .. } | upshot_model::Body::Refund { .. }))
        .map(|event| event.event_id.as_str())
        .collect();
    let shipped = if spooled_orders.is_empty() {
        std::collections::HashSet::new()
    } else {
        stored_event_ids(node, &record.site, &spooled_orders)?
    };
    spooled
        .iter()
        .filter(|event| !shipped.contains(&event.event_id))
        .for_each(|event| add_to_order_book(&mut book, event));

    let mut spooled_by_visitor: HashMap<String, Vec<Event>> = HashMap::new();
    for event in spooled.into_iter().filter(|event| event.visitor_id.is_some()) {
        spooled_by_visitor.entry(event.visitor_id.clone().unwrap_or_default()).or_default().push(event);
    }
    let spooled_by_visitor = std::sync::Mutex::new(spooled_by_visitor);
    // Only visitors with an event from the previous period's start to the range's end
    // can count in any figure (sessions, orders, experiments and the rest all need one
    // there; refunds are in the order book): each shard keeps only those, by its own
    // index, before anything crosses the network. A visitor lives on one shard, so the
    // subquery on the shard's local table sees all of its events.
    let relevant = upshot_clickhouse::active_visitors(&record.site, plan.earliest_start(), plan.latest_end());
    // Several streams, each a share of the visitors (by hash), each into its own
    // worker on its own thread: reading, parsing and the engine's pass overlap.
    let streams = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, STREAMS_MAX);
    let results: Vec<Result<upshot_engine::Worker, ClickHouseError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams)
            .map(|stream| {
                let (plan, book, relevant, spooled) = (&plan, &book, &relevant, &spooled_by_visitor);
                scope.spawn(move || {
                    let mut worker = plan.worker();
                    let condition = format!("{relevant} AND sipHash64(visitor_id) % {streams} = {stream}");
                    stream_site_visitors(node, &record.site, &condition, |visitor, events| {
                        let extra = spooled.lock().expect("no thread panics while holding it").remove(visitor);
                        run_visitor(&mut worker, plan, book, visitor, &events, extra);
                    })?;
                    Ok(worker)
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("a report stream panicked")).collect()
    });
    let mut workers = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut rest = plan.worker();
    for (visitor, events) in spooled_by_visitor.into_inner().expect("no thread panicked") {
        run_visitor(&mut rest, &plan, &book, &visitor, &events, None);
    }
    workers.push(rest);
    Ok(plan.finish_all(workers))
}

/// Report streams at most (one per core).
const STREAMS_MAX: usize = 8;

fn run_visitor(
    worker: &mut upshot_engine::Worker,
    plan: &ReportPlan,
    book: &OrderBook,
    visitor: &str,
    events: &[Event],
    extra: Option<Vec<Event>>,
) {
    worker.begin_visitor(visitor);
    let ids: std::collections::HashSet<&str> = events.iter().map(|event| event.event_id.as_str()).collect();
    events.iter().for_each(|event| worker.push_event(event));
    for event in extra.iter().flatten().filter(|event| !ids.contains(event.event_id.as_str())) {
        worker.push_event(event);
    }
    worker.end_visitor(plan, book);
}
