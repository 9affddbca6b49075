//! `upshot import`: validates each event, appends the good ones, and writes each
//! rejected one with its reason to the site's rejects file. Bad input never stops the
//! import of the good events.

use std::fs::OpenOptions;
use std::io::{BufRead, BufWriter, Read, Write};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use upshot_model::{parse_event_line, parse_event_value, ParseContext, Rejection};
use upshot_store::{Appended, SiteRecord, Store};

use crate::input;
use crate::progress::Progress;

/// Largest JSON-array input, in bytes (NDJSON has no limit: it is streamed).
const ARRAY_BYTES_MAX: u64 = 1 << 30;
/// How much of a rejected line the rejects file keeps.
const REJECT_LINE_BYTES_MAX: usize = 4096;
/// A site-day with this many segments is merged into one after an import.
const COMPACT_SEGMENTS_MIN: usize = 8;
/// The log is sealed into segments whenever this many events were appended.
const SEAL_EVENTS_MIN: u64 = 2_000_000;
/// Events per log record: each record is one write and one fsync.
const BATCH_EVENTS_MAX: usize = 32_768;

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub taken: u64,
    pub duplicate: u64,
    pub rejected: u64,
}

struct Importer<'a> {
    store: &'a mut Store,
    record: &'a SiteRecord,
    pending: Vec<upshot_model::Event>,
    context: ParseContext,
    rejects: BufWriter<std::fs::File>,
    file: &'a str,
    counts: Counts,
}

impl Importer<'_> {
    fn take(&mut self, line_number: u64, raw: &str, parsed: Result<upshot_model::Event, Rejection>) -> Result<()> {
        match parsed {
            Ok(event) => {
                self.pending.push(event);
                if self.pending.len() >= BATCH_EVENTS_MAX {
                    self.flush()?;
                }
            }
            Err(rejection) => {
                self.counts.rejected += 1;
                let mut end = raw.len().min(REJECT_LINE_BYTES_MAX);
                while !raw.is_char_boundary(end) {
                    end -= 1;
                }
                let record = serde_json::json!({
                    "file": self.file, "line": line_number, "field": rejection.field,
                    "reason": rejection.reason, "event": &raw[..end],
                });
                writeln!(self.rejects, "{record}").context("writing the rejects file")?;
            }
        }
        Ok(())
    }

    /// Makes the pending events durable; only then are they counted as taken.
    fn flush(&mut self) -> Result<()> {
        let outcomes = self.store.append_events(self.record, &self.pending)?;
        if self.store.appended_since_seal() >= SEAL_EVENTS_MIN {
            // Keep the log's tail, and so the memory sealing needs, bounded.
            self.store.seal().context("sealing the log into segments")?;
        }
        for outcome in outcomes {
            match outcome {
                Appended::Taken => self.counts.taken += 1,
                Appended::Duplicate => self.counts.duplicate += 1,
            }
        }
        self.pending.clear();
        Ok(())
    }
}

/// Imports every file into the site, printing per-file and total counts.
pub fn import_files(store: &mut Store, site: &str, files: &[String]) -> Result<Counts> {
    let record = store.load_site(site)?;
    let rejects_path = store.rejects_path(site);
    let rejects = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&rejects_path)
        .with_context(|| format!("opening {}", rejects_path.display()))?;
    let mut total = Counts::default();
    for file in files {
        let mut importer = Importer {
            store: &mut *store,
            record: &record,
            pending: Vec::with_capacity(BATCH_EVENTS_MAX),
            context: ParseContext { currency: record.currency.clone() },
            rejects: BufWriter::new(rejects.try_clone().context("opening the rejects file")?),
            file,
            counts: Counts::default(),
        };
        import_one(&mut importer).with_context(|| format!("importing {file}"))?;
        importer.flush().with_context(|| format!("saving events of {file}"))?;
        importer.rejects.flush().context("writing the rejects file")?;
        let counts = importer.counts;
        println!("{file}: {} taken, {} duplicate, {} rejected", counts.taken, counts.duplicate, counts.rejected);
        total.taken += counts.taken;
        total.duplicate += counts.duplicate;
        total.rejected += counts.rejected;
    }
    // Move what was just logged into columnar segments; merge days that piled up.
    store.seal().context("sealing the log into segments")?;
    store.compact(COMPACT_SEGMENTS_MIN).context("compacting segments")?;
    if files.len() > 1 {
        println!("total: {} taken, {} duplicate, {} rejected", total.taken, total.duplicate, total.rejected);
    }
    if total.rejected > 0 {
        println!("rejected events and their reasons are in {}", rejects_path.display());
    }
    Ok(total)
}

fn import_one(importer: &mut Importer) -> Result<()> {
    let mut input = input::open(importer.file)?;
    let mut progress = Progress::new(importer.file);
    let starts_with_array = loop {
        let buffer = input.reader.fill_buf().context("reading")?;
        if buffer.is_empty() {
            break false;
        }
        match buffer.iter().position(|byte| !byte.is_ascii_whitespace()) {
            Some(position) => break buffer[position] == b'[',
            None => {
                let length = buffer.len();
                input.reader.consume(length);
            }
        }
    };
    if starts_with_array {
        let mut text = String::new();
        input.reader.by_ref().take(ARRAY_BYTES_MAX).read_to_string(&mut text).context("reading the JSON array")?;
        return import_array(importer, &text);
    }
    // A second thread reads and parses chunks of lines while this one appends them,
    // in input order (the first valid event of an id is the one kept).
    let context = importer.context.clone();
    let reader = &mut input.reader;
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<Vec<Parsed>>>(PARSED_CHUNKS_QUEUED);
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || parse_chunks(reader, &context, &sender));
        for chunk in receiver {
            for parsed in chunk? {
                importer.take(parsed.line_number, parsed.raw.as_deref().unwrap_or(""), parsed.event)?;
            }
            let counts = importer.counts;
            progress.update(
                input.bytes_read.load(Ordering::Relaxed),
                input.bytes_total,
                counts.taken + counts.duplicate + counts.rejected,
            );
        }
        Ok(())
    })?;
    progress.finish();
    Ok(())
}

/// Lines per parsed chunk handed from the parsing thread to the appending one.
const CHUNK_LINES: usize = 8192;
/// Parsed chunks waiting to be appended: bounds the import's memory.
const PARSED_CHUNKS_QUEUED: usize = 4;

/// One input line, parsed; the raw line is kept only when it was rejected.
struct Parsed {
    line_number: u64,
    raw: Option<String>,
    event: Result<upshot_model::Event, Rejection>,
}

fn parse_chunks(
    reader: &mut (dyn BufRead + Send),
    context: &ParseContext,
    sender: &std::sync::mpsc::SyncSender<Result<Vec<Parsed>>>,
) {
    let mut line = Vec::new();
    let mut line_number = 0u64;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK_LINES);
        let mut finished = false;
        while chunk.len() < CHUNK_LINES {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => {
                    finished = true;
                    break;
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = sender.send(Err(anyhow::Error::new(error).context("reading")));
                    return;
                }
            }
            line_number += 1;
            let event = match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => parse_event_line(text.trim(), context),
                Err(_) => Err(Rejection::new("event", "not valid UTF-8")),
            };
            let raw = event.is_err().then(|| String::from_utf8_lossy(&line).trim().to_string());
            chunk.push(Parsed { line_number, raw, event });
        }
        if sender.send(Ok(chunk)).is_err() || finished {
            return;
        }
    }
}

/// A JSON array input: each element is one event; a malformed array is one rejection.
fn import_array(importer: &mut Importer, text: &str) -> Result<()> {
    match serde_json::from_str::<Vec<serde_json::Value>>(text) {
        Ok(values) => {
            for (index, value) in values.iter().enumerate() {
                let parsed = parse_event_value(value, &importer.context);
                importer.take(index as u64 + 1, &value.to_string(), parsed)?;
            }
        }
        Err(error) => {
            let rejection = Rejection::new("event", format!("malformed JSON array: {error}"));
            importer.take(1, text, Err(rejection))?;
        }
    }
    Ok(())
}
