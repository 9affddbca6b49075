//! Columnar segment files: one site's events of one UTC day. Visitors are spread over
//! `BUCKETS` hash buckets; each bucket is self-contained (its own string dictionary and
//! columns, each zstd-compressed and CRC32C-checked) and sorted by visitor, ts,
//! event_id, so a scan can take buckets in parallel and merge a bucket's visitors across
//! days. Design: docs/adr/0003-segments.md.

mod decode;
mod encode;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use upshot_model::{Body, Event};

use crate::{io_error, StoreError};

pub use decode::{BucketColumns, ColumnSet, DecodeError, Row, RowAttributes, RowBody, RowLine, RowReader, RowTraffic};

pub const SEGMENT_MAGIC: &[u8; 8] = b"UPSHOTSG";
pub const SEGMENT_FORMAT_VERSION: u16 = 6;
/// Format 4 differs only in having no key role: its events read as sent with the
/// secret key (what deduplication assumed then). Formats 4 and 5 have no traffic column
/// (SPEC section 9.1): their events read without traffic fields.
const SEGMENT_FORMAT_VERSIONS_READ: [u16; 3] = [4, 5, 6];
/// The first format with the traffic column.
const TRAFFIC_FORMAT_VERSION: u16 = 6;
/// The top bit of a row's type byte: the event came with the site's public key (format 5).
pub(crate) const PUBLIC_KEY_FLAG: u8 = 0x80;
/// Hash buckets of visitors per segment: the unit of parallel scanning.
pub const BUCKETS: u32 = 16;
const ZSTD_LEVEL: i32 = 3;
/// Largest header we accept when reading, in bytes.
const HEADER_BYTES_MAX: usize = 4 << 20;

pub(crate) const VISITORS: usize = 0;
pub(crate) const TS: usize = 1;
pub(crate) const EVENT_IDS: usize = 2;
pub(crate) const TYPES: usize = 3;
pub(crate) const COMMON: usize = 4;
pub(crate) const STRINGS: usize = 5;
pub(crate) const BODIES: usize = 6;
pub(crate) const TYPE_NAMES: [&str; 11] = [
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
/// Per row: a flags byte (device code in bits 0-2, then one bit per present referrer,
/// utm_source, utm_medium, utm_campaign) and the present strings' dictionary indices.
pub(crate) const TRAFFIC: usize = BODIES + TYPE_NAMES.len();
pub(crate) const COLUMN_COUNT: usize = TRAFFIC + 1;
pub(crate) const TRAFFIC_DEVICE_MASK: u8 = 0b0000_0111;
pub(crate) const TRAFFIC_REFERRER: u8 = 0b0000_1000;
pub(crate) const TRAFFIC_UTM_SOURCE: u8 = 0b0001_0000;
pub(crate) const TRAFFIC_UTM_MEDIUM: u8 = 0b0010_0000;
pub(crate) const TRAFFIC_UTM_CAMPAIGN: u8 = 0b0100_0000;
pub(crate) const TRAFFIC_FLAGS_KNOWN: u8 = 0b0111_1111;
/// Columns of a bucket written before the traffic column (formats 4 and 5).
pub(crate) const COLUMN_COUNT_WITHOUT_TRAFFIC: usize = TRAFFIC;
pub const ORDER_TYPE: u8 = 5;
pub const REFUND_TYPE: u8 = 6;

pub(crate) fn column_name(index: usize) -> String {
    match index {
        VISITORS => "visitors".into(),
        TS => "ts".into(),
        EVENT_IDS => "event_ids".into(),
        TYPES => "types".into(),
        COMMON => "common".into(),
        STRINGS => "strings".into(),
        TRAFFIC => "traffic".into(),
        body => format!("body.{}", TYPE_NAMES[body - BODIES]),
    }
}

pub(crate) fn type_index(body: &Body) -> usize {
    TYPE_NAMES.iter().position(|name| *name == body.type_name()).expect("every body type has a column")
}

/// The stable bucket of a visitor id (FNV-1a): the same in every segment and version.
pub fn bucket_of(visitor: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in visitor.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(BUCKETS)) as u32
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
pub struct BucketInfo {
    pub bucket: u32,
    pub events: u64,
    pub visitors: u64,
    pub min_ts: i64,
    pub columns: Vec<ColumnInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub site: String,
    pub day: String,
    pub events: u64,
    pub visitors: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Non-empty buckets only, by bucket number.
    pub buckets: Vec<BucketInfo>,
}

fn visitor_key(event: &Event) -> &str {
    event.visitor_id.as_deref().unwrap_or("")
}

/// Sorts events as a segment stores them: bucket, visitor id bytes, ts, event_id bytes.
pub fn sort_for_segment(events: &mut Vec<Event>) {
    let order = ordered_positions(events, |_| 0);
    let mut slots: Vec<Option<Event>> = std::mem::take(events).into_iter().map(Some).collect();
    events.extend(order.into_iter().map(|index| slots[index].take().expect("each position is taken once")));
}

/// The UTC day number of an instant (days since 1970-01-01): how segments partition.
pub fn day_number(ts: i64) -> i64 {
    ts.div_euclid(86_400_000)
}

/// The events in day then segment order, as references: writing segments from these
/// moves no event (sealing millions of large events copied gigabytes otherwise).
pub fn segment_order(events: &[Event], day: impl Fn(&Event) -> i64) -> Vec<&Event> {
    ordered_positions(events, day).into_iter().map(|index| &events[index]).collect()
}

/// Positions of `events` sorted by day, bucket, visitor, ts, event_id: each visitor
/// hashed once, keys borrowed, no allocation per event.
fn ordered_positions(events: &[Event], day: impl Fn(&Event) -> i64) -> Vec<usize> {
    let keys: Vec<(i64, u32)> = events.iter().map(|event| (day(event), bucket_of(visitor_key(event)))).collect();
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (x, y) = (&events[a], &events[b]);
        keys[a]
            .cmp(&keys[b])
            .then_with(|| visitor_key(x).as_bytes().cmp(visitor_key(y).as_bytes()))
            .then(x.ts.cmp(&y.ts))
            .then_with(|| x.event_id.as_bytes().cmp(y.event_id.as_bytes()))
    });
    order
}

/// A segment being written is flushed to disk every this many bytes.
const SYNC_EVERY_BYTES: u64 = 4 << 20;

/// Writes `events` (sorted with `sort_for_segment`) as a segment file, durably:
/// temporary file, fsync, rename. Returns the header and the file's size.
pub fn write_segment<E: std::borrow::Borrow<Event>>(
    path: &Path,
    site: &str,
    day: &str,
    events: &[E],
) -> Result<(SegmentHeader, u64), StoreError> {
    let mut header = SegmentHeader {
        site: site.to_string(),
        day: day.to_string(),
        events: events.len() as u64,
        visitors: 0,
        min_ts: events.iter().map(|e| e.borrow().ts).min().unwrap_or(0),
        max_ts: events.iter().map(|e| e.borrow().ts).max().unwrap_or(0),
        buckets: Vec::new(),
    };
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let bucket = bucket_of(visitor_key(events[start].borrow()));
        let end =
            start + events[start..].iter().take_while(|e| bucket_of(visitor_key((*e).borrow())) == bucket).count();
        let rows = &events[start..end];
        let (columns, visitors) = encode::encode_columns(rows);
        header.visitors += visitors;
        let mut infos = Vec::with_capacity(columns.len());
        for (index, column) in columns.iter().enumerate() {
            let bytes = compress(column).map_err(io_error(path))?;
            infos.push(ColumnInfo {
                name: column_name(index),
                offset: 0,
                bytes: bytes.len() as u64,
                raw_bytes: column.len() as u64,
                crc32c: crc32c::crc32c(&bytes),
            });
            blobs.push(bytes);
        }
        let min_ts = rows.iter().map(|e| e.borrow().ts).min().unwrap_or(0);
        header.buckets.push(BucketInfo { bucket, events: rows.len() as u64, visitors, min_ts, columns: infos });
        start = end;
    }
    // Column offsets depend on the header's length, which depends on the offsets'
    // digits: reserve room, lay out, and grow the reservation until the header fits.
    let mut reserved = 1024 + 200 * blobs.len();
    let header_json = loop {
        let mut offset = (SEGMENT_MAGIC.len() + 2 + 4 + reserved + 4) as u64;
        for info in header.buckets.iter_mut().flat_map(|bucket| bucket.columns.iter_mut()) {
            info.offset = offset;
            offset += info.bytes;
        }
        let json = serde_json::to_vec(&header).expect("a header always serializes");
        if json.len() <= reserved {
            let mut padded = json;
            padded.resize(reserved, b' ');
            break padded;
        }
        reserved *= 2;
    };
    // Written piece by piece: no second copy of the whole file in memory.
    let temporary = path.with_extension("seg.tmp");
    let file = std::fs::File::create(&temporary).map_err(io_error(&temporary))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut size = 0u64;
    let prefix = (header_json.len() as u32).to_le_bytes();
    let checksum = crc32c::crc32c(&header_json).to_le_bytes();
    let pieces = [&SEGMENT_MAGIC[..], &SEGMENT_FORMAT_VERSION.to_le_bytes(), &prefix, &header_json, &checksum];
    let mut unsynced = 0u64;
    for piece in pieces.into_iter().chain(blobs.iter().map(Vec::as_slice)) {
        out.write_all(piece).map_err(io_error(&temporary))?;
        size += piece.len() as u64;
        unsynced += piece.len() as u64;
        if unsynced >= SYNC_EVERY_BYTES {
            // Flushing as we go keeps each journal commit small, so the log's own fsyncs
            // (a server acknowledging events meanwhile) never wait behind a whole segment.
            out.flush().and_then(|()| out.get_ref().sync_data()).map_err(io_error(&temporary))?;
            unsynced = 0;
        }
    }
    let file = out.into_inner().map_err(|error| io_error(&temporary)(error.into_error()))?;
    file.sync_all().map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io_error(path))?;
    Ok((header, size))
}

thread_local! {
    /// One zstd context per thread: creating one per column cost more than compressing.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        slot.as_mut().expect("set above").compress(bytes)
    })
}

pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptSegment { path: path.to_path_buf(), reason: reason.into() }
}

/// Reads and checks a segment's header.
pub fn read_header(path: &Path, file: &[u8]) -> Result<SegmentHeader, StoreError> {
    let prefix = SEGMENT_MAGIC.len() + 2 + 4;
    if file.len() < prefix || &file[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return Err(corrupt(path, "not an upshot segment (bad magic)"));
    }
    let version = u16::from_le_bytes([file[8], file[9]]);
    if !SEGMENT_FORMAT_VERSIONS_READ.contains(&version) {
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
    let stored = u32::from_le_bytes(file[prefix + length..prefix + length + 4].try_into().expect("4 bytes"));
    if crc32c::crc32c(json) != stored {
        return Err(corrupt(path, "header checksum mismatch"));
    }
    let header: SegmentHeader =
        serde_json::from_slice(json).map_err(|error| corrupt(path, format!("header unreadable: {error}")))?;
    let columns = if version >= TRAFFIC_FORMAT_VERSION { COLUMN_COUNT } else { COLUMN_COUNT_WITHOUT_TRAFFIC };
    if header.buckets.iter().any(|bucket| bucket.columns.len() != columns) {
        return Err(corrupt(path, format!("a bucket without its {columns} columns")));
    }
    Ok(header)
}

/// An open segment file with its checked header; columns are read (only the byte
/// ranges asked for), checked and decompressed as a scan asks for them.
pub struct SegmentFile {
    pub path: PathBuf,
    pub header: SegmentHeader,
    file: std::fs::File,
}

impl SegmentFile {
    pub fn open(path: &Path) -> Result<SegmentFile, StoreError> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        let mut prefix = [0u8; 14];
        file.read_exact_at(&mut prefix, 0).map_err(|_| corrupt(path, "not an upshot segment (too short)"))?;
        let length = u32::from_le_bytes(prefix[10..14].try_into().expect("4 bytes")) as usize;
        let mut head = vec![0u8; 14 + length.min(HEADER_BYTES_MAX) + 4];
        file.read_exact_at(&mut head, 0).map_err(|_| corrupt(path, "header cut short"))?;
        let header = read_header(path, &head)?;
        Ok(SegmentFile { path: path.to_path_buf(), header, file })
    }

    /// The given columns of one bucket, checked and decompressed; `None` when the
    /// bucket is empty in this segment.
    pub fn bucket(&self, bucket: u32, columns: ColumnSet) -> Result<Option<BucketColumns>, StoreError> {
        use std::os::unix::fs::FileExt;
        let Some(info) = self.header.buckets.iter().find(|info| info.bucket == bucket) else {
            return Ok(None);
        };
        let fetch = |offset: u64, bytes: u64| -> Result<Vec<u8>, String> {
            let mut buffer = vec![0u8; bytes as usize];
            self.file.read_exact_at(&mut buffer, offset).map_err(|error| format!("read failed: {error}"))?;
            Ok(buffer)
        };
        BucketColumns::load(&self.path, &fetch, info, columns).map(Some)
    }
}

/// Reads a whole segment, checking every checksum; events come by bucket, then
/// visitor, ts, event_id.
pub fn read_segment(path: &Path) -> Result<(SegmentHeader, Vec<Event>), StoreError> {
    let file = SegmentFile::open(path)?;
    let mut events = Vec::with_capacity(file.header.events.min(1 << 24) as usize);
    for info in &file.header.buckets {
        let bucket = file.bucket(info.bucket, ColumnSet::All)?.expect("the header lists this bucket");
        bucket.decode_events(&mut events).map_err(|reason| corrupt(path, reason.to_string()))?;
    }
    if events.len() as u64 != file.header.events {
        return Err(corrupt(path, format!("{} events decoded, header says {}", events.len(), file.header.events)));
    }
    Ok((file.header, events))
}

/// Encodes a batch of events, in any order, as one uncompressed block of the
/// segment columns: the log's record payload, which sealing decodes without parsing JSON.
pub fn encode_block<E: std::borrow::Borrow<Event>>(events: &[E]) -> Vec<u8> {
    let (columns, visitors) = encode::encode_columns(events);
    let min_ts = events.iter().map(|event| event.borrow().ts).min().unwrap_or(0);
    let mut out = Vec::with_capacity(columns.iter().map(Vec::len).sum::<usize>() + 64);
    encode::put_varint(&mut out, events.len() as u64);
    encode::put_varint(&mut out, visitors);
    encode::put_varint(&mut out, encode::zigzag(min_ts));
    for column in &columns {
        encode::put_varint(&mut out, column.len() as u64);
        out.extend_from_slice(column);
    }
    out
}

/// Decodes a block written by `encode_block`, appending its events; `with_traffic` is
/// false for blocks logged before the traffic column (one column fewer).
pub fn decode_block(bytes: &[u8], with_traffic: bool, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let columns = if with_traffic { COLUMN_COUNT } else { COLUMN_COUNT_WITHOUT_TRAFFIC };
    let bucket = BucketColumns::from_block(bytes, columns)?;
    bucket.decode_events(out)
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
        let context = ParseContext { currency: "USD".into() };
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
            r#"{"event_id":"e13","type":"page_view","ts":12,"visitor_id":"a","device":"tablet","referrer":"","utm_source":"s","utm_medium":"m","utm_campaign":"c"}"#,
        ]
        .iter()
        .map(|line| parse_event_line(line, &context).expect("valid"))
        .enumerate()
        .map(|(index, event)| {
            // Every other event came with the public key: the role round-trips too.
            let sent_with = if index % 2 == 0 { upshot_model::KeyRole::Public } else { upshot_model::KeyRole::Secret };
            Event { sent_with, ..event }
        })
        .collect()
    }

    /// The file as formats 4 and 5 laid it out: its header lists no traffic column (the
    /// column's bytes stay in the file, unreferenced; the header keeps its padded length).
    fn without_traffic_column(file: &[u8]) -> Vec<u8> {
        let prefix = SEGMENT_MAGIC.len() + 2 + 4;
        let length = u32::from_le_bytes(file[10..14].try_into().expect("4 bytes")) as usize;
        let mut header: serde_json::Value = serde_json::from_slice(&file[prefix..prefix + length]).expect("a header");
        for bucket in header["buckets"].as_array_mut().expect("buckets") {
            let columns = bucket["columns"].as_array_mut().expect("columns");
            assert_eq!(columns.pop().expect("a traffic column")["name"], "traffic");
        }
        let mut json = serde_json::to_vec(&header).expect("serializes");
        assert!(json.len() <= length);
        json.resize(length, b' ');
        let mut out = file.to_vec();
        out[prefix..prefix + length].copy_from_slice(&json);
        out[prefix + length..prefix + length + 4].copy_from_slice(&crc32c::crc32c(&json).to_le_bytes());
        out
    }

    #[test]
    fn a_format_5_segment_reads_without_traffic_fields() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.seg");
        let mut written = events();
        sort_for_segment(&mut written);
        write_segment(&path, "shop", "1970-01-01", &written).expect("written");
        let mut bytes = without_traffic_column(&std::fs::read(&path).expect("read"));
        bytes[8..10].copy_from_slice(&5u16.to_le_bytes());
        std::fs::write(&path, &bytes).expect("write");
        let untrafficked: Vec<Event> =
            written.iter().map(|event| Event { traffic: upshot_model::Traffic::default(), ..event.clone() }).collect();
        assert!(written.iter().any(|event| !event.traffic.is_empty()), "the test has traffic fields to lose");
        assert_eq!(read_segment(&path).expect("format 5 reads").1, untrafficked);
        // A format-6 header that lost its traffic column is damage, not an old file.
        bytes[8..10].copy_from_slice(&6u16.to_le_bytes());
        std::fs::write(&path, &bytes).expect("write");
        let error = read_segment(&path).expect_err("refused").to_string();
        assert!(error.contains("without its 18 columns"), "{error}");
    }

    #[test]
    fn a_format_4_segment_reads_with_every_event_sent_with_the_secret_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.seg");
        let mut written: Vec<Event> =
            events().into_iter().map(|event| Event { sent_with: upshot_model::KeyRole::Secret, ..event }).collect();
        sort_for_segment(&mut written);
        write_segment(&path, "shop", "1970-01-01", &written).expect("written");
        let mut bytes = without_traffic_column(&std::fs::read(&path).expect("read"));
        bytes[8..10].copy_from_slice(&4u16.to_le_bytes());
        std::fs::write(&path, &bytes).expect("write");
        let untrafficked: Vec<Event> =
            written.iter().map(|event| Event { traffic: upshot_model::Traffic::default(), ..event.clone() }).collect();
        assert_eq!(read_segment(&path).expect("format 4 reads").1, untrafficked);
        bytes[8..10].copy_from_slice(&3u16.to_le_bytes());
        std::fs::write(&path, &bytes).expect("write");
        let error = read_segment(&path).expect_err("format 3 is refused").to_string();
        assert!(error.contains("format version 3"), "{error}");
    }

    #[test]
    fn every_field_of_every_type_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.seg");
        let mut written = events();
        sort_for_segment(&mut written);
        let (header, _) = write_segment(&path, "shop", "1970-01-01", &written).expect("written");
        assert_eq!((header.events, header.visitors), (13, 3));
        let (read_header, read) = read_segment(&path).expect("read back");
        assert_eq!(read_header, header);
        assert_eq!(read, written);
        assert_eq!(read[0].visitor_id, None, "refunds without visitor sort first");
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
            .buckets
            .iter()
            .flat_map(|bucket| &bucket.columns)
            .find(|c| c.name == "body.order" && c.bytes > 9)
            .expect("an order column");
        bytes[target.offset as usize + 1] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let error = read_segment(&path).expect_err("corruption detected").to_string();
        assert!(error.contains("body.order") && error.contains("checksum"), "{error}");
        bytes[20] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        let error = read_segment(&path).expect_err("corruption detected").to_string();
        assert!(error.contains("header"), "{error}");
    }
}
