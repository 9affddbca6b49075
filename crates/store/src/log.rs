//! A site's events in the log: each append is one record (`site\n` then a block of
//! segment columns), deduplicated on (key role, event_id) before it is written: the
//! first valid event of an id is kept per role, across appends and restarts.

use upshot_model::{Event, ParseContext};

use crate::dedupe::{digest, IdSet};
use crate::seal::{record_events, BLOCK_PAYLOAD};
use crate::segment::{encode_block, read_segment, ColumnSet, SegmentFile};
use crate::{wal, SiteRecord, Store, StoreError};

/// Adds one bucket's event ids (with their key roles) to `ids`.
fn bucket_event_ids(file: &SegmentFile, bucket: u32, ids: &mut IdSet) -> Result<(), StoreError> {
    if let Some(columns) = file.bucket(bucket, ColumnSet::EventIds)? {
        columns
            .for_each_event_id(|event_id, role| {
                ids.insert(digest(event_id, role));
            })
            .map_err(|reason| StoreError::CorruptSegment { path: file.path.clone(), reason: reason.to_string() })?;
    }
    Ok(())
}

/// What happened to an appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Taken,
    /// An event with this event_id was taken before; nothing was written.
    Duplicate,
}

pub(crate) fn site_prefix(site: &str) -> Vec<u8> {
    let mut prefix = site.as_bytes().to_vec();
    prefix.push(b'\n');
    prefix
}

impl Store {
    /// Appends a batch of a site's events as one durable record: when this returns
    /// `Ok`, every `Taken` event is on disk. On error nothing was taken.
    pub fn append_events(&mut self, record: &SiteRecord, events: &[Event]) -> Result<Vec<Appended>, StoreError> {
        let mut outcomes = self.append_event_batches(&[(record, events)])?;
        Ok(outcomes.pop().expect("one outcome list per batch"))
    }

    /// Group commit: appends several batches (of any sites) as log records written
    /// together and made durable by one fsync. Outcomes come back per batch, in order;
    /// on error nothing of any batch was taken. A batch repeating an event_id of an
    /// earlier batch in the same call gets `Duplicate` for it, as if appended after.
    pub fn append_event_batches(
        &mut self,
        batches: &[(&SiteRecord, &[Event])],
    ) -> Result<Vec<Vec<Appended>>, StoreError> {
        for (record, _) in batches {
            let loaded = self.writer.as_ref().is_some_and(|writer| writer.taken_ids.contains_key(&record.site));
            if !loaded {
                let ids = self.load_taken_ids(record)?;
                self.writer_mut().taken_ids.insert(record.site.clone(), ids);
            }
        }
        let writer = self.writer_mut();
        let mut new_ids: std::collections::HashMap<&str, IdSet> = std::collections::HashMap::new();
        let mut payloads = Vec::new();
        let mut all_outcomes = Vec::with_capacity(batches.len());
        for (record, events) in batches {
            let taken_ids = writer.taken_ids.get(&record.site).expect("loaded above");
            let batch_ids = new_ids.entry(record.site.as_str()).or_default();
            let mut taken: Vec<&Event> = Vec::with_capacity(events.len());
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events.iter() {
                let id = digest(event.event_id.as_bytes(), event.sent_with);
                if taken_ids.contains(&id) || !batch_ids.insert(id) {
                    outcomes.push(Appended::Duplicate);
                    continue;
                }
                taken.push(event);
                outcomes.push(Appended::Taken);
            }
            if !taken.is_empty() {
                let mut payload = site_prefix(&record.site);
                payload.push(BLOCK_PAYLOAD);
                payload.extend_from_slice(&encode_block(&taken));
                payloads.push(payload);
            }
            all_outcomes.push(outcomes);
        }
        if !payloads.is_empty() {
            let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            writer.wal.append_batch(&slices)?;
            let mut changed = Vec::new();
            for (site, ids) in new_ids {
                if ids.len() > 0 {
                    changed.push(site);
                }
                writer.appended_since_seal += ids.len() as u64;
                writer.taken_ids.get_mut(site).expect("loaded above").extend(ids);
            }
            changed.into_iter().for_each(|site| self.bump_site_version(site));
        }
        Ok(all_outcomes)
    }

    /// Every event id the site holds, from the segments' event-id columns (only those
    /// are read) and the log's tail. A damaged segment is skipped and noted, so that
    /// the site's ingest goes on (its ids no longer deduplicate new events: a lesser
    /// harm than refusing every event).
    fn load_taken_ids(&self, record: &SiteRecord) -> Result<IdSet, StoreError> {
        let mut ids = IdSet::default();
        for entry in self.manifest.site_segments(&record.site) {
            match SegmentFile::open(&self.root().join(&entry.file)) {
                Ok(file) => {
                    for info in &file.header.buckets {
                        if let Err(error) = bucket_event_ids(&file, info.bucket, &mut ids) {
                            self.note_damage(&error.to_string());
                        }
                    }
                }
                Err(error) => self.note_damage(&error.to_string()),
            }
        }
        let summary = self.scan_tail(record, |event| {
            ids.insert(digest(event.event_id.as_bytes(), event.sent_with));
        })?;
        summary.problems.iter().for_each(|problem| self.note_damage(problem));
        Ok(ids)
    }

    fn writer_mut(&mut self) -> &mut crate::Writer {
        self.writer.as_mut().expect("appends need a store opened with Store::open, not open_read_only")
    }

    /// Calls `visit` with every stored event of the site: sealed segments first, then
    /// the log's unsealed tail. A damaged segment or log record is skipped and named in
    /// the summary (and logged); everything else is still read.
    pub fn scan_events(&self, record: &SiteRecord, mut visit: impl FnMut(Event)) -> Result<ScanSummary, StoreError> {
        let mut summary = ScanSummary::default();
        for entry in self.manifest.site_segments(&record.site) {
            let path = self.root().join(&entry.file);
            match read_segment(&path) {
                Ok((_, events)) => {
                    summary.events += events.len() as u64;
                    events.into_iter().for_each(&mut visit);
                }
                Err(error) => {
                    self.note_damage(&error.to_string());
                    summary.problems.push(error.to_string());
                }
            }
        }
        let tail = self.scan_tail(record, visit)?;
        summary.events += tail.events;
        summary.problems.extend(tail.problems);
        Ok(summary)
    }

    /// Opens the site's segment files (headers checked); a damaged one is an error in
    /// its place, so a scan can skip it and say so.
    pub fn site_segments(&self, site: &str) -> Vec<Result<SegmentFile, StoreError>> {
        self.manifest.site_segments(site).map(|entry| SegmentFile::open(&self.root().join(&entry.file))).collect()
    }

    /// Calls `visit` with the site's events still in the log (not yet sealed).
    pub fn scan_tail(&self, record: &SiteRecord, visit: impl FnMut(Event)) -> Result<ScanSummary, StoreError> {
        self.open_tail(record)?.scan(visit)
    }

    /// The site's unsealed log tail as it is now, to be read later without the store
    /// (`OpenTail::scan`): a reader holding the store's lock only while this runs does
    /// not hold appends back while the tail is read.
    pub fn open_tail(&self, record: &SiteRecord) -> Result<OpenTail, StoreError> {
        Ok(OpenTail {
            log: wal::open_log_files(&self.root().join("wal"))?,
            sealed: self.manifest.sealed_through_lsn,
            site: record.site.clone(),
            context: ParseContext { currency: record.currency.clone() },
        })
    }
}

/// A site's unsealed log tail, opened (`Store::open_tail`).
pub struct OpenTail {
    log: wal::OpenLog,
    sealed: u64,
    site: String,
    context: ParseContext,
}

impl OpenTail {
    /// Calls `visit` with every event of the tail; damaged records are skipped and named.
    pub fn scan(self, mut visit: impl FnMut(Event)) -> Result<ScanSummary, StoreError> {
        let mut summary = ScanSummary::default();
        let (sealed, site, context) = (self.sealed, self.site, self.context);
        let recovery = self.log.read(|lsn, payload| {
            let payload_site = payload.split(|&byte| byte == b'\n').next().unwrap_or_default();
            if lsn <= sealed || payload_site != site.as_bytes() {
                return;
            }
            match record_events(payload, &context) {
                Ok((_, events)) => {
                    summary.events += events.len() as u64;
                    events.into_iter().for_each(&mut visit);
                }
                Err(reason) => summary.problems.push(format!("log record {lsn}: {reason}")),
            }
        })?;
        summary.problems.extend(recovery.problems);
        Ok(summary)
    }
}

/// What a scan read, and what it had to skip.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanSummary {
    pub events: u64,
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use upshot_model::parse_event_line;

    fn event(id: &str, visitor: &str) -> Event {
        let line = format!(r#"{{"event_id":"{id}","type":"page_view","ts":1000,"visitor_id":"{visitor}"}}"#);
        parse_event_line(&line, &ParseContext { currency: "USD".into() }).expect("valid event")
    }

    #[test]
    fn first_event_of_an_id_is_kept_across_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("store opens");
        let (record, _) = store.create_site("shop", "UTC", "USD").expect("site created");
        let outcomes = store.append_events(&record, &[event("a", "v1"), event("a", "v2")]).expect("append");
        assert_eq!(outcomes, [Appended::Taken, Appended::Duplicate]);
        drop(store);
        let mut store = Store::open(dir.path()).expect("store reopens");
        let outcomes = store.append_events(&record, &[event("a", "v3"), event("b", "v3")]).expect("append");
        assert_eq!(outcomes, [Appended::Duplicate, Appended::Taken]);
        let mut visitors = Vec::new();
        store.scan_events(&record, |e| visitors.push(e.visitor_id.unwrap_or_default())).expect("scan");
        assert_eq!(visitors, ["v1", "v3"]);
    }

    #[test]
    fn a_second_writer_is_refused_with_a_clear_error_but_readers_are_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let _first = Store::open(dir.path()).expect("store opens");
        let second = Store::open(dir.path()).err().expect("second writer refused");
        assert!(second.to_string().contains("in use by another upshot process"), "{second}");
        assert!(Store::open_read_only(dir.path()).is_ok());
    }

    #[test]
    fn sites_do_not_see_each_other_s_events() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("store opens");
        let (shop, _) = store.create_site("shop", "UTC", "USD").expect("site");
        let (other, _) = store.create_site("shop2", "UTC", "USD").expect("site");
        store.append_events(&shop, &[event("a", "v1")]).expect("append");
        assert_eq!(store.append_events(&other, &[event("a", "v9")]).expect("append"), [Appended::Taken]);
        let mut seen = Vec::new();
        store.scan_events(&other, |e| seen.push(e.visitor_id.unwrap_or_default())).expect("scan");
        assert_eq!(seen, ["v9"]);
    }
}
