//! `GET /v1/sites/{site}/report`: the same JSON as `upshot report --format json`, for the
//! site's secret key only, computed off the async threads within a time limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use upshot_engine::Report;
use upshot_scan::{ReportParams, Snapshot};

use crate::error::ApiError;
use crate::keys::KeyRole;
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    page_type: Option<String>,
    placement: Option<String>,
    kind: Option<String>,
    model: Option<String>,
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
    };
    let format = match query.format.as_deref().unwrap_or("json") {
        "json" => upshot_report::Format::Json,
        "csv" => upshot_report::Format::Csv,
        other => return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("format {other:?} is not json or csv"))),
    };
    let record = authorized.site.clone();
    let engine_query = params
        .query(&record, str::to_string)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, error.to_string()))?;
    // The API answers from the data as it is now: an acknowledged event is in it.
    let report = compute_now(state, record, vec![engine_query]).await?.swap_remove(0);
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
/// Reports kept at most.
const CACHE_ENTRIES_MAX: usize = 64;

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

    /// Marks a background refresh of `key` as started; false when one already runs.
    fn start_refresh(&self, key: &CacheKey) -> bool {
        self.refreshing.lock().expect("no thread panics while holding the cache").insert(key.clone())
    }

    fn end_refresh(&self, key: &CacheKey) {
        self.refreshing.lock().expect("no thread panics while holding the cache").remove(key);
    }
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
    for query in &queries {
        let key = (record.site.clone(), format!("{query:?}"));
        match state.report_cache.get(&key) {
            Some(Cached::Fresh(report)) => found.push(Some(report)),
            Some(Cached::Stale(report)) => {
                if state.report_cache.start_refresh(&key) {
                    let (state, record, query) = (state.clone(), record.clone(), query.clone());
                    tokio::spawn(async move {
                        if let Err(error) = compute_now(&state, record, vec![query]).await {
                            tracing::debug!(error = %error.message, "refreshing a cached report failed; the old one stays");
                        }
                        state.report_cache.end_refresh(&key);
                    });
                }
                found.push(Some(report));
            }
            None => {
                missing.push(query.clone());
                found.push(None);
            }
        }
    }
    // A view's reports already being computed (a page reloading while they are) are
    // waited for, not computed a second time.
    let keys: Vec<CacheKey> = missing.iter().map(|query| (record.site.clone(), format!("{query:?}"))).collect();
    if !keys.is_empty() && !state.report_cache.start_computing(&keys) {
        let deadline = Instant::now() + Duration::from_secs(state.limits.report_seconds_max);
        while state.report_cache.computing_any(&keys) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        return Box::pin(compute_many(state, record, queries)).await;
    }
    let result = if missing.is_empty() { Ok(Vec::new()) } else { compute_now(state, record, missing).await };
    state.report_cache.end_computing(&keys);
    let mut computed = result?.into_iter();
    Ok(found
        .into_iter()
        .map(|report| report.or_else(|| computed.next()).expect("one computed report per missing one"))
        .collect())
}

/// Computes the reports in one pass and caches each.
async fn compute_now(
    state: &Arc<AppState>,
    record: Arc<upshot_store::SiteRecord>,
    queries: Vec<upshot_engine::Query>,
) -> Result<Vec<Arc<Report>>, ApiError> {
    // Wait for a turn (bounded by the report time limit) rather than refuse at once:
    // a warm-up may be running.
    let limit = Duration::from_secs(state.limits.report_seconds_max);
    let busy = || {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "other reports are being computed; retry shortly").retry_after(2)
    };
    let _permit =
        tokio::time::timeout(limit, state.reports.acquire()).await.map_err(|_| busy())?.map_err(|_| busy())?;
    let started = Instant::now();
    let store = state.store.clone();
    let site = record.site.clone();
    let clickhouse = state.clickhouse.clone();
    let keys: Vec<CacheKey> = queries.iter().map(|query| (record.site.clone(), format!("{query:?}"))).collect();
    let work = tokio::task::spawn_blocking(move || match clickhouse {
        Some(node) => clickhouse_reports(&store, &node, &record, &queries).map(|reports| (reports, Vec::new())),
        None => {
            // The store is held only while the snapshot is taken; appends go on meanwhile.
            let snapshot = {
                let store = store.read().expect("no thread panics while holding the store");
                Snapshot::take(&store, &record).map_err(|error| error.to_string())?
            };
            snapshot.reports(&record.settings, &queries).map_err(|error| error.to_string())
        }
    });
    let failed = |error: String| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("computing the report failed: {error}"))
    };
    let (reports, problems) = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the report took longer than {} s; ask for a shorter range", limit.as_secs()),
            )
        })?
        .map_err(|error| failed(error.to_string()))?
        .map_err(failed)?;
    state.metrics.report.observe(started.elapsed());
    for problem in &problems {
        tracing::warn!(site = %site, %problem, "report skipped damaged data");
    }
    let reports: Vec<Arc<Report>> = reports.into_iter().map(Arc::new).collect();
    for (key, report) in keys.into_iter().zip(&reports) {
        state.report_cache.put(key, report.clone());
    }
    Ok(reports)
}

/// The reports with the ClickHouse backend: from the cluster, streamed visitor by
/// visitor, plus what is still in the local spool.
fn clickhouse_reports(
    store: &std::sync::RwLock<upshot_store::Store>,
    node: &upshot_clickhouse::Node,
    record: &upshot_store::SiteRecord,
    queries: &[upshot_engine::Query],
) -> Result<Vec<Report>, String> {
    let mut spooled = Vec::new();
    {
        let store = store.read().expect("no thread panics while holding the store");
        store.scan_tail(record, |event| spooled.push(event)).map_err(|error| error.to_string())?;
    }
    upshot_scan::clickhouse::reports(node, record, queries, spooled).map_err(|error| error.to_string())
}
