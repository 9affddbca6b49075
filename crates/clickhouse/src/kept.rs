//! What the cluster keeps besides events (ADR 0010): `changes`, one row per shipment of
//! a site's events, summed into one a site by merges (the sum of `shipments` is the
//! site's version: it grows whenever its events do), and `partial_sections`, each
//! site's day partials as the engine serialized them, a row a section (the head every
//! report needs, then each lens, fetched when first summed), with the version they
//! reflect. Reports sum days from them instead of reading every
//! event; any collector or report server of the cluster reads the same.

use std::io::Read as _;

use crate::http::Node;
use crate::{quote, schema::DATABASE, ClickHouseError, SqlSource};

/// Largest section of partials kept or read back, in bytes, decompressed (the whole
/// partials are 47 MB at 10M events with 67 lenses, a section at most 2.8 MB).
const PARTIALS_BYTES_MAX: u64 = 1 << 30;
/// Largest section kept or read back, compressed: below what the client reads of any
/// answer (256 MiB), so that what was kept can always be read back.
const SECTION_COMPRESSED_MAX: u64 = 255 << 20;

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

/// Sections kept at most a build (the head and one per lens; a site keeps ~70 lenses).
const SECTIONS_MAX: usize = 4096;

/// Keeps the site's partials of `version` (`sections`: `DayPartials::to_sections`),
/// one row a section, each zstd-compressed (with its checksum), in place of earlier
/// ones (the replacing merge keeps one row per site and section; readers take the
/// latest build and fetch only its rows). All rows go in one insert (one block, one
/// part on 18.16); a reader that finds a head but not yet a section of it asks again
/// later (`Fetched::NotVisible`). A later build with fewer sections leaves the earlier
/// one's last rows in place, never read (at most the most sections a site had).
pub fn save_day_partials(
    node: &dyn SqlSource,
    site: &str,
    version: u64,
    built_at_ms: i64,
    sections: &[Vec<u8>],
) -> Result<(), ClickHouseError> {
    let bad = |reason: String| ClickHouseError::BadRow { node: node.name(), reason };
    if sections.is_empty() || sections.len() > SECTIONS_MAX {
        return Err(bad(format!("day partials of {} sections cannot be kept (1 to {SECTIONS_MAX})", sections.len())));
    }
    if let Some(large) = sections.iter().find(|section| section.len() as u64 > PARTIALS_BYTES_MAX) {
        return Err(bad(format!("a section of {} bytes cannot be kept (at most {PARTIALS_BYTES_MAX})", large.len())));
    }
    // Compressed here: a report server reading them back moves a fifth of the bytes.
    let compressed = sections
        .iter()
        .map(|section| compress(section))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(format!("compressing the day partials failed: {error}")))?;
    if let Some(large) = compressed.iter().find(|section| section.len() as u64 > SECTION_COMPRESSED_MAX) {
        return Err(bad(format!(
            "a section compressed to {} bytes cannot be kept (at most {SECTION_COMPRESSED_MAX}: a reader takes no more)",
            large.len()
        )));
    }
    // The build's identity: its sections' digest. A lens is fetched only from the
    // build whose head was read (two builds begun in one millisecond are told apart).
    let mut digest = std::hash::DefaultHasher::new();
    compressed.iter().for_each(|section| std::hash::Hash::hash(section, &mut digest));
    let build = std::hash::Hasher::finish(&digest);
    let mut rows = Vec::with_capacity(compressed.iter().map(|section| section.len() + site.len() + 64).sum());
    for (index, section) in compressed.iter().enumerate() {
        crate::rows::write_bytes(&mut rows, site.as_bytes());
        rows.extend_from_slice(&(index as u32).to_le_bytes());
        rows.extend_from_slice(&built_at_ms.to_le_bytes());
        rows.extend_from_slice(&build.to_le_bytes());
        rows.extend_from_slice(&version.to_le_bytes());
        rows.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        rows.extend_from_slice(&(sections[index].len() as u64).to_le_bytes());
        crate::rows::write_bytes(&mut rows, section);
    }
    node.insert(
        &format!(
            "INSERT INTO {DATABASE}.partial_sections \
             (site, section, built_at_ms, build, version, sections, length, bytes) FORMAT RowBinary"
        ),
        &rows,
    )
}

fn compress(section: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1)?;
    encoder.include_checksum(true)?;
    std::io::Write::write_all(&mut encoder, section)?;
    encoder.finish()
}

/// A site's latest day partials kept in the cluster: their head, and how to fetch the
/// other sections.
pub struct KeptPartials {
    /// The site's version they were built from.
    pub version: u64,
    /// When the build that made them began (epoch milliseconds).
    pub built_at_ms: i64,
    /// Section 0, decompressed.
    pub head: Vec<u8>,
    pub sections: KeptSections,
}

/// Which build's sections to fetch.
#[derive(Clone, Debug)]
pub struct KeptSections {
    site: String,
    built_at_ms: i64,
    build: u64,
    count: usize,
}

/// A section asked of the cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    Section(Vec<u8>),
    /// Another build of the site is kept now (the replacing merge keeps one row per site
    /// and section): this build's sections may be gone.
    Replaced,
    /// Not to be seen now, and no other build is (a replica behind the one that
    /// answered for the head): ask again later.
    NotVisible,
}

impl KeptSections {
    /// Section `index` of the build, decompressed (`length` bytes, as the head says).
    /// Read within the client's I/O timeout, not a stream's.
    pub fn fetch(&self, node: &dyn SqlSource, index: usize, length: u64) -> Result<Fetched, ClickHouseError> {
        if index >= self.count {
            return Ok(Fetched::Replaced);
        }
        let query = format!(
            "SELECT bytes, length FROM {DATABASE}.partial_sections \
             WHERE site = '{}' AND section = {index} AND built_at_ms = {} AND build = {} LIMIT 1 FORMAT RowBinary",
            quote(&self.site),
            self.built_at_ms,
            self.build
        );
        let answer = node.query_bytes(&query)?;
        let mut reader = crate::rows::RowReader::new(answer.as_slice());
        let bad =
            |error: crate::rows::RowError| ClickHouseError::BadRow { node: node.name(), reason: error.to_string() };
        let Some(compressed) = reader.next_bytes("bytes", SECTION_COMPRESSED_MAX).map_err(bad)? else {
            return self.replaced(node);
        };
        let kept_length = reader.u64("length").map_err(bad)?;
        if kept_length != length {
            return Err(ClickHouseError::BadRow {
                node: node.name(),
                reason: format!("section {index} of a site's day partials is {kept_length} bytes, not {length}"),
            });
        }
        decompress(node, &compressed, length).map(Fetched::Section)
    }

    /// Why a section of this build was not found: another build's head is kept.
    fn replaced(&self, node: &dyn SqlSource) -> Result<Fetched, ClickHouseError> {
        let query = format!(
            "SELECT count() FROM {DATABASE}.partial_sections WHERE site = '{}' AND section = 0 \
             AND (built_at_ms > {at} OR (built_at_ms = {at} AND build != {build})) FORMAT TSV",
            quote(&self.site),
            at = self.built_at_ms,
            build = self.build
        );
        let others = crate::first_line(node, &query)?;
        Ok(if others.trim().parse::<u64>().unwrap_or(0) > 0 { Fetched::Replaced } else { Fetched::NotVisible })
    }
}

/// The site's latest partials kept in the cluster, if any: the head read now (with
/// the build it belongs to), the other sections by `KeptSections::fetch`.
pub fn load_day_partials(node: &dyn SqlSource, site: &str) -> Result<Option<KeptPartials>, ClickHouseError> {
    let query = format!(
        "SELECT bytes, length, version, built_at_ms, build, sections FROM {DATABASE}.partial_sections \
         WHERE site = '{}' AND section = 0 ORDER BY built_at_ms DESC LIMIT 1 FORMAT RowBinary",
        quote(site)
    );
    let mut reader = crate::rows::RowReader::new(node.query_reader(&query)?);
    let bad = |error: crate::rows::RowError| ClickHouseError::BadRow { node: node.name(), reason: error.to_string() };
    let Some(compressed) = reader.next_bytes("bytes", SECTION_COMPRESSED_MAX).map_err(bad)? else {
        return Ok(None);
    };
    let length = reader.u64("length").map_err(bad)?;
    let version = reader.u64("version").map_err(bad)?;
    let built_at_ms = reader.i64("built_at_ms").map_err(bad)?;
    let build = reader.u64("build").map_err(bad)?;
    let count = reader.u32("sections").map_err(bad)? as usize;
    if count == 0 || count > SECTIONS_MAX {
        return Err(ClickHouseError::BadRow {
            node: node.name(),
            reason: format!(
                "a site's kept day partials claim {count} sections (1 to {SECTIONS_MAX}); they are rebuilt"
            ),
        });
    }
    let head = decompress(node, &compressed, length)?;
    let sections = KeptSections { site: site.to_string(), built_at_ms, build, count };
    Ok(Some(KeptPartials { version, built_at_ms, head, sections }))
}

/// A kept section, decompressed: exactly `length` bytes (at most `PARTIALS_BYTES_MAX`),
/// its checksum checked.
fn decompress(node: &dyn SqlSource, compressed: &[u8], length: u64) -> Result<Vec<u8>, ClickHouseError> {
    let bad = |reason: String| ClickHouseError::BadRow { node: node.name(), reason };
    if length > PARTIALS_BYTES_MAX {
        return Err(bad(format!(
            "a section of a site's day partials claims {length} bytes, past {PARTIALS_BYTES_MAX}"
        )));
    }
    // Grown as the bytes decompress: a length the section does not back allocates nothing.
    let mut bytes = Vec::new();
    let decoded = zstd::stream::read::Decoder::new(compressed)
        .and_then(|decoder| std::io::Read::take(decoder, length + 1).read_to_end(&mut bytes));
    match decoded {
        Ok(read) if read as u64 == length => Ok(bytes),
        Ok(read) => Err(bad(format!("a section of a site's day partials decompresses to {read} bytes, not {length}"))),
        Err(error) => Err(bad(format!("a site's day partials do not decompress ({error}); they are rebuilt"))),
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
