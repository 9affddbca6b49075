//! upshot's ClickHouse backend: the HTTP client (`http`: TLS, credentials, gzip, retries), the versioned schema
//! (`schema`), and events as rows (`rows`). The collector ships its log to the
//! `events` table; reports read it back per shard.

pub mod figures;
pub mod http;
pub mod kept;
pub mod rows;
pub mod schema;

pub use http::Node;

#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    #[error("{0:?} is not a ClickHouse URL like http://127.0.0.1:8123 or https://user@host:8443")]
    Url(String),
    #[error("ClickHouse connection option: {0}")]
    Option(String),
    #[error("ClickHouse at {node} is unreachable: {reason}")]
    Unreachable { node: String, reason: String },
    #[error("ClickHouse at {node} answered {status}: {message}")]
    Query { node: String, status: u16, message: String },
    #[error(
        "ClickHouse at {node} holds upshot schema version {found}; this upshot knows version {}",
        schema::SCHEMA_VERSION
    )]
    SchemaVersion { node: String, found: u32 },
    #[error("ClickHouse at {node} holds a row upshot cannot read: {reason}")]
    BadRow { node: String, reason: String },
    #[error("{0:?} is not a cluster name (letters, digits, _)")]
    Identifier(String),
    #[error(
        "ClickHouse at {node} answered more than {rows_max} facts for one report; ask for a shorter range or a \
         filter"
    )]
    TooManyFacts { node: String, rows_max: usize },
}

use upshot_model::Event;

/// Rows sent in one INSERT at most (a batch larger than this is split).
pub const INSERT_ROWS_MAX: usize = 100_000;

/// Inserts a site's events into the distributed `events` table through `node`, then
/// records the change (`kept::record_change`). An error means the batch may or may not
/// be stored: send it again (rows of one event are identical, and the table keeps one).
pub fn insert_events(node: &Node, site: &str, events: &[Event]) -> Result<(), ClickHouseError> {
    let columns = schema::column_names();
    for chunk in events.chunks(INSERT_ROWS_MAX) {
        let mut body = Vec::with_capacity(chunk.len() * 160);
        for event in chunk {
            rows::RowValues::of(site, event).write_row_binary(&mut body);
        }
        // Synchronous: the insert returns once every shard has its rows, so a shard
        // that is down fails it and the events stay in the collector's spool.
        let query = format!("INSERT INTO {}.events ({columns}) FORMAT RowBinary", schema::DATABASE);
        node.execute_with(&query, &[("insert_distributed_sync", "1")], &body)?;
    }
    // Then the site's version grows (its partials are out of date from now on).
    if !events.is_empty() {
        kept::record_change(node, site, events.len() as u64)?;
    }
    Ok(())
}

/// Every stored event of a site on one shard (its `events_local`), deduplicated, in
/// (visitor, ts, event_id) order, read back as RowBinary.
pub fn read_shard_events(node: &Node, site: &str) -> Result<Vec<Event>, ClickHouseError> {
    let columns = schema::column_names();
    let query = format!(
        "SELECT {columns} FROM {}.events_local FINAL WHERE site = '{}' ORDER BY visitor_id, ts, event_id FORMAT RowBinary",
        schema::DATABASE,
        quote(site)
    );
    let mut reader = rows::RowReader::new(node.execute_reader(&query)?);
    let mut events = Vec::new();
    while let Some((_, event)) =
        reader.next_event().map_err(|error| ClickHouseError::BadRow { node: node.url(), reason: error.to_string() })?
    {
        events.push(event);
    }
    Ok(events)
}

/// A condition keeping a site's visitors with an event in `[from_ms, until_ms)`. Run on
/// a shard, its subquery reads the shard's local table, which holds every event of the
/// shard's visitors.
pub fn active_visitors(site: &str, from_ms: i64, until_ms: i64) -> String {
    format!(
        "visitor_id != '' AND visitor_id IN (SELECT visitor_id FROM {}.events_local WHERE site = '{}' AND ts >= {from_ms} AND ts < {until_ms})",
        schema::DATABASE,
        quote(site)
    )
}

pub(crate) fn quote(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

/// Bytes a shard sorts in memory before it spills to disk, when it streams a site's
/// events in visitor order (a build of day partials sorts every event of the site:
/// without spilling, 5M events went past 18.16's default 4 GB per query).
const SORT_BYTES_IN_MEMORY: u64 = 1 << 30;

/// Which table a stream of visitors reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitorTable {
    /// The Distributed table: every shard's visitors, each shard sorting its own and
    /// the node merging them.
    Cluster,
    /// A shard's own table, on a node of that shard: its visitors only, sorted there
    /// and sent straight to the reader (no node relays them).
    Shard,
}

/// How many of a site's rows `table` on `node` holds that `condition` (SQL over the
/// columns, already safe) keeps.
pub fn site_rows(
    node: &dyn SqlSource,
    table: VisitorTable,
    site: &str,
    condition: &str,
) -> Result<u64, ClickHouseError> {
    let table = table.name();
    let query = format!(
        "SELECT count() FROM {}.{table} WHERE site = '{}' AND ({condition}) FORMAT TSV",
        schema::DATABASE,
        quote(site)
    );
    let answer = first_line(node, &query)?;
    answer
        .trim()
        .parse()
        .map_err(|_| ClickHouseError::BadRow { node: node.name(), reason: format!("a count reads {answer:?}") })
}

impl VisitorTable {
    fn name(self) -> &'static str {
        match self {
            VisitorTable::Cluster => "events",
            VisitorTable::Shard => "events_local",
        }
    }
}

/// Streams a site's events from `table` on `node`, each visitor's together in
/// (ts, event_id) order (`ORDER BY visitor_id, ts, event_id`), restricted by
/// `condition` (SQL over the columns, already safe). Each visitor's events reach
/// `visit` at once, an event_id once; memory holds one visitor.
pub fn stream_site_visitors(
    node: &dyn SqlSource,
    table: VisitorTable,
    site: &str,
    condition: &str,
    mut visit: impl FnMut(&str, Vec<Event>),
) -> Result<(), ClickHouseError> {
    let columns = schema::column_names();
    let table = table.name();
    let query = format!(
        "SELECT {columns} FROM {}.{table} FINAL WHERE site = '{}' AND ({condition}) ORDER BY visitor_id, ts, event_id \
         SETTINGS max_bytes_before_external_sort = {SORT_BYTES_IN_MEMORY} FORMAT RowBinary",
        schema::DATABASE,
        quote(site)
    );
    let mut reader = rows::RowReader::new(node.query_reader(&query)?);
    let mut current = String::new();
    let mut events: Vec<Event> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let next = reader
            .next_event()
            .map_err(|error| ClickHouseError::BadRow { node: node.name(), reason: error.to_string() })?;
        let Some((_, event)) = next else { break };
        let visitor = event.visitor_id.as_deref().unwrap_or("");
        if visitor != current {
            if !events.is_empty() {
                visit(&current, std::mem::take(&mut events));
            }
            current = visitor.to_string();
            seen.clear();
        }
        if seen.insert(event.event_id.clone()) {
            events.push(event);
        }
    }
    if !events.is_empty() {
        visit(&current, events);
    }
    Ok(())
}

/// One order_id's part of the order book, aggregated in ClickHouse: each shard groups
/// its order and refund rows (each event once), the node merges the shards' partial
/// aggregates by order_id (an order_id may span visitors, and so shards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    pub order_id: String,
    /// The counting order event, smallest (ts, event_id); `None` with refunds only.
    pub first_order: Option<(i64, String)>,
    /// Sum of the refunds with an amount (money units).
    pub refunded: i64,
    /// A refund without amount refunds everything.
    pub refund_all: bool,
    pub cancelled: bool,
}

/// The site's order book as computed by ClickHouse (see `OrderSummary`).
/// Where upshot's generated SQL runs and answers in lines (JSONEachRow): a ClickHouse
/// node over HTTP, or another engine running the same SQL (the tests run it on a
/// current ClickHouse embedded by chdb).
pub trait SqlSource: Sync {
    /// Names the source in errors.
    fn name(&self) -> String;
    fn query_lines(&self, query: &str, visit: &mut dyn FnMut(&[u8])) -> Result<(), ClickHouseError>;
    /// Runs a query whose answer is binary (`FORMAT RowBinary`), read as it arrives.
    fn query_reader(&self, query: &str) -> Result<Box<dyn std::io::Read + Send>, ClickHouseError>;
    /// Runs an INSERT whose rows are `body`, once every shard has them.
    fn insert(&self, query: &str, body: &[u8]) -> Result<(), ClickHouseError>;
    /// Runs a query whose answer is short and binary, read whole within the client's
    /// I/O timeout (not a stream's long wait).
    fn query_bytes(&self, query: &str) -> Result<Vec<u8>, ClickHouseError> {
        let mut answer = Vec::new();
        self.query_reader(query)?.read_to_end(&mut answer).map_err(|error| ClickHouseError::BadRow {
            node: self.name(),
            reason: format!("reading an answer: {error}"),
        })?;
        Ok(answer)
    }
    /// The nodes of each shard, as `init` registered them, when they name every shard
    /// of the cluster (none: reach the shards through the Distributed table only).
    fn shards(&self) -> Result<Vec<(u32, Vec<Node>)>, ClickHouseError> {
        Ok(Vec::new())
    }
    /// The server's `version()` (which SQL dialect it is sent).
    fn server_version(&self) -> Result<http::ServerVersion, ClickHouseError> {
        let answer = first_line(self, "SELECT version() AS version FORMAT TSV")?;
        http::ServerVersion::parse(&answer).ok_or_else(|| ClickHouseError::BadRow {
            node: self.name(),
            reason: format!("version() answered {answer:?}"),
        })
    }
}

/// The first line of a query's answer (empty for none).
pub(crate) fn first_line(source: &(impl SqlSource + ?Sized), query: &str) -> Result<String, ClickHouseError> {
    let mut first = None;
    source.query_lines(query, &mut |line| {
        first.get_or_insert_with(|| String::from_utf8_lossy(line).into_owned());
    })?;
    Ok(first.unwrap_or_default())
}

impl SqlSource for Node {
    fn name(&self) -> String {
        self.url()
    }

    fn query_lines(&self, query: &str, visit: &mut dyn FnMut(&[u8])) -> Result<(), ClickHouseError> {
        self.execute_lines(query, visit)
    }

    fn query_reader(&self, query: &str) -> Result<Box<dyn std::io::Read + Send>, ClickHouseError> {
        self.execute_reader(query)
    }

    fn insert(&self, query: &str, body: &[u8]) -> Result<(), ClickHouseError> {
        // Synchronous through a Distributed table: the insert returns once every shard
        // has its rows.
        self.execute_with(query, &[("insert_distributed_sync", "1")], body).map(drop)
    }

    fn query_bytes(&self, query: &str) -> Result<Vec<u8>, ClickHouseError> {
        self.execute(query, b"")
    }

    fn shards(&self) -> Result<Vec<(u32, Vec<Node>)>, ClickHouseError> {
        schema::covering_shard_nodes(self)
    }

    fn server_version(&self) -> Result<http::ServerVersion, ClickHouseError> {
        Node::server_version(self)
    }
}

pub fn order_summaries(node: &dyn SqlSource, site: &str) -> Result<Vec<OrderSummary>, ClickHouseError> {
    // Refund amounts are never negative (validated at ingest): -1 stands for "whole".
    let query = format!(
        "SELECT order_id, \
           minIf((event_ts, event_id), event_type = 'order') AS first_order, \
           countIf(event_type = 'order') AS orders, \
           sumIf(refund_amount, event_type = 'refund' AND refund_amount >= 0) AS refunded, \
           maxIf(toUInt8(refund_amount < 0), event_type = 'refund') AS whole, \
           maxIf(refund_cancel, event_type = 'refund') AS cancelled \
         FROM ( \
           SELECT event_id, argMin(type, ts) AS event_type, argMin(order_id, ts) AS order_id, min(ts) AS event_ts, \
             argMin(ifNull(amount, -1), ts) AS refund_amount, argMin(cancel, ts) AS refund_cancel \
           FROM {}.events FINAL WHERE site = '{}' AND type IN ('order', 'refund') GROUP BY event_id \
         ) GROUP BY order_id FORMAT JSONEachRow",
        schema::DATABASE,
        quote(site)
    );
    let mut summaries = Vec::new();
    let mut bad = None;
    node.query_lines(&query, &mut |line| match parse_summary(line) {
        Some(summary) => summaries.push(summary),
        None => {
            bad.get_or_insert_with(|| String::from_utf8_lossy(line).chars().take(200).collect::<String>());
        }
    })?;
    match bad {
        Some(row) => Err(ClickHouseError::BadRow {
            node: node.name(),
            reason: format!("an order summary upshot cannot read: {row}"),
        }),
        None => Ok(summaries),
    }
}

fn parse_summary(line: &[u8]) -> Option<OrderSummary> {
    let row: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line).ok()?;
    let number = |name: &str| -> Option<i64> {
        match row.get(name)? {
            serde_json::Value::Number(number) => number.as_i64(),
            serde_json::Value::String(text) => text.parse().ok(),
            _ => None,
        }
    };
    let first = row.get("first_order")?.as_array()?;
    let first_ts = match first.first()? {
        serde_json::Value::Number(number) => number.as_i64()?,
        serde_json::Value::String(text) => text.parse().ok()?,
        _ => return None,
    };
    let first_id = first.get(1)?.as_str()?.to_string();
    Some(OrderSummary {
        order_id: row.get("order_id")?.as_str()?.to_string(),
        first_order: (number("orders")? > 0).then_some((first_ts, first_id)),
        refunded: number("refunded")?,
        refund_all: number("whole")? == 1,
        cancelled: number("cancelled")? == 1,
    })
}

/// Which of these event ids the site's table holds already (at most a few thousand
/// ids a call; the caller splits longer lists).
pub fn stored_event_ids(
    node: &Node,
    site: &str,
    ids: &[&str],
) -> Result<std::collections::HashSet<String>, ClickHouseError> {
    let mut stored = std::collections::HashSet::new();
    for chunk in ids.chunks(1000) {
        let list = chunk.iter().map(|id| format!("'{}'", quote(id))).collect::<Vec<_>>().join(",");
        let query = format!(
            "SELECT DISTINCT event_id FROM {}.events WHERE site = '{}' AND event_id IN ({list}) FORMAT JSONEachRow",
            schema::DATABASE,
            quote(site)
        );
        node.execute_lines(&query, |line| {
            if let Ok(row) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line) {
                if let Some(id) = row.get("event_id").and_then(serde_json::Value::as_str) {
                    stored.insert(id.to_string());
                }
            }
        })?;
    }
    Ok(stored)
}
