//! The engine's compact form of events: strings interned in a `Dictionary` (one per
//! worker), and one visitor's events at a time in `VisitorEvents`, ordered by
//! (ts, event_id), with impression items and order lines in pools.
//! `Dataset` keeps a whole site's events in memory, for tests and small sites.

use rustc_hash::FxHashMap as HashMap;
use std::ops::Range;

use upshot_model::{Action, Body, Channel, Device, Event, JourneyAction, KeyRole, Kind};

/// An interned string; `NONE` marks an absent optional value.
pub type Sym = u32;
pub const NONE: Sym = u32::MAX;

/// Interns strings that repeat (visitors, placements, items, campaigns, ...).
#[derive(Default, Debug, Clone)]
pub struct Interner {
    index: HashMap<Box<str>, Sym>,
    strings: Vec<Box<str>>,
}

impl Interner {
    pub fn intern(&mut self, text: &str) -> Sym {
        if let Some(&sym) = self.index.get(text) {
            return sym;
        }
        let sym = Sym::try_from(self.strings.len()).expect("fewer than 2^32 distinct strings per worker");
        assert!(sym != NONE, "interner full");
        self.strings.push(text.into());
        self.index.insert(text.into(), sym);
        sym
    }

    pub fn intern_optional(&mut self, text: Option<&str>) -> Sym {
        text.map_or(NONE, |text| self.intern(text))
    }

    pub fn lookup(&self, text: &str) -> Option<Sym> {
        self.index.get(text).copied()
    }

    pub fn resolve(&self, sym: Sym) -> &str {
        &self.strings[sym as usize]
    }
}

/// Dense id of a (placement, kind) pair.
pub type PlacementId = u32;

/// Strings and placements of one worker; grows as visitors stream through.
#[derive(Debug, Clone)]
pub struct Dictionary {
    pub strings: Interner,
    pub placements: Vec<(Sym, Kind)>,
    placement_index: HashMap<(Sym, Kind), PlacementId>,
    pub other_page_type: Sym,
}

impl Default for Dictionary {
    fn default() -> Dictionary {
        let mut strings = Interner::default();
        let other_page_type = strings.intern("other");
        Dictionary { strings, placements: Vec::new(), placement_index: HashMap::default(), other_page_type }
    }
}

impl Dictionary {
    /// Every string, in symbol order, and every placement: what `from_parts` rebuilds
    /// the same dictionary from.
    pub fn parts(&self) -> (Vec<&str>, &[(Sym, Kind)]) {
        (self.strings.strings.iter().map(|text| &**text).collect(), &self.placements)
    }

    /// The dictionary whose `parts` these are; `None` when they do not make one
    /// (repeated strings, a placement naming a missing string).
    pub fn from_parts(strings: Vec<String>, placements: Vec<(Sym, Kind)>) -> Option<Dictionary> {
        let mut dictionary = Dictionary { strings: Interner::default(), ..Dictionary::default() };
        dictionary.strings.index.reserve(strings.len());
        dictionary.strings.strings.reserve(strings.len());
        for (index, text) in strings.iter().enumerate() {
            if dictionary.strings.intern(text) as usize != index {
                return None;
            }
        }
        dictionary.other_page_type = dictionary.strings.lookup("other")?;
        for (index, &(text, kind)) in placements.iter().enumerate() {
            if text as usize >= strings.len() || dictionary.placement(text, kind) as usize != index {
                return None;
            }
        }
        Some(dictionary)
    }

    pub fn placement(&mut self, placement: Sym, kind: Kind) -> PlacementId {
        let next = PlacementId::try_from(self.placements.len()).expect("fewer than 2^32 placements");
        *self.placement_index.entry((placement, kind)).or_insert_with(|| {
            self.placements.push((placement, kind));
            next
        })
    }

    pub fn placement_text(&self, id: PlacementId) -> &str {
        self.strings.resolve(self.placements[id as usize].0)
    }

    pub fn kind(&self, id: PlacementId) -> Kind {
        self.placements[id as usize].1
    }
}

/// Texts of one visitor that never repeat across visitors (event ids, impression ids,
/// order ids), appended to one arena rather than interned.
#[derive(Default, Debug, Clone)]
pub struct TextArena {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl TextArena {
    pub fn push(&mut self, text: &[u8]) -> u32 {
        self.bytes.extend_from_slice(text);
        self.ends.push(self.bytes.len());
        u32::try_from(self.ends.len() - 1).expect("fewer than 2^32 events per visitor")
    }

    pub fn get(&self, id: u32) -> &[u8] {
        let index = id as usize;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.bytes[start..self.ends[index]]
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

/// A slice of one of the visitor's pools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub fn range(self) -> Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }

    pub fn of(start: usize, end: usize) -> Span {
        let len = u32::try_from(end - start).expect("pool below 2^32 entries");
        Span { start: u32::try_from(start).expect("pool below 2^32 entries"), len }
    }
}

/// An order line: item, quantity, price in money units (1e-4).
#[derive(Clone, Copy, Debug)]
pub struct Line {
    pub item: Sym,
    pub quantity: u32,
    pub price: i64,
}

/// Index into the visitor's `texts`; `NONE` when absent.
pub type TextId = u32;

#[derive(Clone, Copy, Debug)]
pub struct PlacementTouch {
    pub placement: PlacementId,
    pub impression_id: TextId,
    pub campaign: Sym,
    pub sequence: Sym,
}

/// The type-specific part of a compact event.
#[derive(Clone, Copy, Debug)]
pub enum Payload {
    PageView,
    Impression {
        at: PlacementTouch,
        items: Span,
    },
    Interaction {
        at: PlacementTouch,
        action: Action,
        item: Sym,
        label: Sym,
    },
    ProductView {
        item: Sym,
    },
    AddToCart {
        item: Sym,
    },
    /// `revenue` in money units (1e-4).
    Order {
        order_id: TextId,
        revenue: i64,
        lines: Span,
        /// The key it came with: the order book lets the secret key's orders win.
        sent_with: KeyRole,
    },
    /// `amount` in money units; `None` refunds the whole order.
    Refund {
        order_id: TextId,
        amount: Option<i64>,
        cancel: bool,
    },
    Assignment {
        experiment: Sym,
        variant: Sym,
    },
    /// `value` in money units (absent counts 0).
    Goal {
        goal: Sym,
        value: i64,
    },
    Journey {
        journey: Sym,
        action: JourneyAction,
        channel: Sym,
    },
    SequenceStart {
        sequence: Sym,
        campaign: Sym,
    },
}

/// What an event gives a session it lands (SPEC section 9.1): its device, and the
/// channel its traffic fields decide (read when the event is loaded, by the rule in
/// `upshot_model::traffic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Landing {
    pub device: Option<Device>,
    pub channel: Channel,
}

impl Default for Landing {
    /// What an event without traffic fields gives: no device, `direct`.
    fn default() -> Landing {
        Landing { device: None, channel: Channel::Direct }
    }
}

impl Landing {
    pub fn of(event: &Event) -> Landing {
        Landing {
            device: event.traffic.device,
            channel: upshot_model::traffic::channel(&event.traffic, event.url.as_deref()),
        }
    }
}

/// A compact event.
#[derive(Clone, Copy, Debug)]
pub struct Ev {
    pub ts: i64,
    pub event_id: TextId,
    /// Interned only on sequence starts (where `profiles` counts people); else `NONE`.
    pub profile: Sym,
    pub page_type: Sym,
    pub landing: Landing,
    pub payload: Payload,
}

impl Ev {
    /// Web events form sessions (SPEC section 3).
    pub fn is_web(&self) -> bool {
        matches!(
            self.payload,
            Payload::PageView
                | Payload::Impression { .. }
                | Payload::Interaction { .. }
                | Payload::ProductView { .. }
                | Payload::AddToCart { .. }
                | Payload::Order { .. }
                | Payload::Goal { .. }
        )
    }
}

/// One visitor's events; refilled for each visitor so nothing is allocated per event
/// once the buffers have grown.
#[derive(Default, Debug, Clone)]
pub struct VisitorEvents {
    pub visitor: String,
    /// The visitor id interned, when the pass needs it as a person (sequence starts).
    pub visitor_sym: Sym,
    pub events: Vec<Ev>,
    pub event_ids: TextArena,
    pub texts: TextArena,
    pub items: Vec<Sym>,
    pub lines: Vec<Line>,
}

impl VisitorEvents {
    pub fn clear(&mut self, visitor: &str) {
        self.visitor.clear();
        self.visitor.push_str(visitor);
        self.visitor_sym = NONE;
        self.events.clear();
        self.event_ids.clear();
        self.texts.clear();
        self.items.clear();
        self.lines.clear();
    }

    /// Orders the events by (ts, event_id bytes), as SPEC section 3 does.
    pub fn sort(&mut self) {
        let ids = &self.event_ids;
        self.events.sort_unstable_by(|a, b| a.ts.cmp(&b.ts).then_with(|| ids.get(a.event_id).cmp(ids.get(b.event_id))));
    }

    pub fn is_sorted(&self) -> bool {
        // Ids are compared only on equal timestamps: most pairs never build a slice.
        self.events.windows(2).all(|pair| {
            pair[0].ts < pair[1].ts
                || (pair[0].ts == pair[1].ts
                    && self.event_ids.get(pair[0].event_id) <= self.event_ids.get(pair[1].event_id))
        })
    }

    /// Adds one validated event of this visitor.
    pub fn push_event(&mut self, dictionary: &mut Dictionary, event: &Event) {
        let payload = self.payload(dictionary, &event.body, event.sent_with);
        let page_type = match &event.page_type {
            Some(page_type) => dictionary.strings.intern(page_type),
            None => dictionary.other_page_type,
        };
        let profile = match (&event.body, &event.profile_id) {
            (Body::SequenceStart { .. }, Some(profile)) => dictionary.strings.intern(profile),
            _ => NONE,
        };
        let event_id = self.event_ids.push(event.event_id.as_bytes());
        let ev = Ev { ts: event.ts, event_id, profile, page_type, landing: Landing::of(event), payload };
        self.events.push(ev);
    }

    /// Interns the visitor id when its events need it as a person.
    pub fn intern_visitor_if_needed(&mut self, dictionary: &mut Dictionary) {
        if self.events.iter().any(|ev| matches!(ev.payload, Payload::SequenceStart { .. })) {
            self.visitor_sym = dictionary.strings.intern(&self.visitor);
        }
    }

    pub fn optional_bytes(&mut self, bytes: Option<&[u8]>) -> TextId {
        bytes.map_or(NONE, |bytes| self.texts.push(bytes))
    }

    pub fn optional_text(&mut self, text: Option<&str>) -> TextId {
        text.map_or(NONE, |text| self.texts.push(text.as_bytes()))
    }

    fn payload(&mut self, dictionary: &mut Dictionary, body: &Body, sent_with: KeyRole) -> Payload {
        let strings = &mut dictionary.strings;
        match body {
            Body::PageView => Payload::PageView,
            Body::Impression { placement, kind, items, attributes } => {
                let start = self.items.len();
                for item in items {
                    self.items.push(strings.intern(item));
                }
                let items = Span::of(start, self.items.len());
                let impression_id = self.optional_text(attributes.impression_id.as_deref());
                Payload::Impression {
                    at: placement_touch(dictionary, placement, *kind, attributes, impression_id),
                    items,
                }
            }
            Body::Interaction { placement, kind, action, item, attributes } => {
                let impression_id = self.optional_text(attributes.impression_id.as_deref());
                Payload::Interaction {
                    item: strings.intern_optional(item.as_deref()),
                    label: strings.intern_optional(attributes.label.as_deref()),
                    at: placement_touch(dictionary, placement, *kind, attributes, impression_id),
                    action: *action,
                }
            }
            Body::ProductView { item } => Payload::ProductView { item: strings.intern(item) },
            Body::AddToCart { item, .. } => Payload::AddToCart { item: strings.intern(item) },
            Body::Order { order_id, revenue, lines, .. } => {
                let start = self.lines.len();
                for line in lines {
                    let item = strings.intern(&line.item);
                    self.lines.push(Line { item, quantity: line.quantity, price: line.price.0 });
                }
                Payload::Order {
                    order_id: self.texts.push(order_id.as_bytes()),
                    revenue: revenue.0,
                    lines: Span::of(start, self.lines.len()),
                    sent_with,
                }
            }
            Body::Refund { order_id, amount, cancel } => Payload::Refund {
                order_id: self.texts.push(order_id.as_bytes()),
                amount: amount.map(|amount| amount.0),
                cancel: *cancel,
            },
            Body::Assignment { experiment, variant } => {
                Payload::Assignment { experiment: strings.intern(experiment), variant: strings.intern(variant) }
            }
            Body::Goal { goal, value } => {
                Payload::Goal { goal: strings.intern(goal), value: value.map_or(0, |value| value.0) }
            }
            Body::Journey { journey, action, channel, .. } => Payload::Journey {
                journey: strings.intern(journey),
                action: *action,
                channel: strings.intern_optional(channel.as_deref()),
            },
            Body::SequenceStart { sequence, campaign } => Payload::SequenceStart {
                sequence: strings.intern(sequence),
                campaign: strings.intern_optional(campaign.as_deref()),
            },
        }
    }
}

fn placement_touch(
    dictionary: &mut Dictionary,
    placement: &str,
    kind: Kind,
    attributes: &upshot_model::PlacementAttributes,
    impression_id: TextId,
) -> PlacementTouch {
    let placement = dictionary.strings.intern(placement);
    PlacementTouch {
        placement: dictionary.placement(placement, kind),
        impression_id,
        campaign: dictionary.strings.intern_optional(attributes.campaign.as_deref()),
        sequence: dictionary.strings.intern_optional(attributes.sequence.as_deref()),
    }
}

/// A whole site's events in memory, grouped by visitor (refunds without a visitor
/// are kept for the order book only).
#[derive(Default, Debug, Clone)]
pub struct Dataset {
    pub events: Vec<Event>,
}

impl Dataset {
    pub fn new() -> Dataset {
        Dataset::default()
    }

    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Dataset {
        let mut dataset = Dataset::new();
        for event in events {
            dataset.push(event);
        }
        dataset.finish();
        dataset
    }

    pub fn push(&mut self, event: &Event) {
        self.events.push(event.clone());
    }

    /// Groups events by visitor (refunds without one last).
    pub fn finish(&mut self) {
        self.events.sort_by(|a, b| match (&a.visitor_id, &b.visitor_id) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }

    /// Each visitor's events, as contiguous slices.
    pub fn visitors(&self) -> impl Iterator<Item = &[Event]> {
        self.events.chunk_by(|a, b| a.visitor_id == b.visitor_id).filter(|group| group[0].visitor_id.is_some())
    }
}
