//! Columnar segment files: one site's events of one UTC day, sorted by visitor then
//! time, each column zstd-compressed and CRC32C-checked. Design: docs/adr/0003-segments.md.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use upshot_model::{
    Action, Body, Event, JourneyAction, Kind, Money, OrderLine, PlacementAttributes,
};

use crate::{io_error, StoreError};

pub const SEGMENT_MAGIC: &[u8; 8] = b"UPSHOTSG";
pub const SEGMENT_FORMAT_VERSION: u16 = 1;
const ZSTD_LEVEL: i32 = 3;
/// Largest header we accept when reading, in bytes.
const HEADER_BYTES_MAX: usize = 1 << 20;

const VISITORS: usize = 0;
const TS: usize = 1;
const EVENT_IDS: usize = 2;
const TYPES: usize = 3;
const COMMON: usize = 4;
const STRINGS: usize = 5;
const BODIES: usize = 6;
const TYPE_NAMES: [&str; 11] = [
    "page_view",
    "impression",
    "interaction",
    "product_view",
    "add_to_cart",
    "order",
    "refund",
    "assignment",
    "goal",
    "journey",
    "sequence_start",
];
const COLUMN_COUNT: usize = BODIES + TYPE_NAMES.len();

fn column_name(index: usize) -> String {
    match index {
        VISITORS => "visitors".into(),
        TS => "ts".into(),
        EVENT_IDS => "event_ids".into(),
        TYPES => "types".into(),
        COMMON => "common".into(),
        STRINGS => "strings".into(),
        body => format!("body.{}", TYPE_NAMES[body - BODIES]),
    }
}

fn type_index(body: &Body) -> usize {
    TYPE_NAMES
        .iter()
        .position(|name| *name == body.type_name())
        .expect("every body type has a column")
}

/// Where a column lies in the file and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    pub offset: u64,
    pub bytes: u64,
    pub raw_bytes: u64,
    pub crc32c: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub site: String,
    pub day: String,
    pub events: u64,
    pub visitors: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub columns: Vec<ColumnInfo>,
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Builds the columns of one segment.
#[derive(Default)]
struct Encoder {
    columns: Vec<Vec<u8>>,
    dictionary: HashMap<String, u64>,
}

impl Encoder {
    fn string(&mut self, column: usize, text: &str) {
        let next = self.dictionary.len() as u64;
        let index = match self.dictionary.get(text) {
            Some(&index) => index,
            None => {
                put_bytes(&mut self.columns[STRINGS], text.as_bytes());
                self.dictionary.insert(text.to_string(), next);
                next
            }
        };
        put_varint(&mut self.columns[column], index);
    }

    fn optional_string(&mut self, column: usize, text: Option<&str>) {
        match text {
            None => put_varint(&mut self.columns[column], 0),
            Some(text) => {
                put_varint(&mut self.columns[column], 1);
                self.string(column, text);
            }
        }
    }

    fn optional_number(&mut self, column: usize, value: Option<i64>) {
        match value {
            None => put_varint(&mut self.columns[column], 0),
            Some(value) => {
                put_varint(&mut self.columns[column], 1);
                put_varint(&mut self.columns[column], zigzag(value));
            }
        }
    }

    fn number(&mut self, column: usize, value: i64) {
        put_varint(&mut self.columns[column], zigzag(value));
    }

    fn attributes(&mut self, column: usize, attributes: &PlacementAttributes) {
        self.optional_string(column, attributes.impression_id.as_deref());
        self.optional_string(column, attributes.campaign.as_deref());
        self.optional_string(column, attributes.sequence.as_deref());
        self.optional_string(column, attributes.experience.as_deref());
        self.optional_string(column, attributes.label.as_deref());
    }

    fn body(&mut self, body: &Body) {
        let column = BODIES + type_index(body);
        match body {
            Body::PageView => {}
            Body::Impression {
                placement,
                kind,
                items,
                attributes,
            } => {
                self.string(column, placement);
                self.columns[column].push(*kind as u8);
                put_varint(&mut self.columns[column], items.len() as u64);
                for item in items {
                    self.string(column, item);
                }
                self.attributes(column, attributes);
            }
            Body::Interaction {
                placement,
                kind,
                action,
                item,
                attributes,
            } => {
                self.string(column, placement);
                self.columns[column].push(*kind as u8);
                self.columns[column].push(*action as u8);
                self.optional_string(column, item.as_deref());
                self.attributes(column, attributes);
            }
            Body::ProductView { item } => self.string(column, item),
            Body::AddToCart {
                item,
                quantity,
                price,
            } => {
                self.string(column, item);
                put_varint(&mut self.columns[column], u64::from(*quantity));
                self.optional_number(column, price.map(|p| p.0));
            }
            Body::Order {
                order_id,
                revenue,
                shipping,
                tax,
                lines,
            } => {
                self.string(column, order_id);
                self.number(column, revenue.0);
                self.optional_number(column, shipping.map(|m| m.0));
                self.optional_number(column, tax.map(|m| m.0));
                put_varint(&mut self.columns[column], lines.len() as u64);
                for line in lines {
                    self.string(column, &line.item);
                    put_varint(&mut self.columns[column], u64::from(line.quantity));
                    self.number(column, line.price.0);
                }
            }
            Body::Refund {
                order_id,
                amount,
                cancel,
            } => {
                self.string(column, order_id);
                self.optional_number(column, amount.map(|m| m.0));
                self.columns[column].push(u8::from(*cancel));
            }
            Body::Assignment {
                experiment,
                variant,
            } => {
                self.string(column, experiment);
                self.string(column, variant);
            }
            Body::Goal { goal, value } => {
                self.string(column, goal);
                self.optional_number(column, value.map(|m| m.0));
            }
            Body::Journey {
                journey,
                action,
                channel,
                run_id,
            } => {
                self.string(column, journey);
                self.columns[column].push(*action as u8);
                self.optional_string(column, channel.as_deref());
                self.optional_string(column, run_id.as_deref());
            }
            Body::SequenceStart { sequence, campaign } => {
                self.string(column, sequence);
                self.optional_string(column, campaign.as_deref());
            }
        }
    }
}

/// Sorts events as a segment stores them: visitor id bytes, ts, event_id bytes.
pub fn sort_for_segment(events: &mut [Event]) {
    events.sort_unstable_by(|a, b| {
        fn visitor(event: &Event) -> &[u8] {
            event.visitor_id.as_deref().unwrap_or("").as_bytes()
        }
        visitor(a)
            .cmp(visitor(b))
            .then(a.ts.cmp(&b.ts))
            .then_with(|| a.event_id.as_bytes().cmp(b.event_id.as_bytes()))
    });
}

fn encode_columns(events: &[Event]) -> (Vec<Vec<u8>>, u64) {
    let mut encoder = Encoder {
        columns: vec![Vec::new(); COLUMN_COUNT],
        dictionary: HashMap::new(),
    };
    let min_ts = events.iter().map(|event| event.ts).min().unwrap_or(0);
    let mut visitors = 0;
    let mut start = 0;
    while start < events.len() {
        let visitor = events[start].visitor_id.as_deref().unwrap_or("");
        let end = start
            + events[start..]
                .iter()
                .take_while(|e| e.visitor_id.as_deref().unwrap_or("") == visitor)
                .count();
        visitors += 1;
        put_bytes(&mut encoder.columns[VISITORS], visitor.as_bytes());
        put_varint(&mut encoder.columns[VISITORS], (end - start) as u64);
        let mut previous_ts = min_ts;
        for event in &events[start..end] {
            encoder.number(TS, event.ts - previous_ts);
            previous_ts = event.ts;
            put_bytes(&mut encoder.columns[EVENT_IDS], event.event_id.as_bytes());
            encoder.columns[TYPES].push(type_index(&event.body) as u8);
            encoder.optional_string(COMMON, event.profile_id.as_deref());
            encoder.optional_string(COMMON, event.page_type.as_deref());
            encoder.optional_string(COMMON, event.url.as_deref());
            encoder.optional_number(COMMON, event.sent_at.map(|sent_at| sent_at - event.ts));
            encoder.body(&event.body);
        }
        start = end;
    }
    (encoder.columns, visitors)
}

/// Writes `events` (sorted with `sort_for_segment`) as a segment file, durably:
/// temporary file, fsync, rename. Returns the header and the file's size.
pub fn write_segment(
    path: &Path,
    site: &str,
    day: &str,
    events: &[Event],
) -> Result<(SegmentHeader, u64), StoreError> {
    let (columns, visitors) = encode_columns(events);
    let mut compressed = Vec::with_capacity(columns.len());
    for column in &columns {
        let bytes = zstd::bulk::compress(column, ZSTD_LEVEL).map_err(io_error(path))?;
        compressed.push(bytes);
    }
    let mut header = SegmentHeader {
        site: site.to_string(),
        day: day.to_string(),
        events: events.len() as u64,
        visitors,
        min_ts: events.iter().map(|e| e.ts).min().unwrap_or(0),
        max_ts: events.iter().map(|e| e.ts).max().unwrap_or(0),
        columns: Vec::new(),
    };
    // Offsets depend on the header's length, which depends on the offsets' digits:
    // lay the columns out from a fixed-width guess and grow it until it fits.
    let mut reserved = 512 + 160 * COLUMN_COUNT;
    let header_json = loop {
        let mut offset = (SEGMENT_MAGIC.len() + 2 + 4 + reserved + 4) as u64;
        header.columns = compressed
            .iter()
            .zip(&columns)
            .enumerate()
            .map(|(index, (bytes, raw))| {
                let info = ColumnInfo {
                    name: column_name(index),
                    offset,
                    bytes: bytes.len() as u64,
                    raw_bytes: raw.len() as u64,
                    crc32c: crc32c::crc32c(bytes),
                };
                offset += bytes.len() as u64;
                info
            })
            .collect();
        let json = serde_json::to_vec(&header).expect("a header always serializes");
        if json.len() <= reserved {
            let mut padded = json;
            padded.resize(reserved, b' ');
            break padded;
        }
        reserved *= 2;
    };
    let mut file_bytes = Vec::new();
    file_bytes.extend_from_slice(SEGMENT_MAGIC);
    file_bytes.extend_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    file_bytes.extend_from_slice(&(header_json.len() as u32).to_le_bytes());
    file_bytes.extend_from_slice(&header_json);
    file_bytes.extend_from_slice(&crc32c::crc32c(&header_json).to_le_bytes());
    for bytes in &compressed {
        file_bytes.extend_from_slice(bytes);
    }
    let temporary = path.with_extension("seg.tmp");
    let mut file = std::fs::File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(&file_bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io_error(path))?;
    Ok((header, file_bytes.len() as u64))
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptSegment {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads and checks a segment's header.
pub fn read_header(path: &Path, file: &[u8]) -> Result<SegmentHeader, StoreError> {
    let prefix = SEGMENT_MAGIC.len() + 2 + 4;
    if file.len() < prefix || &file[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return Err(corrupt(path, "not an upshot segment (bad magic)"));
    }
    let version = u16::from_le_bytes([file[8], file[9]]);
    if version != SEGMENT_FORMAT_VERSION {
        return Err(corrupt(
            path,
            format!("segment format version {version}, this upshot reads {SEGMENT_FORMAT_VERSION}"),
        ));
    }
    let length = u32::from_le_bytes(file[10..14].try_into().expect("4 bytes")) as usize;
    if length > HEADER_BYTES_MAX || file.len() < prefix + length + 4 {
        return Err(corrupt(path, "header cut short"));
    }
    let json = &file[prefix..prefix + length];
    let stored = u32::from_le_bytes(
        file[prefix + length..prefix + length + 4]
            .try_into()
            .expect("4 bytes"),
    );
    if crc32c::crc32c(json) != stored {
        return Err(corrupt(path, "header checksum mismatch"));
    }
    serde_json::from_slice(json)
        .map_err(|error| corrupt(path, format!("header unreadable: {error}")))
}

/// Decompresses one column after checking its checksum.
fn column(path: &Path, file: &[u8], info: &ColumnInfo) -> Result<Vec<u8>, StoreError> {
    let (start, end) = (info.offset as usize, (info.offset + info.bytes) as usize);
    if end > file.len() || start > end {
        return Err(corrupt(
            path,
            format!("column {} runs past the end of the file", info.name),
        ));
    }
    let bytes = &file[start..end];
    if crc32c::crc32c(bytes) != info.crc32c {
        return Err(corrupt(
            path,
            format!("column {} checksum mismatch", info.name),
        ));
    }
    zstd::bulk::decompress(bytes, info.raw_bytes as usize).map_err(|error| {
        corrupt(
            path,
            format!("column {} does not decompress: {error}", info.name),
        )
    })
}

/// Sequential reads from a decompressed column.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
    name: &'a str,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.position)
                .ok_or_else(|| format!("column {} ends early", self.name))?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(format!("column {}: varint too long", self.name))
    }

    fn number(&mut self) -> Result<i64, String> {
        self.varint().map(unzigzag)
    }

    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or_else(|| format!("column {} ends early", self.name))?;
        self.position += 1;
        Ok(byte)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let length = self.varint()? as usize;
        let end = self
            .position
            .checked_add(length)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("column {} ends early", self.name))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn text(&mut self) -> Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("column {}: invalid UTF-8", self.name))
    }
}

struct Decoder<'a> {
    dictionary: Vec<String>,
    columns: Vec<Cursor<'a>>,
}

impl Decoder<'_> {
    fn string(&mut self, column: usize) -> Result<String, String> {
        let index = self.columns[column].varint()? as usize;
        self.dictionary
            .get(index)
            .cloned()
            .ok_or_else(|| format!("string index {index} out of the dictionary"))
    }

    fn optional_string(&mut self, column: usize) -> Result<Option<String>, String> {
        match self.columns[column].varint()? {
            0 => Ok(None),
            _ => self.string(column).map(Some),
        }
    }

    fn optional_number(&mut self, column: usize) -> Result<Option<i64>, String> {
        match self.columns[column].varint()? {
            0 => Ok(None),
            _ => self.columns[column].number().map(Some),
        }
    }

    fn kind(&mut self, column: usize) -> Result<Kind, String> {
        let byte = self.columns[column].byte()? as usize;
        Kind::ALL
            .get(byte)
            .copied()
            .ok_or_else(|| format!("unknown kind {byte}"))
    }

    fn attributes(&mut self, column: usize) -> Result<PlacementAttributes, String> {
        Ok(PlacementAttributes {
            impression_id: self.optional_string(column)?,
            campaign: self.optional_string(column)?,
            sequence: self.optional_string(column)?,
            experience: self.optional_string(column)?,
            label: self.optional_string(column)?,
        })
    }

    fn body(&mut self, type_index: usize) -> Result<Body, String> {
        let c = BODIES + type_index;
        let money = |value: Option<i64>| value.map(Money);
        Ok(match type_index {
            0 => Body::PageView,
            1 => {
                let placement = self.string(c)?;
                let kind = self.kind(c)?;
                let count = self.columns[c].varint()? as usize;
                let items = (0..count)
                    .map(|_| self.string(c))
                    .collect::<Result<_, _>>()?;
                Body::Impression {
                    placement,
                    kind,
                    items,
                    attributes: self.attributes(c)?,
                }
            }
            2 => {
                let placement = self.string(c)?;
                let kind = self.kind(c)?;
                let action = *Action::ALL
                    .get(self.columns[c].byte()? as usize)
                    .ok_or("unknown action")?;
                let item = self.optional_string(c)?;
                Body::Interaction {
                    placement,
                    kind,
                    action,
                    item,
                    attributes: self.attributes(c)?,
                }
            }
            3 => Body::ProductView {
                item: self.string(c)?,
            },
            4 => Body::AddToCart {
                item: self.string(c)?,
                quantity: u32::try_from(self.columns[c].varint()?)
                    .map_err(|_| "quantity out of range")?,
                price: money(self.optional_number(c)?),
            },
            5 => {
                let order_id = self.string(c)?;
                let revenue = Money(self.columns[c].number()?);
                let shipping = money(self.optional_number(c)?);
                let tax = money(self.optional_number(c)?);
                let count = self.columns[c].varint()? as usize;
                let mut lines = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    let item = self.string(c)?;
                    let quantity = u32::try_from(self.columns[c].varint()?)
                        .map_err(|_| "quantity out of range")?;
                    lines.push(OrderLine {
                        item,
                        quantity,
                        price: Money(self.columns[c].number()?),
                    });
                }
                Body::Order {
                    order_id,
                    revenue,
                    shipping,
                    tax,
                    lines,
                }
            }
            6 => Body::Refund {
                order_id: self.string(c)?,
                amount: money(self.optional_number(c)?),
                cancel: self.columns[c].byte()? != 0,
            },
            7 => Body::Assignment {
                experiment: self.string(c)?,
                variant: self.string(c)?,
            },
            8 => Body::Goal {
                goal: self.string(c)?,
                value: money(self.optional_number(c)?),
            },
            9 => Body::Journey {
                journey: self.string(c)?,
                action: *JourneyAction::ALL
                    .get(self.columns[c].byte()? as usize)
                    .ok_or("unknown journey action")?,
                channel: self.optional_string(c)?,
                run_id: self.optional_string(c)?,
            },
            10 => Body::SequenceStart {
                sequence: self.string(c)?,
                campaign: self.optional_string(c)?,
            },
            other => return Err(format!("unknown event type {other}")),
        })
    }
}

/// Reads a whole segment, checking every checksum; events come sorted by visitor,
/// ts, event_id.
pub fn read_segment(path: &Path) -> Result<(SegmentHeader, Vec<Event>), StoreError> {
    let file = std::fs::read(path).map_err(io_error(path))?;
    let header = read_header(path, &file)?;
    if header.columns.len() != COLUMN_COUNT {
        return Err(corrupt(
            path,
            format!("{} columns, expected {COLUMN_COUNT}", header.columns.len()),
        ));
    }
    let raw: Vec<Vec<u8>> = header
        .columns
        .iter()
        .map(|info| column(path, &file, info))
        .collect::<Result<_, _>>()?;
    let events = decode(&header, &raw).map_err(|reason| corrupt(path, reason))?;
    Ok((header, events))
}

fn decode(header: &SegmentHeader, raw: &[Vec<u8>]) -> Result<Vec<Event>, String> {
    let mut strings = Cursor {
        bytes: &raw[STRINGS],
        position: 0,
        name: "strings",
    };
    let mut dictionary = Vec::new();
    while strings.position < strings.bytes.len() {
        dictionary.push(strings.text()?);
    }
    let columns = raw
        .iter()
        .zip(&header.columns)
        .map(|(bytes, info)| Cursor {
            bytes,
            position: 0,
            name: &info.name,
        })
        .collect();
    let mut decoder = Decoder {
        dictionary,
        columns,
    };
    let mut events = Vec::with_capacity(header.events.min(1 << 24) as usize);
    for _ in 0..header.visitors {
        let visitor = decoder.columns[VISITORS].text()?;
        let rows = decoder.columns[VISITORS].varint()?;
        let mut ts = header.min_ts;
        for _ in 0..rows {
            ts += decoder.columns[TS].number()?;
            let event_id = decoder.columns[EVENT_IDS].text()?;
            let type_index = decoder.columns[TYPES].byte()? as usize;
            let profile_id = decoder.optional_string(COMMON)?;
            let page_type = decoder.optional_string(COMMON)?;
            let url = decoder.optional_string(COMMON)?;
            let sent_at = decoder.optional_number(COMMON)?.map(|offset| ts + offset);
            let body = decoder.body(type_index)?;
            let visitor_id = (!visitor.is_empty()).then(|| visitor.clone());
            events.push(Event {
                event_id,
                ts,
                visitor_id,
                profile_id,
                page_type,
                url,
                sent_at,
                body,
            });
        }
    }
    if events.len() as u64 != header.events {
        return Err(format!(
            "{} events decoded, header says {}",
            events.len(),
            header.events
        ));
    }
    Ok(events)
}

/// A segment's path from its site dir, day and name.
pub fn segment_path(site_dir: &Path, day: &str, name: &str) -> PathBuf {
    site_dir.join("segments").join(day).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use upshot_model::{parse_event_line, ParseContext};

    fn events() -> Vec<Event> {
        let context = ParseContext {
            currency: "USD".into(),
        };
        [
            r#"{"event_id":"e1","type":"order","ts":1000,"visitor_id":"b","order_id":"o","revenue":"10.5","shipping":-1,"tax":"0.0001","items":[{"item":"p","quantity":2,"price":5.25}],"profile_id":"x","page_type":"","url":"https://shop/x","sent_at":1500}"#,
            r#"{"event_id":"e2","type":"impression","ts":900,"visitor_id":"b","placement":"h","kind":"recommendation","items":["p","q"],"impression_id":"i","campaign":"c","sequence":"s","experience":"x","label":"l"}"#,
            r#"{"event_id":"e3","type":"interaction","ts":901,"visitor_id":"a","placement":"h","kind":"widget","action":"hover","item":"p","label":"shipping"}"#,
            r#"{"event_id":"e4","type":"refund","ts":5000,"order_id":"o","amount":1,"cancel":false}"#,
            r#"{"event_id":"e5","type":"refund","ts":-5000,"order_id":"o","cancel":true}"#,
            r#"{"event_id":"e6","type":"journey","ts":7,"visitor_id":"a","journey":"j","action":"notification","channel":"sms","run_id":"r"}"#,
            r#"{"event_id":"e7","type":"sequence_start","ts":7,"visitor_id":"a","sequence":"s"}"#,
            r#"{"event_id":"e8","type":"assignment","ts":8,"visitor_id":"a","experiment":"x","variant":"b"}"#,
            r#"{"event_id":"e9","type":"goal","ts":9,"visitor_id":"a","goal":"g","value":"-2"}"#,
            r#"{"event_id":"e10","type":"add_to_cart","ts":10,"visitor_id":"a","item":"p","quantity":3}"#,
            r#"{"event_id":"e11","type":"product_view","ts":11,"visitor_id":"a","item":"p"}"#,
            r#"{"event_id":"e12","type":"page_view","ts":11,"visitor_id":"a"}"#,
        ]
        .iter()
        .map(|line| parse_event_line(line, &context).expect("valid"))
        .collect()
    }

    #[test]
    fn every_field_of_every_type_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.seg");
        let mut written = events();
        sort_for_segment(&mut written);
        let (header, _) = write_segment(&path, "shop", "1970-01-01", &written).expect("written");
        assert_eq!((header.events, header.visitors), (12, 3));
        let (read_header, read) = read_segment(&path).expect("read back");
        assert_eq!(read_header, header);
        assert_eq!(read, written);
        assert_eq!(
            read[0].visitor_id, None,
            "refunds without visitor sort first"
        );
    }

    #[test]
    fn a_flipped_byte_is_reported_with_the_column_it_hit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.seg");
        let mut written = events();
        sort_for_segment(&mut written);
        let (header, _) = write_segment(&path, "shop", "1970-01-01", &written).expect("written");
        let mut bytes = std::fs::read(&path).expect("read");
        let target = header
            .columns
            .iter()
            .find(|c| c.name == "body.order")
            .expect("order column");
        bytes[target.offset as usize + 1] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let error = read_segment(&path)
            .expect_err("corruption detected")
            .to_string();
        assert!(
            error.contains("body.order") && error.contains("checksum"),
            "{error}"
        );
        bytes[20] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        let error = read_segment(&path)
            .expect_err("corruption detected")
            .to_string();
        assert!(error.contains("header"), "{error}");
    }
}
