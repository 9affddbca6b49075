//! upshot's HTTP collector (`upshot serve`): events from browsers and backends, made
//! durable before they are acknowledged; the report API; the tracker; metrics.
//! Handlers are async and never touch the disk: appends go through the writer thread's
//! bounded queue, reports and key reloads run in `spawn_blocking`.

pub mod config;
mod dashboard;
mod device;
mod dropin;
mod error;
mod ingest;
pub mod keys;
mod listener;
mod memory;
pub mod metrics;
mod partials;
mod priority;
mod rate;
mod report;
mod shipper;
pub mod shopify;
mod signin;
mod tracker;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use upshot_store::{Store, StoreError};

pub use config::Limits;
use keys::{Authorized, KeyRing};
use metrics::Metrics;
pub use signin::admin_password_weakness;
use writer::{WriterQueue, WriterSettings};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("listening on {address}: {source} (is another program using it? choose another with --listen)")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("starting the server's threads: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    WeakAdminPassword(String),
}

/// One part in this many of the request bodies' memory is kept for small plain bodies.
const SMALL_BODIES_SHARE: usize = 4;

/// Key rings are reloaded at most this often when an unknown key comes in.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// Site records (settings, keys) are reloaded this often in any case.
const SITE_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) struct AppState {
    store: Arc<RwLock<Store>>,
    keys: RwLock<Arc<KeyRing>>,
    keys_loaded: Mutex<Instant>,
    limits: Limits,
    metrics: Arc<Metrics>,
    writer: WriterQueue,
    rate: rate::RateLimiter,
    /// Memory for request bodies being read and their events until answered: small
    /// plain bodies (the tracker's) have their own share, so a flood of large or
    /// compressed ones cannot starve them.
    small_bodies: Arc<memory::Budget>,
    large_bodies: Arc<memory::Budget>,
    /// Large bodies decompressed and parsed at once: one per core.
    large_body_slots: Arc<tokio::sync::Semaphore>,
    /// Reports computed at once for requests; a permit lives as long as its
    /// computation, not its request (a request that timed out leaves it running).
    reports: Arc<tokio::sync::Semaphore>,
    /// Reports computed with no request waiting (refreshes): one at a time.
    background_reports: Arc<tokio::sync::Semaphore>,
    report_cache: report::ReportCache,
    partials: Arc<partials::PartialsCache>,
    /// When each site's dashboard was last opened: the views one control away from its
    /// default view are kept ready only for sites someone looks at.
    dashboard_visits: Mutex<HashMap<String, Instant>>,
    sessions: dashboard::Sessions,
    /// SHA-256 of the admin password, when one is set.
    admin_password_sha256: Option<[u8; 32]>,
    /// Failed dashboard sign-ins, per client, per site and overall.
    sign_in_guard: signin::SignInGuard,
    /// Damaged stored parts met by ingest and reports: `/healthz` says degraded.
    damage: upshot_store::DamageLog,
    /// The ClickHouse backend's node, when reports come from there.
    clickhouse: Option<upshot_clickhouse::Node>,
}

impl AppState {
    /// Where reports come from: this data dir's store, or the ClickHouse cluster (with
    /// this data dir's log as the spool; `shipped`: everything acknowledged is there).
    /// The one place the server chooses a source.
    pub(crate) fn source(&self, shipped: bool) -> upshot_scan::source::Source<'_> {
        match &self.clickhouse {
            Some(node) => upshot_scan::source::Source::Cluster { node, spool: &self.store, shipped },
            None => upshot_scan::source::Source::Embedded(&self.store),
        }
    }

    /// The site and role a key opens, reloading the sites once if it is unknown (a
    /// site created while the server runs).
    async fn authorize(self: &Arc<Self>, key: &str) -> Option<Authorized> {
        let current = self.keys.read().expect("no thread panics while holding the keys").clone();
        if let Some(found) = current.authorize(key) {
            return Some(found);
        }
        let due = {
            let mut loaded = self.keys_loaded.lock().expect("no thread panics while holding it");
            let due = loaded.elapsed() >= KEY_RELOAD_INTERVAL;
            if due {
                *loaded = Instant::now();
            }
            due
        };
        if !due {
            return None;
        }
        self.reload_keys().await;
        let current = self.keys.read().expect("no thread panics while holding the keys").clone();
        current.authorize(key)
    }

    async fn reload_keys(self: &Arc<Self>) {
        let state = self.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let store = state.store.read().expect("no thread panics while holding the store");
            KeyRing::load(&store)
        })
        .await;
        match loaded {
            Ok(Ok(ring)) => *self.keys.write().expect("no thread panics while holding the keys") = Arc::new(ring),
            Ok(Err(error)) => tracing::warn!(%error, "reloading the sites failed; the previous keys stay"),
            Err(error) => tracing::warn!(%error, "reloading the sites failed; the previous keys stay"),
        }
    }
}

/// What `serve` needs besides the store.
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub limits: Limits,
    /// Signs in to every site's dashboard (besides each site's secret key).
    pub admin_password: Option<String>,
    /// Ship events to this ClickHouse node's distributed table (the local log becomes
    /// a spool) and compute reports from ClickHouse; `None`: the embedded store.
    pub clickhouse: Option<upshot_clickhouse::Node>,
}

fn router(state: Arc<AppState>) -> Router {
    // Event bodies are read by their handlers once the key is checked; every other
    // body (Shopify's, the sign-in form) by `read_body_in_time` before its handler.
    let events = Router::new()
        .route("/v1/events", post(ingest::post_events).options(ingest::preflight))
        .route("/v1/beacon", post(ingest::post_events).options(ingest::preflight))
        .route("/mp/collect", post(dropin::ga4_collect).options(ingest::preflight))
        .route("/v1/track", post(dropin::segment_track).options(ingest::preflight))
        .route("/v1/t", post(dropin::segment_track).options(ingest::preflight))
        .route("/v1/page", post(dropin::segment_page).options(ingest::preflight))
        .route("/v1/p", post(dropin::segment_page).options(ingest::preflight))
        .route("/v1/batch", post(dropin::segment_batch).options(ingest::preflight))
        .route("/v1/b", post(dropin::segment_batch).options(ingest::preflight))
        // analytics.js sends these too: taken, each call answered as not counted.
        .route("/v1/identify", post(dropin::segment_other).options(ingest::preflight))
        .route("/v1/i", post(dropin::segment_other).options(ingest::preflight))
        .route("/v1/group", post(dropin::segment_other).options(ingest::preflight))
        .route("/v1/g", post(dropin::segment_other).options(ingest::preflight))
        .route("/v1/alias", post(dropin::segment_other).options(ingest::preflight))
        .route("/v1/a", post(dropin::segment_other).options(ingest::preflight));
    let others = Router::new()
        .route("/v1/pixel.gif", get(ingest::pixel))
        .route("/v1/sites/{site}/report", get(report::get_report))
        .route("/v1/sites/{site}/shopify", post(shopify::post_webhook))
        .route("/t.js", get(tracker::script))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/", get(dashboard::home))
        .route("/signin", get(dashboard::sign_in_form).post(dashboard::sign_in))
        .route("/signout", post(dashboard::sign_out))
        .route("/switch", get(dashboard::switch))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/sites/{site}/", get(dashboard::overview))
        .route("/sites/{site}", get(dashboard::overview))
        .route("/sites/{site}/{*rest}", get(dashboard::page))
        .layer(axum::extract::DefaultBodyLimit::max(state.limits.body_bytes_max))
        .layer(axum::middleware::from_fn_with_state(state.clone(), read_body_in_time));
    events.merge(others).with_state(state)
}

/// The largest sign-in or sign-out form.
const FORM_BYTES_MAX: usize = 16 << 10;

/// Reads a request's whole body before its handler, within `body_read_timeout_ms` (a
/// client sending it a byte at a time would otherwise hold its connection for ever,
/// 408), `body_bytes_max` (413) and the memory budget (503): the same reading as event
/// bodies. The memory stays reserved until the handler answered.
async fn read_body_in_time(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    if matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS) {
        // A page or a report takes no body: whatever was sent is not read (the
        // connection closes after the answer rather than waiting for it).
        return next.run(axum::extract::Request::from_parts(parts, axum::body::Body::empty())).await;
    }
    // Shopify's webhooks may be large; the dashboard's forms are a few fields.
    let limit = if parts.uri.path().ends_with("/shopify") { state.limits.body_bytes_max } else { FORM_BYTES_MAX };
    match ingest::receive_body(&state, &parts.headers, body, limit).await {
        Ok((bytes, _reservation)) => {
            next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
        }
        Err(refusal) => {
            // Browsers (the tracker) may read the refusal too.
            let mut response = refusal.into_response();
            ingest::add_cors(response.headers_mut());
            response
        }
    }
}

async fn metrics_text(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// `ok`, or `degraded` with how many damaged parts were met (their names, which hold
/// file paths, are for the operator: the log and `upshot verify`); the server still
/// takes events and answers reports (leaving the damage out, with warnings), so the
/// status stays 200.
async fn healthz(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> axum::Json<serde_json::Value> {
    let sites = state.keys.read().expect("no thread panics while holding the keys").site_count();
    let depth = state.metrics.queue_depth.load(std::sync::atomic::Ordering::Relaxed);
    let damaged = state.damage.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len();
    if damaged == 0 {
        return axum::Json(serde_json::json!({"status": "ok", "sites": sites, "queue_depth": depth}));
    }
    axum::Json(serde_json::json!({"status": "degraded", "sites": sites, "queue_depth": depth,
        "damaged_parts": damaged,
        "action": "the server's log and `upshot verify` name every damaged part; restore them from a backup"}))
}

/// A server running on its own threads.
pub struct RunningServer {
    pub address: SocketAddr,
    store: Arc<RwLock<Store>>,
    thread: std::thread::JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Waits until the server stopped (its shutdown future completed) and everything
    /// queued was written and sealed.
    pub fn join(self) -> Result<(), ServerError> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(ServerError::Runtime(std::io::Error::other("the server thread panicked"))))
    }

    /// The store the server writes to. Holding its write lock stalls the writer, as a
    /// slow disk would: tests use it to fill the queue.
    pub fn store(&self) -> &Arc<RwLock<Store>> {
        &self.store
    }
}

/// Starts serving on a thread of its own and returns once the address is bound. When
/// `shutdown` completes, the server stops taking requests, lets the ones in flight
/// finish, writes and seals everything queued, and stops.
pub fn start(
    store: Store,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningServer, ServerError> {
    if let Some(weakness) = options.admin_password.as_deref().and_then(signin::admin_password_weakness) {
        return Err(ServerError::WeakAdminPassword(weakness));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("upshot-http")
        .build()
        .map_err(ServerError::Runtime)?;
    let keys = KeyRing::load(&store)?;
    let damage = store.damage_log();
    let store = Arc::new(RwLock::new(store));
    let metrics = Arc::new(Metrics::default());
    if options.clickhouse.is_some() {
        // Events left in the spool by an earlier run count against its bound too.
        let store = store.read().expect("no other thread yet");
        let mut spooled = 0u64;
        for site in store.site_ids()? {
            store.scan_tail(&store.load_site(&site)?, |_| spooled += 1)?;
        }
        metrics.spool_events.store(spooled, std::sync::atomic::Ordering::Relaxed);
    }
    let limits = options.limits;
    let settings = WriterSettings {
        clickhouse: options.clickhouse.clone(),
        spool_events_max: limits.spool_events_max,
        queue_batches_max: limits.queue_batches_max,
        group_batches_max: limits.group_batches_max,
        seal_events_min: limits.seal_events_min,
        seal_idle: Duration::from_millis(limits.seal_idle_ms),
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(options.listen))
        .map_err(|source| ServerError::Listen { address: options.listen, source })?;
    let address = listener.local_addr().map_err(|source| ServerError::Listen { address: options.listen, source })?;
    let (writer, writer_thread) =
        writer::start(store.clone(), metrics.clone(), settings).map_err(ServerError::Runtime)?;
    let state = Arc::new(AppState {
        store: store.clone(),
        keys: RwLock::new(Arc::new(keys)),
        keys_loaded: Mutex::new(Instant::now()),
        rate: rate::RateLimiter::new(limits.key_events_per_second, limits.key_events_burst),
        small_bodies: memory::Budget::new(limits.body_memory_bytes_max / SMALL_BODIES_SHARE),
        large_body_slots: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
        )),
        large_bodies: memory::Budget::new(
            limits.body_memory_bytes_max - limits.body_memory_bytes_max / SMALL_BODIES_SHARE,
        ),
        reports: Arc::new(tokio::sync::Semaphore::new(limits.reports_in_flight_max.max(1))),
        background_reports: Arc::new(tokio::sync::Semaphore::new(1)),
        report_cache: report::ReportCache::default(),
        partials: Arc::new(partials::PartialsCache::default()),
        dashboard_visits: Mutex::new(HashMap::new()),
        sessions: dashboard::Sessions::default(),
        admin_password_sha256: options.admin_password.as_deref().map(keys::sha256),
        sign_in_guard: signin::SignInGuard::default(),
        damage,
        clickhouse: options.clickhouse.clone(),
        limits,
        metrics,
        writer: writer.clone(),
    });
    {
        // Sites with saved day partials (in the data dir, or maybe in the cluster):
        // their first reports wait for them to be read back.
        let store = state.store.read().expect("no thread panics while holding the store");
        for site in store.site_ids()? {
            if state.clickhouse.is_some() || store.derived_path(&site, upshot_scan::saved::PARTIALS_FILE).is_file() {
                state.partials.expect_read_back(&site);
            }
        }
    }
    let thread = std::thread::Builder::new()
        .name("upshot-server".into())
        .spawn(move || {
            let served = runtime.block_on(async {
                let refresher = tokio::spawn(refresh_sites(state.clone()));
                let warmer = tokio::spawn(partials::keep_partials_current(state.clone()));
                let write_stall_max = Duration::from_millis(state.limits.write_stall_timeout_ms);
                let listener = listener::LimitedListener::new(listener, state.limits.connections_max, write_stall_max);
                let header_read_timeout = Duration::from_millis(state.limits.header_read_timeout_ms);
                listener::serve(listener, router(state.clone()), header_read_timeout, shutdown).await;
                refresher.abort();
                warmer.abort();
                state.partials.close();
                Ok(())
            });
            // Every request has been answered; what they queued is written, then sealed.
            writer.shutdown();
            drop(state);
            let _ = writer_thread.join();
            runtime.shutdown_timeout(Duration::from_secs(5));
            served
        })
        .map_err(ServerError::Runtime)?;
    Ok(RunningServer { address, store, thread })
}

async fn refresh_sites(state: Arc<AppState>) {
    loop {
        tokio::time::sleep(SITE_REFRESH_INTERVAL).await;
        state.reload_keys().await;
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight, then writing and sealing the log");
}
