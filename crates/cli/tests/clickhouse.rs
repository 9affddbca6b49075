//! The ClickHouse backend end to end, with real processes: a two-shard cluster from
//! Debian's clickhouse-server (scripts/clickhouse/cluster), `upshot clickhouse init`,
//! and `upshot serve --store clickhouse`. One shard is stopped in the middle of the
//! ingest: the collector keeps acknowledging (the events wait in its spool), ships them
//! when the shard is back, and the final report equals the embedded backend's on the
//! same events, with nothing lost or doubled.

mod process;
#[path = "../../server/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use process::{listening, upshot};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/clickhouse/cluster")
}

struct Cluster(tempfile::TempDir);

impl Cluster {
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(script())
            .arg(args[0])
            .arg(self.0.path())
            .args(&args[1..])
            .output()
            .expect("the cluster script runs");
        assert!(output.status.success(), "cluster {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(self.0.path()).status();
    }
}

fn succeed(command: &mut Command) -> String {
    let output = command.output().expect("the binary runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

struct Server(Child, SocketAddr);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn serve(data: &Path, clickhouse: &str) -> Server {
    let (child, address) = listening(upshot(data).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        "clickhouse",
        "--clickhouse-url",
        clickhouse,
    ]));
    Server(child, address)
}

fn metric(address: SocketAddr, name: &str) -> u64 {
    let text = support::request(address, "GET", "/metrics", &[], b"").text();
    text.lines().find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0)
}

/// A report through the API, with the site's secret key.
fn report(address: SocketAddr, authorization: &str, path: &str) -> support::Answer {
    support::request(address, "GET", path, &[("Authorization", authorization)], b"")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("waited a minute for {what}");
}

#[test]
fn a_shard_down_during_ingest_loses_and_doubles_nothing() {
    let cluster = Cluster(tempfile::tempdir().expect("a temporary dir"));
    let nodes: Vec<String> = cluster.run(&["start", "18400"]).lines().map(str::to_string).collect();
    assert_eq!(nodes.len(), 2);
    let work = tempfile::tempdir().expect("a temporary dir");
    let (collector_data, embedded_data) = (work.path().join("collector"), work.path().join("embedded"));
    let init = |args: &mut Command| {
        succeed(args.args(["clickhouse", "init", "--url", &nodes[0], "--url", &nodes[1], "--cluster", "upshot_test"]))
    };
    assert!(init(&mut upshot(&collector_data)).contains("created schema version 4"));
    assert!(init(&mut upshot(&collector_data)).contains("already there"), "init is idempotent");

    let events = work.path().join("shop.ndjson");
    succeed(
        upshot(&collector_data)
            .args(["gen", "--visitors", "400", "--days", "20", "--seed", "9", "--start", "2024-05-01", "--out"])
            .arg(&events),
    );
    let lines: Vec<String> = std::fs::read_to_string(&events).expect("generated").lines().map(str::to_string).collect();
    let keys: serde_json::Value =
        serde_json::from_str(&succeed(upshot(&collector_data).args(["site", "create", "shop", "--format", "json"])))
            .expect("keys");
    let secret = keys["secret_key"].as_str().expect("a key").to_string();
    let server = serve(&collector_data, &nodes[0]);
    let authorization = format!("Bearer {secret}");
    let batches: Vec<&[String]> = lines.chunks(500).collect();
    let mut acknowledged = 0u64;
    for (index, batch) in batches.iter().enumerate() {
        if index == batches.len() / 3 {
            cluster.run(&["stop-shard", "2"]);
        }
        if index == 2 * batches.len() / 3 {
            assert!(metric(server.1, "upshot_spool_events") > 0, "with a shard down, events wait in the spool");
            cluster.run(&["start-shard", "2"]);
        }
        let body = batch.join("\n") + "\n";
        let answer =
            support::request(server.1, "POST", "/v1/events", &[("Authorization", &authorization)], body.as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.text());
        acknowledged += answer.json()["taken"].as_u64().expect("a count");
    }
    wait_until("the spool to drain", || metric(server.1, "upshot_spool_events") == 0);
    assert!(metric(server.1, "upshot_ship_failures_total") > 0, "the shard really was down");

    succeed(upshot(&embedded_data).args(["site", "create", "shop"]));
    succeed(upshot(&embedded_data).args(["import", "--site", "shop"]).arg(&events));
    let range = ["--from", "2024-05-03", "--to", "2024-05-18"];
    let embedded: serde_json::Value = serde_json::from_str(&succeed(
        upshot(&embedded_data).args(["report", "--site", "shop", "--format", "json"]).args(range),
    ))
    .expect("report JSON");
    let answer = report(server.1, &authorization, "/v1/sites/shop/report?from=2024-05-03&to=2024-05-18");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json(), embedded, "the ClickHouse backend reports what the embedded one does");

    // A short range: the shards send only the visitors active in it (and the period
    // before); the figures are still the embedded store's.
    let short = ["--from", "2024-05-12", "--to", "2024-05-13"];
    let embedded_short: serde_json::Value = serde_json::from_str(&succeed(
        upshot(&embedded_data).args(["report", "--site", "shop", "--format", "json", "--model", "linear"]).args(short),
    ))
    .expect("report JSON");
    let answer = report(server.1, &authorization, "/v1/sites/shop/report?from=2024-05-12&to=2024-05-13&model=linear");
    assert_eq!(answer.json(), embedded_short);
    assert!(
        metric(server.1, "upshot_clickhouse_reports_in_cluster_total")
            + metric(server.1, "upshot_reports_from_partials_total")
            >= 2,
        "with the spool shipped, the figures come from the cluster (its SQL, or its day partials once built)"
    );

    // The site's day partials are built from the cluster in the background and kept
    // there; then reports are sums of days, the same figures.
    wait_until("the day partials", || metric(server.1, "upshot_partials_builds_total") >= 1);
    let from_partials = metric(server.1, "upshot_reports_from_partials_total");
    let answer = report(server.1, &authorization, "/v1/sites/shop/report?from=2024-05-03&to=2024-05-18");
    assert_eq!(answer.json(), embedded, "from the cluster's day partials");
    assert!(metric(server.1, "upshot_reports_from_partials_total") > from_partials, "summed from day partials");

    // A late event (an order on a day the partials cover) changes the site's version:
    // the next report counts it at once, as the embedded store does.
    let late = r#"{"event_id":"late-order-1","type":"order","ts":"2024-05-10T12:00:00Z","visitor_id":"late-visitor","order_id":"late-1","revenue":42.5}"#;
    let answer = support::request(
        server.1,
        "POST",
        "/v1/events",
        &[("Authorization", &authorization)],
        format!("{late}\n").as_bytes(),
    );
    assert_eq!(answer.json()["taken"], 1, "{}", answer.text());
    let late_file = work.path().join("late.ndjson");
    std::fs::write(&late_file, format!("{late}\n")).expect("written");
    succeed(upshot(&embedded_data).args(["import", "--site", "shop"]).arg(&late_file));
    let embedded_late: serde_json::Value = serde_json::from_str(&succeed(
        upshot(&embedded_data).args(["report", "--site", "shop", "--format", "json"]).args(range),
    ))
    .expect("report JSON");
    assert_ne!(embedded_late, embedded, "the late order changes the figures");
    let answer = report(server.1, &authorization, "/v1/sites/shop/report?from=2024-05-03&to=2024-05-18");
    assert_eq!(answer.json(), embedded_late, "an acknowledged late event is in the next report");
    acknowledged += 1;

    // A restarted collector reads the partials the cluster keeps (rebuilt for the late
    // event first) instead of reading every event.
    wait_until("the day partials of the late event", || metric(server.1, "upshot_partials_builds_total") >= 2);
    drop(server);
    let server = serve(&collector_data, &nodes[0]);
    let answer = report(server.1, &authorization, "/v1/sites/shop/report?from=2024-05-03&to=2024-05-18");
    assert_eq!(answer.json(), embedded_late);
    assert_eq!(metric(server.1, "upshot_reports_from_partials_total"), 1, "read back from the cluster");
    // Only their head was read back: another lens is fetched from the cluster when a
    // report first sums it.
    let embedded_short_late: serde_json::Value = serde_json::from_str(&succeed(
        upshot(&embedded_data).args(["report", "--site", "shop", "--format", "json", "--model", "linear"]).args(short),
    ))
    .expect("report JSON");
    let answer = report(server.1, &authorization, "/v1/sites/shop/report?from=2024-05-12&to=2024-05-13&model=linear");
    assert_eq!(answer.json(), embedded_short_late);
    assert_eq!(metric(server.1, "upshot_reports_from_partials_total"), 2, "its lens fetched from the cluster");

    // Another server keeps a newer build (here: the same rows under a later start and
    // another digest) and the merge drops the rows of the one read back: a lens not
    // fetched yet is lost, that report is computed from the events (the same figures),
    // and the server reads the newer build back instead of building the site again.
    let node = upshot_clickhouse::Node::parse(&nodes[0]).expect("a node");
    let answer_of =
        |query: &str| String::from_utf8_lossy(&node.execute(query, b"").expect("a query")).trim().to_string();
    node.execute_with(
        "INSERT INTO upshot.partial_sections SELECT site, section, built_at_ms + 1, build + 1, version, sections, \
         length, bytes FROM upshot.partial_sections FINAL WHERE site = 'shop'",
        &[("insert_distributed_sync", "1")],
        b"",
    )
    .expect("a newer build");
    wait_until("the older build merged away", || {
        for url in &nodes {
            let node = upshot_clickhouse::Node::parse(url).expect("a node");
            node.execute("OPTIMIZE TABLE upshot.partial_sections_local FINAL", b"").expect("merged");
        }
        answer_of("SELECT uniqExact(built_at_ms) FROM upshot.partial_sections WHERE site = 'shop' FORMAT TSV") == "1"
    });
    let embedded_product: serde_json::Value = serde_json::from_str(&succeed(
        upshot(&embedded_data)
            .args(["report", "--site", "shop", "--format", "json", "--page-type", "product"])
            .args(range),
    ))
    .expect("report JSON");
    let product = "/v1/sites/shop/report?from=2024-05-03&to=2024-05-18&page_type=product";
    let builds = metric(server.1, "upshot_partials_builds_total");
    let from_events = metric(server.1, "upshot_reports_full_pass_total");
    assert_eq!(report(server.1, &authorization, product).json(), embedded_product);
    assert_eq!(metric(server.1, "upshot_reports_full_pass_total"), from_events + 1, "the lost lens is not summed");
    wait_until("the newer build read back", || {
        let from_partials = metric(server.1, "upshot_reports_from_partials_total");
        assert_eq!(report(server.1, &authorization, product).json(), embedded_product);
        metric(server.1, "upshot_reports_from_partials_total") > from_partials
    });
    assert_eq!(metric(server.1, "upshot_partials_builds_total"), builds, "read back, not built");

    let count = |query: &str| -> u64 {
        let node = upshot_clickhouse::Node::parse(&nodes[0]).expect("a node");
        String::from_utf8_lossy(&node.execute(query, b"").expect("a query")).trim().parse().expect("a count")
    };
    assert_eq!(
        count("SELECT count() FROM upshot.events FINAL FORMAT TSV"),
        acknowledged,
        "each acknowledged event once"
    );
    assert_eq!(count("SELECT uniqExact(event_id) FROM upshot.events FORMAT TSV"), acknowledged);
}

#[test]
fn the_schema_statements_print_for_replicated_tables_made_by_hand() {
    let data = tempfile::tempdir().expect("a temporary dir");
    let printed = succeed(upshot(data.path()).args(["clickhouse", "statements", "--cluster", "prod_1"]));
    assert!(printed.contains("CREATE TABLE IF NOT EXISTS upshot.events_local (`site` String"), "{printed}");
    assert!(printed.contains("ENGINE = SummingMergeTree ORDER BY site;"), "{printed}");
    assert!(printed.contains("Distributed(prod_1, upshot, partial_sections_local, sipHash64(site));"), "{printed}");
    let refused =
        upshot(data.path()).args(["clickhouse", "statements", "--cluster", "x'; DROP"]).output().expect("runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a cluster name"));
}
