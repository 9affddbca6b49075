//! The overview: KPI tiles with their change against the previous equal period,
//! personalized against non-personalized sessions, and the daily charts.

use maud::{html, Markup};
use upshot_engine::figures::{Amount, SegmentFigures};
use upshot_engine::Report;
use upshot_model::Exact;

use crate::charts::daily_bars;
use crate::definitions::definition;
use crate::format::{amount_f64, count, money, money_ratio, percent, point_change, relative_change, Better, Change};
use crate::table::{number_column, text_column, Cell, Table};
use crate::view::{View, DIMENSIONS};

pub struct Tile {
    pub figure: &'static str,
    pub label: &'static str,
    pub value: String,
    pub change: Option<Change>,
}

fn tile(tile: &Tile) -> Markup {
    html! {
        div.tile title=(definition(tile.figure)) {
            div.label { (tile.label) }
            div.value { (tile.value) }
            @match &tile.change {
                Some(change) => div class={"change " (change.direction) " " (change.tone)} {
                    (match change.direction { "up" => "▲ ", "down" => "▼ ", _ => "● " }) (change.text)
                    span.visually-hidden { " against the previous period" }
                },
                None => div.change.none { "no previous data" },
            }
        }
    }
}

/// Revenue credited to any placement (the placement rows' order-level value).
fn attributed(report: &Report) -> Amount {
    Amount(report.placements.iter().fold(Exact::ZERO, |sum, row| sum + row.figures.value.0))
}

fn counted(figure: &'static str, label: &'static str, now: u64, before: Option<u64>) -> Tile {
    let change = before.and_then(|before| relative_change(now as f64, before as f64, Better::Higher));
    Tile { figure, label, value: count(now), change }
}

fn amount(figure: &'static str, label: &'static str, now: Amount, before: Option<Amount>) -> Tile {
    let change = before.and_then(|before| relative_change(amount_f64(now), amount_f64(before), Better::Higher));
    Tile { figure, label, value: money(now), change }
}

/// The overview's tiles, in reading order.
pub fn tiles(current: &Report, previous: Option<&Report>) -> Vec<Tile> {
    let (now, before) = (&current.overview, previous.map(|report| &report.overview));
    let rate = |figure, label, value, old: Option<Option<f64>>, better| Tile {
        figure,
        label,
        value: percent(value),
        change: old.and_then(|old| point_change(value, old, better)),
    };
    vec![
        counted("sessions", "Sessions", now.sessions, before.map(|b| b.sessions)),
        counted(
            "personalized_sessions",
            "Personalized sessions",
            now.personalized_sessions,
            before.map(|b| b.personalized_sessions),
        ),
        rate(
            "conversion_rate",
            "Conversion rate",
            now.conversion_rate,
            before.map(|b| b.conversion_rate),
            Better::Higher,
        ),
        Tile {
            figure: "aov",
            label: "Average order value",
            value: money_ratio(now.aov),
            change: before.and_then(|b| Some(relative_change(now.aov?, b.aov?, Better::Higher))).flatten(),
        },
        rate("bounce_rate", "Bounce rate", now.bounce_rate, before.map(|b| b.bounce_rate), Better::Lower),
        amount("revenue", "Revenue", now.revenue, before.map(|b| b.revenue)),
        amount("attributed_revenue", "Attributed revenue", attributed(current), previous.map(attributed)),
        counted("active_placements", "Active placements", now.active_placements, before.map(|b| b.active_placements)),
        counted(
            "active_experiments",
            "Active experiments",
            now.active_experiments,
            before.map(|b| b.active_experiments),
        ),
        counted("active_journeys", "Active journeys", now.active_journeys, before.map(|b| b.active_journeys)),
    ]
}

pub fn segments_table(report: &Report) -> Table {
    let row = |name: &str, figures: &SegmentFigures| {
        vec![
            Cell::text(name),
            Cell::number(count(figures.orders), Some(figures.orders as f64)),
            Cell::number(money(figures.revenue), Some(amount_f64(figures.revenue))),
            Cell::number(percent(figures.conversion_rate), figures.conversion_rate),
            Cell::number(money_ratio(figures.aov), figures.aov),
        ]
    };
    Table {
        name: "segments".into(),
        title: "Personalized and non-personalized sessions".into(),
        columns: vec![
            text_column("sessions", "Sessions"),
            number_column("orders", "Orders", "orders"),
            number_column("revenue", "Revenue", "revenue"),
            number_column("conversion_rate", "Conversion rate", "conversion_rate"),
            number_column("aov", "AOV", "aov"),
        ],
        rows: vec![
            row("Personalized", &report.overview.personalized),
            row("Not personalized", &report.overview.non_personalized),
        ],
    }
}

/// The rows of the breakdown by the view's attribute (device unless it says another).
pub fn breakdown_table(view: &View, report: &Report) -> Table {
    let dimension = view.breakdown.as_deref().unwrap_or("device");
    let breakdowns = &report.breakdowns;
    let rows = match dimension {
        "visitor_type" => &breakdowns.visitor_type,
        "channel" => &breakdowns.channel,
        "landing_page_type" => &breakdowns.landing_page_type,
        _ => &breakdowns.device,
    };
    let label = DIMENSIONS.iter().find(|(name, _)| *name == dimension).map_or("Device", |(_, label)| label);
    let counted = |value: u64| Cell::number(count(value), Some(value as f64));
    let rate = |value: Option<f64>| Cell::number(percent(value), value);
    Table {
        name: "breakdown".into(),
        title: format!("By {}", label.to_lowercase()),
        columns: vec![
            text_column("value", label),
            number_column("sessions", "Sessions", "sessions"),
            number_column("personalized_sessions", "Personalized sessions", "personalized_sessions"),
            number_column("conversion_rate", "Conversion rate", "conversion_rate"),
            number_column("bounce_rate", "Bounce rate", "bounce_rate"),
            number_column("orders", "Orders", "orders"),
            number_column("revenue", "Revenue", "revenue"),
            number_column("aov", "AOV", "aov"),
            number_column("attributed_value", "Attributed revenue", "attributed_value"),
            number_column("recommendation_ctr", "Recommendation CTR", "recommendation_ctr"),
        ],
        rows: rows
            .iter()
            .map(|row| {
                vec![
                    Cell::text(row.value.clone()),
                    counted(row.sessions),
                    counted(row.personalized_sessions),
                    rate(row.conversion_rate),
                    rate(row.bounce_rate),
                    counted(row.orders),
                    Cell::number(money(row.revenue), Some(amount_f64(row.revenue))),
                    Cell::number(money_ratio(row.aov), row.aov),
                    Cell::number(money(row.attributed_value), Some(amount_f64(row.attributed_value))),
                    rate(row.recommendation_ctr),
                ]
            })
            .collect(),
    }
}

/// Goals (SPEC section 9.4): completions, sessions and their conversion rates.
pub fn goals_table(report: &Report) -> Table {
    let counted = |value: u64| Cell::number(count(value), Some(value as f64));
    Table {
        name: "goals".into(),
        title: "Goals".into(),
        columns: vec![
            text_column("goal", "Goal"),
            number_column("completions", "Completions", "completions"),
            number_column("sessions", "Sessions", "goal_sessions"),
            number_column("conversion_rate", "Conversion rate", "goal_conversion_rate"),
            number_column(
                "personalized_conversion_rate",
                "Personalized conversion rate",
                "personalized_conversion_rate",
            ),
            number_column("value", "Value", "goal_value"),
        ],
        rows: report
            .goals
            .iter()
            .map(|goal| {
                vec![
                    Cell::text(goal.goal.clone()),
                    counted(goal.completions),
                    counted(goal.sessions),
                    Cell::number(percent(goal.conversion_rate), goal.conversion_rate),
                    Cell::number(percent(goal.personalized_conversion_rate), goal.personalized_conversion_rate),
                    Cell::number(money(goal.value), Some(amount_f64(goal.value))),
                ]
            })
            .collect(),
    }
}

pub fn render(view: &View, current: &Report, previous: Option<&Report>) -> Markup {
    let revenue: Vec<(String, f64)> =
        current.overview.daily.iter().map(|day| (day.date.clone(), amount_f64(day.revenue))).collect();
    let sessions: Vec<(String, f64)> =
        current.overview.daily.iter().map(|day| (day.date.clone(), day.sessions as f64)).collect();
    let personalization = &current.personalization;
    html! {
        section.tiles { @for item in tiles(current, previous) { (tile(&item)) } }
        div.charts {
            (daily_bars(&format!("Revenue per day ({})", current.range.currency), &revenue))
            (daily_bars("Sessions per day", &sessions))
        }
        (segments_table(current).render(view, &view.site_path("")))
        nav.filters aria-label="Break down by" {
            span { "Break down by: " }
            @for (dimension, label) in DIMENSIONS {
                a href=(view.href(&view.site_path(""), &[("breakdown", if dimension == "device" { "" } else { dimension }), ("sort", ""), ("dir", "")]))
                    aria-current=[(view.breakdown.as_deref().unwrap_or("device") == dimension).then_some("true")] { (label) }
            }
        }
        (breakdown_table(view, current).render(view, &view.site_path("")))
        @if !current.goals.is_empty() { (goals_table(current).render(view, &view.site_path(""))) }
        section.panel {
            h2 title=(definition("personalized_sessions")) { "Revenue from personalized sessions" }
            dl.figures {
                dt title=(definition("orders")) { "Orders" } dd { (count(personalization.orders)) }
                dt title=(definition("revenue")) { "Revenue" } dd { (money(personalization.revenue)) }
                dt title=(definition("conversion_rate")) { "Conversion rate" } dd { (percent(personalization.conversion_rate)) }
                dt title=(definition("aov")) { "AOV" } dd { (money_ratio(personalization.aov)) }
                dt title=(definition("revenue_change")) { "Change against the previous period" }
                dd { @match personalization.revenue_change { Some(change) => (format!("{:+.1}%", change * 100.0)), None => "–" } }
            }
        }
    }
}
