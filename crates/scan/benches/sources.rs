//! Reports from the three places events can be, side by side on the same events (issue
//! 14, ADR 0010): the embedded store, the two-shard ClickHouse 18.16 cluster, and a
//! current ClickHouse (26.x, embedded by chdb). For each: the day partials' build, a
//! report from partials kept there (cold: read back and decoded; warm: summed from
//! decoded ones), and once, the report without partials (the embedded pass, the
//! generated SQL in the cluster and in chdb, the cluster's rows streamed through the
//! engine). `bench/clickhouse_compare.sh` makes the data and runs it:
//!
//!     UPSHOT_BENCH_DATA=D UPSHOT_BENCH_NODE=http://127.0.0.1:18610 UPSHOT_CHDB_PYTHON=python3 \
//!         cargo bench -p upshot-scan --bench sources
//!
//! D is an embedded data dir whose site `shop` holds the events the cluster holds, with
//! saved partials (`upshot rebuild-partials`). UPSHOT_BENCH_RUNS: runs per median (5).

#[path = "../tests/support/chdb.rs"]
mod chdb;

use std::sync::Arc;
use std::time::Instant;

use upshot_clickhouse::{Node, SqlSource};
use upshot_engine::{Query, Report};
use upshot_scan::{ReportParams, Snapshot};
use upshot_store::{SiteRecord, Store};

/// The median of `runs` timings of `work`, in seconds, and its last result.
fn median_of<T>(runs: usize, mut work: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(work());
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2].as_secs_f64(), last.expect("at least one run"))
}

fn timed<T>(work: impl FnOnce() -> T) -> (f64, T) {
    let started = Instant::now();
    let result = work();
    (started.elapsed().as_secs_f64(), result)
}

fn json(report: &Report) -> serde_json::Value {
    serde_json::to_value(report).expect("json")
}

/// What one source measured.
struct Measured {
    name: &'static str,
    build: f64,
    cold: f64,
    warm: f64,
    without_partials: Option<f64>,
}

impl Measured {
    /// With the time of the report from the generated SQL, without partials (equal to
    /// the embedded one), or what made it fail.
    fn with_sql(
        self,
        (seconds, reports): (f64, Result<Vec<Report>, upshot_scan::clickhouse::ClickHouseReportError>),
        expected: &serde_json::Value,
    ) -> Measured {
        match reports {
            Ok(reports) => {
                assert_eq!(&json(&reports[0]), expected, "{}: the SQL's report equals the embedded one", self.name);
                Measured { without_partials: Some(seconds), ..self }
            }
            Err(error) => {
                println!("{}: the SQL without partials failed after {seconds:.1} s: {error}", self.name);
                self
            }
        }
    }
}

fn main() {
    let (Ok(data), Ok(node)) = (std::env::var("UPSHOT_BENCH_DATA"), std::env::var("UPSHOT_BENCH_NODE")) else {
        eprintln!(
            "set UPSHOT_BENCH_DATA and UPSHOT_BENCH_NODE (bench/clickhouse_compare.sh does) to run this benchmark"
        );
        return;
    };
    let runs: usize = std::env::var("UPSHOT_BENCH_RUNS").ok().and_then(|text| text.parse().ok()).unwrap_or(5);
    let store = Store::open_read_only(&data).expect("the data dir opens");
    let record = store.load_site("shop").expect("the site exists");
    let snapshot = Snapshot::take(&store, &record).expect("a snapshot");
    let (_, last) = snapshot.time_span().expect("events");
    let to = jiff::Timestamp::from_millisecond(last).expect("an instant").to_zoned(jiff::tz::TimeZone::UTC).date();
    let from = to.checked_sub(jiff::Span::new().days(29)).expect("a date");
    // A linear report: its lens is not the head's, so a cold report from the cluster
    // reads the head and fetches the lens, as a restarted server does.
    let query = ReportParams {
        from: from.to_string(),
        to: to.to_string(),
        model: Some("linear".into()),
        ..ReportParams::default()
    }
    .query(&record, str::to_string)
    .expect("a valid query");
    let lenses = upshot_scan::saved::default_lenses(&record);
    println!("report: {from} to {to} (30 days, linear), {} lenses kept, medians of {runs}", lenses.len());

    let (embedded, expected) = measure_embedded(&store, &record, &snapshot, &lenses, &query, runs);
    let node = Node::parse(&node).expect("a node URL");
    let cluster = measure_source(
        "ClickHouse 18.16, two shards",
        Arc::new(node.clone()),
        &record,
        &lenses,
        &query,
        runs,
        &expected,
    );
    let sql = timed(|| upshot_scan::clickhouse::reports_in_cluster(&node, &record, std::slice::from_ref(&query)));
    let cluster = cluster.with_sql(sql, &expected);
    // The other route from the events: each visitor's rows streamed through the engine.
    let streamed = timed(|| upshot_scan::clickhouse::reports(&node, &record, std::slice::from_ref(&query), Vec::new()));
    let streamed_report = streamed.1.expect("the cluster's rows streamed through the engine");
    assert_eq!(json(&streamed_report[0]), expected, "the streamed report equals the embedded one");
    println!("the cluster's rows streamed through the engine, without partials: {:.2} s", streamed.0);

    let directory = tempfile::tempdir().expect("a temporary dir");
    let chdb = Arc::new(chdb::Chdb::start(directory.path()));
    let rows = directory.path().join("events.bin");
    let (export, _) = timed(|| export_rows(&node, &rows));
    let (load, _) = timed(|| chdb.load_file(&rows));
    chdb.query_lines("INSERT INTO upshot.changes (site, shipments, events) VALUES ('shop', 1, 1)", &mut |_| {})
        .expect("a change");
    println!("chdb: the cluster's rows exported in {export:.1} s, loaded into ClickHouse 26.x in {load:.1} s");
    let current = measure_source("ClickHouse 26.x (chdb)", chdb.clone(), &record, &lenses, &query, runs, &expected);
    let variant = (upshot_clickhouse::figures::Route::PerShard, upshot_clickhouse::figures::Dialect::Current);
    let sql =
        timed(|| upshot_scan::clickhouse::reports_from_sql(&*chdb, &record, std::slice::from_ref(&query), variant));
    let current = current.with_sql(sql, &expected);

    println!();
    println!("| source | build, {} lenses | report, cold (read back + sum) | report, warm | cold vs embedded | warm vs embedded | without partials |", lenses.len());
    println!("|---|---|---|---|---|---|---|");
    for measured in [&embedded, &cluster, &current] {
        println!(
            "| {} | {:.1} s | {:.3} s | {:.4} s | {:.2}x | {:.2}x | {} |",
            measured.name,
            measured.build,
            measured.cold,
            measured.warm,
            measured.cold / embedded.cold,
            measured.warm / embedded.warm,
            measured.without_partials.map_or("-".to_string(), |seconds| format!("{seconds:.2} s")),
        );
    }
}

/// The embedded store: partials saved in the data dir (cold: read back, then summed).
fn measure_embedded(
    store: &Store,
    record: &SiteRecord,
    snapshot: &Snapshot,
    lenses: &[Query],
    query: &Query,
    runs: usize,
) -> (Measured, serde_json::Value) {
    let path = upshot_scan::saved::path(store, record);
    let (build, _) = timed(|| snapshot.day_partials(&record.settings, lenses).expect("built").expect("events"));
    let (cold, report) = median_of(runs, || {
        let partials =
            upshot_scan::saved::load(&path, snapshot).expect("read").expect("saved partials of these events");
        partials.report(&record.settings, query).expect("the lens is kept")
    });
    let partials = upshot_scan::saved::load(&path, snapshot).expect("read").expect("saved");
    let (warm, _) = median_of(runs, || partials.report(&record.settings, query).expect("kept"));
    let (pass, (passed, _)) = timed(|| snapshot.report(&record.settings, query).expect("a report"));
    assert_eq!(json(&passed), json(&report), "the embedded partials equal the pass");
    let measured = Measured { name: "embedded", build, cold, warm, without_partials: Some(pass) };
    (measured, json(&report))
}

/// A ClickHouse source: partials built from its events, kept in its table; cold reads
/// them back and sums.
fn measure_source(
    name: &'static str,
    shared: Arc<dyn SqlSource + Send>,
    record: &SiteRecord,
    lenses: &[Query],
    query: &Query,
    runs: usize,
    expected: &serde_json::Value,
) -> Measured {
    use upshot_clickhouse::kept;
    let source = shared.as_ref();
    let version = kept::site_version(source, &record.site).expect("a version");
    let (build, built) =
        timed(|| upshot_scan::clickhouse::day_partials(source, record, lenses).expect("built").expect("events"));
    let sections = built.to_sections();
    let (save, _) = timed(|| kept::save_day_partials(source, &record.site, version, 0, &sections).expect("kept"));
    let bytes: usize = sections.iter().map(Vec::len).sum();
    println!("{name}: partials built in {build:.1} s, {} MB kept in {save:.2} s", bytes >> 20);
    // Cold: read back as a report server does (the head, then the lens summed).
    let (cold, report) = median_of(runs, || {
        let (partials, _) =
            upshot_scan::clickhouse::kept_day_partials(shared.clone(), &record.site).expect("read").expect("kept");
        partials.report(&record.settings, query).expect("the lens is kept")
    });
    assert_eq!(&json(&report), expected, "{name}: the report equals the embedded one");
    let (warm, _) = median_of(runs, || built.report(&record.settings, query).expect("kept"));
    Measured { name, build, cold, warm, without_partials: None }
}

/// Every row of the cluster's events, as RowBinary in `file`.
fn export_rows(node: &Node, file: &std::path::Path) {
    let columns = upshot_clickhouse::schema::column_names();
    let query = format!("SELECT {columns} FROM upshot.events FORMAT RowBinary");
    let mut reader = node.execute_reader(&query).expect("the rows");
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).expect("a file"));
    std::io::copy(&mut reader, &mut out).expect("copied");
}
