//! A site's accepted events: one canonical JSON object per line, in arrival order, with
//! exact dedupe on event_id (the first valid event of an id is kept).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use upshot_model::{event_to_json, parse_event_line, Event, ParseContext};

use crate::{io_error, SiteRecord, Store, StoreError};

const EVENTS_FILE: &str = "events.ndjson";

/// What happened to an appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Taken,
    /// An event with this event_id was taken before; nothing was written.
    Duplicate,
}

/// An open event log of one site, for appending.
pub struct EventLog {
    path: PathBuf,
    writer: BufWriter<File>,
    seen: HashSet<String>,
}

impl Store {
    /// Opens a site's log for appending, loading the ids already taken.
    pub fn open_log(&self, record: &SiteRecord) -> Result<EventLog, StoreError> {
        let path = self.site_dir(&record.site).join(EVENTS_FILE);
        let mut seen = HashSet::new();
        self.scan_events(record, |event| {
            seen.insert(event.event_id);
        })?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok(EventLog {
            path,
            writer: BufWriter::with_capacity(1 << 20, file),
            seen,
        })
    }

    /// Calls `visit` with every stored event of the site, in arrival order.
    pub fn scan_events(
        &self,
        record: &SiteRecord,
        mut visit: impl FnMut(Event),
    ) -> Result<u64, StoreError> {
        let path = self.site_dir(&record.site).join(EVENTS_FILE);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(io_error(&path)(error)),
        };
        let context = ParseContext {
            currency: record.currency.clone(),
        };
        let mut count = 0;
        for (index, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
            let line = line.map_err(io_error(&path))?;
            if line.is_empty() {
                continue;
            }
            let event =
                parse_event_line(&line, &context).map_err(|rejection| StoreError::Corrupt {
                    path: path.clone(),
                    line: index as u64 + 1,
                    reason: rejection.to_string(),
                })?;
            visit(event);
            count += 1;
        }
        Ok(count)
    }
}

impl EventLog {
    pub fn append(&mut self, event: &Event) -> Result<Appended, StoreError> {
        if self.seen.contains(&event.event_id) {
            return Ok(Appended::Duplicate);
        }
        let line = event_to_json(event).to_string();
        self.writer
            .write_all(line.as_bytes())
            .and_then(|()| self.writer.write_all(b"\n"))
            .map_err(io_error(&self.path))?;
        self.seen.insert(event.event_id.clone());
        Ok(Appended::Taken)
    }

    /// Writes everything out and fsyncs: after this the events survive a crash.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.writer.flush().map_err(io_error(&self.path))?;
        self.writer
            .get_ref()
            .sync_all()
            .map_err(io_error(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, visitor: &str) -> Event {
        let line = format!(
            r#"{{"event_id":"{id}","type":"page_view","ts":1000,"visitor_id":"{visitor}"}}"#
        );
        parse_event_line(
            &line,
            &ParseContext {
                currency: "USD".into(),
            },
        )
        .expect("valid event")
    }

    #[test]
    fn first_event_of_an_id_is_kept_across_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store opens");
        let (record, _) = store
            .create_site("shop", "UTC", "USD")
            .expect("site created");
        let mut log = store.open_log(&record).expect("log opens");
        assert_eq!(
            log.append(&event("a", "v1")).expect("append"),
            Appended::Taken
        );
        assert_eq!(
            log.append(&event("a", "v2")).expect("append"),
            Appended::Duplicate
        );
        log.sync().expect("sync");
        drop(log);
        let mut log = store.open_log(&record).expect("log reopens");
        assert_eq!(
            log.append(&event("a", "v3")).expect("append"),
            Appended::Duplicate
        );
        assert_eq!(
            log.append(&event("b", "v3")).expect("append"),
            Appended::Taken
        );
        log.sync().expect("sync");
        let mut visitors = Vec::new();
        store
            .scan_events(&record, |e| visitors.push(e.visitor_id.unwrap_or_default()))
            .expect("scan");
        assert_eq!(visitors, ["v1", "v3"]);
    }
}
