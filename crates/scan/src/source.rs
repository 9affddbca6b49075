//! Where a site's reports come from: one interface, two sources (ADR 0010). `Source`
//! is the embedded store or a ClickHouse cluster (with the collector's spool); each
//! answers the same questions: the site's version (it changes whenever the stored
//! events do), reports computed from every event, and the site's day partials, built
//! from the events (`PartialsBuild`, which runs on a thread of its own holding no store)
//! or read back from where the source keeps them. Reports of a kept lens are sums of
//! days; a server only chooses the source and keeps the partials in memory.

use std::sync::RwLock;
use std::time::Duration;

use upshot_clickhouse::{kept, Node};
use upshot_engine::days::DayPartials;
use upshot_engine::{Query, Report};
use upshot_store::{SiteRecord, Store};

use crate::{saved, OpenSnapshot, Snapshot};

/// Why a source could not answer, in words for a log line or an API error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(String);

impl SourceError {
    fn of(error: impl std::fmt::Display) -> SourceError {
        SourceError(error.to_string())
    }
}

/// Reports, and the damaged parts of the data they left out.
pub type Computed = (Vec<Report>, Vec<String>);

/// A site's events, wherever they are kept.
pub enum Source<'a> {
    /// This data dir's store.
    Embedded(&'a RwLock<Store>),
    /// A ClickHouse cluster behind `node`; this data dir's log is the spool, and
    /// `shipped` says whether everything acknowledged has reached the cluster.
    Cluster { node: &'a Node, spool: &'a RwLock<Store>, shipped: bool },
}

impl Source<'_> {
    /// The site's version: the store's count of changes, or the cluster's count of
    /// shipments of the site's events.
    pub fn version(&self, site: &str) -> Result<u64, SourceError> {
        match self {
            Source::Embedded(store) => {
                Ok(store.read().expect("no thread panics while holding the store").site_version(site))
            }
            Source::Cluster { node, .. } => kept::site_version(*node, site).map_err(SourceError::of),
        }
    }

    /// Reports computed from every event: the engine's pass over a snapshot; in the
    /// cluster, its generated SQL once everything is shipped, else its rows streamed
    /// through the engine with the spool's events joined (the same figures).
    pub fn compute(&self, record: &SiteRecord, queries: &[Query]) -> Result<Computed, SourceError> {
        match self {
            Source::Embedded(store) => {
                // The store is held only while the snapshot's files are opened; appends
                // go on while its log tail is read and the reports computed.
                let opened = Snapshot::open(&store.read().expect("no thread panics while holding the store"), record)
                    .map_err(SourceError::of)?;
                let snapshot = opened.read().map_err(SourceError::of)?;
                snapshot.reports(&record.settings, queries).map_err(SourceError::of)
            }
            Source::Cluster { node, shipped: true, .. } => {
                let reports = crate::clickhouse::reports_in_cluster(node, record, queries).map_err(SourceError::of)?;
                Ok((reports, Vec::new()))
            }
            Source::Cluster { node, spool, shipped: false } => {
                let mut spooled = Vec::new();
                spool
                    .read()
                    .expect("no thread panics while holding the store")
                    .scan_tail(record, |event| spooled.push(event))
                    .map_err(SourceError::of)?;
                let reports = crate::clickhouse::reports(node, record, queries, spooled).map_err(SourceError::of)?;
                Ok((reports, Vec::new()))
            }
        }
    }

    /// What a build of the site's partials needs, holding no store: a snapshot opened
    /// now (with where its partials are saved) or the cluster.
    pub fn partials_build(&self, record: &SiteRecord) -> Result<PartialsBuild, SourceError> {
        match self {
            Source::Embedded(store) => {
                let store = store.read().expect("no thread panics while holding the store");
                let opened = Snapshot::open(&store, record).map_err(SourceError::of)?;
                Ok(PartialsBuild::Embedded {
                    snapshot: Box::new(LazySnapshot { opened: Some(opened), read: None }),
                    version: store.site_version(&record.site),
                    saved_path: saved::path(&store, record),
                })
            }
            Source::Cluster { node, .. } => Ok(PartialsBuild::Cluster((*node).clone())),
        }
    }
}

/// A site's day partials, built or read back, with what they reflect.
pub struct Partials {
    pub partials: DayPartials,
    /// The version of the events they were built from.
    pub version: u64,
    /// How old they are (zero for a build just made).
    pub age: Duration,
    /// Damaged parts of the data they leave out (never kept past the process).
    pub problems: Vec<String>,
    /// Warnings for the reports summed from them.
    pub warnings: Vec<String>,
    /// Of partials read back from the cluster: when the kept build began (epoch
    /// milliseconds), which tells one kept build from the next.
    pub kept_as: Option<i64>,
}

/// A build of a site's partials, on a thread of its own.
pub enum PartialsBuild {
    Embedded { snapshot: Box<LazySnapshot>, version: u64, saved_path: std::path::PathBuf },
    Cluster(Node),
}

/// A snapshot opened, its log tail read when first needed.
pub struct LazySnapshot {
    opened: Option<OpenSnapshot>,
    read: Option<Snapshot>,
}

impl LazySnapshot {
    fn get(&mut self) -> Result<&Snapshot, SourceError> {
        if self.read.is_none() {
            let opened = self
                .opened
                .take()
                .ok_or_else(|| SourceError("the snapshot's log was read already and failed; build again".into()))?;
            self.read = Some(opened.read().map_err(SourceError::of)?);
        }
        self.read
            .as_ref()
            .ok_or_else(|| SourceError("the snapshot's log was read already and failed; build again".into()))
    }
}

impl PartialsBuild {
    /// The partials the source keeps, when they answer every lens: in the data dir only
    /// those of exactly the events stored now; in the cluster the latest, of whatever
    /// version (a caller may serve them while young, and builds when the version moved).
    pub fn read_back(&mut self, record: &SiteRecord, lenses: &[Query]) -> Result<Option<Partials>, SourceError> {
        let answers = |partials: &DayPartials| lenses.iter().all(|lens| partials.answers(&record.settings, lens));
        match self {
            PartialsBuild::Embedded { snapshot, version, saved_path } => {
                let snapshot = snapshot.get()?;
                let saved = saved::load(saved_path, snapshot).map_err(SourceError::of)?;
                Ok(saved.filter(answers).map(|partials| Partials {
                    partials,
                    version: *version,
                    age: Duration::ZERO,
                    problems: Vec::new(),
                    warnings: Vec::new(),
                    kept_as: None,
                }))
            }
            PartialsBuild::Cluster(node) => {
                let source = std::sync::Arc::new(node.clone());
                let Some((partials, saved)) =
                    crate::clickhouse::kept_day_partials(source, &record.site).map_err(SourceError::of)?
                else {
                    return Ok(None);
                };
                let age_ms = (jiff::Timestamp::now().as_millisecond() - saved.built_at_ms).max(0);
                Ok(answers(&partials).then(|| Partials {
                    partials,
                    version: saved.version,
                    age: Duration::from_millis(age_ms as u64),
                    problems: Vec::new(),
                    warnings: Vec::new(),
                    kept_as: Some(saved.built_at_ms),
                }))
            }
        }
    }

    /// One pass over the site's events for every lens; `None` for a site without
    /// events. `version` is the cluster's when the build began (the embedded build
    /// knows its own).
    pub fn build(
        &mut self,
        record: &SiteRecord,
        lenses: &[Query],
        version: u64,
    ) -> Result<Option<Partials>, SourceError> {
        match self {
            PartialsBuild::Embedded { snapshot, version, .. } => {
                let snapshot = snapshot.get()?;
                let built = snapshot.day_partials(&record.settings, lenses).map_err(SourceError::of)?;
                Ok(built.map(|(partials, problems)| Partials {
                    partials,
                    version: *version,
                    age: Duration::ZERO,
                    warnings: snapshot.warnings(&problems),
                    problems,
                    kept_as: None,
                }))
            }
            PartialsBuild::Cluster(node) => {
                let built = crate::clickhouse::day_partials(node, record, lenses).map_err(SourceError::of)?;
                Ok(built.map(|partials| Partials {
                    partials,
                    version,
                    age: Duration::ZERO,
                    problems: Vec::new(),
                    warnings: Vec::new(),
                    kept_as: None,
                }))
            }
        }
    }

    /// Keeps `built` where the source keeps partials (in the data dir only when they
    /// leave nothing out; `built_at_ms`: when the build began).
    pub fn keep(&mut self, record: &SiteRecord, built: &Partials, built_at_ms: i64) -> Result<(), SourceError> {
        match self {
            PartialsBuild::Embedded { snapshot, saved_path, .. } => {
                if !built.problems.is_empty() {
                    return Ok(());
                }
                let snapshot = snapshot.get()?;
                saved::save(saved_path, snapshot, &built.partials).map_err(SourceError::of)
            }
            PartialsBuild::Cluster(node) => {
                let sections = built.partials.to_sections();
                kept::save_day_partials(node, &record.site, built.version, built_at_ms, &sections)
                    .map_err(SourceError::of)
            }
        }
    }
}
