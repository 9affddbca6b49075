//! upshot's storage: the data dir, each site's record (keys hashed, settings) and its
//! accepted events. This first backend is deliberately simple: one append-only file of
//! canonical NDJSON per site, fsync'd per import; the write-ahead log and columnar
//! segments replace it (see docs/adr/0001-first-store.md).

mod keys;
mod log;
mod site;

pub use keys::{hash_key, SiteKeys};
pub use log::{Appended, EventLog};
pub use site::SiteRecord;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("site {0:?} does not exist (create it with `upshot site create {0}`)")]
    UnknownSite(String),
    #[error("site {0:?} already exists")]
    SiteExists(String),
    #[error("{path}: line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error(transparent)]
    Setting(#[from] upshot_model::SettingError),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A data dir: `sites/<site>/site.json`, `events.ndjson`, `rejects.ndjson`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the data dir.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        let sites = root.join("sites");
        std::fs::create_dir_all(&sites).map_err(io_error(&sites))?;
        Ok(Store { root })
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
