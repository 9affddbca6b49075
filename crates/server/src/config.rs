//! The collector's limits: every queue, body and rate has one, each configurable.

/// Limits of `upshot serve`; the defaults suit one shop on a small machine.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body as sent (possibly gzip'd).
    pub body_bytes_max: usize,
    /// Largest request body once gunzipped.
    pub decompressed_bytes_max: usize,
    /// Memory all request bodies being read may hold at once, with their parsed events
    /// until answered; past it requests wait briefly, then get 503 with Retry-After.
    pub body_memory_bytes_max: usize,
    /// Most events in one request.
    pub batch_events_max: usize,
    /// Sustained events per second one key may send (token bucket).
    pub key_events_per_second: u32,
    /// Events one key may send at once above its sustained rate.
    pub key_events_burst: u32,
    /// Batches waiting for the writer; when full, requests get 503 with Retry-After.
    pub queue_batches_max: usize,
    /// Batches written together under one fsync (group commit).
    pub group_batches_max: usize,
    /// Open connections; more wait in the kernel's accept queue.
    pub connections_max: usize,
    /// A request's head must arrive within this long (counted from the connection's
    /// start or the previous answer: also how long an idle keep-alive connection stays).
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive within this long after its head.
    pub body_read_timeout_ms: u64,
    /// A connection whose answers the client does not read for this long is closed.
    pub write_stall_timeout_ms: u64,
    /// How far past the time of receipt an event's `ts` may lie.
    pub future_ms_max: i64,
    /// A report request that takes longer is answered 503.
    pub report_seconds_max: u64,
    /// Reports computed at once; more are answered 503.
    pub reports_in_flight_max: usize,
    /// The log is sealed into segments when this many events were appended...
    pub seal_events_min: u64,
    /// ...or when anything was appended and no batch came for this long.
    pub seal_idle_ms: u64,
    /// With ClickHouse: events the spool may hold (while ClickHouse is slow or down)
    /// before appends are refused with 503.
    pub spool_events_max: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body_bytes_max: 1 << 20,
            decompressed_bytes_max: 16 << 20,
            body_memory_bytes_max: 128 << 20,
            batch_events_max: 10_000,
            key_events_per_second: 50_000,
            key_events_burst: 100_000,
            queue_batches_max: 256,
            group_batches_max: 512,
            connections_max: 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            write_stall_timeout_ms: 30_000,
            future_ms_max: 24 * 3_600_000,
            report_seconds_max: 30,
            reports_in_flight_max: 2,
            seal_events_min: 2_000_000,
            seal_idle_ms: 5_000,
            spool_events_max: 5_000_000,
        }
    }
}
