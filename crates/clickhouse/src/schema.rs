//! The schema, versioned: a local `ReplacingMergeTree` of events on every node, ordered
//! by (site, visitor, time) and partitioned by month, and a `Distributed` table over
//! the cluster sharded by `sipHash64(visitor_id)`, so each visitor's events live on one
//! shard. `init` is idempotent. SQL kept to what ClickHouse 18.16 and modern ClickHouse
//! both accept.

use crate::http::Node;
use crate::ClickHouseError;

/// The schema's version; `init` records it and refuses a database of another version.
pub const SCHEMA_VERSION: u32 = 1;
pub const DATABASE: &str = "upshot";

/// Every column of the events table, with its type: the native event's fields (money in
/// units of 1e-4, times in epoch milliseconds), absent optional texts as NULL; a refund
/// without a visitor has `visitor_id` '' (a visitor id is never empty otherwise).
pub const COLUMNS: [(&str, &str); 38] = [
    ("site", "String"),
    ("day", "Date"),
    ("visitor_id", "String"),
    ("ts", "Int64"),
    ("event_id", "String"),
    ("type", "String"),
    ("profile_id", "Nullable(String)"),
    ("page_type", "Nullable(String)"),
    ("url", "Nullable(String)"),
    ("placement", "String"),
    ("kind", "String"),
    ("action", "String"),
    ("item", "Nullable(String)"),
    ("items", "Array(String)"),
    ("impression_id", "Nullable(String)"),
    ("campaign", "Nullable(String)"),
    ("sequence", "Nullable(String)"),
    ("experience", "Nullable(String)"),
    ("label", "Nullable(String)"),
    ("quantity", "UInt32"),
    ("price", "Nullable(Int64)"),
    ("order_id", "String"),
    ("revenue", "Int64"),
    ("shipping", "Nullable(Int64)"),
    ("tax", "Nullable(Int64)"),
    ("line_items", "Array(String)"),
    ("line_quantities", "Array(UInt32)"),
    ("line_prices", "Array(Int64)"),
    ("amount", "Nullable(Int64)"),
    ("cancel", "UInt8"),
    ("experiment", "String"),
    ("variant", "String"),
    ("goal", "String"),
    ("value", "Nullable(Int64)"),
    ("journey", "String"),
    ("channel", "Nullable(String)"),
    ("run_id", "Nullable(String)"),
    ("sent_at", "Nullable(Int64)"),
];

/// The column names, quoted, comma-separated: the column list of inserts and reads.
pub fn column_names() -> String {
    COLUMNS.iter().map(|(name, _)| format!("`{name}`")).collect::<Vec<_>>().join(", ")
}

fn columns_sql() -> String {
    COLUMNS.iter().map(|(name, kind)| format!("`{name}` {kind}")).collect::<Vec<_>>().join(", ")
}

/// The statements `init` runs on every node, in order.
pub fn statements(cluster: &str) -> Vec<String> {
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {DATABASE}.schema_version (version UInt32, applied DateTime) ENGINE = TinyLog"
        ),
        // Rows of one event are identical however often they are delivered: the
        // replacing merge keeps one, and queries read with FINAL until it has.
        format!(
            "CREATE TABLE IF NOT EXISTS {DATABASE}.events_local ({}) ENGINE = ReplacingMergeTree \
             PARTITION BY toYYYYMM(day) ORDER BY (site, visitor_id, ts, event_id) SETTINGS index_granularity = 8192",
            columns_sql()
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {DATABASE}.events AS {DATABASE}.events_local \
             ENGINE = Distributed({cluster}, {DATABASE}, events_local, sipHash64(visitor_id))"
        ),
    ]
}

/// Creates (or checks) the schema on every node. Idempotent: a second run changes
/// nothing; a database holding another schema version is refused.
pub fn init(nodes: &[Node], cluster: &str) -> Result<Vec<String>, ClickHouseError> {
    validate_identifier(cluster)?;
    let mut done = Vec::new();
    for node in nodes {
        for statement in statements(cluster) {
            node.execute(&statement, b"")?;
        }
        let versions = String::from_utf8_lossy(
            &node.execute(&format!("SELECT version FROM {DATABASE}.schema_version FORMAT TSV"), b"")?,
        )
        .into_owned();
        let versions: Vec<u32> = versions.lines().filter_map(|line| line.trim().parse().ok()).collect();
        match versions.iter().max() {
            None => {
                node.execute(&format!("INSERT INTO {DATABASE}.schema_version VALUES ({SCHEMA_VERSION}, now())"), b"")?;
                done.push(format!("{}: created schema version {SCHEMA_VERSION}", node.url()));
            }
            Some(&version) if version == SCHEMA_VERSION => {
                done.push(format!("{}: schema version {SCHEMA_VERSION} already there", node.url()));
            }
            Some(&version) => return Err(ClickHouseError::SchemaVersion { node: node.url(), found: version }),
        }
    }
    Ok(done)
}

fn validate_identifier(name: &str) -> Result<(), ClickHouseError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(ClickHouseError::Identifier(name.to_string()))
    }
}
