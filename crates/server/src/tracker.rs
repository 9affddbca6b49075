//! `/t.js`: the tracker, written here, served from the collector's own origin: gzip'd
//! for browsers that take it, with an ETag so a page load revalidates with a 304.

use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

const TRACKER_JS: &str = include_str!("../tracker/t.js");

struct Served {
    gzipped: Vec<u8>,
    /// Validators of the plain and the gzip'd body: different bytes, different tags.
    etag: String,
    gzip_etag: String,
}

/// Compressed once, on first request.
static SERVED: LazyLock<Served> = LazyLock::new(|| {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gzipped = encoder.write_all(TRACKER_JS.as_bytes()).and_then(|()| encoder.finish()).unwrap_or_default();
    let digest = sha2::Sha256::digest(TRACKER_JS.as_bytes());
    let etag = format!("\"{}\"", digest.iter().take(12).map(|byte| format!("{byte:02x}")).collect::<String>());
    let gzip_etag = format!("{}-gz\"", etag.trim_end_matches('"'));
    Served { gzipped, etag, gzip_etag }
});

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|parameter| matches!(parameter.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

pub async fn script(headers: HeaderMap) -> Response {
    let served = &*SERVED;
    let gzip = accepts_gzip(&headers) && !served.gzipped.is_empty();
    let tag = if gzip { &served.gzip_etag } else { &served.etag };
    let etag = HeaderValue::from_str(tag).unwrap_or(HeaderValue::from_static("\"t\""));
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        (header::ETAG, etag),
        (header::VARY, HeaderValue::from_static("Accept-Encoding")),
    ];
    let matches = headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()).is_some_and(|value| {
        value.trim() == "*" || value.split(',').any(|candidate| candidate.trim().trim_start_matches("W/") == tag)
    });
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let content_type = (header::CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=utf-8"));
    if gzip {
        let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (common, [content_type, encoding], served.gzipped.clone()).into_response();
    }
    (common, [content_type], TRACKER_JS).into_response()
}
