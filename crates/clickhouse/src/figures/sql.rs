//! The generated SQL both fact queries share: the per-visitor stage and small builders.
//!
//! Cost rule: a lambda that *captures* an array (uses it without taking it as an
//! argument) makes ClickHouse copy that array for every element the lambda runs over,
//! so per-event work zips its arrays as lambda arguments (`arrayMap((t, ty) -> ..,
//! w_ts, w_type)`: linear), and captures happen only in loops over short lists
//! (orders, clicks, impressions) of one visitor.

use upshot_model::facts::{FactKind, FACT_VALUES};
use upshot_model::{Kind, Settings};

use super::{Dialect, FactsQuery, FactsRange, Route};
use crate::{quote, schema};

/// Each session attribute (SPEC section 9.1) as SQL over a session's landing device
/// `dv`, channel `ch`, page type `lp` and 1-based index among the visitor's sessions `k`
/// (the first session over all its events is its `new` one): breakdowns and the
/// segment filter both read them here.
pub const SESSION_ATTRIBUTES: [(&str, &str); 4] = [
    ("device", "if(dv = '', 'unknown', dv)"),
    ("visitor_type", "if(k = 1, 'new', 'returning')"),
    ("channel", "ch"),
    ("landing_page_type", "lp"),
];

/// `arrayMap((a, b) -> body, x, y)` from (parameter, array) pairs.
pub fn map(args: &[(&str, &str)], body: &str) -> String {
    lambda("arrayMap", args, body)
}

/// `arrayFilter`: the elements of the first array whose lambda holds.
pub fn filter(args: &[(&str, &str)], body: &str) -> String {
    lambda("arrayFilter", args, body)
}

pub fn exists(args: &[(&str, &str)], body: &str) -> String {
    lambda("arrayExists", args, body)
}

fn lambda(function: &str, args: &[(&str, &str)], body: &str) -> String {
    let parameters: Vec<&str> = args.iter().map(|(parameter, _)| *parameter).collect();
    let arrays: Vec<&str> = args.iter().map(|(_, array)| *array).collect();
    format!("{function}(({}) -> {body}, {})", parameters.join(", "), arrays.join(", "))
}

/// The elements of `array` where `mask` (an array of 0/1 of the same length) is 1.
pub fn masked(array: &str, mask: &str) -> String {
    format!("arrayFilter((x, m) -> m = 1, {array}, {mask})")
}

/// Element `index` (1-based) of tuple `tuple`.
pub fn field(tuple: &str, index: usize) -> String {
    format!("tupleElement({tuple}, {index})")
}

/// Whether `ts` (SQL) is in the range.
pub fn in_range(range: &FactsRange, ts: &str) -> String {
    format!("({ts} >= {} AND {ts} < {})", range.start_ms, range.end_ms)
}

/// The 1-based index of `ts`'s local date in the range (for a ts in range).
pub fn day_of(range: &FactsRange, ts: &str) -> String {
    let day_starts = range.day_starts.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    format!("arrayCount(d -> d <= {ts}, [{day_starts}])")
}

/// Where a fact counts: its kind, the index of its range, and its date in that range
/// (1-based; 0 when it has none).
pub struct FactPlace<'a> {
    pub kind: FactKind,
    pub range: usize,
    pub day: &'a str,
}

/// The payload of an order fact (and of the experiment fact's order list), as typed
/// fields: event_id, order_id, ts, session's first ts, personalized session,
/// recommendation session, line items, quantities, prices, touches, recommendation
/// clicks, variants, revenue, experiment orders, experiment orders in the CUPED
/// lookback before the assignment, the order session's attributes (in
/// `SESSION_ATTRIBUTES` order), whether the segment filter keeps the order's session. Count facts carry `no_payload`.
pub const PAYLOAD_FIELDS: usize = 17;

const TOUCH_TYPE_SAMPLE: &str = "(toInt64(0), '', '', '', '', '', '')";

/// `no_payload`: every field empty, typed (an array of one, as every stage column is
/// an array).
fn no_payload() -> String {
    format!(
        "[('', '', toInt64(0), toInt64(0), toUInt8(0), toUInt8(0), emptyArrayString(), emptyArrayUInt32(), \
           emptyArrayInt64(), arrayFilter(x -> 0, [{TOUCH_TYPE_SAMPLE}]), arrayFilter(x -> 0, [{TOUCH_TYPE_SAMPLE}]), \
           arrayFilter(x -> 0, [('', '')]), toInt64(0), emptyArrayString(), emptyArrayString(), emptyArrayString(), toUInt8(0))] AS no_payload"
    )
}

/// A payload with `fields` (1-based index, SQL) set and the others empty.
pub fn payload(fields: &[(usize, &str)]) -> String {
    let parts: Vec<String> = (1..=PAYLOAD_FIELDS)
        .map(|index| match fields.iter().find(|(at, _)| *at == index) {
            Some((_, value)) => value.to_string(),
            None => field("arrayElement(no_payload, 1)", index),
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// A count fact tuple: kind, range, day, four keys, then the values (missing ones are
/// 0). The output adds the (empty) payload (`with_no_payload`).
pub fn fact(place: FactPlace, keys: [&str; 4], values: &[&str]) -> String {
    format!("({})", fact_parts(place, keys, values).join(", "))
}

/// A fact tuple with a payload: the count fact's fields (no values), then `payload`.
pub fn fact_with_payload(place: FactPlace, keys: [&str; 4], payload: &str) -> String {
    let mut parts = fact_parts(place, keys, &[]);
    parts.push(payload.to_string());
    format!("({})", parts.join(", "))
}

/// Count facts (`facts`, an array expression) with the empty payload added.
pub fn with_no_payload(facts: &str) -> String {
    let fields: Vec<String> = (1..=7 + FACT_VALUES).map(|index| field("x", index)).collect();
    format!("arrayMap(x -> ({}, arrayElement(no_payload, 1)), {facts})", fields.join(", "))
}

fn fact_parts(place: FactPlace, keys: [&str; 4], values: &[&str]) -> Vec<String> {
    let mut parts = vec![
        format!("toUInt8({})", place.kind as u8),
        format!("toUInt32({})", place.range),
        format!("toUInt32({})", place.day),
    ];
    parts.extend(keys.iter().map(|key| format!("toString({key})")));
    for index in 0..FACT_VALUES {
        parts.push(format!("toUInt64({})", values.get(index).copied().unwrap_or("0")));
    }
    parts
}

/// The event ids of the orders that count: per order_id the first order event (by ts,
/// then event_id), unless a refund cancels it. Each event once (an event delivered
/// twice is grouped by its id).
fn counted_order_ids(site: &str) -> String {
    format!(
        "SELECT tupleElement(first_order, 2) FROM ( \
           SELECT order_id, minIf((event_ts, event_id), event_type = 'order') AS first_order, \
             countIf(event_type = 'order') AS orders, maxIf(refund_cancel, event_type = 'refund') AS cancelled \
           FROM ( \
             SELECT event_id, argMin(type, ts) AS event_type, argMin(order_id, ts) AS order_id, min(ts) AS event_ts, \
               argMin(cancel, ts) AS refund_cancel \
             FROM {db}.events WHERE site = '{site}' AND type IN ('order', 'refund') GROUP BY event_id \
           ) GROUP BY order_id \
         ) WHERE orders > 0 AND cancelled = 0",
        db = schema::DATABASE,
        site = quote(site)
    )
}

/// The report's filter over an event's placement (`pl`), kind (`kd`) and page type
/// (`pg`), for impressions and interactions (`ty`).
/// Per session, whether the segment filter keeps it (all of them without one).
fn session_kept(query: &FactsQuery) -> String {
    let condition = match &query.segment {
        None => "1".to_string(),
        Some((dimension, value)) => {
            let attribute = SESSION_ATTRIBUTES.iter().find(|(name, _)| name == dimension).map_or("''", |(_, sql)| sql);
            format!("{attribute} = '{}'", quote(value))
        }
    };
    map(
        &[("dv", "s_device"), ("ch", "s_channel"), ("lp", "s_landing_page"), ("k", "arrayEnumerate(s_first)")],
        &format!("toUInt8({condition})"),
    )
}

fn filter_condition(query: &FactsQuery) -> String {
    let mut condition = "ty IN ('impression', 'interaction')".to_string();
    if let Some(page_type) = &query.page_type {
        condition.push_str(&format!(" AND pg = '{}'", quote(page_type)));
    }
    if let Some(placement) = &query.placement {
        condition.push_str(&format!(" AND pl = '{}'", quote(placement)));
    }
    if let Some(kind) = query.kind {
        condition.push_str(&format!(" AND kd = '{}'", kind.as_str()));
    }
    condition
}

/// Whether an interaction of kind `kind_sql` with action `action_sql` (SQL expressions)
/// is a qualifying touch under the site's settings.
pub fn qualifying_condition(settings: &Settings, kind_sql: &str, action_sql: &str) -> String {
    let mut parts = Vec::new();
    for kind in Kind::ALL {
        let qualifying = settings.qualifying[kind.index()];
        let mut actions = Vec::new();
        if qualifying.click {
            actions.push("'click'");
        }
        if qualifying.hover {
            actions.push("'hover'");
        }
        if !actions.is_empty() {
            parts.push(format!("({kind_sql} = '{}' AND {action_sql} IN ({}))", kind.as_str(), actions.join(", ")));
        }
    }
    if parts.is_empty() {
        "0".to_string()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

const WEB_TYPES: &str = "['page_view', 'impression', 'interaction', 'product_view', 'add_to_cart', 'goal', 'order']";

/// Every column the stage reads, in the order of the tuples of `ev` (all events, sorted
/// by (ts, event_id)).
const COLUMNS: [(&str, &str); 28] = [
    ("ts", "ts"),
    ("id", "event_id"),
    ("type", "type"),
    ("placement", "placement"),
    ("kind", "kind"),
    ("action", "action"),
    ("item", "ifNull(item, '')"),
    ("items", "items"),
    ("impression", "ifNull(impression_id, '')"),
    ("campaign", "ifNull(campaign, '')"),
    ("sequence", "ifNull(sequence, '')"),
    ("page", "ifNull(page_type, 'other')"),
    ("label", "ifNull(label, '')"),
    ("lines", "line_items"),
    ("quantities", "line_quantities"),
    ("prices", "line_prices"),
    ("order_id", "order_id"),
    ("revenue", "revenue"),
    ("experiment", "experiment"),
    ("variant", "variant"),
    ("journey", "journey"),
    ("channel", "ifNull(channel, '')"),
    ("has_channel", "toUInt8(isNotNull(channel))"),
    ("profile", "ifNull(profile_id, '')"),
    ("goal", "goal"),
    ("value", "ifNull(value, toInt64(0))"),
    ("device", "ifNull(device, '')"),
    ("landing_channel", "landing_channel"),
];

/// Field `name` (a `COLUMNS` name) of event tuple `tuple` (an element of `ev`,
/// `n_list`).
pub fn event_field(tuple: &str, name: &str) -> String {
    let index = COLUMNS.iter().position(|(column, _)| *column == name).expect("a stage column") + 1;
    field(tuple, index)
}

/// The columns web events keep as `w_<name>`.
const WEB_COLUMNS: [&str; 23] = [
    "ts",
    "id",
    "type",
    "placement",
    "kind",
    "action",
    "item",
    "items",
    "impression",
    "campaign",
    "sequence",
    "page",
    "label",
    "pass",
    "lines",
    "quantities",
    "prices",
    "order_id",
    "revenue",
    "goal",
    "value",
    "device",
    "landing_channel",
];

/// Per session (`s_*`, one element per session), the sum of a per-web-event count
/// `flags`: the running sum at the session's last event minus the one before its first.
fn session_sum(flags: &str) -> String {
    let running = format!("arrayCumSum(arrayMap(x -> toUInt64(x), {flags}))");
    format!(
        "arrayMap((e, b) -> e - b, {}, {})",
        masked(&running, "w_last"),
        masked(&format!("arrayMap((c, x) -> c - x, {running}, {flags})"), "w_start")
    )
}

/// The per-visitor stage:
/// - `ev`: the visitor's events (counted orders only, no refunds) sorted by (ts,
///   event_id), as tuples of `COLUMNS`; `n_list`: those that are assignments, journey
///   events or sequence starts.
/// - `w_*`: its web events (`w_pass`: whether an impression or interaction passes the
///   filter); `w_session` (1-based), `w_start` / `w_last` (first / last
///   event of its session), `w_first` (its session's first ts), `w_pos` (1-based).
/// - `s_*`: per session: `s_first`, `s_page_views`, `s_engaged`, `s_orders`,
///   `s_personalized`, `s_recommendation`.
/// - `o_list`: counted orders as (1, ts, event_id, order_id, revenue, line items,
///   quantities, prices, session); `a_firsts`: the earliest assignment per experiment
///   as (ts, experiment, variant).
///
/// `extra` are the query's own arrays (`expression AS alias`); `output` its result, an
/// expression over `{keep}` (see below) and the arrays, named by `output_alias`.
///
/// Shape: the innermost level reads the Distributed table and groups each visitor's
/// events into arrays (`r_*`) on the visitor's shard; each following level adds the
/// arrays whose inputs the levels below made. One level of many aliases would be
/// simpler, but ClickHouse 18.16 substitutes every alias into the expressions using it
/// and names each intermediate by its whole text, so its analysis alone took 2.5 s; in
/// levels it takes a fraction of that.
///
/// ClickHouse 18.16 also does not see that a level needs a column a lambda only
/// captures (`c -> has(c_ids, c)` without `c_ids` as an argument), and drops it from
/// the level below ("Unknown identifier"). So in the `Legacy` dialect each level
/// carries `0 * (length(..) + ..)` of every column made so far, and the output takes
/// all of them as `{keep}`; the `Current` dialect (the analyzer of ClickHouse 24.3 and
/// later) needs no carriers and `{keep}` is `0`.
pub fn visitor_stage(
    query: &FactsQuery,
    extra: &[String],
    output: (&str, &str),
    (route, dialect): (Route, Dialect),
) -> String {
    let (output, output_alias) = output;
    let gap = query.settings.session_gap_ms;
    // On the shard: each visitor's events as one array of tuples, sorted (by ts, then
    // event_id: the first two fields; an event_id is unique per visitor).
    let columns: Vec<&str> = COLUMNS.iter().map(|(_, expression)| *expression).collect();
    let grouped = format!("arraySort(groupArray(({}))) AS ev", columns.join(", "));
    let mut select: Vec<String> = vec!["visitor_id".to_string()];
    select.push(format!("arrayFilter(x -> has({WEB_TYPES}, {}), ev) AS wv", event_field("x", "type")));
    for name in WEB_COLUMNS.iter().filter(|name| **name != "pass") {
        select.push(format!("arrayMap(x -> {}, wv) AS w_{name}", event_field("x", name)));
    }
    select.push(format!(
        "arrayFilter(x -> {} IN ('assignment', 'journey', 'sequence_start'), ev) AS n_list",
        event_field("x", "type")
    ));
    select.push(format!(
        "{} AS w_pass",
        map(
            &[("pl", "w_placement"), ("kd", "w_kind"), ("pg", "w_page"), ("ty", "w_type")],
            &format!("toUInt8({})", filter_condition(query))
        )
    ));
    select.extend([
        "arrayEnumerate(w_ts) AS w_pos".to_string(),
        format!(
            "{} AS w_start",
            map(
                // Each event's predecessor's ts; a visitor without web events (only
                // journeys or sequence starts) has none, and [0] would not match its
                // empty arrays in length.
                &[
                    ("t", "w_ts"),
                    ("p", "if(empty(w_ts), emptyArrayInt64(), arrayPushFront(arrayPopBack(w_ts), toInt64(0)))"),
                    ("k", "w_pos"),
                ],
                &format!("toUInt8(k = 1 OR t - p > {gap})")
            )
        ),
        "arrayCumSum(w_start) AS w_session".to_string(),
        "if(empty(w_start), emptyArrayUInt8(), arrayPushBack(arrayPopFront(w_start), toUInt8(1))) AS w_last".to_string(),
        format!("{} AS s_first", masked("w_ts", "w_start")),
        "arrayMap(s -> arrayElement(s_first, s), w_session) AS w_first".to_string(),
        format!("{} AS s_page_views", session_sum(&map(&[("ty", "w_type")], "ty = 'page_view'"))),
        format!(
            "{} AS s_engaged",
            session_sum(&map(
                &[("ty", "w_type")],
                "has(['interaction', 'product_view', 'add_to_cart', 'goal', 'order'], ty)"
            ))
        ),
        format!("{} AS s_orders", session_sum(&map(&[("ty", "w_type")], "ty = 'order'"))),
        // The landing event of each session (SPEC section 9.1): its first page view, or
        // its first web event when it has none; one per session, in session order.
        map(&[("ty", "w_type")], "toUInt8(ty = 'page_view')") + " AS w_is_pv",
        "arrayCumSum(w_is_pv) AS w_pv_cum".to_string(),
        format!("{} AS s_pv_before", masked("arrayMap((c, p) -> c - p, w_pv_cum, w_is_pv)", "w_start")),
        format!(
            "{} AS w_landing",
            map(
                &[("ip", "w_is_pv"), ("c", "w_pv_cum"), ("st", "w_start"), ("s", "w_session")],
                "toUInt8((ip = 1 AND c - arrayElement(s_pv_before, s) = 1) OR (st = 1 AND arrayElement(s_page_views, s) = 0))"
            )
        ),
        format!("{} AS s_device", masked("w_device", "w_landing")),
        format!("{} AS s_channel", masked("w_landing_channel", "w_landing")),
        format!("{} AS s_landing_page", masked("w_page", "w_landing")),
        format!("{} AS s_kept", session_kept(query)),
        "arrayMap(s -> arrayElement(s_kept, s), w_session) AS w_kept".to_string(),
        format!(
            "{} AS s_personalized",
            session_sum(&map(&[("ty", "w_type"), ("ps", "w_pass")], "ty = 'impression' AND ps = 1"))
        ),
        format!(
            "{} AS s_recommendation",
            session_sum(&map(
                &[("ty", "w_type"), ("ps", "w_pass"), ("kd", "w_kind")],
                "ty = 'impression' AND ps = 1 AND kd = 'recommendation'"
            ))
        ),
        format!(
            "{} AS o_list",
            masked(
                &map(
                    &[
                        ("t", "w_ts"),
                        ("id", "w_id"),
                        ("oi", "w_order_id"),
                        ("rv", "w_revenue"),
                        ("li", "w_lines"),
                        ("qu", "w_quantities"),
                        ("pr", "w_prices"),
                        ("s", "w_session")
                    ],
                    "(toUInt8(1), t, id, oi, rv, li, qu, pr, s)"
                ),
                &map(&[("ty", "w_type")], "toUInt8(ty = 'order')")
            )
        ),
        format!(
            "arrayMap(x -> ({}, {}, {}), arrayFilter(x -> {} = 'assignment', n_list)) AS a_list",
            event_field("x", "ts"),
            event_field("x", "experiment"),
            event_field("x", "variant"),
            event_field("x", "type")
        ),
        format!(
            "{} AS a_firsts",
            masked(
                "a_list",
                "arrayMap(u -> toUInt8(u = 1), arrayEnumerateUniq(arrayMap(a -> tupleElement(a, 2), a_list)))"
            )
        ),
    ]);
    select.push(no_payload());
    select.extend(extra.iter().cloned());
    let earliest = query.ranges.iter().map(|range| range.previous_start_ms).min().unwrap_or(0);
    let latest = query.ranges.iter().map(|range| range.end_ms).max().unwrap_or(0);
    let relevant = crate::active_visitors(&query.site, earliest, latest);
    // Run on a shard, the stage reads the shard's own table; the counted orders always
    // come from the whole cluster (an order_id's events may be on several shards).
    let (table, counted_in) = match route {
        Route::PerShard => ("events_local", "IN"),
        Route::Distributed => ("events", "GLOBAL IN"),
    };
    let mut sql = format!(
        "SELECT visitor_id, {grouped} FROM {db}.{table} FINAL \
         WHERE site = '{site}' AND type != 'refund' AND ({relevant}) \
           AND (type != 'order' OR event_id {counted_in} ({counted})) \
         GROUP BY visitor_id",
        db = schema::DATABASE,
        site = quote(&query.site),
        counted = counted_order_ids(&query.site),
    );
    let mut made: Vec<String> = vec!["visitor_id".to_string(), "ev".to_string()];
    // The carriers of captured columns only where the server needs them (Legacy).
    let keep = |made: &[String]| match dialect {
        Dialect::Legacy => {
            format!("0 * ({})", made.iter().map(|alias| format!("length({alias})")).collect::<Vec<_>>().join(" + "))
        }
        Dialect::Current => "0".to_string(),
    };
    for level in levels(&select[1..], &made) {
        sql = match dialect {
            Dialect::Legacy => {
                format!("SELECT *, {}, {} AS keep_{} FROM ({sql})", level.join(", "), keep(&made), made.len())
            }
            Dialect::Current => format!("SELECT *, {} FROM ({sql})", level.join(", ")),
        };
        made.extend(level.iter().map(|item| alias_of(item)));
    }
    format!("SELECT visitor_id, {} AS {output_alias} FROM ({sql})", output.replace("{keep}", &keep(&made)))
}

fn alias_of(item: &str) -> String {
    item.rsplit_once(" AS ").map_or_else(|| item.to_string(), |(_, alias)| alias.to_string())
}

/// Whether `text` uses the name `name` (as a whole word).
fn uses(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// The items (`expression AS alias`, not yet made) in levels: each in the first level
/// above every item it uses; `made` are the columns the innermost level makes.
fn levels(items: &[String], made: &[String]) -> Vec<Vec<String>> {
    let mut level_of: Vec<(String, usize)> = made.iter().map(|alias| (alias.clone(), 0)).collect();
    let mut levels: Vec<Vec<String>> = Vec::new();
    for item in items {
        let (expression, alias) = item.rsplit_once(" AS ").expect("every stage item is `expression AS alias`");
        let level =
            level_of.iter().filter(|(name, _)| uses(expression, name)).map(|(_, level)| level + 1).max().unwrap_or(1);
        if levels.len() < level {
            levels.resize(level, Vec::new());
        }
        levels[level - 1].push(item.clone());
        level_of.push((alias.to_string(), level));
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_item_goes_one_level_above_everything_it_uses() {
        let items: Vec<String> =
            ["length(ev) AS a", "a + 1 AS b", "arrayMap(x -> x + a, ev) AS c", "b + c AS d", "1 AS e"]
                .iter()
                .map(|item| item.to_string())
                .collect();
        let made = ["visitor_id".to_string(), "ev".to_string()];
        let levels = levels(&items, &made);
        let names: Vec<Vec<String>> =
            levels.iter().map(|level| level.iter().map(|item| alias_of(item)).collect()).collect();
        assert_eq!(names, [vec!["a", "e"], vec!["b", "c"], vec!["d"]]);
    }

    #[test]
    fn a_name_is_used_only_as_a_whole_word() {
        assert!(uses("w_ts + 1", "w_ts") && uses("f(w_ts)", "w_ts"));
        assert!(!uses("w_ts2 + 1", "w_ts") && !uses("s_w_ts", "w_ts"));
    }
}
