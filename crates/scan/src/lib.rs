//! A site's report from the store on every core. Taking a [`Snapshot`] (the site's
//! segment files opened, the log's unsealed events read) needs the store for a moment;
//! computing the report from it needs no store at all, so a server can keep appending
//! while a report runs. The 16 visitor buckets are shared out between threads, first to
//! build the order book, then to run the engine's workers, whose totals are merged at
//! the end. Memory stays bounded by one bucket of every segment per thread.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use rows::{add_bucket_to_order_book, run_bucket};
use upshot_engine::days::{DayPartials, PartialsError};
use upshot_engine::{add_to_order_book, OrderBook, Query, QueryError, Report, ReportPlan, Worker};
use upshot_model::{Event, Settings};
use upshot_store::segment::{bucket_of, sort_for_segment, BucketColumns, ColumnSet, SegmentFile, BUCKETS};
use upshot_store::{SiteRecord, Store, StoreError};

pub mod clickhouse;
mod rows;
pub mod saved;
pub mod source;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Partials(#[from] PartialsError),
}

/// What a report reads: the site's segment files (open, so a later compaction that
/// removes them does not disturb the read) and the log's unsealed events.
pub struct Snapshot {
    segments: Vec<SegmentFile>,
    /// Sorted like a segment: by bucket, visitor, ts, event_id.
    tail: Vec<Event>,
    /// Damaged parts met so far; the report leaves them out.
    problems: Vec<String>,
    /// The data dir as text: warnings name files relative to it (a report goes to
    /// clients, who need not learn the server's paths).
    root: String,
    /// What the stored events are, wherever they lie (`identity`).
    identity: Option<String>,
}

/// A snapshot whose files are opened but whose log tail is not read yet
/// (`Snapshot::open`): the store is needed only to open it.
pub struct OpenSnapshot {
    segments: Vec<SegmentFile>,
    tail: upshot_store::OpenTail,
    problems: Vec<String>,
    root: String,
    /// The count and summed digests of the segments' events (`None`: an entry has no digest).
    segments_content: Option<(u64, u128)>,
}

impl Snapshot {
    /// Opens and reads a snapshot of the site's events.
    pub fn take(store: &Store, record: &SiteRecord) -> Result<Snapshot, ScanError> {
        Snapshot::open(store, record)?.read()
    }

    /// Opens the site's segment files and log files as they are now; the caller may let
    /// go of the store before `OpenSnapshot::read` reads the log tail (appends then go
    /// on meanwhile).
    pub fn open(store: &Store, record: &SiteRecord) -> Result<OpenSnapshot, ScanError> {
        let mut problems = Vec::new();
        let segments: Vec<SegmentFile> = store
            .site_segments(&record.site)
            .into_iter()
            .filter_map(|segment| segment.map_err(|error| problems.push(error.to_string())).ok())
            .collect();
        let tail = store.open_tail(record)?;
        let root = format!("{}/", store.root().display());
        let segments_content = segments_content(store, record);
        Ok(OpenSnapshot { segments, tail, problems, root, segments_content })
    }

    fn tail_of(&self, bucket: u32) -> &[Event] {
        let bucket_of_event = |event: &Event| bucket_of(event.visitor_id.as_deref().unwrap_or(""));
        let start = self.tail.partition_point(|event| bucket_of_event(event) < bucket);
        let end = self.tail.partition_point(|event| bucket_of_event(event) <= bucket);
        &self.tail[start..end]
    }

    /// The report, and what had to be skipped as damaged (sorted, each once).
    pub fn report(&self, settings: &Settings, query: &Query) -> Result<(Report, Vec<String>), ScanError> {
        let (mut reports, problems) = self.reports(settings, std::slice::from_ref(query))?;
        Ok((reports.swap_remove(0), problems))
    }

    /// Several reports (other ranges, models, filters) in one pass: the segments are
    /// read and decoded once. `queries` must not be empty.
    pub fn reports(&self, settings: &Settings, queries: &[Query]) -> Result<(Vec<Report>, Vec<String>), ScanError> {
        let (query, companions) = queries.split_first().expect("at least one query");
        let plan = ReportPlan::with_companions(settings, query, companions)?;
        let (workers, problems) = self.run(&plan);
        let mut reports = plan.finish_all(workers);
        let warnings = self.warnings(&problems);
        reports.iter_mut().for_each(|report| report.warnings = warnings.clone());
        Ok((reports, problems))
    }

    /// The identity of the snapshot's events: equal for the same events (sealed or not,
    /// in any files), different when one was added or erased. `None` when the manifest
    /// predates content digests (derived data is then not kept across processes).
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The first and last instants of the snapshot's events, if it has any.
    pub fn time_span(&self) -> Option<(i64, i64)> {
        let segments = self.segments.iter().map(|segment| (segment.header.min_ts, segment.header.max_ts));
        let tail = self.tail.iter().map(|event| (event.ts, event.ts));
        segments.chain(tail).reduce(|(low, high), (first, last)| (low.min(first), high.max(last)))
    }

    /// Day partials (ADR 0008) of every lens (each query's model and filters) over
    /// every local date the snapshot's events lie on, in one pass; `None` for a site
    /// without events. Damaged parts are left out, as from a report, and named.
    pub fn day_partials(
        &self,
        settings: &Settings,
        lenses: &[Query],
    ) -> Result<Option<(DayPartials, Vec<String>)>, ScanError> {
        let Some(lenses) = self.time_span().and_then(|span| covering(lenses, span)) else {
            return Ok(None);
        };
        let plan = ReportPlan::for_day_partials(settings, &lenses)?;
        let (workers, problems) = self.run(&plan);
        Ok(Some((plan.finish_day_partials(workers)?, problems)))
    }

    /// Runs `plan` over every bucket on every core: the order book first, then the
    /// workers; returns them and what had to be skipped as damaged (sorted, each once).
    fn run(&self, plan: &ReportPlan) -> (Vec<Worker>, Vec<String>) {
        let problems = Mutex::new(self.problems.clone());
        let note = |problem: String| problems.lock().expect("no thread panics while holding it").push(problem);
        let load = |bucket: u32, columns: ColumnSet| -> Vec<BucketColumns> {
            self.segments
                .iter()
                .filter_map(|segment| match segment.bucket(bucket, columns) {
                    Ok(loaded) => loaded,
                    Err(error) => {
                        note(error.to_string());
                        None
                    }
                })
                .collect()
        };
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, BUCKETS as usize);

        let next = AtomicU32::new(0);
        let books = parallel(threads, || {
            let mut book = OrderBook::default();
            while let Some(bucket) = take(&next) {
                for loaded in load(bucket, ColumnSet::OrdersAndRefunds) {
                    if let Err(reason) = add_bucket_to_order_book(&mut book, &loaded) {
                        note(format!("bucket {bucket}: {reason}"));
                    }
                }
            }
            book
        });
        let mut book = OrderBook::default();
        books.into_iter().for_each(|partial| book.merge(partial));
        self.tail.iter().for_each(|event| add_to_order_book(&mut book, event));

        let next = AtomicU32::new(0);
        let workers = parallel(threads, || {
            let mut worker = plan.worker();
            while let Some(bucket) = take(&next) {
                let loaded = load(bucket, ColumnSet::All);
                if let Err(reason) = run_bucket(&mut worker, plan, &book, &loaded, self.tail_of(bucket)) {
                    note(format!("bucket {bucket}: {reason}"));
                }
            }
            worker
        });
        let mut problems = problems.into_inner().expect("no thread panicked");
        problems.sort();
        problems.dedup();
        (workers, problems)
    }

    /// The warnings a report carries for damaged parts left out (named relative to
    /// the data dir: a report goes to clients, who need not learn the server's paths).
    pub fn warnings(&self, problems: &[String]) -> Vec<String> {
        problems
            .iter()
            .map(|problem| format!("damaged data left out of these figures: {}", problem.replace(&self.root, "")))
            .collect()
    }
}

/// The lenses as queries over the dates day partials cover, for events from `low` to
/// `high` (epoch milliseconds): every local date up to the latest event's, at most the
/// longest report range back (older events, a device with its clock at 1970, leave the
/// partials answering every range that looks at no day before). `None` without lenses
/// or for instants no date holds. Both sources' partials cover what this says.
pub fn covering(lenses: &[Query], (low, high): (i64, i64)) -> Option<Vec<Query>> {
    let first = lenses.first()?;
    let date =
        |ts: i64| jiff::Timestamp::from_millisecond(ts).map(|instant| instant.to_zoned(first.time_zone.clone()).date());
    let (Ok(from), Ok(to)) = (date(low), date(high)) else {
        return None;
    };
    let longest = jiff::Span::new().days(upshot_engine::query::DAYS_MAX - 1);
    let from = to.checked_sub(longest).map_or(from, |earliest| from.max(earliest));
    Some(lenses.iter().map(|lens| Query { from, to, now_ms: None, ..lens.clone() }).collect())
}

/// The report of a site straight from the store, and what had to be skipped as damaged.
pub fn site_report(store: &Store, record: &SiteRecord, query: &Query) -> Result<(Report, Vec<String>), ScanError> {
    Snapshot::take(store, record)?.report(&record.settings, query)
}

/// The count and summed digests of the site's segments' events, from the manifest.
fn segments_content(store: &Store, record: &SiteRecord) -> Option<(u64, u128)> {
    let (mut events, mut content) = (0u64, 0u128);
    for entry in store.manifest().site_segments(&record.site) {
        let digest = u128::from_str_radix(entry.content.as_deref()?, 16).ok()?;
        events += entry.events;
        content = content.wrapping_add(digest);
    }
    Some((events, content))
}

impl OpenSnapshot {
    /// Reads the log tail (no store needed) and makes the snapshot.
    pub fn read(self) -> Result<Snapshot, ScanError> {
        let OpenSnapshot { segments, tail: open_tail, mut problems, root, segments_content } = self;
        let mut tail: Vec<Event> = Vec::new();
        let summary = open_tail.scan(|event| tail.push(event))?;
        problems.extend(summary.problems);
        sort_for_segment(&mut tail);
        // What the stored events are, wherever they lie: the segments' and the tail's.
        let identity = segments_content.map(|(events, content)| {
            let events = events + tail.len() as u64;
            let content = content.wrapping_add(upshot_store::content_digest(tail.iter()));
            format!("{events}-{content:032x}")
        });
        Ok(Snapshot { segments, tail, problems, root, identity })
    }
}

fn take(next: &AtomicU32) -> Option<u32> {
    let bucket = next.fetch_add(1, Ordering::Relaxed);
    (bucket < BUCKETS).then_some(bucket)
}

/// Runs `work` on `threads` threads and collects their results.
fn parallel<T: Send>(threads: usize, work: impl Fn() -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(&work)).collect();
        handles.into_iter().map(|handle| handle.join().expect("a report thread panicked")).collect()
    })
}

/// A report's parameters as text, from the command line or a URL, checked.
#[derive(Debug, Clone, Default)]
pub struct ReportParams {
    pub from: String,
    pub to: String,
    pub page_type: Option<String>,
    pub placement: Option<String>,
    pub kind: Option<String>,
    pub model: Option<String>,
    /// `DIMENSION:VALUE` (SPEC section 9.2).
    pub segment: Option<String>,
}

/// A parameter that is not valid; the message names it and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

impl ReportParams {
    /// The engine's query for the site. `flag` spells a parameter as the caller's user
    /// knows it (`--from` on the command line, `from` in a URL).
    pub fn query(&self, record: &SiteRecord, flag: impl Fn(&str) -> String) -> Result<Query, ParamError> {
        let model_text = self.model.as_deref().unwrap_or("last");
        let model = upshot_engine::Model::parse(model_text).ok_or_else(|| {
            ParamError(format!("{} {model_text:?} is not last, first, linear, time_decay or position", flag("model")))
        })?;
        let kind = match &self.kind {
            Some(kind) => Some(upshot_model::Kind::parse(kind).ok_or_else(|| {
                ParamError(format!(
                    "{} {kind:?} is not recommendation, popup, notification, block, widget or other",
                    flag("kind")
                ))
            })?),
            None => None,
        };
        let time_zone = upshot_model::site::validate_time_zone(&record.timezone)
            .map_err(|error| ParamError(format!("the site's time zone: {error}")))?;
        let date = |name: &str, text: &str| -> Result<jiff::civil::Date, ParamError> {
            text.parse().map_err(|_| ParamError(format!("{} {text:?} is not a date like 2024-05-31", flag(name))))
        };
        let (from, to) = (date("from", &self.from)?, date("to", &self.to)?);
        let segment = match &self.segment {
            Some(text) => Some(
                upshot_engine::query::Segment::parse(text)
                    .map_err(|error| ParamError(format!("{} {text:?}: {error}", flag("segment"))))?,
            ),
            None => None,
        };
        let query = Query {
            model,
            page_type: self.page_type.clone(),
            placement: self.placement.clone(),
            kind,
            segment,
            ..Query::new(from, to, time_zone, &record.timezone, &record.currency)
        };
        // An empty or too long range is the asker's to fix, found before any work.
        upshot_engine::query::Window::resolve(&query).map_err(|error| ParamError(error.to_string()))?;
        Ok(query)
    }
}
