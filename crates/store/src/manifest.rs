//! The manifest: which segment files make up the store and how far the log is sealed.
//! Replaced atomically (temporary file, fsync, rename, directory fsync).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{io_error, StoreError};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub site: String,
    /// UTC day of the events' ts, `YYYY-MM-DD`.
    pub day: String,
    /// Path relative to the data dir.
    pub file: String,
    pub events: u64,
    pub bytes: u64,
    /// The wrapping sum of the segment's event digests (id and key role), hex: with
    /// `events`, what derived data (day partials) checks the stored events against,
    /// whatever file they are in. Absent in manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Log records with an lsn at or below this are in segments.
    pub sealed_through_lsn: u64,
    pub segments: Vec<SegmentEntry>,
}

impl Default for Manifest {
    fn default() -> Manifest {
        Manifest { format_version: MANIFEST_FORMAT_VERSION, sealed_through_lsn: 0, segments: Vec::new() }
    }
}

impl Manifest {
    pub fn load(root: &Path) -> Result<Manifest, StoreError> {
        let path = root.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(error) => return Err(io_error(&path)(error)),
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|error| StoreError::Corrupt {
            path: path.clone(),
            line: error.line() as u64,
            reason: error.to_string(),
        })?;
        if manifest.format_version != MANIFEST_FORMAT_VERSION {
            return Err(StoreError::Corrupt {
                path,
                line: 1,
                reason: format!("manifest format {} is not {MANIFEST_FORMAT_VERSION}", manifest.format_version),
            });
        }
        Ok(manifest)
    }

    pub fn save(&self, root: &Path) -> Result<(), StoreError> {
        let path = root.join(MANIFEST_FILE);
        let temporary = root.join("manifest.json.tmp");
        let text = serde_json::to_string_pretty(self).expect("a manifest always serializes");
        std::fs::write(&temporary, text).map_err(io_error(&temporary))?;
        std::fs::File::open(&temporary).and_then(|file| file.sync_all()).map_err(io_error(&temporary))?;
        std::fs::rename(&temporary, &path).map_err(io_error(&path))?;
        crate::sync_dir(root)
    }

    pub fn site_segments<'a>(&'a self, site: &'a str) -> impl Iterator<Item = &'a SegmentEntry> + 'a {
        self.segments.iter().filter(move |entry| entry.site == site)
    }
}
