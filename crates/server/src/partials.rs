//! Day partials (ADR 0008) kept in memory per site: a report of any range under a kept
//! lens (model and page type) is a sum of days instead of a pass over every event. They
//! are rebuilt in the background (one pass for every lens, at a lower CPU priority)
//! when the site's events have changed; the report API uses them only when they were
//! built from exactly the events stored now, the dashboard also when they are a few
//! minutes old (as its cached reports were).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use upshot_engine::days::{DayPartials, Lens};
use upshot_engine::{Query, Report};
use upshot_store::SiteRecord;

use crate::AppState;

/// How current a report must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// From the events stored now (the report API: an acknowledged event is in it).
    Exact,
    /// Partials up to `RECENT_SECONDS_MAX` old will do, or as old as the site's rebuilds
    /// allow (a site whose build takes minutes is rebuilt every few builds' time: its
    /// dashboard shows figures that old rather than read every event between builds).
    Recent,
}

/// Partials older than this are not served to the dashboard once the events changed.
const RECENT_SECONDS_MAX: u64 = 600;
/// Partials are rebuilt at most this often while events keep arriving.
const REBUILD_SECONDS_MIN: u64 = 2;
/// How long a report waits for saved partials being read back.
const READ_BACK_WAIT: Duration = Duration::from_secs(10);
/// The longest pause between attempts after builds that failed.
const FAILED_PAUSE_SECONDS_MAX: u64 = 3600;
/// Saved partials are rewritten at most this often (each save writes the whole file,
/// and any new event outdates it again).
const SAVE_SECONDS_MIN: u64 = 600;
/// Partials a report asked for in this long are kept current.
const IN_USE_SECONDS: u64 = 24 * 3600;
/// Lenses kept beyond the default ones (the latest asked for).
const EXTRA_LENSES_MAX: usize = 16;

struct Kept {
    partials: Arc<DayPartials>,
    version: u64,
    /// When the snapshot they reflect was taken.
    built: Instant,
    /// How long the build took.
    took: Duration,
    /// Warnings of damaged parts left out when they were built.
    warnings: Vec<String>,
    /// Of partials read back from the cluster: which kept build they are.
    kept_as: Option<i64>,
}

impl Kept {
    /// How long these partials serve the dashboard after the data changed: ten minutes,
    /// or the rebuild pause plus a build, whichever is longer.
    fn recent_for(&self) -> Duration {
        Duration::from_secs(RECENT_SECONDS_MAX).max(self.took * 6)
    }

    /// Partials of the events as they were at `snapshot_taken`.
    fn new(
        partials: DayPartials,
        version: u64,
        snapshot_taken: Instant,
        took: Duration,
        warnings: Vec<String>,
    ) -> Kept {
        Kept { partials: Arc::new(partials), version, built: snapshot_taken, took, warnings, kept_as: None }
    }
}

/// Every site's partials and what is being built.
#[derive(Default)]
pub struct PartialsCache {
    sites: Mutex<HashMap<String, Kept>>,
    building: Mutex<HashSet<String>>,
    /// Per site, lenses asked for beyond the default ones, latest last.
    extra_lenses: Mutex<HashMap<String, Vec<Lens>>>,
    /// Per site, the last build that failed or found no events: the version it was
    /// for, when, and the pause before the next attempt.
    failed: Mutex<HashMap<String, (u64, Instant, Duration)>>,
    /// Per site, when its partials were last saved.
    saved: Mutex<HashMap<String, Instant>>,
    /// Per site, when a report last asked for it.
    asked: Mutex<HashMap<String, Instant>>,
    /// Set when the server stops.
    closed: std::sync::atomic::AtomicBool,
    /// Sites whose saved partials are being read back (at start: quick, so a report
    /// waits for them rather than reading every event).
    reading_back: Mutex<HashSet<String>>,
}

impl PartialsCache {
    /// The report of `query` from the site's partials, when they answer it and are
    /// current enough: built from the events of `version`, or for `Recent` built in
    /// the last ten minutes. A lens not kept is noted, to be built next time.
    pub fn report(&self, record: &SiteRecord, query: &Query, version: u64, freshness: Freshness) -> Option<Report> {
        self.asked
            .lock()
            .expect("no thread panics while holding the partials")
            .insert(record.site.clone(), Instant::now());
        // The lock is held only to look: the report is summed without it.
        let found = {
            let sites = self.sites.lock().expect("no thread panics while holding the partials");
            sites.get(&record.site).map(|kept| {
                let current = kept.version == version
                    || (freshness == Freshness::Recent && kept.built.elapsed() < kept.recent_for());
                (kept.partials.clone(), current, kept.warnings.clone())
            })
        };
        let answered = found.as_ref().is_some_and(|(partials, _, _)| partials.answers(&record.settings, query));
        if !answered {
            self.note_lens(record, Lens::of(query));
            return None;
        }
        let (partials, current, warnings) = found?;
        if !current {
            return None;
        }
        let mut report = partials.report(&record.settings, query)?;
        report.warnings = warnings;
        Some(report)
    }

    /// Notes a lens asked for, unless it is one of the default ones.
    fn note_lens(&self, record: &SiteRecord, lens: Lens) {
        if upshot_scan::saved::default_lenses(record).iter().any(|query| Lens::of(query) == lens) {
            return;
        }
        let mut extra = self.extra_lenses.lock().expect("no thread panics while holding the partials");
        let lenses = extra.entry(record.site.clone()).or_default();
        lenses.retain(|kept| *kept != lens);
        lenses.push(lens);
        if lenses.len() > EXTRA_LENSES_MAX {
            lenses.remove(0);
        }
    }

    /// Whether the site's partials should be built again: none yet, a lens asked for
    /// and not kept (or lost: its kept bytes replaced or damaged), or the events changed and the last build is older than four times
    /// what it took (so that under steady ingest rebuilds use at most a fifth of a core,
    /// at a lower priority) and `REBUILD_SECONDS_MIN`.
    pub fn needs_build(&self, record: &SiteRecord, version: u64) -> bool {
        let failed =
            self.failed.lock().expect("no thread panics while holding the partials").get(&record.site).copied();
        // A build that failed or found nothing is not retried for the same events, and
        // retried for new ones only after a pause that doubles each time.
        if let Some((failed_version, when, pause)) = failed {
            if failed_version == version || when.elapsed() < pause {
                return false;
            }
        }
        let sites = self.sites.lock().expect("no thread panics while holding the partials");
        let Some(kept) = sites.get(&record.site) else { return true };
        let pause = (kept.took * 4).max(Duration::from_secs(REBUILD_SECONDS_MIN));
        if kept.built.elapsed() < pause {
            return false;
        }
        let wanted = self.lenses(record);
        kept.version != version
            || kept.partials.lost_lenses()
            || wanted.iter().any(|query| !kept.partials.answers(&record.settings, query))
    }

    /// Notes a build that failed or found no events, for `version`.
    fn note_failed(&self, site: &str, version: u64) {
        let mut failed = self.failed.lock().expect("no thread panics while holding the partials");
        let pause = failed.get(site).map_or(Duration::from_secs(REBUILD_SECONDS_MIN), |(_, _, pause)| *pause * 2);
        let pause = pause.min(Duration::from_secs(FAILED_PAUSE_SECONDS_MAX));
        failed.insert(site.to_string(), (version, Instant::now(), pause));
    }

    /// The lenses to build for a site, as queries (their dates are the coverage's):
    /// the default ones, then those asked for lately.
    fn lenses(&self, record: &SiteRecord) -> Vec<Query> {
        let mut lenses = upshot_scan::saved::default_lenses(record);
        let extra = self.extra_lenses.lock().expect("no thread panics while holding the partials");
        for lens in extra.get(&record.site).into_iter().flatten() {
            let Some(base) = lenses.first().cloned() else { break };
            let query = Query {
                model: lens.model,
                page_type: lens.page_type.clone(),
                placement: lens.placement.clone(),
                kind: lens.kind,
                segment: lens.segment.clone(),
                ..base
            };
            if !lenses.iter().any(|kept| Lens::of(kept) == *lens) {
                lenses.push(query);
            }
        }
        lenses
    }

    /// Whether a report of the site was asked for in the last day, or its saved
    /// partials are to be read back: only then are its partials built and kept current
    /// (a site nobody looks at costs nothing, and its ingest is never slowed by builds).
    fn in_use(&self, site: &str) -> bool {
        let asked = self.asked.lock().expect("no thread panics while holding the partials").get(site).copied();
        asked.is_some_and(|when| when.elapsed() < Duration::from_secs(IN_USE_SECONDS)) || self.is_reading_back(site)
    }

    fn is_reading_back(&self, site: &str) -> bool {
        self.reading_back.lock().expect("no thread panics while holding the partials").contains(site)
    }

    /// Marks the server stopped: a build still running saves nothing into a data dir
    /// whose lock is let go.
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Notes, at start, the sites with saved partials: reports wait for them to be read
    /// back (`wait_for_read_back`) rather than read every event.
    pub fn expect_read_back(&self, site: &str) {
        self.reading_back.lock().expect("no thread panics while holding the partials").insert(site.to_string());
    }

    fn done_reading_back(&self, site: &str) {
        self.reading_back.lock().expect("no thread panics while holding the partials").remove(site);
    }

    /// Waits (up to `READ_BACK_WAIT`) while the site's saved partials are being read back.
    pub fn wait_for_read_back(&self, site: &str) {
        let deadline = Instant::now() + READ_BACK_WAIT;
        while Instant::now() < deadline && self.is_reading_back(site) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the site's partials were not saved in the last `SAVE_SECONDS_MIN` (notes
    /// a save now when so).
    fn due_for_saving(&self, site: &str) -> bool {
        let mut saved = self.saved.lock().expect("no thread panics while holding the partials");
        let due = saved.get(site).is_none_or(|when| when.elapsed() >= Duration::from_secs(SAVE_SECONDS_MIN));
        if due {
            saved.insert(site.to_string(), Instant::now());
        }
        due
    }

    fn start_building(&self, site: &str) -> bool {
        self.building.lock().expect("no thread panics while holding the partials").insert(site.to_string())
    }

    fn end_building(&self, site: &str) {
        self.building.lock().expect("no thread panics while holding the partials").remove(site);
    }

    /// Keeps partials read back from where the source keeps them, as old as they are:
    /// those of `version` (the site's now, when known) serve every report, older ones
    /// the dashboard while young; those older than this process's clock can count are
    /// not kept. Returns whether they are of `version`.
    fn keep_read_back(&self, site: &str, saved: upshot_scan::source::Partials, version: Option<u64>) -> bool {
        let current = Some(saved.version) == version;
        let built = match Instant::now().checked_sub(saved.age) {
            Some(built) => Some(built),
            None if current => Some(Instant::now()),
            None => None,
        };
        if let Some(built) = built {
            tracing::info!(%site, current, "day partials read back");
            let kept_as = saved.kept_as;
            let kept = Kept::new(saved.partials, saved.version, built, Duration::ZERO, Vec::new());
            self.keep(site, Kept { kept_as, ..kept });
        }
        current
    }

    fn keep(&self, site: &str, kept: Kept) {
        self.failed.lock().expect("no thread panics while holding the partials").remove(site);
        self.sites.lock().expect("no thread panics while holding the partials").insert(site.to_string(), kept);
    }
}

/// The site's version as the chosen source counts it (read on a blocking thread: async
/// code never waits for the store or the cluster).
pub(crate) async fn site_version(state: &Arc<AppState>, site: &str) -> Option<u64> {
    let (state, site) = (state.clone(), site.to_string());
    let read = tokio::task::spawn_blocking(move || {
        state
            .source(true)
            .version(&site)
            .map_err(|error| tracing::debug!(%site, %error, "the site's version is unknown"))
            .ok()
    });
    read.await.ok().flatten()
}

/// Builds the site's partials again in the background when they need it (one build
/// per site at a time, sharing the background permit with other background work).
pub(crate) async fn rebuild_if_needed(state: &Arc<AppState>, record: Arc<SiteRecord>) {
    let Some(version) = site_version(state, &record.site).await else {
        // The source cannot say (the cluster down, or a user that may only insert):
        // reports do not wait for partials that cannot be read back either.
        state.partials.done_reading_back(&record.site);
        return;
    };
    let cache = &state.partials;
    if !cache.needs_build(&record, version) || !cache.start_building(&record.site) {
        return;
    }
    let lenses = cache.lenses(&record);
    let Ok(permit) = state.background_reports.clone().acquire_owned().await else {
        cache.end_building(&record.site);
        return;
    };
    // The store is held only while a snapshot's files are opened, and the build thread
    // holds no handle to it: a server that stops lets go of its data dir even while a
    // build finishes.
    let (opening_state, opening_record) = (state.clone(), record.clone());
    let opened = tokio::task::spawn_blocking(move || opening_state.source(true).partials_build(&opening_record)).await;
    let partials_build = match opened {
        Ok(Ok(partials_build)) => partials_build,
        Ok(Err(error)) => {
            tracing::warn!(site = %record.site, %error, "opening the site's events for its day partials failed");
            cache.note_failed(&record.site, version);
            cache.done_reading_back(&record.site);
            cache.end_building(&record.site);
            return;
        }
        Err(_) => {
            cache.done_reading_back(&record.site);
            cache.end_building(&record.site);
            return;
        }
    };
    let inputs = BuildInputs {
        cache: state.partials.clone(),
        metrics: state.metrics.clone(),
        damage: state.damage.clone(),
        version,
        build: partials_build,
    };
    let task_record = record.clone();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("upshot-partials".into()).spawn(move || {
        crate::priority::lower_this_threads_priority();
        let _ = sender.send(build(inputs, &task_record, &lenses));
        drop(permit);
    });
    let kept = match spawned {
        Err(error) => Err(format!("starting a thread: {error}")),
        Ok(_) => receiver.await.unwrap_or_else(|_| Err("the day partials' thread stopped".to_string())),
    };
    // Whatever happened (a failed read, a panicking build), reports stop waiting for
    // saved partials.
    cache.done_reading_back(&record.site);
    match kept {
        Ok(true) => {}
        Ok(false) => cache.note_failed(&record.site, version),
        Err(error) => {
            tracing::warn!(site = %record.site, %error, "building the day partials failed; reports use the full pass");
            cache.note_failed(&record.site, version);
        }
    }
    cache.end_building(&record.site);
}

/// What a build needs, without the store.
struct BuildInputs {
    cache: Arc<PartialsCache>,
    metrics: Arc<crate::metrics::Metrics>,
    damage: upshot_store::DamageLog,
    /// The site's version when the build was asked for.
    version: u64,
    build: upshot_scan::source::PartialsBuild,
}

/// When nothing is kept here yet (or what is lost a lens), the partials the source
/// keeps (those of the version now end it; older ones serve the dashboard while
/// young); then one pass over the
/// site's events for every lens, kept here and where the source keeps partials
/// (the data dir at most every ten minutes, the cluster every build, for every
/// collector of it). `Ok(false)` for a site without events.
fn build(inputs: BuildInputs, record: &SiteRecord, lenses: &[Query]) -> Result<bool, String> {
    let started = Instant::now();
    let BuildInputs { cache, metrics, damage, version, mut build } = inputs;
    // Nothing kept here yet, or partials read back that lost a lens (another server
    // kept a newer build meanwhile): the source's latest first, a build only if they
    // are not current.
    // The same kept build again is no help: then the site is built.
    let (read_back_first, lost) =
        match cache.sites.lock().expect("no thread panics while holding the partials").get(&record.site) {
            None => (true, None),
            Some(kept) if kept.partials.lost_lenses() => (true, Some(kept.kept_as)),
            Some(_) => (false, None),
        };
    if read_back_first {
        match build.read_back(record, lenses) {
            Ok(Some(saved)) if lost == Some(saved.kept_as) => {}
            Ok(Some(saved)) => {
                if cache.keep_read_back(&record.site, saved, Some(version)) {
                    cache.done_reading_back(&record.site);
                    return Ok(true);
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(site = %record.site, %error, "saved day partials are not used; they are rebuilt")
            }
        }
    }
    // Reports stop waiting now (the caller also clears the flag whatever the build's end).
    cache.done_reading_back(&record.site);
    let built_at_ms = jiff::Timestamp::now().as_millisecond();
    let Some(built) = build.build(record, lenses, version).map_err(|error| error.to_string())? else {
        return Ok(false);
    };
    built.problems.iter().for_each(|problem| upshot_store::note_damage(&damage, problem));
    let cluster = matches!(build, upshot_scan::source::PartialsBuild::Cluster(_));
    if !cache.is_closed() && (cluster || cache.due_for_saving(&record.site)) {
        if let Err(error) = build.keep(record, &built, built_at_ms) {
            tracing::warn!(site = %record.site, %error, "keeping the day partials failed; they are rebuilt after a restart");
        }
    }
    let took = started.elapsed();
    tracing::info!(site = %record.site, lenses = lenses.len(), seconds = took.as_secs_f64(), "day partials built");
    cache.keep(&record.site, Kept::new(built.partials, built.version, started, took, built.warnings));
    metrics.partials_builds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(true)
}

/// Every site the server knows now.
fn known_sites(state: &AppState) -> Vec<Arc<SiteRecord>> {
    let keys = state.keys.read().expect("no thread panics while holding the keys");
    keys.site_ids().iter().filter_map(|site| keys.site(site)).collect()
}

/// Reads back saved partials at start and keeps the partials of every site a report
/// asked for in the last day current: a site whose events changed is rebuilt once its
/// pause after the last build is over (`needs_build`).
pub async fn keep_partials_current(state: Arc<AppState>) {
    // First every site's kept partials are read back (quick), so that no site's
    // reports wait behind another site's build.
    for record in known_sites(&state) {
        if state.partials.is_reading_back(&record.site) {
            read_back_at_start(&state, record).await;
        }
    }
    loop {
        for record in known_sites(&state) {
            if state.partials.in_use(&record.site) {
                rebuild_if_needed(&state, record).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(REBUILD_SECONDS_MIN)).await;
    }
}

/// Reads back the partials the source keeps for the site, without building: kept when
/// they answer every lens (current or young enough for the dashboard); reports stop
/// waiting for them either way.
async fn read_back_at_start(state: &Arc<AppState>, record: Arc<SiteRecord>) {
    let version = site_version(state, &record.site).await;
    let (task_state, task_record) = (state.clone(), record.clone());
    let lenses = state.partials.lenses(&record);
    let read = tokio::task::spawn_blocking(move || {
        let mut build = task_state.source(true).partials_build(&task_record).map_err(|error| error.to_string())?;
        build.read_back(&task_record, &lenses).map_err(|error| error.to_string())
    })
    .await;
    match read {
        Ok(Ok(Some(saved))) => {
            state.partials.keep_read_back(&record.site, saved, version);
        }
        Ok(Ok(None)) => {}
        Ok(Err(error)) => {
            tracing::warn!(site = %record.site, %error, "saved day partials are not used; they are rebuilt when asked for");
        }
        Err(_) => {}
    }
    state.partials.done_reading_back(&record.site);
}
