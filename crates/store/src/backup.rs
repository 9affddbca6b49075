//! A consistent copy of a data dir while a server keeps writing to it (`upshot
//! backup`). It relies on what the store already guarantees: segment files never
//! change once listed, the manifest is replaced atomically, and log records are
//! checksummed frames whose torn tail recovery cuts off.
//!
//! Order matters. The log is copied first, then a manifest read after it with the
//! segments it lists. An event in the log when the copy began is in the copied log, or,
//! if it was sealed meanwhile, in a segment the later manifest lists (the manifest's
//! `sealed_through_lsn` makes recovery skip its records in the copied log). A segment
//! removed by a compaction during the copy sends the copy back to a fresh manifest.
//! Events acknowledged after the copy began may or may not be in it.

use std::path::{Path, PathBuf};

use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::{io_error, site, StoreError};

/// Fresh manifests tried before giving up (each try fails only when a compaction
/// removed a listed segment mid-copy).
const MANIFEST_TRIES: usize = 8;

/// What a backup copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub sites: u64,
    pub log_files: u64,
    pub segments: u64,
    pub bytes: u64,
}

/// Copies the data dir at `source` to `destination` (which must not exist yet, or be
/// empty). Needs no lock: a server may be writing meanwhile.
pub fn backup(source: &Path, destination: &Path) -> Result<BackupReport, StoreError> {
    if !source.join("sites").is_dir() {
        return Err(StoreError::Backup {
            path: source.to_path_buf(),
            reason: "not an upshot data dir (no sites/ in it); pass the one `upshot serve` uses with --data".into(),
        });
    }
    let occupied = std::fs::read_dir(destination).map(|mut entries| entries.next().is_some()).unwrap_or(false);
    if occupied {
        return Err(StoreError::Backup {
            path: destination.to_path_buf(),
            reason: "the backup destination is not empty; choose a new directory".into(),
        });
    }
    // Readable by its owner only, like the data dir (site files hold secrets).
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(destination).map_err(io_error(destination))?;
        std::fs::set_permissions(destination, std::fs::Permissions::from_mode(0o700)).map_err(io_error(destination))?;
    }
    let mut report = BackupReport::default();
    for site in site_dirs(source)? {
        let name = site.file_name().map(|name| name.to_os_string()).unwrap_or_default();
        let from = site.join(site::SITE_FILE);
        report.bytes += copy(&from, &destination.join("sites").join(&name).join(site::SITE_FILE))?;
        report.sites += 1;
    }
    let log = source.join("wal");
    for entry in std::fs::read_dir(&log).map_err(io_error(&log))? {
        let path = entry.map_err(io_error(&log))?.path();
        let Some(name) = path.file_name() else { continue };
        match copy(&path, &destination.join("wal").join(name)) {
            Ok(bytes) => {
                report.bytes += bytes;
                report.log_files += 1;
            }
            // Sealed and removed since the listing: the manifest read next has it.
            Err(StoreError::Io { .. }) if !path.exists() => {}
            Err(error) => return Err(error),
        }
    }
    let manifest = copy_segments(source, destination, &mut report)?;
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    let path = destination.join(MANIFEST_FILE);
    std::fs::write(&path, text).and_then(|()| sync_file(&path)).map_err(io_error(&path))?;
    Ok(report)
}

/// Copies every segment a manifest lists, with a fresh manifest whenever a listed one
/// vanished (a compaction); returns the manifest whose segments were all copied.
fn copy_segments(source: &Path, destination: &Path, report: &mut BackupReport) -> Result<Manifest, StoreError> {
    for _ in 0..MANIFEST_TRIES {
        let manifest = Manifest::load(source)?;
        let mut complete = true;
        for entry in &manifest.segments {
            let target = destination.join(&entry.file);
            if target.exists() {
                continue;
            }
            match copy(&source.join(&entry.file), &target) {
                Ok(bytes) => {
                    report.bytes += bytes;
                    report.segments += 1;
                }
                Err(StoreError::Io { .. }) if !source.join(&entry.file).exists() => {
                    complete = false;
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        if complete {
            return Ok(manifest);
        }
    }
    Err(StoreError::Backup {
        path: source.join(MANIFEST_FILE),
        reason: format!("segments kept changing under {MANIFEST_TRIES} tries; run the backup again"),
    })
}

fn site_dirs(source: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let sites = source.join("sites");
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(&sites).map_err(io_error(&sites))? {
        let path = entry.map_err(io_error(&sites))?.path();
        if path.join(site::SITE_FILE).is_file() {
            dirs.push(path);
        }
    }
    Ok(dirs)
}

/// Copies one file durably, creating its directory; its size.
fn copy(from: &Path, to: &Path) -> Result<u64, StoreError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let bytes = std::fs::copy(from, to).map_err(io_error(from))?;
    sync_file(to).map_err(io_error(to))?;
    Ok(bytes)
}

fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}
