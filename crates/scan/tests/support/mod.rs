//! What the SQL tests share: visitors a typical generated shop lacks, and a current
//! ClickHouse embedded by chdb (`chdb`).

pub mod chdb;

use upshot_model::Event;

/// Visitors a typical generated shop lacks: one reached only by journeys and sequence
/// starts (regression: such a visitor made every cluster report fail with "Arrays passed
/// to arrayMap must have equal size"), one only assigned to an experiment, a backend
/// that only sends orders, one whose events all lie outside the ranges asked for, and a
/// refund of an order nobody placed.
pub fn unusual_visitors() -> Vec<Event> {
    let context = upshot_model::ParseContext { currency: "USD".into() };
    [
        r#"{"event_id":"u1","type":"journey","ts":"2024-05-06T08:00:00Z","visitor_id":"mail-only","journey":"winback","action":"started"}"#,
        r#"{"event_id":"u2","type":"journey","ts":"2024-05-06T08:00:01Z","visitor_id":"mail-only","journey":"winback","action":"notification","channel":"email"}"#,
        r#"{"event_id":"u3","type":"sequence_start","ts":"2024-05-07T08:00:00Z","visitor_id":"mail-only","sequence":"welcome","campaign":"spring"}"#,
        r#"{"event_id":"u4","type":"assignment","ts":"2024-05-08T08:00:00Z","visitor_id":"assigned-only","experiment":"hero_test","variant":"control"}"#,
        r#"{"event_id":"u5","type":"order","ts":"2024-05-09T08:00:00Z","visitor_id":"backend-only","order_id":"b-1","revenue":30,"items":[{"item":"p1","quantity":1,"price":30}]}"#,
        r#"{"event_id":"u6","type":"order","ts":"2024-05-09T09:00:00Z","visitor_id":"backend-only","order_id":"b-2","revenue":20}"#,
        r#"{"event_id":"u7","type":"page_view","ts":"2024-04-01T08:00:00Z","visitor_id":"long-ago","device":"mobile"}"#,
        r#"{"event_id":"u8","type":"refund","ts":"2024-05-10T08:00:00Z","order_id":"never-placed","amount":5}"#,
    ]
    .iter()
    .map(|line| upshot_model::parse_event_line(line, &context).expect("a valid event"))
    .collect()
}

/// Reports both SQL tests ask for over the shops of May 2024 (UTC): every model, one
/// day, and a page-type and a kind filter; each test adds its own.
pub fn typical_queries() -> Vec<upshot_engine::Query> {
    use jiff::civil::date;
    use upshot_engine::{Model, Query};
    let range = |from, to| Query::utc(from, to);
    let mut queries: Vec<Query> =
        Model::ALL.into_iter().map(|model| Query { model, ..range(date(2024, 5, 3), date(2024, 5, 18)) }).collect();
    queries.push(range(date(2024, 5, 10), date(2024, 5, 10)));
    queries.push(Query { page_type: Some("product".into()), ..range(date(2024, 5, 3), date(2024, 5, 18)) });
    queries
        .push(Query { kind: Some(upshot_model::Kind::Recommendation), ..range(date(2024, 5, 1), date(2024, 5, 20)) });
    queries
}

/// A source whose figure queries spill their grouping to disk (the threshold cut from
/// `GROUP_BYTES_IN_MEMORY` to one byte, the grouping split in two levels at once): the
/// route a large site's report takes, on a shop small enough for a test. Counts the
/// queries it cut.
pub struct Spilling<'a> {
    pub inner: &'a dyn upshot_clickhouse::SqlSource,
    pub spilled: std::sync::atomic::AtomicUsize,
}

impl Spilling<'_> {
    pub fn of(inner: &dyn upshot_clickhouse::SqlSource) -> Spilling<'_> {
        Spilling { inner, spilled: std::sync::atomic::AtomicUsize::new(0) }
    }

    fn spilling(&self, query: &str) -> String {
        let threshold =
            format!("max_bytes_before_external_group_by = {}", upshot_clickhouse::figures::GROUP_BYTES_IN_MEMORY);
        if !query.contains(&threshold) {
            return query.to_string();
        }
        self.spilled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // A small shop's grouping is one block, too small to be split in two levels,
        // which spilling needs: split it at once too.
        query.replace(
            &threshold,
            "max_bytes_before_external_group_by = 1, group_by_two_level_threshold = 1, \
             group_by_two_level_threshold_bytes = 1",
        )
    }
}

impl upshot_clickhouse::SqlSource for Spilling<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn query_lines(&self, query: &str, visit: &mut dyn FnMut(&[u8])) -> Result<(), upshot_clickhouse::ClickHouseError> {
        self.inner.query_lines(&self.spilling(query), visit)
    }
    fn query_reader(&self, query: &str) -> Result<Box<dyn std::io::Read + Send>, upshot_clickhouse::ClickHouseError> {
        self.inner.query_reader(query)
    }
    fn insert(&self, query: &str, body: &[u8]) -> Result<(), upshot_clickhouse::ClickHouseError> {
        self.inner.insert(query, body)
    }
}

/// How many times `source` has written a grouping's part to disk since it started.
pub fn spilled_parts(source: &dyn upshot_clickhouse::SqlSource) -> u64 {
    let query = "SELECT sum(value) FROM system.events WHERE event = 'ExternalAggregationWritePart' FORMAT TSV";
    let mut count = 0;
    source
        .query_lines(query, &mut |line| count = String::from_utf8_lossy(line).trim().parse().unwrap_or(0))
        .expect("the events asked for");
    count
}

/// Each report equals the engine's over `dataset` for its query, JSON for JSON
/// (`what` names the route in a failure).
pub fn assert_engine_reports(
    dataset: &upshot_engine::Dataset,
    settings: &upshot_model::Settings,
    queries: &[upshot_engine::Query],
    reports: Vec<upshot_engine::Report>,
    what: &str,
) {
    assert_eq!(reports.len(), queries.len(), "{what}: a report per query");
    for (query, report) in queries.iter().zip(reports) {
        let engine = upshot_engine::compute_report(dataset, settings, query).expect("the engine's report");
        assert_eq!(
            serde_json::to_value(&report).expect("json"),
            serde_json::to_value(&engine).expect("json"),
            "{what} {query:?}"
        );
    }
}
