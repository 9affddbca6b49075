//! The one thread that appends to the store: it takes batches from a bounded queue,
//! writes every batch waiting at that moment as one group (one fsync), and answers
//! each. Beside it, a sealer thread moves the log into segments when it grew or went
//! quiet, holding the store only for the brief first and last steps, so appends go on
//! while segments are written. Async handlers never touch the disk.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use upshot_model::Event;
use upshot_store::{Appended, CompactionPolicy, SiteRecord, Store};

use crate::metrics::Metrics;

/// A site-day with this many segments is merged into one after a seal.
const COMPACT_SEGMENTS_MIN: usize = 8;
/// Site-days merged per compaction pass at most.
const COMPACT_DAYS_PER_PASS: usize = 4;
/// With no seal asked for this long, the sealer looks for segments to merge.
const COMPACT_IDLE: Duration = Duration::from_secs(5);

pub type AppendReply = Result<Vec<Appended>, String>;

pub struct AppendRequest {
    pub site: Arc<SiteRecord>,
    pub events: Vec<Event>,
    pub reply: tokio::sync::oneshot::Sender<AppendReply>,
}

pub enum WriterMessage {
    Append(AppendRequest),
    /// Write what came before, seal, and stop.
    Shutdown,
}

/// The sending side, shared by the handlers.
#[derive(Clone)]
pub struct WriterQueue {
    sender: SyncSender<WriterMessage>,
    metrics: Arc<Metrics>,
    spool_events_max: Option<u64>,
}

pub enum QueueError {
    /// The queue is full: the client should retry later.
    Full,
    /// The spool for ClickHouse is full (it is slow or down): retry later.
    SpoolFull,
    /// The writer stopped (shutting down, or after an error it cannot recover from).
    Closed,
}

impl WriterQueue {
    pub fn try_send(&self, request: AppendRequest) -> Result<(), QueueError> {
        if self.spool_events_max.is_some_and(|max| self.metrics.spool_events.load(Ordering::Relaxed) >= max) {
            return Err(QueueError::SpoolFull);
        }
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        self.sender.try_send(WriterMessage::Append(request)).map_err(|error| {
            self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
            match error {
                TrySendError::Full(_) => QueueError::Full,
                TrySendError::Disconnected(_) => QueueError::Closed,
            }
        })
    }

    /// Asks the writer to finish; waits for room in the queue, so call it from a
    /// blocking context.
    pub fn shutdown(&self) {
        let _ = self.sender.send(WriterMessage::Shutdown);
    }
}

pub struct WriterSettings {
    /// Where the log is shipped, with the ClickHouse backend (`None`: sealed locally).
    pub clickhouse: Option<upshot_clickhouse::Node>,
    /// With ClickHouse: events the spool may hold before appends are refused.
    pub spool_events_max: u64,
    pub queue_batches_max: usize,
    pub group_batches_max: usize,
    pub seal_events_min: u64,
    pub seal_idle: Duration,
}

/// Starts the writer thread (and its sealer) over the store.
pub fn start(
    store: Arc<RwLock<Store>>,
    metrics: Arc<Metrics>,
    settings: WriterSettings,
) -> std::io::Result<(WriterQueue, std::thread::JoinHandle<()>)> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(settings.queue_batches_max.max(1));
    let spool_events_max = settings.clickhouse.as_ref().map(|_| settings.spool_events_max);
    let queue = WriterQueue { sender, metrics: metrics.clone(), spool_events_max };
    // One seal may wait while another runs; more requests than that add nothing.
    let (seal_sender, seal_receiver) = std::sync::mpsc::sync_channel::<()>(1);
    let sealer_store = store.clone();
    let sealer_metrics = metrics.clone();
    let clickhouse = settings.clickhouse.clone();
    let sealer = std::thread::Builder::new().name("upshot-sealer".into()).spawn(move || {
        if let Some(node) = clickhouse {
            return crate::shipper::run(&sealer_store, &sealer_metrics, &node, &seal_receiver);
        }
        // Sealing is background work: on two cores, a seal at equal priority doubled
        // the p99 latency of acknowledgements.
        crate::priority::lower_this_threads_priority();
        loop {
            match seal_receiver.recv_timeout(COMPACT_IDLE) {
                Ok(()) => seal_in_steps(&sealer_store, &sealer_metrics),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            compact_in_steps(&sealer_store);
        }
        // The writer stopped: seal what is left, so the data dir is tidy at exit.
        seal_in_steps(&sealer_store, &sealer_metrics);
    })?;
    let thread = std::thread::Builder::new().name("upshot-writer".into()).spawn(move || {
        run(&store, &metrics, &settings, &receiver, &seal_sender);
        drop(seal_sender);
        let _ = sealer.join();
        tracing::info!("writer stopped; every acknowledged event is in the store");
    })?;
    Ok((queue, thread))
}

fn run(
    store: &RwLock<Store>,
    metrics: &Metrics,
    settings: &WriterSettings,
    receiver: &Receiver<WriterMessage>,
    seal: &SyncSender<()>,
) {
    let appended = || store.read().expect("no thread panics while holding the store").appended_since_seal();
    loop {
        let first = match receiver.recv_timeout(settings.seal_idle) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => {
                if appended() > 0 {
                    let _ = seal.try_send(());
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group = Vec::new();
        let mut stop = false;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                WriterMessage::Append(request) => {
                    metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    group.push(request);
                }
                WriterMessage::Shutdown => {
                    stop = true;
                    break;
                }
            }
            if group.len() < settings.group_batches_max {
                next = receiver.try_recv().ok();
            }
        }
        let spooled = settings.clickhouse.is_some();
        write_group(store, metrics, group, spooled);
        if stop {
            break;
        }
        if spooled {
            // Everything appended is in the spool until shipped: ship it now.
            let _ = seal.try_send(());
        } else if appended() >= settings.seal_events_min {
            let _ = seal.try_send(());
        }
    }
}

/// Appends the group; returns the events taken. With ClickHouse (`spooled`), the spool's
/// count grows before any client hears its events were taken: a report that finds the
/// spool empty knows every acknowledged event is in the cluster.
fn write_group(store: &RwLock<Store>, metrics: &Metrics, group: Vec<AppendRequest>, spooled: bool) -> u64 {
    if group.is_empty() {
        return 0;
    }
    let mut taken_total = 0;
    let batches: Vec<(&SiteRecord, &[Event])> =
        group.iter().map(|request| (request.site.as_ref(), request.events.as_slice())).collect();
    let started = Instant::now();
    let result = {
        let mut store = store.write().expect("no thread panics while holding the store");
        let result = store.append_event_batches(&batches);
        // Counted while the store is held: a shipping pass, which takes the log under
        // the same lock, never subtracts events before they were added.
        if let (true, Ok(outcomes)) = (spooled, &result) {
            let taken = outcomes.iter().flatten().filter(|outcome| **outcome == Appended::Taken).count();
            metrics.spool_events.fetch_add(taken as u64, Ordering::SeqCst);
        }
        result
    };
    metrics.fsync.observe(started.elapsed());
    match result {
        Ok(outcomes) => {
            for (request, outcomes) in group.into_iter().zip(outcomes) {
                let taken = outcomes.iter().filter(|outcome| **outcome == Appended::Taken).count() as u64;
                metrics.events_taken.fetch_add(taken, Ordering::Relaxed);
                taken_total += taken;
                metrics.events_duplicate.fetch_add(outcomes.len() as u64 - taken, Ordering::Relaxed);
                let _ = request.reply.send(Ok(outcomes));
            }
        }
        Err(error) => {
            // Nothing of the group was taken; each client hears why and may retry.
            tracing::error!(%error, batches = group.len(), "appending to the log failed; the batches were refused");
            for request in group {
                metrics.reject("store_error", request.events.len() as u64);
                let _ = request.reply.send(Err(error.to_string()));
            }
        }
    }
    taken_total
}

/// Seals the log; the store is locked only for the seal's first and last steps.
fn seal_in_steps(store: &RwLock<Store>, metrics: &Metrics) {
    let lock = || store.write().expect("no thread panics while holding the store");
    let started = Instant::now();
    let plan = match lock().begin_seal() {
        Ok(Some(plan)) => plan,
        Ok(None) => return,
        Err(error) => return tracing::warn!(%error, "sealing the log failed; the events stay in the log"),
    };
    // The long step, with the store free for appends and reports.
    let sealed = plan
        .write_segments()
        .and_then(|written| lock().finish_seal(written))
        .and_then(|(report, sealed_log)| sealed_log.remove().map(|()| report));
    match sealed {
        Ok(report) => {
            metrics.seals.fetch_add(1, Ordering::Relaxed);
            let elapsed_ms = started.elapsed().as_millis() as u64;
            tracing::info!(
                events = report.events,
                segments = report.segments,
                elapsed_ms,
                "sealed the log into segments"
            );
        }
        // The events stay in the log, safe; the next seal tries again.
        Err(error) => tracing::warn!(%error, "sealing the log failed; the events stay in the log"),
    }
}

/// Merges the segments of days that piled up, and of closed days (before yesterday,
/// UTC) that have more than one, a few days per call so a stop never waits long; the
/// store is locked only to plan and to swap the files in.
fn compact_in_steps(store: &RwLock<Store>) {
    let yesterday = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().yesterday();
    let policy = CompactionPolicy {
        segments_min: COMPACT_SEGMENTS_MIN,
        closed_before_day: yesterday.ok().map(|day| day.to_string()),
        days_max: COMPACT_DAYS_PER_PASS,
    };
    let plan = store.read().expect("no thread panics while holding the store").plan_compaction_with(&policy);
    if plan.is_empty() {
        return;
    }
    let merged = plan
        .write_segments()
        .and_then(|merged| store.write().expect("no thread panics while holding the store").finish_compaction(merged));
    match merged {
        Ok(report) => tracing::info!(
            merged_segments = report.merged_segments,
            written_segments = report.written_segments,
            "compacted segments"
        ),
        Err(error) => tracing::warn!(%error, "compacting segments failed; the segments stay as they are"),
    }
}
