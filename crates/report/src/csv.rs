//! A tidy CSV of every figure: `section,row,figure,value`, one figure a line.

use serde_json::Value;
use upshot_engine::Report;

use crate::csv_writer::CsvWriter;

/// Fields that name a row of an array section rather than being a figure.
const ROW_KEYS: [&str; 9] =
    ["placement", "kind", "campaign", "sequence", "journey", "experiment", "label", "variant", "goal"];

pub fn render_csv(report: &Report) -> String {
    let value = serde_json::to_value(report).expect("a report always serializes");
    let mut out = CsvWriter::default();
    out.row(["section", "row", "figure", "value"]);
    if let Value::Object(sections) = value {
        for (section, content) in sections {
            if section == "range" {
                continue;
            }
            flatten(&section, "", "", &content, &mut out);
        }
    }
    out.finish()
}

fn flatten(section: &str, row: &str, figure: &str, value: &Value, out: &mut CsvWriter) {
    match value {
        Value::Object(fields) => {
            // A click position names its row too (a number: `placements,home_recs/3,...`).
            // A breakdown row is named by its text `value` (a money `value` is a figure).
            let row_name = ROW_KEYS.iter().chain(&["date", "order_id", "position", "value"]).find_map(|key| {
                let name = fields.get(*key)?;
                let number = name.as_u64().filter(|_| *key == "position").map(|n| n.to_string());
                Some((*key, name.as_str().map(str::to_string).or(number)?))
            });
            let row = match &row_name {
                Some((_, name)) if row.is_empty() => name.to_string(),
                Some((_, name)) => format!("{row}/{name}"),
                None => row.to_string(),
            };
            for (key, child) in fields {
                if row_name.as_ref().is_some_and(|(row_key, _)| row_key == key) {
                    continue;
                }
                let figure = if figure.is_empty() { key.clone() } else { format!("{figure}.{key}") };
                flatten(section, &row, &figure, child, out);
            }
        }
        Value::Array(entries) if !entries.is_empty() && entries.iter().all(Value::is_number) => {
            for (label, entry) in ["low", "high"].iter().zip(entries) {
                flatten(section, row, &format!("{figure}.{label}"), entry, out);
            }
        }
        Value::Array(entries) => {
            for entry in entries {
                flatten(section, row, figure, entry, out);
            }
        }
        Value::Null => push_line(out, section, row, figure, ""),
        Value::String(text) => push_line(out, section, row, figure, text),
        other => push_line(out, section, row, figure, &other.to_string()),
    }
}

fn push_line(out: &mut CsvWriter, section: &str, row: &str, figure: &str, value: &str) {
    out.row([section, row, figure, value]);
}
