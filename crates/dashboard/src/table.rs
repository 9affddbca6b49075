//! Tables: sortable by any column through the URL (works without script), each with a
//! CSV download of the same rows, headers carrying their definitions.

use std::borrow::Cow;

use maud::{html, Markup};

use crate::definitions::definition;
use crate::view::View;

pub struct Column {
    pub key: &'static str,
    pub label: Cow<'static, str>,
    /// The figure whose definition the header shows on hover.
    pub figure: &'static str,
    pub numeric: bool,
}

pub fn text_column(key: &'static str, label: impl Into<Cow<'static, str>>) -> Column {
    Column { key, label: label.into(), figure: "", numeric: false }
}

pub fn number_column(key: &'static str, label: impl Into<Cow<'static, str>>, figure: &'static str) -> Column {
    Column { key, label: label.into(), figure, numeric: true }
}

pub struct Cell {
    /// As shown on the page.
    pub shown: String,
    /// As written to CSV (unformatted, full precision; empty for null).
    pub raw: String,
    /// For sorting numeric columns (`None` sorts last).
    pub number: Option<f64>,
    pub href: Option<String>,
}

impl Cell {
    pub fn text(text: impl Into<String>) -> Cell {
        let text = text.into();
        Cell { shown: text.clone(), raw: text, number: None, href: None }
    }

    pub fn link(text: impl Into<String>, href: String) -> Cell {
        Cell { href: Some(href), ..Cell::text(text) }
    }

    pub fn number(shown: String, value: Option<f64>) -> Cell {
        Cell { shown, raw: value.map(|value| value.to_string()).unwrap_or_default(), number: value, href: None }
    }
}

pub struct Table {
    /// Its name in the CSV download's URL and file name.
    /// Names the table in its CSV link; unique on its page.
    pub name: std::borrow::Cow<'static, str>,
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Rows in the view's order when the view sorts by one of this table's columns.
    fn sorted_rows(&self, view: &View) -> Vec<&Vec<Cell>> {
        let mut rows: Vec<&Vec<Cell>> = self.rows.iter().collect();
        let Some(index) = view.sort.as_deref().and_then(|key| self.columns.iter().position(|column| column.key == key))
        else {
            return rows;
        };
        let numeric = self.columns[index].numeric;
        rows.sort_by(|a, b| {
            let order = if numeric {
                let (a, b) = (a[index].number, b[index].number);
                match (a, b) {
                    (Some(a), Some(b)) => a.total_cmp(&b),
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (None, None) => std::cmp::Ordering::Equal,
                }
            } else {
                a[index].raw.cmp(&b[index].raw)
            };
            if view.descending {
                order.reverse()
            } else {
                order
            }
        });
        rows
    }

    pub fn render(&self, view: &View, page_path: &str) -> Markup {
        let csv = view.href(&format!("{page_path}.csv"), &[("table", &self.name), ("sort", ""), ("dir", "")]);
        html! {
            section.table {
                div.table-head {
                    h2 { (self.title) }
                    a.download href=(csv) download { "Download CSV" }
                }
                @if self.rows.is_empty() {
                    p.muted { "Nothing in this range." }
                } @else {
                    div.scroll {
                        table {
                            thead { tr {
                                @for column in &self.columns {
                                    @let active = view.sort.as_deref() == Some(column.key);
                                    @let descending = if active { !view.descending } else { column.numeric };
                                    @let href = view.href(page_path, &[("sort", column.key), ("dir", if descending { "desc" } else { "asc" })]);
                                    th class=(if column.numeric { "num" } else { "" }) aria-sort=(if active { if view.descending { "descending" } else { "ascending" } } else { "none" }) {
                                        a href=(href) title=(definition(column.figure)) {
                                            (column.label)
                                            @if active { (if view.descending { " ▾" } else { " ▴" }) }
                                        }
                                    }
                                }
                            } }
                            tbody {
                                @for row in self.sorted_rows(view) {
                                    tr {
                                        @for (column, cell) in self.columns.iter().zip(row) {
                                            td class=(if column.numeric { "num" } else { "" }) {
                                                @if let Some(href) = &cell.href { a href=(href) { (cell.shown) } } @else { (cell.shown) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The rows as CSV (RFC 4180 quoting, formulas defused: upshot's one CSV writer),
    /// in the table's own order.
    pub fn csv(&self) -> String {
        let mut out = upshot_report::csv_writer::CsvWriter::default();
        out.row(self.columns.iter().map(|column| column.key));
        for row in &self.rows {
            out.row(row.iter().map(|cell| cell.raw.as_str()));
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let table = Table {
            name: "t".into(),
            title: "T".into(),
            columns: vec![text_column("name", "Name"), number_column("n", "N", "")],
            rows: vec![
                vec![Cell::text("a,\"b\""), Cell::number("1".into(), Some(-1.5))],
                vec![Cell::text("=cmd()"), Cell::number("–".into(), None)],
                vec![Cell::text("\t=HYPERLINK(\"x\")"), Cell::number("1".into(), Some(1.0))],
            ],
        };
        assert_eq!(table.csv(), "name,n\n\"a,\"\"b\"\"\",-1.5\n'=cmd(),\n\"'\t=HYPERLINK(\"\"x\"\")\",1\n");
    }
}
