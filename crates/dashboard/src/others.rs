//! Recommendations, experiments (variants, lifts with interval bars, SRM warning,
//! funnel, topics, recent conversions) and journeys.

use maud::{html, Markup};
use upshot_engine::figures::JourneyFigures;
use upshot_engine::Report;

use crate::charts::{bars, interval};
use crate::definitions::definition;
use crate::format::{amount_f64, count, money, money_ratio, p_value, percent};
use crate::table::{number_column, text_column, Cell, Table};
use crate::view::View;

pub fn render_recommendations(report: &Report) -> Markup {
    let figures = &report.recommendations;
    let currency = &report.range.currency;
    html! {
        (bars(&format!("Direct and assisted revenue ({currency})"), &[
            ("Direct", amount_f64(figures.direct_revenue), money(figures.direct_revenue)),
            ("Assisted", amount_f64(figures.assisted_revenue), money(figures.assisted_revenue)),
        ]))
        dl.figures {
            dt title=(definition("direct_revenue")) { "Direct revenue" } dd { (money(figures.direct_revenue)) }
            dt title=(definition("assisted_revenue")) { "Assisted revenue" } dd { (money(figures.assisted_revenue)) }
            dt title=(definition("recommendation_sessions")) { "Recommendation sessions" } dd { (count(figures.sessions)) }
            dt title=(definition("recommendation_ctr")) { "CTR" } dd { (percent(figures.ctr)) }
            dt title=(definition("recommendation_conversion_rate")) { "Conversion rate" } dd { (percent(figures.conversion_rate)) }
            dt title=(definition("unique_visitors")) { "Unique visitors" } dd { (count(figures.unique_visitors)) }
            dt title=(definition("purchases")) { "Purchases" } dd { (count(figures.purchases)) }
            dt title=(definition("purchase_sessions_share")) { "Share of purchasing sessions" } dd { (percent(figures.purchase_sessions_share)) }
        }
    }
}

pub fn variant_table(experiment: &upshot_engine::figures::ExperimentRow, index: usize) -> Table {
    let rows = experiment
        .variants
        .iter()
        .map(|variant| {
            let lift_text = |lift: Option<f64>| lift.map_or("–".to_string(), |lift| format!("{:+.1}%", lift * 100.0));
            let mut name = variant.variant.clone();
            if variant.variant == experiment.control {
                name.push_str(" (control)");
            }
            vec![
                Cell::text(name),
                Cell::number(count(variant.visitors), Some(variant.visitors as f64)),
                Cell::number(count(variant.converted), Some(variant.converted as f64)),
                Cell::number(percent(variant.conversion_rate), variant.conversion_rate),
                Cell::number(count(variant.orders), Some(variant.orders as f64)),
                Cell::number(money(variant.revenue), Some(amount_f64(variant.revenue))),
                Cell::number(money_ratio(variant.aov), variant.aov),
                Cell::number(money_ratio(variant.revenue_per_visitor), variant.revenue_per_visitor),
                Cell::number(
                    variant.incremental_revenue.map_or("–".into(), money),
                    variant.incremental_revenue.map(amount_f64),
                ),
                Cell::number(lift_text(variant.cr_lift), variant.cr_lift),
                Cell::number(p_value(variant.cr_lift_p_value), variant.cr_lift_p_value),
                Cell::number(p_value(variant.cr_lift_p_value_adjusted), variant.cr_lift_p_value_adjusted),
                Cell::number(lift_text(variant.rpv_lift), variant.rpv_lift),
                Cell::number(p_value(variant.rpv_lift_p_value), variant.rpv_lift_p_value),
                Cell::number(p_value(variant.rpv_lift_p_value_adjusted), variant.rpv_lift_p_value_adjusted),
                Cell::number(lift_text(variant.rpv_lift_cuped), variant.rpv_lift_cuped),
            ]
        })
        .collect();
    Table {
        // One name per experiment, however many there are: the CSV link finds it by name.
        name: format!("variants-{}", index + 1).into(),
        title: format!("Variants of {}", experiment.experiment),
        columns: vec![
            text_column("variant", "Variant"),
            number_column("visitors", "Visitors", "visitors"),
            number_column("converted", "Converted", "converted"),
            number_column("conversion_rate", "Conversion rate", "conversion_rate"),
            number_column("orders", "Orders", "orders"),
            number_column("revenue", "Revenue", "revenue"),
            number_column("aov", "AOV", "aov"),
            number_column("revenue_per_visitor", "Revenue per visitor", "revenue_per_visitor"),
            number_column("incremental_revenue", "Incremental revenue", "incremental_revenue"),
            number_column("cr_lift", "CR lift", "cr_lift"),
            number_column("cr_lift_p_value", "p (CR)", "p_value"),
            number_column("cr_lift_p_value_adjusted", "p adjusted (CR)", "p_value_adjusted"),
            number_column("rpv_lift", "RPV lift", "rpv_lift"),
            number_column("rpv_lift_p_value", "p (RPV)", "p_value"),
            number_column("rpv_lift_p_value_adjusted", "p adjusted (RPV)", "p_value_adjusted"),
            number_column("rpv_lift_cuped", "RPV lift (CUPED)", "rpv_lift_cuped"),
        ],
        rows,
    }
}

pub fn topics_table(report: &Report) -> Table {
    Table {
        name: "topics".into(),
        title: "Topics leading to conversion".into(),
        columns: vec![
            text_column("label", "Topic"),
            number_column("visitors", "Visitors", "topics"),
            number_column("converted", "Converted", "topics"),
        ],
        rows: report
            .topics
            .iter()
            .map(|topic| {
                vec![
                    Cell::text(topic.label.clone()),
                    Cell::number(count(topic.visitors), Some(topic.visitors as f64)),
                    Cell::number(count(topic.converted), Some(topic.converted as f64)),
                ]
            })
            .collect(),
    }
}

pub fn recent_table(report: &Report) -> Table {
    Table {
        name: "recent".into(),
        title: "Recent conversions".into(),
        columns: vec![
            text_column("time", "Time (UTC)"),
            text_column("order_id", "Order"),
            text_column("visitor_id", "Visitor"),
            number_column("revenue", "Revenue", "revenue"),
            text_column("placement", "Credited placement"),
            text_column("variants", "Variants"),
        ],
        rows: report
            .recent_conversions
            .iter()
            .map(|order| {
                let variants: Vec<String> =
                    order.variants.iter().map(|(experiment, variant)| format!("{experiment}: {variant}")).collect();
                vec![
                    Cell::text(order.time.clone()),
                    Cell::text(order.order_id.clone()),
                    Cell::text(order.visitor_id.clone()),
                    Cell::number(money(order.revenue), Some(amount_f64(order.revenue))),
                    Cell::text(order.placement.clone().unwrap_or_default()),
                    Cell::text(variants.join("; ")),
                ]
            })
            .collect(),
    }
}

pub fn render_experiments(view: &View, report: &Report) -> Markup {
    let path = view.site_path("experiments");
    html! {
        @if report.experiments.is_empty() { p.muted { "No experiment had visitors assigned in this range." } }
        @for (index, experiment) in report.experiments.iter().enumerate() {
            section.experiment {
                h2 { (experiment.experiment) }
                p { (count(experiment.visitors)) " visitors · control " strong { (experiment.control) }
                    " · " span title=(definition("srm_p_value")) { "sample-ratio p " (p_value(experiment.srm_p_value)) } }
                @if experiment.srm_warning == Some(true) {
                    p.warning role="alert" { "Sample-ratio mismatch: visitors did not split between the variants as configured (p "
                        (p_value(experiment.srm_p_value)) "). The assignment may be broken; treat the lifts with suspicion." }
                }
                @for variant in experiment.variants.iter().filter(|variant| variant.variant != experiment.control) {
                    p.verdict { (verdict(variant, &experiment.control)) }
                }
                @if let Some(reduction) = experiment.cuped_variance_reduction {
                    p.muted title=(definition("rpv_lift_cuped")) { "CUPED (pre-assignment revenue, θ " (format!("{:.3}", experiment.cuped_theta))
                        ") narrows the revenue-per-visitor estimate's variance by " (format!("{:.1}%", reduction * 100.0)) "." }
                }
                (variant_table(experiment, index).render(view, &path))
                div.scroll.lifts { table {
                    thead { tr { th { "Variant" } th title=(definition("cr_lift")) { "Conversion-rate lift: 95% interval, and always-valid beneath" } th title=(definition("rpv_lift")) { "Revenue-per-visitor lift: 95% interval, and always-valid beneath" } } }
                    tbody {
                        @for variant in experiment.variants.iter().filter(|variant| variant.variant != experiment.control) {
                            tr { td { (variant.variant) } td { (interval(variant.cr_lift, variant.cr_lift_ci, variant.cr_lift_ci_sequential)) } td { (interval(variant.rpv_lift, variant.rpv_lift_ci, variant.rpv_lift_ci_sequential)) } }
                        }
                    }
                } }
                h3 { "Funnel" }
                ol.funnel {
                    li { "Visitors assigned: " (count(experiment.funnel.visitors)) " ("
                        (experiment.funnel.variants.iter().map(|(name, visitors)| format!("{name}: {}", count(*visitors))).collect::<Vec<_>>().join(", ")) ")" }
                    li { "Converted: " (count(experiment.funnel.converted)) }
                    li { "Orders: " (count(experiment.funnel.orders)) " · AOV " (money_ratio(experiment.funnel.aov)) }
                    li { "Revenue: " (money(experiment.funnel.revenue)) }
                }
            }
        }
        (topics_table(report).render(view, &path))
        (recent_table(report).render(view, &path))
    }
}

/// One sentence on a variant (SPEC section 9.5): on revenue per visitor and on
/// conversion rate, it wins or loses when the always-valid interval excludes 0 (safe
/// to read every day), and is not yet decided otherwise.
pub fn verdict(variant: &upshot_engine::figures::VariantRow, control: &str) -> String {
    let judge = |lift: Option<f64>, interval: Option<[f64; 2]>| match (lift, interval) {
        (Some(lift), Some([low, _])) if low > 0.0 => format!("wins ({:+.1}%)", lift * 100.0),
        (Some(lift), Some([_, high])) if high < 0.0 => format!("loses ({:+.1}%)", lift * 100.0),
        (Some(lift), Some(_)) => format!("not decided yet ({:+.1}% so far)", lift * 100.0),
        _ => "too few visitors or orders to judge".to_string(),
    };
    format!(
        "{} against {control}: revenue per visitor {}; conversion rate {}. A result counts once its always-valid \
         interval leaves zero, so checking every day is safe.",
        variant.variant,
        judge(variant.rpv_lift, variant.rpv_lift_ci_sequential),
        judge(variant.cr_lift, variant.cr_lift_ci_sequential),
    )
}

pub fn journeys_table(report: &Report) -> Table {
    let channels: std::collections::BTreeSet<&String> = report
        .journeys
        .journeys
        .iter()
        .flat_map(|row| row.figures.channels.keys())
        .chain(report.journeys.total.channels.keys())
        .collect();
    let row = |name: &str, figures: &JourneyFigures| {
        let counted = |value: u64| Cell::number(count(value), Some(value as f64));
        let mut cells = vec![
            Cell::text(name),
            counted(figures.started),
            counted(figures.completed),
            counted(figures.cancelled),
            counted(figures.notifications),
        ];
        cells.extend(channels.iter().map(|channel| counted(figures.channels.get(*channel).copied().unwrap_or(0))));
        cells.push(counted(figures.converted));
        cells.push(Cell::number(percent(figures.conversion_rate), figures.conversion_rate));
        cells
    };
    let mut columns = vec![
        text_column("journey", "Journey"),
        number_column("started", "Started", "started"),
        number_column("completed", "Completed", "completed"),
        number_column("cancelled", "Cancelled", "cancelled"),
        number_column("notifications", "Notifications", "notifications"),
    ];
    // Channel names come from the data: their columns are keyed by position.
    const CHANNEL_KEYS: [&str; 8] =
        ["channel_1", "channel_2", "channel_3", "channel_4", "channel_5", "channel_6", "channel_7", "channel_8"];
    let shown_channels: Vec<&String> = channels.iter().take(CHANNEL_KEYS.len()).copied().collect();
    for (index, channel) in shown_channels.iter().enumerate() {
        columns.push(number_column(CHANNEL_KEYS[index], format!("via {channel}"), "notifications"));
    }
    columns.push(number_column("converted", "Converted", "converted"));
    columns.push(number_column("conversion_rate", "Conversion rate", "journey_conversion_rate"));
    let mut rows: Vec<Vec<Cell>> =
        report.journeys.journeys.iter().map(|journey| row(&journey.journey, &journey.figures)).collect();
    if !rows.is_empty() {
        rows.push(row("All journeys", &report.journeys.total));
    }
    for cells in &mut rows {
        // Keep the cells in step with the channel columns actually shown.
        let channel_end = 5 + channels.len();
        let kept_end = 5 + shown_channels.len();
        cells.drain(kept_end..channel_end);
    }
    Table { name: "journeys".into(), title: "Journeys".into(), columns, rows }
}
