//! Regression tests of the hardening issue, each named after what an attacker or a
//! careless client did: over real sockets, against a real server and data dir.

#[path = "support/harness.rs"]
mod harness;
mod support;

use harness::*;
use serde_json::json;
use support::*;
use upshot_server::Limits;
use upshot_store::Store;

#[test]
fn event_id_squatting_with_the_public_key_does_not_drop_the_backends_order() {
    let mut harness = start(Limits::default(), &["shop"]);
    let squat = json!({"event_id": "backend-order-1002", "type": "page_view", "ts": 1_700_000_000_000i64,
        "visitor_id": "attacker"});
    assert_eq!(event_statuses(&harness.post(&harness.public("shop"), &squat.to_string()).json()), ["taken"]);
    let order = json!({"event_id": "backend-order-1002", "type": "order", "ts": 1_700_000_001_000i64,
        "visitor_id": "customer", "order_id": "1002", "revenue": "25.00"});
    let answer = harness.post(&harness.secret("shop"), &order.to_string()).json();
    assert_eq!(event_statuses(&answer), ["taken"], "the squatted id must not make the order a duplicate");
    // Within one role the first event of an id still wins, before and after a restart.
    assert_eq!(event_statuses(&harness.post(&harness.secret("shop"), &order.to_string()).json()), ["duplicate"]);
    assert_eq!(event_statuses(&harness.post(&harness.public("shop"), &squat.to_string()).json()), ["duplicate"]);
    assert_eq!(harness.stop_and_read("shop"), ["backend-order-1002", "backend-order-1002"]);

    // After a restart (the ids are rebuilt from the sealed segments) the roles stay apart.
    let store = Store::open(harness.dir.path()).expect("the data dir reopens");
    let record = store.load_site("shop").expect("the site");
    let mut kinds = Vec::new();
    store.scan_events(&record, |event| kinds.push((event.body.type_name(), event.sent_with))).expect("scan");
    kinds.sort_by_key(|(name, _)| *name);
    assert_eq!(kinds, [("order", upshot_model::KeyRole::Secret), ("page_view", upshot_model::KeyRole::Public)]);
    let mut harness = restart(harness, store);
    let another_squat = json!({"event_id": "backend-order-1003", "type": "page_view", "ts": 1_700_000_002_000i64,
        "visitor_id": "attacker"});
    assert_eq!(event_statuses(&harness.post(&harness.public("shop"), &another_squat.to_string()).json()), ["taken"]);
    assert_eq!(event_statuses(&harness.post(&harness.secret("shop"), &order.to_string()).json()), ["duplicate"]);
    let late_order = json!({"event_id": "backend-order-1003", "type": "order", "ts": 1_700_000_003_000i64,
        "visitor_id": "customer", "order_id": "1003", "revenue": "5.00"});
    assert_eq!(event_statuses(&harness.post(&harness.secret("shop"), &late_order.to_string()).json()), ["taken"]);
    assert_eq!(harness.stop_and_read("shop").len(), 4);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

fn post_bytes(harness: &Harness, key: Option<&str>, body: &[u8]) -> Answer {
    let authorization = key.map(|key| format!("Bearer {key}"));
    let mut headers = vec![("Content-Encoding", "gzip")];
    if let Some(authorization) = &authorization {
        headers.push(("Authorization", authorization));
    }
    request(harness.address(), "POST", "/v1/events", &headers, body)
}

#[test]
fn a_gzip_bomb_is_refused_401_without_a_key_and_413_with_one() {
    let mut harness = start(Limits::default(), &["shop"]);
    let bomb = gzip(format!("[{}]", vec!["{}"; 5_600_000].join(",")).as_bytes());
    assert!(bomb.len() < 64 << 10, "a small body: {} bytes", bomb.len());
    assert_eq!(post_bytes(&harness, None, &bomb).status, 401, "nothing is decompressed before the key is checked");
    assert_eq!(post_bytes(&harness, Some("wrong"), &bomb).status, 401);
    let answer = post_bytes(&harness, Some(&harness.public("shop")), &bomb);
    assert_eq!(answer.status, 413, "{}", answer.text());
    // Under the decompressed limit but past the event count: counted while read.
    let many = gzip(format!("[{}]", vec!["{}"; 200_000].join(",")).as_bytes());
    let answer = post_bytes(&harness, Some(&harness.public("shop")), &many);
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert!(answer.text().contains("more than 10000 events"), "{}", answer.text());
    assert!(harness.stop_and_read("shop").is_empty());
}

#[test]
fn a_multi_member_gzip_body_keeps_every_member() {
    let mut harness = start(Limits::default(), &["shop"]);
    let mut body = gzip(format!("{}\n", page_view("a")).as_bytes());
    body.extend(gzip(format!("{}\n", page_view("b")).as_bytes()));
    body.extend(gzip(format!("{}\n", page_view("c")).as_bytes()));
    let answer = post_bytes(&harness, Some(&harness.public("shop")), &body);
    assert_eq!(answer.json()["taken"], 3, "{}", answer.text());
    assert_eq!(harness.stop_and_read("shop"), ["a", "b", "c"]);
}

#[test]
fn the_secret_key_in_a_url_is_refused_and_the_bearer_scheme_is_case_insensitive() {
    let mut harness = start(Limits::default(), &["shop"]);
    let body = page_view("in-url").to_string();
    let path = format!("/v1/beacon?key={}", harness.secret("shop"));
    let answer = request(harness.address(), "POST", &path, &[], body.as_bytes());
    assert_eq!(answer.status, 400);
    assert!(answer.text().contains("Authorization: Bearer"), "{}", answer.text());
    let path = format!("/v1/events?key={}", harness.secret("shop"));
    let authorization = format!("Bearer {}", harness.public("shop"));
    let beside_a_header = request(harness.address(), "POST", &path, &[("Authorization", &authorization)], b"");
    assert_eq!(beside_a_header.status, 400, "a secret key in the URL is refused even beside a header");
    let path = format!("/v1/beacon?key={}", harness.public("shop"));
    assert_eq!(request(harness.address(), "POST", &path, &[], body.as_bytes()).json()["taken"], 1);
    for scheme in ["bearer", "BEARER"] {
        let authorization = format!("{scheme} {}", harness.secret("shop"));
        let event = page_view(&format!("scheme-{scheme}")).to_string();
        let headers = [("Authorization", authorization.as_str())];
        let answer = request(harness.address(), "POST", "/v1/events", &headers, event.as_bytes());
        assert_eq!(answer.json()["taken"], 1, "{scheme}: {}", answer.text());
    }
    assert_eq!(harness.stop_and_read("shop"), ["in-url", "scheme-BEARER", "scheme-bearer"]);
}

#[test]
fn a_ga4_body_pretty_printed_over_several_lines_is_one_object() {
    let mut harness = start(Limits::default(), &["shop"]);
    // As Google's Measurement Protocol examples write it.
    let body = r#"{
  "client_id": "123456.7654321",
  "timestamp_micros": 1700000000000000,
  "events": [{
    "name": "view_item",
    "params": {
      "items": [{"item_id": "SKU_12345", "item_name": "Stan and Friends Tee"}]
    }
  }]
}"#;
    let answer = harness.post(&harness.secret("shop"), body);
    assert_eq!((answer.json()["taken"].clone(), answer.json()["rejected"].clone()), (json!(1), json!(0)));
    assert_eq!(harness.stop_and_read("shop").len(), 1);
}

/// Reads what the server sends until it closes the connection; fails (rather than
/// hanging the test) if it never does.
fn read_until_closed(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("a read timeout");
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the server never closed an idle connection: {error}"),
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn idle_and_half_sent_connections_past_the_limit_do_not_lock_out_a_new_client() {
    use std::io::Write;
    let limits =
        Limits { connections_max: 4, header_read_timeout_ms: 300, body_read_timeout_ms: 300, ..Limits::default() };
    let mut harness = start(limits, &["shop"]);
    let address = harness.address();
    let mut idle: Vec<std::net::TcpStream> =
        (0..6).map(|_| std::net::TcpStream::connect(address).expect("a connection")).collect();
    let mut half_head = std::net::TcpStream::connect(address).expect("a connection");
    half_head.write_all(b"POST /v1/events HTTP/1.1\r\nHost: test\r\n").expect("half a head");
    let mut half_body = std::net::TcpStream::connect(address).expect("a connection");
    let authorization = format!("Authorization: Bearer {}\r\n", harness.public("shop"));
    half_body
        .write_all(
            format!("POST /v1/events HTTP/1.1\r\nHost: test\r\n{authorization}Content-Length: 100\r\n\r\n{{\"ev")
                .as_bytes(),
        )
        .expect("half a body");
    // A new client, after all of them: served once the idle ones are timed out.
    let mut client = std::net::TcpStream::connect(address).expect("a connection");
    client.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("a read timeout");
    send(&mut client, "GET", "/healthz", &[], b"");
    assert_eq!(read_answer(&mut client).status, 200);
    for stream in &mut idle {
        assert_eq!(read_until_closed(stream), "", "an idle connection is closed without an answer");
    }
    read_until_closed(&mut half_head);
    let answer = read_until_closed(&mut half_body);
    assert!(answer.starts_with("HTTP/1.1 408"), "a body that never finishes is answered 408: {answer}");
    assert!(harness.stop_and_read("shop").is_empty());
}

#[test]
fn csv_formula_injection_through_a_placement_name_is_defused_in_the_report_api() {
    let mut harness = start(Limits::default(), &["shop"]);
    let hostile = "=HYPERLINK(\"http://evil.example\",\"x\")";
    let impression = json!({"event_id": "i1", "type": "impression", "ts": 1_700_000_000_000i64, "visitor_id": "v",
        "placement": hostile, "kind": "block"});
    assert_eq!(harness.post(&harness.public("shop"), &impression.to_string()).json()["taken"], 1);
    let answer = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14&format=csv", &harness.secret("shop"));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let csv = answer.text();
    assert!(csv.contains("'=HYPERLINK("), "{csv}");
    assert!(
        !csv.lines().any(|line| line.split(',').any(|cell| cell.trim_start_matches('"').starts_with('='))),
        "{csv}"
    );
    harness.stop_and_read("shop");
}

/// A connection from a chosen loopback address (the whole of 127.0.0.0/8 is local).
fn connect_from(source: [u8; 4], server: std::net::SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("a runtime");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.bind((std::net::Ipv4Addr::from(source), 0).into()).expect("bind to a loopback address");
        socket.connect(server).await.expect("connect")
    });
    let stream = stream.into_std().expect("a std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
}

fn sign_in_from(harness: &Harness, source: [u8; 4], site: &str, secret: &str, origin: Option<&str>) -> u16 {
    let form = format!("site={site}&secret={secret}");
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(origin) = origin {
        headers.push(("Origin", origin));
    }
    let mut stream = connect_from(source, harness.address());
    send(&mut stream, "POST", "/signin", &headers, form.as_bytes());
    read_answer(&mut stream).status
}

#[test]
fn the_sign_in_limit_holds_back_the_guessing_client_not_every_administrator() {
    let mut harness = start(Limits::default(), &["shop", "other"]);
    let statuses: Vec<u16> = (0..20)
        .map(|attempt| sign_in_from(&harness, [127, 0, 0, 2], "shop", &format!("guess-{attempt}"), None))
        .collect();
    assert!(statuses.contains(&429), "the guessing client is slowed: {statuses:?}");
    let secret = harness.secret("shop");
    assert_eq!(sign_in_from(&harness, [127, 0, 0, 3], "shop", &secret, None), 303, "another client signs in");
    assert_eq!(sign_in_from(&harness, [127, 0, 0, 2], "shop", &secret, None), 429, "the guesser still waits");
    harness.stop_and_read("shop");
}

#[test]
fn sign_in_and_sign_out_from_another_sites_page_are_refused() {
    let mut harness = start(Limits::default(), &["shop"]);
    let secret = harness.secret("shop");
    let from_elsewhere = sign_in_from(&harness, [127, 0, 0, 1], "shop", &secret, Some("https://evil.example"));
    assert_eq!(from_elsewhere, 403);
    assert_eq!(sign_in_from(&harness, [127, 0, 0, 1], "shop", &secret, Some("http://test")), 303, "own origin");
    let headers = [("Origin", "https://evil.example")];
    assert_eq!(request(harness.address(), "POST", "/signout", &headers, b"").status, 403);
    assert_eq!(request(harness.address(), "POST", "/signout", &[("Origin", "http://test")], b"").status, 303);
    harness.stop_and_read("shop");
}

/// Flips a byte inside the first bucket's event-id column of the site's first segment.
fn damage_a_segment(data: &std::path::Path) {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("manifest.json")).expect("manifest")).expect("json");
    let entry = &manifest["segments"][0];
    let segment = data.join(entry["file"].as_str().expect("a segment file"));
    let mut bytes = std::fs::read(&segment).expect("read the segment");
    let header_length = u32::from_le_bytes(bytes[10..14].try_into().expect("4 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[14..14 + header_length]).expect("header");
    let columns = header["buckets"][0]["columns"].as_array().expect("columns");
    let column = columns.iter().find(|column| column["name"] == "event_ids").expect("the event_ids column");
    bytes[column["offset"].as_u64().expect("offset") as usize + 2] ^= 0x10;
    std::fs::write(&segment, &bytes).expect("write the damaged segment");
}

#[test]
fn one_damaged_segment_leaves_ingest_running_and_reports_and_health_say_so() {
    let mut harness = start(Limits::default(), &["shop"]);
    let events: Vec<serde_json::Value> = (0..40)
        .map(|index| {
            json!({"event_id": format!("e{index}"), "type": "page_view",
            "ts": 1_700_000_000_000i64 + index, "visitor_id": format!("v{index}")})
        })
        .collect();
    assert_eq!(harness.post(&harness.secret("shop"), &ndjson(&events)).json()["taken"], 40);
    assert_eq!(harness.stop_and_read("shop").len(), 40);
    damage_a_segment(harness.dir.path());
    let store = Store::open(harness.dir.path()).expect("the data dir opens");
    let mut harness = restart(harness, store);
    let answer = harness.post(&harness.secret("shop"), &ndjson(&[page_view("after-the-damage")]));
    assert_eq!(answer.status, 200, "ingest goes on: {}", answer.text());
    assert_eq!(answer.json()["taken"], 1);
    let health = request(harness.address(), "GET", "/healthz", &[], b"").json();
    assert_eq!(health["status"], "degraded", "{health}");
    let root = harness.dir.path().display().to_string();
    assert!(!health.to_string().contains(&root), "no path of the server to anyone: {health}");
    let report = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14", &harness.secret("shop"));
    let report = report.json();
    let warnings = report["warnings"].as_array().expect("warnings in the report");
    assert!(warnings.iter().any(|warning| warning.as_str().is_some_and(|text| text.contains("event_ids"))), "{report}");
    assert!(!report.to_string().contains(&root), "warnings name files within the data dir: {report}");
    harness.stop.take().map(|stop| stop.send(()));
    harness.server.take().map(|server| server.join());
}

#[test]
fn a_report_that_timed_out_keeps_its_place_so_the_limit_bounds_cpu() {
    let limits = Limits { reports_in_flight_max: 1, report_seconds_max: 1, ..Limits::default() };
    let mut harness = start(limits, &["shop"]);
    let path = "/v1/sites/shop/report?from=2023-11-01&to=2023-11-14";
    let store = harness.server.as_ref().expect("running").store().clone();
    // The start's warm-up of the dashboard's views is over once a report is answered.
    wait_until(|| harness.get(path, &harness.secret("shop")).status == 200);
    let second = {
        // A stalled store stands in for a report that takes long: the first request
        // gives up after its second; its computation goes on, holding the only place.
        let _stalled = store.write().expect("the store lock");
        let first = harness.get(path, &harness.secret("shop"));
        assert_eq!(first.status, 503);
        assert!(first.text().contains("took longer"), "{}", first.text());
        harness.get(path, &harness.secret("shop"))
    };
    assert_eq!(second.status, 503);
    assert!(second.text().contains("other reports are being computed"), "{}", second.text());
    wait_until(|| harness.get(path, &harness.secret("shop")).status == 200);
    assert_eq!(harness.get(path, &harness.secret("shop")).status, 200);
    harness.stop_and_read("shop");
}

#[test]
fn skew_correction_never_stores_a_ts_the_parser_would_reject() {
    let mut harness = start(Limits::default(), &["shop"]);
    // ts at the earliest instant accepted, sent_at at the latest: correcting moves ts
    // out of the supported range.
    let event = json!({"event_id": "skewed", "type": "page_view", "ts": -300_000_000_000_000i64,
        "sent_at": 250_000_000_000_000i64, "visitor_id": "v"});
    let answer = harness.post(&harness.public("shop"), &event.to_string()).json();
    assert_eq!(event_statuses(&answer), ["rejected"], "{answer}");
    assert_eq!(answer["events"][0]["field"], "sent_at");
    assert!(harness.stop_and_read("shop").is_empty());
}

#[test]
fn a_report_range_past_the_limit_is_400_naming_it() {
    let mut harness = start(Limits::default(), &["shop"]);
    let answer = harness.get("/v1/sites/shop/report?from=2000-01-01&to=2024-01-01", &harness.secret("shop"));
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.text().contains("longer than"), "{}", answer.text());
    let answer = harness.get("/v1/sites/shop/report?from=2024-01-02&to=2024-01-01", &harness.secret("shop"));
    assert_eq!(answer.status, 400, "{}", answer.text());
    harness.stop_and_read("shop");
}

#[test]
fn site_json_holding_the_shopify_secret_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let harness = start_configured(Limits::default(), &["shop"], |store| {
        store.set_site_setting("shop", "shopify_webhook_secret", "whsec-secret").expect("a valid setting");
    });
    let path = harness.dir.path().join("sites/shop/site.json");
    let mode = std::fs::metadata(&path).expect("site.json").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    drop(harness);
    // A file left world-readable by an earlier version is narrowed when a writer opens the dir.
    let dir = tempfile::tempdir().expect("a temporary dir");
    let store = Store::open(dir.path()).expect("opens");
    store.create_site("shop", "UTC", "USD").expect("created");
    drop(store);
    let path = dir.path().join("sites/shop/site.json");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    drop(Store::open(dir.path()).expect("reopens"));
    assert_eq!(std::fs::metadata(&path).expect("site.json").permissions().mode() & 0o777, 0o600);
}

#[test]
fn the_tracker_is_served_gzipped_with_an_etag_that_revalidates() {
    use std::io::Read;
    let mut harness = start(Limits::default(), &["shop"]);
    let plain = request(harness.address(), "GET", "/t.js", &[], b"");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None, "no gzip for a client that did not ask");
    let etag = plain.header("etag").expect("an ETag").to_string();
    let zipped = request(harness.address(), "GET", "/t.js", &[("Accept-Encoding", "br, gzip;q=0.8")], b"");
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert!(zipped.body.len() * 2 < plain.body.len(), "{} vs {} bytes", zipped.body.len(), plain.body.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(zipped.body.as_slice()).read_to_end(&mut unzipped).expect("gzip");
    assert_eq!(unzipped, plain.body);
    let again = request(harness.address(), "GET", "/t.js", &[("If-None-Match", &etag)], b"");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let refused = request(harness.address(), "GET", "/t.js", &[("Accept-Encoding", "gzip;q=0")], b"");
    assert_eq!(refused.header("content-encoding"), None);
    harness.stop_and_read("shop");
}

#[test]
fn a_body_sent_without_a_key_is_never_waited_for() {
    use std::io::Write;
    let mut harness = start(Limits::default(), &["shop"]);
    let mut stream = std::net::TcpStream::connect(harness.address()).expect("a connection");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("a read timeout");
    // A head promising a large body, and no body: answered at once, from the head.
    stream.write_all(b"POST /v1/events HTTP/1.1\r\nHost: test\r\nContent-Length: 900000\r\n\r\n").expect("a head");
    let answer = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    harness.stop_and_read("shop");
}

#[test]
fn a_client_that_never_reads_its_answers_does_not_hold_its_connection() {
    use std::io::Write;
    let limits = Limits { connections_max: 1, write_stall_timeout_ms: 300, ..Limits::default() };
    let mut harness = start(limits, &["shop"]);
    let address = harness.address();
    // Pipelined requests for the tracker (~15 KB each), none of the answers read: the
    // socket buffers fill, the server can write no more, and stops reading.
    let mut greedy = std::net::TcpStream::connect(address).expect("a connection");
    let pipelined = "GET /t.js HTTP/1.1\r\nHost: test\r\n\r\n".repeat(2000);
    greedy.set_write_timeout(Some(std::time::Duration::from_secs(5))).expect("a write timeout");
    let _ = greedy.write_all(pipelined.as_bytes());
    let mut client = std::net::TcpStream::connect(address).expect("a connection");
    client.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("a read timeout");
    send(&mut client, "GET", "/healthz", &[], b"");
    assert_eq!(read_answer(&mut client).status, 200, "served once the stalled connection was closed");
    drop(greedy);
    harness.stop_and_read("shop");
}

#[test]
fn the_public_key_cannot_cancel_refund_or_shadow_an_order_the_backend_sent() {
    let mut harness = start(Limits::default(), &["shop"]);
    let order = json!({"event_id": "backend-order-1002", "type": "order", "ts": 1_700_000_100_000i64,
        "visitor_id": "customer", "order_id": "1002", "revenue": "25.00"});
    assert_eq!(harness.post(&harness.secret("shop"), &order.to_string()).json()["taken"], 1);
    let attacks = [
        json!({"event_id": "a1", "type": "refund", "ts": 1_700_000_200_000i64, "order_id": "1002", "cancel": true}),
        json!({"event_id": "a2", "type": "refund", "ts": 1_700_000_200_000i64, "order_id": "1002", "amount": "20"}),
        json!({"event_id": "a3", "type": "order", "ts": 1_700_000_000_000i64, "visitor_id": "attacker",
            "order_id": "1002", "revenue": "0.01"}),
    ];
    assert_eq!(harness.post(&harness.public("shop"), &ndjson(&attacks)).json()["taken"], 3);
    let report = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14", &harness.secret("shop")).json();
    assert_eq!((report["overview"]["orders"].clone(), report["overview"]["revenue"].clone()), (json!(1), json!(25)));
    harness.stop_and_read("shop");
    // Sealed into segments, read back through the segment columns: the same.
    let store = Store::open(harness.dir.path()).expect("reopens");
    let mut harness = restart(harness, store);
    let report = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14", &harness.secret("shop")).json();
    assert_eq!((report["overview"]["orders"].clone(), report["overview"]["revenue"].clone()), (json!(1), json!(25)));
    harness.stop_and_read("shop");
}

#[test]
fn gzip_sent_without_its_header_is_read_under_the_large_bodies_share() {
    let limits = Limits { body_memory_bytes_max: 24 << 20, ..Limits::default() };
    let mut harness = start(limits, &["shop"]);
    let url = format!("https://shop.example/{}", "x".repeat(8000));
    let lines: String = (0..600)
        .map(|index| {
            format!("{{\"event_id\":\"g{index}\",\"type\":\"page_view\",\"ts\":1700000000000,\"visitor_id\":\"v\",\"url\":\"{url}\"}}\n")
        })
        .collect();
    let body = gzip(lines.as_bytes());
    assert!(body.len() <= 16 << 10, "declared small: {} bytes", body.len());
    // No Content-Encoding: sniffed as gzip. It unpacks past the small bodies' share
    // (6 MiB here), so it must not be read under it, which would starve the tracker.
    let authorization = format!("Bearer {}", harness.public("shop"));
    let answer = request(harness.address(), "POST", "/v1/events", &[("Authorization", &authorization)], &body);
    assert_eq!(answer.status, 200, "{}", &answer.text()[..answer.text().len().min(300)]);
    assert_eq!(answer.json()["taken"], 600);
    assert_eq!(harness.stop_and_read("shop").len(), 600);
}

#[test]
fn a_body_sent_with_a_get_is_never_waited_for_nor_held() {
    use std::io::Write;
    let mut harness = start(Limits::default(), &["shop"]);
    let mut stream = std::net::TcpStream::connect(harness.address()).expect("a connection");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("a read timeout");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n\r\n").expect("a head");
    let answer = read_until_closed(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    harness.stop_and_read("shop");
}
