//! `GET /v1/sites/{site}/report`: the same JSON as `upshot report --format json`, for the
//! site's secret key only, computed off the async threads within a time limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
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
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let authorized = crate::ingest::authorize(state, key, Some(site)).await?;
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
    let _permit = state.reports.try_acquire().map_err(|_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "other reports are being computed; retry shortly").retry_after(2)
    })?;
    let started = Instant::now();
    let store = state.store.clone();
    let work = tokio::task::spawn_blocking(move || {
        // The store is held only while the snapshot is taken; appends go on meanwhile.
        let snapshot = {
            let store = store.read().expect("no thread panics while holding the store");
            Snapshot::take(&store, &record)?
        };
        let (report, problems) = snapshot.report(&record.settings, &engine_query)?;
        Ok::<_, upshot_scan::ScanError>((upshot_report::render(&report, format), problems))
    });
    let limit = Duration::from_secs(state.limits.report_seconds_max);
    let (body, problems) = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the report took longer than {} s; ask for a shorter range", limit.as_secs()),
            )
        })?
        .map_err(|error| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("computing the report failed: {error}"))
        })?
        .map_err(|error| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("computing the report failed: {error}"))
        })?;
    state.metrics.report.observe(started.elapsed());
    for problem in &problems {
        tracing::warn!(site = %site, %problem, "report skipped damaged data");
    }
    let content_type = match format {
        upshot_report::Format::Csv => "text/csv; charset=utf-8",
        _ => "application/json",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
