//! What the cluster keeps besides events (ADR 0010): `changes`, one row per shipment of
//! a site's events, summed into one a site by merges (the sum of `shipments` is the
//! site's version: it grows whenever its events do), and `day_partials`, each site's day partials as the engine serialized them,
//! with the version they reflect. Reports sum days from them instead of reading every
//! event; any collector or report server of the cluster reads the same.

use std::io::Read as _;

use crate::http::Node;
use crate::{quote, schema::DATABASE, ClickHouseError, SqlSource};

/// Largest partials read back, in bytes (47 MB at 10M events with 67 lenses).
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

/// A site's day partials as kept in the cluster.
pub struct KeptPartials {
    /// The site's version they were built from.
    pub version: u64,
    /// When the build that made them began (epoch milliseconds).
    pub built_at_ms: i64,
    /// The engine's serialized partials (`DayPartials::to_bytes`; kept zstd-compressed).
    pub bytes: Vec<u8>,
}

/// Keeps `bytes`, the site's partials of `version`, in place of earlier ones (the
/// replacing merge keeps the latest build; readers take the latest already).
pub fn save_day_partials(
    node: &dyn SqlSource,
    site: &str,
    version: u64,
    built_at_ms: i64,
    bytes: &[u8],
) -> Result<(), ClickHouseError> {
    // Compressed here: a report server reading them back moves a fifth of the bytes.
    let compressed = zstd::stream::encode_all(bytes, 1).map_err(|error| ClickHouseError::BadRow {
        node: node.name(),
        reason: format!("compressing the day partials failed: {error}"),
    })?;
    let mut row = Vec::with_capacity(compressed.len() + site.len() + 32);
    crate::rows::write_bytes(&mut row, site.as_bytes());
    row.extend_from_slice(&version.to_le_bytes());
    row.extend_from_slice(&built_at_ms.to_le_bytes());
    crate::rows::write_bytes(&mut row, &compressed);
    node.insert(
        &format!("INSERT INTO {DATABASE}.day_partials (site, version, built_at_ms, partials) FORMAT RowBinary"),
        &row,
    )
}

/// The site's latest partials kept in the cluster, if any.
pub fn load_day_partials(node: &dyn SqlSource, site: &str) -> Result<Option<KeptPartials>, ClickHouseError> {
    let query = format!(
        "SELECT partials, version, built_at_ms FROM {DATABASE}.day_partials WHERE site = '{}' \
         ORDER BY built_at_ms DESC LIMIT 1 FORMAT RowBinary",
        quote(site)
    );
    let mut reader = crate::rows::RowReader::new(node.query_reader(&query)?);
    let bad = |error: crate::rows::RowError| ClickHouseError::BadRow { node: node.name(), reason: error.to_string() };
    let Some(compressed) = reader.next_bytes("partials", PARTIALS_BYTES_MAX).map_err(bad)? else {
        return Ok(None);
    };
    let version = reader.u64("version").map_err(bad)?;
    let built_at_ms = i64::from_le_bytes(reader.u64("built_at_ms").map_err(bad)?.to_le_bytes());
    let mut bytes = Vec::new();
    let decoded = zstd::stream::read::Decoder::new(compressed.as_slice())
        .and_then(|decoder| std::io::Read::take(decoder, PARTIALS_BYTES_MAX + 1).read_to_end(&mut bytes));
    match decoded {
        Ok(length) if length as u64 <= PARTIALS_BYTES_MAX => Ok(Some(KeptPartials { version, built_at_ms, bytes })),
        Ok(_) => Err(ClickHouseError::BadRow {
            node: node.name(),
            reason: format!("a site's day partials decompress to more than {PARTIALS_BYTES_MAX} bytes"),
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
