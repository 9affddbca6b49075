//! The count facts of each range: per visitor sessions, impressions (clicked or not),
//! interactions, clicked items, sessions acting on each row, active placements /
//! experiments / journeys, journey events, sequence starts and topics, as fact tuples
//! (`f_*_<range>`), summed by key on the node.
//!
//! Impressions, interactions and product views are first gathered into lists of tuples
//! (`i_list`, `x_list`, `v_list`), so the lambdas that look across a visitor's events
//! (which click marks which impression, which order follows a click) run over those
//! short lists rather than over every event.

use upshot_model::facts::FactKind;

use super::sql::{day_of, event_field, exists, fact, field, in_range, map, masked, FactPlace, SESSION_ATTRIBUTES};
use super::{FactsQuery, FactsRange};

/// The impressions as tuples of these fields (in this order).
const IMPRESSION: [(&str, &str); 11] = [
    ("k", "w_pos"),
    ("s", "w_session"),
    ("pl", "w_placement"),
    ("t", "w_ts"),
    ("im", "w_impression"),
    ("kd", "w_kind"),
    ("ca", "w_campaign"),
    ("sq", "w_sequence"),
    ("items", "w_items"),
    ("ps", "w_pass"),
    ("kp", "w_kept"),
];

/// The interactions as tuples of these fields (in this order); `f` is the session's
/// first ts.
const INTERACTION: [(&str, &str); 13] = [
    ("t", "w_ts"),
    ("pl", "w_placement"),
    ("kd", "w_kind"),
    ("ca", "w_campaign"),
    ("sq", "w_sequence"),
    ("ac", "w_action"),
    ("it", "w_item"),
    ("ps", "w_pass"),
    ("f", "w_first"),
    ("s", "w_session"),
    ("lb", "w_label"),
    ("im", "w_impression"),
    ("kp", "w_kept"),
];

/// The 1-based position of `name` in a list's tuples.
fn at(fields: &[(&str, &str)], tuple: &str, name: &str) -> String {
    let index = fields.iter().position(|(field, _)| *field == name).expect("a field of the list") + 1;
    field(tuple, index)
}

/// Field `name` of impression tuple `tuple`.
fn imp(tuple: &str, name: &str) -> String {
    at(&IMPRESSION, tuple, name)
}

/// Field `name` of interaction tuple `tuple`.
fn act(tuple: &str, name: &str) -> String {
    at(&INTERACTION, tuple, name)
}

/// 1 when impression `tuple` counts: it passes the filter and the segment filter keeps
/// its session (SPEC section 9.2).
fn counted_imp(tuple: &str) -> String {
    format!("({} AND {})", imp(tuple, "ps"), imp(tuple, "kp"))
}

/// 1 when interaction `tuple` counts (as `counted_imp`).
fn counted_act(tuple: &str) -> String {
    format!("({} AND {})", act(tuple, "ps"), act(tuple, "kp"))
}

/// The web events whose type is `event_type`, as tuples of `fields`.
fn list_of(event_type: &str, fields: &[(&str, &str)]) -> String {
    let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    masked(
        &map(fields, &format!("({})", names.join(", "))),
        &map(&[("ty", "w_type")], &format!("toUInt8(ty = '{event_type}')")),
    )
}

/// The lists and marks every range shares: impressions and which of them a click marks
/// (a click with an impression_id marks every impression carrying it; one without marks
/// the latest impression of its placement in its session at or before it, by ts),
/// interactions and whether a recommendation click converts (an order of the clicked
/// item follows within the recommendation window, even after the range), and the
/// sessions with a product view of an item that a recommendation impression passing the
/// filter showed earlier in the session (`s_ctr`).
pub(super) fn shared_lists(query: &FactsQuery) -> Vec<String> {
    let order_ts = field("o", 2);
    vec![
        format!("{} AS i_list", list_of("impression", &IMPRESSION)),
        format!("{} AS x_list", list_of("interaction", &INTERACTION)),
        format!("{} AS v_list", list_of("product_view", &[("k", "w_pos"), ("s", "w_session"), ("it", "w_item")])),
        format!(
            "arrayFilter(m -> m != '', arrayMap(x -> if({} = 'click', {}, ''), x_list)) AS c_ids",
            act("x", "ac"),
            act("x", "im")
        ),
        format!("arrayFilter(x -> {} = 'click' AND {} = '', x_list) AS c_clicks", act("x", "ac"), act("x", "im")),
        format!(
            "arrayMap(c -> {}, c_clicks) AS c_targets",
            field(
                &format!(
                    "arrayElement(arrayFilter(x -> {} = {} AND {} = {} AND {} <= {}, i_list), -1)",
                    imp("x", "s"),
                    act("c", "s"),
                    imp("x", "pl"),
                    act("c", "pl"),
                    imp("x", "t"),
                    act("c", "t")
                ),
                1
            )
        ),
        format!(
            "arrayMap(x -> toUInt8(has(c_targets, {k}) OR ({im} != '' AND has(c_ids, {im}))), i_list) AS i_clicked",
            k = imp("x", "k"),
            im = imp("x", "im"),
        ),
        format!(
            "arrayMap(x -> toUInt8({kd} = 'recommendation' AND {ac} = 'click' AND {it} != '' AND arrayExists(o -> \
               {order_ts} >= {t} AND {order_ts} <= {t} + {window} AND has({lines}, {it}), o_list)), x_list) AS x_converted",
            kd = act("x", "kd"),
            ac = act("x", "ac"),
            it = act("x", "it"),
            t = act("x", "t"),
            window = query.settings.recommendation_window_ms,
            lines = field("o", 6),
        ),
        format!(
            "arrayFilter(x -> {} = 1 AND {} = 'recommendation', i_list) AS r_shown",
            imp("x", "ps"),
            imp("x", "kd")
        ),
        format!(
            "arrayDistinct(arrayMap(x -> {session}, arrayFilter(x -> arrayExists(r -> {r_pos} < {pos} AND {r_session} = {session} \
               AND has({r_items}, {item}), r_shown), v_list))) AS r_sessions",
            session = field("x", 2),
            pos = field("x", 1),
            item = field("x", 3),
            r_pos = imp("r", "k"),
            r_session = imp("r", "s"),
            r_items = imp("r", "items"),
        ),
        "arrayMap(k -> toUInt8(has(r_sessions, k)), arrayEnumerate(s_first)) AS s_ctr".to_string(),
        format!("{} AS g_list", list_of("goal", &GOAL)),
        format!(
            "{} AS a_carts",
            list_of("add_to_cart", &[("t", "w_ts"), ("s", "w_session"), ("it", "w_item"), ("kp", "w_kept")])
        ),
    ]
}

/// Placement economics (SPEC section 9.3): each add_to_cart in range credited to the
/// latest click carrying its item in its session at or before it (when that click
/// passes the filter); recommendation impressions in range by `items` length; and
/// recommendation clicks in range by the position of their item in the impression they
/// mark (with an impression_id: the latest carrying it at or before the click, else the
/// earliest; without: the latest of its placement in its session at or before it).
fn economy_facts(range: &FactsRange, index: usize) -> Vec<String> {
    let place = |kind: FactKind| FactPlace { kind, range: index, day: "0" };
    let (cart_t, cart_s, cart_item) = (field("a", 1), field("a", 2), field("a", 3));
    let crediting = format!(
        "arrayFilter(x -> {} = 'click' AND {} = {cart_s} AND {} = {cart_item} AND {} <= {cart_t}, x_list)",
        act("x", "ac"),
        act("x", "s"),
        act("x", "it"),
        act("x", "t")
    );
    let click = "arrayElement(tupleElement(c, 2), -1)";
    let credited = fact(
        FactPlace { kind: FactKind::AddToCart, range: index, day: &day_of(range, "tupleElement(c, 1)") },
        [&act(click, "pl"), &act(click, "kd"), &act(click, "ca"), &act(click, "sq")],
        &["1"],
    );
    let lengths = fact(
        place(FactKind::ImpressionLength),
        [&imp("x", "pl"), &imp("x", "kd"), &format!("toString(length({}))", imp("x", "items")), "''"],
        &["1"],
    );
    let by_id = format!("arrayFilter(i -> {} = {}, i_list)", imp("i", "im"), act("x", "im"));
    let at_or_before = |list: &str| format!("arrayFilter(i -> {} <= {}, {list})", imp("i", "t"), act("x", "t"));
    let before = at_or_before(&by_id);
    let id_items = format!(
        "if(length({before}) > 0, {}, {})",
        imp(&format!("arrayElement({before}, -1)"), "items"),
        imp(&format!("arrayElement({by_id}, 1)"), "items"),
    );
    let same_placement = at_or_before(&format!(
        "arrayFilter(i -> {} = {} AND {} = {}, i_list)",
        imp("i", "s"),
        act("x", "s"),
        imp("i", "pl"),
        act("x", "pl")
    ));
    let placement_items = imp(&format!("arrayElement({same_placement}, -1)"), "items");
    let position = format!("indexOf(if({} != '', {id_items}, {placement_items}), {})", act("x", "im"), act("x", "it"));
    let clicked_position = fact(
        place(FactKind::ClickPosition),
        [&act("tupleElement(p, 1)", "pl"), &act("tupleElement(p, 1)", "kd"), "toString(tupleElement(p, 2))", "''"],
        &["1"],
    );
    vec![
        format!(
            "arrayMap(c -> {credited}, arrayFilter(c -> length(tupleElement(c, 2)) > 0 AND {} = 1, \
               arrayMap(a -> ({cart_t}, {crediting}), arrayFilter(a -> {} AND {} = 1, a_carts)))) AS f_carts_{index}",
            act(click, "ps"),
            in_range(range, &cart_t),
            field("a", 4),
        ),
        format!(
            "arrayMap(x -> {lengths}, arrayFilter(x -> {} = 1 AND {} = 'recommendation' AND {}, i_list)) \
             AS f_lengths_{index}",
            counted_imp("x"),
            imp("x", "kd"),
            in_range(range, &imp("x", "t")),
        ),
        format!(
            "arrayMap(p -> {}, arrayFilter(p -> tupleElement(p, 2) > 0, arrayMap(x -> (x, {position}), \
               arrayFilter(x -> {} = 'click' AND {} = 1 AND {} = 'recommendation' AND {} != '' AND {}, x_list)))) \
             AS f_positions_{index}",
            clicked_position,
            act("x", "ac"),
            counted_act("x"),
            act("x", "kd"),
            act("x", "it"),
            in_range(range, &act("x", "t")),
        ),
    ]
}

/// The goal events as tuples of these fields (in this order).
const GOAL: [(&str, &str); 5] =
    [("t", "w_ts"), ("s", "w_session"), ("g", "w_goal"), ("v", "w_value"), ("kp", "w_kept")];

/// Goals (SPEC section 9.4): goal events in range with their values, and the sessions
/// in range with at least one event of each goal (and whether they are personalized).
fn goal_facts(range: &FactsRange, index: usize) -> Vec<String> {
    let (t, value) = (at(&GOAL, "x", "t"), at(&GOAL, "x", "v"));
    let completion = fact(
        FactPlace { kind: FactKind::Goal, range: index, day: "0" },
        [&at(&GOAL, "x", "g"), "''", "''", "''"],
        &["1", &format!("if({value} > 0, {value}, 0)"), &format!("if({value} < 0, -{value}, 0)")],
    );
    let first = "arrayElement(s_first, tupleElement(y, 1))";
    let session = fact(
        FactPlace { kind: FactKind::GoalSession, range: index, day: "0" },
        ["tupleElement(y, 2)", "''", "''", "''"],
        &["1", "arrayElement(s_personalized, tupleElement(y, 1)) > 0"],
    );
    vec![
        format!(
            "arrayMap(x -> {completion}, arrayFilter(x -> {} AND {} = 1, g_list)) AS f_goals_{index}",
            in_range(range, &t),
            at(&GOAL, "x", "kp")
        ),
        format!(
            "arrayMap(y -> {session}, arrayFilter(y -> {} AND arrayElement(s_kept, tupleElement(y, 1)) = 1, \
               arrayDistinct(arrayMap(x -> ({}, {}), g_list)))) AS f_goal_sessions_{index}",
            in_range(range, first),
            at(&GOAL, "x", "s"),
            at(&GOAL, "x", "g"),
        ),
    ]
}

/// Sessions in range per value of each attribute (SPEC section 9.2): the landing
/// event's device, channel and page type, and whether it is the visitor's first session.
fn breakdown_facts(range: &FactsRange, index: usize) -> String {
    let per_dimension = |dimension: &str, value: &str| {
        let session = fact(
            FactPlace { kind: FactKind::BreakdownSession, range: index, day: "0" },
            [&format!("'{dimension}'"), value, "''", "''"],
            &["1", "pv <= 1 AND en = 0", "od > 0", "pe > 0", "rc > 0", "rc > 0 AND ct = 1"],
        );
        masked(
            &map(
                &[
                    ("pv", "s_page_views"),
                    ("en", "s_engaged"),
                    ("od", "s_orders"),
                    ("pe", "s_personalized"),
                    ("rc", "s_recommendation"),
                    ("ct", "s_ctr"),
                    ("dv", "s_device"),
                    ("ch", "s_channel"),
                    ("lp", "s_landing_page"),
                    ("k", "arrayEnumerate(s_first)"),
                ],
                &session,
            ),
            &map(&[("t", "s_first"), ("kp", "s_kept")], &format!("toUInt8({} AND kp = 1)", in_range(range, "t"))),
        )
    };
    let dimensions = SESSION_ATTRIBUTES.map(|(dimension, value)| per_dimension(dimension, value));
    format!("arrayConcat({}) AS f_breakdowns_{index}", dimensions.join(", "))
}

/// The fact arrays of sessions and of the visitor.
fn session_facts(range: &FactsRange, index: usize) -> Vec<String> {
    let session = fact(
        FactPlace { kind: FactKind::Session, range: index, day: &day_of(range, "t") },
        ["''", "''", "''", "''"],
        &["1", "pv <= 1 AND en = 0", "od > 0", "pe > 0", "od > 0 AND pe > 0", "rc > 0", "rc > 0 AND ct = 1"],
    );
    let seen = exists(&[("t", "w_ts"), ("kp", "w_kept")], &format!("{} AND kp = 1", in_range(range, "t")));
    let recommendation_visitor = format!(
        "arrayExists(x -> {} = 1 AND {} = 'recommendation' AND {}, i_list)",
        counted_imp("x"),
        imp("x", "kd"),
        in_range(range, &imp("x", "t"))
    );
    vec![
        format!(
            "{} AS f_sessions_{index}",
            masked(
                &map(
                    &[
                        ("t", "s_first"),
                        ("pv", "s_page_views"),
                        ("en", "s_engaged"),
                        ("od", "s_orders"),
                        ("pe", "s_personalized"),
                        ("rc", "s_recommendation"),
                        ("ct", "s_ctr")
                    ],
                    &session
                ),
                &map(&[("t", "s_first"), ("kp", "s_kept")], &format!("toUInt8({} AND kp = 1)", in_range(range, "t")))
            )
        ),
        format!(
            "[{}] AS f_visitor_{index}",
            fact(
                FactPlace { kind: FactKind::Visitor, range: index, day: "0" },
                ["''", "''", "''", "''"],
                &[&seen, &recommendation_visitor]
            )
        ),
    ]
}

/// Impressions and interactions in range that pass the filter, and clicked items.
fn placement_facts(range: &FactsRange, index: usize) -> Vec<String> {
    let day = |t: &str| day_of(range, t);
    let (x_t, i_t) = (act("x", "t"), imp("x", "t"));
    let impression = fact(
        FactPlace { kind: FactKind::Impression, range: index, day: &day(&i_t) },
        [&imp("x", "pl"), &imp("x", "kd"), &imp("x", "ca"), &imp("x", "sq")],
        &["1", &format!("length({})", imp("x", "items")), "cl", &format!("{} = 'recommendation'", imp("x", "kd"))],
    );
    let (kind, action) = (act("x", "kd"), act("x", "ac"));
    let interaction = fact(
        FactPlace { kind: FactKind::Interaction, range: index, day: &day(&x_t) },
        [&act("x", "pl"), &kind, &act("x", "ca"), &act("x", "sq")],
        &[
            &format!("{action} = 'click'"),
            &format!("{kind} = 'recommendation'"),
            &format!("{kind} = 'recommendation' AND {action} = 'click'"),
            "cv",
        ],
    );
    let clicked_item = fact(
        FactPlace { kind: FactKind::ClickedItem, range: index, day: "0" },
        [&act("x", "pl"), &kind, &act("x", "it"), "''"],
        &["1"],
    );
    let counted = |list: &str, passes: String, t: &str| {
        format!("arrayMap(x -> toUInt8({passes} = 1 AND {}), {list})", in_range(range, t))
    };
    vec![
        format!(
            "{} AS f_impressions_{index}",
            masked(
                &map(&[("x", "i_list"), ("cl", "i_clicked")], &impression),
                &counted("i_list", counted_imp("x"), &i_t)
            )
        ),
        format!(
            "{} AS f_interactions_{index}",
            masked(
                &map(&[("x", "x_list"), ("cv", "x_converted")], &interaction),
                &counted("x_list", counted_act("x"), &x_t)
            )
        ),
        format!(
            "{} AS f_items_{index}",
            masked(
                &format!("arrayMap(x -> {clicked_item}, x_list)"),
                &counted(
                    "x_list",
                    format!("{} = 'click' AND {} != '' AND {}", action, act("x", "it"), counted_act("x")),
                    &x_t
                )
            )
        ),
    ]
}

/// Sessions (in range) with a click / a hover on each row an interaction counts in: the
/// placement, its kind, its campaign and sequence (when it has them); each once.
fn session_target_facts(range: &FactsRange, index: usize) -> String {
    let acting = |extra: String| {
        format!(
            "arrayFilter(x -> {} = 1 AND {} != 'discard' AND {}{extra}, x_list)",
            counted_act("x"),
            act("x", "ac"),
            in_range(range, &act("x", "f"))
        )
    };
    let action = act("x", "ac");
    let target = |kind: FactKind, keys: [&str; 4], extra: String| {
        let place = FactPlace { kind, range: index, day: "0" };
        let fact = fact(place, keys, &[&format!("{action} = 'click'"), &format!("{action} != 'click'")]);
        format!("arrayMap(x -> ({}, {fact}), {})", act("x", "s"), acting(extra))
    };
    let (placement, kind, campaign, sequence) = (act("x", "pl"), act("x", "kd"), act("x", "ca"), act("x", "sq"));
    format!(
        "arrayMap(y -> {}, arrayDistinct(arrayConcat({}, {}, {}, {}))) AS f_session_targets_{index}",
        field("y", 2),
        target(FactKind::PlacementSession, [&placement, &kind, "''", "''"], String::new()),
        target(FactKind::KindSession, ["''", &kind, "''", "''"], String::new()),
        target(FactKind::CampaignSession, ["''", "''", &campaign, "''"], format!(" AND {campaign} != ''")),
        target(FactKind::SequenceSession, ["''", "''", "''", &sequence], format!(" AND {sequence} != ''")),
    )
}

/// Active placements, experiments and journeys (the 24 hours before the range's end),
/// journey events and sequence starts in range (no filter applies to those two).
fn other_facts(range: &FactsRange, index: usize) -> Vec<String> {
    let end = range.active_end_ms;
    let active = |t: &str| format!("({t} >= {} AND {t} < {end})", end - 86_400_000);
    let place = |kind: FactKind| FactPlace { kind, range: index, day: "0" };
    let n = |name: &str| event_field("x", name);
    let of_type = |ty: &str, window: String| format!("arrayFilter(x -> {} = '{ty}' AND {window}, n_list)", n("type"));
    vec![
        format!(
            "arrayConcat({}, {}, {}) AS f_active_{index}",
            format!(
                "arrayMap(x -> {}, arrayFilter(x -> {} = 1 AND {}, i_list))",
                fact(place(FactKind::ActivePlacement), [&imp("x", "pl"), "''", "''", "''"], &["1"]),
                counted_imp("x"),
                active(&imp("x", "t"))
            ),
            format!(
                "arrayMap(x -> {}, {})",
                fact(place(FactKind::ActiveExperiment), [&n("experiment"), "''", "''", "''"], &["1"]),
                of_type("assignment", active(&n("ts")))
            ),
            format!(
                "arrayMap(x -> {}, {})",
                fact(place(FactKind::ActiveJourney), [&n("journey"), "''", "''", "''"], &["1"]),
                of_type("journey", active(&n("ts")))
            ),
        ),
        format!(
            "arrayMap(x -> {}, {}) AS f_journeys_{index}",
            fact(place(FactKind::Journey), [&n("journey"), &n("action"), &n("channel"), &n("has_channel")], &["1"]),
            of_type("journey", in_range(range, &n("ts")))
        ),
        format!(
            "arrayMap(x -> {}, {}) AS f_sequences_{index}",
            fact(
                place(FactKind::SequenceStart),
                [&n("sequence"), &n("campaign"), &format!("if({p} != '', {p}, visitor_id)", p = n("profile")), "''"],
                &["1"]
            ),
            of_type("sequence_start", in_range(range, &n("ts")))
        ),
    ]
}

/// Topics: labels used in range on interactions that pass the filter, and whether an
/// order followed a use within the attribution window.
fn topic_facts(query: &FactsQuery, range: &FactsRange, index: usize) -> Vec<String> {
    let window = query.settings.attribution_window_ms;
    let (label, t) = (act("u", "lb"), act("u", "t"));
    let order_ts = field("o", 2);
    let followed = format!(
        "arrayExists(u -> {label} = l AND arrayExists(o -> {order_ts} >= {t} AND {order_ts} <= {t} + {window}, o_list), t_uses_{index})",
    );
    vec![
        format!(
            "arrayFilter(x -> {} = 1 AND {} != '' AND {}, x_list) AS t_uses_{index}",
            act("x", "ps"),
            act("x", "lb"),
            in_range(range, &act("x", "t"))
        ),
        format!(
            "arrayMap(l -> {}, arrayDistinct(arrayMap(u -> {label}, t_uses_{index}))) AS f_topics_{index}",
            fact(
                FactPlace { kind: FactKind::Topic, range: index, day: "0" },
                ["l", "''", "''", "''"],
                &["1", &followed]
            ),
        ),
    ]
}

/// The count fact arrays of range `index`, and the names of those to output.
pub(super) fn range_facts(query: &FactsQuery, range: &FactsRange, index: usize) -> (Vec<String>, Vec<String>) {
    let mut arrays = session_facts(range, index);
    arrays.push(breakdown_facts(range, index));
    arrays.extend(placement_facts(range, index));
    arrays.push(session_target_facts(range, index));
    arrays.extend(other_facts(range, index));
    arrays.extend(topic_facts(query, range, index));
    arrays.extend(goal_facts(range, index));
    arrays.extend(economy_facts(range, index));
    let outputs = [
        "visitor",
        "sessions",
        "breakdowns",
        "impressions",
        "interactions",
        "items",
        "session_targets",
        "active",
        "journeys",
        "sequences",
        "topics",
        "goals",
        "goal_sessions",
        "carts",
        "lengths",
        "positions",
    ]
    .iter()
    .map(|name| format!("f_{name}_{index}"))
    .collect();
    (arrays, outputs)
}
