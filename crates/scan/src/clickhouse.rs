//! A site's report from the ClickHouse backend: a first query builds the order book
//! from every order and refund of the site (orders are deduplicated site-wide, refunds
//! need no visitor); a second streams each visitor's events, sorted on its shard and
//! merged by the node, into the engine one visitor at a time (only visitors active from
//! the previous period's start to the range's end: no other can count). Events still in the
//! collector's spool (`spooled`) join their visitors. Memory holds the order book and
//! one visitor, however large the site.

use std::collections::HashMap;

use upshot_clickhouse::{stream_site_visitors, ClickHouseError, Node};
use upshot_engine::{add_to_order_book, OrderBook, Query, QueryError, Report, ReportPlan};
use upshot_model::{Event, ParseContext};
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
    let plan = ReportPlan::new(&record.settings, query)?;
    let context = ParseContext { currency: record.currency.clone() };
    let mut book = OrderBook::default();
    let mut shipped_orders = std::collections::HashSet::new();
    stream_site_visitors(node, &record.site, "type IN ('order', 'refund')", &context, |_, events| {
        for event in &events {
            shipped_orders.insert(event.event_id.clone());
            add_to_order_book(&mut book, event);
        }
    })?;
    spooled
        .iter()
        .filter(|event| !shipped_orders.contains(&event.event_id))
        .for_each(|event| add_to_order_book(&mut book, event));

    let mut spooled_by_visitor: HashMap<String, Vec<Event>> = HashMap::new();
    for event in spooled.into_iter().filter(|event| event.visitor_id.is_some()) {
        spooled_by_visitor.entry(event.visitor_id.clone().unwrap_or_default()).or_default().push(event);
    }
    let mut worker = plan.worker();
    let mut run_visitor = |visitor: &str, events: &[Event], extra: Option<Vec<Event>>| {
        worker.begin_visitor(visitor);
        let ids: std::collections::HashSet<&str> = events.iter().map(|event| event.event_id.as_str()).collect();
        events.iter().for_each(|event| worker.push_event(event));
        for event in extra.iter().flatten().filter(|event| !ids.contains(event.event_id.as_str())) {
            worker.push_event(event);
        }
        worker.end_visitor(&plan, &book);
    };
    // Only visitors with an event from the previous period's start to the range's end
    // can count in any figure (sessions, orders, experiments and the rest all need one
    // there; refunds are in the order book): each shard keeps only those, by its own
    // index, before anything crosses the network. A visitor lives on one shard, so the
    // subquery on the shard's local table sees all of its events.
    let window = upshot_engine::query::Window::resolve(query)?;
    let relevant = format!(
        "visitor_id != '' AND visitor_id IN (SELECT visitor_id FROM {}.events_local WHERE site = '{}' AND ts >= {} AND ts < {})",
        upshot_clickhouse::schema::DATABASE,
        record.site.replace('\\', "\\\\").replace('\'', "\\'"),
        window.previous_start,
        window.end
    );
    stream_site_visitors(node, &record.site, &relevant, &context, |visitor, events| {
        let extra = spooled_by_visitor.remove(visitor);
        run_visitor(visitor, &events, extra);
    })?;
    for (visitor, events) in spooled_by_visitor {
        run_visitor(&visitor, &events, None);
    }
    Ok(plan.finish(vec![worker]))
}
