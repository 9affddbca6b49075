//! `/t.js`: the tracker, written here, served from the collector's own origin.

use axum::http::header;
use axum::response::IntoResponse;

const TRACKER_JS: &str = include_str!("../tracker/t.js");

pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        TRACKER_JS,
    )
}
