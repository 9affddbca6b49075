//! Removing data on purpose: retention drops whole old days; `forget` erases one
//! person's events (privacy-law erasure) from the log, the segments and the rejects
//! file. Both seal first, write any new files, then swap the manifest, then delete.

use std::collections::HashSet;

use upshot_model::Event;

use crate::manifest::SegmentEntry;
use crate::segment::read_segment;
use crate::{io_error, SiteRecord, Store, StoreError};

/// Whose events `forget` erases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    Visitor(String),
    /// The events carrying this profile_id, and every event of the visitor ids that
    /// ever carried it.
    Profile(String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EraseReport {
    pub events: u64,
    pub segments_rewritten: u64,
    pub rejected_lines: u64,
}

impl Store {
    /// Drops every segment of `site` whose UTC day is before `first_kept_day`
    /// (`YYYY-MM-DD`); returns the segments and events dropped.
    pub fn drop_days_before(&mut self, site: &str, first_kept_day: &str) -> Result<(u64, u64), StoreError> {
        self.seal()?;
        let dropped: Vec<SegmentEntry> =
            self.manifest.site_segments(site).filter(|entry| entry.day.as_str() < first_kept_day).cloned().collect();
        if dropped.is_empty() {
            return Ok((0, 0));
        }
        let mut manifest = self.manifest.clone();
        manifest.segments.retain(|entry| !dropped.contains(entry));
        manifest.save(&self.root)?;
        self.manifest = manifest;
        self.forget_taken_ids(site);
        self.bump_site_version(site);
        crate::derived::remove_derived(&self.site_dir(site))?;
        for entry in &dropped {
            let path = self.root.join(&entry.file);
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
        Ok((dropped.len() as u64, dropped.iter().map(|entry| entry.events).sum()))
    }

    /// Erases one person's events everywhere, durably; returns how many.
    pub fn forget(&mut self, record: &SiteRecord, person: &Person) -> Result<EraseReport, StoreError> {
        self.seal()?;
        // Whatever happens below, derived figures are recomputed from what is left (and
        // the saved ones, which may hold the person's strings, go now).
        self.bump_site_version(&record.site);
        crate::derived::remove_derived(&self.site_dir(&record.site))?;
        let mut visitors: HashSet<String> = HashSet::new();
        let profile = match person {
            Person::Visitor(visitor) => {
                visitors.insert(visitor.clone());
                None
            }
            Person::Profile(profile) => Some(profile.as_str()),
        };
        let entries: Vec<SegmentEntry> = self.manifest.site_segments(&record.site).cloned().collect();
        if let Some(profile) = profile {
            for entry in &entries {
                for event in read_segment(&self.root.join(&entry.file))?.1 {
                    if event.profile_id.as_deref() == Some(profile) {
                        visitors.extend(event.visitor_id);
                    }
                }
            }
        }
        let matches = |event: &Event| {
            event.visitor_id.as_ref().is_some_and(|visitor| visitors.contains(visitor))
                || (profile.is_some() && event.profile_id.as_deref() == profile)
        };
        let mut report = EraseReport::default();
        let mut replaced = Vec::new();
        let mut written = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let (_, events) = read_segment(&self.root.join(&entry.file))?;
            let kept: Vec<Event> = events.iter().filter(|event| !matches(event)).cloned().collect();
            if kept.len() == events.len() {
                continue;
            }
            report.events += (events.len() - kept.len()) as u64;
            report.segments_rewritten += 1;
            replaced.push(entry.clone());
            if !kept.is_empty() {
                let name = format!("{:020}-erased-{index}.seg", self.manifest.sealed_through_lsn);
                written.push(self.write_entry(&entry.site, &entry.day, &name, &kept)?);
            }
        }
        if !replaced.is_empty() {
            let mut manifest = self.manifest.clone();
            manifest.segments.retain(|entry| !replaced.contains(entry));
            manifest.segments.extend(written);
            manifest.save(&self.root)?;
            self.manifest = manifest;
            for entry in &replaced {
                let path = self.root.join(&entry.file);
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            }
            self.forget_taken_ids(&record.site);
        }
        report.rejected_lines = self.erase_rejects(&record.site, &visitors, profile)?;
        Ok(report)
    }

    /// Drops rejected lines that belong to the person from the rejects file.
    fn erase_rejects(&self, site: &str, visitors: &HashSet<String>, profile: Option<&str>) -> Result<u64, StoreError> {
        let path = self.rejects_path(site);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(0);
        };
        let mut kept = String::new();
        let mut erased = 0;
        for line in text.lines() {
            let raw = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|reject| reject.get("event").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_default();
            let event = serde_json::from_str::<serde_json::Value>(&raw).unwrap_or_default();
            let field = |name: &str| event.get(name).and_then(|v| v.as_str()).map(str::to_string);
            let belongs = field("visitor_id").is_some_and(|v| visitors.contains(&v))
                || (profile.is_some() && field("profile_id").as_deref() == profile)
                || visitors.iter().any(|visitor| raw.contains(&format!("\"{visitor}\"")));
            if belongs {
                erased += 1;
            } else {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if erased > 0 {
            let temporary = path.with_extension("ndjson.tmp");
            std::fs::write(&temporary, kept).map_err(io_error(&temporary))?;
            std::fs::File::open(&temporary).and_then(|file| file.sync_all()).map_err(io_error(&temporary))?;
            std::fs::rename(&temporary, &path).map_err(io_error(&path))?;
        }
        Ok(erased)
    }

    /// The dedupe ids of a site are reloaded at its next append.
    fn forget_taken_ids(&mut self, site: &str) {
        if let Some(writer) = self.writer.as_mut() {
            writer.taken_ids.remove(site);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upshot_model::{parse_event_line, ParseContext};

    fn event(id: &str, visitor: &str, profile: Option<&str>, day: u32) -> Event {
        let profile = profile.map(|p| format!(r#","profile_id":"{p}""#)).unwrap_or_default();
        let line = format!(
            r#"{{"event_id":"{id}","type":"page_view","ts":"2024-05-{day:02}T10:00:00Z","visitor_id":"{visitor}"{profile}}}"#
        );
        parse_event_line(&line, &ParseContext { currency: "USD".into() }).expect("valid event")
    }

    fn visitors(store: &Store, record: &SiteRecord) -> Vec<String> {
        let mut seen = Vec::new();
        store.scan_events(record, |e| seen.push(e.visitor_id.unwrap_or_default())).expect("scan");
        seen.sort();
        seen
    }

    #[test]
    fn forget_erases_a_visitor_or_a_profile_durably() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("opens");
        let (record, _) = store.create_site("shop", "UTC", "USD").expect("site");
        store
            .append_events(
                &record,
                &[event("1", "a", None, 1), event("2", "b", Some("p"), 1), event("3", "c", None, 2)],
            )
            .expect("append");
        store.seal().expect("seal");
        store.append_events(&record, &[event("4", "b", None, 2), event("5", "a", None, 3)]).expect("append");
        let erased = store.forget(&record, &Person::Profile("p".into())).expect("forget");
        assert_eq!(erased.events, 2, "b's profiled event and b's later anonymous one");
        assert_eq!(visitors(&store, &record), ["a", "a", "c"]);
        let erased = store.forget(&record, &Person::Visitor("a".into())).expect("forget");
        assert_eq!(erased.events, 2);
        drop(store);
        let store = Store::open(dir.path()).expect("reopens");
        assert_eq!(visitors(&store, &record), ["c"]);
        assert!(store.verify().expect("verify").problems.is_empty());
    }

    #[test]
    fn a_second_forget_without_a_seal_between_loses_no_one_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("opens");
        let (record, _) = store.create_site("shop", "UTC", "USD").expect("site");
        let events = [event("1", "a", None, 1), event("2", "b", None, 1), event("3", "c", None, 1)];
        store.append_events(&record, &events).expect("append");
        store.seal().expect("seal");
        // Both rewrite the day's one segment, at the same place in the list.
        store.forget(&record, &Person::Visitor("a".into())).expect("forget");
        store.forget(&record, &Person::Visitor("b".into())).expect("forget");
        assert_eq!(visitors(&store, &record), ["c"]);
        drop(store);
        let store = Store::open(dir.path()).expect("reopens");
        assert_eq!(visitors(&store, &record), ["c"]);
        assert!(store.verify().expect("verify").problems.is_empty());
    }

    #[test]
    fn retention_drops_whole_old_days() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("opens");
        let (record, _) = store.create_site("shop", "UTC", "USD").expect("site");
        store
            .append_events(&record, &[event("1", "a", None, 1), event("2", "b", None, 2), event("3", "c", None, 3)])
            .expect("append");
        assert_eq!(store.drop_days_before("shop", "2024-05-03").expect("retain"), (2, 2));
        assert_eq!(visitors(&store, &record), ["c"]);
    }
}
