//! `verify`: reads every segment and log record, checks every checksum and count, and
//! says precisely what is damaged. It changes nothing.

use std::collections::HashSet;

use crate::segment::read_segment;
use crate::{wal, Store, StoreError};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub segments: u64,
    pub segment_events: u64,
    pub log_records: u64,
    /// Bytes at the log's end that are not a whole record: a write in progress, or a
    /// crash's torn tail that the next writer to open the store cuts off.
    pub unfinished_log_bytes: u64,
    /// Derived files checked (day partials).
    pub derived_files: u64,
    pub problems: Vec<String>,
}

impl Store {
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        let mut listed = HashSet::new();
        for entry in &self.manifest.segments {
            let path = self.root.join(&entry.file);
            listed.insert(path.clone());
            report.segments += 1;
            match read_segment(&path) {
                Ok((header, events)) => {
                    report.segment_events += events.len() as u64;
                    let content = format!("{:032x}", crate::content_digest(events.iter()));
                    if entry.content.as_ref().is_some_and(|listed| *listed != content) {
                        report.problems.push(format!(
                            "segment {}: its events are not those the manifest's content digest names",
                            path.display()
                        ));
                    }
                    if header.site != entry.site || header.day != entry.day || events.len() as u64 != entry.events {
                        report.problems.push(format!(
                            "segment {}: holds {} events of {} {}, the manifest says {} of {} {}",
                            path.display(),
                            events.len(),
                            header.site,
                            header.day,
                            entry.events,
                            entry.site,
                            entry.day
                        ));
                    }
                }
                Err(error) => report.problems.push(error.to_string()),
            }
        }
        for path in crate::segment_files(&self.root)? {
            if !listed.contains(&path) {
                report.problems.push(format!(
                    "segment {}: not in the manifest (left by a crash; removed at the next open for writing)",
                    path.display()
                ));
            }
        }
        for site in self.site_ids()? {
            let derived = self.site_dir(&site).join("derived");
            let Ok(files) = std::fs::read_dir(&derived) else { continue };
            for file in files.flatten() {
                let path = file.path();
                if path.extension().is_some_and(|extension| extension == "tmp") {
                    continue;
                }
                report.derived_files += 1;
                if let Err(error) = crate::derived::read_derived(&path) {
                    report
                        .problems
                        .push(format!("derived {error} (`upshot rebuild-partials --site {site}` rebuilds it)"));
                }
            }
        }
        let recovery = wal::read_records(&self.root.join("wal"), |_, _| {})?;
        report.log_records = recovery.records;
        report.unfinished_log_bytes = recovery.torn_tail_bytes;
        report.problems.extend(recovery.problems);
        Ok(report)
    }
}
