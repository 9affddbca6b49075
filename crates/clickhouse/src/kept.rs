//! What the cluster keeps besides events (ADR 0010): `changes`, one row per shipment of
//! a site's events, summed into one a site by merges (the sum of `shipments` is the
//! site's version: it grows whenever its events do), and `day_partials`, each site's day partials as the engine serialized them,
//! with the version they reflect. Reports sum days from them instead of reading every
//! event; any collector or report server of the cluster reads the same.

use std::io::Read as _;

use crate::http::Node;
use crate::{quote, schema::DATABASE, ClickHouseError, SqlSource};

/// Largest section of partials read back, in bytes (the whole partials were 47 MB at
/// 10M events with 67 lenses).
const PARTIALS_BYTES_MAX: u64 = 1 << 30;

/// Notes that `events` events of `site` were stored (after they were: a version never
/// counts events the cluster does not hold).
pub fn record_change(node: &Node, site: &str, events: u64) -> Result<(), ClickHouseError> {
    node.execute_with(
        &format!("INSERT INTO {DATABASE}.changes (site, shipments, events) VALUES ('{}', 1, {events})", quote(site)),
        &[("insert_distributed_sync", "1")],
        b"",
    )?;
    Ok(())
}

/// The site's version: how many shipments of its events the cluster has recorded.
pub fn site_version(node: &dyn SqlSource, site: &str) -> Result<u64, ClickHouseError> {
    let query = format!("SELECT sum(shipments) FROM {DATABASE}.changes WHERE site = '{}' FORMAT TSV", quote(site));
    let text = crate::first_line(node, &query)?;
    text.trim().parse().map_err(|_| ClickHouseError::BadRow {
        node: node.name(),
        reason: format!("the sum of shipments reads {:?}", text.trim()),
    })
}

/// Marks the layout of a kept `partials` value: `SECTIONED`, the count of sections
/// (u32), each section's compressed length (u64), then the sections, each
/// zstd-compressed on its own. Section 0 is the head every report needs, each further
/// one a lens: a reader fetches the index, the head, and a lens when first asked for
/// (`substring` on the server), not the whole value.
const SECTIONED: &[u8; 4] = b"UPS1";
/// Sections kept at most (the head and one per lens; a site keeps ~70 lenses).
const SECTIONS_MAX: usize = 4096;
/// Bytes at the start of a kept value that hold its index, at most.
const INDEX_BYTES_MAX: usize = SECTIONED.len() + 4 + 8 * SECTIONS_MAX;

/// Keeps the site's partials of `version` (`sections`: `DayPartials::to_sections`) in
/// place of earlier ones (the replacing merge keeps the latest build; readers take the
/// latest already).
pub fn save_day_partials(
    node: &dyn SqlSource,
    site: &str,
    version: u64,
    built_at_ms: i64,
    sections: &[Vec<u8>],
) -> Result<(), ClickHouseError> {
    if sections.is_empty() || sections.len() > SECTIONS_MAX {
        return Err(ClickHouseError::BadRow {
            node: node.name(),
            reason: format!("day partials of {} sections cannot be kept (1 to {SECTIONS_MAX})", sections.len()),
        });
    }
    // Compressed here: a report server reading them back moves a fifth of the bytes.
    let compressed = sections
        .iter()
        .map(|section| zstd::stream::encode_all(section.as_slice(), 1))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ClickHouseError::BadRow {
            node: node.name(),
            reason: format!("compressing the day partials failed: {error}"),
        })?;
    let mut value = Vec::with_capacity(compressed.iter().map(Vec::len).sum::<usize>() + INDEX_BYTES_MAX);
    value.extend_from_slice(SECTIONED);
    value.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    compressed.iter().for_each(|section| value.extend_from_slice(&(section.len() as u64).to_le_bytes()));
    compressed.iter().for_each(|section| value.extend_from_slice(section));
    let mut row = Vec::with_capacity(value.len() + site.len() + 32);
    crate::rows::write_bytes(&mut row, site.as_bytes());
    row.extend_from_slice(&version.to_le_bytes());
    row.extend_from_slice(&built_at_ms.to_le_bytes());
    crate::rows::write_bytes(&mut row, &value);
    node.insert(
        &format!("INSERT INTO {DATABASE}.day_partials (site, version, built_at_ms, partials) FORMAT RowBinary"),
        &row,
    )
}

/// A site's latest day partials kept in the cluster: their head, and where the other
/// sections lie.
pub struct KeptPartials {
    /// The site's version they were built from.
    pub version: u64,
    /// When the build that made them began (epoch milliseconds).
    pub built_at_ms: i64,
    /// Section 0, decompressed.
    pub head: Vec<u8>,
    pub sections: KeptSections,
}

/// Where each section of one build's kept partials lies in its value.
#[derive(Clone, Debug)]
pub struct KeptSections {
    site: String,
    built_at_ms: i64,
    /// Each section's start and compressed length.
    spans: Vec<(u64, u64)>,
}

impl KeptSections {
    /// Section `index`, decompressed; `None` when the build that kept it was replaced
    /// by a newer one (the replacing merge keeps one a site).
    pub fn fetch(&self, node: &dyn SqlSource, index: usize) -> Result<Option<Vec<u8>>, ClickHouseError> {
        let Some(&(start, length)) = self.spans.get(index) else {
            return Ok(None);
        };
        let query = format!(
            "SELECT substring(partials, {}, {length}) FROM {DATABASE}.day_partials \
             WHERE site = '{}' AND built_at_ms = {} LIMIT 1 FORMAT RowBinary",
            start + 1,
            quote(&self.site),
            self.built_at_ms
        );
        let mut reader = crate::rows::RowReader::new(node.query_reader(&query)?);
        let bad =
            |error: crate::rows::RowError| ClickHouseError::BadRow { node: node.name(), reason: error.to_string() };
        let Some(compressed) = reader.next_bytes("partials", length).map_err(bad)? else {
            return Ok(None);
        };
        decompress(node, &compressed).map(Some)
    }
}

/// The site's latest partials kept in the cluster, if any: the index and the head
/// read now, the other sections by `KeptSections::fetch`.
pub fn load_day_partials(node: &dyn SqlSource, site: &str) -> Result<Option<KeptPartials>, ClickHouseError> {
    let query = format!(
        "SELECT substring(partials, 1, {INDEX_BYTES_MAX}), version, built_at_ms FROM {DATABASE}.day_partials \
         WHERE site = '{}' ORDER BY built_at_ms DESC LIMIT 1 FORMAT RowBinary",
        quote(site)
    );
    let mut reader = crate::rows::RowReader::new(node.query_reader(&query)?);
    let bad = |error: crate::rows::RowError| ClickHouseError::BadRow { node: node.name(), reason: error.to_string() };
    let Some(start) = reader.next_bytes("partials", INDEX_BYTES_MAX as u64).map_err(bad)? else {
        return Ok(None);
    };
    let version = reader.u64("version").map_err(bad)?;
    let built_at_ms = i64::from_le_bytes(reader.u64("built_at_ms").map_err(bad)?.to_le_bytes());
    let spans = section_spans(&start).ok_or_else(|| ClickHouseError::BadRow {
        node: node.name(),
        reason: "a site's kept day partials are not in sections (kept by an older release?); they are rebuilt".into(),
    })?;
    let sections = KeptSections { site: site.to_string(), built_at_ms, spans };
    let head = sections.fetch(node, 0)?.ok_or_else(|| ClickHouseError::BadRow {
        node: node.name(),
        reason: "a site's kept day partials were replaced while read; read them again".into(),
    })?;
    Ok(Some(KeptPartials { version, built_at_ms, head, sections }))
}

/// Each section's start and length, from the start of a kept value; `None` when it is
/// not a sectioned value.
fn section_spans(start: &[u8]) -> Option<Vec<(u64, u64)>> {
    let rest = start.strip_prefix(SECTIONED.as_slice())?;
    let count = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    if count == 0 || count > SECTIONS_MAX {
        return None;
    }
    let lengths = rest.get(4..4 + 8 * count)?;
    let mut at = (SECTIONED.len() + 4 + 8 * count) as u64;
    let mut spans = Vec::with_capacity(count);
    for length in lengths.chunks_exact(8) {
        let length = u64::from_le_bytes(length.try_into().ok()?);
        if length > PARTIALS_BYTES_MAX {
            return None;
        }
        spans.push((at, length));
        at = at.checked_add(length)?;
    }
    Some(spans)
}

/// A kept section, decompressed (at most `PARTIALS_BYTES_MAX`).
fn decompress(node: &dyn SqlSource, compressed: &[u8]) -> Result<Vec<u8>, ClickHouseError> {
    let mut bytes = Vec::new();
    let decoded = zstd::stream::read::Decoder::new(compressed)
        .and_then(|decoder| std::io::Read::take(decoder, PARTIALS_BYTES_MAX + 1).read_to_end(&mut bytes));
    match decoded {
        Ok(length) if length as u64 <= PARTIALS_BYTES_MAX => Ok(bytes),
        Ok(_) => Err(ClickHouseError::BadRow {
            node: node.name(),
            reason: format!("a section of a site's day partials decompresses to more than {PARTIALS_BYTES_MAX} bytes"),
        }),
        Err(error) => Err(ClickHouseError::BadRow {
            node: node.name(),
            reason: format!("a site's day partials do not decompress ({error}); they are rebuilt"),
        }),
    }
}

/// The first and last instants of the site's events in the cluster, if it has any.
pub fn site_time_span(node: &dyn SqlSource, site: &str) -> Result<Option<(i64, i64)>, ClickHouseError> {
    let text = crate::first_line(
        node,
        &format!("SELECT count(), min(ts), max(ts) FROM {DATABASE}.events WHERE site = '{}' FORMAT TSV", quote(site)),
    )?;
    let numbers: Vec<i64> = text.trim().split('\t').filter_map(|number| number.parse().ok()).collect();
    match numbers[..] {
        [0, _, _] => Ok(None),
        [_, low, high] => Ok(Some((low, high))),
        _ => {
            Err(ClickHouseError::BadRow { node: node.name(), reason: format!("the time span reads {:?}", text.trim()) })
        }
    }
}
