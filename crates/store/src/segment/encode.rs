//! Encoding one bucket's events into columns (see `mod.rs` for the layout).

use rustc_hash::FxHashMap as HashMap;

use upshot_model::{Body, Event, KeyRole, PlacementAttributes};

use super::{
    type_index, BODIES, COLUMN_COUNT, COMMON, EVENT_IDS, PUBLIC_KEY_FLAG, STRINGS, TRAFFIC, TRAFFIC_REFERRER,
    TRAFFIC_UTM_CAMPAIGN, TRAFFIC_UTM_MEDIUM, TRAFFIC_UTM_SOURCE, TS, TYPES, VISITORS,
};

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Builds the columns of one segment.
#[derive(Default)]
struct Encoder<'a> {
    columns: Vec<Vec<u8>>,
    /// Borrowed from the events being encoded: no allocation per new string.
    dictionary: HashMap<&'a str, u64>,
}

impl<'a> Encoder<'a> {
    fn string(&mut self, column: usize, text: &'a str) {
        let next = self.dictionary.len() as u64;
        let index = match self.dictionary.get(text) {
            Some(&index) => index,
            None => {
                put_bytes(&mut self.columns[STRINGS], text.as_bytes());
                self.dictionary.insert(text, next);
                next
            }
        };
        put_varint(&mut self.columns[column], index);
    }

    fn optional_string(&mut self, column: usize, text: Option<&'a str>) {
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

    /// The flags byte and the present strings (see `TRAFFIC` in `mod.rs`).
    fn traffic(&mut self, traffic: &'a upshot_model::Traffic) {
        let device = traffic.device.map_or(0, |device| device as u8 + 1);
        let strings = [
            (TRAFFIC_REFERRER, traffic.referrer.as_deref()),
            (TRAFFIC_UTM_SOURCE, traffic.utm_source.as_deref()),
            (TRAFFIC_UTM_MEDIUM, traffic.utm_medium.as_deref()),
            (TRAFFIC_UTM_CAMPAIGN, traffic.utm_campaign.as_deref()),
        ];
        let flags = strings.iter().filter(|(_, text)| text.is_some()).fold(device, |flags, (bit, _)| flags | bit);
        self.columns[TRAFFIC].push(flags);
        for text in strings.into_iter().filter_map(|(_, text)| text) {
            self.string(TRAFFIC, text);
        }
    }

    fn attributes(&mut self, column: usize, attributes: &'a PlacementAttributes) {
        // Impression ids are unique: inline, not in the dictionary (format 4).
        match &attributes.impression_id {
            None => put_varint(&mut self.columns[column], 0),
            Some(id) => {
                put_varint(&mut self.columns[column], 1);
                put_bytes(&mut self.columns[column], id.as_bytes());
            }
        }
        self.optional_string(column, attributes.campaign.as_deref());
        self.optional_string(column, attributes.sequence.as_deref());
        self.optional_string(column, attributes.experience.as_deref());
        self.optional_string(column, attributes.label.as_deref());
    }

    /// Order and refund entries repeat their ts, event id and order id inline, so the
    /// order book can be built from these two small columns alone.
    fn order_fact_prefix(&mut self, column: usize, event: &Event, order_id: &str) {
        put_varint(&mut self.columns[column], zigzag(event.ts));
        put_bytes(&mut self.columns[column], event.event_id.as_bytes());
        put_bytes(&mut self.columns[column], order_id.as_bytes());
    }

    fn body(&mut self, event: &'a Event) {
        let body = &event.body;
        let column = BODIES + type_index(body);
        match body {
            Body::PageView => {}
            Body::Impression { placement, kind, items, attributes } => {
                self.string(column, placement);
                self.columns[column].push(*kind as u8);
                put_varint(&mut self.columns[column], items.len() as u64);
                for item in items {
                    self.string(column, item);
                }
                self.attributes(column, attributes);
            }
            Body::Interaction { placement, kind, action, item, attributes } => {
                self.string(column, placement);
                self.columns[column].push(*kind as u8);
                self.columns[column].push(*action as u8);
                self.optional_string(column, item.as_deref());
                self.attributes(column, attributes);
            }
            Body::ProductView { item } => self.string(column, item),
            Body::AddToCart { item, quantity, price } => {
                self.string(column, item);
                put_varint(&mut self.columns[column], u64::from(*quantity));
                self.optional_number(column, price.map(|p| p.0));
            }
            Body::Order { order_id, revenue, shipping, tax, lines } => {
                self.order_fact_prefix(column, event, order_id);
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
            Body::Refund { order_id, amount, cancel } => {
                self.order_fact_prefix(column, event, order_id);
                self.string(column, order_id);
                self.optional_number(column, amount.map(|m| m.0));
                self.columns[column].push(u8::from(*cancel));
            }
            Body::Assignment { experiment, variant } => {
                self.string(column, experiment);
                self.string(column, variant);
            }
            Body::Goal { goal, value } => {
                self.string(column, goal);
                self.optional_number(column, value.map(|m| m.0));
            }
            Body::Journey { journey, action, channel, run_id } => {
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

pub(super) fn encode_columns<E: std::borrow::Borrow<Event>>(events: &[E]) -> (Vec<Vec<u8>>, u64) {
    // Sized from typical bytes per row, so columns rarely grow (and copy) while filled.
    let rows = events.len();
    let estimates = |index: usize| match index {
        VISITORS => rows,
        TS => 3 * rows,
        EVENT_IDS => 16 * rows,
        TYPES => rows,
        COMMON => 4 * rows,
        STRINGS => 4 * rows,
        _ => rows,
    };
    let columns = (0..COLUMN_COUNT).map(|index| Vec::with_capacity(estimates(index))).collect();
    let mut encoder = Encoder { columns, dictionary: HashMap::default() };
    let min_ts = events.iter().map(|event| event.borrow().ts).min().unwrap_or(0);
    let visitor_of = |event: &E| event.borrow().visitor_id.as_deref().unwrap_or("").to_string();
    let mut visitors = 0;
    let mut start = 0;
    while start < events.len() {
        let visitor = visitor_of(&events[start]);
        let end = start + events[start..].iter().take_while(|e| visitor_of(e) == visitor).count();
        visitors += 1;
        put_bytes(&mut encoder.columns[VISITORS], visitor.as_bytes());
        put_varint(&mut encoder.columns[VISITORS], (end - start) as u64);
        let mut previous_ts = min_ts;
        for event in &events[start..end] {
            let event = event.borrow();
            encoder.number(TS, event.ts - previous_ts);
            previous_ts = event.ts;
            put_bytes(&mut encoder.columns[EVENT_IDS], event.event_id.as_bytes());
            let role = if event.sent_with == KeyRole::Public { PUBLIC_KEY_FLAG } else { 0 };
            encoder.columns[TYPES].push(type_index(&event.body) as u8 | role);
            encoder.optional_string(COMMON, event.profile_id.as_deref());
            encoder.optional_string(COMMON, event.page_type.as_deref());
            encoder.optional_string(COMMON, event.url.as_deref());
            encoder.optional_number(COMMON, event.sent_at.map(|sent_at| sent_at - event.ts));
            encoder.traffic(&event.traffic);
            encoder.body(event);
        }
        start = end;
    }
    (encoder.columns, visitors)
}
