//! The schema, versioned: a local `ReplacingMergeTree` of events on every node, ordered
//! by (site, visitor, time) and partitioned by month, and a `Distributed` table over
//! the cluster sharded by `sipHash64(visitor_id)`, so each visitor's events live on one
//! shard. `init` is idempotent. SQL kept to what ClickHouse 18.16 and modern ClickHouse
//! both accept.

use crate::http::Node;
use crate::ClickHouseError;

/// The schema's version; `init` records it, brings a database of an earlier version up
/// to it (`MIGRATIONS`), and refuses one of a later version.
pub const SCHEMA_VERSION: u32 = 4;
pub const DATABASE: &str = "upshot";

/// Every column of the events table, with its type: the native event's fields (money in
/// units of 1e-4, times in epoch milliseconds), absent optional texts as NULL; a refund
/// without a visitor has `visitor_id` '' (a visitor id is never empty otherwise).
pub const COLUMNS: [(&str, &str); 44] = [
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
    // Version 2 (SPEC section 9.1).
    ("device", "Nullable(String)"),
    ("referrer", "Nullable(String)"),
    ("utm_source", "Nullable(String)"),
    ("utm_medium", "Nullable(String)"),
    ("utm_campaign", "Nullable(String)"),
    ("landing_channel", "String"),
];

/// The columns each version added, created on a database of an earlier version (for
/// rows stored before, they read as NULL, and `landing_channel` as `direct`: what
/// events without traffic fields give).
/// Versions 3 and 4 added tables only (`changes`, `day_partials`; `partial_sections`,
/// which replaced `day_partials`), which `statements` creates; `day_partials` is no
/// longer read (an operator may drop it).
const MIGRATIONS: [(u32, &[(&str, &str)]); 3] = [
    (
        2,
        &[
            ("device", "Nullable(String)"),
            ("referrer", "Nullable(String)"),
            ("utm_source", "Nullable(String)"),
            ("utm_medium", "Nullable(String)"),
            ("utm_campaign", "Nullable(String)"),
            ("landing_channel", "String DEFAULT 'direct'"),
        ],
    ),
    (3, &[]),
    (4, &[]),
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
        // Version 3 (ADR 0010): a row per shipment of a site's events, summed into one
        // a site by merges (the sum of `shipments` is the site's version); a site's
        // rows on one shard.
        format!(
            "CREATE TABLE IF NOT EXISTS {DATABASE}.changes_local (site String, shipments UInt64, events UInt64) \
             ENGINE = SummingMergeTree ORDER BY site"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {DATABASE}.changes AS {DATABASE}.changes_local \
             ENGINE = Distributed({cluster}, {DATABASE}, changes_local, sipHash64(site))"
        ),
        // Version 4: each site's day partials, a row per section (the head, then each
        // lens), with the build they belong to; the merge keeps the latest build's row
        // per site and section. A granule a row: a report fetching one lens reads that
        // row, not its neighbours (other lenses, other sites).
        format!(
            "CREATE TABLE IF NOT EXISTS {DATABASE}.partial_sections_local \
             (site String, section UInt32, built_at_ms Int64, build UInt64, version UInt64, sections UInt32, \
             length UInt64, bytes String) \
             ENGINE = ReplacingMergeTree(built_at_ms) ORDER BY (site, section) SETTINGS index_granularity = 1"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {DATABASE}.partial_sections AS {DATABASE}.partial_sections_local \
             ENGINE = Distributed({cluster}, {DATABASE}, partial_sections_local, sipHash64(site))"
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
            Some(&version) if version < SCHEMA_VERSION => {
                migrate(node, version)?;
                node.execute(&format!("INSERT INTO {DATABASE}.schema_version VALUES ({SCHEMA_VERSION}, now())"), b"")?;
                done.push(format!("{}: schema version {version} brought to {SCHEMA_VERSION}", node.url()));
            }
            Some(&version) => return Err(ClickHouseError::SchemaVersion { node: node.url(), found: version }),
        }
    }
    done.extend(register_nodes(nodes, cluster)?);
    Ok(done)
}

/// Adds the columns of every version after `from`, to the local and the distributed
/// table, skipping those already there (a migration cut short is finished by the next
/// `init`).
fn migrate(node: &Node, from: u32) -> Result<(), ClickHouseError> {
    for table in ["events_local", "events"] {
        let present = String::from_utf8_lossy(&node.execute(
            &format!("SELECT name FROM system.columns WHERE database = '{DATABASE}' AND table = '{table}' FORMAT TSV"),
            b"",
        )?)
        .into_owned();
        let present: Vec<&str> = present.lines().collect();
        for (_, columns) in MIGRATIONS.iter().filter(|(version, _)| *version > from) {
            for (name, kind) in columns.iter().filter(|(name, _)| !present.contains(name)) {
                node.execute(&format!("ALTER TABLE {DATABASE}.{table} ADD COLUMN `{name}` {kind}"), b"")?;
            }
        }
    }
    Ok(())
}

/// Writes on every node the table of the nodes given and the shard each serves (from
/// its `system.clusters`), so a report can send its per-shard SQL to one node of each
/// shard. Replaced whole by every `init`.
fn register_nodes(nodes: &[Node], cluster: &str) -> Result<Vec<String>, ClickHouseError> {
    let mut rows = Vec::new();
    let mut done = Vec::new();
    for node in nodes {
        let query = format!(
            "SELECT shard_num FROM system.clusters WHERE cluster = '{cluster}' AND is_local = 1 LIMIT 1 FORMAT TSV"
        );
        let answer = String::from_utf8_lossy(&node.execute(&query, b"")?).trim().to_string();
        match answer.parse::<u32>() {
            Ok(shard) => {
                rows.push(format!("('{}', {shard})", crate::quote(&node.url())));
                done.push(format!("{}: serves shard {shard} of {cluster}", node.url()));
            }
            Err(_) => done.push(format!(
                "{}: not a node of cluster {cluster} by its own configuration; reports will not ask it directly",
                node.url()
            )),
        }
    }
    for node in nodes {
        node.execute(&format!("DROP TABLE IF EXISTS {DATABASE}.nodes"), b"")?;
        node.execute(&format!("CREATE TABLE {DATABASE}.nodes (url String, shard UInt32) ENGINE = TinyLog"), b"")?;
        if !rows.is_empty() {
            node.execute(&format!("INSERT INTO {DATABASE}.nodes VALUES {}", rows.join(", ")), b"")?;
        }
    }
    Ok(done)
}

/// The nodes `init` registered, by shard (each shard's nodes in the order given); empty
/// when none were (a schema from before the table).
pub fn shard_nodes(node: &Node) -> Result<Vec<(u32, Vec<Node>)>, ClickHouseError> {
    let exists = node.execute(&format!("EXISTS TABLE {DATABASE}.nodes FORMAT TSV"), b"")?;
    if String::from_utf8_lossy(&exists).trim() != "1" {
        return Ok(Vec::new());
    }
    let answer = node.execute(&format!("SELECT url, shard FROM {DATABASE}.nodes FORMAT TSV"), b"")?;
    let mut shards: Vec<(u32, Vec<Node>)> = Vec::new();
    for line in String::from_utf8_lossy(&answer).lines() {
        let Some((url, shard)) = line.split_once('\t') else { continue };
        let (Ok(shard), Ok(url)) = (shard.trim().parse::<u32>(), node.sibling(url)) else { continue };
        match shards.iter_mut().find(|(number, _)| *number == shard) {
            Some((_, urls)) => urls.push(url),
            None => shards.push((shard, vec![url])),
        }
    }
    shards.sort_by_key(|(shard, _)| *shard);
    Ok(shards)
}

/// The registered nodes (`shard_nodes`) when they name every shard of the cluster the
/// events table spreads over, and only those; else none, with a warning (a list from an
/// `init` given some nodes only, or from before a shard was added, would leave that
/// shard's visitors out of every report sent per shard).
pub fn covering_shard_nodes(node: &Node) -> Result<Vec<(u32, Vec<Node>)>, ClickHouseError> {
    let shards = shard_nodes(node)?;
    if shards.is_empty() {
        return Ok(shards);
    }
    let definition =
        String::from_utf8_lossy(&node.execute(&format!("SHOW CREATE TABLE {DATABASE}.events FORMAT TSV"), b"")?)
            .into_owned();
    let cluster = definition
        .split_once("Distributed(")
        .and_then(|(_, arguments)| arguments.split(',').next())
        .map(|name| name.trim().trim_matches(|c| c == '\'' || c == '\\').to_string())
        .filter(|name| validate_identifier(name).is_ok());
    let Some(cluster) = cluster else {
        tracing::warn!(node = %node.url(), "the events table's cluster is unknown; reports go through the Distributed table");
        return Ok(Vec::new());
    };
    let answer = node.execute(
        &format!(
            "SELECT DISTINCT shard_num FROM system.clusters WHERE cluster = '{cluster}' ORDER BY shard_num FORMAT TSV"
        ),
        b"",
    )?;
    let in_cluster: Vec<u32> =
        String::from_utf8_lossy(&answer).lines().filter_map(|line| line.trim().parse().ok()).collect();
    let registered: Vec<u32> = shards.iter().map(|(shard, _)| *shard).collect();
    if registered != in_cluster {
        tracing::warn!(
            node = %node.url(), ?registered, ?in_cluster,
            "the registered nodes do not name every shard of the cluster (run `upshot clickhouse init` with every node); reports go through the Distributed table"
        );
        return Ok(Vec::new());
    }
    Ok(shards)
}

/// Refuses a cluster name that is not letters, digits and `_` (it goes into SQL as is).
pub fn validate_identifier(name: &str) -> Result<(), ClickHouseError> {
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
