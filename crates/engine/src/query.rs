//! What a report asks for: a local date range in the site's time zone, the model, and
//! the filters; resolved once into instants and per-placement filter flags.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use upshot_model::time::local_midnight_millis;
use upshot_model::Kind;

use crate::accumulate::Breakdown;
use crate::attribution::Model;
use crate::dataset::{Dictionary, Ev, PlacementId, Sym};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("--to {to} is before --from {from}")]
    EmptyRange { from: Date, to: Date },
    #[error("the range {from}..{to} is longer than {DAYS_MAX} days")]
    RangeTooLong { from: Date, to: Date },
    #[error("local midnight of {date} cannot be placed in time zone {zone}")]
    Midnight { date: Date, zone: String },
}

/// Longest report range, in days.
pub const DAYS_MAX: i64 = 3660;

#[derive(Debug, Clone)]
pub struct Query {
    pub from: Date,
    pub to: Date,
    pub time_zone: TimeZone,
    pub time_zone_name: String,
    pub currency: String,
    pub model: Model,
    pub page_type: Option<String>,
    pub placement: Option<String>,
    pub kind: Option<Kind>,
    /// Only sessions with this value of one attribute (SPEC section 9.2).
    pub segment: Option<Segment>,
    /// The present, when the caller knows it (the engine reads no clock): the active
    /// counts of a range that ends after it take the 24 hours before it rather than
    /// before the range's end, which lie partly in the future. `None`: the range's end
    /// (SPEC section 8, what `upshot report` does).
    pub now_ms: Option<i64>,
}

impl Query {
    /// A report of whole local days, last-interaction model, no filters.
    pub fn new(from: Date, to: Date, time_zone: TimeZone, time_zone_name: &str, currency: &str) -> Query {
        Query {
            from,
            to,
            time_zone,
            time_zone_name: time_zone_name.to_string(),
            currency: currency.to_string(),
            model: Model::Last,
            page_type: None,
            placement: None,
            kind: None,
            segment: None,
            now_ms: None,
        }
    }

    /// The same days in UTC and USD, as tests and benchmarks on generated shops use.
    pub fn utc(from: Date, to: Date) -> Query {
        Query::new(from, to, TimeZone::UTC, "UTC", "USD")
    }
}

/// The `segment` filter: one value of one session attribute (SPEC section 9.2), checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub dimension: String,
    pub value: String,
}

/// Why a `segment` parameter was refused; says how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("segment {0:?} is not DIMENSION:VALUE (like device:mobile or channel:search)")]
    Shape(String),
    #[error("segment dimension {0:?} is unknown; the dimensions are device, visitor_type, channel, landing_page_type")]
    Dimension(String),
    #[error("segment value {value:?} is not a {dimension} ({expected})")]
    Value { dimension: String, value: String, expected: &'static str },
}

impl Segment {
    /// `DIMENSION:VALUE`, the value checked against the dimension's values (a landing
    /// page type may be any non-empty text).
    pub fn parse(text: &str) -> Result<Segment, SegmentError> {
        let (dimension, value) = text.split_once(':').ok_or_else(|| SegmentError::Shape(text.to_string()))?;
        let expected = match dimension {
            "device" => "desktop, mobile, tablet, other or unknown",
            "visitor_type" => "new or returning",
            "channel" => "paid, email, social, search, campaign, referral or direct",
            "landing_page_type" => "any page type",
            _ => return Err(SegmentError::Dimension(dimension.to_string())),
        };
        // A page type may be empty (SPEC section 2): so may a landing page type.
        let known = (!value.is_empty() || dimension == "landing_page_type")
            && crate::breakdown::parse(dimension, value, |_| 0).is_some();
        if !known {
            let (dimension, value) = (dimension.to_string(), value.to_string());
            return Err(SegmentError::Value { dimension, value, expected });
        }
        Ok(Segment { dimension: dimension.to_string(), value: value.to_string() })
    }

    /// As the parameter is written: `device:mobile`.
    pub fn text(&self) -> String {
        format!("{}:{}", self.dimension, self.value)
    }
}

/// The range as instants (epoch milliseconds).
#[derive(Debug, Clone)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    /// Start of the equally long range just before (for `revenue_change`).
    pub previous_start: i64,
    /// Local midnights of every date in range, then the end: `days + 1` entries.
    pub day_starts: Vec<i64>,
    pub dates: Vec<Date>,
    /// Where the 24 hours of the active counts end: the range's end, or the present
    /// when that comes first.
    pub active_end: i64,
}

impl Window {
    pub fn resolve(query: &Query) -> Result<Window, QueryError> {
        let (from, to) = (query.from, query.to);
        if to < from {
            return Err(QueryError::EmptyRange { from, to });
        }
        let days = (to - from).get_days() as i64 + 1;
        if days > DAYS_MAX {
            return Err(QueryError::RangeTooLong { from, to });
        }
        let midnight = |date: Date| {
            local_midnight_millis(date, &query.time_zone)
                .map_err(|_| QueryError::Midnight { date, zone: query.time_zone_name.clone() })
        };
        let mut dates = Vec::with_capacity(days as usize);
        let mut day_starts = Vec::with_capacity(days as usize + 1);
        let mut date = from;
        for _ in 0..=days {
            day_starts.push(midnight(date)?);
            dates.push(date);
            date = date.tomorrow().map_err(|_| QueryError::RangeTooLong { from, to })?;
        }
        dates.pop();
        let previous_from =
            from.checked_sub(jiff::Span::new().days(days)).map_err(|_| QueryError::RangeTooLong { from, to })?;
        let end = day_starts[days as usize];
        Ok(Window {
            start: day_starts[0],
            end,
            previous_start: midnight(previous_from)?,
            day_starts,
            dates,
            active_end: query.now_ms.map_or(end, |now| now.min(end)),
        })
    }

    pub fn contains(&self, ts: i64) -> bool {
        self.start <= ts && ts < self.end
    }

    /// Index of the local date of `ts`, which must be in range.
    pub fn day_index(&self, ts: i64) -> usize {
        self.day_starts.partition_point(|&start| start <= ts) - 1
    }
}

/// The page-type / placement / kind filter, resolved against a worker's dictionary
/// (its strings are interned there, so they compare as symbols).
#[derive(Debug, Clone)]
pub struct Filter {
    page_type: Option<Sym>,
    placement: Option<Sym>,
    kind: Option<Kind>,
    segment: Option<Breakdown>,
}

impl Filter {
    pub fn resolve(query: &Query, dictionary: &mut Dictionary) -> Filter {
        let segment = query.segment.as_ref().and_then(|segment| {
            crate::breakdown::parse(&segment.dimension, &segment.value, |page| dictionary.strings.intern(page))
        });
        Filter {
            page_type: query.page_type.as_deref().map(|text| dictionary.strings.intern(text)),
            placement: query.placement.as_deref().map(|text| dictionary.strings.intern(text)),
            kind: query.kind,
            segment,
        }
    }

    pub fn has_segment(&self) -> bool {
        self.segment.is_some()
    }

    /// Whether a session with these attributes counts (the segment filter, SPEC
    /// section 9.2): always without a segment.
    pub fn keeps_session(&self, attributes: &crate::breakdown::SessionAttributes) -> bool {
        self.segment.is_none_or(|wanted| attributes.rows().contains(&wanted))
    }

    /// Whether an impression, interaction or credit on this placement and page passes.
    pub fn passes(&self, dictionary: &Dictionary, placement: PlacementId, ev: &Ev) -> bool {
        self.passes_on_page(dictionary, placement, ev.page_type)
    }

    /// `passes` for an event known by its placement and page type alone.
    pub fn passes_on_page(&self, dictionary: &Dictionary, placement: PlacementId, page_type: Sym) -> bool {
        let (text, kind) = dictionary.placements[placement as usize];
        self.placement.is_none_or(|wanted| wanted == text)
            && self.kind.is_none_or(|wanted| wanted == kind)
            && self.page_type.is_none_or(|wanted| wanted == page_type)
    }
}
