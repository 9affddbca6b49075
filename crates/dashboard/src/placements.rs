//! Placements: the table of every per-placement figure (filtered by kind and page type,
//! sortable), a page per placement, and the rollups per kind, campaign and sequence.

use maud::{html, Markup};
use upshot_engine::figures::PlacementFigures;
use upshot_engine::Report;

use crate::charts::daily_bars;
use crate::definitions::definition;
use crate::format::{amount_f64, count, money, percent, shares};
use crate::table::{number_column, text_column, Cell, Column, Table};
use crate::view::{encode, View, KINDS};

/// The figures of a row, most looked-at first (a wide table scrolls sideways on small
/// screens): reach, clicks, credit, then the rest.
fn figure_columns() -> Vec<Column> {
    vec![
        number_column("impressions", "Impressions", "impressions"),
        number_column("clicks", "Clicks", "clicks"),
        number_column("ctr", "CTR", "ctr"),
        number_column("orders", "Orders", "orders"),
        number_column("value", "Value", "value"),
        number_column("rpm", "RPM", "rpm"),
        number_column("add_to_cart_rate", "Add-to-cart rate", "add_to_cart_rate"),
        number_column("add_to_carts", "Add-to-carts", "add_to_carts"),
        number_column("direct_revenue", "Direct revenue", "direct_revenue"),
        number_column("assisted_revenue", "Assisted revenue", "assisted_revenue"),
        number_column("product_impressions", "Products shown", "product_impressions"),
        number_column("clicked_sessions", "Clicked sessions", "clicked_sessions"),
        number_column("hovered_sessions", "Hovered sessions", "hovered_sessions"),
        number_column("converted_clicks", "Converted clicks", "converted_clicks"),
        number_column("cr", "CR", "cr"),
    ]
}

fn figure_cells(figures: &PlacementFigures) -> Vec<Cell> {
    let counted = |value: u64| Cell::number(count(value), Some(value as f64));
    let rate = |value: Option<f64>| Cell::number(percent(value), value);
    let amount = |value| Cell::number(money(value), Some(amount_f64(value)));
    vec![
        counted(figures.impressions),
        counted(figures.clicks),
        rate(figures.ctr),
        Cell::number(shares(figures.orders), Some(figures.orders.to_f64())),
        amount(figures.value),
        Cell::number(figures.rpm.map_or("–".into(), money), figures.rpm.map(amount_f64)),
        rate(figures.add_to_cart_rate),
        counted(figures.add_to_carts),
        amount(figures.direct_revenue),
        amount(figures.assisted_revenue),
        counted(figures.product_impressions),
        counted(figures.clicked_sessions),
        counted(figures.hovered_sessions),
        Cell::number(figures.converted_clicks.map_or("–".into(), count), figures.converted_clicks.map(|c| c as f64)),
        rate(figures.cr),
    ]
}

pub fn placements_table(view: &View, report: &Report) -> Table {
    let mut columns = vec![text_column("placement", "Placement"), text_column("kind", "Kind")];
    columns.extend(figure_columns());
    let rows = report
        .placements
        .iter()
        .filter(|row| view.kind.as_deref().is_none_or(|kind| kind == row.kind))
        .map(|row| {
            let href = view
                .href(&view.site_path(&format!("placements/{}", encode(&row.placement))), &[("sort", ""), ("dir", "")]);
            let mut cells = vec![Cell::link(row.placement.clone(), href), Cell::text(row.kind.clone())];
            cells.extend(figure_cells(&row.figures));
            cells
        })
        .collect();
    Table { name: "placements".into(), title: "Placements".into(), columns, rows }
}

pub fn render_placements(view: &View, report: &Report) -> Markup {
    let path = view.site_path("placements");
    html! {
        nav.filters aria-label="Kind" {
            span { "Kind: " }
            a href=(view.href(&path, &[("kind", "")])) aria-current=[view.kind.is_none().then_some("true")] { "all" }
            @for kind in KINDS {
                a href=(view.href(&path, &[("kind", kind)])) aria-current=[(view.kind.as_deref() == Some(kind)).then_some("true")] { (kind) }
            }
        }
        (placements_table(view, report).render(view, &path))
    }
}

/// One placement's page. `None` when the report has no such placement in range.
pub fn render_placement(view: &View, report: &Report, name: &str) -> Option<Markup> {
    let row = report.placements.iter().find(|row| row.placement == name)?;
    let cells = figure_cells(&row.figures);
    let series = |value: &dyn Fn(&upshot_engine::figures::PlacementDaily) -> f64| -> Vec<(String, f64)> {
        row.daily.iter().map(|day| (day.date.clone(), value(day))).collect()
    };
    Some(html! {
        p { "Kind: " strong { (row.kind) } " · " a href=(view.href(&view.site_path("placements"), &[])) { "All placements" } }
        dl.figures {
            @for (column, cell) in figure_columns().iter().zip(&cells) {
                dt title=(definition(column.figure)) { (column.label) }
                dd { (cell.shown) }
            }
        }
        div.charts {
            (daily_bars("Impressions per day", &series(&|day| day.impressions as f64)))
            (daily_bars("Clicks per day", &series(&|day| day.clicks as f64)))
            (daily_bars("CTR per day (%)", &series(&|day| day.ctr.unwrap_or(0.0) * 100.0)))
            (daily_bars(&format!("Attributed revenue per day ({})", report.range.currency), &series(&|day| amount_f64(day.value))))
        }
        @if let Some(positions) = row.positions.as_ref().filter(|positions| !positions.is_empty()) {
            div.charts {
                (daily_bars("Click-through by position in the list (%)",
                    &positions.iter().take(POSITIONS_CHARTED_MAX).map(|at| (format!("position {}", at.position), at.ctr.unwrap_or(0.0) * 100.0)).collect::<Vec<_>>()))
            }
            (positions_table(positions).render(view, &view.site_path(&format!("placements/{}", encode(name)))))
        }
        (top_items_table(row).render(view, &view.site_path(&format!("placements/{}", encode(name)))))
    })
}

/// Positions drawn in the chart (a list may show up to 1,000 items; the table and its
/// CSV keep every position).
const POSITIONS_CHARTED_MAX: usize = 50;

/// A recommendation placement's clicks by the position of the clicked item.
pub fn positions_table(positions: &[upshot_engine::figures::PositionRow]) -> Table {
    Table {
        name: "positions".into(),
        title: "Clicks by position".into(),
        columns: vec![
            number_column("position", "Position", "position"),
            number_column("product_impressions", "Shown", "position_impressions"),
            number_column("clicks", "Clicks", "position_clicks"),
            number_column("ctr", "CTR", "position_ctr"),
        ],
        rows: positions
            .iter()
            .map(|at| {
                vec![
                    Cell::number(at.position.to_string(), Some(f64::from(at.position))),
                    Cell::number(count(at.product_impressions), Some(at.product_impressions as f64)),
                    Cell::number(count(at.clicks), Some(at.clicks as f64)),
                    Cell::number(percent(at.ctr), at.ctr),
                ]
            })
            .collect(),
    }
}

pub fn top_items_table(row: &upshot_engine::figures::PlacementRow) -> Table {
    Table {
        name: "items".into(),
        title: "Most clicked items".into(),
        columns: vec![text_column("item", "Item"), number_column("clicks", "Clicks", "clicks")],
        rows: row
            .top_items
            .iter()
            .map(|item| vec![Cell::text(item.item.clone()), Cell::number(count(item.clicks), Some(item.clicks as f64))])
            .collect(),
    }
}

pub fn rollup_tables(view: &View, report: &Report) -> Vec<Table> {
    let with_figures = |first: Vec<Column>| {
        let mut columns = first;
        columns.extend(figure_columns());
        columns
    };
    let kinds = Table {
        name: "kinds".into(),
        title: "Per kind".into(),
        columns: with_figures(vec![text_column("kind", "Kind")]),
        rows: report
            .kinds
            .iter()
            .map(|row| {
                let href = view.href(&view.site_path("placements"), &[("kind", &row.kind), ("sort", ""), ("dir", "")]);
                let mut cells = vec![Cell::link(row.kind.clone(), href)];
                cells.extend(figure_cells(&row.figures));
                cells
            })
            .collect(),
    };
    let started = |first: Column| {
        with_figures(vec![
            first,
            number_column("started", "Started", "started"),
            number_column("profiles", "Profiles", "profiles"),
        ])
    };
    let rollup = |name: &str, started: u64, profiles: u64, figures: &PlacementFigures| {
        let mut cells = vec![
            Cell::text(name),
            Cell::number(count(started), Some(started as f64)),
            Cell::number(count(profiles), Some(profiles as f64)),
        ];
        cells.extend(figure_cells(figures));
        cells
    };
    let campaigns = Table {
        name: "campaigns".into(),
        title: "Per campaign".into(),
        columns: started(text_column("campaign", "Campaign")),
        rows: report
            .campaigns
            .iter()
            .map(|row| rollup(&row.campaign, row.started, row.profiles, &row.figures))
            .collect(),
    };
    let sequences = Table {
        name: "sequences".into(),
        title: "Per sequence".into(),
        columns: started(text_column("sequence", "Sequence")),
        rows: report
            .sequences
            .iter()
            .map(|row| rollup(&row.sequence, row.started, row.profiles, &row.figures))
            .collect(),
    };
    vec![kinds, campaigns, sequences]
}
