//! upshot's storage: the data dir, each site's record (keys hashed, settings), and the
//! events, appended durably to a write-ahead log (docs/adr/0002-write-ahead-log.md).
//! A data dir is opened for writing by one process at a time; readers need no lock.

pub mod backup;
mod dedupe;
pub mod derived;
mod erase;
mod keys;
mod log;
pub mod manifest;
mod seal;
pub mod segment;
mod site;
mod verify;
pub mod wal;

pub use dedupe::content_digest;
pub use erase::{EraseReport, Person};
pub use keys::{hash_key, SiteKeys};
pub use log::{Appended, OpenTail, ScanSummary};
pub use manifest::Manifest;
pub use seal::{
    utc_day, CompactPlan, CompactReport, CompactedSegments, CompactionPolicy, SealPlan, SealReport, SealedLogFiles,
    SealedSegments,
};
pub use site::SiteRecord;
pub use verify::VerifyReport;
pub use wal::RecoveryReport;

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Backup { path: PathBuf, reason: String },
    #[error("site {0:?} does not exist (create it with `upshot site create {0}`)")]
    UnknownSite(String),
    #[error("site {0:?} already exists")]
    SiteExists(String),
    #[error("{path}: line {line}: {reason}")]
    Corrupt { path: PathBuf, line: u64, reason: String },
    #[error("data dir {path} is in use by another upshot process{owner}; stop it or use another --data dir")]
    Locked { path: PathBuf, owner: String },
    #[error("segment {path}: {reason}")]
    CorruptSegment { path: PathBuf, reason: String },
    #[error("a log record of {bytes} bytes is over the limit of {bytes_max} bytes")]
    RecordTooLarge { bytes: usize, bytes_max: usize },
    #[error(transparent)]
    Setting(#[from] upshot_model::SettingError),
}

pub(crate) use wal::sync_dir;

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Takes the data dir's lock, or says who holds it.
fn lock_data_dir(root: &Path) -> Result<File, StoreError> {
    let path = root.join("LOCK");
    let mut file =
        OpenOptions::new().create(true).read(true).write(true).truncate(false).open(&path).map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = owner.trim();
            let owner = if owner.is_empty() { String::new() } else { format!(" (pid {owner})") };
            return Err(StoreError::Locked { path: root.to_path_buf(), owner });
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(io_error(&path)(error)),
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()))
        .map_err(io_error(&path))?;
    Ok(file)
}

/// The parts of a data dir a writer holds open.
struct Writer {
    _lock: File,
    wal: wal::Wal,
    recovery: RecoveryReport,
    /// Event ids taken per site, loaded on the site's first append.
    taken_ids: HashMap<String, dedupe::IdSet>,
    /// Events appended since the last seal began (or since opening).
    appended_since_seal: u64,
}

/// A data dir: `LOCK`, `wal/`, `sites/<site>/site.json` and `rejects.ndjson`.
pub struct Store {
    root: PathBuf,
    manifest: Manifest,
    writer: Option<Writer>,
    /// Damaged parts met while reading (named), shared with whoever reports health.
    damage: DamageLog,
    /// Per site, a number that changes whenever its events do (appended, erased,
    /// dropped) while this store is open: what derived data (day partials) is checked
    /// against. Sealing and compaction move events without changing them.
    versions: HashMap<String, u64>,
}

/// The damaged parts of a data dir met so far, each named once.
pub type DamageLog = std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

/// Records a damaged part in `log`, logged once (as an error: data is being left out)
/// whoever met it (ingest, a scan, a report).
pub fn note_damage(log: &DamageLog, problem: &str) {
    let mut damage = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if damage.insert(problem.to_string()) {
        tracing::error!(%problem, "damaged data is left out; `upshot verify` names every damaged part");
    }
}

impl Store {
    /// Opens (creating if needed) the data dir for writing: takes its lock and
    /// recovers the log (cutting a torn tail, reporting corrupt records).
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        let sites = root.join("sites");
        std::fs::create_dir_all(&sites).map_err(io_error(&sites))?;
        let lock = lock_data_dir(&root)?;
        let manifest = Manifest::load(&root)?;
        let (mut wal, recovery) = wal::Wal::open(&root.join("wal"), |_, _| {})?;
        wal.ensure_next_lsn_at_least(manifest.sealed_through_lsn + 1);
        remove_orphan_segments(&root, &manifest)?;
        let writer = Writer { _lock: lock, wal, recovery, taken_ids: HashMap::new(), appended_since_seal: 0 };
        let mut store =
            Store { root, manifest, writer: Some(writer), damage: DamageLog::default(), versions: HashMap::new() };
        store.restrict_site_files()?;
        // Best effort: the digests only let derived data be kept across processes.
        if let Err(error) = store.add_missing_content_digests() {
            tracing::warn!(%error, "adding content digests failed; day partials are rebuilt by each process until it succeeds");
        }
        Ok(store)
    }

    /// Opens the data dir for reading only: no lock, no repair; a record still being
    /// written by another process is not seen.
    pub fn open_read_only(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        let sites = root.join("sites");
        if !sites.is_dir() {
            std::fs::create_dir_all(&sites).map_err(io_error(&sites))?;
        }
        let manifest = Manifest::load(&root)?;
        Ok(Store { root, manifest, writer: None, damage: DamageLog::default(), versions: HashMap::new() })
    }

    /// Gives every segment entry written by a release before content digests its digest
    /// (reading the segment's event ids only). The manifest is saved every few dozen
    /// segments, so a migration killed half-way keeps what it did; the segments are
    /// only read. A damaged segment keeps no digest (derived data is then rebuilt per
    /// process) and is noted.
    fn add_missing_content_digests(&mut self) -> Result<(), StoreError> {
        let missing: Vec<usize> = (0..self.manifest.segments.len())
            .filter(|&index| self.manifest.segments[index].content.is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!(segments = missing.len(), "adding content digests to segments of an older release");
        let mut manifest = self.manifest.clone();
        let mut last_save = std::time::Instant::now();
        for (done, &index) in missing.iter().enumerate() {
            let path = self.root.join(&manifest.segments[index].file);
            match segment_content_digest(&path) {
                Ok(content) => manifest.segments[index].content = Some(format!("{content:032x}")),
                Err(error) => self.note_damage(&error.to_string()),
            }
            if last_save.elapsed() >= std::time::Duration::from_secs(5) || done + 1 == missing.len() {
                manifest.save(&self.root)?;
                self.manifest = manifest.clone();
                last_save = std::time::Instant::now();
                tracing::info!(done = done + 1, of = missing.len(), "content digests added");
            }
        }
        self.manifest = manifest;
        Ok(())
    }

    /// The damaged parts met so far (a shared handle: it fills as damage is met).
    pub fn damage_log(&self) -> DamageLog {
        self.damage.clone()
    }

    /// Records a damaged part (logged once, as an error: data is being left out).
    pub fn note_damage(&self, problem: &str) {
        note_damage(&self.damage, problem);
    }

    /// The site's data version (see `versions`): equal versions, equal events.
    pub fn site_version(&self, site: &str) -> u64 {
        self.versions.get(site).copied().unwrap_or(0)
    }

    /// Notes that the site's events changed.
    pub(crate) fn bump_site_version(&mut self, site: &str) {
        *self.versions.entry(site.to_string()).or_default() += 1;
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Events appended since the last seal: callers seal when it grows, to bound the
    /// log's tail (and so sealing's memory).
    pub fn appended_since_seal(&self) -> u64 {
        self.writer.as_ref().map_or(0, |writer| writer.appended_since_seal)
    }

    /// What recovery found when the data dir was opened for writing.
    pub fn recovery_report(&self) -> Option<&RecoveryReport> {
        self.writer.as_ref().map(|writer| &writer.recovery)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn site_dir(&self, site: &str) -> PathBuf {
        self.root.join("sites").join(site)
    }

    /// Ids of every site, sorted.
    pub fn site_ids(&self) -> Result<Vec<String>, StoreError> {
        let sites = self.root.join("sites");
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&sites).map_err(io_error(&sites))? {
            let entry = entry.map_err(io_error(&sites))?;
            if entry.path().join(site::SITE_FILE).is_file() {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Path of the file the importer writes rejected lines to.
    pub fn rejects_path(&self, site: &str) -> PathBuf {
        self.site_dir(site).join("rejects.ndjson")
    }
}

/// The wrapping sum of a segment's event digests (its event ids and roles only).
fn segment_content_digest(path: &Path) -> Result<u128, StoreError> {
    let file = segment::SegmentFile::open(path)?;
    let mut content = 0u128;
    for info in &file.header.buckets {
        if let Some(columns) = file.bucket(info.bucket, segment::ColumnSet::EventIds)? {
            columns
                .for_each_event_id(|event_id, role| content = content.wrapping_add(dedupe::digest(event_id, role)))
                .map_err(|reason| StoreError::CorruptSegment {
                    path: path.to_path_buf(),
                    reason: reason.to_string(),
                })?;
        }
    }
    Ok(content)
}

/// Deletes segment files the manifest does not list: left by a crash while sealing or
/// compacting, before the manifest swap that would have made them part of the store.
fn remove_orphan_segments(root: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let listed: HashSet<PathBuf> = manifest.segments.iter().map(|entry| root.join(&entry.file)).collect();
    for path in segment_files(root)? {
        if !listed.contains(&path) {
            tracing::warn!(file = %path.display(), "removing a segment file no manifest lists (left by a crash)");
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(())
}

/// Every file under `sites/*/segments/*/`, listed or not.
pub(crate) fn segment_files(root: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut files = Vec::new();
    let sites = root.join("sites");
    for site in std::fs::read_dir(&sites).map_err(io_error(&sites))? {
        let segments = site.map_err(io_error(&sites))?.path().join("segments");
        let Ok(days) = std::fs::read_dir(&segments) else {
            continue;
        };
        for day in days {
            let day = day.map_err(io_error(&segments))?.path();
            for file in std::fs::read_dir(&day).map_err(io_error(&day))? {
                files.push(file.map_err(io_error(&day))?.path());
            }
        }
    }
    Ok(files)
}
