//! Day partials saved next to a site's events (`sites/SITE/derived/day-partials`), so
//! that a new process (the CLI, a restarted server) sums days instead of reading every
//! event. A saved file says which events it was built from (the snapshot's identity);
//! it is used only for exactly those events, and a damaged or outdated one is ignored
//! (and rebuilt by whoever builds partials).

use upshot_engine::days::DayPartials;
use upshot_store::derived::{read_derived, write_derived};
use upshot_store::{SiteRecord, Store, StoreError};

use crate::Snapshot;

/// The derived file's name.
pub const PARTIALS_FILE: &str = "day-partials";

/// The lenses kept for a site, as queries (their dates are replaced by the coverage):
/// every view the dashboard's controls offer, each model unfiltered and under each page
/// type of SPEC section 2 (45 lenses), and each segment the dashboard offers under the
/// default model (22 more: SPEC section 9.2), all in one pass.
pub fn default_lenses(record: &SiteRecord) -> Vec<upshot_engine::Query> {
    let params = |model: upshot_engine::Model, page_type: Option<&str>, segment: Option<String>| crate::ReportParams {
        from: "2000-01-01".into(),
        to: "2000-01-01".into(),
        page_type: page_type.map(str::to_string),
        placement: None,
        kind: None,
        model: Some(model.as_str().to_string()),
        segment,
    };
    let page_types = std::iter::once(None).chain(upshot_model::PAGE_TYPES.iter().map(|page_type| Some(*page_type)));
    let filtered = page_types
        .flat_map(|page_type| upshot_engine::Model::ALL.into_iter().map(move |model| (model, page_type)))
        .map(|(model, page_type)| params(model, page_type, None));
    let segments = upshot_engine::breakdown::OFFERED_SEGMENTS
        .iter()
        .flat_map(|(dimension, values)| values.iter().map(move |value| format!("{dimension}:{value}")))
        .map(|segment| params(upshot_engine::Model::Last, None, Some(segment)));
    filtered.chain(segments).filter_map(|params| params.query(record, str::to_string).ok()).collect()
}

/// Why saved partials were not used.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// Saves `partials`, built from `snapshot`, for the site; nothing when the snapshot's
/// events have no identity (an old manifest).
pub fn save(store_path: &std::path::Path, snapshot: &Snapshot, partials: &DayPartials) -> Result<(), StoreError> {
    let Some(identity) = snapshot.identity() else { return Ok(()) };
    let mut payload = Vec::new();
    payload.extend_from_slice(&(identity.len() as u32).to_le_bytes());
    payload.extend_from_slice(identity.as_bytes());
    payload.extend_from_slice(&partials.to_bytes());
    write_derived(store_path, &payload)
}

/// Where the site's saved partials live.
pub fn path(store: &Store, record: &SiteRecord) -> std::path::PathBuf {
    store.derived_path(&record.site, PARTIALS_FILE)
}

/// The site's saved partials when they were built from exactly the snapshot's events
/// (their lenses decoded when first asked for); `Ok(None)` when there are none or
/// they are outdated.
pub fn load(store_path: &std::path::Path, snapshot: &Snapshot) -> Result<Option<DayPartials>, SavedError> {
    let Some(identity) = snapshot.identity() else { return Ok(None) };
    let Some((bytes, start)) = read_derived(store_path)? else { return Ok(None) };
    let unreadable = |reason: String| SavedError::Unreadable { path: store_path.display().to_string(), reason };
    let payload = &bytes[start..];
    let length = payload.get(..4).map(|bytes| u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize);
    let saved_identity = length.and_then(|length| payload.get(4..4 + length));
    let Some(saved_identity) = saved_identity else {
        return Err(unreadable("it is cut short".into()));
    };
    if saved_identity != identity.as_bytes() {
        return Ok(None);
    }
    let partials_start = start + 4 + saved_identity.len();
    DayPartials::from_bytes_at(bytes, partials_start).map(Some).map_err(|error| unreadable(error.to_string()))
}
