//! The report as a person reads it in a terminal: sections of aligned columns, money
//! with its currency, ratios as percentages, `-` where a figure has no value.

use std::fmt::Write;

use upshot_engine::figures::{Amount, PlacementFigures, Ratio, Shares};
use upshot_engine::Report;

fn percent(ratio: Ratio) -> String {
    ratio.map_or_else(|| "-".to_string(), |value| format!("{:.2}%", value * 100.0))
}

fn signed_percent(ratio: Ratio) -> String {
    ratio.map_or_else(|| "-".to_string(), |value| format!("{:+.2}%", value * 100.0))
}

fn money(amount: Amount) -> String {
    let cents = amount.0.round_to_cents();
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", group_thousands(cents / 100), cents % 100)
}

fn money_ratio(ratio: Ratio) -> String {
    ratio.map_or_else(|| "-".to_string(), |value| format!("{value:.2}"))
}

fn count(value: u64) -> String {
    group_thousands(u128::from(value))
}

fn shares(value: Shares) -> String {
    if value.0 % upshot_engine::attribution::SHARE_ONE == 0 {
        count(value.to_f64() as u64)
    } else {
        format!("{:.2}", value.to_f64())
    }
}

fn group_thousands(value: u128) -> String {
    let digits = value.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A table with a header row; numeric columns (all but the first) are right-aligned.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    fn render(&self, out: &mut String) {
        let columns = self.header.len();
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|row| row[column].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::from("  ");
            for (column, cell) in row.iter().enumerate() {
                let pad = widths[column] - cell.chars().count();
                if column == 0 {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push_str("  ");
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

fn key_values(out: &mut String, title: &str, rows: &[(&str, String)]) {
    let _ = writeln!(out, "\n{title}");
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    for (key, value) in rows {
        let _ = writeln!(out, "  {key:<width$}  {value}");
    }
}

fn placement_columns(first: &str, currency: &str) -> Table {
    let value = format!("value {currency}");
    let direct = format!("direct {currency}");
    let assisted = format!("assisted {currency}");
    let rpm = format!("RPM {currency}");
    Table::new(&[
        first,
        "impressions",
        "clicks",
        "CTR",
        "clicked sess.",
        "hovered sess.",
        "conv. clicks",
        "CR",
        "orders",
        &value,
        &direct,
        &assisted,
        &rpm,
        "add to carts",
        "ATC rate",
    ])
}

fn placement_cells(name: String, figures: &PlacementFigures) -> Vec<String> {
    vec![
        name,
        count(figures.impressions),
        count(figures.clicks),
        percent(figures.ctr),
        count(figures.clicked_sessions),
        count(figures.hovered_sessions),
        figures.converted_clicks.map_or_else(|| "-".to_string(), count),
        percent(figures.cr),
        shares(figures.orders),
        money(figures.value),
        money(figures.direct_revenue),
        money(figures.assisted_revenue),
        figures.rpm.map_or_else(|| "-".to_string(), money),
        count(figures.add_to_carts),
        percent(figures.add_to_cart_rate),
    ]
}

pub fn render_table(report: &Report) -> String {
    let range = &report.range;
    let currency = &range.currency;
    let mut out = String::new();
    let filters: Vec<String> =
        [("page type", &range.page_type), ("placement", &range.placement), ("kind", &range.kind)]
            .iter()
            .filter_map(|(name, value)| value.as_ref().map(|value| format!("{name} {value}")))
            .collect();
    let _ = writeln!(
        out,
        "upshot report {} .. {} ({}, {currency}), attribution model {}{}",
        range.from,
        range.to,
        range.timezone,
        range.model,
        if filters.is_empty() { String::new() } else { format!(", filtered by {}", filters.join(", ")) }
    );
    for warning in &report.warnings {
        let _ = writeln!(out, "WARNING: {warning} (run `upshot verify`)");
    }
    render_overview(report, &mut out);
    render_breakdowns(report, &mut out);
    render_placements(report, &mut out);
    render_rollups(report, &mut out);
    render_journeys(report, &mut out);
    render_experiments(report, &mut out);
    out
}

fn render_overview(report: &Report, out: &mut String) {
    let currency = &report.range.currency;
    let o = &report.overview;
    key_values(
        out,
        "Overview",
        &[
            ("visitors", count(o.visitors)),
            ("sessions", count(o.sessions)),
            ("personalized sessions", count(o.personalized_sessions)),
            ("bounce rate", percent(o.bounce_rate)),
            ("conversion rate", percent(o.conversion_rate)),
            ("orders", count(o.orders)),
            ("revenue", format!("{} {currency}", money(o.revenue))),
            ("average order value", format!("{} {currency}", money_ratio(o.aov))),
            (
                "active placements / experiments / journeys (last 24 h)",
                format!("{} / {} / {}", o.active_placements, o.active_experiments, o.active_journeys),
            ),
        ],
    );
    let mut segments = Table::new(&["segment", "conversion rate", "orders", &format!("revenue {currency}"), "AOV"]);
    for (name, segment) in [("personalized", &o.personalized), ("not personalized", &o.non_personalized)] {
        segments.rows.push(vec![
            name.to_string(),
            percent(segment.conversion_rate),
            count(segment.orders),
            money(segment.revenue),
            money_ratio(segment.aov),
        ]);
    }
    out.push('\n');
    segments.render(out);
    let p = &report.personalization;
    key_values(
        out,
        "Personalization",
        &[
            ("orders in personalized sessions", count(p.orders)),
            ("revenue", format!("{} {currency}", money(p.revenue))),
            ("change against previous period", signed_percent(p.revenue_change)),
            ("conversion rate", percent(p.conversion_rate)),
            ("average order value", format!("{} {currency}", money_ratio(p.aov))),
        ],
    );
    let r = &report.recommendations;
    key_values(
        out,
        "Recommendations",
        &[
            ("direct revenue", format!("{} {currency}", money(r.direct_revenue))),
            ("assisted revenue", format!("{} {currency}", money(r.assisted_revenue))),
            ("recommendation sessions", count(r.sessions)),
            ("CTR (sessions viewing a recommended product)", percent(r.ctr)),
            ("conversion rate", percent(r.conversion_rate)),
            ("unique visitors", count(r.unique_visitors)),
            ("purchases (direct lines)", count(r.purchases)),
            ("share of purchasing sessions", percent(r.purchase_sessions_share)),
        ],
    );
}

fn render_placements(report: &Report, out: &mut String) {
    let currency = &report.range.currency;
    let _ = writeln!(out, "\nPlacements");
    if report.placements.is_empty() {
        let _ = writeln!(out, "  (no placement activity in range)");
        return;
    }
    let mut table = placement_columns("placement (kind)", currency);
    for row in &report.placements {
        table.rows.push(placement_cells(format!("{} ({})", row.placement, row.kind), &row.figures));
    }
    table.render(out);
    let _ = writeln!(out, "\nKinds");
    let mut table = placement_columns("kind", currency);
    for row in &report.kinds {
        table.rows.push(placement_cells(row.kind.clone(), &row.figures));
    }
    table.render(out);
}

fn render_rollups(report: &Report, out: &mut String) {
    let currency = &report.range.currency;
    for (title, rows) in [
        (
            "Campaigns",
            report.campaigns.iter().map(|r| (&r.campaign, r.started, r.profiles, &r.figures)).collect::<Vec<_>>(),
        ),
        ("Sequences", report.sequences.iter().map(|r| (&r.sequence, r.started, r.profiles, &r.figures)).collect()),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        let value = format!("value {currency}");
        let mut table = Table::new(&["name", "started", "profiles", "impressions", "clicks", "CTR", "orders", &value]);
        for (name, started, profiles, figures) in rows {
            table.rows.push(vec![
                name.clone(),
                count(started),
                count(profiles),
                count(figures.impressions),
                count(figures.clicks),
                percent(figures.ctr),
                shares(figures.orders),
                money(figures.value),
            ]);
        }
        table.render(out);
    }
}

fn render_journeys(report: &Report, out: &mut String) {
    let journeys = &report.journeys;
    if journeys.journeys.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nJourneys");
    let mut table = Table::new(&["journey", "started", "completed", "cancelled", "notifications", "converted", "CR"]);
    let rows = journeys.journeys.iter().map(|row| (row.journey.clone(), &row.figures));
    for (name, figures) in rows.chain(std::iter::once(("total".to_string(), &journeys.total))) {
        table.rows.push(vec![
            name,
            count(figures.started),
            count(figures.completed),
            count(figures.cancelled),
            count(figures.notifications),
            count(figures.converted),
            percent(figures.conversion_rate),
        ]);
    }
    table.render(out);
}

/// One table per session attribute (SPEC section 9.2).
fn render_breakdowns(report: &Report, out: &mut String) {
    let currency = &report.range.currency;
    let breakdowns = &report.breakdowns;
    for (title, rows) in [
        ("device", &breakdowns.device),
        ("visitor type", &breakdowns.visitor_type),
        ("channel", &breakdowns.channel),
        ("landing page type", &breakdowns.landing_page_type),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\nBy {title}");
        let revenue = format!("revenue {currency}");
        let attributed = format!("attributed {currency}");
        let mut table = Table::new(&[
            title,
            "sessions",
            "personalized",
            "bounce",
            "CR",
            "orders",
            &revenue,
            "AOV",
            "attr. orders",
            &attributed,
            "rec. sessions",
            "rec. CTR",
        ]);
        for row in rows {
            table.rows.push(vec![
                row.value.clone(),
                count(row.sessions),
                count(row.personalized_sessions),
                percent(row.bounce_rate),
                percent(row.conversion_rate),
                count(row.orders),
                money(row.revenue),
                money_ratio(row.aov),
                shares(row.attributed_orders),
                money(row.attributed_value),
                count(row.recommendation_sessions),
                percent(row.recommendation_ctr),
            ]);
        }
        table.render(out);
    }
}

fn render_experiments(report: &Report, out: &mut String) {
    let currency = &report.range.currency;
    for experiment in &report.experiments {
        let srm = match (experiment.srm_p_value, experiment.srm_warning) {
            (Some(p), Some(true)) => format!("SRM p = {p:.4}: WARNING, the split is not as configured"),
            (Some(p), _) => format!("SRM p = {p:.4}"),
            (None, _) => "SRM n/a".to_string(),
        };
        let reduction = experiment
            .cuped_variance_reduction
            .map_or_else(|| "n/a".to_string(), |reduction| format!("{:.1}%", reduction * 100.0));
        let _ = writeln!(
            out,
            "\nExperiment {} (control {}, {} visitors, {srm}; CUPED theta {:.4}, variance reduced by {reduction})",
            experiment.experiment,
            experiment.control,
            count(experiment.visitors),
            experiment.cuped_theta,
        );
        let mut table = Table::new(&[
            "variant",
            "visitors",
            "converted",
            "CR",
            "orders",
            &format!("revenue {currency}"),
            "RPV",
            &format!("incremental {currency}"),
            "CR lift [95% CI]",
            "always valid",
            "p",
            "p Holm",
            "RPV lift [95% CI]",
            "always valid",
            "p",
            "p Holm",
            "RPV lift CUPED [95% CI]",
            "p",
        ]);
        let interval = |lift: Option<f64>, ci: Option<[f64; 2]>| match (lift, ci) {
            (Some(lift), Some([low, high])) => {
                format!("{:+.1}% [{:+.1}%, {:+.1}%]", lift * 100.0, low * 100.0, high * 100.0)
            }
            _ => "-".to_string(),
        };
        let bounds = |ci: Option<[f64; 2]>| match ci {
            Some([low, high]) => format!("[{:+.1}%, {:+.1}%]", low * 100.0, high * 100.0),
            None => "-".to_string(),
        };
        let p_value = |p: Option<f64>| p.map_or_else(|| "-".to_string(), |p| format!("{p:.4}"));
        for variant in &experiment.variants {
            table.rows.push(vec![
                variant.variant.clone(),
                count(variant.visitors),
                count(variant.converted),
                percent(variant.conversion_rate),
                count(variant.orders),
                money(variant.revenue),
                money_ratio(variant.revenue_per_visitor),
                variant.incremental_revenue.map_or_else(|| "-".to_string(), money),
                interval(variant.cr_lift, variant.cr_lift_ci),
                bounds(variant.cr_lift_ci_sequential),
                p_value(variant.cr_lift_p_value),
                p_value(variant.cr_lift_p_value_adjusted),
                interval(variant.rpv_lift, variant.rpv_lift_ci),
                bounds(variant.rpv_lift_ci_sequential),
                p_value(variant.rpv_lift_p_value),
                p_value(variant.rpv_lift_p_value_adjusted),
                interval(variant.rpv_lift_cuped, variant.rpv_lift_cuped_ci),
                p_value(variant.rpv_lift_cuped_p_value),
            ]);
        }
        table.render(out);
    }
    if !report.goals.is_empty() {
        let _ = writeln!(out, "\nGoals");
        let value = format!("value {}", report.range.currency);
        let mut table =
            Table::new(&["goal", "completions", "sessions", "personalized sess.", &value, "CR", "personalized CR"]);
        for goal in &report.goals {
            table.rows.push(vec![
                goal.goal.clone(),
                count(goal.completions),
                count(goal.sessions),
                count(goal.personalized_sessions),
                money(goal.value),
                percent(goal.conversion_rate),
                percent(goal.personalized_conversion_rate),
            ]);
        }
        table.render(out);
    }
    if !report.topics.is_empty() {
        let _ = writeln!(out, "\nTopics");
        let mut table = Table::new(&["label", "visitors", "converted"]);
        for topic in &report.topics {
            table.rows.push(vec![topic.label.clone(), count(topic.visitors), count(topic.converted)]);
        }
        table.render(out);
    }
}
