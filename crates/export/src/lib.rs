//! Raw-event export: canonical NDJSON, or one flat Parquet table (readable by DuckDB,
//! pandas, Spark) with money as DECIMAL(18,4) and times as UTC millisecond timestamps.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use upshot_model::{event_to_json, Body, Event};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// Rows per Parquet row group: bounds the exporter's memory.
pub const ROWS_PER_GROUP: usize = 65_536;

/// Writes events as canonical NDJSON, one per line.
pub struct NdjsonExporter<W: Write> {
    out: W,
    rows: u64,
}

impl<W: Write> NdjsonExporter<W> {
    pub fn new(out: W) -> NdjsonExporter<W> {
        NdjsonExporter { out, rows: 0 }
    }

    pub fn push(&mut self, event: &Event) -> Result<(), ExportError> {
        serde_json::to_writer(&mut self.out, &event_to_json(event)).map_err(std::io::Error::from)?;
        self.out.write_all(b"\n")?;
        self.rows += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<u64, ExportError> {
        self.out.flush()?;
        Ok(self.rows)
    }
}

#[derive(Clone, Copy)]
enum Physical {
    Text,
    Int64,
    Int32,
    Bool,
}

const SCHEMA: &[(&str, Physical, &str)] = &[
    ("event_id", Physical::Text, "required binary event_id (STRING)"),
    ("type", Physical::Text, "required binary type (STRING)"),
    ("ts", Physical::Int64, "required int64 ts (TIMESTAMP(MILLIS,true))"),
    ("visitor_id", Physical::Text, "optional binary visitor_id (STRING)"),
    ("profile_id", Physical::Text, "optional binary profile_id (STRING)"),
    ("page_type", Physical::Text, "optional binary page_type (STRING)"),
    ("url", Physical::Text, "optional binary url (STRING)"),
    ("sent_at", Physical::Int64, "optional int64 sent_at (TIMESTAMP(MILLIS,true))"),
    ("device", Physical::Text, "optional binary device (STRING)"),
    ("referrer", Physical::Text, "optional binary referrer (STRING)"),
    ("utm_source", Physical::Text, "optional binary utm_source (STRING)"),
    ("utm_medium", Physical::Text, "optional binary utm_medium (STRING)"),
    ("utm_campaign", Physical::Text, "optional binary utm_campaign (STRING)"),
    ("placement", Physical::Text, "optional binary placement (STRING)"),
    ("kind", Physical::Text, "optional binary kind (STRING)"),
    ("action", Physical::Text, "optional binary action (STRING)"),
    ("item", Physical::Text, "optional binary item (STRING)"),
    ("items", Physical::Text, "optional binary items (STRING)"),
    ("impression_id", Physical::Text, "optional binary impression_id (STRING)"),
    ("campaign", Physical::Text, "optional binary campaign (STRING)"),
    ("sequence", Physical::Text, "optional binary sequence (STRING)"),
    ("experience", Physical::Text, "optional binary experience (STRING)"),
    ("label", Physical::Text, "optional binary label (STRING)"),
    ("quantity", Physical::Int32, "optional int32 quantity"),
    ("price", Physical::Int64, "optional int64 price (DECIMAL(18,4))"),
    ("order_id", Physical::Text, "optional binary order_id (STRING)"),
    ("revenue", Physical::Int64, "optional int64 revenue (DECIMAL(18,4))"),
    ("shipping", Physical::Int64, "optional int64 shipping (DECIMAL(18,4))"),
    ("tax", Physical::Int64, "optional int64 tax (DECIMAL(18,4))"),
    ("lines", Physical::Text, "optional binary lines (STRING)"),
    ("amount", Physical::Int64, "optional int64 amount (DECIMAL(18,4))"),
    ("cancel", Physical::Bool, "optional boolean cancel"),
    ("experiment", Physical::Text, "optional binary experiment (STRING)"),
    ("variant", Physical::Text, "optional binary variant (STRING)"),
    ("goal", Physical::Text, "optional binary goal (STRING)"),
    ("value", Physical::Int64, "optional int64 value (DECIMAL(18,4))"),
    ("journey", Physical::Text, "optional binary journey (STRING)"),
    ("channel", Physical::Text, "optional binary channel (STRING)"),
    ("run_id", Physical::Text, "optional binary run_id (STRING)"),
];

fn column_index(name: &str) -> usize {
    SCHEMA.iter().position(|(column, _, _)| *column == name).expect("a schema column")
}

/// One column's values of the current row group, with definition levels.
#[derive(Default)]
struct Buffer {
    texts: Vec<ByteArray>,
    numbers: Vec<i64>,
    bools: Vec<bool>,
    levels: Vec<i16>,
}

/// Writes events as a Parquet file, a row group at a time.
pub struct ParquetExporter<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    buffers: Vec<Buffer>,
    pending: usize,
    rows: u64,
}

enum Cell {
    Text(String),
    Number(i64),
    Bool(bool),
}

impl<W: Write + Send> ParquetExporter<W> {
    pub fn new(out: W) -> Result<ParquetExporter<W>, ExportError> {
        let fields: Vec<String> = SCHEMA.iter().map(|(_, _, field)| format!("  {field};")).collect();
        let message = format!("message upshot_event {{\n{}\n}}", fields.join("\n"));
        let schema = Arc::new(parse_message_type(&message)?);
        let properties = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
        let writer = SerializedFileWriter::new(out, schema, Arc::new(properties))?;
        let buffers = SCHEMA.iter().map(|_| Buffer::default()).collect();
        Ok(ParquetExporter { writer, buffers, pending: 0, rows: 0 })
    }

    pub fn push(&mut self, event: &Event) -> Result<(), ExportError> {
        let mut cells: Vec<Option<Cell>> = SCHEMA.iter().map(|_| None).collect();
        for (name, cell) in event_cells(event) {
            cells[column_index(name)] = Some(cell);
        }
        for (buffer, cell) in self.buffers.iter_mut().zip(cells) {
            match cell {
                None => buffer.levels.push(0),
                Some(cell) => {
                    buffer.levels.push(1);
                    match cell {
                        Cell::Text(text) => buffer.texts.push(ByteArray::from(text.into_bytes())),
                        Cell::Number(number) => buffer.numbers.push(number),
                        Cell::Bool(flag) => buffer.bools.push(flag),
                    }
                }
            }
        }
        self.pending += 1;
        if self.pending >= ROWS_PER_GROUP {
            self.flush_group()?;
        }
        Ok(())
    }

    fn flush_group(&mut self) -> Result<(), ExportError> {
        if self.pending == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut column) = group.next_column()? {
            let buffer = std::mem::take(&mut self.buffers[index]);
            let required = SCHEMA[index].2.starts_with("required");
            let levels = (!required).then_some(buffer.levels.as_slice());
            match SCHEMA[index].1 {
                Physical::Text => column.typed::<ByteArrayType>().write_batch(&buffer.texts, levels, None)?,
                Physical::Int64 => column.typed::<Int64Type>().write_batch(&buffer.numbers, levels, None)?,
                Physical::Int32 => {
                    let values: Vec<i32> =
                        buffer.numbers.iter().map(|&n| i32::try_from(n).unwrap_or(i32::MAX)).collect();
                    column.typed::<Int32Type>().write_batch(&values, levels, None)?
                }
                Physical::Bool => column.typed::<BoolType>().write_batch(&buffer.bools, levels, None)?,
            };
            column.close()?;
            index += 1;
        }
        group.close()?;
        self.rows += self.pending as u64;
        self.pending = 0;
        Ok(())
    }

    pub fn finish(mut self) -> Result<u64, ExportError> {
        self.flush_group()?;
        self.writer.close()?;
        Ok(self.rows)
    }
}

fn event_cells(event: &Event) -> Vec<(&'static str, Cell)> {
    let mut cells = vec![
        ("event_id", Cell::Text(event.event_id.clone())),
        ("type", Cell::Text(event.body.type_name().to_string())),
        ("ts", Cell::Number(event.ts)),
    ];
    let mut text = |name: &'static str, value: &Option<String>| {
        if let Some(value) = value {
            cells.push((name, Cell::Text(value.clone())));
        }
    };
    text("visitor_id", &event.visitor_id);
    text("profile_id", &event.profile_id);
    text("page_type", &event.page_type);
    text("url", &event.url);
    if let Some(sent_at) = event.sent_at {
        cells.push(("sent_at", Cell::Number(sent_at)));
    }
    if let Some(device) = event.traffic.device {
        cells.push(("device", Cell::Text(device.as_str().to_string())));
    }
    let traffic = &event.traffic;
    for (name, value) in [
        ("referrer", &traffic.referrer),
        ("utm_source", &traffic.utm_source),
        ("utm_medium", &traffic.utm_medium),
        ("utm_campaign", &traffic.utm_campaign),
    ] {
        if let Some(value) = value {
            cells.push((name, Cell::Text(value.clone())));
        }
    }
    body_cells(&event.body, &mut cells);
    cells
}

fn body_cells(body: &Body, cells: &mut Vec<(&'static str, Cell)>) {
    let Body::Impression { placement, kind, items, attributes } = body else {
        return body_cells_rest(body, cells);
    };
    cells.push(("placement", Cell::Text(placement.clone())));
    cells.push(("kind", Cell::Text(kind.as_str().to_string())));
    if !items.is_empty() {
        cells.push(("items", Cell::Text(serde_json::Value::from(items.clone()).to_string())));
    }
    for (name, value) in [
        ("impression_id", &attributes.impression_id),
        ("campaign", &attributes.campaign),
        ("sequence", &attributes.sequence),
        ("experience", &attributes.experience),
        ("label", &attributes.label),
    ] {
        if let Some(value) = value {
            cells.push((name, Cell::Text(value.clone())));
        }
    }
}

fn body_cells_rest(body: &Body, cells: &mut Vec<(&'static str, Cell)>) {
    let text = |value: &str| Cell::Text(value.to_string());
    let push_optional = |cells: &mut Vec<(&'static str, Cell)>, name: &'static str, value: &Option<String>| {
        if let Some(value) = value {
            cells.push((name, Cell::Text(value.clone())));
        }
    };
    let push_money = |cells: &mut Vec<(&'static str, Cell)>, name: &'static str, value: Option<upshot_model::Money>| {
        if let Some(value) = value {
            cells.push((name, Cell::Number(value.0)));
        }
    };
    match body {
        Body::Interaction { placement, kind, action, item, attributes } => {
            cells.push(("placement", text(placement)));
            cells.push(("kind", text(kind.as_str())));
            cells.push(("action", text(action.as_str())));
            push_optional(cells, "item", item);
            push_optional(cells, "impression_id", &attributes.impression_id);
            push_optional(cells, "campaign", &attributes.campaign);
            push_optional(cells, "sequence", &attributes.sequence);
            push_optional(cells, "experience", &attributes.experience);
            push_optional(cells, "label", &attributes.label);
        }
        Body::ProductView { item } => cells.push(("item", text(item))),
        Body::AddToCart { item, quantity, price } => {
            cells.push(("item", text(item)));
            cells.push(("quantity", Cell::Number(i64::from(*quantity))));
            push_money(cells, "price", *price);
        }
        Body::Order { order_id, revenue, shipping, tax, lines } => {
            cells.push(("order_id", text(order_id)));
            cells.push(("revenue", Cell::Number(revenue.0)));
            push_money(cells, "shipping", *shipping);
            push_money(cells, "tax", *tax);
            let lines: Vec<serde_json::Value> = lines
                .iter()
                .map(|line| serde_json::json!({"item": line.item, "quantity": line.quantity, "price": line.price.to_string()}))
                .collect();
            cells.push(("lines", Cell::Text(serde_json::Value::from(lines).to_string())));
        }
        Body::Refund { order_id, amount, cancel } => {
            cells.push(("order_id", text(order_id)));
            push_money(cells, "amount", *amount);
            cells.push(("cancel", Cell::Bool(*cancel)));
        }
        Body::Assignment { experiment, variant } => {
            cells.push(("experiment", text(experiment)));
            cells.push(("variant", text(variant)));
        }
        Body::Goal { goal, value } => {
            cells.push(("goal", text(goal)));
            push_money(cells, "value", *value);
        }
        Body::Journey { journey, action, channel, run_id } => {
            cells.push(("journey", text(journey)));
            cells.push(("action", text(action.as_str())));
            push_optional(cells, "channel", channel);
            push_optional(cells, "run_id", run_id);
        }
        Body::SequenceStart { sequence, campaign } => {
            cells.push(("sequence", text(sequence)));
            push_optional(cells, "campaign", campaign);
        }
        Body::PageView | Body::Impression { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use upshot_model::{parse_event_line, ParseContext};

    #[test]
    fn parquet_export_reads_back_with_every_row_and_typed_columns() {
        let context = ParseContext { currency: "USD".into() };
        let events: Vec<Event> = [
            r#"{"event_id":"e1","type":"order","ts":1000,"visitor_id":"v","order_id":"o","revenue":"10.5","items":[{"item":"p","price":5.25,"quantity":2}]}"#,
            r#"{"event_id":"e2","type":"impression","ts":900,"visitor_id":"v","placement":"h","kind":"recommendation","items":["p"]}"#,
            r#"{"event_id":"e3","type":"refund","ts":2000,"order_id":"o","cancel":true}"#,
        ]
        .iter()
        .map(|line| parse_event_line(line, &context).expect("valid"))
        .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.parquet");
        let mut exporter = ParquetExporter::new(std::fs::File::create(&path).expect("create")).expect("exporter");
        for event in &events {
            exporter.push(event).expect("push");
        }
        assert_eq!(exporter.finish().expect("finish"), 3);
        let reader = SerializedFileReader::new(std::fs::File::open(&path).expect("open")).expect("parquet reader");
        assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
        let rows: Vec<String> =
            reader.get_row_iter(None).expect("rows").map(|row| row.expect("row").to_string()).collect();
        assert!(rows[0].contains("revenue: 10.5000") || rows[0].contains("revenue: 10.5"), "{}", rows[0]);
        assert!(rows[2].contains("cancel: true") && rows[2].contains("visitor_id: null"), "{}", rows[2]);
    }
}
