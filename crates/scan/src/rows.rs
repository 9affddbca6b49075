//! Turning the store's decoded segment rows into the engine's compact events, and
//! walking one bucket's visitors merged across segments (days) and the log's tail:
//! the seam between the store's file formats and the engine, which knows nothing of
//! files. The caller loads the buckets (IO); nothing here reads a file.

use rustc_hash::FxHashMap as HashMap;

use upshot_model::traffic::{channel_of, comparable_host, referrer_host_class, ChannelInputs};
use upshot_model::{Channel, Event, Kind};
use upshot_store::segment::{BucketColumns, DecodeError, Row, RowAttributes, RowBody, RowLine, RowReader};

use upshot_engine::dataset::{
    Dictionary, Ev, Landing, Line, Payload, PlacementId, PlacementTouch, Span, Sym, VisitorEvents, NONE,
};
use upshot_engine::{OrderBook, ReportPlan, Worker};

const UNSEEN: Sym = NONE - 1;

/// Maps one bucket's dictionary indices to a worker's symbols, interning on first use.
pub struct Translation {
    syms: Vec<Sym>,
    placements: HashMap<(u32, Kind), PlacementId>,
    /// Comparable hosts (SPEC section 9.1) of referrer and url strings, read once each.
    hosts: HashMap<u32, Option<Box<str>>>,
}

impl Translation {
    pub fn new(bucket: &BucketColumns) -> Translation {
        Translation {
            syms: vec![UNSEEN; bucket.dictionary_len()],
            placements: HashMap::default(),
            hosts: HashMap::default(),
        }
    }

    /// The channel a row gives the session it lands. Most rows have no referrer and no
    /// UTM field: those are `direct` without reading a string.
    fn channel(&mut self, bucket: &BucketColumns, row: &Row) -> Channel {
        let traffic = &row.traffic;
        if traffic.referrer.is_none() && traffic.utm_source.is_none() && traffic.utm_medium.is_none() {
            return Channel::Direct;
        }
        for index in [traffic.referrer, row.url].into_iter().flatten() {
            self.hosts.entry(index).or_insert_with(|| comparable_host(bucket.string(index)).map(Into::into));
        }
        let host = |index: Option<u32>| index.and_then(|index| self.hosts.get(&index).and_then(|host| host.as_deref()));
        let inputs = ChannelInputs {
            utm_source_present: traffic.utm_source.is_some(),
            utm_medium: traffic.utm_medium.map(|index| bucket.string(index)),
            referrer_host: host(traffic.referrer),
            url_host: host(row.url),
        };
        channel_of(inputs, referrer_host_class)
    }

    fn sym(&mut self, dictionary: &mut Dictionary, bucket: &BucketColumns, index: u32) -> Sym {
        let slot = &mut self.syms[index as usize];
        if *slot == UNSEEN {
            *slot = dictionary.strings.intern(bucket.string(index));
        }
        *slot
    }

    fn optional(&mut self, dictionary: &mut Dictionary, bucket: &BucketColumns, index: Option<u32>) -> Sym {
        index.map_or(NONE, |index| self.sym(dictionary, bucket, index))
    }

    fn placement(
        &mut self,
        dictionary: &mut Dictionary,
        bucket: &BucketColumns,
        index: u32,
        kind: Kind,
    ) -> PlacementId {
        if let Some(&id) = self.placements.get(&(index, kind)) {
            return id;
        }
        let text = self.sym(dictionary, bucket, index);
        let id = dictionary.placement(text, kind);
        self.placements.insert((index, kind), id);
        id
    }
}

/// Adds one decoded segment row to the visitor's events.
fn push_row(
    visitor: &mut VisitorEvents,
    dictionary: &mut Dictionary,
    translation: &mut Translation,
    bucket: &BucketColumns,
    row: &Row,
    items: &[u32],
    lines: &[RowLine],
) {
    let touch = |this: &mut VisitorEvents,
                 dictionary: &mut Dictionary,
                 translation: &mut Translation,
                 placement: u32,
                 kind: Kind,
                 attributes: &RowAttributes| PlacementTouch {
        placement: translation.placement(dictionary, bucket, placement, kind),
        impression_id: this.optional_bytes(attributes.impression_id),
        campaign: translation.optional(dictionary, bucket, attributes.campaign),
        sequence: translation.optional(dictionary, bucket, attributes.sequence),
    };
    let payload = match row.body {
        RowBody::PageView => Payload::PageView,
        RowBody::Impression { placement, kind, attributes } => {
            let start = visitor.items.len();
            for &item in items {
                let sym = translation.sym(dictionary, bucket, item);
                visitor.items.push(sym);
            }
            let items = Span::of(start, visitor.items.len());
            Payload::Impression { at: touch(visitor, dictionary, translation, placement, kind, &attributes), items }
        }
        RowBody::Interaction { placement, kind, action, item, attributes } => Payload::Interaction {
            at: touch(visitor, dictionary, translation, placement, kind, &attributes),
            action,
            item: translation.optional(dictionary, bucket, item),
            label: translation.optional(dictionary, bucket, attributes.label),
        },
        RowBody::ProductView { item } => Payload::ProductView { item: translation.sym(dictionary, bucket, item) },
        RowBody::AddToCart { item, .. } => Payload::AddToCart { item: translation.sym(dictionary, bucket, item) },
        RowBody::Order { order_id, revenue, .. } => {
            let start = visitor.lines.len();
            for line in lines {
                let item = translation.sym(dictionary, bucket, line.item);
                visitor.lines.push(Line { item, quantity: line.quantity, price: line.price });
            }
            let order_id = visitor.texts.push(bucket.string(order_id).as_bytes());
            Payload::Order { order_id, revenue, lines: Span::of(start, visitor.lines.len()), sent_with: row.sent_with }
        }
        RowBody::Refund { order_id, amount, cancel } => {
            Payload::Refund { order_id: visitor.texts.push(bucket.string(order_id).as_bytes()), amount, cancel }
        }
        RowBody::Assignment { experiment, variant } => Payload::Assignment {
            experiment: translation.sym(dictionary, bucket, experiment),
            variant: translation.sym(dictionary, bucket, variant),
        },
        RowBody::Goal { goal, value } => {
            Payload::Goal { goal: translation.sym(dictionary, bucket, goal), value: value.unwrap_or(0) }
        }
        RowBody::Journey { journey, action, channel, .. } => Payload::Journey {
            journey: translation.sym(dictionary, bucket, journey),
            action,
            channel: translation.optional(dictionary, bucket, channel),
        },
        RowBody::SequenceStart { sequence, campaign } => Payload::SequenceStart {
            sequence: translation.sym(dictionary, bucket, sequence),
            campaign: translation.optional(dictionary, bucket, campaign),
        },
    };
    let profile = match (row.body, row.profile) {
        (RowBody::SequenceStart { .. }, Some(profile)) => dictionary.strings.intern(bucket.string(profile)),
        _ => NONE,
    };
    let page_type = match row.page_type {
        Some(index) => translation.sym(dictionary, bucket, index),
        None => dictionary.other_page_type,
    };
    let event_id = visitor.event_ids.push(row.event_id);
    let landing = Landing { device: row.traffic.device, channel: translation.channel(bucket, row) };
    visitor.events.push(Ev { ts: row.ts, event_id, profile, page_type, landing, payload });
}

/// Adds a bucket's orders and refunds (loaded with `ColumnSet::OrdersAndRefunds` or
/// more) to the book.
pub fn add_bucket_to_order_book(book: &mut OrderBook, bucket: &BucketColumns) -> Result<(), DecodeError> {
    let mut refunds = Vec::new();
    bucket.for_each_order_fact(
        |order_id, ts, event_id, role| book.add_order(order_id, ts, event_id, role),
        |order_id, amount, cancel, role| refunds.push((order_id.to_vec(), amount, cancel, role)),
    )?;
    for (order_id, amount, cancel, role) in refunds {
        book.add_refund(&order_id, amount, cancel, role);
    }
    Ok(())
}

struct Source<'a> {
    bucket: &'a BucketColumns,
    reader: RowReader<'a>,
    translation: Translation,
    current: Option<(&'a str, u64)>,
}

/// Feeds `worker` every visitor of one bucket: the same bucket of several segments
/// (each sorted by visitor) merged with `tail`, the log's unsealed events of this
/// bucket sorted by visitor. Refunds without a visitor only feed the order book.
pub fn run_bucket(
    worker: &mut Worker,
    plan: &ReportPlan,
    book: &OrderBook,
    buckets: &[BucketColumns],
    tail: &[Event],
) -> Result<(), DecodeError> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut sources = Vec::with_capacity(buckets.len());
    // The heap holds each source's current visitor: a k-way merge over days.
    let mut heap: BinaryHeap<Reverse<(&[u8], usize)>> = BinaryHeap::with_capacity(buckets.len() + 1);
    for (index, bucket) in buckets.iter().enumerate() {
        let mut reader = bucket.reader();
        let current = reader.next_visitor()?;
        if let Some((visitor, _)) = current {
            heap.push(Reverse((visitor.as_bytes(), index)));
        }
        sources.push(Source { bucket, reader, translation: Translation::new(bucket), current });
    }
    let tail_source = buckets.len();
    let tail_visitor = |position: usize| tail.get(position).map(|event| event.visitor_id.as_deref().unwrap_or(""));
    let mut tail_position = 0;
    if let Some(visitor) = tail_visitor(0) {
        heap.push(Reverse((visitor.as_bytes(), tail_source)));
    }
    let (mut items, mut lines) = (Vec::new(), Vec::new());
    let mut visitor = String::new();
    while let Some(Reverse((next, _))) = heap.peek() {
        visitor.clear();
        visitor.push_str(std::str::from_utf8(next).expect("visitor ids are str"));
        worker.begin_visitor(&visitor);
        while let Some(Reverse((current, index))) = heap.peek().copied() {
            if current != visitor.as_bytes() {
                break;
            }
            heap.pop();
            if index == tail_source {
                while tail_visitor(tail_position) == Some(visitor.as_str()) {
                    worker.push_event(&tail[tail_position]);
                    tail_position += 1;
                }
                if let Some(next) = tail_visitor(tail_position) {
                    heap.push(Reverse((next.as_bytes(), tail_source)));
                }
                continue;
            }
            let source = &mut sources[index];
            let (_, rows) = source.current.expect("a source in the heap has a visitor");
            for _ in 0..rows {
                let row = source.reader.next_row(&mut items, &mut lines)?;
                push_row(
                    &mut worker.visitor,
                    &mut worker.dictionary,
                    &mut source.translation,
                    source.bucket,
                    &row,
                    &items,
                    &lines,
                );
            }
            source.current = source.reader.next_visitor()?;
            if let Some((next, _)) = source.current {
                heap.push(Reverse((next.as_bytes(), index)));
            }
        }
        if !visitor.is_empty() {
            worker.end_visitor(plan, book);
        }
    }
    Ok(())
}
