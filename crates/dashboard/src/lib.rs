//! upshot's dashboard: every figure of a report (SPEC section 5) as server-rendered
//! HTML with SVG charts, for a shop's marketer. Pure rendering: the caller computes the
//! reports, knows who is signed in and what today is. Everything shown is escaped by
//! the template engine (maud); nothing is loaded from outside the server.

pub mod charts;
pub mod definitions;
pub mod format;
pub mod layout;
pub mod others;
pub mod overview;
pub mod placements;
pub mod table;
pub mod view;

use maud::html;
use upshot_engine::Report;

pub use view::{Preset, View};

/// The stylesheet and script, served by the server at `/assets/`.
pub const APP_CSS: &str = include_str!("../assets/app.css");
pub const APP_JS: &str = include_str!("../assets/app.js");

/// A page of a site's dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    Overview,
    Placements,
    Placement(String),
    Rollups,
    Recommendations,
    Experiments,
    Journeys,
}

impl Page {
    /// The page at a path under `/sites/{site}/` (already percent-decoded).
    pub fn parse(path: &str) -> Option<Page> {
        Some(match path.trim_end_matches('/') {
            "" => Page::Overview,
            "placements" => Page::Placements,
            "rollups" => Page::Rollups,
            "recommendations" => Page::Recommendations,
            "experiments" => Page::Experiments,
            "journeys" => Page::Journeys,
            other => Page::Placement(other.strip_prefix("placements/").filter(|name| !name.is_empty())?.to_string()),
        })
    }

    /// Whether the page compares with the previous period (and so needs its report).
    pub fn needs_previous(&self) -> bool {
        *self == Page::Overview
    }

    fn path(&self) -> String {
        match self {
            Page::Overview => String::new(),
            Page::Placements => "placements".into(),
            Page::Placement(name) => format!("placements/{}", view::encode(name)),
            Page::Rollups => "rollups".into(),
            Page::Recommendations => "recommendations".into(),
            Page::Experiments => "experiments".into(),
            Page::Journeys => "journeys".into(),
        }
    }
}

/// The whole HTML page; `None` for a placement the range does not know.
pub fn render(page: &Page, view: &View, current: &Report, previous: Option<&Report>) -> Option<String> {
    let path = page.path();
    let (title, content) = match page {
        Page::Overview => ("Overview".to_string(), overview::render(view, current, previous)),
        Page::Placements => ("Placements".to_string(), placements::render_placements(view, current)),
        Page::Placement(name) => (format!("Placement {name}"), placements::render_placement(view, current, name)?),
        Page::Rollups => {
            let tables = placements::rollup_tables(view, current);
            let page_path = view.site_path(&path);
            (
                "Kinds, campaigns and sequences".to_string(),
                html! { @for table in &tables { (table.render(view, &page_path)) } },
            )
        }
        Page::Recommendations => ("Recommendations".to_string(), others::render_recommendations(current)),
        Page::Experiments => ("Experiments".to_string(), others::render_experiments(view, current)),
        Page::Journeys => {
            let page_path = view.site_path(&path);
            ("Journeys".to_string(), others::journeys_table(current).render(view, &page_path))
        }
    };
    // Damage left out of the figures is said on every page, above them.
    let content = html! {
        @for warning in &current.warnings {
            p.warning role="alert" { "Some stored data is damaged and left out of these figures: " (warning) ". The operator can run `upshot verify` to see every damaged part." }
        }
        (content)
    };
    Some(layout::page(view, &path, &title, content))
}

/// A table of a page as CSV, by the name its download link gives.
pub fn csv(page: &Page, view: &View, report: &Report, table: &str) -> Option<String> {
    let tables = match page {
        Page::Overview => {
            vec![
                overview::segments_table(report),
                overview::breakdown_table(view, report),
                overview::goals_table(report),
            ]
        }
        Page::Placements => vec![placements::placements_table(view, report)],
        Page::Rollups => placements::rollup_tables(view, report),
        Page::Experiments => {
            let mut tables: Vec<table::Table> = report
                .experiments
                .iter()
                .enumerate()
                .map(|(index, experiment)| others::variant_table(experiment, index))
                .collect();
            tables.push(others::topics_table(report));
            tables.push(others::recent_table(report));
            tables
        }
        Page::Journeys => vec![others::journeys_table(report)],
        Page::Placement(name) => {
            let rows = report.placements.iter().filter(|row| row.placement == *name);
            let positions = rows.clone().filter_map(|row| row.positions.as_deref()).map(placements::positions_table);
            rows.map(placements::top_items_table).chain(positions).collect()
        }
        Page::Recommendations => Vec::new(),
    };
    tables.into_iter().find(|candidate| candidate.name == table).map(|table| table.csv())
}
