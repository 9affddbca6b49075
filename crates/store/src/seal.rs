//! Sealing the log into segments, and compaction of a day's segments into one.
//! Both change the store by writing new files first and then swapping the manifest.

use std::collections::BTreeMap;

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
pub(crate) const BLOCK_PAYLOAD: u8 = 2;

/// Decodes a log record into its site and events.
pub(crate) fn record_events<'a>(payload: &'a [u8], context: &ParseContext) -> Result<(&'a str, Vec<Event>), String> {
    let newline = payload.iter().position(|&byte| byte == b'\n').ok_or("a log record without its site line")?;
    let site = std::str::from_utf8(&payload[..newline]).map_err(|_| "a site line that is not UTF-8")?;
    let rest = &payload[newline + 1..];
    let mut events = Vec::new();
    match rest.split_first() {
        Some((&BLOCK_PAYLOAD, block)) => decode_block(block, &mut events)?,
        _ => {
            for (index, line) in rest.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()).enumerate() {
                let line = std::str::from_utf8(line).map_err(|_| format!("event {}: not UTF-8", index + 1))?;
                let event =
                    parse_event_line(line, context).map_err(|rejection| format!("event {}: {rejection}", index + 1))?;
                events.push(event);
            }
        }
    }
    Ok((site, events))
}

impl Store {
    /// Moves every unsealed log record into segments, one per site and UTC day, then
    /// swaps the manifest and deletes the sealed log files.
    pub fn seal(&mut self) -> Result<SealReport, StoreError> {
        let sealed_before = self.manifest.sealed_through_lsn;
        let writer = self.writer.as_mut().expect("sealing needs a store opened for writing");
        let last = writer.wal.last_lsn();
        if last <= sealed_before {
            return Ok(SealReport::default());
        }
        writer.wal.rotate()?;
        let mut report = SealReport::default();
        // One vector per site, reserved for the tail, sorted by day then segment order:
        // no per-day vectors growing (and copying large events) while the log is read.
        let expected = usize::try_from(writer.appended_since_seal).unwrap_or(0);
        let mut groups: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        let context = ParseContext { currency: String::new() };
        let mut failure = None;
        wal::read_records(&self.root.join("wal"), |lsn, payload| {
            if lsn <= sealed_before || lsn > last || failure.is_some() {
                return;
            }
            report.records += 1;
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
        let mut entries = Vec::new();
        for (site, events) in groups {
            let ordered = segment_order(&events, |event| day_number(event.ts));
            for day_events in ordered.chunk_by(|a, b| day_number(a.ts) == day_number(b.ts)) {
                let day = utc_day(day_events[0].ts);
                let name = format!("{last:020}-{}.seg", entries.len());
                entries.push(self.write_entry(&site, &day, &name, day_events)?);
                report.events += day_events.len() as u64;
            }
        }
        report.segments = entries.len() as u64;
        let mut manifest = self.manifest.clone();
        manifest.sealed_through_lsn = last;
        manifest.segments.extend(entries);
        manifest.save(&self.root)?;
        self.manifest = manifest;
        let writer = self.writer.as_mut().expect("checked above");
        writer.wal.remove_files_before_current()?;
        writer.appended_since_seal = 0;
        Ok(report)
    }

    pub(crate) fn write_entry<E: std::borrow::Borrow<Event>>(
        &self,
        site: &str,
        day: &str,
        name: &str,
        events: &[E],
    ) -> Result<SegmentEntry, StoreError> {
        let path = segment_path(&self.site_dir(site), day, name);
        let dir = path.parent().expect("a segment path has a parent");
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let (_, bytes) = write_segment(&path, site, day, events)?;
        sync_dir(dir)?;
        let file = path.strip_prefix(&self.root).unwrap_or(&path).to_string_lossy().into_owned();
        Ok(SegmentEntry { site: site.to_string(), day: day.to_string(), file, events: events.len() as u64, bytes })
    }

    /// Merges every site-day that has at least `segments_min` segments into one.
    pub fn compact(&mut self, segments_min: usize) -> Result<CompactReport, StoreError> {
        assert!(self.writer.is_some(), "compaction needs a store opened for writing");
        let mut by_day: BTreeMap<(String, String), Vec<SegmentEntry>> = BTreeMap::new();
        for entry in &self.manifest.segments {
            by_day.entry((entry.site.clone(), entry.day.clone())).or_default().push(entry.clone());
        }
        let mut report = CompactReport::default();
        for ((site, day), old) in by_day.into_iter().filter(|(_, old)| old.len() >= segments_min.max(2)) {
            let mut events = Vec::new();
            for entry in &old {
                events.extend(read_segment(&self.root.join(&entry.file))?.1);
            }
            let events = segment_order(&events, |_| 0);
            let name = format!("{:020}-compacted-{}.seg", self.manifest.sealed_through_lsn, old.len());
            let new = self.write_entry(&site, &day, &name, &events)?;
            let mut manifest = self.manifest.clone();
            manifest.segments.retain(|entry| !old.contains(entry));
            manifest.segments.push(new.clone());
            manifest.save(&self.root)?;
            self.manifest = manifest;
            for entry in old.iter().filter(|entry| entry.file != new.file) {
                let path = self.root.join(&entry.file);
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            }
            report.merged_segments += old.len() as u64;
            report.written_segments += 1;
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
            expected.push(id);
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
