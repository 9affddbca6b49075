//! The one thread that appends to the store: it takes batches from a bounded queue,
//! writes every batch waiting at that moment as one group (one fsync), answers each,
//! and seals the log when it grew or went quiet. Async handlers never touch the disk.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use upshot_model::Event;
use upshot_store::{Appended, SiteRecord, Store};

use crate::metrics::Metrics;

/// A site-day with this many segments is merged into one after a seal.
const COMPACT_SEGMENTS_MIN: usize = 8;

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
}

pub enum QueueError {
    /// The queue is full: the client should retry later.
    Full,
    /// The writer stopped (shutting down, or after an error it cannot recover from).
    Closed,
}

impl WriterQueue {
    pub fn try_send(&self, request: AppendRequest) -> Result<(), QueueError> {
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
    pub queue_batches_max: usize,
    pub group_batches_max: usize,
    pub seal_events_min: u64,
    pub seal_idle: Duration,
}

/// Starts the writer thread over the store.
pub fn start(
    store: Arc<RwLock<Store>>,
    metrics: Arc<Metrics>,
    settings: WriterSettings,
) -> std::io::Result<(WriterQueue, std::thread::JoinHandle<()>)> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(settings.queue_batches_max.max(1));
    let queue = WriterQueue { sender, metrics: metrics.clone() };
    let thread = std::thread::Builder::new()
        .name("upshot-writer".into())
        .spawn(move || run(&store, &metrics, &settings, &receiver))?;
    Ok((queue, thread))
}

fn run(store: &RwLock<Store>, metrics: &Metrics, settings: &WriterSettings, receiver: &Receiver<WriterMessage>) {
    loop {
        let first = match receiver.recv_timeout(settings.seal_idle) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => {
                seal_if(store, metrics, |appended| appended > 0);
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
        write_group(store, metrics, group);
        if stop {
            break;
        }
        seal_if(store, metrics, |appended| appended >= settings.seal_events_min);
    }
    seal_if(store, metrics, |appended| appended > 0);
    tracing::info!("writer stopped; every acknowledged event is in the store");
}

fn write_group(store: &RwLock<Store>, metrics: &Metrics, group: Vec<AppendRequest>) {
    if group.is_empty() {
        return;
    }
    let batches: Vec<(&SiteRecord, &[Event])> =
        group.iter().map(|request| (request.site.as_ref(), request.events.as_slice())).collect();
    let started = Instant::now();
    let result = store.write().expect("no thread panics while holding the store").append_event_batches(&batches);
    metrics.fsync.observe(started.elapsed());
    match result {
        Ok(outcomes) => {
            for (request, outcomes) in group.into_iter().zip(outcomes) {
                let taken = outcomes.iter().filter(|outcome| **outcome == Appended::Taken).count() as u64;
                metrics.events_taken.fetch_add(taken, Ordering::Relaxed);
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
}

fn seal_if(store: &RwLock<Store>, metrics: &Metrics, due: impl Fn(u64) -> bool) {
    let mut store = store.write().expect("no thread panics while holding the store");
    if !due(store.appended_since_seal()) {
        return;
    }
    let started = Instant::now();
    match store.seal() {
        Ok(_) => {
            metrics.seals.fetch_add(1, Ordering::Relaxed);
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "sealed the log into segments");
            // Idle seals make small segments; merge a day's once they pile up.
            if let Err(error) = store.compact(COMPACT_SEGMENTS_MIN) {
                tracing::warn!(%error, "compacting segments failed; the segments stay as they are");
            }
        }
        // The events stay in the log, safe; the next seal tries again.
        Err(error) => tracing::warn!(%error, "sealing the log failed; the events stay in the log"),
    }
}
