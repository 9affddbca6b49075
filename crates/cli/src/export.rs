//! `upshot export`: a site's raw events, optionally limited to local dates, as NDJSON
//! or Parquet.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use upshot_export::{NdjsonExporter, ParquetExporter};
use upshot_model::time::local_midnight_millis;
use upshot_store::Store;

use crate::parse_date;

pub fn export(
    store: &Store,
    site: &str,
    from: Option<&str>,
    to: Option<&str>,
    format: &str,
    out: Option<&Path>,
) -> Result<()> {
    let record = store.load_site(site)?;
    let zone = upshot_model::site::validate_time_zone(&record.timezone)?;
    let start = match from {
        Some(text) => local_midnight_millis(parse_date("--from", text)?, &zone)?,
        None => i64::MIN,
    };
    let end = match to {
        Some(text) => local_midnight_millis(parse_date("--to", text)?.tomorrow()?, &zone)?,
        None => i64::MAX,
    };
    let sink: Box<dyn Write + Send> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let in_range = |ts: i64| start <= ts && ts < end;
    let mut failure = None;
    let (rows, summary) = match format {
        "ndjson" => {
            let mut exporter = NdjsonExporter::new(sink);
            let summary = store.scan_events(&record, |event| {
                if in_range(event.ts) && failure.is_none() {
                    failure = exporter.push(&event).err();
                }
            })?;
            (exporter.finish()?, summary)
        }
        "parquet" => {
            let mut exporter = ParquetExporter::new(sink)?;
            let summary = store.scan_events(&record, |event| {
                if in_range(event.ts) && failure.is_none() {
                    failure = exporter.push(&event).err();
                }
            })?;
            (exporter.finish()?, summary)
        }
        other => bail!("--format {other:?} is not ndjson or parquet"),
    };
    if let Some(error) = failure {
        return Err(error.into());
    }
    for problem in &summary.problems {
        eprintln!("warning: skipped damaged data: {problem}");
    }
    if let Some(path) = out {
        eprintln!("exported {rows} events of site {site} to {}", path.display());
    }
    if !summary.problems.is_empty() {
        anyhow::bail!(
            "the export left out {} damaged part(s) of the data (named above); `upshot verify` checks everything",
            summary.problems.len()
        );
    }
    Ok(())
}
