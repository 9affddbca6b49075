//! Derived files of a site (`sites/SITE/derived/NAME`): data computed from the events,
//! such as day partials, kept to save recomputing it. Never the only copy of anything:
//! a missing, damaged or outdated one is recomputed. Written whole and atomically
//! (temporary file, fsync, rename), with a checksum over the payload.

use std::path::{Path, PathBuf};

use crate::{io_error, StoreError};

const MAGIC: &[u8; 8] = b"UPSHOTDV";
const HEADER_BYTES: usize = MAGIC.len() + 8 + 4;

impl crate::Store {
    /// Where the site's derived file `name` lives.
    pub fn derived_path(&self, site: &str, name: &str) -> PathBuf {
        self.site_dir(site).join("derived").join(name)
    }
}

/// Writes `payload` to `path` atomically, with its length and checksum.
pub fn write_derived(path: &Path, payload: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().expect("a derived file lives in a directory");
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let temporary = path.with_extension("tmp");
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    let written = std::fs::write(&temporary, &bytes)
        .and_then(|()| std::fs::File::open(&temporary).and_then(|file| file.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        // A full disk must not keep a half-written copy taking the last free space.
        let _ = std::fs::remove_file(&temporary);
        return Err(io_error(path)(error));
    }
    crate::wal::sync_dir(dir)
}

/// Removes the site's derived files (after events were erased: they may hold what was
/// erased, and are recomputed from what is left).
pub(crate) fn remove_derived(site_dir: &Path) -> Result<(), StoreError> {
    let dir = site_dir.join("derived");
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => crate::wal::sync_dir(site_dir),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(&dir)(error)),
    }
}

/// The derived file at `path` (its whole bytes, and where the payload starts: large
/// payloads are not copied); `None` when there is none; an error naming the file when
/// it is damaged (the caller recomputes it).
pub fn read_derived(path: &Path) -> Result<Option<(Vec<u8>, usize)>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path)(error)),
    };
    let damaged = |reason: &str| StoreError::Corrupt { path: path.to_path_buf(), line: 0, reason: reason.to_string() };
    if bytes.len() < HEADER_BYTES || &bytes[..MAGIC.len()] != MAGIC {
        return Err(damaged("not a derived file (its header is wrong); it is recomputed"));
    }
    let length = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let checksum = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER_BYTES..];
    if payload.len() != length || crc32c::crc32c(payload) != checksum {
        return Err(damaged("its checksum does not match (damaged); it is recomputed"));
    }
    Ok(Some((bytes, HEADER_BYTES)))
}
