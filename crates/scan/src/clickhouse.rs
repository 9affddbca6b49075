//! A site's report from the ClickHouse backend: a first query has ClickHouse aggregate
//! the order book (each shard groups its orders and refunds, the node merges them by
//! order_id: orders are deduplicated site-wide, refunds need no visitor); then each
//! visitor's events stream, sorted on its shard (straight from a node of each shard
//! when `init` registered them, else merged by the node), into the engine one visitor
//! at a time (only visitors active from
//! the previous period's start to the range's end: no other can count). Events still in the
//! collector's spool (`spooled`) join their visitors. Memory holds the order book and
//! one visitor, however large the site.

use std::collections::HashMap;

use upshot_clickhouse::figures::{figure_facts, FactsQuery, FactsRange, RangeFacts};
use upshot_clickhouse::{
    order_summaries, stored_event_ids, stream_site_visitors, ClickHouseError, Node, SqlSource, VisitorTable,
};
use upshot_engine::days::DayPartials;
use upshot_engine::{add_to_order_book, OrderBook, Query, QueryError, Report, ReportPlan};
use upshot_model::facts::{Facts, OrderFact};
use upshot_model::{Event, KeyRole};
use upshot_store::SiteRecord;

#[derive(Debug, thiserror::Error)]
pub enum ClickHouseReportError {
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Partials(#[from] upshot_engine::days::PartialsError),
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
    // The cluster keeps no key role: events still in the spool count as the secret
    // key's too, so a report does not change when they are shipped.
    let spooled: Vec<Event> = spooled.into_iter().map(|event| Event { sent_with: KeyRole::Secret, ..event }).collect();
    let (query, companions) = queries.split_first().expect("at least one query");
    let plan = ReportPlan::with_companions(&record.settings, query, companions)?;
    let mut book = cluster_order_book(node, &record.site)?;
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
    let results = stream_visitors(node, &record.site, &plan, &book, &relevant, &spooled_by_visitor);
    let mut workers = results?;
    let mut rest = plan.worker();
    for (visitor, events) in spooled_by_visitor.into_inner().expect("no thread panicked") {
        run_visitor(&mut rest, &plan, &book, &visitor, &events, None);
    }
    workers.push(rest);
    Ok(plan.finish_all(workers))
}

/// Streams the site's visitors kept by `condition` (SQL over the columns, already safe)
/// into workers of `plan`: several streams, each a share of the visitors (by hash),
/// each into its own worker on its own thread, so reading, parsing and the engine's
/// pass overlap. With the shards' nodes registered, each shard's visitors stream
/// straight from a node of that shard (no node relays another shard's rows); else
/// through the Distributed table. A visitor's events still in the spool (`spooled`)
/// join it.
fn stream_visitors(
    node: &dyn SqlSource,
    site: &str,
    plan: &ReportPlan,
    book: &OrderBook,
    condition: &str,
    spooled: &std::sync::Mutex<HashMap<String, Vec<Event>>>,
) -> Result<Vec<upshot_engine::Worker>, ClickHouseError> {
    let streams = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, STREAMS_MAX);
    let shards = reachable_shards(node, site, condition)?;
    let shares = visitor_shares(&shards, streams);
    let results: Vec<Result<upshot_engine::Worker, ClickHouseError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .map(|(nodes, share)| {
                scope.spawn(move || {
                    let mut worker = plan.worker();
                    let condition = format!("({condition}) AND {share}");
                    let mut visit = |visitor: &str, events: Vec<Event>| {
                        let extra = spooled.lock().expect("no thread panics while holding it").remove(visitor);
                        run_visitor(&mut worker, plan, book, visitor, &events, extra);
                    };
                    match nodes {
                        None => stream_site_visitors(node, VisitorTable::Cluster, site, &condition, &mut visit)?,
                        Some(nodes) => stream_from_shard(nodes, site, &condition, &mut visit)?,
                    }
                    Ok(worker)
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("a report stream panicked")).collect()
    });
    results.into_iter().collect()
}

/// Each shard's nodes, the first one answering first, when `init` registered them,
/// every shard has a node this collector reaches, and the shards' own tables hold
/// exactly the rows `condition` keeps through the Distributed table (a node list that
/// misses a shard, or names a balancer or a replica as a shard of its own, would leave
/// out or double visitors: then, and when any shard is out of reach, none, and the
/// Distributed table reaches every shard from the node given).
fn reachable_shards(
    node: &dyn SqlSource,
    site: &str,
    condition: &str,
) -> Result<Vec<Vec<upshot_clickhouse::Node>>, ClickHouseError> {
    let registered = node.shards()?;
    if registered.is_empty() {
        return Ok(Vec::new());
    }
    let mut reachable = Vec::new();
    let mut in_shards = 0;
    for (_, mut nodes) in registered {
        let counted = nodes.iter().position(|node| {
            upshot_clickhouse::site_rows(node, VisitorTable::Shard, site, condition)
                .map(|rows| in_shards += rows)
                .is_ok()
        });
        let Some(first) = counted else {
            tracing::warn!(node = %node.name(), "a shard's registered nodes are unreachable; streaming through the Distributed table");
            return Ok(Vec::new());
        };
        nodes.rotate_left(first);
        reachable.push(nodes);
    }
    let in_cluster = upshot_clickhouse::site_rows(node, VisitorTable::Cluster, site, condition)?;
    if in_shards != in_cluster {
        tracing::warn!(
            node = %node.name(), in_shards, in_cluster,
            "the registered shards do not hold the cluster's rows (run `upshot clickhouse init` with every node); streaming through the Distributed table"
        );
        return Ok(Vec::new());
    }
    Ok(reachable)
}

/// The streams: where each reads (a shard's nodes, or the Distributed table) and its
/// share of the visitors. A shard's streams split its visitors by a hash other than
/// the sharding one (whose remainders a shard's visitors share).
fn visitor_shares(
    shards: &[Vec<upshot_clickhouse::Node>],
    streams: usize,
) -> Vec<(Option<&[upshot_clickhouse::Node]>, String)> {
    if shards.is_empty() {
        return (0..streams).map(|stream| (None, format!("sipHash64(visitor_id) % {streams} = {stream}"))).collect();
    }
    let per_shard = (streams / shards.len()).max(1);
    shards
        .iter()
        .flat_map(|nodes| {
            (0..per_shard)
                .map(move |stream| (Some(nodes.as_slice()), format!("cityHash64(visitor_id) % {per_shard} = {stream}")))
        })
        .collect()
}

/// One stream from a shard's own table, on its first node that answers (a node found
/// unreachable before a row arrived is passed over for the next).
fn stream_from_shard(
    nodes: &[upshot_clickhouse::Node],
    site: &str,
    condition: &str,
    visit: &mut dyn FnMut(&str, Vec<Event>),
) -> Result<(), ClickHouseError> {
    let mut result = Ok(());
    for node in nodes {
        let mut visited = false;
        result = stream_site_visitors(node, VisitorTable::Shard, site, condition, |visitor, events| {
            visited = true;
            visit(visitor, events);
        });
        if visited || !matches!(result, Err(ClickHouseError::Unreachable { .. })) {
            break;
        }
    }
    result
}

/// Day partials (ADR 0008; kept in the cluster, ADR 0010) of every lens over every
/// local date of the site's events in the cluster, in one pass: the order book
/// aggregated by ClickHouse, then every visitor streamed into the engine's plan for
/// day partials, the embedded store's code, so the same figures. Events up to the
/// latest instant stored when the build began are read (later ones wait for the next
/// build, which the version they bump asks for). `None` for a site without events.
pub fn day_partials(
    node: &dyn SqlSource,
    record: &SiteRecord,
    lenses: &[Query],
) -> Result<Option<DayPartials>, ClickHouseReportError> {
    let Some((low, high)) = upshot_clickhouse::kept::site_time_span(node, &record.site)? else {
        return Ok(None);
    };
    let Some(lenses) = crate::covering(lenses, (low, high)) else {
        return Ok(None);
    };
    let plan = ReportPlan::for_day_partials(&record.settings, &lenses)?;
    let book = cluster_order_book(node, &record.site)?;
    let none = std::sync::Mutex::new(HashMap::new());
    let workers = stream_visitors(node, &record.site, &plan, &book, &format!("ts <= {high}"), &none)?;
    Ok(Some(plan.finish_day_partials(workers)?))
}

/// The site's day partials kept in the cluster behind `source` (ADR 0010), read back:
/// the head now (what every report needs), each other lens from the cluster when a
/// report first sums it, so a cold report moves a few of the lenses' bytes, not all.
/// With the version they reflect and when their build began.
pub fn kept_day_partials(
    source: std::sync::Arc<dyn SqlSource + Send>,
    site: &str,
) -> Result<Option<(DayPartials, KeptBuild)>, ClickHouseReportError> {
    let Some(kept) = upshot_clickhouse::kept::load_day_partials(source.as_ref(), site)? else {
        return Ok(None);
    };
    let lenses = KeptLenses { source, sections: kept.sections };
    let partials = DayPartials::from_head(&kept.head, Box::new(lenses))?;
    Ok(Some((partials, KeptBuild { version: kept.version, built_at_ms: kept.built_at_ms })))
}

/// What kept partials reflect: the site's version, and when their build began
/// (epoch milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptBuild {
    pub version: u64,
    pub built_at_ms: i64,
}

/// The lenses of partials read back from the cluster, each fetched when a report first
/// sums it (lens `index` is kept as section `index`; the head holds lens 0).
struct KeptLenses {
    source: std::sync::Arc<dyn SqlSource + Send>,
    sections: upshot_clickhouse::kept::KeptSections,
}

impl upshot_engine::days::SavedLenses for KeptLenses {
    fn lens_bytes(&self, index: usize, length: usize) -> upshot_engine::days::LensBytes<'_> {
        use upshot_clickhouse::kept::Fetched;
        use upshot_engine::days::LensBytes;
        match self.sections.fetch(self.source.as_ref(), index, length as u64) {
            Ok(Fetched::Section(bytes)) => LensBytes::Found(std::borrow::Cow::Owned(bytes)),
            Ok(Fetched::Replaced) => {
                tracing::info!(index, "a lens of the kept day partials was replaced by a newer build; read again");
                LensBytes::Gone
            }
            Ok(Fetched::NotVisible) => {
                tracing::debug!(index, "a lens of the kept day partials is not to be seen yet; asked again later");
                LensBytes::NotNow
            }
            // Damaged bytes stay damaged: the partials are read or built again.
            Err(error @ ClickHouseError::BadRow { .. }) => {
                tracing::warn!(index, %error, "a lens of the kept day partials is damaged; built again");
                LensBytes::Gone
            }
            Err(error) => {
                tracing::warn!(index, %error, "a lens of the kept day partials could not be read; reports read the events");
                LensBytes::NotNow
            }
        }
    }
}

/// The order book, aggregated by ClickHouse per shard and merged by order_id.
fn cluster_order_book(node: &dyn SqlSource, site: &str) -> Result<OrderBook, ClickHouseError> {
    let mut book = OrderBook::default();
    for summary in order_summaries(node, site)? {
        let order_id = summary.order_id.as_bytes();
        if let Some((ts, event_id)) = &summary.first_order {
            book.add_order(order_id, *ts, event_id.as_bytes(), KeyRole::Secret);
        }
        if summary.refunded != 0 {
            book.add_refund(order_id, Some(summary.refunded), false, KeyRole::Secret);
        }
        if summary.refund_all {
            book.add_refund(order_id, None, false, KeyRole::Secret);
        }
        if summary.cancelled {
            book.add_refund(order_id, Some(0), true, KeyRole::Secret);
        }
    }
    Ok(book)
}

/// Several reports computed inside ClickHouse: generated SQL that each shard runs over
/// its visitors (sessions, clicked impressions, touches and clicks matched to orders,
/// with array functions and lambdas), summed on the node into facts the engine folds
/// into the reports; the order book's net revenue is credited in fixed point. Queries
/// with the same filter share one SQL query (the model changes nothing there; each
/// range adds its facts to the same pass). Reads only what ClickHouse holds: the caller
/// sees to it that the collector's spool has been shipped.
pub fn reports_in_cluster(
    node: &Node,
    record: &SiteRecord,
    queries: &[Query],
) -> Result<Vec<Report>, ClickHouseReportError> {
    reports_from_facts(node, record, queries, &|facts_query| figure_facts(node, facts_query))
}

/// The same reports from any engine that runs upshot's SQL (`SqlSource`) by `route` in
/// `dialect`, over one copy of every event: what the tests run on a current ClickHouse,
/// embedded by chdb, to check both SQL routes and both dialects there.
pub fn reports_from_sql(
    source: &dyn SqlSource,
    record: &SiteRecord,
    queries: &[Query],
    (route, dialect): (upshot_clickhouse::figures::Route, upshot_clickhouse::figures::Dialect),
) -> Result<Vec<Report>, ClickHouseReportError> {
    let facts =
        |facts_query: &FactsQuery| upshot_clickhouse::figures::figure_facts_in(source, facts_query, route, dialect);
    reports_from_facts(source, record, queries, &facts)
}

fn reports_from_facts(
    source: &dyn SqlSource,
    record: &SiteRecord,
    queries: &[Query],
    figure_facts: &(dyn Fn(&FactsQuery) -> Result<RangeFacts, ClickHouseError> + Sync),
) -> Result<Vec<Report>, ClickHouseReportError> {
    let (query, companions) = queries.split_first().expect("at least one query");
    let plan = ReportPlan::with_companions(&record.settings, query, companions)?;
    let book = cluster_order_book(source, &record.site)?;
    let windows = plan.windows();
    // The queries by filter: each group is one SQL query with one range per query.
    let mut groups: Vec<(FactsQuery, Vec<usize>)> = Vec::new();
    for (index, (query, window)) in queries.iter().zip(windows).enumerate() {
        let range = FactsRange {
            start_ms: window.start,
            end_ms: window.end,
            previous_start_ms: window.previous_start,
            day_starts: window.day_starts,
            active_end_ms: window.active_end,
        };
        let segment = query.segment.as_ref().map(|segment| (segment.dimension.clone(), segment.value.clone()));
        let filter = (&query.page_type, &query.placement, query.kind, &segment);
        match groups
            .iter_mut()
            .find(|(group, _)| (&group.page_type, &group.placement, group.kind, &group.segment) == filter)
        {
            Some((group, members)) => {
                group.ranges.push(range);
                members.push(index);
            }
            None => groups.push((
                FactsQuery {
                    site: record.site.clone(),
                    ranges: vec![range],
                    settings: record.settings.clone(),
                    page_type: query.page_type.clone(),
                    placement: query.placement.clone(),
                    kind: query.kind,
                    segment,
                },
                vec![index],
            )),
        }
    }
    // The groups' queries at once: ClickHouse runs them side by side.
    let computed: Vec<Result<RangeFacts, ClickHouseError>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            groups.iter().map(|(facts_query, _)| scope.spawn(move || figure_facts(facts_query))).collect();
        handles.into_iter().map(|handle| handle.join().expect("a figure query's thread panicked")).collect()
    });
    let computed = computed.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut per_query: Vec<Option<(&Facts, &[OrderFact])>> = vec![None; queries.len()];
    for ((facts, orders), (_, members)) in computed.iter().zip(&groups) {
        for (facts, &index) in facts.iter().zip(members) {
            per_query[index] = Some((facts, orders.as_slice()));
        }
    }
    let per_query: Vec<(&Facts, &[OrderFact])> =
        per_query.into_iter().map(|facts| facts.expect("every query is in one group")).collect();
    Ok(plan.finish_facts(&per_query, &book))
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
