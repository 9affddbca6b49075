//! upshot's generated SQL on a current ClickHouse (26.x, embedded by chdb from PyPI's
//! `chdb-core`; the two-shard cluster tests run Debian's 18.16): the reports it computes,
//! by either route (a shard's own table, the Distributed one) in either dialect (the
//! one detected for a current server, and 18.16's), equal the engine's over
//! the same events, figure for figure, for every model, the filters and a segment, on a
//! shop crowded onto the rules' edges. `scripts/test`
//! installs chdb-core in `target/chdb-venv` and names its Python in
//! `UPSHOT_CHDB_PYTHON`.

mod support;

use jiff::civil::date;
use support::chdb::Chdb;
use upshot_clickhouse::figures::{Dialect, Route};
use upshot_clickhouse::SqlSource;
use upshot_engine::query::Segment;
use upshot_engine::{compute_report, Dataset, Model, Query};
use upshot_store::Store;

#[test]
fn reports_from_the_sql_on_a_current_clickhouse_equal_the_engines() {
    let mut events = upshot_gen::generate_events(upshot_gen::GenOptions {
        seed: 23,
        visitors: 250,
        days: 20,
        start_ms: 1_714_521_600_000, // 2024-05-01
        lift: 0.1,
        currency: "USD".into(),
        edge_cases: true,
        end_ms: None,
    });
    events.extend(support::unusual_visitors());
    let dir = tempfile::tempdir().expect("a temporary dir");
    let chdb = std::sync::Arc::new(Chdb::start(dir.path()));
    chdb.load("shop", &events);
    let store = Store::open(dir.path().join("store")).expect("a store");
    let (record, _) = store.create_site("shop", "UTC", "USD").expect("a site");
    let range = |from, to| Query::utc(from, to);
    let mut queries = support::typical_queries();
    let mobile = Some(Segment::parse("device:mobile").expect("a segment"));
    queries.push(Query { segment: mobile, ..range(date(2024, 5, 2), date(2024, 5, 19)) });
    let dataset = Dataset::from_events(&events);
    // The dialect a current server is sent, detected from its version().
    assert_eq!(Dialect::of(chdb.server_version().expect("a version")), Dialect::Current);
    // Both routes: one shard's own table (what each shard runs), and the Distributed one;
    // both dialects: the one for 18.16 must also run on a current server (a cluster
    // mid-upgrade answers in either).
    let variants = [Route::PerShard, Route::Distributed]
        .into_iter()
        .flat_map(|route| [Dialect::Current, Dialect::Legacy].into_iter().map(move |dialect| (route, dialect)));
    for (route, dialect) in variants {
        let from_sql = upshot_scan::clickhouse::reports_from_sql(&*chdb, &record, &queries, (route, dialect))
            .expect("reports from chdb");
        support::assert_engine_reports(
            &dataset,
            &record.settings,
            &queries,
            from_sql,
            &format!("{route:?} {dialect:?}"),
        );
    }
    // A large site's grouping spills to disk (on a shop this small, only when told to
    // at once): the same figures.
    let parts_before = support::spilled_parts(&*chdb);
    let spilling = support::Spilling::of(&*chdb);
    let spilled = upshot_scan::clickhouse::reports_from_sql(
        &spilling,
        &record,
        &queries[..2],
        (Route::PerShard, Dialect::Current),
    )
    .expect("reports from chdb, spilling");
    assert!(spilling.spilled.load(std::sync::atomic::Ordering::SeqCst) > 0, "figure queries were cut to spill");
    assert!(support::spilled_parts(&*chdb) > parts_before, "the grouping was written to disk");
    support::assert_engine_reports(&dataset, &record.settings, &queries[..2], spilled, "spilling");
    day_partials_built_from_a_current_clickhouse_answer_like_the_engine(chdb, &record, &dataset);
}

/// Day partials built from the events in ClickHouse 26.x (ADR 0010), kept in its table
/// and read back, give the engine's reports for kept lenses.
fn day_partials_built_from_a_current_clickhouse_answer_like_the_engine(
    chdb: std::sync::Arc<Chdb>,
    record: &upshot_store::SiteRecord,
    dataset: &Dataset,
) {
    use upshot_clickhouse::kept;
    assert_eq!(kept::site_version(&*chdb, "shop").expect("a version"), 1);
    let lenses = upshot_scan::saved::default_lenses(record);
    let built = upshot_scan::clickhouse::day_partials(&*chdb, record, &lenses).expect("built").expect("events");
    kept::save_day_partials(&*chdb, "shop", 1, 7, &built.to_sections()).expect("kept");
    // Read back as a report server does: the head now, each lens when first summed
    // (a row each, of the same build, on 26.x).
    let (partials, kept_build) = upshot_scan::clickhouse::kept_day_partials(chdb, "shop").expect("read").expect("kept");
    assert_eq!((kept_build.version, kept_build.built_at_ms), (1, 7));
    let range = |from, to| Query::utc(from, to);
    let queries = [
        range(date(2024, 5, 3), date(2024, 5, 18)),
        Query { model: Model::TimeDecay, ..range(date(2024, 5, 10), date(2024, 5, 10)) },
        Query { page_type: Some("cart".into()), ..range(date(2024, 5, 1), date(2024, 5, 20)) },
        Query {
            segment: Some(Segment::parse("channel:direct").expect("a segment")),
            ..range(date(2024, 5, 2), date(2024, 5, 19))
        },
    ];
    for query in &queries {
        let summed = partials.report(&record.settings, query).expect("the lens is kept");
        let engine = compute_report(dataset, &record.settings, query).expect("the engine's report");
        assert_eq!(
            serde_json::to_value(&summed).expect("json"),
            serde_json::to_value(&engine).expect("json"),
            "{query:?}"
        );
    }
}
