//! Counters and histograms of the collector, rendered in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BOUNDS_SECONDS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

pub struct Histogram {
    counts: [AtomicU64; LATENCY_BOUNDS_SECONDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(index) = LATENCY_BOUNDS_SECONDS.iter().position(|bound| seconds <= *bound) {
            self.counts[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BOUNDS_SECONDS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Everything `/metrics` shows. Rejection reasons are field names or fixed words, so
/// their number stays small.
#[derive(Default)]
pub struct Metrics {
    pub events_taken: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub bot_events: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    pub queue_depth: AtomicUsize,
    pub fsync: Histogram,
    pub report: Histogram,
    pub seals: AtomicU64,
    /// ClickHouse backend: events in the spool, shipped, failed shipping attempts.
    pub spool_events: AtomicU64,
    pub shipped_events: AtomicU64,
    pub ship_failures: AtomicU64,
    /// Shipping passes started, and the last one finished (each takes everything in the
    /// spool when it starts): a report waits for a pass started after its request.
    pub ship_passes_started: AtomicU64,
    pub ship_passes_done: AtomicU64,
    /// ClickHouse reports computed inside the cluster by generated SQL, and those
    /// computed from its streamed rows and the spool (while the spool was shipping).
    pub reports_in_cluster: AtomicU64,
    pub reports_streamed: AtomicU64,
    /// Embedded-store reports summed from day partials, and those computed by a pass
    /// over the events (no current partials of their lens yet).
    pub reports_from_partials: AtomicU64,
    pub reports_full_pass: AtomicU64,
    /// Builds of a site's day partials finished.
    pub partials_builds: AtomicU64,
}

impl Metrics {
    pub fn reject(&self, reason: &str, events: u64) {
        let mut rejected = self.rejected.lock().expect("no thread panics while holding the metrics");
        *rejected.entry(reason.to_string()).or_default() += events;
    }

    pub fn rejected(&self, reason: &str) -> u64 {
        let rejected = self.rejected.lock().expect("no thread panics while holding the metrics");
        rejected.get(reason).copied().unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter(
            &mut out,
            "upshot_events_taken_total",
            "Events made durable.",
            self.events_taken.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_events_duplicate_total",
            "Events acknowledged as repeats of a taken event_id.",
            self.events_duplicate.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_bot_events_total",
            "Events from known bots, counted and not stored.",
            self.bot_events.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_seals_total",
            "Times the log was sealed into segments.",
            self.seals.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_shipped_events_total",
            "Events shipped to ClickHouse.",
            self.shipped_events.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_ship_failures_total",
            "Failed attempts to ship the spool to ClickHouse.",
            self.ship_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_partials_builds_total",
            "Builds of a site's day partials finished (one pass over its events for every kept lens).",
            self.partials_builds.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_reports_from_partials_total",
            "Reports summed from day partials.",
            self.reports_from_partials.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_reports_full_pass_total",
            "Reports computed by a pass over the events (no current day partials for them).",
            self.reports_full_pass.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_clickhouse_reports_in_cluster_total",
            "ClickHouse reports computed inside the cluster by generated SQL.",
            self.reports_in_cluster.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "upshot_clickhouse_reports_streamed_total",
            "ClickHouse reports computed from streamed rows and the spool (the spool was still shipping).",
            self.reports_streamed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP upshot_spool_events Events waiting in the spool for ClickHouse.\n# TYPE upshot_spool_events gauge\nupshot_spool_events {}",
            self.spool_events.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP upshot_events_rejected_total Events not taken, by reason (the field at fault, or why the request was refused).\n# TYPE upshot_events_rejected_total counter"
        );
        for (reason, count) in self.rejected.lock().expect("no thread panics while holding the metrics").iter() {
            let reason = reason.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "upshot_events_rejected_total{{reason=\"{reason}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP upshot_queue_depth Batches waiting for the writer.\n# TYPE upshot_queue_depth gauge\nupshot_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        self.fsync.render("upshot_append_fsync_seconds", "Group commits: write and fsync of the log.", &mut out);
        self.report.render("upshot_report_seconds", "Report requests, from snapshot to JSON.", &mut out);
        out
    }
}
