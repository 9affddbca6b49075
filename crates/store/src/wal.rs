//! The write-ahead log: framed, checksummed records; group commit; recovery that
//! truncates a torn tail and reports (never silently skips) corrupt records.
//! Design and trade-offs: docs/adr/0002-write-ahead-log.md.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{io_error, StoreError};

pub const WAL_FORMAT_VERSION: u8 = 1;
/// Largest payload of one record.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 64 << 20;
/// A log file is rotated once it grows past this.
pub const WAL_FILE_BYTES_MAX: u64 = 64 << 20;
const FRAME_HEADER_BYTES: usize = 8;
const RECORD_PREFIX_BYTES: usize = 9;

/// What recovery found when the log was opened.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub records: u64,
    /// Bytes of an unacknowledged, partly written last record, cut off.
    pub torn_tail_bytes: u64,
    /// Records whose checksum failed in the middle of the log: skipped, reported.
    pub corrupt_records: u64,
    pub problems: Vec<String>,
}

/// One frame read from a buffer.
enum Frame<'a> {
    Record {
        lsn: u64,
        payload: &'a [u8],
        end: usize,
    },
    /// The bytes from here on are not a whole, valid frame.
    Incomplete {
        reason: &'static str,
    },
    /// A whole frame whose checksum (or version) is wrong; the next frame starts at `end`.
    Corrupt {
        end: usize,
        reason: String,
    },
}

fn read_frame(buffer: &[u8], position: usize) -> Frame<'_> {
    let rest = &buffer[position..];
    if rest.len() < FRAME_HEADER_BYTES {
        return Frame::Incomplete { reason: "a frame header cut short" };
    }
    let length = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let checksum = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if !(RECORD_PREFIX_BYTES..=RECORD_PAYLOAD_BYTES_MAX + RECORD_PREFIX_BYTES).contains(&length) {
        return Frame::Incomplete { reason: "a frame length out of bounds" };
    }
    if rest.len() < FRAME_HEADER_BYTES + length {
        return Frame::Incomplete { reason: "a frame cut short" };
    }
    let body = &rest[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + length];
    let end = position + FRAME_HEADER_BYTES + length;
    if crc32c::crc32c(body) != checksum {
        return Frame::Corrupt { end, reason: "checksum mismatch".into() };
    }
    if body[0] != WAL_FORMAT_VERSION {
        return Frame::Corrupt { end, reason: format!("unknown record format version {}", body[0]) };
    }
    let lsn = u64::from_le_bytes(body[1..9].try_into().expect("8 bytes"));
    Frame::Record { lsn, payload: &body[RECORD_PREFIX_BYTES..], end }
}

fn encode_frame(lsn: u64, payload: &[u8], out: &mut Vec<u8>) {
    let length = u32::try_from(RECORD_PREFIX_BYTES + payload.len()).expect("payload below 4 GiB");
    let start = out.len();
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(WAL_FORMAT_VERSION);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
    let checksum = crc32c::crc32c(&out[start + FRAME_HEADER_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&checksum.to_le_bytes());
}

fn wal_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let first_lsn = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".wal"))
            .and_then(|stem| stem.parse::<u64>().ok());
        if let Some(first_lsn) = first_lsn {
            files.push((first_lsn, path));
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|handle| handle.sync_all()).map_err(io_error(dir))
}

/// Calls `visit(lsn, payload)` for every valid record of one log file's bytes, and
/// returns where the valid part ends when the rest is an incomplete frame.
fn replay_buffer(
    path: &Path,
    buffer: &[u8],
    report: &mut RecoveryReport,
    visit: &mut dyn FnMut(u64, &[u8]),
) -> Option<(usize, &'static str)> {
    let mut position = 0;
    while position < buffer.len() {
        match read_frame(buffer, position) {
            Frame::Record { lsn, payload, end } => {
                report.records += 1;
                visit(lsn, payload);
                position = end;
            }
            Frame::Corrupt { end, .. } if end == buffer.len() => {
                return Some((position, "a last frame whose checksum fails"));
            }
            Frame::Corrupt { end, reason } => {
                report.corrupt_records += 1;
                let problem = format!("{}: record at byte {position} skipped: {reason}", path.display());
                tracing::error!(file = %path.display(), offset = position, %reason, "corrupt log record skipped");
                report.problems.push(problem);
                position = end;
            }
            Frame::Incomplete { reason } => return Some((position, reason)),
        }
    }
    None
}

/// The log, open for appending.
pub struct Wal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    file_bytes: u64,
    next_lsn: u64,
}

impl Wal {
    /// Opens (creating) the log in `dir`, replaying every record in order through
    /// `visit(lsn, payload)`, cutting off a torn tail and reporting corrupt records.
    pub fn open(dir: &Path, mut visit: impl FnMut(u64, &[u8])) -> Result<(Wal, RecoveryReport), StoreError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let files = wal_files(dir)?;
        let mut report = RecoveryReport::default();
        let mut next_lsn = 1;
        let mut last_valid_bytes = 0;
        for (index, (first_lsn, path)) in files.iter().enumerate() {
            // A file is named after the lsn it starts at, even while it is empty.
            next_lsn = next_lsn.max(*first_lsn);
            let buffer = std::fs::read(path).map_err(io_error(path))?;
            let is_last = index + 1 == files.len();
            let mut max_lsn = None;
            let stop = replay_buffer(path, &buffer, &mut report, &mut |lsn, payload| {
                max_lsn = Some(lsn);
                visit(lsn, payload);
            });
            if let Some(lsn) = max_lsn {
                next_lsn = next_lsn.max(lsn + 1);
            }
            last_valid_bytes = buffer.len() as u64;
            if let Some((valid_bytes, reason)) = stop {
                let cut = buffer.len() - valid_bytes;
                if is_last {
                    // A crash mid-write: that record was never acknowledged.
                    tracing::warn!(file = %path.display(), offset = valid_bytes, bytes = cut, reason, "truncating torn log tail");
                    let file = OpenOptions::new().write(true).open(path).map_err(io_error(path))?;
                    file.set_len(valid_bytes as u64).and_then(|()| file.sync_all()).map_err(io_error(path))?;
                    report.torn_tail_bytes += cut as u64;
                    last_valid_bytes = valid_bytes as u64;
                } else {
                    report.corrupt_records += 1;
                    let problem =
                        format!("{}: {cut} bytes from byte {valid_bytes} unreadable: {reason}", path.display());
                    tracing::error!(file = %path.display(), offset = valid_bytes, bytes = cut, reason, "unreadable log bytes skipped");
                    report.problems.push(problem);
                }
            }
        }
        let (path, file_bytes) = match files.last() {
            Some((_, path)) => (path.clone(), last_valid_bytes),
            None => (dir.join(format!("{next_lsn:020}.wal")), 0),
        };
        let mut file =
            OpenOptions::new().create(true).write(true).truncate(false).open(&path).map_err(io_error(&path))?;
        file.seek(SeekFrom::Start(file_bytes)).map_err(io_error(&path))?;
        if files.is_empty() {
            sync_dir(dir)?;
        }
        Ok((Wal { dir: dir.to_path_buf(), file, path, file_bytes, next_lsn }, report))
    }

    /// Appends records and makes them durable with one write and one fsync; returns
    /// the lsn of each. On any error nothing of the batch is acknowledged and the file
    /// is cut back to where it was.
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Vec<u64>, StoreError> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(payload) = payloads.iter().find(|payload| payload.len() > RECORD_PAYLOAD_BYTES_MAX) {
            return Err(StoreError::RecordTooLarge { bytes: payload.len(), bytes_max: RECORD_PAYLOAD_BYTES_MAX });
        }
        if self.file_bytes >= WAL_FILE_BYTES_MAX {
            self.rotate()?;
        }
        let mut buffer = Vec::with_capacity(payloads.iter().map(|p| p.len() + 17).sum());
        let mut lsns = Vec::with_capacity(payloads.len());
        for payload in payloads {
            encode_frame(self.next_lsn + lsns.len() as u64, payload, &mut buffer);
            lsns.push(self.next_lsn + lsns.len() as u64);
        }
        let written = self.file.write_all(&buffer).and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // Leave no partial frame behind a later good one.
            let _ = self.file.set_len(self.file_bytes);
            let _ = self.file.seek(SeekFrom::Start(self.file_bytes));
            return Err(io_error(&self.path)(error));
        }
        self.file_bytes += buffer.len() as u64;
        self.next_lsn += lsns.len() as u64;
        Ok(lsns)
    }

    /// Makes the next record's lsn at least `lsn` (the manifest's sealed lsn + 1, in
    /// case every log file was sealed and deleted).
    pub fn ensure_next_lsn_at_least(&mut self, lsn: u64) {
        self.next_lsn = self.next_lsn.max(lsn);
    }

    /// The lsn of the last record written (0 for an empty log).
    pub fn last_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// Starts a new log file, unless the current one is still empty.
    pub fn rotate(&mut self) -> Result<(), StoreError> {
        if self.file_bytes == 0 {
            return Ok(());
        }
        let path = self.dir.join(format!("{:020}.wal", self.next_lsn));
        let file = OpenOptions::new().create_new(true).write(true).open(&path).map_err(io_error(&path))?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.path = path;
        self.file_bytes = 0;
        Ok(())
    }

    /// Deletes every log file but the current one (after sealing them).
    /// The log files that hold only records up to `lsn` (a file is named by its first
    /// lsn, and the next file starts where it ends). Never the current file.
    pub fn files_sealed_through(&self, lsn: u64) -> Result<Vec<PathBuf>, StoreError> {
        let files = wal_files(&self.dir)?;
        let mut sealed = Vec::new();
        for (index, (_, path)) in files.iter().enumerate() {
            let next_start = files.get(index + 1).map(|(start, _)| *start);
            if *path != self.path && next_start.is_some_and(|next| next <= lsn + 1) {
                sealed.push(path.clone());
            }
        }
        Ok(sealed)
    }

    /// Every log file, oldest first.
    pub fn files(&self) -> Result<Vec<PathBuf>, StoreError> {
        Ok(wal_files(&self.dir)?.into_iter().map(|(_, path)| path).collect())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Replays the log read-only (no repair), for scans.
pub fn read_records(dir: &Path, visit: impl FnMut(u64, &[u8])) -> Result<RecoveryReport, StoreError> {
    open_log_files(dir)?.read(visit)
}

/// The log's files opened, each with its length at the moment: what `read` replays,
/// later and without the store, exactly as the log was (appends after it, or the
/// files' removal once sealed, do not change what it reads).
pub struct OpenLog {
    files: Vec<(PathBuf, File, u64)>,
}

/// Opens every log file of `dir` and notes its length.
pub fn open_log_files(dir: &Path) -> Result<OpenLog, StoreError> {
    let mut files = Vec::new();
    if !dir.exists() {
        return Ok(OpenLog { files });
    }
    for (_, path) in wal_files(dir)? {
        let file = File::open(&path).map_err(io_error(&path))?;
        let length = file.metadata().map_err(io_error(&path))?.len();
        files.push((path, file, length));
    }
    Ok(OpenLog { files })
}

impl OpenLog {
    /// Calls `visit(lsn, payload)` for every valid record of the opened files, up to
    /// the lengths they had when opened.
    pub fn read(self, mut visit: impl FnMut(u64, &[u8])) -> Result<RecoveryReport, StoreError> {
        use std::io::Read;
        let mut report = RecoveryReport::default();
        let files = self.files.len();
        for (index, (path, file, length)) in self.files.into_iter().enumerate() {
            let mut buffer = Vec::with_capacity(length as usize);
            file.take(length).read_to_end(&mut buffer).map_err(io_error(&path))?;
            read_buffer(&path, &buffer, index + 1 == files, &mut report, &mut visit);
        }
        Ok(report)
    }
}

/// Replays one log file's bytes; an unreadable end is a write in progress (or a torn
/// tail the next writer cuts off) in the `last` file, damage in any other.
fn read_buffer(path: &Path, buffer: &[u8], last: bool, report: &mut RecoveryReport, visit: &mut dyn FnMut(u64, &[u8])) {
    let Some((valid_bytes, reason)) = replay_buffer(path, buffer, report, visit) else { return };
    let cut = (buffer.len() - valid_bytes) as u64;
    if last {
        report.torn_tail_bytes += cut;
    } else {
        report.corrupt_records += 1;
        report.problems.push(format!("{}: {cut} bytes from byte {valid_bytes} unreadable: {reason}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(dir: &Path) -> (Vec<(u64, Vec<u8>)>, RecoveryReport) {
        let mut records = Vec::new();
        let (_, report) = Wal::open(dir, |lsn, payload| records.push((lsn, payload.to_vec()))).expect("opens");
        (records, report)
    }

    #[test]
    fn appended_records_come_back_in_order_with_their_lsns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path(), |_, _| {}).expect("opens");
        assert_eq!(wal.append_batch(&[b"one", b"two"]).expect("append"), vec![1, 2]);
        assert_eq!(wal.append_batch(&[b"three"]).expect("append"), vec![3]);
        drop(wal);
        let (records, report) = replay(dir.path());
        assert_eq!(records, vec![(1, b"one".to_vec()), (2, b"two".to_vec()), (3, b"three".to_vec())]);
        assert_eq!(report.records, 3);
        let (mut wal, _) = Wal::open(dir.path(), |_, _| {}).expect("reopens");
        assert_eq!(wal.append_batch(&[b"four"]).expect("append"), vec![4], "lsns continue after reopening");
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path(), |_, _| {}).expect("opens");
        wal.append_batch(&[b"kept", b"torn"]).expect("append");
        let path = wal.files().expect("files")[0].clone();
        drop(wal);
        let length = std::fs::metadata(&path).expect("meta").len();
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(length - 3).expect("tear the last frame");
        let (records, report) = replay(dir.path());
        assert_eq!(records, vec![(1, b"kept".to_vec())]);
        assert_eq!(report.torn_tail_bytes, (FRAME_HEADER_BYTES + RECORD_PREFIX_BYTES + 4 - 3) as u64);
        let (mut wal, _) = Wal::open(dir.path(), |_, _| {}).expect("reopens");
        wal.append_batch(&[b"after"]).expect("append");
        drop(wal);
        let (records, report) = replay(dir.path());
        assert_eq!(records.iter().map(|r| r.1.as_slice()).collect::<Vec<_>>(), vec![&b"kept"[..], b"after"]);
        assert_eq!(report.corrupt_records, 0);
    }

    #[test]
    fn a_corrupt_record_in_the_middle_is_skipped_and_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path(), |_, _| {}).expect("opens");
        wal.append_batch(&[b"first", b"second", b"third"]).expect("append");
        let path = wal.files().expect("files")[0].clone();
        drop(wal);
        let mut bytes = std::fs::read(&path).expect("read");
        let second_payload = 2 * (FRAME_HEADER_BYTES + RECORD_PREFIX_BYTES) + 5 + 1;
        bytes[second_payload] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let (records, report) = replay(dir.path());
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(report.corrupt_records, 1);
        assert!(report.problems[0].contains("checksum"), "{:?}", report.problems);
    }
}
