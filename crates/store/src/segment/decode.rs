//! Decoding a bucket: checked, decompressed columns, read row by row without
//! allocating (strings stay indices into the bucket's dictionary), and decoded into
//! `Event`s on top of that for exports, compaction and verification.

use std::path::Path;

use upshot_model::{
    Action, Body, Device, Event, JourneyAction, KeyRole, Kind, Money, OrderLine, PlacementAttributes, Traffic,
};

use super::{
    corrupt, BucketInfo, BODIES, COLUMN_COUNT, COMMON, EVENT_IDS, ORDER_TYPE, PUBLIC_KEY_FLAG, REFUND_TYPE, STRINGS,
    TRAFFIC, TS, TYPES, VISITORS,
};
use crate::StoreError;

thread_local! {
    /// One zstd context per thread: creating one per column cost more than decoding.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn decompress(bytes: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        slot.as_mut().expect("set above").decompress(bytes, capacity)
    })
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Which columns a scan needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnSet {
    All,
    /// Only the order and refund columns (for `for_each_order_fact`).
    OrdersAndRefunds,
    /// Only the event ids (for `for_each_event_id`).
    EventIds,
}

impl ColumnSet {
    fn wants(self, column: usize) -> bool {
        match self {
            ColumnSet::All => true,
            ColumnSet::EventIds => column == EVENT_IDS || column == TYPES || column == STRINGS,
            ColumnSet::OrdersAndRefunds => {
                column == TYPES || column == BODIES + ORDER_TYPE as usize || column == BODIES + REFUND_TYPE as usize
            }
        }
    }
}

/// One bucket's columns, checked and decompressed.
pub struct BucketColumns {
    columns: Vec<Vec<u8>>,
    names: Vec<String>,
    /// (start, end) of each dictionary string in the strings column.
    dictionary: Vec<(usize, usize)>,
    set: ColumnSet,
    /// Whether the bucket was written with the traffic column (format 6 on): decided by
    /// its layout, never guessed from a column's bytes.
    has_traffic: bool,
    pub info: BucketInfo,
}

impl BucketColumns {
    /// Loads a bucket's wanted columns; `fetch(offset, bytes)` reads a byte range of the file.
    pub(super) fn load(
        path: &Path,
        fetch: &dyn Fn(u64, u64) -> Result<Vec<u8>, String>,
        info: &BucketInfo,
        set: ColumnSet,
    ) -> Result<BucketColumns, StoreError> {
        let mut columns = Vec::with_capacity(COLUMN_COUNT);
        for (index, column) in info.columns.iter().enumerate() {
            if !set.wants(index) {
                columns.push(Vec::new());
                continue;
            }
            let name = format!("bucket {} column {}", info.bucket, column.name);
            let fetched =
                fetch(column.offset, column.bytes).map_err(|reason| corrupt(path, format!("{name}: {reason}")))?;
            let bytes = fetched.as_slice();
            if crc32c::crc32c(bytes) != column.crc32c {
                return Err(corrupt(path, format!("{name}: checksum mismatch")));
            }
            let raw = decompress(bytes, column.raw_bytes as usize)
                .map_err(|error| corrupt(path, format!("{name} does not decompress: {error}")))?;
            columns.push(raw);
        }
        // A bucket written before the traffic column reads as having no traffic fields.
        let has_traffic = info.columns.len() == COLUMN_COUNT;
        columns.resize_with(COLUMN_COUNT, Vec::new);
        let dictionary = dictionary_of(&columns[STRINGS])
            .map_err(|reason| corrupt(path, format!("bucket {} column strings: {reason}", info.bucket)))?;
        let mut names: Vec<String> = info.columns.iter().map(|column| column.name.clone()).collect();
        names.resize_with(COLUMN_COUNT, || super::column_name(TRAFFIC));
        Ok(BucketColumns { columns, names, dictionary, set, has_traffic, info: info.clone() })
    }

    /// A block of uncompressed columns as `encode_block` writes them.
    pub(super) fn from_block(bytes: &[u8], column_count: usize) -> Result<BucketColumns, DecodeError> {
        let mut cursor = Cursor { bytes, position: 0, name: "block" };
        let events = cursor.varint()?;
        let visitors = cursor.varint()?;
        let min_ts = cursor.number()?;
        let mut columns = Vec::with_capacity(COLUMN_COUNT);
        let mut infos = Vec::with_capacity(COLUMN_COUNT);
        for index in 0..column_count {
            let column = cursor.bytes_slice()?.to_vec();
            infos.push(super::ColumnInfo {
                name: super::column_name(index),
                offset: 0,
                bytes: column.len() as u64,
                raw_bytes: column.len() as u64,
                crc32c: 0,
            });
            columns.push(column);
        }
        columns.resize_with(COLUMN_COUNT, Vec::new);
        let info = BucketInfo { bucket: 0, events, visitors, min_ts, columns: infos };
        let dictionary = dictionary_of(&columns[STRINGS])
            .map_err(|_| DecodeError::InvalidUtf8 { column: "block strings".into() })?;
        let names = (0..COLUMN_COUNT).map(super::column_name).collect();
        let has_traffic = column_count == COLUMN_COUNT;
        Ok(BucketColumns { columns, names, dictionary, set: ColumnSet::All, has_traffic, info })
    }

    /// Calls `order(order_id, ts, event_id, role)` for every order row and
    /// `refund(order_id, amount, cancel, role)` for every refund row, reading only their
    /// two columns and the row types (load with `ColumnSet::OrdersAndRefunds` or `All`).
    pub fn for_each_order_fact(
        &self,
        mut order: impl FnMut(&[u8], i64, &[u8], KeyRole),
        mut refund: impl FnMut(&[u8], Option<i64>, bool, KeyRole),
    ) -> Result<(), DecodeError> {
        // The roles of the bucket's orders and of its refunds, in row order.
        let (mut order_roles, mut refund_roles) = (Vec::new(), Vec::new());
        let mut types = Cursor { bytes: &self.columns[TYPES], position: 0, name: "types" };
        while types.position < types.bytes.len() {
            let byte = types.byte()?;
            match byte & !PUBLIC_KEY_FLAG {
                ORDER_TYPE => order_roles.push(role_of(byte)),
                REFUND_TYPE => refund_roles.push(role_of(byte)),
                _ => {}
            }
        }
        let mut order_roles = order_roles.into_iter();
        let mut refund_roles = refund_roles.into_iter();
        let column = BODIES + ORDER_TYPE as usize;
        let mut cursor = Cursor { bytes: &self.columns[column], position: 0, name: "body.order" };
        while cursor.position < cursor.bytes.len() {
            let ts = cursor.number()?;
            let event_id = cursor.bytes_slice()?;
            let order_id = cursor.bytes_slice()?;
            let role = order_roles.next().ok_or(DecodeError::RowCountMismatch { column: "body.order" })?;
            order(order_id, ts, event_id, role);
            cursor.varint()?; // order id in the dictionary
            cursor.varint()?; // revenue
            for _ in 0..2 {
                if cursor.varint()? != 0 {
                    cursor.varint()?; // shipping, tax
                }
            }
            for _ in 0..cursor.varint()? {
                cursor.varint()?; // item, quantity, price
                cursor.varint()?;
                cursor.varint()?;
            }
        }
        let column = BODIES + REFUND_TYPE as usize;
        let mut cursor = Cursor { bytes: &self.columns[column], position: 0, name: "body.refund" };
        while cursor.position < cursor.bytes.len() {
            cursor.varint()?; // ts
            cursor.bytes_slice()?; // event id
            let order_id = cursor.bytes_slice()?;
            cursor.varint()?; // order id in the dictionary
            let amount = match cursor.varint()? {
                0 => None,
                _ => Some(cursor.number()?),
            };
            let role = refund_roles.next().ok_or(DecodeError::RowCountMismatch { column: "body.refund" })?;
            refund(order_id, amount, cursor.byte()? != 0, role);
        }
        Ok(())
    }

    /// Calls `visit` with every row's event id and the key it was sent with, in row order.
    pub fn for_each_event_id(&self, mut visit: impl FnMut(&[u8], KeyRole)) -> Result<(), DecodeError> {
        let mut cursor = Cursor { bytes: &self.columns[EVENT_IDS], position: 0, name: "event_ids" };
        let mut types = Cursor { bytes: &self.columns[TYPES], position: 0, name: "types" };
        while cursor.position < cursor.bytes.len() {
            let event_id = cursor.bytes_slice()?;
            visit(event_id, role_of(types.byte()?));
        }
        Ok(())
    }

    pub fn dictionary_len(&self) -> usize {
        self.dictionary.len()
    }

    /// A dictionary string (checked as UTF-8 when the bucket was loaded).
    pub fn string(&self, index: u32) -> &str {
        let (start, end) = self.dictionary[index as usize];
        std::str::from_utf8(&self.columns[STRINGS][start..end]).expect("checked when loaded")
    }

    pub fn reader(&self) -> RowReader<'_> {
        let cursors =
            self.columns.iter().zip(&self.names).map(|(bytes, name)| Cursor { bytes, position: 0, name }).collect();
        RowReader { bucket: self, cursors, visitors_left: self.info.visitors, rows_left: 0, ts: self.info.min_ts }
    }

    /// Appends every row as an `Event`.
    pub fn decode_events(&self, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let mut reader = self.reader();
        let (mut items, mut lines) = (Vec::new(), Vec::new());
        while let Some((visitor, rows)) = reader.next_visitor()? {
            for _ in 0..rows {
                let row = reader.next_row(&mut items, &mut lines)?;
                out.push(self.to_event(visitor, &row, &items, &lines));
            }
        }
        Ok(())
    }

    fn to_event(&self, visitor: &str, row: &Row, items: &[u32], lines: &[RowLine]) -> Event {
        let text = |index: u32| self.string(index).to_string();
        let optional = |index: Option<u32>| index.map(text);
        let money = |value: Option<i64>| value.map(Money);
        let attributes = |a: &RowAttributes| PlacementAttributes {
            impression_id: a.impression_id.map(|id| String::from_utf8_lossy(id).into_owned()),
            campaign: optional(a.campaign),
            sequence: optional(a.sequence),
            experience: optional(a.experience),
            label: optional(a.label),
        };
        let body = match row.body {
            RowBody::PageView => Body::PageView,
            RowBody::Impression { placement, kind, attributes: a } => Body::Impression {
                placement: text(placement),
                kind,
                items: items.iter().map(|&item| text(item)).collect(),
                attributes: attributes(&a),
            },
            RowBody::Interaction { placement, kind, action, item, attributes: a } => Body::Interaction {
                placement: text(placement),
                kind,
                action,
                item: optional(item),
                attributes: attributes(&a),
            },
            RowBody::ProductView { item } => Body::ProductView { item: text(item) },
            RowBody::AddToCart { item, quantity, price } => {
                Body::AddToCart { item: text(item), quantity, price: money(price) }
            }
            RowBody::Order { order_id, revenue, shipping, tax } => Body::Order {
                order_id: text(order_id),
                revenue: Money(revenue),
                shipping: money(shipping),
                tax: money(tax),
                lines: lines
                    .iter()
                    .map(|l| OrderLine { item: text(l.item), quantity: l.quantity, price: Money(l.price) })
                    .collect(),
            },
            RowBody::Refund { order_id, amount, cancel } => {
                Body::Refund { order_id: text(order_id), amount: money(amount), cancel }
            }
            RowBody::Assignment { experiment, variant } => {
                Body::Assignment { experiment: text(experiment), variant: text(variant) }
            }
            RowBody::Goal { goal, value } => Body::Goal { goal: text(goal), value: money(value) },
            RowBody::Journey { journey, action, channel, run_id } => {
                Body::Journey { journey: text(journey), action, channel: optional(channel), run_id: optional(run_id) }
            }
            RowBody::SequenceStart { sequence, campaign } => {
                Body::SequenceStart { sequence: text(sequence), campaign: optional(campaign) }
            }
        };
        Event {
            // Ids were valid UTF-8 when taken and are checksummed since.
            event_id: String::from_utf8_lossy(row.event_id).into_owned(),
            ts: row.ts,
            visitor_id: (!visitor.is_empty()).then(|| visitor.to_string()),
            profile_id: optional(row.profile),
            page_type: optional(row.page_type),
            url: optional(row.url),
            sent_at: row.sent_at,
            traffic: Traffic {
                device: row.traffic.device,
                referrer: optional(row.traffic.referrer),
                utm_source: optional(row.traffic.utm_source),
                utm_medium: optional(row.traffic.utm_medium),
                utm_campaign: optional(row.traffic.utm_campaign),
            },
            body,
            sent_with: row.sent_with,
        }
    }
}

fn role_of(type_byte: u8) -> KeyRole {
    if type_byte & PUBLIC_KEY_FLAG != 0 {
        KeyRole::Public
    } else {
        KeyRole::Secret
    }
}

/// The (start, end) of each string of a strings column, checked as UTF-8.
fn dictionary_of(strings: &[u8]) -> Result<Vec<(usize, usize)>, DecodeError> {
    let mut dictionary = Vec::new();
    let mut cursor = Cursor { bytes: strings, position: 0, name: "strings" };
    while cursor.position < cursor.bytes.len() {
        let text = cursor.bytes_slice()?;
        if std::str::from_utf8(text).is_err() {
            return Err(DecodeError::InvalidUtf8 { column: "strings".into() });
        }
        let end = cursor.position;
        dictionary.push((end - text.len(), end));
    }
    Ok(dictionary)
}

/// Why a bucket's columns could not be read: they passed their checksums, so this is
/// a bug or a file written by something else; the scan names it and skips the bucket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("column {column} ends early")]
    EndsEarly { column: String },
    #[error("column {column}: varint too long")]
    VarintTooLong { column: String },
    #[error("column {column}: invalid UTF-8")]
    InvalidUtf8 { column: String },
    #[error("column {column}: string index {index} out of the dictionary")]
    IndexOutOfDictionary { column: String, index: u64 },
    #[error("unknown {what} {code}")]
    UnknownCode { what: &'static str, code: u64 },
    #[error("{what} out of range")]
    OutOfRange { what: &'static str },
    #[error("column {column} holds more rows than the types column says")]
    RowCountMismatch { column: &'static str },
    #[error("{0}")]
    Misuse(&'static str),
}

/// Sequential reads from a decompressed column.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
    name: &'a str,
}

impl<'a> Cursor<'a> {
    #[cold]
    fn ends_early(&self) -> DecodeError {
        DecodeError::EndsEarly { column: self.name.to_string() }
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Most values fit one byte: take that path without the loop.
        if let Some(&byte) = self.bytes.get(self.position) {
            if byte < 0x80 {
                self.position += 1;
                return Ok(u64::from(byte));
            }
        }
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.position).ok_or_else(|| self.ends_early())?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong { column: self.name.to_string() })
    }

    #[inline(always)]
    fn number(&mut self) -> Result<i64, DecodeError> {
        self.varint().map(unzigzag)
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.bytes.get(self.position).ok_or_else(|| self.ends_early())?;
        self.position += 1;
        Ok(byte)
    }

    #[inline(always)]
    fn bytes_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let length = self.varint()? as usize;
        let end = self.position.checked_add(length).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| self.ends_early())?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn text(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = self.bytes_slice()?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { column: self.name.to_string() })
    }
}

/// Optional placement attributes as dictionary indices.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowAttributes<'a> {
    /// Stored inline (unique per impression), as bytes of a valid UTF-8 id.
    pub impression_id: Option<&'a [u8]>,
    pub campaign: Option<u32>,
    pub sequence: Option<u32>,
    pub experience: Option<u32>,
    pub label: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
pub struct RowLine {
    pub item: u32,
    pub quantity: u32,
    pub price: i64,
}

/// A row's type-specific fields; strings are dictionary indices. Impression items and
/// order lines go to the caller's buffers.
#[derive(Clone, Copy, Debug)]
pub enum RowBody<'a> {
    PageView,
    Impression { placement: u32, kind: Kind, attributes: RowAttributes<'a> },
    Interaction { placement: u32, kind: Kind, action: Action, item: Option<u32>, attributes: RowAttributes<'a> },
    ProductView { item: u32 },
    AddToCart { item: u32, quantity: u32, price: Option<i64> },
    Order { order_id: u32, revenue: i64, shipping: Option<i64>, tax: Option<i64> },
    Refund { order_id: u32, amount: Option<i64>, cancel: bool },
    Assignment { experiment: u32, variant: u32 },
    Goal { goal: u32, value: Option<i64> },
    Journey { journey: u32, action: JourneyAction, channel: Option<u32>, run_id: Option<u32> },
    SequenceStart { sequence: u32, campaign: Option<u32> },
}

/// A row's traffic fields (SPEC section 9.1); strings are dictionary indices.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowTraffic {
    pub device: Option<Device>,
    pub referrer: Option<u32>,
    pub utm_source: Option<u32>,
    pub utm_medium: Option<u32>,
    pub utm_campaign: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub ts: i64,
    /// Bytes of a valid UTF-8 id: not re-checked per row (checksums guard the column).
    pub event_id: &'a [u8],
    pub type_code: u8,
    pub profile: Option<u32>,
    pub page_type: Option<u32>,
    pub url: Option<u32>,
    pub sent_at: Option<i64>,
    pub traffic: RowTraffic,
    pub body: RowBody<'a>,
    pub sent_with: KeyRole,
}

/// Reads a bucket visitor by visitor, row by row.
pub struct RowReader<'a> {
    bucket: &'a BucketColumns,
    cursors: Vec<Cursor<'a>>,
    visitors_left: u64,
    rows_left: u64,
    ts: i64,
}

impl<'a> RowReader<'a> {
    /// The next visitor and how many rows follow (`""` for refunds without visitor).
    pub fn next_visitor(&mut self) -> Result<Option<(&'a str, u64)>, DecodeError> {
        if self.rows_left > 0 {
            return Err(DecodeError::Misuse("next_visitor called before the previous visitor's rows were read"));
        }
        if self.visitors_left == 0 {
            return Ok(None);
        }
        self.visitors_left -= 1;
        let visitor = self.cursors[VISITORS].text()?;
        self.rows_left = self.cursors[VISITORS].varint()?;
        self.ts = self.bucket.info.min_ts;
        Ok(Some((visitor, self.rows_left)))
    }

    #[inline(always)]
    fn index(&mut self, column: usize) -> Result<u32, DecodeError> {
        let index = self.cursors[column].varint()?;
        if index as usize >= self.bucket.dictionary.len() {
            return Err(DecodeError::IndexOutOfDictionary { column: self.bucket.names[column].clone(), index });
        }
        Ok(index as u32)
    }

    #[inline(always)]
    fn optional_index(&mut self, column: usize) -> Result<Option<u32>, DecodeError> {
        match self.cursors[column].varint()? {
            0 => Ok(None),
            _ => self.index(column).map(Some),
        }
    }

    #[inline(always)]
    fn optional_number(&mut self, column: usize) -> Result<Option<i64>, DecodeError> {
        match self.cursors[column].varint()? {
            0 => Ok(None),
            _ => self.cursors[column].number().map(Some),
        }
    }

    fn skip_order_fact_prefix(&mut self, column: usize) -> Result<(), DecodeError> {
        self.cursors[column].varint()?;
        self.cursors[column].bytes_slice()?;
        self.cursors[column].bytes_slice()?;
        Ok(())
    }

    fn kind(&mut self, column: usize) -> Result<Kind, DecodeError> {
        let byte = self.cursors[column].byte()? as usize;
        Kind::ALL.get(byte).copied().ok_or(DecodeError::UnknownCode { what: "kind", code: byte as u64 })
    }

    fn attributes(&mut self, column: usize) -> Result<RowAttributes<'a>, DecodeError> {
        let impression_id = match self.cursors[column].varint()? {
            0 => None,
            _ => Some(self.cursors[column].bytes_slice()?),
        };
        Ok(RowAttributes {
            impression_id,
            campaign: self.optional_index(column)?,
            sequence: self.optional_index(column)?,
            experience: self.optional_index(column)?,
            label: self.optional_index(column)?,
        })
    }

    /// The next row of the current visitor; `items` and `lines` receive an
    /// impression's items and an order's lines.
    pub fn next_row(&mut self, items: &mut Vec<u32>, lines: &mut Vec<RowLine>) -> Result<Row<'a>, DecodeError> {
        if self.rows_left == 0 {
            return Err(DecodeError::Misuse("next_row called past the visitor's rows"));
        }
        self.rows_left -= 1;
        self.ts += self.cursors[TS].number()?;
        let event_id = self.cursors[EVENT_IDS].bytes_slice()?;
        let type_byte = self.cursors[TYPES].byte()?;
        let type_code = type_byte & !PUBLIC_KEY_FLAG;
        items.clear();
        lines.clear();
        if self.bucket.set != ColumnSet::All {
            return Err(DecodeError::Misuse("rows need every column (ColumnSet::All)"));
        }
        let profile = self.optional_index(COMMON)?;
        let page_type = self.optional_index(COMMON)?;
        let url = self.optional_index(COMMON)?;
        let sent_at = self.optional_number(COMMON)?.map(|offset| self.ts + offset);
        let traffic = self.traffic()?;
        let body = self.body(type_code, items, lines)?;
        Ok(Row {
            ts: self.ts,
            event_id,
            type_code,
            profile,
            page_type,
            url,
            sent_at,
            traffic,
            body,
            sent_with: role_of(type_byte),
        })
    }

    /// The row's traffic fields; none in a bucket written before the traffic column.
    fn traffic(&mut self) -> Result<RowTraffic, DecodeError> {
        if !self.bucket.has_traffic {
            return Ok(RowTraffic::default());
        }
        let flags = self.cursors[TRAFFIC].byte()?;
        if flags & !super::TRAFFIC_FLAGS_KNOWN != 0 {
            return Err(DecodeError::UnknownCode { what: "traffic flags", code: flags.into() });
        }
        let device = match flags & super::TRAFFIC_DEVICE_MASK {
            0 => None,
            code => Some(
                *Device::ALL
                    .get(usize::from(code) - 1)
                    .ok_or(DecodeError::UnknownCode { what: "device", code: code.into() })?,
            ),
        };
        let mut text = |bit: u8| -> Result<Option<u32>, DecodeError> {
            if flags & bit == 0 {
                Ok(None)
            } else {
                self.index(TRAFFIC).map(Some)
            }
        };
        Ok(RowTraffic {
            device,
            referrer: text(super::TRAFFIC_REFERRER)?,
            utm_source: text(super::TRAFFIC_UTM_SOURCE)?,
            utm_medium: text(super::TRAFFIC_UTM_MEDIUM)?,
            utm_campaign: text(super::TRAFFIC_UTM_CAMPAIGN)?,
        })
    }

    fn body(
        &mut self,
        type_code: u8,
        items: &mut Vec<u32>,
        lines: &mut Vec<RowLine>,
    ) -> Result<RowBody<'a>, DecodeError> {
        let c = BODIES + type_code as usize;
        Ok(match type_code {
            0 => RowBody::PageView,
            1 => {
                let placement = self.index(c)?;
                let kind = self.kind(c)?;
                let count = self.cursors[c].varint()?;
                for _ in 0..count {
                    items.push(self.index(c)?);
                }
                RowBody::Impression { placement, kind, attributes: self.attributes(c)? }
            }
            2 => {
                let placement = self.index(c)?;
                let kind = self.kind(c)?;
                let code = self.cursors[c].byte()?;
                let action = *Action::ALL
                    .get(code as usize)
                    .ok_or(DecodeError::UnknownCode { what: "action", code: code.into() })?;
                let item = self.optional_index(c)?;
                RowBody::Interaction { placement, kind, action, item, attributes: self.attributes(c)? }
            }
            3 => RowBody::ProductView { item: self.index(c)? },
            4 => RowBody::AddToCart {
                item: self.index(c)?,
                quantity: u32::try_from(self.cursors[c].varint()?)
                    .map_err(|_| DecodeError::OutOfRange { what: "quantity" })?,
                price: self.optional_number(c)?,
            },
            5 => {
                self.skip_order_fact_prefix(c)?;
                let order_id = self.index(c)?;
                let revenue = self.cursors[c].number()?;
                let shipping = self.optional_number(c)?;
                let tax = self.optional_number(c)?;
                let count = self.cursors[c].varint()?;
                for _ in 0..count {
                    let item = self.index(c)?;
                    let quantity = u32::try_from(self.cursors[c].varint()?)
                        .map_err(|_| DecodeError::OutOfRange { what: "quantity" })?;
                    lines.push(RowLine { item, quantity, price: self.cursors[c].number()? });
                }
                RowBody::Order { order_id, revenue, shipping, tax }
            }
            6 => RowBody::Refund {
                order_id: {
                    self.skip_order_fact_prefix(c)?;
                    self.index(c)?
                },
                amount: self.optional_number(c)?,
                cancel: self.cursors[c].byte()? != 0,
            },
            7 => RowBody::Assignment { experiment: self.index(c)?, variant: self.index(c)? },
            8 => RowBody::Goal { goal: self.index(c)?, value: self.optional_number(c)? },
            9 => RowBody::Journey {
                journey: self.index(c)?,
                action: {
                    let code = self.cursors[c].byte()?;
                    *JourneyAction::ALL
                        .get(code as usize)
                        .ok_or(DecodeError::UnknownCode { what: "journey action", code: code.into() })?
                },
                channel: self.optional_index(c)?,
                run_id: self.optional_index(c)?,
            },
            10 => RowBody::SequenceStart { sequence: self.index(c)?, campaign: self.optional_index(c)? },
            other => return Err(DecodeError::UnknownCode { what: "event type", code: other.into() }),
        })
    }
}
