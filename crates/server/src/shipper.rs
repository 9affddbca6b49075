//! With the ClickHouse backend, the log is a spool: the shipper thread takes what was
//! appended (in the same three steps as a seal), inserts it into ClickHouse's
//! distributed table synchronously (every shard has it before the insert returns),
//! and only then drops it from the log. ClickHouse slow or down: the events wait in
//! the spool (bounded: the writer answers 503 when it is full) and go when it is back.
//! Delivery is at least once; rows of one event are identical and stored once.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use upshot_clickhouse::Node;
use upshot_store::Store;

use crate::metrics::Metrics;

/// The spool is shipped this often while events arrive (sooner when a full insert's
/// worth is waiting).
const SHIP_INTERVAL: Duration = Duration::from_millis(500);
/// Waits between failed attempts, doubling up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// At shutdown, how long the shipper keeps trying before leaving the rest in the spool
/// (it is durable there and goes at the next start).
const SHUTDOWN_SHIPPING: Duration = Duration::from_secs(10);

/// Ships everything in the spool once; returns the events shipped.
fn ship_once(store: &RwLock<Store>, metrics: &Metrics, node: &Node) -> Result<u64, String> {
    let pass = metrics.ship_passes_started.fetch_add(1, Ordering::SeqCst) + 1;
    let shipped = ship_spool(store, metrics, node)?;
    metrics.ship_passes_done.fetch_max(pass, Ordering::SeqCst);
    Ok(shipped)
}

/// Ships what is in the spool now.
fn ship_spool(store: &RwLock<Store>, metrics: &Metrics, node: &Node) -> Result<u64, String> {
    let lock = || store.write().expect("no thread panics while holding the store");
    let Some(plan) = lock().begin_seal().map_err(|error| error.to_string())? else {
        return Ok(0);
    };
    let groups = plan.read_events().map_err(|error| error.to_string())?;
    let mut shipped = 0u64;
    for (site, events) in &groups {
        upshot_clickhouse::insert_events(node, site, events).map_err(|error| error.to_string())?;
        shipped += events.len() as u64;
    }
    let (_, delivered_log) = lock().finish_seal(plan.delivered(shipped)).map_err(|error| error.to_string())?;
    delivered_log.remove().map_err(|error| error.to_string())?;
    // One atomic step: the writer adds to the count meanwhile (a load then a store
    // would lose what it added).
    let _ = metrics
        .spool_events
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |count| Some(count.saturating_sub(shipped)));
    metrics.shipped_events.fetch_add(shipped, Ordering::Relaxed);
    Ok(shipped)
}

/// The shipper thread's loop: ship when asked (after appends) or every half second;
/// back off while ClickHouse fails; at shutdown, try for a while, then leave the rest.
pub fn run(store: &RwLock<Store>, metrics: &Metrics, node: &Node, asked: &Receiver<()>) {
    let mut backoff = BACKOFF_MIN;
    let mut failing_since: Option<Instant> = None;
    let mut last_pass = Instant::now();
    loop {
        let wait = SHIP_INTERVAL.saturating_sub(last_pass.elapsed()).max(Duration::from_millis(1));
        let stopping = matches!(asked.recv_timeout(wait), Err(RecvTimeoutError::Disconnected));
        // Asked after every append: a pass waits for the interval or a full insert's
        // worth of events, so that ClickHouse gets a few large inserts a second (each
        // insert makes parts every shard merges later), not one per append.
        let enough = metrics.spool_events.load(Ordering::SeqCst) >= upshot_clickhouse::INSERT_ROWS_MAX as u64;
        if !stopping && !enough && last_pass.elapsed() < SHIP_INTERVAL {
            continue;
        }
        last_pass = Instant::now();
        let deadline = Instant::now() + if stopping { SHUTDOWN_SHIPPING } else { Duration::ZERO };
        loop {
            match ship_once(store, metrics, node) {
                Ok(_) => {
                    if let Some(since) = failing_since.take() {
                        tracing::info!(
                            down_ms = since.elapsed().as_millis() as u64,
                            "ClickHouse takes events again; the spool drains"
                        );
                    }
                    backoff = BACKOFF_MIN;
                    break;
                }
                Err(error) => {
                    metrics.ship_failures.fetch_add(1, Ordering::Relaxed);
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        tracing::warn!(%error, node = %node.url(), "shipping to ClickHouse failed; events wait in the spool");
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                    std::thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        if failing_since.is_some() && !stopping {
            std::thread::sleep(backoff);
        }
        if stopping {
            if failing_since.is_some() {
                tracing::warn!("stopping with events still in the spool; they are shipped at the next start");
            }
            return;
        }
    }
}
