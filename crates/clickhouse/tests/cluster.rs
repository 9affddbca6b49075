//! Against a real two-shard ClickHouse cluster (Debian's clickhouse-server, started by
//! scripts/clickhouse/cluster on loopback and stopped at the end): the schema's init is
//! idempotent, events sent twice are stored once, each visitor lives on one shard, and
//! a report over what ClickHouse holds equals the embedded engine's, figure for figure.

use upshot_clickhouse::{insert_events, schema};
use upshot_engine::{compute_report, Dataset, Query};
use upshot_model::{Event, ParseContext, Settings};

#[path = "support/cluster.rs"]
mod cluster;

use cluster::{wait_for, Cluster};

fn shop() -> Vec<Event> {
    upshot_gen::generate_events(upshot_gen::GenOptions {
        seed: 17,
        visitors: 300,
        days: 20,
        start_ms: 1_714_521_600_000,
        lift: 0.1,
        currency: "USD".into(),
        edge_cases: true,
        end_ms: None,
    })
}

#[test]
fn a_two_shard_cluster_stores_each_event_once_and_reports_like_the_embedded_store() {
    let cluster = Cluster::start(18300);
    let schema_lines = |lines: &[String]| -> Vec<String> {
        lines.iter().filter(|line| line.contains("schema version")).cloned().collect()
    };
    let first = schema::init(&cluster.nodes, "upshot_test").expect("init");
    assert_eq!(schema_lines(&first).len(), 2, "{first:?}");
    assert!(schema_lines(&first).iter().all(|line| line.contains("created")), "{first:?}");
    let again = schema::init(&cluster.nodes, "upshot_test").expect("init is idempotent");
    assert!(schema_lines(&again).iter().all(|line| line.contains("already there")), "{again:?}");
    // A database of schema version 1 (before the traffic columns) is brought up to date.
    for node in &cluster.nodes {
        for table in ["events", "events_local"] {
            for column in ["device", "referrer", "utm_source", "utm_medium", "utm_campaign", "landing_channel"] {
                node.execute(&format!("ALTER TABLE upshot.{table} DROP COLUMN {column}"), b"").expect("drop");
            }
        }
        node.execute("DROP TABLE upshot.schema_version", b"").expect("drop");
        node.execute("CREATE TABLE upshot.schema_version (version UInt32, applied DateTime) ENGINE = TinyLog", b"")
            .expect("create");
        node.execute("INSERT INTO upshot.schema_version VALUES (1, now())", b"").expect("version 1");
    }
    let migrated = schema::init(&cluster.nodes, "upshot_test").expect("init migrates version 1");
    assert!(schema_lines(&migrated).iter().all(|line| line.contains("version 1 brought to 4")), "{migrated:?}");
    for table in ["changes", "changes_local", "partial_sections", "partial_sections_local"] {
        let exists = cluster.nodes[0].execute(&format!("EXISTS TABLE upshot.{table} FORMAT TSV"), b"").expect("asked");
        assert_eq!(String::from_utf8_lossy(&exists).trim(), "1", "versions 3 and 4 made {table}");
    }
    let after = schema::init(&cluster.nodes, "upshot_test").expect("and is idempotent after");
    assert!(schema_lines(&after).iter().all(|line| line.contains("already there")), "{after:?}");
    let shards: Vec<u32> =
        schema::shard_nodes(&cluster.nodes[1]).expect("the nodes").iter().map(|(shard, _)| *shard).collect();
    assert_eq!(shards, [1, 2], "init records which shard each node serves, on every node");

    let events = shop();
    let (half, rest) = events.split_at(events.len() / 2);
    insert_events(&cluster.nodes[0], "shop", half).expect("insert");
    insert_events(&cluster.nodes[1], "shop", events.as_slice()).expect("insert all, half of them again");
    insert_events(&cluster.nodes[0], "shop", rest).expect("insert the rest again");
    let shards = wait_for(&cluster.nodes, "shop", events.len());
    assert!(shards.iter().all(|shard| !shard.is_empty()), "both shards hold events");
    let mut ids: Vec<&str> = shards.iter().flatten().map(|event| event.event_id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!((before, ids.len()), (events.len(), events.len()), "every event once");
    let visitors = |shard: &Vec<Event>| -> std::collections::HashSet<String> {
        shard.iter().filter_map(|event| event.visitor_id.clone()).collect()
    };
    assert!(visitors(&shards[0]).is_disjoint(&visitors(&shards[1])), "a visitor lives on one shard");

    // Every type of event, with every optional field, comes back unchanged.
    let context = ParseContext { currency: "USD".into() };
    let lines = [
        r#"{"event_id":"t1","type":"page_view","ts":5,"visitor_id":"tv","page_type":"","url":"/a","profile_id":"p","sent_at":9,"device":"tablet","referrer":"https://r.example/","utm_source":"","utm_medium":"cpc","utm_campaign":"c"}"#,
        r#"{"event_id":"t2","type":"impression","ts":5,"visitor_id":"tv","placement":"p","kind":"recommendation","items":["a","b"],"impression_id":"i","campaign":"c","sequence":"s","experience":"e","label":"l"}"#,
        r#"{"event_id":"t3","type":"interaction","ts":5,"visitor_id":"tv","placement":"p","kind":"popup","action":"hover","item":"a"}"#,
        r#"{"event_id":"t4","type":"product_view","ts":5,"visitor_id":"tv","item":"a"}"#,
        r#"{"event_id":"t5","type":"add_to_cart","ts":5,"visitor_id":"tv","item":"a","quantity":3,"price":"1.2345"}"#,
        r#"{"event_id":"t6","type":"order","ts":5,"visitor_id":"tv","order_id":"o","revenue":"10.5","shipping":"-1","tax":0,"items":[{"item":"a","quantity":2,"price":"5.25"}]}"#,
        r#"{"event_id":"t7","type":"refund","ts":5,"order_id":"o","amount":"1"}"#,
        r#"{"event_id":"t8","type":"refund","ts":5,"order_id":"o","cancel":true}"#,
        r#"{"event_id":"t9","type":"assignment","ts":5,"visitor_id":"tv","experiment":"x","variant":"b"}"#,
        r#"{"event_id":"t10","type":"goal","ts":5,"visitor_id":"tv","goal":"g","value":"-2"}"#,
        r#"{"event_id":"t11","type":"journey","ts":5,"visitor_id":"tv","journey":"j","action":"notification","channel":"sms","run_id":"r"}"#,
        r#"{"event_id":"t12","type":"sequence_start","ts":5,"visitor_id":"tv","sequence":"s","campaign":"c"}"#,
    ];
    let typed: Vec<Event> =
        lines.iter().map(|line| upshot_model::parse_event_line(line, &context).expect("valid")).collect();
    insert_events(&cluster.nodes[0], "types", &typed).expect("insert");
    let mut back: Vec<Event> = cluster::stored(&cluster.nodes, "types").into_iter().flatten().collect();
    back.sort_by(|a, b| a.event_id.len().cmp(&b.event_id.len()).then_with(|| a.event_id.cmp(&b.event_id)));
    assert_eq!(back, typed);

    let query = Query::utc(jiff::civil::date(2024, 5, 3), jiff::civil::date(2024, 5, 18));
    let embedded = compute_report(&Dataset::from_events(&events), &Settings::default(), &query).expect("a report");
    let from_clickhouse: Vec<Event> = shards.into_iter().flatten().collect();
    let clickhouse =
        compute_report(&Dataset::from_events(&from_clickhouse), &Settings::default(), &query).expect("a report");
    assert_eq!(serde_json::to_value(&clickhouse).ok(), serde_json::to_value(&embedded).ok());
}
