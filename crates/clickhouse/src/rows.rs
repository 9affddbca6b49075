//! Events as rows of the events table and back, in ClickHouse's RowBinary format (the
//! column order of `schema::COLUMNS`).

use upshot_model::{Body, Event, KeyRole};

/// One event's values in the column order of `schema::COLUMNS`.
#[derive(Debug, Default)]
pub struct RowValues<'a> {
    site: &'a str,
    /// Days since 1970-01-01 (ClickHouse `Date`).
    day: u16,
    visitor_id: &'a str,
    ts: i64,
    event_id: &'a str,
    type_name: &'a str,
    profile_id: Option<&'a str>,
    page_type: Option<&'a str>,
    url: Option<&'a str>,
    placement: &'a str,
    kind: &'a str,
    action: &'a str,
    item: Option<&'a str>,
    items: Vec<&'a str>,
    impression_id: Option<&'a str>,
    campaign: Option<&'a str>,
    sequence: Option<&'a str>,
    experience: Option<&'a str>,
    label: Option<&'a str>,
    quantity: u32,
    price: Option<i64>,
    order_id: &'a str,
    revenue: i64,
    shipping: Option<i64>,
    tax: Option<i64>,
    line_items: Vec<&'a str>,
    line_quantities: Vec<u32>,
    line_prices: Vec<i64>,
    amount: Option<i64>,
    cancel: u8,
    experiment: &'a str,
    variant: &'a str,
    goal: &'a str,
    value: Option<i64>,
    journey: &'a str,
    channel: Option<&'a str>,
    run_id: Option<&'a str>,
    sent_at: Option<i64>,
    device: Option<&'a str>,
    referrer: Option<&'a str>,
    utm_source: Option<&'a str>,
    utm_medium: Option<&'a str>,
    utm_campaign: Option<&'a str>,
    /// The channel the event gives a session it lands (SPEC section 9.1), decided here
    /// by the one rule in `upshot_model::traffic` so that the SQL never restates it.
    landing_channel: &'static str,
}

const MILLIS_PER_DAY: i64 = 86_400_000;

impl<'a> RowValues<'a> {
    pub fn of(site: &'a str, event: &'a Event) -> RowValues<'a> {
        let mut row = RowValues {
            site,
            day: u16::try_from(event.ts.div_euclid(MILLIS_PER_DAY).max(0)).unwrap_or(u16::MAX),
            visitor_id: event.visitor_id.as_deref().unwrap_or(""),
            ts: event.ts,
            event_id: &event.event_id,
            type_name: event.body.type_name(),
            profile_id: event.profile_id.as_deref(),
            page_type: event.page_type.as_deref(),
            url: event.url.as_deref(),
            sent_at: event.sent_at,
            device: event.traffic.device.map(upshot_model::Device::as_str),
            referrer: event.traffic.referrer.as_deref(),
            utm_source: event.traffic.utm_source.as_deref(),
            utm_medium: event.traffic.utm_medium.as_deref(),
            utm_campaign: event.traffic.utm_campaign.as_deref(),
            landing_channel: upshot_model::traffic::channel(&event.traffic, event.url.as_deref()).as_str(),
            ..RowValues::default()
        };
        let attributes = |attributes: &'a upshot_model::PlacementAttributes, row: &mut RowValues<'a>| {
            row.impression_id = attributes.impression_id.as_deref();
            row.campaign = attributes.campaign.as_deref();
            row.sequence = attributes.sequence.as_deref();
            row.experience = attributes.experience.as_deref();
            row.label = attributes.label.as_deref();
        };
        match &event.body {
            Body::PageView => {}
            Body::Impression { placement, kind, items, attributes: placed } => {
                (row.placement, row.kind) = (placement, kind.as_str());
                row.items = items.iter().map(String::as_str).collect();
                attributes(placed, &mut row);
            }
            Body::Interaction { placement, kind, action, item, attributes: placed } => {
                (row.placement, row.kind, row.action) = (placement, kind.as_str(), action.as_str());
                row.item = item.as_deref();
                attributes(placed, &mut row);
            }
            Body::ProductView { item } => row.item = Some(item.as_str()),
            Body::AddToCart { item, quantity, price } => {
                (row.item, row.quantity, row.price) = (Some(item.as_str()), *quantity, price.map(|money| money.0));
            }
            Body::Order { order_id, revenue, shipping, tax, lines } => {
                (row.order_id, row.revenue) = (order_id, revenue.0);
                (row.shipping, row.tax) = (shipping.map(|money| money.0), tax.map(|money| money.0));
                row.line_items = lines.iter().map(|line| line.item.as_str()).collect();
                row.line_quantities = lines.iter().map(|line| line.quantity).collect();
                row.line_prices = lines.iter().map(|line| line.price.0).collect();
            }
            Body::Refund { order_id, amount, cancel } => {
                (row.order_id, row.amount, row.cancel) = (order_id, amount.map(|money| money.0), u8::from(*cancel));
            }
            Body::Assignment { experiment, variant } => (row.experiment, row.variant) = (experiment, variant),
            Body::Goal { goal, value } => (row.goal, row.value) = (goal, value.map(|money| money.0)),
            Body::Journey { journey, action, channel, run_id } => {
                (row.journey, row.action) = (journey, action.as_str());
                (row.channel, row.run_id) = (channel.as_deref(), run_id.as_deref());
            }
            Body::SequenceStart { sequence, campaign } => {
                (row.sequence, row.campaign) = (Some(sequence.as_str()), campaign.as_deref());
            }
        }
        row
    }

    /// The row in ClickHouse's RowBinary format (columns in `schema::COLUMNS` order):
    /// strings as a varint length and bytes, integers little-endian, Nullable as a
    /// null byte then the value, arrays as a varint count then the elements.
    pub fn write_row_binary(&self, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, text: &str| {
            varint(out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        };
        let optional_string = |out: &mut Vec<u8>, text: Option<&str>| match text {
            Some(text) => {
                out.push(0);
                string(out, text);
            }
            None => out.push(1),
        };
        let optional_i64 = |out: &mut Vec<u8>, value: Option<i64>| match value {
            Some(value) => {
                out.push(0);
                out.extend_from_slice(&value.to_le_bytes());
            }
            None => out.push(1),
        };
        string(out, self.site);
        out.extend_from_slice(&self.day.to_le_bytes());
        string(out, self.visitor_id);
        out.extend_from_slice(&self.ts.to_le_bytes());
        string(out, self.event_id);
        string(out, self.type_name);
        optional_string(out, self.profile_id);
        optional_string(out, self.page_type);
        optional_string(out, self.url);
        string(out, self.placement);
        string(out, self.kind);
        string(out, self.action);
        optional_string(out, self.item);
        varint(out, self.items.len() as u64);
        self.items.iter().for_each(|item| string(out, item));
        for text in [self.impression_id, self.campaign, self.sequence, self.experience, self.label] {
            optional_string(out, text);
        }
        out.extend_from_slice(&self.quantity.to_le_bytes());
        optional_i64(out, self.price);
        string(out, self.order_id);
        out.extend_from_slice(&self.revenue.to_le_bytes());
        optional_i64(out, self.shipping);
        optional_i64(out, self.tax);
        varint(out, self.line_items.len() as u64);
        self.line_items.iter().for_each(|item| string(out, item));
        varint(out, self.line_quantities.len() as u64);
        self.line_quantities.iter().for_each(|quantity| out.extend_from_slice(&quantity.to_le_bytes()));
        varint(out, self.line_prices.len() as u64);
        self.line_prices.iter().for_each(|price| out.extend_from_slice(&price.to_le_bytes()));
        optional_i64(out, self.amount);
        out.push(self.cancel);
        string(out, self.experiment);
        string(out, self.variant);
        string(out, self.goal);
        optional_i64(out, self.value);
        string(out, self.journey);
        optional_string(out, self.channel);
        optional_string(out, self.run_id);
        optional_i64(out, self.sent_at);
        for text in [self.device, self.referrer, self.utm_source, self.utm_medium, self.utm_campaign] {
            optional_string(out, text);
        }
        string(out, self.landing_channel);
    }
}

/// Appends `bytes` as a RowBinary `String` (its length as a varint, then the bytes).
pub(crate) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Longest string read back from a RowBinary answer.
const STRING_BYTES_MAX: u64 = 16 << 20;

/// Reads RowBinary rows (columns in `schema::COLUMNS` order) back into events. The rows
/// were validated before they were written; the reader still checks what it decodes
/// (enumerations, UTF-8, lengths) and names the column at fault.
/// Why a row of ClickHouse's answer could not be read back as an event.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("column {column}: {source}")]
    Read { column: String, source: std::io::Error },
    #[error("column {column}: varint too long")]
    VarintTooLong { column: String },
    #[error("column {column}: a string of {bytes} bytes")]
    TooLong { column: String, bytes: u64 },
    #[error("column {column}: not UTF-8")]
    NotUtf8 { column: String },
    #[error("column {column}: {value:?} is not a value upshot writes")]
    Value { column: &'static str, value: String },
    #[error("column {column}: NULL in a {event_type}")]
    Null { column: &'static str, event_type: &'static str },
    #[error("columns line_*: arrays of different lengths")]
    LineArrays,
}

impl RowError {
    fn value(column: &'static str, value: &str) -> RowError {
        RowError::Value { column, value: value.to_string() }
    }
}

pub struct RowReader<R> {
    input: R,
}

impl<R: std::io::Read> RowReader<R> {
    pub fn new(input: R) -> RowReader<R> {
        RowReader { input }
    }

    fn bytes<const N: usize>(&mut self, column: &str) -> Result<[u8; N], RowError> {
        let mut buffer = [0u8; N];
        self.input.read_exact(&mut buffer).map_err(|source| RowError::Read { column: column.to_string(), source })?;
        Ok(buffer)
    }

    fn varint(&mut self, column: &str) -> Result<u64, RowError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.bytes::<1>(column)?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(RowError::VarintTooLong { column: column.to_string() })
    }

    /// A `String` column's bytes as they are (binary), up to `bytes_max`; `None` at the
    /// end of the answer.
    pub fn next_bytes(&mut self, column: &str, bytes_max: u64) -> Result<Option<Vec<u8>>, RowError> {
        let mut first = [0u8; 1];
        match self.input.read(&mut first) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(source) => return Err(RowError::Read { column: column.to_string(), source }),
        }
        let mut length = u64::from(first[0] & 0x7f);
        if first[0] >= 0x80 {
            length |= self.varint(column)? << 7;
        }
        if length > bytes_max {
            return Err(RowError::TooLong { column: column.to_string(), bytes: length });
        }
        // Grown as the bytes arrive: a length the answer does not back allocates nothing.
        use std::io::Read as _;
        let mut buffer = Vec::new();
        let read = (&mut self.input)
            .take(length)
            .read_to_end(&mut buffer)
            .map_err(|source| RowError::Read { column: column.to_string(), source })?;
        if read as u64 != length {
            let source = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the answer was cut short");
            return Err(RowError::Read { column: column.to_string(), source });
        }
        Ok(Some(buffer))
    }

    /// A `UInt64` column.
    pub fn u64(&mut self, column: &str) -> Result<u64, RowError> {
        Ok(u64::from_le_bytes(self.bytes::<8>(column)?))
    }

    fn string(&mut self, column: &str) -> Result<String, RowError> {
        let length = self.varint(column)?;
        if length > STRING_BYTES_MAX {
            return Err(RowError::TooLong { column: column.to_string(), bytes: length });
        }
        let mut buffer = vec![0u8; length as usize];
        self.input.read_exact(&mut buffer).map_err(|source| RowError::Read { column: column.to_string(), source })?;
        String::from_utf8(buffer).map_err(|_| RowError::NotUtf8 { column: column.to_string() })
    }

    fn optional_string(&mut self, column: &str) -> Result<Option<String>, RowError> {
        let [null] = self.bytes::<1>(column)?;
        if null == 1 {
            Ok(None)
        } else {
            self.string(column).map(Some)
        }
    }

    /// An `Int64` column.
    pub fn i64(&mut self, column: &str) -> Result<i64, RowError> {
        Ok(i64::from_le_bytes(self.bytes::<8>(column)?))
    }

    /// A `UInt32` column.
    pub fn u32(&mut self, column: &str) -> Result<u32, RowError> {
        Ok(u32::from_le_bytes(self.bytes::<4>(column)?))
    }

    fn optional_i64(&mut self, column: &str) -> Result<Option<i64>, RowError> {
        let [null] = self.bytes::<1>(column)?;
        if null == 1 {
            Ok(None)
        } else {
            self.i64(column).map(Some)
        }
    }

    fn strings(&mut self, column: &str) -> Result<Vec<String>, RowError> {
        let count = self.varint(column)?;
        (0..count).map(|_| self.string(column)).collect()
    }

    /// The next row's site and event, or `None` at the end of the answer.
    pub fn next_event(&mut self) -> Result<Option<(String, Event)>, RowError> {
        let mut first = [0u8; 1];
        match self.input.read(&mut first) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(source) => return Err(RowError::Read { column: "site".into(), source }),
        }
        // The site's length varint began with the byte just read.
        let site = {
            let mut length = u64::from(first[0] & 0x7f);
            let mut shift = 7;
            let mut byte = first[0];
            while byte >= 0x80 {
                let [next] = self.bytes::<1>("site")?;
                length |= u64::from(next & 0x7f) << shift;
                shift += 7;
                byte = next;
            }
            if length > STRING_BYTES_MAX {
                return Err(RowError::TooLong { column: "site".into(), bytes: length });
            }
            let mut buffer = vec![0u8; length as usize];
            self.input.read_exact(&mut buffer).map_err(|source| RowError::Read { column: "site".into(), source })?;
            String::from_utf8(buffer).map_err(|_| RowError::NotUtf8 { column: "site".into() })?
        };
        let _day = self.bytes::<2>("day")?;
        let visitor_id = self.string("visitor_id")?;
        let ts = self.i64("ts")?;
        let event_id = self.string("event_id")?;
        let type_name = self.string("type")?;
        let profile_id = self.optional_string("profile_id")?;
        let page_type = self.optional_string("page_type")?;
        let url = self.optional_string("url")?;
        let placement = self.string("placement")?;
        let kind = self.string("kind")?;
        let action = self.string("action")?;
        let item = self.optional_string("item")?;
        let items = self.strings("items")?;
        let impression_id = self.optional_string("impression_id")?;
        let campaign = self.optional_string("campaign")?;
        let sequence = self.optional_string("sequence")?;
        let experience = self.optional_string("experience")?;
        let label = self.optional_string("label")?;
        let quantity = self.u32("quantity")?;
        let price = self.optional_i64("price")?;
        let order_id = self.string("order_id")?;
        let revenue = self.i64("revenue")?;
        let shipping = self.optional_i64("shipping")?;
        let tax = self.optional_i64("tax")?;
        let line_items = self.strings("line_items")?;
        let count = self.varint("line_quantities")?;
        let line_quantities = (0..count).map(|_| self.u32("line_quantities")).collect::<Result<Vec<_>, _>>()?;
        let count = self.varint("line_prices")?;
        let line_prices = (0..count).map(|_| self.i64("line_prices")).collect::<Result<Vec<_>, _>>()?;
        let amount = self.optional_i64("amount")?;
        let [cancel] = self.bytes::<1>("cancel")?;
        let experiment = self.string("experiment")?;
        let variant = self.string("variant")?;
        let goal = self.string("goal")?;
        let value = self.optional_i64("value")?;
        let journey = self.string("journey")?;
        let channel = self.optional_string("channel")?;
        let run_id = self.optional_string("run_id")?;
        let sent_at = self.optional_i64("sent_at")?;
        let device = self.optional_string("device")?;
        let device = match device {
            None => None,
            Some(text) => Some(upshot_model::Device::parse(&text).ok_or_else(|| RowError::value("device", &text))?),
        };
        let traffic = upshot_model::Traffic {
            device,
            referrer: self.optional_string("referrer")?,
            utm_source: self.optional_string("utm_source")?,
            utm_medium: self.optional_string("utm_medium")?,
            utm_campaign: self.optional_string("utm_campaign")?,
        };
        let _landing_channel = self.string("landing_channel")?;

        use upshot_model::{Action, JourneyAction, Kind, Money, OrderLine, PlacementAttributes};
        let kind_of = |text: &str| Kind::parse(text).ok_or_else(|| RowError::value("kind", text));
        let attributes = PlacementAttributes {
            impression_id,
            campaign: campaign.clone(),
            sequence: sequence.clone(),
            experience,
            label,
        };
        let body = match type_name.as_str() {
            "page_view" => Body::PageView,
            "impression" => Body::Impression { placement, kind: kind_of(&kind)?, items, attributes },
            "interaction" => Body::Interaction {
                placement,
                kind: kind_of(&kind)?,
                action: Action::parse(&action).ok_or_else(|| RowError::value("action", &action))?,
                item,
                attributes,
            },
            "product_view" => {
                Body::ProductView { item: item.ok_or(RowError::Null { column: "item", event_type: "product_view" })? }
            }
            "add_to_cart" => Body::AddToCart {
                item: item.ok_or(RowError::Null { column: "item", event_type: "add_to_cart" })?,
                quantity,
                price: price.map(Money),
            },
            "order" => {
                if line_items.len() != line_quantities.len() || line_items.len() != line_prices.len() {
                    return Err(RowError::LineArrays);
                }
                let lines = line_items
                    .into_iter()
                    .zip(line_quantities)
                    .zip(line_prices)
                    .map(|((item, quantity), price)| OrderLine { item, quantity, price: Money(price) })
                    .collect();
                Body::Order {
                    order_id,
                    revenue: Money(revenue),
                    shipping: shipping.map(Money),
                    tax: tax.map(Money),
                    lines,
                }
            }
            "refund" => Body::Refund { order_id, amount: amount.map(Money), cancel: cancel == 1 },
            "assignment" => Body::Assignment { experiment, variant },
            "goal" => Body::Goal { goal, value: value.map(Money) },
            "journey" => Body::Journey {
                journey,
                action: JourneyAction::parse(&action).ok_or_else(|| RowError::value("action", &action))?,
                channel,
                run_id,
            },
            "sequence_start" => Body::SequenceStart {
                sequence: sequence.ok_or(RowError::Null { column: "sequence", event_type: "sequence_start" })?,
                campaign,
            },
            other => return Err(RowError::value("type", other)),
        };
        let visitor_id = (!visitor_id.is_empty()).then_some(visitor_id);
        Ok(Some((
            site,
            Event {
                event_id,
                ts,
                visitor_id,
                profile_id,
                page_type,
                url,
                sent_at,
                traffic,
                body,
                sent_with: KeyRole::Secret,
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_binary_writes_varints_little_endian_and_null_flags() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let event = upshot_model::parse_event_line(
            r#"{"event_id":"e","type":"page_view","ts":86400001,"visitor_id":"v"}"#,
            &upshot_model::ParseContext { currency: "USD".into() },
        )
        .expect("valid");
        let mut row = Vec::new();
        RowValues::of("s", &event).write_row_binary(&mut row);
        // site "s", day 1, visitor "v", ts, event_id "e", type "page_view", three NULLs...
        assert_eq!(&row[..8], &[1, b's', 1, 0, 1, b'v', 0x01, 0x5c]);
        assert_eq!(&row[12..14], &[0, 0], "ts is 86,400,001 as Int64 little-endian");
    }
}
