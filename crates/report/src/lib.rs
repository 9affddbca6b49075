//! Renders a typed `Report` for people and programs: JSON (SPEC section 8), an aligned
//! terminal table with units, and a tidy CSV of every figure.

mod csv;
pub mod csv_writer;
mod table;

pub use csv::render_csv;
pub use table::render_table;
use upshot_engine::Report;

/// The report as pretty JSON, exactly the shape of SPEC section 8.
pub fn render_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}

/// The output formats of `upshot report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => render_table(report),
        Format::Json => render_json(report),
        Format::Csv => render_csv(report),
    }
}
