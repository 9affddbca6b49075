//! Sealing the log into segments, and compaction of a day's segments into one.
//! Both change the store by writing new files first and then swapping the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use upshot_model::{parse_event_line, Event, ParseContext};

use crate::manifest::SegmentEntry;
use crate::segment::{day_number, decode_block, read_segment, segment_order, segment_path, write_segment};
use crate::{io_error, sync_dir, wal, Store, StoreError};

/// What `seal` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SealReport {
    pub records: u64,
    pub events: u64,
    pub segments: u64,
}

/// What `compact` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactReport {
    pub merged_segments: u64,
    pub written_segments: u64,
}

/// The UTC day of an instant, as segments are partitioned.
pub fn utc_day(ts: i64) -> String {
    jiff::Timestamp::from_millisecond(ts)
        .map(|timestamp| timestamp.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_else(|_| "out-of-range".to_string())
}

/// The byte after a log record's site line that marks a binary block payload
/// (`segment::encode_block`); records of the first format hold canonical NDJSON there.
/// Blocks marked `BLOCK_PAYLOAD_WITHOUT_TRAFFIC` were logged before the traffic column.
pub(crate) const BLOCK_PAYLOAD: u8 = 3;
const BLOCK_PAYLOAD_WITHOUT_TRAFFIC: u8 = 2;

/// Why a log record (checksummed, so written by a bug or by something else) cannot be
/// read as events.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    #[error("a log record without its site line")]
    NoSiteLine,
    #[error("a site line that is not UTF-8")]
    SiteNotUtf8,
    #[error("event {number}: not UTF-8")]
    LineNotUtf8 { number: usize },
    #[error("event {number}: {rejection}")]
    Rejected { number: usize, rejection: upshot_model::Rejection },
    #[error(transparent)]
    Block(#[from] crate::segment::DecodeError),
}

/// Decodes a log record into its site and events.
pub(crate) fn record_events<'a>(
    payload: &'a [u8],
    context: &ParseContext,
) -> Result<(&'a str, Vec<Event>), RecordError> {
    let newline = payload.iter().position(|&byte| byte == b'\n').ok_or(RecordError::NoSiteLine)?;
    let site = std::str::from_utf8(&payload[..newline]).map_err(|_| RecordError::SiteNotUtf8)?;
    let rest = &payload[newline + 1..];
    let mut events = Vec::new();
    match rest.split_first() {
        Some((&BLOCK_PAYLOAD, block)) => decode_block(block, true, &mut events)?,
        Some((&BLOCK_PAYLOAD_WITHOUT_TRAFFIC, block)) => decode_block(block, false, &mut events)?,
        _ => {
            for (index, line) in rest.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()).enumerate() {
                let number = index + 1;
                let line = std::str::from_utf8(line).map_err(|_| RecordError::LineNotUtf8 { number })?;
                let event =
                    parse_event_line(line, context).map_err(|rejection| RecordError::Rejected { number, rejection })?;
                events.push(event);
            }
        }
    }
    Ok((site, events))
}

/// A seal in three steps, so that a server goes on appending while segments are
/// written: [`Store::begin_seal`] rotates the log (brief, needs the writer),
/// [`SealPlan::write_segments`] reads the sealed log files and writes segment files (the
/// long part; needs no access to the store), [`Store::finish_seal`] swaps the manifest
/// and removes the sealed log files (brief). Until the swap, readers see the records in
/// the log; a crash before it leaves only orphan segment files, removed at the next open.
#[derive(Debug)]
pub struct SealPlan {
    root: PathBuf,
    sealed_before: u64,
    last: u64,
    /// Events appended before the rotation: the ones this seal moves.
    appended: u64,
}

/// Segment files written for a seal, not yet part of the store.
#[derive(Debug)]
pub struct SealedSegments {
    plan: SealPlan,
    entries: Vec<SegmentEntry>,
    report: SealReport,
}

impl SealPlan {
    /// The plan's events, per site, in log order: for writing them elsewhere (a
    /// ClickHouse backend ships them instead of writing segments).
    pub fn read_events(&self) -> Result<BTreeMap<String, Vec<Event>>, StoreError> {
        // One vector per site, reserved for the tail, sorted by day then segment order:
        // no per-day vectors growing (and copying large events) while the log is read.
        let expected = usize::try_from(self.appended).unwrap_or(0);
        let mut groups: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        let context = ParseContext { currency: String::new() };
        let mut failure = None;
        let (sealed_before, last) = (self.sealed_before, self.last);
        wal::read_records(&self.root.join("wal"), |lsn, payload| {
            if lsn <= sealed_before || lsn > last || failure.is_some() {
                return;
            }
            match record_events(payload, &context) {
                Ok((site, events)) => {
                    let group = groups.entry(site.to_string()).or_insert_with(|| Vec::with_capacity(expected));
                    group.extend(events);
                }
                Err(reason) => failure = Some(format!("log record {lsn}: {reason}")),
            }
        })?;
        if let Some(reason) = failure {
            return Err(StoreError::Corrupt { path: self.root.join("wal"), line: 0, reason });
        }
        Ok(groups)
    }

    /// The plan done without segments: its events were delivered elsewhere, and
    /// `finish_seal` may now drop them from the log.
    pub fn delivered(self, events: u64) -> SealedSegments {
        SealedSegments { plan: self, entries: Vec::new(), report: SealReport { events, ..SealReport::default() } }
    }

    /// Reads the log records of the plan and writes them as segments, one per site and
    /// UTC day.
    pub fn write_segments(self) -> Result<SealedSegments, StoreError> {
        let groups = self.read_events()?;
        let mut report = SealReport { records: self.last - self.sealed_before, ..SealReport::default() };
        let last = self.last;
        let mut entries = Vec::new();
        for (site, events) in groups {
            let ordered = segment_order(&events, |event| day_number(event.ts));
            for day_events in ordered.chunk_by(|a, b| day_number(a.ts) == day_number(b.ts)) {
                let day = utc_day(day_events[0].ts);
                let name = format!("{last:020}-{}.seg", entries.len());
                entries.push(write_entry(&self.root, &site, &day, &name, day_events)?);
                report.events += day_events.len() as u64;
            }
        }
        report.segments = entries.len() as u64;
        Ok(SealedSegments { plan: self, entries, report })
    }
}

/// Log files whose records are all in segments now.
#[derive(Debug)]
#[must_use = "sealed log files take disk space until removed"]
pub struct SealedLogFiles {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl SealedLogFiles {
    pub fn remove(self) -> Result<(), StoreError> {
        for path in &self.files {
            std::fs::remove_file(path).map_err(io_error(path))?;
        }
        sync_dir(&self.dir)
    }
}

/// Writes one segment file under the data dir and returns its manifest entry.
pub(crate) fn write_entry<E: std::borrow::Borrow<Event>>(
    root: &Path,
    site: &str,
    day: &str,
    name: &str,
    events: &[E],
) -> Result<SegmentEntry, StoreError> {
    let mut path = segment_path(&root.join("sites").join(site), day, name);
    // Never over an existing file: a second `forget`, or a compaction of a day whose
    // earlier compaction had the same name, would otherwise rewrite a listed segment in
    // place and then delete it as replaced.
    let stem = name.strip_suffix(".seg").unwrap_or(name).to_string();
    let mut attempt = 1;
    while path.exists() {
        attempt += 1;
        path = segment_path(&root.join("sites").join(site), day, &format!("{stem}-{attempt}.seg"));
    }
    let dir = path.parent().expect("a segment path has a parent");
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let (_, bytes) = write_segment(&path, site, day, events)?;
    sync_dir(dir)?;
    let file = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
    let content = crate::dedupe::content_digest(events.iter().map(std::borrow::Borrow::borrow));
    Ok(SegmentEntry {
        site: site.to_string(),
        day: day.to_string(),
        file,
        events: events.len() as u64,
        bytes,
        content: Some(format!("{content:032x}")),
    })
}

/// Which site-days a compaction merges.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// A day with at least this many segments is merged into one.
    pub segments_min: usize,
    /// Days before this UTC day (`YYYY-MM-DD`) seldom receive events any more: each is
    /// merged into one segment as soon as it has two (a report then reads one file
    /// per day), and rarely rewritten again.
    pub closed_before_day: Option<String>,
    /// Site-days merged by one plan at most (the oldest first), so one pass is short.
    pub days_max: usize,
}

/// A compaction in three steps, like a seal: [`Store::plan_compaction`] picks the
/// site-days, [`CompactPlan::write_segments`] merges them into new files (no access to
/// the store), [`Store::finish_compaction`] swaps them in.
#[derive(Debug)]
pub struct CompactPlan {
    root: PathBuf,
    sealed_through_lsn: u64,
    days: Vec<(String, String, Vec<SegmentEntry>)>,
}

/// Merged segment files, not yet part of the store.
#[derive(Debug)]
pub struct CompactedSegments {
    root: PathBuf,
    merged: Vec<(Vec<SegmentEntry>, SegmentEntry)>,
}

impl CompactPlan {
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    pub fn write_segments(self) -> Result<CompactedSegments, StoreError> {
        let mut merged = Vec::new();
        for (site, day, old) in self.days {
            let mut events = Vec::new();
            for entry in &old {
                events.extend(read_segment(&self.root.join(&entry.file))?.1);
            }
            let events = segment_order(&events, |_| 0);
            let name = format!("{:020}-compacted-{}.seg", self.sealed_through_lsn, old.len());
            let new = write_entry(&self.root, &site, &day, &name, &events)?;
            merged.push((old, new));
        }
        Ok(CompactedSegments { root: self.root, merged })
    }
}

impl Store {
    /// Moves every unsealed log record into segments, one per site and UTC day, then
    /// swaps the manifest and deletes the sealed log files.
    pub fn seal(&mut self) -> Result<SealReport, StoreError> {
        match self.begin_seal()? {
            Some(plan) => {
                let (report, sealed_log) = self.finish_seal(plan.write_segments()?)?;
                sealed_log.remove()?;
                Ok(report)
            }
            None => Ok(SealReport::default()),
        }
    }

    pub(crate) fn write_entry<E: std::borrow::Borrow<Event>>(
        &self,
        site: &str,
        day: &str,
        name: &str,
        events: &[E],
    ) -> Result<SegmentEntry, StoreError> {
        write_entry(&self.root, site, day, name, events)
    }

    /// Rotates the log so that appends go on in a new file; `None` when there is
    /// nothing to seal.
    pub fn begin_seal(&mut self) -> Result<Option<SealPlan>, StoreError> {
        let sealed_before = self.manifest.sealed_through_lsn;
        let writer = self.writer.as_mut().expect("sealing needs a store opened for writing");
        let last = writer.wal.last_lsn();
        if last <= sealed_before {
            return Ok(None);
        }
        writer.wal.rotate()?;
        // From here on the count is of events this seal does not move: a writer asks for
        // the next seal by it, not by events already being sealed.
        let appended = std::mem::take(&mut writer.appended_since_seal);
        Ok(Some(SealPlan { root: self.root.clone(), sealed_before, last, appended }))
    }

    /// Makes the written segments part of the store. The log files they came from are
    /// returned for the caller to remove (after letting go of the store: removing large
    /// files takes a while, and nothing reads them once the manifest says they are sealed).
    pub fn finish_seal(&mut self, sealed: SealedSegments) -> Result<(SealReport, SealedLogFiles), StoreError> {
        let SealedSegments { plan, entries, report } = sealed;
        if self.manifest.sealed_through_lsn != plan.sealed_before {
            return Err(StoreError::Corrupt {
                path: self.root.join("manifest.json"),
                line: 0,
                reason: "another seal finished first; this one's segments are left as orphans".into(),
            });
        }
        let mut manifest = self.manifest.clone();
        manifest.sealed_through_lsn = plan.last;
        manifest.segments.extend(entries);
        manifest.save(&self.root)?;
        self.manifest = manifest;
        let writer = self.writer.as_mut().expect("sealing needs a store opened for writing");
        let files = writer.wal.files_sealed_through(plan.last)?;
        Ok((report, SealedLogFiles { dir: self.root.join("wal"), files }))
    }

    /// Merges every site-day that has at least `segments_min` segments into one.
    pub fn compact(&mut self, segments_min: usize) -> Result<CompactReport, StoreError> {
        let plan = self.plan_compaction(segments_min);
        if plan.is_empty() {
            return Ok(CompactReport::default());
        }
        self.finish_compaction(plan.write_segments()?)
    }

    /// The site-days with at least `segments_min` segments.
    pub fn plan_compaction(&self, segments_min: usize) -> CompactPlan {
        self.plan_compaction_with(&CompactionPolicy { segments_min, closed_before_day: None, days_max: usize::MAX })
    }

    /// The site-days the policy says to merge, oldest first, at most `days_max`.
    pub fn plan_compaction_with(&self, policy: &CompactionPolicy) -> CompactPlan {
        assert!(self.writer.is_some(), "compaction needs a store opened for writing");
        let mut by_day: BTreeMap<(String, String), Vec<SegmentEntry>> = BTreeMap::new();
        for entry in &self.manifest.segments {
            by_day.entry((entry.site.clone(), entry.day.clone())).or_default().push(entry.clone());
        }
        let mut days: Vec<(String, String, Vec<SegmentEntry>)> = by_day
            .into_iter()
            .filter(|((_, day), old)| {
                let closed =
                    policy.closed_before_day.as_deref().is_some_and(|closed_before| day.as_str() < closed_before);
                old.len() >= 2 && (closed || old.len() >= policy.segments_min)
            })
            .map(|((site, day), old)| (site, day, old))
            .collect();
        days.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        days.truncate(policy.days_max);
        CompactPlan { root: self.root.clone(), sealed_through_lsn: self.manifest.sealed_through_lsn, days }
    }

    /// Swaps merged segments in for the ones they merge; a day whose segments changed
    /// meanwhile keeps them, and its merged file is removed.
    pub fn finish_compaction(&mut self, compacted: CompactedSegments) -> Result<CompactReport, StoreError> {
        let mut report = CompactReport::default();
        let mut manifest = self.manifest.clone();
        let mut unused = Vec::new();
        let mut replaced = Vec::new();
        for (old, new) in compacted.merged {
            if old.iter().all(|entry| manifest.segments.contains(entry)) {
                manifest.segments.retain(|entry| !old.contains(entry));
                manifest.segments.push(new.clone());
                report.merged_segments += old.len() as u64;
                report.written_segments += 1;
                replaced.extend(old.into_iter().filter(|entry| entry.file != new.file));
            } else {
                unused.push(new);
            }
        }
        manifest.save(&compacted.root)?;
        self.manifest = manifest;
        for entry in replaced.iter().chain(&unused) {
            let path = self.root.join(&entry.file);
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upshot_model::ParseContext;

    fn event(id: &str, visitor: &str, ts: i64) -> Event {
        let line = format!(r#"{{"event_id":"{id}","type":"page_view","ts":{ts},"visitor_id":"{visitor}"}}"#);
        parse_event_line(&line, &ParseContext { currency: "USD".into() }).expect("valid event")
    }

    fn ids(store: &Store, record: &crate::SiteRecord) -> Vec<String> {
        let mut ids = Vec::new();
        store.scan_events(record, |e| ids.push(e.event_id)).expect("scan");
        ids.sort();
        ids
    }

    /// Regression: after a seal deleted every log file, a reopened log restarted its
    /// lsns at 1, so new records sat below the sealed lsn and were never read.
    #[test]
    fn records_appended_after_reopening_a_fully_sealed_log_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("opens");
        let (record, _) = store.create_site("shop", "UTC", "USD").expect("site");
        store.append_events(&record, &[event("a", "v", 1000)]).expect("append");
        store.seal().expect("seal");
        drop(store);
        let mut store = Store::open(dir.path()).expect("reopens");
        store.append_events(&record, &[event("b", "v", 2000)]).expect("append");
        assert_eq!(ids(&store, &record), ["a", "b"]);
        store.seal().expect("seal");
        drop(store);
        let store = Store::open(dir.path()).expect("reopens");
        assert_eq!(ids(&store, &record), ["a", "b"]);
        assert_eq!(store.manifest().segments.len(), 2);
    }

    /// A server appends while a seal writes its segments: nothing appended meanwhile is
    /// lost or sealed twice, and a compaction planned before a seal still applies.
    #[test]
    fn appends_during_a_seals_write_step_stay_in_the_log_until_the_next_seal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("opens");
        let (record, _) = store.create_site("shop", "UTC", "USD").expect("site");
        store.append_events(&record, &[event("a", "v", 1000), event("b", "w", 2000)]).expect("append");
        let plan = store.begin_seal().expect("begin").expect("something to seal");
        store.append_events(&record, &[event("c", "v", 3000)]).expect("append while writing");
        let written = plan.write_segments().expect("segments written");
        store.append_events(&record, &[event("d", "v", 4000)]).expect("append while writing");
        assert_eq!(ids(&store, &record), ["a", "b", "c", "d"], "before the swap the log still shows a and b");
        let (report, sealed_log) = store.finish_seal(written).expect("finish");
        sealed_log.remove().expect("removed");
        assert_eq!(report.events, 2);
        assert_eq!(store.appended_since_seal(), 2, "c and d are still to seal");
        assert_eq!(ids(&store, &record), ["a", "b", "c", "d"]);
        drop(store);
        let mut store = Store::open(dir.path()).expect("reopens");
        assert_eq!(ids(&store, &record), ["a", "b", "c", "d"]);
        store.seal().expect("seal the rest");
        let compaction = store.plan_compaction(2);
        store.append_events(&record, &[event("e", "v", 5000)]).expect("append while compacting");
        let merged = compaction.write_segments().expect("merged");
        store.finish_compaction(merged).expect("swapped in");
        store.seal().expect("seal e");
        assert_eq!(ids(&store, &record), ["a", "b", "c", "d", "e"]);
        let wal_files = std::fs::read_dir(dir.path().join("wal")).expect("the log dir").count();
        assert_eq!(wal_files, 1, "sealed log files are removed, the current one stays");
    }

    /// Days before the closed day are merged once they have two segments, later days
    /// only when they pile up; a plan takes the oldest days first, at most `days_max`.
    #[test]
    fn closed_days_are_merged_at_two_segments_oldest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("opens");
        let (record, _) = store.create_site("shop", "UTC", "USD").expect("site");
        let day_ms = 86_400_000;
        for round in 0..2 {
            let events: Vec<Event> =
                (0..3).map(|day| event(&format!("e{round}-{day}"), "v", day * day_ms + round + 1)).collect();
            store.append_events(&record, &events).expect("append");
            store.seal().expect("seal");
        }
        let segments_of = |store: &Store, day: &str| store.manifest().segments.iter().filter(|s| s.day == day).count();
        let policy = |days_max| CompactionPolicy {
            segments_min: 8,
            closed_before_day: Some("1970-01-03".to_string()),
            days_max,
        };
        let plan = store.plan_compaction_with(&policy(1));
        store.finish_compaction(plan.write_segments().expect("merged")).expect("swapped in");
        assert_eq!(segments_of(&store, "1970-01-01"), 1, "the oldest closed day first");
        assert_eq!(segments_of(&store, "1970-01-02"), 2, "one day per plan");
        let plan = store.plan_compaction_with(&policy(10));
        store.finish_compaction(plan.write_segments().expect("merged")).expect("swapped in");
        assert_eq!(segments_of(&store, "1970-01-02"), 1);
        assert_eq!(segments_of(&store, "1970-01-03"), 2, "not closed, fewer than segments_min");
        assert!(store.plan_compaction_with(&policy(10)).is_empty());
        assert_eq!(ids(&store, &record).len(), 6);
    }

    #[test]
    fn what_goes_in_comes_out_through_any_mix_of_appends_seals_and_compactions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("opens");
        let (record, _) = store.create_site("shop", "UTC", "USD").expect("site");
        let mut expected = Vec::new();
        let mut state = 0x9E37_79B9_u64;
        for step in 0..60u64 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let roll = state >> 60;
            let ts = 1_714_521_600_000 + (state >> 20) as i64 % (5 * 86_400_000);
            let id = format!("e{step}");
            let visitor = format!("v{}", (state >> 8) % 5);
            store.append_events(&record, &[event(&id, &visitor, ts), event(&id, "dup", ts)]).expect("append");
            expected.push(id.clone());
            match roll {
                0..=3 => {
                    store.seal().expect("seal");
                }
                4 => {
                    store.compact(2).expect("compact");
                }
                5 => {
                    drop(store);
                    store = Store::open(dir.path()).expect("reopens");
                }
                6..=8 => {
                    // A seal in steps with appends between them, as a server does.
                    if let Some(plan) = store.begin_seal().expect("begin") {
                        let during = format!("{id}-during");
                        store.append_events(&record, &[event(&during, &visitor, ts + 1)]).expect("append");
                        expected.push(during);
                        let written = plan.write_segments().expect("write");
                        if roll == 7 {
                            let compaction = store.plan_compaction(2);
                            let merged = compaction.write_segments().expect("merge");
                            store.finish_compaction(merged).expect("swap");
                        }
                        let (_, sealed_log) = store.finish_seal(written).expect("finish");
                        sealed_log.remove().expect("remove");
                    }
                }
                _ => {}
            }
        }
        expected.sort();
        assert_eq!(ids(&store, &record), expected);
        store.seal().expect("seal");
        store.compact(2).expect("compact");
        assert_eq!(ids(&store, &record), expected);
        let days: std::collections::HashSet<&str> = store.manifest().segments.iter().map(|s| s.day.as_str()).collect();
        assert_eq!(days.len(), store.manifest().segments.len(), "one segment per day after compaction");
        // Within a segment, events come back by bucket, then visitor, then time.
        for entry in &store.manifest().segments {
            let (_, events) = read_segment(&dir.path().join(&entry.file)).expect("segment reads");
            let keys: Vec<(u32, String, i64)> = events
                .iter()
                .map(|e| {
                    let visitor = e.visitor_id.clone().unwrap_or_default();
                    (crate::segment::bucket_of(&visitor), visitor, e.ts)
                })
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted);
        }
    }
}
