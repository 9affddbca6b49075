//! Reports computed inside a real two-shard ClickHouse cluster (Debian's
//! clickhouse-server 18.16, started on loopback and stopped at the end) by the
//! generated SQL equal the engine's reports over the same events, figure for figure:
//! every attribution model, each filter, a time zone with a daylight-saving change, a
//! site's own settings, ranges of one and many days computed together; sent to each
//! shard (the nodes `init` registered) or through the Distributed table.

#[path = "../../clickhouse/tests/support/cluster.rs"]
mod cluster;
mod support;

use support::unusual_visitors;

use cluster::{wait_for, Cluster};
use jiff::civil::date;
use upshot_clickhouse::{insert_events, schema};
use upshot_engine::{compute_report, Dataset, Model, Query};
use upshot_model::{Event, Kind, Settings};
use upshot_store::{SiteRecord, Store};

/// A generated shop of 20 days from `start_ms`, crowded onto the rules' edges.
fn shop(seed: u64, start_ms: i64) -> Vec<Event> {
    upshot_gen::generate_events(upshot_gen::GenOptions {
        seed,
        visitors: 300,
        days: 20,
        start_ms,
        lift: 0.1,
        currency: "USD".into(),
        edge_cases: true,
        end_ms: None,
    })
}

fn site(store: &Store, name: &str, timezone: &str, configure: impl Fn(&mut Settings)) -> SiteRecord {
    let (mut record, _) = store.create_site(name, timezone, "USD").expect("a site");
    configure(&mut record.settings);
    record
}

fn assert_reports_equal(node: &upshot_clickhouse::Node, record: &SiteRecord, events: &[Event], queries: &[Query]) {
    let in_cluster = upshot_scan::clickhouse::reports_in_cluster(node, record, queries).expect("reports from SQL");
    support::assert_engine_reports(&Dataset::from_events(events), &record.settings, queries, in_cluster, "in cluster");
}

#[test]
fn reports_computed_by_generated_sql_in_a_two_shard_cluster_equal_the_engines() {
    let cluster = Cluster::start(18500);
    let init = schema::init(&cluster.nodes, "upshot_test").expect("init");
    assert!(init.iter().any(|line| line.ends_with("serves shard 2 of upshot_test")), "{init:?}");
    let store_dir = tempfile::tempdir().expect("a temporary dir");
    let store = Store::open(store_dir.path()).expect("a store");

    // A shop in UTC with the default settings; every event sent twice (delivery is at
    // least once), through either node.
    let mut events = shop(17, 1_714_521_600_000); // 2024-05-01
    events.extend(unusual_visitors());
    insert_events(&cluster.nodes[0], "shop", &events).expect("insert");
    insert_events(&cluster.nodes[1], "shop", &events).expect("insert again");
    let shards = wait_for(&cluster.nodes, "shop", events.len());
    assert!(shards.iter().all(|shard| !shard.is_empty()), "both shards hold events");
    let record = site(&store, "shop", "UTC", |_| {});
    let range = |from, to| Query::utc(from, to);
    let mut queries = support::typical_queries();
    queries.push(Query {
        placement: Some("home_recs".into()),
        model: Model::Linear,
        ..range(date(2024, 5, 5), date(2024, 5, 9))
    });
    // The segment filter (SPEC section 9.2), alone and with the other filters.
    let segment = |text: &str| Some(upshot_engine::query::Segment::parse(text).expect("a segment"));
    let may = || range(date(2024, 5, 2), date(2024, 5, 19));
    queries.push(Query { segment: segment("device:mobile"), ..may() });
    queries.push(Query { segment: segment("channel:search"), page_type: Some("product".into()), ..may() });
    queries.push(Query { segment: segment("visitor_type:new"), model: Model::Linear, ..may() });
    queries.push(Query { segment: segment("landing_page_type:home"), kind: Some(Kind::Recommendation), ..may() });
    queries.push(Query { segment: segment("device:unknown"), ..may() });
    assert_reports_equal(&cluster.nodes[0], &record, &events, &queries);
    // Without the table of nodes (a schema from before it), the same SQL goes through
    // the Distributed table: the shards group, the node computes.
    cluster.nodes[0].execute("DROP TABLE upshot.nodes", b"").expect("drop");
    assert!(upshot_clickhouse::schema::shard_nodes(&cluster.nodes[0]).expect("asked").is_empty());
    assert_reports_equal(&cluster.nodes[0], &record, &events, &queries[4..6]);
    // A large site's grouping spills to disk on 18.16's shards: the same figures.
    let spilled_parts = || -> u64 { cluster.nodes.iter().map(|node| support::spilled_parts(node)).sum() };
    let parts_before = spilled_parts();
    let spilling = support::Spilling::of(&cluster.nodes[0]);
    let spilled = upshot_scan::clickhouse::reports_from_sql(
        &spilling,
        &record,
        &queries[..1],
        (upshot_clickhouse::figures::Route::Distributed, upshot_clickhouse::figures::Dialect::Legacy),
    )
    .expect("reports from SQL, spilling");
    assert!(spilling.spilled.load(std::sync::atomic::Ordering::SeqCst) > 0, "figure queries were cut to spill");
    assert!(spilled_parts() > parts_before, "the shards wrote their grouping to disk");
    support::assert_engine_reports(
        &Dataset::from_events(&events),
        &record.settings,
        &queries[..1],
        spilled,
        "spilling",
    );
    // Registered nodes this collector cannot reach: the node it was given still can.
    let node = &cluster.nodes[0];
    node.execute("CREATE TABLE upshot.nodes (url String, shard UInt32) ENGINE = TinyLog", b"").expect("create");
    node.execute("INSERT INTO upshot.nodes VALUES ('http://127.0.0.1:9', 1), ('http://127.0.0.1:9', 2)", b"")
        .expect("insert");
    assert_eq!(upshot_clickhouse::schema::shard_nodes(node).expect("asked").len(), 2);
    assert_reports_equal(node, &record, &events, &queries[6..7]);

    // Another shop: a time zone that changes its clocks in the range, shorter sessions
    // and windows, hovers qualifying for pop-ups.
    let events = shop(29, 1_711_324_800_000); // 2024-03-25: Berlin moves its clocks on 03-31
    insert_events(&cluster.nodes[1], "tz", &events).expect("insert");
    wait_for(&cluster.nodes, "tz", events.len());
    let record = site(&store, "tz", "Europe/Berlin", |settings| {
        settings.session_gap_ms = 20 * 60_000;
        settings.attribution_window_ms = 10 * 86_400_000;
        settings.recommendation_window_ms = 3 * 86_400_000;
        settings.qualifying[Kind::Popup.index()].hover = true;
        settings.cuped_lookback_ms = 3 * 86_400_000;
    });
    let zone = jiff::tz::TimeZone::get("Europe/Berlin").expect("a time zone");
    let local = |from, to, model| Query { model, ..Query::new(from, to, zone.clone(), "Europe/Berlin", "USD") };
    let queries = [
        local(date(2024, 3, 26), date(2024, 4, 12), Model::Last),
        local(date(2024, 3, 30), date(2024, 4, 1), Model::TimeDecay),
    ];
    assert_reports_equal(&cluster.nodes[1], &record, &events, &queries);
    // Every visitor's rows streamed through the engine (the route while a spool is not
    // shipped, and the partials' builds): through the Distributed table while the
    // registered nodes are unreachable, then straight from each shard's node.
    let dataset = Dataset::from_events(&events);
    let streamed = || {
        upshot_scan::clickhouse::reports(&cluster.nodes[0], &record, &queries, Vec::new()).expect("streamed reports")
    };
    support::assert_engine_reports(&dataset, &record.settings, &queries, streamed(), "streamed, distributed");
    schema::init(&cluster.nodes, "upshot_test").expect("the nodes registered again");
    assert_eq!(schema::covering_shard_nodes(&cluster.nodes[0]).expect("asked").len(), 2, "they cover the cluster");
    support::assert_engine_reports(&dataset, &record.settings, &queries, streamed(), "streamed, per shard");
    // A node list that misses a shard (init given one node only): its visitors are not
    // left out, the rows are streamed through the Distributed table.
    let node = &cluster.nodes[0];
    node.execute("DROP TABLE upshot.nodes", b"").expect("drop");
    node.execute("CREATE TABLE upshot.nodes (url String, shard UInt32) ENGINE = TinyLog", b"").expect("create");
    node.execute(&format!("INSERT INTO upshot.nodes VALUES ('{}', 1)", node.url()), b"").expect("one shard");
    assert_eq!(schema::shard_nodes(node).expect("asked").len(), 1);
    support::assert_engine_reports(&dataset, &record.settings, &queries, streamed(), "streamed, a shard missing");
    assert!(schema::covering_shard_nodes(node).expect("asked").is_empty(), "the list does not cover the cluster");
    assert_reports_equal(node, &record, &events, &queries);
    schema::init(&cluster.nodes, "upshot_test").expect("the nodes registered again");
    day_partials_from_the_cluster_answer_like_the_engine(&cluster.nodes, &record, &events);
}

/// Day partials built from the cluster's events (ADR 0010), kept in the cluster and
/// read back, give the engine's reports for the kept lenses; the site's version counts
/// its shipments.
fn day_partials_from_the_cluster_answer_like_the_engine(
    nodes: &[upshot_clickhouse::Node],
    record: &SiteRecord,
    events: &[Event],
) {
    let node = &nodes[0];
    use upshot_clickhouse::kept;
    assert_eq!(kept::site_version(node, &record.site).expect("a version"), 1, "one shipment so far");
    let lenses = upshot_scan::saved::default_lenses(record);
    let built = upshot_scan::clickhouse::day_partials(node, record, &lenses).expect("built").expect("events");
    kept::save_day_partials(node, &record.site, 1, 1_000, &built.to_sections()).expect("kept");
    // Read back as a report server does: the head now, each lens when first summed.
    let read_back = || {
        upshot_scan::clickhouse::kept_day_partials(std::sync::Arc::new(node.clone()), &record.site)
            .expect("read")
            .expect("kept")
    };
    let (partials, kept_build) = read_back();
    assert_eq!((kept_build.version, kept_build.built_at_ms), (1, 1_000));
    let (replaced, _) = read_back();
    let dataset = Dataset::from_events(events);
    let zone = jiff::tz::TimeZone::get("Europe/Berlin").expect("a time zone");
    let local = |from, to| Query::new(from, to, zone.clone(), "Europe/Berlin", "USD");
    let segment = Some(upshot_engine::query::Segment::parse("device:mobile").expect("a segment"));
    let queries = [
        local(date(2024, 3, 26), date(2024, 4, 12)),
        Query { model: Model::Linear, ..local(date(2024, 3, 30), date(2024, 4, 1)) },
        Query { page_type: Some("product".into()), ..local(date(2024, 3, 25), date(2024, 4, 13)) },
        Query { segment, ..local(date(2024, 4, 1), date(2024, 4, 7)) },
    ];
    for query in &queries {
        let summed = partials.report(&record.settings, query).expect("the lens is kept");
        let engine = compute_report(&dataset, &record.settings, query).expect("the engine's report");
        assert_eq!(
            serde_json::to_value(&summed).expect("json"),
            serde_json::to_value(&engine).expect("json"),
            "{query:?}"
        );
    }
    // A newer build replaces the kept one while partials read back from it have not
    // fetched every lens: those lenses are not answered (the report is computed from the
    // events), nothing panics, the partials say they lost a lens (so the server reads
    // back or builds again), and a read back finds the newer build.
    let sections = built.to_sections().len();
    kept::save_day_partials(node, &record.site, 1, 2_000, &built.to_sections()).expect("kept again");
    merge_down_to(nodes, &record.site, sections);
    let linear = &queries[1];
    assert!(replaced.answers(&record.settings, linear), "the lens is kept");
    assert!(!replaced.lost_lenses());
    assert!(replaced.report(&record.settings, linear).is_none(), "its bytes are gone with the older build");
    assert!(replaced.lost_lenses());
    assert_eq!(read_back().1.built_at_ms, 2_000);
    // Another build begun in the same millisecond (another collector), its lenses in
    // another order, replaces this one's rows: a section is fetched only from the build
    // whose head was read, never the other's bytes under the same section number.
    let (current, _) = read_back();
    let head = kept::load_day_partials(node, &record.site).expect("read").expect("kept");
    let reversed: Vec<Query> = lenses.iter().rev().cloned().collect();
    let other = upshot_scan::clickhouse::day_partials(node, record, &reversed).expect("built").expect("events");
    kept::save_day_partials(node, &record.site, 1, 2_000, &other.to_sections()).expect("kept");
    merge_down_to(nodes, &record.site, sections);
    let fetched = head.sections.fetch(node, 1, 1);
    assert!(matches!(fetched, Ok(kept::Fetched::Replaced)), "{fetched:?}");
    assert!(current.report(&record.settings, linear).is_none() && current.lost_lenses());
    // A damaged lens (its stored length not the one its head says) is refused.
    node.execute_with(
        &format!(
            "INSERT INTO upshot.partial_sections SELECT site, section, built_at_ms + 1, build, version, sections, \
             length + if(section = 0, 0, 1), bytes FROM upshot.partial_sections WHERE site = '{}'",
            record.site
        ),
        &[("insert_distributed_sync", "1")],
        b"",
    )
    .expect("a damaged build");
    let (damaged, kept_build) = read_back();
    assert_eq!(kept_build.built_at_ms, 2_001);
    assert!(damaged.report(&record.settings, linear).is_none() && damaged.lost_lenses());
    // Another shipment (the same events again: stored once) moves the version on.
    insert_events(node, &record.site, &events[..10]).expect("insert");
    assert_eq!(kept::site_version(node, &record.site).expect("a version"), 2);
}

/// Merges the site's kept partials until `rows` rows are left (`OPTIMIZE ... FINAL`
/// does nothing while a background merge holds the parts: it is asked again).
fn merge_down_to(nodes: &[upshot_clickhouse::Node], site: &str, rows: usize) {
    let count = format!("SELECT count() FROM upshot.partial_sections WHERE site = '{site}' FORMAT TSV");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        for node in nodes {
            node.execute("OPTIMIZE TABLE upshot.partial_sections_local FINAL", b"").expect("merged");
        }
        let left = String::from_utf8_lossy(&nodes[0].execute(&count, b"").expect("counted")).trim().to_string();
        if left == rows.to_string() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the kept partials did not merge down to {rows} rows: {left}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
