//! Figures computed inside ClickHouse by generated SQL. Each shard groups its visitors'
//! events into per-visitor arrays sorted by (ts, event_id) and, with array functions
//! and lambdas, forms the sessions, marks clicked impressions, matches clicks to orders
//! and touches to orders, and emits *facts* (`upshot_model::facts`): counts keyed by
//! what they count in, and per-order facts. A visitor lives on one shard, so this is
//! exact per shard; the node sums the facts of all shards. Money is never summed here:
//! the order facts name each order, its session and its touches, and the engine credits
//! the order book's net revenue in fixed point. SQL kept to what ClickHouse 18.16 and
//! modern ClickHouse both accept: no window functions, explicit `tupleElement` /
//! `arrayElement`, aliases that never shadow a column, values bound on the client side
//! (numbers formatted, texts quoted). `sql.rs` builds the per-visitor stage both
//! queries share, `counts.rs` and `orders.rs` the queries.

mod counts;
mod orders;
mod sql;

use upshot_model::facts::{CountFact, ExperimentFact, FactKind, Facts, OrderFact, TouchFact, FACT_VALUES};
use upshot_model::{Kind, Settings};

use crate::http::Node;
use crate::ClickHouseError;

/// One report range: its instants, the previous period's start, and the local midnight
/// of every date in range (epoch milliseconds).
#[derive(Debug, Clone)]
pub struct FactsRange {
    pub start_ms: i64,
    pub end_ms: i64,
    pub previous_start_ms: i64,
    pub day_starts: Vec<i64>,
    /// Where the 24 hours of the active counts end (the range's end, or the present).
    pub active_end_ms: i64,
}

/// What the figures are asked for: a site, its settings, the report's filter, and one
/// or more ranges (computed from the same pass over each visitor).
#[derive(Debug, Clone)]
pub struct FactsQuery {
    pub site: String,
    pub ranges: Vec<FactsRange>,
    pub settings: Settings,
    pub page_type: Option<String>,
    pub placement: Option<String>,
    pub kind: Option<Kind>,
    /// The segment filter (SPEC section 9.2) as (dimension, value), checked by the caller.
    pub segment: Option<(String, String)>,
}

/// The facts of each range of a query, and its order facts (shared by the ranges).
pub type RangeFacts = (Vec<Facts>, Vec<OrderFact>);

/// Where the generated SQL runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Sent to one node of each shard, over that shard's own table: every level runs
    /// there, and the shard answers with its summed facts.
    PerShard,
    /// Sent to one node over the Distributed table: the shards group their visitors'
    /// events, the node runs the rest (when `init` registered no nodes).
    Distributed,
}

/// Which SQL a server is sent, by its `version()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// ClickHouse before 24.3 (Debian's 18.16): each level of the per-visitor stage
    /// carries the columns its lambdas capture (see `sql::visitor_stage`).
    Legacy,
    /// ClickHouse 24.3 and later (the new analyzer, on by default): no carriers.
    Current,
}

impl Dialect {
    pub fn of(version: crate::http::ServerVersion) -> Dialect {
        if (version.major, version.minor) >= (24, 3) {
            Dialect::Current
        } else {
            Dialect::Legacy
        }
    }
}

/// The generated SQL: the per-visitor stage, the facts of every range and the order
/// facts, summed by key (an order or an experiment fact is alone under its key, so
/// `any` keeps its payload).
pub fn facts_sql(query: &FactsQuery, route: Route, dialect: Dialect) -> String {
    let mut arrays = counts::shared_lists(query);
    arrays.push(orders::order_facts(query));
    let mut counted = Vec::new();
    let mut with_payloads = vec!["f_orders".to_string()];
    for (index, range) in query.ranges.iter().enumerate() {
        let (range_arrays, range_outputs) = counts::range_facts(query, range, index);
        arrays.extend(range_arrays);
        counted.extend(range_outputs);
        arrays.push(orders::experiment_facts(query, range, index));
        with_payloads.push(format!("f_experiments_{index}"));
    }
    let output = format!(
        "arraySlice(arrayConcat({}, {}), 1, 4294967295 + {{keep}})",
        sql::with_no_payload(&format!("arrayConcat({})", counted.join(", "))),
        with_payloads.join(", ")
    );
    let f = |index: usize| sql::field("f", index);
    let values: Vec<String> =
        (0..FACT_VALUES).map(|index| format!("sum({}) AS v{}", f(index + 8), index + 1)).collect();
    let keys: Vec<String> = (1..=7).map(f).collect();
    format!(
        "SELECT {} AS fact, {} AS range, {} AS day, {} AS k1, {} AS k2, {} AS k3, {} AS k4, {values}, any({}) AS payload \
         FROM ({stage}) ARRAY JOIN facts AS f \
         GROUP BY {keys} {settings}\
         FORMAT JSONEachRow",
        keys[0],
        keys[1],
        keys[2],
        keys[3],
        keys[4],
        keys[5],
        keys[6],
        f(8 + FACT_VALUES),
        values = values.join(", "),
        keys = keys.join(", "),
        settings = facts_settings(route),
        stage = sql::visitor_stage(query, &arrays, (&output, "facts"), (route, dialect)),
    )
}

/// Bytes a shard holds of its visitors' grouped events before it spills them to disk.
/// The stage groups every event of each visitor active in the ranges: at 10.6M events
/// on two shards a 30-day report went past 18.16's default 4 GB a query after 92 s.
/// A quarter of that default leaves room for the arrays computed from each visitor.
pub const GROUP_BYTES_IN_MEMORY: u64 = 1 << 30;

/// The facts query's settings: grouping spills past `GROUP_BYTES_IN_MEMORY`; through
/// the Distributed table each visitor is grouped on its own shard, whole (the shards'
/// answers are not merged by visitor on the node).
fn facts_settings(route: Route) -> String {
    let distributed = if route == Route::Distributed { ", distributed_group_by_no_merge = 1" } else { "" };
    format!("SETTINGS max_bytes_before_external_group_by = {GROUP_BYTES_IN_MEMORY}{distributed} ")
}

/// The facts of every range of `query` (in order) and the order facts (shared by all
/// ranges), computed by the cluster behind `node`: per shard when `init` registered
/// the nodes (one query to a node of each shard, at once; a shard's next node when one
/// is unreachable), and the shards' facts summed here; else, or when no node of a shard
/// can be reached, through the Distributed table.
pub fn figure_facts(node: &Node, query: &FactsQuery) -> Result<RangeFacts, ClickHouseError> {
    let shards = crate::schema::covering_shard_nodes(node)?;
    if shards.is_empty() {
        return figure_facts_via(node, query, Route::Distributed);
    }
    let answers: Vec<Result<RangeFacts, ClickHouseError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .iter()
            .map(|(_, nodes)| {
                scope.spawn(move || {
                    let mut answer = figure_facts_via(&nodes[0], query, Route::PerShard);
                    for replica in &nodes[1..] {
                        if !matches!(answer, Err(ClickHouseError::Unreachable { .. })) {
                            break;
                        }
                        answer = figure_facts_via(replica, query, Route::PerShard);
                    }
                    answer
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("a shard's figure query panicked")).collect()
    });
    // A shard none of whose registered nodes this collector can reach (addresses seen
    // from elsewhere when `init` ran): the node it was given still reaches every shard.
    if answers.iter().any(|answer| matches!(answer, Err(ClickHouseError::Unreachable { .. }))) {
        tracing::warn!(node = %node.url(), "a shard's registered nodes are unreachable; computing through the Distributed table");
        return figure_facts_via(node, query, Route::Distributed);
    }
    let mut merged = (vec![Facts::default(); query.ranges.len()], Vec::new());
    for answer in answers {
        let (facts, orders) = answer?;
        for (into, from) in merged.0.iter_mut().zip(facts) {
            merge_counts(&mut into.counts, from.counts);
            into.experiments.extend(from.experiments);
        }
        merged.1.extend(orders);
    }
    Ok(merged)
}

/// Adds `from` to `into`, summing the values of facts with the same kind, day and keys.
fn merge_counts(into: &mut Vec<CountFact>, from: Vec<CountFact>) {
    let mut index: std::collections::HashMap<(FactKind, u32, [String; 4]), usize> =
        into.iter().enumerate().map(|(at, fact)| ((fact.kind, fact.day, fact.keys.clone()), at)).collect();
    for fact in from {
        match index.get(&(fact.kind, fact.day, fact.keys.clone())) {
            Some(&at) => {
                for (sum, value) in into[at].values.iter_mut().zip(fact.values) {
                    *sum += value;
                }
            }
            None => {
                index.insert((fact.kind, fact.day, fact.keys.clone()), into.len());
                into.push(fact);
            }
        }
    }
}

/// Fact rows one node's answer may hold at most: counts are few (keys by placement and
/// date), but there is one row per order and per visitor assigned to an experiment in
/// range; past this a report would hold too much in memory.
pub const FACT_ROWS_MAX: usize = 20_000_000;

/// The facts as one node answers `query` by `route`.
pub fn figure_facts_via(
    node: &dyn crate::SqlSource,
    query: &FactsQuery,
    route: Route,
) -> Result<RangeFacts, ClickHouseError> {
    // Through the Distributed table the stage runs on every shard, whose versions this
    // node does not know: 18.16's dialect, which every version runs.
    let dialect = match route {
        Route::PerShard => Dialect::of(node.server_version()?),
        Route::Distributed => Dialect::Legacy,
    };
    figure_facts_in(node, query, route, dialect)
}

/// The facts as one node answers `query` by `route`, in `dialect` (the tests run both
/// dialects on a current ClickHouse).
pub fn figure_facts_in(
    node: &dyn crate::SqlSource,
    query: &FactsQuery,
    route: Route,
    dialect: Dialect,
) -> Result<RangeFacts, ClickHouseError> {
    let mut facts = vec![Facts::default(); query.ranges.len()];
    let mut orders = Vec::new();
    let mut bad = None;
    let mut rows = 0usize;
    node.query_lines(&facts_sql(query, route, dialect), &mut |line| {
        rows += 1;
        if rows > FACT_ROWS_MAX {
            return;
        }
        let parsed = serde_json::from_slice::<JsonRow>(line).ok().and_then(|row| parse_row(&row));
        match parsed {
            Some(Row::Count(range, fact)) if range < facts.len() => facts[range].counts.push(fact),
            Some(Row::Experiment(range, fact)) if range < facts.len() => facts[range].experiments.push(fact),
            Some(Row::Order(fact)) => orders.push(fact),
            _ => {
                bad.get_or_insert_with(|| String::from_utf8_lossy(line).chars().take(200).collect::<String>());
            }
        }
    })?;
    if rows > FACT_ROWS_MAX {
        return Err(ClickHouseError::TooManyFacts { node: node.name(), rows_max: FACT_ROWS_MAX });
    }
    match bad {
        Some(row) => Err(ClickHouseError::BadRow { node: node.name(), reason: format!("a figure fact: {row}") }),
        None => Ok((facts, orders)),
    }
}

enum Row {
    Count(usize, CountFact),
    Order(OrderFact),
    Experiment(usize, ExperimentFact),
}

fn parse_row(row: &JsonRow) -> Option<Row> {
    let kind = FactKind::from_code(row_number(row, "fact")?)?;
    let range = usize::try_from(row_number(row, "range")?).ok()?;
    let keys = [row_text(row, "k1")?, row_text(row, "k2")?, row_text(row, "k3")?, row_text(row, "k4")?];
    let payload = row.get("payload")?.as_array()?;
    if payload.len() != sql::PAYLOAD_FIELDS {
        return None;
    }
    match kind {
        FactKind::Order => {
            let [_, visitor, _, _] = keys;
            parse_order(visitor, payload).map(Row::Order)
        }
        FactKind::Experiment => {
            let [experiment, variant, _, _] = keys;
            let orders = json_texts(&payload[13])?;
            let pre_orders = json_texts(&payload[14])?;
            Some(Row::Experiment(range, ExperimentFact { experiment, variant, orders, pre_orders }))
        }
        _ => {
            let mut values = [0; FACT_VALUES];
            for (index, slot) in values.iter_mut().enumerate() {
                *slot = row_number(row, &format!("v{}", index + 1))?;
            }
            let day = u32::try_from(row_number(row, "day")?).ok()?;
            Some(Row::Count(range, CountFact { kind, day, keys, values }))
        }
    }
}

/// The order session's attributes, sent in `SESSION_ATTRIBUTES` order, as (dimension,
/// value) pairs.
fn session_attributes_of(values: Vec<String>) -> Option<Vec<(String, String)>> {
    if values.len() != sql::SESSION_ATTRIBUTES.len() {
        return None;
    }
    Some(sql::SESSION_ATTRIBUTES.iter().map(|(dimension, _)| dimension.to_string()).zip(values).collect())
}

fn parse_order(visitor: String, payload: &[serde_json::Value]) -> Option<OrderFact> {
    let text = |index: usize| payload[index].as_str().map(str::to_string);
    let items = json_texts(&payload[6])?;
    let quantities: Vec<u32> = payload[7]
        .as_array()?
        .iter()
        .map(|quantity| json_i64(quantity).and_then(|quantity| u32::try_from(quantity).ok()))
        .collect::<Option<_>>()?;
    let prices: Vec<i64> = payload[8].as_array()?.iter().map(json_i64).collect::<Option<_>>()?;
    if items.len() != quantities.len() || items.len() != prices.len() {
        return None;
    }
    let variants = payload[11]
        .as_array()?
        .iter()
        .map(|pair| {
            let pair = json_texts(pair)?;
            (pair.len() == 2).then(|| (pair[0].clone(), pair[1].clone()))
        })
        .collect::<Option<_>>()?;
    Some(OrderFact {
        visitor,
        event_id: text(0)?,
        order_id: text(1)?,
        ts: json_i64(&payload[2])?,
        revenue: json_i64(&payload[12])?,
        session_first_ts: json_i64(&payload[3])?,
        session_personalized: json_i64(&payload[4])? == 1,
        session_recommendation: json_i64(&payload[5])? == 1,
        lines: items
            .into_iter()
            .zip(quantities)
            .zip(prices)
            .map(|((item, quantity), price)| (item, quantity, price))
            .collect(),
        touches: json_touches(&payload[9])?,
        recommendation_clicks: json_touches(&payload[10])?,
        variants,
        session_attributes: session_attributes_of(json_texts(&payload[15])?)?,
        session_kept: json_i64(&payload[16])? == 1,
    })
}

/// A JSONEachRow row's fields.
type JsonRow = serde_json::Map<String, serde_json::Value>;

/// An unsigned number, which ClickHouse writes as a JSON number or (64-bit) a string.
fn row_number(row: &JsonRow, name: &str) -> Option<u64> {
    match row.get(name)? {
        serde_json::Value::Number(number) => number.as_u64(),
        serde_json::Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn row_text(row: &JsonRow, name: &str) -> Option<String> {
    row.get(name)?.as_str().map(str::to_string)
}

/// A signed number, which ClickHouse writes as a JSON number or (64-bit) a string.
fn json_i64(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(number) => number.as_i64(),
        serde_json::Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn json_texts(value: &serde_json::Value) -> Option<Vec<String>> {
    value.as_array()?.iter().map(|text| text.as_str().map(str::to_string)).collect()
}

fn json_touches(value: &serde_json::Value) -> Option<Vec<TouchFact>> {
    value
        .as_array()?
        .iter()
        .map(|touch| {
            let fields = touch.as_array()?;
            let text = |index: usize| fields.get(index)?.as_str().map(str::to_string);
            Some(TouchFact {
                ts: json_i64(fields.first()?)?,
                placement: text(1)?,
                kind: text(2)?,
                campaign: text(3)?,
                sequence: text(4)?,
                page_type: text(5)?,
                item: text(6)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(site: &str, page_type: Option<&str>) -> FactsQuery {
        FactsQuery {
            site: site.into(),
            ranges: vec![
                FactsRange {
                    start_ms: 0,
                    end_ms: 86_400_000,
                    previous_start_ms: -86_400_000,
                    day_starts: vec![0],
                    active_end_ms: 86_400_000,
                },
                FactsRange {
                    start_ms: -86_400_000,
                    end_ms: 0,
                    previous_start_ms: -172_800_000,
                    day_starts: vec![-86_400_000],
                    active_end_ms: 0,
                },
            ],
            settings: Settings::default(),
            page_type: page_type.map(str::to_string),
            placement: None,
            kind: Some(Kind::Popup),
            segment: Some(("landing_page_type".into(), "it's".into())),
        }
    }

    #[test]
    fn texts_are_quoted_into_the_sql_and_every_range_has_its_facts() {
        let sql = facts_sql(&query("o'shop", Some("it's")), Route::Distributed, Dialect::Legacy);
        assert!(sql.contains("site = 'o\\'shop'") && sql.contains("pg = 'it\\'s'") && sql.contains("kd = 'popup'"));
        assert!(sql.contains("lp = 'it\\'s'"), "the segment's value is quoted too");
        assert!(!sql.contains("o'shop") && !sql.contains("it's"), "no text goes in unquoted");
        for index in 0..2 {
            assert!(sql.contains(&format!("f_sessions_{index}")) && sql.contains(&format!("f_experiments_{index}")));
        }
        // The earliest previous period to the latest end decides which visitors count.
        assert!(sql.contains("ts >= -172800000 AND ts < 86400000"), "{sql}");
        assert!(sql.contains("FROM upshot.events FINAL") && sql.contains("GLOBAL IN"));
        let per_shard = facts_sql(&query("shop", None), Route::PerShard, Dialect::Legacy);
        assert!(per_shard.contains("FROM upshot.events_local FINAL") && !per_shard.contains("GLOBAL IN"));
        assert!(!per_shard.contains("distributed_group_by_no_merge"));
    }
}
