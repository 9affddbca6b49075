//! Day partials (ADR 0008): what the per-visitor pass adds for each local date of a
//! site's history, for one or more lenses (a model and filters). A report of any range
//! of that lens is then a sum of days, not a pass over every event: the pass decides
//! every rule once, in `visitor.rs`, and only routes each addition to the date it is
//! keyed on (the session's first event, the event, the order). What does not add up
//! over days is kept so that it can be answered exactly for any range: distinct
//! visitors as, per day, the day each visitor was last seen before; experiment
//! visitors as rows; active counts as each entity's first and last instant per day.

use std::sync::OnceLock;

use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

use jiff::civil::Date;
use upshot_model::{Kind, Settings};

use crate::accumulate::{Reintern, Rekey, SameDictionary, Totals};
use crate::attribution::Model;
use crate::dataset::{Dictionary, Sym};
use crate::figures::Report;
use crate::finish::Finisher;
use crate::query::{Query, Window};

/// Active counts look at the 24 hours before the range's end (SPEC section 8).
pub(crate) const ACTIVE_WINDOW_MS: i64 = 86_400_000;

/// What a visitor's pass adds to: one range's totals, or every day's.
pub(crate) enum Accumulator {
    Range(Box<Totals>),
    Days(Box<DaysBuild>),
}

/// Which active count an entity is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Active {
    Placement,
    Experiment,
    Journey,
}

/// Day of a visitor's first sighting: no day before it.
const NEVER: u32 = u32::MAX;

/// Distinct visitors over any range of days, exactly: for each day a visitor was seen,
/// the day it was last seen before (or never). The visitors seen in `first..=last` are
/// those seen on a day of it whose previous sighting is before `first`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct DistinctDays {
    /// (day, previous day or NEVER) -> visitors.
    pairs: HashMap<(u32, u32), u64>,
}

impl DistinctDays {
    /// Adds one visitor seen on `days` (coverage day indices, any order, repeats
    /// allowed; left sorted and deduplicated).
    pub(crate) fn add_visitor(&mut self, days: &mut Vec<u32>) {
        days.sort_unstable();
        days.dedup();
        let mut previous = NEVER;
        for &day in days.iter() {
            *self.pairs.entry((day, previous)).or_default() += 1;
            previous = day;
        }
    }

    fn absorb(&mut self, other: &DistinctDays) {
        for (&key, &count) in &other.pairs {
            *self.pairs.entry(key).or_default() += count;
        }
    }

    /// Visitors seen on some day of `first..=last`.
    pub(crate) fn count(&self, first: u32, last: u32) -> u64 {
        self.pairs
            .iter()
            .filter(|(&(day, previous), _)| first <= day && day <= last && (previous == NEVER || previous < first))
            .map(|(_, &count)| count)
            .sum()
    }
}

/// Visitors counted in an experiment alike: the variant, the day of the assignment,
/// the orders at or after it (day, net revenue in money units), and the net revenue of
/// the orders in the CUPED lookback before it. Most visitors have no order, so one key
/// stands for many.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct ExperimentKey {
    experiment: Sym,
    variant: Sym,
    assigned_day: u32,
    orders: Vec<(u32, i64)>,
    pre_revenue: i64,
}

/// Everything one lens's pass adds, per day of the coverage.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct DaysBuild {
    /// One `Totals` per date of the coverage, each a one-day range.
    pub(crate) days: Vec<Totals>,
    pub(crate) visitors: DistinctDays,
    /// A lens with a segment filter: the visitors with a web event in a kept session
    /// (its own; `visitors` above stays unfiltered for the other lenses).
    pub(crate) segment_visitors: DistinctDays,
    pub(crate) recommendation_visitors: DistinctDays,
    /// Per label: visitors who used it, and of them those with a use an order followed.
    pub(crate) topics: HashMap<Sym, (DistinctDays, DistinctDays)>,
    /// Experiment visitors (how many per key). Kept by the first lens only: they do not
    /// depend on the filters, nor do `visitors` (see `DaysBuild::shared`).
    experiments: HashMap<ExperimentKey, u64>,
    /// Per entity and day: its first and last instant.
    active: HashMap<(Active, Sym, u32), (i64, i64)>,
    /// Events met after the coverage (the partials then cannot be used), and before
    /// it (they can, for ranges whose figures look at no day before it); counted by the
    /// first lens only.
    pub(crate) after: u64,
    pub(crate) before: u64,
    /// Whether this build keeps what no filter changes (`visitors`, `experiments`):
    /// the first lens's does, for all of them.
    pub(crate) keeps_shared: bool,
}

impl DaysBuild {
    pub(crate) fn new(days: usize, keeps_shared: bool) -> DaysBuild {
        DaysBuild { days: (0..days).map(|_| Totals::new(1)).collect(), keeps_shared, ..DaysBuild::default() }
    }

    pub(crate) fn note_active(&mut self, what: Active, sym: Sym, day: u32, ts: i64) {
        let span = self.active.entry((what, sym, day)).or_insert((ts, ts));
        span.0 = span.0.min(ts);
        span.1 = span.1.max(ts);
    }

    /// One counted experiment visitor: assigned on `assigned_day`, with `orders` (day,
    /// net revenue in money units) at or after its assignment, and `pre_revenue` before.
    pub(crate) fn add_experiment_row(
        &mut self,
        (experiment, variant): (Sym, Sym),
        assigned_day: u32,
        orders: impl Iterator<Item = (u32, i64)>,
        pre_revenue: i64,
    ) {
        let key = ExperimentKey { experiment, variant, assigned_day, orders: orders.collect(), pre_revenue };
        *self.experiments.entry(key).or_default() += 1;
    }

    /// Whether every symbol and placement id fits a dictionary of these sizes.
    fn symbols_within(&self, strings: usize, placements: usize) -> bool {
        let sym = |sym: &Sym| (*sym as usize) < strings;
        self.days.iter().all(|day| day.symbols_within(strings, placements))
            && self.topics.keys().all(sym)
            && self.experiments.keys().all(|key| sym(&key.experiment) && sym(&key.variant))
            && self.active.keys().all(|(_, entity, _)| sym(entity))
    }

    /// Adds another worker's build (same coverage), its symbols re-keyed by `rekey`.
    fn absorb(&mut self, other: &DaysBuild, rekey: &mut impl Rekey) {
        for (mine, theirs) in self.days.iter_mut().zip(&other.days) {
            mine.absorb_rekeyed(theirs, rekey, 0);
        }
        self.visitors.absorb(&other.visitors);
        self.segment_visitors.absorb(&other.segment_visitors);
        self.recommendation_visitors.absorb(&other.recommendation_visitors);
        for (&label, (used, converted)) in &other.topics {
            let mine = self.topics.entry(rekey.sym(label)).or_default();
            mine.0.absorb(used);
            mine.1.absorb(converted);
        }
        for (key, &visitors) in &other.experiments {
            let key = ExperimentKey {
                experiment: rekey.sym(key.experiment),
                variant: rekey.sym(key.variant),
                assigned_day: key.assigned_day,
                orders: key.orders.clone(),
                pre_revenue: key.pre_revenue,
            };
            *self.experiments.entry(key).or_default() += visitors;
        }
        for (&(what, sym, day), &(first, last)) in &other.active {
            let span = self.active.entry((what, rekey.sym(sym), day)).or_insert((first, last));
            span.0 = span.0.min(first);
            span.1 = span.1.max(last);
        }
        self.after += other.after;
        self.before += other.before;
    }
}

/// The filters and model a set of partials answers for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lens {
    pub model: Model,
    pub page_type: Option<String>,
    pub placement: Option<String>,
    pub kind: Option<Kind>,
    pub segment: Option<crate::query::Segment>,
}

impl Lens {
    pub fn of(query: &Query) -> Lens {
        Lens {
            model: query.model,
            page_type: query.page_type.clone(),
            placement: query.placement.clone(),
            kind: query.kind,
            segment: query.segment.clone(),
        }
    }
}

/// Why partials could not be built or read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartialsError {
    #[error("{0} events lie after the dates the partials cover; cover every date up to the latest event")]
    After(u64),
    #[error("saved day partials are of format {found}, not {PARTIALS_FORMAT}; they are rebuilt")]
    Format { found: u32 },
    #[error("saved day partials do not decode ({0}); they are rebuilt")]
    Decode(String),
}

/// Format of saved partials. Any change to what they hold, or to a rule of the pass
/// (saved partials would otherwise go on giving the old rule's figures), changes it.
pub const PARTIALS_FORMAT: u32 = 3;

/// What is saved first: everything a `DayPartials` holds but the lenses' builds (the
/// coverage as dates), and each lens with the length of its build, which follow in
/// order: a reader decodes only the lenses it needs.
#[derive(Serialize, Deserialize)]
struct SavedHeader {
    format: u32,
    from: String,
    to: String,
    time_zone_name: String,
    currency: String,
    settings: String,
    strings: Vec<String>,
    placements: Vec<(Sym, Kind)>,
    lenses: Vec<(Lens, u64)>,
}

/// Where the saved bytes of read-back partials' lenses come from when first used: the
/// bytes read whole (`from_bytes`), or a keeper that fetches one lens when asked (the
/// cluster keeps each lens apart: a cold report reads only the lenses it sums).
pub trait SavedLenses: Send + Sync {
    /// Lens `index`'s bytes as `to_sections` wrote them (`length` of them, as the head
    /// says: a keeper reads no more).
    fn lens_bytes(&self, index: usize, length: usize) -> LensBytes<'_>;
}

/// What a keeper of saved lenses answers.
pub enum LensBytes<'a> {
    Found(std::borrow::Cow<'a, [u8]>),
    /// They cannot be had now (a keeper out of reach): nothing is remembered, the next
    /// report asks again.
    NotNow,
    /// They are gone (replaced by a newer build): the lens no longer answers, and
    /// `DayPartials::lost_lenses` says so.
    Gone,
}

/// Saved partials read whole: each lens's bytes lie in them.
struct BytesInMemory {
    bytes: Vec<u8>,
    ranges: Vec<std::ops::Range<usize>>,
}

impl SavedLenses for BytesInMemory {
    fn lens_bytes(&self, index: usize, _length: usize) -> LensBytes<'_> {
        let bytes = self.ranges.get(index).and_then(|range| self.bytes.get(range.clone()));
        bytes.map_or(LensBytes::Gone, |bytes| LensBytes::Found(std::borrow::Cow::Borrowed(bytes)))
    }
}

/// Bytes the lenses of saved partials may claim in all: far above the largest measured
/// (237 MB at 100M events); a damaged head claiming more is refused before any fetch.
const SAVED_BYTES_MAX: u64 = 1 << 34;

/// A saved header, read: everything but the lenses' builds, and each lens with the
/// length of its build.
struct ReadHeader {
    coverage: Window,
    time_zone_name: String,
    currency: String,
    settings: String,
    dictionary: Dictionary,
    lenses: Vec<(Lens, usize)>,
    /// The header's own length in bytes.
    length: usize,
}

impl ReadHeader {
    fn read(saved: &[u8]) -> Result<ReadHeader, PartialsError> {
        let decode = |reason: String| PartialsError::Decode(reason);
        let format: u32 = postcard::take_from_bytes::<u32>(saved).map_err(|error| decode(error.to_string()))?.0;
        if format != PARTIALS_FORMAT {
            return Err(PartialsError::Format { found: format });
        }
        let (header, rest): (SavedHeader, &[u8]) =
            postcard::take_from_bytes(saved).map_err(|error| decode(error.to_string()))?;
        let dictionary = Dictionary::from_parts(header.strings, header.placements)
            .ok_or_else(|| decode("its strings do not make a dictionary".into()))?;
        let time_zone = jiff::tz::TimeZone::get(&header.time_zone_name)
            .map_err(|error| decode(format!("time zone {}: {error}", header.time_zone_name)))?;
        let date = |text: &str| text.parse::<Date>().map_err(|error| decode(format!("date {text}: {error}")));
        let (from, to) = (date(&header.from)?, date(&header.to)?);
        let coverage_query = Query::new(from, to, time_zone, &header.time_zone_name, &header.currency);
        let coverage = Window::resolve(&coverage_query).map_err(|error| decode(error.to_string()))?;
        let claimed = header.lenses.iter().try_fold(0u64, |sum, (_, length)| sum.checked_add(*length));
        if claimed.is_none_or(|claimed| claimed > SAVED_BYTES_MAX) {
            return Err(decode(format!("its lenses claim more than {SAVED_BYTES_MAX} bytes")));
        }
        let lenses = header
            .lenses
            .into_iter()
            .map(|(lens, length)| Ok((lens, usize::try_from(length).map_err(|_| decode("it is cut short".into()))?)))
            .collect::<Result<Vec<_>, PartialsError>>()?;
        if lenses.is_empty() {
            return Err(decode("it keeps no lens".into()));
        }
        Ok(ReadHeader {
            coverage,
            time_zone_name: header.time_zone_name,
            currency: header.currency,
            settings: header.settings,
            dictionary,
            lenses,
            length: saved.len() - rest.len(),
        })
    }

    /// The first lens's build from its bytes.
    fn decode_first(&self, first: &[u8]) -> Result<DaysBuild, PartialsError> {
        decode_build(first, true, &self.coverage, &self.dictionary)
    }

    /// The partials of this header, the first lens `decoded`, the others from `saved`
    /// when first asked for.
    fn into_partials(self, decoded: DaysBuild, saved: Box<dyn SavedLenses>) -> DayPartials {
        let saved_lengths = self.lenses.iter().map(|(_, length)| *length).collect();
        let lenses: Vec<(Lens, OnceLock<Option<DaysBuild>>)> =
            self.lenses.into_iter().map(|(lens, _)| (lens, OnceLock::new())).collect();
        let _ = lenses[0].1.set(Some(decoded));
        DayPartials {
            coverage: self.coverage,
            time_zone_name: self.time_zone_name,
            currency: self.currency,
            settings: self.settings,
            dictionary: self.dictionary,
            lenses,
            saved: Some((saved, saved_lengths)),
        }
    }
}

/// A site's day partials for some lenses, over the dates of their coverage.
pub struct DayPartials {
    coverage: Window,
    time_zone_name: String,
    currency: String,
    /// The site's settings the partials were computed under (as text, compared whole).
    settings: String,
    dictionary: Dictionary,
    /// Each lens's build, decoded on first use when read back from bytes (a cold
    /// process or a restarted server pays only for the lenses it is asked for).
    lenses: Vec<(Lens, OnceLock<Option<DaysBuild>>)>,
    /// Where the lenses' saved bytes come from, and each one's length (read back only).
    saved: Option<(Box<dyn SavedLenses>, Vec<usize>)>,
}

impl DayPartials {
    /// Merges the workers' builds (each with its dictionary; one build per lens).
    pub(crate) fn merge(
        settings: &Settings,
        coverage_query: &Query,
        coverage: Window,
        lenses: Vec<Lens>,
        workers: Vec<(Dictionary, Vec<DaysBuild>)>,
    ) -> Result<DayPartials, PartialsError> {
        let mut workers = workers.into_iter();
        let (mut dictionary, mut builds) = workers.next().unwrap_or_else(|| (Dictionary::default(), Vec::new()));
        let days = coverage.dates.len();
        while builds.len() < lenses.len() {
            let keeps_shared = builds.is_empty();
            builds.push(DaysBuild::new(days, keeps_shared));
        }
        for (theirs, their_builds) in workers {
            let mut rekey = Reintern { ours: &mut dictionary, theirs: &theirs };
            for (mine, build) in builds.iter_mut().zip(&their_builds) {
                mine.absorb(build, &mut rekey);
            }
        }
        let after = builds.first().map_or(0, |build| build.after);
        if after > 0 {
            return Err(PartialsError::After(after));
        }
        for build in &mut builds {
            build.days.iter_mut().for_each(Totals::trim_recent);
        }
        Ok(DayPartials {
            coverage,
            time_zone_name: coverage_query.time_zone_name.clone(),
            currency: coverage_query.currency.clone(),
            settings: settings_key(settings),
            dictionary,
            lenses: lenses.into_iter().zip(builds).map(|(lens, build)| (lens, OnceLock::from(Some(build)))).collect(),
            saved: None,
        })
    }

    /// The build of lens `index`, decoded (and checked) on first use; `None` when its
    /// saved bytes do not decode.
    fn build(&self, index: usize) -> Option<&DaysBuild> {
        let (_, build) = self.lenses.get(index)?;
        if let Some(decoded) = build.get() {
            return decoded.as_ref();
        }
        // Bytes that cannot be had now are asked for again next time; bytes that are
        // gone, or of another length than the head says, or that do not decode, are
        // remembered as such.
        let (saved, lengths) = self.saved.as_ref()?;
        let length = *lengths.get(index)?;
        let decoded = match saved.lens_bytes(index, length) {
            LensBytes::Found(bytes) if bytes.len() == length => {
                decode_build(&bytes, index == 0, &self.coverage, &self.dictionary).ok()
            }
            LensBytes::NotNow => return None,
            LensBytes::Found(_) | LensBytes::Gone => None,
        };
        let _ = build.set(decoded);
        build.get()?.as_ref()
    }

    /// Whether a lens these partials keep turned out not to answer (its saved bytes
    /// gone or damaged): they should be built again.
    pub fn lost_lenses(&self) -> bool {
        self.lenses.iter().any(|(_, build)| matches!(build.get(), Some(None)))
    }

    /// The partials as bytes (`from_bytes` reads them back): `to_sections`, joined. Of
    /// partials read back, only the lenses that can be had now are written.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_sections().concat()
    }

    /// The partials in sections: the head (what every report needs: the header and the
    /// first lens, which keeps what no filter changes), then each further lens's build.
    /// `from_head` reads them back from the head, the lenses when first asked for.
    pub fn to_sections(&self) -> Vec<Vec<u8>> {
        let (from, to) = self.coverage();
        let (strings, placements) = self.dictionary.parts();
        // A lens whose saved bytes cannot be had (or do not decode) is left out.
        let kept: Vec<(&Lens, &DaysBuild)> =
            (0..self.lenses.len()).filter_map(|index| Some((&self.lenses[index].0, self.build(index)?))).collect();
        let builds: Vec<Vec<u8>> =
            kept.iter().map(|(_, build)| postcard::to_stdvec(build).expect("partials always serialize")).collect();
        let header = SavedHeader {
            format: PARTIALS_FORMAT,
            from: from.to_string(),
            to: to.to_string(),
            time_zone_name: self.time_zone_name.clone(),
            currency: self.currency.clone(),
            settings: self.settings.clone(),
            strings: strings.into_iter().map(str::to_string).collect(),
            placements: placements.to_vec(),
            lenses: kept.iter().zip(&builds).map(|((lens, _), bytes)| ((*lens).clone(), bytes.len() as u64)).collect(),
        };
        let mut head = postcard::to_stdvec(&header).expect("partials always serialize");
        let mut builds = builds.into_iter();
        head.extend_from_slice(&builds.next().unwrap_or_default());
        std::iter::once(head).chain(builds).collect()
    }

    /// Partials saved by `to_bytes`: the header and the first lens (which keeps what no
    /// filter changes) decoded and checked now, the other lenses when first asked for.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<DayPartials, PartialsError> {
        DayPartials::from_bytes_at(bytes, 0)
    }

    /// `from_bytes` of the partials starting at `start` in `bytes` (kept whole: a
    /// large file is not copied).
    pub fn from_bytes_at(bytes: Vec<u8>, start: usize) -> Result<DayPartials, PartialsError> {
        let cut_short = || PartialsError::Decode("it is cut short".into());
        let header = ReadHeader::read(bytes.get(start..).ok_or_else(cut_short)?)?;
        let mut start = start + header.length;
        let mut ranges = Vec::new();
        for &(_, length) in &header.lenses {
            let end = start.checked_add(length).filter(|&end| end <= bytes.len()).ok_or_else(cut_short)?;
            ranges.push(start..end);
            start = end;
        }
        if start != bytes.len() {
            return Err(PartialsError::Decode("its lenses do not add up to its length".into()));
        }
        let first = header.decode_first(&bytes[ranges[0].clone()])?;
        Ok(header.into_partials(first, Box::new(BytesInMemory { bytes, ranges })))
    }

    /// Partials read back from their head (the first of `to_sections`), the other
    /// lenses fetched from `lenses` when first asked for.
    pub fn from_head(head: &[u8], lenses: Box<dyn SavedLenses>) -> Result<DayPartials, PartialsError> {
        let header = ReadHeader::read(head)?;
        let first = head.get(header.length..).unwrap_or_default();
        if first.len() != header.lenses[0].1 {
            return Err(PartialsError::Decode("its head is not its header and first lens".into()));
        }
        let first = header.decode_first(first)?;
        Ok(header.into_partials(first, lenses))
    }

    /// The dates covered.
    pub fn coverage(&self) -> (Date, Date) {
        let dates = &self.coverage.dates;
        (dates[0], dates[dates.len() - 1])
    }

    /// Whether these partials keep `query`'s lens under `settings` (without decoding
    /// it: a lens whose saved bytes turn out not to decode leaves `report` to say `None`).
    pub fn answers(&self, settings: &Settings, query: &Query) -> bool {
        self.lens_index(settings, query).is_some()
    }

    fn lens_index(&self, settings: &Settings, query: &Query) -> Option<usize> {
        if query.time_zone_name != self.time_zone_name
            || query.currency != self.currency
            || settings_key(settings) != self.settings
        {
            return None;
        }
        let lens = Lens::of(query);
        self.lenses.iter().position(|(kept, _)| *kept == lens)
    }

    /// The report of `query` from the partials, figure for figure the pass's; `None`
    /// when they do not answer it (another lens or settings, or an active-count window
    /// inside one local day longer than 24 hours, which a day's first and last instant
    /// cannot decide).
    pub fn report(&self, settings: &Settings, query: &Query) -> Option<Report> {
        let build = self.build(self.lens_index(settings, query)?)?;
        let shared = self.build(0)?;
        let window = Window::resolve(query).ok()?;
        let coverage_first = self.coverage.dates[0];
        let index_of = |date: Date| (date - coverage_first).get_days() as i64;
        let (first, last) = (index_of(query.from), index_of(query.to));
        let covered = self.coverage.dates.len() as i64;
        let mut totals = Totals::new(window.dates.len());
        for (offset, index) in (first..=last).enumerate() {
            if (0..covered).contains(&index) {
                totals.absorb_rekeyed(&build.days[index as usize], &mut SameDictionary, offset);
            }
        }
        let previous_first = first - window.dates.len() as i64;
        // Days before the coverage hold events: a range (or the range before it, for
        // `revenue_change`) reaching there is left to the pass.
        if shared.before > 0 && previous_first < 0 {
            return None;
        }
        for index in previous_first.max(0)..first.min(covered) {
            totals.previous_personalized_revenue += build.days[index as usize].personalized_revenue;
        }
        let (low, high) = (first.max(0), last.min(covered - 1));
        if low <= high {
            let (low, high) = (low as u32, high as u32);
            let visitors = if query.segment.is_some() { &build.segment_visitors } else { &shared.visitors };
            totals.visitors = visitors.count(low, high);
            totals.recommendation_visitors = build.recommendation_visitors.count(low, high);
            for (&label, (used, converted)) in &build.topics {
                let visitors = used.count(low, high);
                if visitors > 0 {
                    totals.topics.insert(label, (visitors, converted.count(low, high)));
                }
            }
            self.add_experiments(shared, low, high, &mut totals);
        }
        self.add_active(build, &window, &mut totals)?;
        Some(Finisher { dictionary: &self.dictionary, settings, query, window: &window }.report(totals))
    }

    /// Experiment visitors assigned in `low..=high`, with their orders up to `high`.
    fn add_experiments(&self, build: &DaysBuild, low: u32, high: u32, totals: &mut Totals) {
        for (key, &visitors) in &build.experiments {
            if key.assigned_day < low || key.assigned_day > high {
                continue;
            }
            let (mut count, mut revenue) = (0u64, 0i128);
            for &(_, net) in key.orders.iter().filter(|(day, _)| *day <= high) {
                count += 1;
                revenue += i128::from(net);
            }
            let group = totals.experiments.entry(key.experiment).or_default().entry(key.variant).or_default();
            group.add_visitors(visitors, count, revenue, i128::from(key.pre_revenue));
        }
    }

    /// Entities with an event in the 24 hours before the window's active end.
    fn add_active(&self, build: &DaysBuild, window: &Window, totals: &mut Totals) -> Option<()> {
        let (from, to) = (window.active_end - ACTIVE_WINDOW_MS, window.active_end);
        let starts = &self.coverage.day_starts;
        for (&(what, sym, day), &(first, last)) in &build.active {
            let Some(&[day_start, day_end]) = starts.get(day as usize..day as usize + 2) else { continue };
            if day_end <= from || day_start >= to {
                continue;
            }
            let active = match (day_start < from, day_end > to) {
                (false, false) => true,
                (true, false) => last >= from,
                (false, true) => first < to,
                (true, true) => return None,
            };
            if active {
                let set = match what {
                    Active::Placement => &mut totals.active_placements,
                    Active::Experiment => &mut totals.active_experiments,
                    Active::Journey => &mut totals.active_journeys,
                };
                set.insert(sym);
            }
        }
        Some(())
    }
}

/// One lens's build from its saved bytes, checked against the coverage and dictionary.
fn decode_build(
    bytes: &[u8],
    first: bool,
    coverage: &Window,
    dictionary: &Dictionary,
) -> Result<DaysBuild, PartialsError> {
    let build: DaysBuild = postcard::from_bytes(bytes).map_err(|error| PartialsError::Decode(error.to_string()))?;
    let (strings, placements) = dictionary.parts();
    let shaped = build.keeps_shared == first
        && build.days.len() == coverage.dates.len()
        && build.days.iter().all(|day| day.daily.len() == 1 && day.daily_personalized_revenue.len() == 1)
        && build.symbols_within(strings.len(), placements.len());
    if !shaped {
        return Err(PartialsError::Decode("its days do not match its coverage".into()));
    }
    Ok(build)
}

fn settings_key(settings: &Settings) -> String {
    format!("{settings:?}")
}
