//! The engine's in-memory form of a site's events: interned strings, dense placement
//! ids, order lines and impression items in shared pools, and each visitor's events
//! contiguous and ordered by (ts, event_id).

use std::collections::HashMap;
use std::ops::Range;

use upshot_model::{Action, Body, Event, JourneyAction, Kind};

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
        let sym =
            Sym::try_from(self.strings.len()).expect("fewer than 2^32 distinct strings per site");
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

/// Event ids are unique, so they are appended to one text arena rather than hashed.
#[derive(Default, Debug, Clone)]
pub struct EventIds {
    text: String,
    ends: Vec<usize>,
}

impl EventIds {
    fn push(&mut self, event_id: &str) -> u32 {
        self.text.push_str(event_id);
        self.ends.push(self.text.len());
        u32::try_from(self.ends.len() - 1).expect("fewer than 2^32 events per dataset")
    }

    pub fn get(&self, id: u32) -> &str {
        let index = id as usize;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.text[start..self.ends[index]]
    }
}

/// A slice of one of the dataset's pools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub fn range(self) -> Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// An order line: item, quantity, price in money units (1e-4).
#[derive(Clone, Copy, Debug)]
pub struct Line {
    pub item: Sym,
    pub quantity: u32,
    pub price: i64,
}

/// Dense id of a (placement, kind) pair.
pub type PlacementId = u32;

#[derive(Clone, Copy, Debug)]
pub struct PlacementTouch {
    pub placement: PlacementId,
    pub impression_id: Sym,
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
    AddToCart,
    /// `revenue` in money units (1e-4).
    Order {
        order_id: Sym,
        revenue: i64,
        lines: Span,
    },
    /// `amount` in money units; `None` refunds the whole order.
    Refund {
        order_id: Sym,
        amount: Option<i64>,
        cancel: bool,
    },
    Assignment {
        experiment: Sym,
        variant: Sym,
    },
    Goal,
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

/// A compact event.
#[derive(Clone, Copy, Debug)]
pub struct Ev {
    pub ts: i64,
    pub event_id: u32,
    pub visitor: Sym,
    pub profile: Sym,
    pub page_type: Sym,
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
                | Payload::AddToCart
                | Payload::Order { .. }
                | Payload::Goal
        )
    }
}

/// A site's events ready for the engine.
#[derive(Default, Debug, Clone)]
pub struct Dataset {
    pub strings: Interner,
    pub event_ids: EventIds,
    pub placements: Vec<(Sym, Kind)>,
    placement_index: HashMap<(Sym, Kind), PlacementId>,
    pub events: Vec<Ev>,
    pub items: Vec<Sym>,
    pub lines: Vec<Line>,
    /// Each visitor's events, after `finish`; refunds without a visitor come last and
    /// belong to no range here.
    pub visitors: Vec<Range<usize>>,
    other_page_type: Sym,
}

impl Dataset {
    pub fn new() -> Dataset {
        let mut dataset = Dataset::default();
        dataset.other_page_type = dataset.strings.intern("other");
        dataset
    }

    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Dataset {
        let mut dataset = Dataset::new();
        for event in events {
            dataset.push(event);
        }
        dataset.finish();
        dataset
    }

    fn placement(&mut self, placement: &str, kind: Kind) -> PlacementId {
        let sym = self.strings.intern(placement);
        let next =
            PlacementId::try_from(self.placements.len()).expect("fewer than 2^32 placements");
        *self.placement_index.entry((sym, kind)).or_insert_with(|| {
            self.placements.push((sym, kind));
            next
        })
    }

    /// Every placement id whose placement text is `placement`.
    pub fn placement_ids_named(&self, placement: &str) -> Vec<PlacementId> {
        let Some(sym) = self.strings.lookup(placement) else {
            return Vec::new();
        };
        Kind::ALL
            .iter()
            .filter_map(|&kind| self.placement_index.get(&(sym, kind)).copied())
            .collect()
    }

    fn span(start: usize, end: usize) -> Span {
        let len = u32::try_from(end - start).expect("pool below 2^32 entries");
        let start = u32::try_from(start).expect("pool below 2^32 entries");
        Span { start, len }
    }

    /// Adds one validated event (in any order; `finish` sorts).
    pub fn push(&mut self, event: &Event) {
        let payload = self.payload(&event.body);
        let page_type = match &event.page_type {
            Some(page_type) => self.strings.intern(page_type),
            None => self.other_page_type,
        };
        let ev = Ev {
            ts: event.ts,
            event_id: self.event_ids.push(&event.event_id),
            visitor: self.strings.intern_optional(event.visitor_id.as_deref()),
            profile: self.strings.intern_optional(event.profile_id.as_deref()),
            page_type,
            payload,
        };
        self.events.push(ev);
    }

    fn payload(&mut self, body: &Body) -> Payload {
        match body {
            Body::PageView => Payload::PageView,
            Body::Impression {
                placement,
                kind,
                items,
                attributes,
            } => {
                let start = self.items.len();
                for item in items {
                    let sym = self.strings.intern(item);
                    self.items.push(sym);
                }
                let items = Dataset::span(start, self.items.len());
                let at = self.placement_touch(placement, *kind, attributes);
                Payload::Impression { at, items }
            }
            Body::Interaction {
                placement,
                kind,
                action,
                item,
                attributes,
            } => Payload::Interaction {
                at: self.placement_touch(placement, *kind, attributes),
                action: *action,
                item: self.strings.intern_optional(item.as_deref()),
                label: self.strings.intern_optional(attributes.label.as_deref()),
            },
            Body::ProductView { item } => Payload::ProductView {
                item: self.strings.intern(item),
            },
            Body::AddToCart { .. } => Payload::AddToCart,
            Body::Order {
                order_id,
                revenue,
                lines,
                ..
            } => {
                let start = self.lines.len();
                for line in lines {
                    let item = self.strings.intern(&line.item);
                    self.lines.push(Line {
                        item,
                        quantity: line.quantity,
                        price: line.price.0,
                    });
                }
                Payload::Order {
                    order_id: self.strings.intern(order_id),
                    revenue: revenue.0,
                    lines: Dataset::span(start, self.lines.len()),
                }
            }
            Body::Refund {
                order_id,
                amount,
                cancel,
            } => Payload::Refund {
                order_id: self.strings.intern(order_id),
                amount: amount.map(|amount| amount.0),
                cancel: *cancel,
            },
            Body::Assignment {
                experiment,
                variant,
            } => Payload::Assignment {
                experiment: self.strings.intern(experiment),
                variant: self.strings.intern(variant),
            },
            Body::Goal { .. } => Payload::Goal,
            Body::Journey {
                journey,
                action,
                channel,
                ..
            } => Payload::Journey {
                journey: self.strings.intern(journey),
                action: *action,
                channel: self.strings.intern_optional(channel.as_deref()),
            },
            Body::SequenceStart { sequence, campaign } => Payload::SequenceStart {
                sequence: self.strings.intern(sequence),
                campaign: self.strings.intern_optional(campaign.as_deref()),
            },
        }
    }

    fn placement_touch(
        &mut self,
        placement: &str,
        kind: Kind,
        attributes: &upshot_model::PlacementAttributes,
    ) -> PlacementTouch {
        PlacementTouch {
            placement: self.placement(placement, kind),
            impression_id: self
                .strings
                .intern_optional(attributes.impression_id.as_deref()),
            campaign: self.strings.intern_optional(attributes.campaign.as_deref()),
            sequence: self.strings.intern_optional(attributes.sequence.as_deref()),
        }
    }

    /// Orders (ts, event_id) as SPEC section 3 does: ties by event_id bytes.
    pub fn time_order(&self, a: &Ev, b: &Ev) -> std::cmp::Ordering {
        a.ts.cmp(&b.ts).then_with(|| {
            self.event_ids
                .get(a.event_id)
                .as_bytes()
                .cmp(self.event_ids.get(b.event_id).as_bytes())
        })
    }

    /// Groups events by visitor, each visitor's in time order.
    pub fn finish(&mut self) {
        let mut events = std::mem::take(&mut self.events);
        events.sort_unstable_by(|a, b| {
            a.visitor
                .cmp(&b.visitor)
                .then_with(|| self.time_order(a, b))
        });
        self.events = events;
        self.visitors.clear();
        let mut start = 0;
        while start < self.events.len() {
            let visitor = self.events[start].visitor;
            let mut end = start + 1;
            while end < self.events.len() && self.events[end].visitor == visitor {
                end += 1;
            }
            if visitor != NONE {
                self.visitors.push(start..end);
            }
            start = end;
        }
    }
}
