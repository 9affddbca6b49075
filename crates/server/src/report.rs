//! `GET /v1/sites/{site}/report`: the same JSON as `upshot report --format json`, for the
//! site's secret key only, computed off the async threads within a time limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use upshot_engine::Report;
use upshot_scan::ReportParams;

use crate::error::ApiError;
use crate::keys::KeyRole;
use crate::partials::Freshness;
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    page_type: Option<String>,
    placement: Option<String>,
    kind: Option<String>,
    model: Option<String>,
    segment: Option<String>,
    /// json (default) or csv.
    format: Option<String>,
}

pub async fn get_report(
    State(state): State<Arc<AppState>>,
    Path(site): Path<String>,
    Query(query): Query<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    match report(&state, &site, query, &headers).await {
        Ok(response) => response,
        Err(error) => {
            state.metrics.reject(error.metrics_reason(), 0);
            error.into_response()
        }
    }
}

async fn report(
    state: &Arc<AppState>,
    site: &str,
    query: ReportQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let authorized = crate::ingest::authorize(state, crate::ingest::bearer_key(headers), Some(site)).await?;
    if authorized.role != KeyRole::Secret {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "reports need the site's secret key, not its public key"));
    }
    let missing =
        |name: &str| ApiError::new(StatusCode::BAD_REQUEST, format!("{name} is missing: give a date like 2024-05-31"));
    let params = ReportParams {
        from: query.from.ok_or_else(|| missing("from"))?,
        to: query.to.ok_or_else(|| missing("to"))?,
        page_type: query.page_type,
        placement: query.placement,
        kind: query.kind,
        model: query.model,
        segment: query.segment,
    };
    let format = match query.format.as_deref().unwrap_or("json") {
        "json" => upshot_report::Format::Json,
        "csv" => upshot_report::Format::Csv,
        other => return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("format {other:?} is not json or csv"))),
    };
    let record = authorized.site.clone();
    let mut engine_query = params
        .query(&record, str::to_string)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, error.to_string()))?;
    engine_query.now_ms = Some(jiff::Timestamp::now().as_millisecond());
    // The API answers from the data as it is now: an acknowledged event is in it.
    let report = compute_now(state, record, vec![engine_query], Freshness::Exact).await?.swap_remove(0);
    let body = upshot_report::render(&report, format);
    let content_type = match format {
        upshot_report::Format::Csv => "text/csv; charset=utf-8",
        _ => "application/json",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// A computed report is fresh for this long: served as is.
const FRESH_SECONDS: u64 = 60;
/// An older report, up to this age, is still served at once while a fresh one is
/// computed in the background (the dashboard stays instant; its figures are at most a
/// few minutes behind). Past it, the request waits for a new report.
const STALE_SECONDS_MAX: u64 = 600;
/// Reports kept at most (~80 KB each on a large shop): a site's default views are ~35
/// (every date preset, page type and model one control away, with the range before
/// each), a filtered view brings a dozen more.
const CACHE_ENTRIES_MAX: usize = 1024;

type CacheKey = (String, String);

enum Cached {
    Fresh(Arc<Report>),
    Stale(Arc<Report>),
}

/// Recently computed reports, by site and query.
#[derive(Default)]
pub struct ReportCache {
    entries: std::sync::Mutex<std::collections::HashMap<CacheKey, (Instant, Arc<Report>)>>,
    refreshing: std::sync::Mutex<std::collections::HashSet<CacheKey>>,
    /// Reports being computed for a request now.
    computing: std::sync::Mutex<std::collections::HashSet<CacheKey>>,
}

impl ReportCache {
    fn get(&self, key: &CacheKey) -> Option<Cached> {
        let entries = self.entries.lock().expect("no thread panics while holding the cache");
        let (when, report) = entries.get(key)?;
        let age = when.elapsed();
        if age < Duration::from_secs(FRESH_SECONDS) {
            Some(Cached::Fresh(report.clone()))
        } else if age < Duration::from_secs(STALE_SECONDS_MAX) {
            Some(Cached::Stale(report.clone()))
        } else {
            None
        }
    }

    fn put(&self, key: CacheKey, report: Arc<Report>) {
        let mut entries = self.entries.lock().expect("no thread panics while holding the cache");
        entries.retain(|_, (when, _)| when.elapsed() < Duration::from_secs(STALE_SECONDS_MAX));
        if entries.len() >= CACHE_ENTRIES_MAX {
            let oldest = entries.iter().min_by_key(|(_, (when, _))| *when).map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (Instant::now(), report));
    }

    /// Marks these reports as being computed; false when any of them already is.
    fn start_computing(&self, keys: &[CacheKey]) -> bool {
        let mut computing = self.computing.lock().expect("no thread panics while holding the cache");
        if keys.iter().any(|key| computing.contains(key)) {
            return false;
        }
        computing.extend(keys.iter().cloned());
        true
    }

    fn computing_any(&self, keys: &[CacheKey]) -> bool {
        let computing = self.computing.lock().expect("no thread panics while holding the cache");
        keys.iter().any(|key| computing.contains(key))
    }

    fn end_computing(&self, keys: &[CacheKey]) {
        let mut computing = self.computing.lock().expect("no thread panics while holding the cache");
        keys.iter().for_each(|key| {
            computing.remove(key);
        });
    }

    /// Marks background refreshes of `keys` as started; those already running are left
    /// out of the answer.
    fn start_refresh(&self, keys: Vec<CacheKey>) -> Vec<CacheKey> {
        let mut refreshing = self.refreshing.lock().expect("no thread panics while holding the cache");
        keys.into_iter().filter(|key| refreshing.insert(key.clone())).collect()
    }

    fn end_refresh(&self, keys: &[CacheKey]) {
        let mut refreshing = self.refreshing.lock().expect("no thread panics while holding the cache");
        keys.iter().for_each(|key| {
            refreshing.remove(key);
        });
    }
}

/// A report's cache key: its query without the present (which every view carries:
/// a cached report's active counts are as old as the report, a few minutes at most).
fn cache_key(site: &str, query: &upshot_engine::Query) -> CacheKey {
    let timeless = upshot_engine::Query { now_ms: None, ..query.clone() };
    (site.to_string(), format!("{timeless:?}"))
}

/// The site's reports for these queries, each: from the cache when it was computed in the last
/// minute; from the cache at once and refreshed in the background when it is older (up
/// to ten minutes); else computed off the async threads (store held only for the
/// snapshot), within the report time limit and the limit of reports at once.
/// Those not in the cache are computed together, in one pass over the data (the
/// overview's range and the one before).
pub(crate) async fn compute_many(
    state: &Arc<AppState>,
    record: Arc<upshot_store::SiteRecord>,
    queries: Vec<upshot_engine::Query>,
) -> Result<Vec<Arc<Report>>, ApiError> {
    let mut found: Vec<Option<Arc<Report>>> = Vec::with_capacity(queries.len());
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    for query in &queries {
        match state.report_cache.get(&cache_key(&record.site, query)) {
            Some(Cached::Fresh(report)) => found.push(Some(report)),
            Some(Cached::Stale(report)) => {
                stale.push(query.clone());
                found.push(Some(report));
            }
            None => {
                missing.push(query.clone());
                found.push(None);
            }
        }
    }
    // The stale ones are served as they are and computed again, together, in the
    // background.
    let stale_keys =
        state.report_cache.start_refresh(stale.iter().map(|query| cache_key(&record.site, query)).collect());
    stale.retain(|query| stale_keys.contains(&cache_key(&record.site, query)));
    if !stale.is_empty() {
        let (state, record) = (state.clone(), record.clone());
        tokio::spawn(async move {
            if let Err(error) = compute_in_background(&state, record, stale).await {
                tracing::debug!(error = %error.message, "refreshing cached reports failed; the old ones stay");
            }
            state.report_cache.end_refresh(&stale_keys);
        });
    }
    // A view's reports already being computed (a page reloading while they are) are
    // waited for, not computed a second time.
    let keys: Vec<CacheKey> = missing.iter().map(|query| cache_key(&record.site, query)).collect();
    if !keys.is_empty() && !state.report_cache.start_computing(&keys) {
        let deadline = Instant::now() + Duration::from_secs(state.limits.report_seconds_max);
        while state.report_cache.computing_any(&keys) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        return Box::pin(compute_many(state, record, queries)).await;
    }
    let result =
        if missing.is_empty() { Ok(Vec::new()) } else { compute_now(state, record, missing, Freshness::Recent).await };
    state.report_cache.end_computing(&keys);
    let mut computed = result?.into_iter();
    Ok(found
        .into_iter()
        .map(|report| report.or_else(|| computed.next()).expect("one computed report per missing one"))
        .collect())
}

type Computed = Result<(Vec<Report>, Vec<String>), String>;

/// The work of computing the reports in one pass, to run off the async threads.
fn report_work(
    state: &Arc<AppState>,
    record: Arc<upshot_store::SiteRecord>,
    queries: Vec<upshot_engine::Query>,
    freshness: Freshness,
) -> impl FnOnce() -> Computed + Send + 'static {
    let state = state.clone();
    move || source_reports(&state, &record, &queries, freshness)
}

/// The reports from the chosen source: those the site's day partials answer (current
/// for `freshness`) summed from them, the others computed from the events. With the
/// ClickHouse backend, once everything acknowledged before the request is in the
/// cluster (the spool found empty, or a shipping pass begun after the request has
/// finished, which the shipper does at least every half second); when ClickHouse is
/// slow to take the spool, exact reports stream the cluster's rows with the spool's
/// events joined (the same figures) and use no partials.
fn source_reports(
    state: &AppState,
    record: &upshot_store::SiteRecord,
    queries: &[upshot_engine::Query],
    freshness: Freshness,
) -> Computed {
    let shipped = state.clickhouse.is_none() || spool_shipped(&state.metrics);
    let source = state.source(shipped);
    state.partials.wait_for_read_back(&record.site);
    // A version the source cannot say (a cluster's table out of reach) leaves the
    // reports to be computed from the events.
    let version = (shipped || freshness == Freshness::Recent).then(|| source.version(&record.site));
    let reports = match version {
        Some(Ok(version)) => from_partials(state, record, queries, version, freshness),
        Some(Err(error)) => {
            tracing::debug!(site = %record.site, %error, "the site's version is unknown; reports read every event");
            vec![None; queries.len()]
        }
        None => vec![None; queries.len()],
    };
    let missing: Vec<upshot_engine::Query> =
        queries.iter().zip(&reports).filter(|(_, report)| report.is_none()).map(|(query, _)| query.clone()).collect();
    if missing.is_empty() {
        return Ok((reports.into_iter().flatten().collect(), Vec::new()));
    }
    use std::sync::atomic::Ordering::Relaxed;
    match (state.clickhouse.is_some(), shipped) {
        (true, true) => state.metrics.reports_in_cluster.fetch_add(1, Relaxed),
        (true, false) => state.metrics.reports_streamed.fetch_add(1, Relaxed),
        (false, _) => 0,
    };
    let (computed, problems) = source.compute(record, &missing).map_err(|error| error.to_string())?;
    Ok((fill_missing(reports, computed), problems))
}

/// How long a report waits for the spool to be shipped before computing from the
/// cluster's rows and the spool instead.
const SPOOL_WAIT: Duration = Duration::from_secs(3);

/// Whether everything acknowledged before now is in the cluster: the spool is empty
/// (the writer counts events into it before acknowledging them), or a shipping pass
/// begun after now finishes within `SPOOL_WAIT`.
fn spool_shipped(metrics: &crate::metrics::Metrics) -> bool {
    use std::sync::atomic::Ordering;
    if metrics.spool_events.load(Ordering::SeqCst) == 0 {
        return true;
    }
    let wanted = metrics.ship_passes_started.load(Ordering::SeqCst) + 1;
    let deadline = Instant::now() + SPOOL_WAIT;
    while metrics.ship_passes_done.load(Ordering::SeqCst) < wanted && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    metrics.ship_passes_done.load(Ordering::SeqCst) >= wanted
}

/// Each query's report from the site's day partials when they answer it and are
/// current enough for `freshness` at `version` (counted in the metrics); `None` for
/// the others, which the caller computes from the events.
fn from_partials(
    state: &AppState,
    record: &upshot_store::SiteRecord,
    queries: &[upshot_engine::Query],
    version: u64,
    freshness: Freshness,
) -> Vec<Option<Report>> {
    let reports: Vec<Option<Report>> =
        queries.iter().map(|query| state.partials.report(record, query, version, freshness)).collect();
    let answered = reports.iter().filter(|report| report.is_some()).count() as u64;
    use std::sync::atomic::Ordering::Relaxed;
    state.metrics.reports_from_partials.fetch_add(answered, Relaxed);
    state.metrics.reports_full_pass.fetch_add(queries.len() as u64 - answered, Relaxed);
    reports
}

/// Fills the reports the partials did not answer, in order, from `computed`.
fn fill_missing(reports: Vec<Option<Report>>, computed: Vec<Report>) -> Vec<Report> {
    let mut computed = computed.into_iter();
    reports.into_iter().filter_map(|report| report.or_else(|| computed.next())).collect()
}

fn busy() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "other reports are being computed; retry shortly").retry_after(2)
}

fn too_long(limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the report took longer than {} s; ask for a shorter range", limit.as_secs()),
    )
}

fn failed(error: String) -> ApiError {
    ApiError::internal("computing the report failed", error)
}

/// Computes the reports in one pass, for a request waiting for them, and caches each.
async fn compute_now(
    state: &Arc<AppState>,
    record: Arc<upshot_store::SiteRecord>,
    queries: Vec<upshot_engine::Query>,
    freshness: Freshness,
) -> Result<Vec<Arc<Report>>, ApiError> {
    // Wait for a turn (bounded by the report time limit) rather than refuse at once:
    // a warm-up may be running.
    let limit = Duration::from_secs(state.limits.report_seconds_max);
    let permit = tokio::time::timeout(limit, state.reports.clone().acquire_owned())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let started = Instant::now();
    let keys: Vec<CacheKey> = queries.iter().map(|query| cache_key(&record.site, query)).collect();
    let work = report_work(state, record.clone(), queries, freshness);
    // The permit goes with the computation: when the request gives up waiting, the
    // computation still holds its place, so the limit bounds the CPU in use.
    let work = tokio::task::spawn_blocking(move || {
        let computed = work();
        drop(permit);
        computed
    });
    let computed = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| too_long(limit))?
        .map_err(|error| failed(error.to_string()))?;
    // The site's partials catch up in the background when they need to (a lens this
    // request asked for is noted by now), so that the next views are sums of days.
    let (task_state, task_record) = (state.clone(), record.clone());
    tokio::spawn(async move { crate::partials::rebuild_if_needed(&task_state, task_record).await });
    keep(state, keys, started, computed)
}

/// Computes the reports in one pass on a thread of its own at a lower CPU priority (no
/// request waits for them: their old figures are being served), one such pass at a
/// time, and caches each.
async fn compute_in_background(
    state: &Arc<AppState>,
    record: Arc<upshot_store::SiteRecord>,
    queries: Vec<upshot_engine::Query>,
) -> Result<Vec<Arc<Report>>, ApiError> {
    let limit = Duration::from_secs(state.limits.report_seconds_max);
    let permit = state.background_reports.clone().acquire_owned().await.map_err(|_| busy())?;
    let started = Instant::now();
    let keys: Vec<CacheKey> = queries.iter().map(|query| cache_key(&record.site, query)).collect();
    let work = report_work(state, record, queries, Freshness::Recent);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("upshot-refresh".into())
        .spawn(move || {
            crate::priority::lower_this_threads_priority();
            let _ = sender.send(work());
            drop(permit);
        })
        .map_err(|error| failed(format!("starting a thread: {error}")))?;
    let computed = tokio::time::timeout(limit, receiver)
        .await
        .map_err(|_| too_long(limit))?
        .map_err(|_| failed("the report thread stopped".to_string()))?;
    keep(state, keys, started, computed)
}

/// Records the computation and caches each report.
fn keep(
    state: &Arc<AppState>,
    keys: Vec<CacheKey>,
    started: Instant,
    computed: Computed,
) -> Result<Vec<Arc<Report>>, ApiError> {
    let (reports, problems) = computed.map_err(failed)?;
    state.metrics.report.observe(started.elapsed());
    problems.iter().for_each(|problem| upshot_store::note_damage(&state.damage, problem));
    let reports: Vec<Arc<Report>> = reports.into_iter().map(Arc::new).collect();
    for (key, report) in keys.into_iter().zip(&reports) {
        state.report_cache.put(key, report.clone());
    }
    Ok(reports)
}
