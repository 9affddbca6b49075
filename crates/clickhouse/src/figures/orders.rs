//! The order facts (each counted order with its session's flags, lines, touches and
//! recommendation clicks in their windows, and variants: once, for every range) and the
//! experiment facts of each range (each earliest assignment in range with the orders
//! that follow it), as fact tuples whose payload carries them.

use upshot_model::facts::FactKind;

use super::sql::{
    fact_with_payload, field, filter, in_range, map, masked, payload, qualifying_condition, FactPlace,
    SESSION_ATTRIBUTES,
};
use super::{FactsQuery, FactsRange};

/// The (ts, placement, kind, campaign, sequence, page type, item) of web events that
/// meet `condition` (over `t`, `ty`, `kd` and `ac`), in order.
fn touches(condition: &str) -> String {
    masked(
        &map(
            &[
                ("t", "w_ts"),
                ("pl", "w_placement"),
                ("kd", "w_kind"),
                ("ca", "w_campaign"),
                ("sq", "w_sequence"),
                ("pg", "w_page"),
                ("it", "w_item"),
            ],
            "(t, pl, kd, ca, sq, pg, it)",
        ),
        &map(
            &[("t", "w_ts"), ("ty", "w_type"), ("kd", "w_kind"), ("ac", "w_action")],
            &format!("toUInt8({condition})"),
        ),
    )
}

/// `f_orders`: each counted order of the visitor with its session's first ts and
/// flags, lines, qualifying touches in the attribution window, recommendation clicks in
/// the recommendation window, and variants.
pub(super) fn order_facts(query: &FactsQuery) -> String {
    let settings = &query.settings;
    let order_ts = field("o", 2);
    let window = |window_ms: i64| format!("t >= {order_ts} - {window_ms} AND t <= {order_ts}");
    let touches_in_window = touches(&format!(
        "ty = 'interaction' AND {} AND {}",
        qualifying_condition(settings, "kd", "ac"),
        window(settings.attribution_window_ms)
    ));
    let clicks_in_window = touches(&format!(
        "ty = 'interaction' AND kd = 'recommendation' AND ac = 'click' AND {}",
        window(settings.recommendation_window_ms)
    ));
    let variants = map(
        &[("a", &filter(&[("a", "a_firsts")], &format!("{} <= {order_ts}", field("a", 1))))],
        &format!("({}, {})", field("a", 2), field("a", 3)),
    );
    let session = field("o", 9);
    let first = format!("arrayElement(s_first, {session})");
    let personalized = format!("toUInt8(arrayElement(s_personalized, {session}) > 0)");
    let recommendation = format!("toUInt8(arrayElement(s_recommendation, {session}) > 0)");
    let (id, order_id, revenue) = (field("o", 3), field("o", 4), field("o", 5));
    let (lines, quantities, prices) = (field("o", 6), field("o", 7), field("o", 8));
    // The session's attributes as `SESSION_ATTRIBUTES` writes them, in its order.
    let values: Vec<&str> = SESSION_ATTRIBUTES.iter().map(|(_, value)| *value).collect();
    let attributes = format!(
        "arrayElement(arrayMap((dv, ch, lp, k) -> [{}], [arrayElement(s_device, {session})], \
           [arrayElement(s_channel, {session})], [arrayElement(s_landing_page, {session})], [{session}]), 1)",
        values.join(", ")
    );
    let order = payload(&[
        (1, &id),
        (2, &order_id),
        (3, &order_ts),
        (4, &first),
        (5, &personalized),
        (6, &recommendation),
        (7, &lines),
        (8, &quantities),
        (9, &prices),
        (10, &touches_in_window),
        (11, &clicks_in_window),
        (12, &variants),
        (13, &revenue),
        (16, &attributes),
        (17, &format!("arrayElement(s_kept, {session})")),
    ]);
    format!(
        "arrayMap(o -> {}, o_list) AS f_orders",
        fact_with_payload(
            FactPlace { kind: FactKind::Order, range: 0, day: "0" },
            [&id, "visitor_id", "''", "''"],
            &order
        )
    )
}

/// `f_experiments_<index>`: the visitor's earliest assignment to each experiment when
/// that is in the range, with the event ids of its counted orders from the assignment
/// to the range's end, and of those in the CUPED lookback before the assignment.
pub(super) fn experiment_facts(query: &FactsQuery, range: &FactsRange, index: usize) -> String {
    let (order_ts, assigned_at) = (field("o", 2), field("a", 1));
    let order_ids =
        |condition: String| format!("arrayMap(o -> {}, arrayFilter(o -> {condition}, o_list))", field("o", 3));
    let orders_after = order_ids(format!("{order_ts} >= {assigned_at} AND {order_ts} < {}", range.end_ms));
    let lookback = query.settings.cuped_lookback_ms;
    let orders_before = order_ids(format!("{order_ts} >= {assigned_at} - {lookback} AND {order_ts} < {assigned_at}"));
    format!(
        "arrayMap(a -> {}, {}) AS f_experiments_{index}",
        fact_with_payload(
            FactPlace { kind: FactKind::Experiment, range: index, day: "0" },
            [&field("a", 2), &field("a", 3), "visitor_id", "''"],
            &payload(&[(14, &orders_after), (15, &orders_before)])
        ),
        filter(&[("a", "a_firsts")], &in_range(range, &assigned_at)),
    )
}
