//! The collector over real sockets: every limit and error answers as documented, and
//! nothing accepted is lost, nothing rejected is stored.

#[path = "support/harness.rs"]
mod harness;
mod support;

use std::io::Write;

use harness::*;
use serde_json::{json, Value};
use support::*;
use upshot_server::Limits;
use upshot_store::Store;

#[test]
fn events_are_answered_one_by_one_and_only_taken_ones_are_stored() {
    let mut harness = start(Limits::default(), &["shop"]);
    let body = ndjson(&[page_view("a"), json!({"event_id": "b", "type": "page_view"}), page_view("a"), page_view("c")]);
    let answer = harness.post(&harness.public("shop"), &format!("{body}not json\n"));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(
        (answer["taken"].as_u64(), answer["duplicate"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(1), Some(2))
    );
    let statuses = event_statuses(&answer);
    assert_eq!(statuses, ["taken", "rejected", "duplicate", "taken", "rejected"]);
    assert_eq!(answer["events"][1]["field"], "ts");
    let again = harness.post(&harness.public("shop"), &ndjson(&[page_view("c")])).json();
    assert_eq!(again["duplicate"], 1, "a repeat after a restartless while is still a duplicate");
    assert_eq!(harness.metric("upshot_events_taken_total"), 2);
    assert_eq!(harness.stop_and_read("shop"), ["a", "c"]);
}

#[test]
fn wrong_or_missing_key_is_401_and_stores_nothing() {
    let mut harness = start(Limits::default(), &["shop"]);
    let answer = harness.post("up_pub_not_a_key", &ndjson(&[page_view("a")]));
    assert_eq!(answer.status, 401);
    assert!(answer.json()["error"].as_str().expect("a message").contains("unknown key"));
    let answer = request(harness.address(), "POST", "/v1/events", &[], ndjson(&[page_view("b")]).as_bytes());
    assert_eq!(answer.status, 401);
    assert!(harness.stop_and_read("shop").is_empty());
}

#[test]
fn another_sites_key_is_403_for_its_reports_and_its_events() {
    let mut harness = start(Limits::default(), &["shop", "other"]);
    let answer = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14", &harness.secret("other"));
    assert_eq!(answer.status, 403, "{}", answer.text());
    let authorization = format!("Bearer {}", harness.public("other"));
    let answer = request(
        harness.address(),
        "POST",
        "/v1/events?site=shop",
        &[("Authorization", &authorization)],
        ndjson(&[page_view("x")]).as_bytes(),
    );
    assert_eq!(answer.status, 403);
    let answer = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14", &harness.public("shop"));
    assert_eq!(answer.status, 403, "a public key reads no report");
    assert!(harness.stop_and_read("shop").is_empty());
}

#[test]
fn oversized_bodies_and_batches_are_413() {
    let limits =
        Limits { body_bytes_max: 2_000, batch_events_max: 3, decompressed_bytes_max: 4_000, ..Limits::default() };
    let mut harness = start(limits, &["shop"]);
    let many: Vec<Value> = (0..30).map(|index| page_view(&format!("e{index}"))).collect();
    assert_eq!(harness.post(&harness.public("shop"), &ndjson(&many)).status, 413);
    let answer = harness.post(&harness.public("shop"), &ndjson(&many[..4]));
    assert_eq!(answer.status, 413);
    assert!(answer.json()["error"].as_str().expect("a message").contains("more than 3 events"));
    // A small gzip body that unpacks past the limit.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![b' '; 10_000]).expect("compressing");
    let bomb = encoder.finish().expect("compressing");
    let authorization = format!("Bearer {}", harness.public("shop"));
    let answer = request(
        harness.address(),
        "POST",
        "/v1/events",
        &[("Authorization", &authorization), ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(answer.status, 413);
    assert!(harness.stop_and_read("shop").is_empty());
}

#[test]
fn malformed_json_array_is_400_naming_the_position() {
    let mut harness = start(Limits::default(), &["shop"]);
    let answer = harness.post(&harness.public("shop"), "[\n{\"event_id\": \"a\",\n  \"type\" \"page_view\"}]");
    assert_eq!(answer.status, 400);
    let message = answer.json()["error"].as_str().expect("a message").to_string();
    assert!(message.contains("line 3, column 10"), "{message}");
    assert!(harness.stop_and_read("shop").is_empty());
}

#[test]
fn a_full_write_queue_is_503_with_retry_after_and_loses_nothing_it_took() {
    let limits = Limits { queue_batches_max: 2, group_batches_max: 1, ..Limits::default() };
    let mut harness = start(limits, &["shop"]);
    let address = harness.address();
    let key = harness.public("shop");
    // Hold the store as a stalled disk would: the writer holds at most one batch and
    // the queue two, so of six batches sent now at least three are refused.
    let store = harness.server.as_ref().expect("running").store().clone();
    let stalled = store.write().expect("the store lock");
    let (results, answers) = std::sync::mpsc::channel();
    for index in 0..6 {
        let results = results.clone();
        let authorization = format!("Bearer {key}");
        std::thread::spawn(move || {
            let id = format!("q{index}");
            let body = ndjson(&[page_view(&id)]);
            let answer = request(address, "POST", "/v1/events", &[("Authorization", &authorization)], body.as_bytes());
            let _ = results.send((id, answer));
        });
    }
    drop(results);
    let mut refused = Vec::new();
    for _ in 0..3 {
        let (id, answer) = answers.recv().expect("an answer while the writer is stalled");
        assert_eq!(answer.status, 503, "only refusals can be answered while the writer is stalled");
        assert_eq!(answer.header("retry-after"), Some("1"));
        refused.push(id);
    }
    drop(stalled);
    let mut taken = Vec::new();
    for (id, answer) in answers {
        match answer.status {
            200 => taken.push(id),
            503 => refused.push(id),
            status => panic!("unexpected status {status}"),
        }
    }
    taken.sort();
    assert!(!taken.is_empty() && taken.len() <= 3, "{taken:?}");
    assert_eq!(harness.stop_and_read("shop"), taken, "every taken batch stored, no refused one");
}

#[test]
fn a_key_over_its_rate_is_429_with_retry_after() {
    let limits = Limits { key_events_per_second: 1, key_events_burst: 3, ..Limits::default() };
    let mut harness = start(limits, &["shop", "other"]);
    let events: Vec<Value> = (0..3).map(|index| page_view(&format!("r{index}"))).collect();
    assert_eq!(harness.post(&harness.public("shop"), &ndjson(&events)).status, 200);
    let answer = harness.post(&harness.public("shop"), &ndjson(&[page_view("r3"), page_view("r4")]));
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("2"));
    assert_eq!(
        harness.post(&harness.public("other"), &ndjson(&[page_view("o")])).status,
        200,
        "other keys are not slowed"
    );
    assert_eq!(harness.stop_and_read("shop"), ["r0", "r1", "r2"]);
}

#[test]
fn gzip_beacon_and_pixel_bodies_are_taken_with_cors() {
    let mut harness = start(Limits::default(), &["shop"]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(ndjson(&[page_view("gz")]).as_bytes()).expect("compressing");
    let authorization = format!("Bearer {}", harness.public("shop"));
    let body = encoder.finish().expect("compressing");
    let answer = request(
        harness.address(),
        "POST",
        "/v1/events",
        &[("Authorization", &authorization), ("Content-Encoding", "gzip")],
        &body,
    );
    assert_eq!((answer.status, answer.json()["taken"].as_u64()), (200, Some(1)));
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    let beacon = format!("/v1/beacon?key={}", harness.public("shop"));
    let answer = request(
        harness.address(),
        "POST",
        &beacon,
        &[("Content-Type", "text/plain")],
        page_view("beacon").to_string().as_bytes(),
    );
    assert_eq!(answer.json()["taken"], 1);
    let event = page_view("pixel").to_string();
    let encoded: String = event.bytes().map(|byte| format!("%{byte:02X}")).collect();
    let pixel = format!("/v1/pixel.gif?key={}&e={encoded}", harness.public("shop"));
    let answer = request(harness.address(), "GET", &pixel, &[], b"");
    assert_eq!((answer.status, answer.header("content-type")), (200, Some("image/gif")));
    let preflight = request(harness.address(), "OPTIONS", "/v1/events", &[("Origin", "https://shop.example")], b"");
    assert_eq!(preflight.status, 204);
    assert!(preflight.header("access-control-allow-headers").expect("allowed headers").contains("authorization"));
    assert_eq!(harness.stop_and_read("shop"), ["beacon", "gz", "pixel"]);
}

#[test]
fn collector_rules_skew_future_backend_orders_and_bots() {
    let mut harness = start_configured(Limits::default(), &["shop"], |store| {
        store.set_site_setting("shop", "orders_from_backend", "true").expect("a valid setting");
    });
    let now = jiff::Timestamp::now().as_millisecond();
    let skewed = json!({"event_id": "skewed", "type": "page_view", "visitor_id": "v", "ts": now + 3_600_000, "sent_at": now + 3_600_500});
    let future = json!({"event_id": "future", "type": "page_view", "visitor_id": "v", "ts": now + 3 * 86_400_000});
    let order =
        json!({"event_id": "order", "type": "order", "visitor_id": "v", "ts": now, "order_id": "o1", "revenue": 10});
    let answer = harness.post(&harness.public("shop"), &ndjson(&[skewed, future, order.clone()])).json();
    let statuses = event_statuses(&answer);
    assert_eq!(statuses, ["taken", "rejected", "rejected"], "{answer}");
    assert_eq!(
        (answer["events"][1]["field"].as_str(), answer["events"][2]["field"].as_str()),
        (Some("ts"), Some("type"))
    );
    assert_eq!(
        harness.post(&harness.secret("shop"), &ndjson(&[order])).json()["taken"],
        1,
        "the backend may send orders"
    );
    let bot = request(
        harness.address(),
        "POST",
        "/v1/events",
        &[
            ("Authorization", &format!("Bearer {}", harness.public("shop"))),
            ("User-Agent", "Mozilla/5.0 (compatible; Googlebot/2.1)"),
        ],
        ndjson(&[page_view("bot")]).as_bytes(),
    );
    assert_eq!(bot.json()["bot_events_ignored"], 1);
    assert_eq!(harness.metric("upshot_bot_events_total"), 1);
    assert_eq!(harness.stop_and_read("shop"), ["order", "skewed"]);
    // The skewed event's clock was 500 ms ahead of the collector's: ts is corrected.
    let store = Store::open_read_only(harness.dir.path()).expect("the data dir opens");
    let record = store.load_site("shop").expect("the site");
    store
        .scan_events(&record, |event| {
            if event.event_id == "skewed" {
                assert!((event.ts - (now - 500)).abs() < 60_000, "ts {} corrected towards {}", event.ts, now - 500);
            }
        })
        .expect("read back");
}

#[test]
fn ga4_and_segment_bodies_are_mapped() {
    let mut harness = start(Limits::default(), &["shop"]);
    let ga4 = json!({"client_id": "c1", "timestamp_micros": 1_700_000_000_000_000i64,
        "events": [{"name": "view_item", "params": {"items": [{"item_id": "p1"}]}}, {"name": "login", "params": {}}]});
    let answer = harness.post(&harness.public("shop"), &ga4.to_string()).json();
    assert_eq!((answer["taken"].as_u64(), answer["rejected"].as_u64()), (Some(1), Some(1)), "{answer}");
    let segment = json!({"batch": [{"type": "track", "event": "Product Viewed", "messageId": "seg-1", "anonymousId": "a1",
        "timestamp": "2023-11-14T22:13:20Z", "properties": {"product_id": "p1"}}]});
    assert_eq!(harness.post(&harness.public("shop"), &segment.to_string()).json()["taken"], 1);
    let ids = harness.stop_and_read("shop");
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"seg-1".to_string()) && ids.iter().any(|id| id.starts_with("ga4-")));
}

#[test]
fn the_report_api_gives_the_clis_json_for_the_same_events() {
    let mut harness = start(Limits::default(), &["shop"]);
    let events = vec![
        json!({"event_id": "i", "type": "impression", "ts": "2023-11-14T10:00:00Z", "visitor_id": "v", "placement": "hero", "kind": "recommendation", "items": ["p"]}),
        json!({"event_id": "c", "type": "interaction", "ts": "2023-11-14T10:00:05Z", "visitor_id": "v", "placement": "hero", "kind": "recommendation", "action": "click", "item": "p"}),
        json!({"event_id": "o", "type": "order", "ts": "2023-11-14T10:05:00Z", "visitor_id": "v", "order_id": "o1", "revenue": "25.50", "items": [{"item": "p", "price": "25.50"}]}),
    ];
    assert_eq!(harness.post(&harness.secret("shop"), &ndjson(&events)).json()["taken"], 3);
    let answer = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14", &harness.secret("shop"));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let served = answer.json();
    assert_eq!(served["placements"][0]["orders"], 1);
    assert_eq!(served["recommendations"]["direct_revenue"], 25.5);
    let bad = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14&model=best", &harness.secret("shop"));
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().expect("a message").contains("model \"best\""));
    // The segment filter over HTTP (SPEC section 9.2): applied, echoed, and checked.
    let mobile = harness
        .get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14&segment=device:mobile", &harness.secret("shop"));
    assert_eq!(mobile.status, 200, "{}", mobile.text());
    assert_eq!(
        (mobile.json()["range"]["segment"].clone(), mobile.json()["overview"]["sessions"].clone()),
        (json!("device:mobile"), json!(0))
    );
    let unknown =
        harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14&segment=colour:red", &harness.secret("shop"));
    assert_eq!(unknown.status, 400);
    let message = unknown.json()["error"].as_str().expect("a message").to_string();
    assert!(
        message.contains("\"colour\" is unknown") && message.contains("device, visitor_type, channel"),
        "{message}"
    );
    let bad_value = harness
        .get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14&segment=device:phone", &harness.secret("shop"));
    assert!(bad_value.json()["error"].as_str().expect("a message").contains("not a device"), "{}", bad_value.text());
    harness.stop_and_read("shop");
    let store = Store::open_read_only(harness.dir.path()).expect("the data dir opens");
    let record = store.load_site("shop").expect("the site");
    let params = upshot_scan::ReportParams { from: "2023-11-14".into(), to: "2023-11-14".into(), ..Default::default() };
    let query = params.query(&record, str::to_string).expect("valid");
    let (report, _) = upshot_scan::site_report(&store, &record, &query).expect("a report");
    let cli: Value = serde_json::from_str(&upshot_report::render_json(&report)).expect("JSON");
    assert_eq!(served, cli);
}

#[test]
fn shopify_webhooks_are_verified_mapped_and_a_refund_replayed_with_a_fresh_webhook_id_is_a_duplicate() {
    use base64::Engine;
    use hmac::Mac;
    let mut harness = start_configured(Limits::default(), &["shop"], |store| {
        store.set_site_setting("shop", "shopify_webhook_secret", "whsec").expect("a valid setting");
    });
    let order =
        json!({"id": 450789469, "processed_at": "2023-11-14T10:00:00Z", "currency": "USD", "subtotal_price": "80.00",
        "total_tax": "8.00", "line_items": [{"product_id": 1, "quantity": 2, "price": "40.00"}]})
        .to_string();
    let sign = |body: &str, secret: &[u8]| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
        mac.update(body.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    let deliver = |body: &str, signature: &str, webhook_id: &str, topic: &str| {
        let headers =
            [("X-Shopify-Hmac-Sha256", signature), ("X-Shopify-Topic", topic), ("X-Shopify-Webhook-Id", webhook_id)];
        request(harness.address(), "POST", "/v1/sites/shop/shopify", &headers, body.as_bytes())
    };
    let signature = sign(&order, b"whsec");
    assert_eq!(deliver(&order, &signature, "w-1", "orders/paid").json()["taken"], 1);
    assert_eq!(deliver(&order, &signature, "w-1", "orders/paid").json()["duplicate"], 1, "a redelivery counts once");
    assert_eq!(deliver(&order, &sign(&order, b"wrong"), "w-2", "orders/paid").status, 401);
    let cancel = json!({"id": 450789469, "cancelled_at": "2023-11-15T10:00:00Z"}).to_string();
    assert_eq!(deliver(&order, &signature, "w-9", "orders/paid").json()["duplicate"], 1, "a replay counts once");
    let refund = json!({"id": 929361462, "order_id": 450789469, "created_at": "2023-11-14T12:00:00Z",
        "refund_line_items": [{"subtotal": "40.00"}]})
    .to_string();
    let refund_signature = sign(&refund, b"whsec");
    assert_eq!(deliver(&refund, &refund_signature, "w-4", "refunds/create").json()["taken"], 1);
    // The webhook id is not signed: an attacker replaying a captured refund sets a new one.
    let replayed = deliver(&refund, &refund_signature, "w-5-fresh", "refunds/create").json();
    assert_eq!(replayed["duplicate"], 1, "a replayed refund must not refund twice: {replayed}");
    assert_eq!(deliver(&cancel, &sign(&cancel, b"whsec"), "w-3", "orders/cancelled").json()["taken"], 1);
    assert_eq!(
        harness.stop_and_read("shop"),
        ["shopify-cancel-450789469", "shopify-order-450789469", "shopify-refund-929361462"]
    );
}

#[test]
fn past_its_connection_limit_the_server_serves_a_new_client_once_one_leaves() {
    let limits = Limits { connections_max: 1, ..Limits::default() };
    let mut harness = start(limits, &["shop"]);
    let address = harness.address();
    let idle = std::net::TcpStream::connect(address).expect("the first connection");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = done.clone();
    let waiting = std::thread::spawn(move || {
        let answer = request(address, "GET", "/healthz", &[], b"");
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        answer
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !done.load(std::sync::atomic::Ordering::SeqCst),
        "the second client was served while the first held the only slot"
    );
    drop(idle);
    assert_eq!(waiting.join().expect("the client thread").status, 200);
    assert!(harness.stop_and_read("shop").is_empty());
}

#[test]
fn a_dashboard_page_whose_figures_are_slow_answers_at_once_and_reloads_itself() {
    let mut harness = start(Limits::default(), &["shop"]);
    let cookie = sign_in(&harness, "shop");
    // A stalled store (as under a long report or a slow disk) keeps the figures from
    // coming: the page must not wait for them.
    let store = harness.server.as_ref().expect("running").store().clone();
    let stalled = store.write().expect("the store lock");
    // (A custom range: the server computes every date preset ahead.)
    let view = "/sites/shop/?from=2023-11-01&to=2023-11-09";
    let page = request(harness.address(), "GET", view, &[("Cookie", &cookie)], b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Computing the figures") && page.text().contains("http-equiv=\"refresh\""));
    drop(stalled);
    let mut overview = String::new();
    for _ in 0..100 {
        overview = request(harness.address(), "GET", view, &[("Cookie", &cookie)], b"").text();
        if overview.contains("<h1>Overview</h1>") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(overview.contains("<h1>Overview</h1>"), "the figures arrive once computed");
    let signed_out = request(harness.address(), "GET", "/sites/shop/", &[], b"");
    assert_eq!((signed_out.status, signed_out.header("location")), (303, Some("/signin")), "no cookie, no figures");
    harness.stop_and_read("shop");
}

fn metric_of(harness: &Harness, name: &str) -> u64 {
    harness.metric(&format!("{name} "))
}

/// A generated shop's events in November 2023, as NDJSON batches of 500.
fn generated_shop() -> Vec<String> {
    let events = upshot_gen::generate_events(upshot_gen::GenOptions {
        seed: 5,
        visitors: 150,
        days: 20,
        start_ms: 1_698_796_800_000, // 2023-11-01T00:00Z
        lift: 0.1,
        currency: "USD".into(),
        edge_cases: false,
        end_ms: None,
    });
    let lines: Vec<String> = events.iter().map(|event| upshot_model::event_to_json(event).to_string()).collect();
    lines.chunks(500).map(|chunk| chunk.iter().map(|line| format!("{line}\n")).collect()).collect()
}

#[test]
fn any_range_of_a_kept_lens_is_summed_from_day_partials_and_a_late_refund_shows_in_the_next_report() {
    let mut harness = start(Limits::default(), &["shop"]);
    for batch in generated_shop() {
        assert_eq!(harness.post(&harness.secret("shop"), &batch).status, 200);
    }
    let secret = harness.secret("shop");
    let report = |query: &str| {
        let answer = harness.get(&format!("/v1/sites/shop/report?{query}"), &secret);
        assert_eq!(answer.status, 200, "{query}: {}", answer.text());
        answer.json()
    };
    // The first report is a pass over the events; it starts the partials' build.
    report("from=2023-11-01&to=2023-11-30");
    wait_until(|| metric_of(&harness, "upshot_partials_builds_total") >= 1);
    assert_eq!(metric_of(&harness, "upshot_partials_builds_total"), 1);
    // Any range (one day, custom, reaching past the data) and any model: sums of days.
    let queries = [
        "from=2023-11-01&to=2023-11-30",
        "from=2023-11-07&to=2023-11-07",
        "from=2023-11-03&to=2023-11-17&model=linear",
        "from=2023-10-20&to=2023-11-12&model=time_decay",
        "from=2023-11-10&to=2023-12-31&page_type=product",
    ];
    let before = metric_of(&harness, "upshot_reports_from_partials_total");
    let served: Vec<Value> = queries.iter().map(|query| report(query)).collect();
    assert_eq!(metric_of(&harness, "upshot_reports_from_partials_total"), before + queries.len() as u64);
    // Every report the partials gave equals a pass over the stored events (read while
    // the server runs, as `upshot report` may).
    let store = Store::open_read_only(harness.dir.path()).expect("the data dir opens");
    let record = store.load_site("shop").expect("the site");
    for (query, served) in queries.iter().zip(&served) {
        let pairs: std::collections::HashMap<&str, &str> =
            query.split('&').filter_map(|pair| pair.split_once('=')).collect();
        let params = upshot_scan::ReportParams {
            from: pairs["from"].into(),
            to: pairs["to"].into(),
            page_type: pairs.get("page_type").map(|text| text.to_string()),
            model: pairs.get("model").map(|text| text.to_string()),
            ..Default::default()
        };
        let query_value = params.query(&record, str::to_string).expect("valid");
        let (report, _) = upshot_scan::site_report(&store, &record, &query_value).expect("a report");
        let mut cli: Value = serde_json::from_str(&upshot_report::render_json(&report)).expect("JSON");
        let mut served = served.clone();
        // Active counts look at the 24 hours before the present in the server, the
        // range's end in the CLI; everything else must be equal.
        for value in [&mut cli, &mut served] {
            for field in ["active_placements", "active_experiments", "active_journeys"] {
                value["overview"][field] = Value::Null;
            }
        }
        assert_eq!(served, cli, "{query}");
    }
    let revenue_before = served[0]["overview"]["revenue"].as_f64().expect("revenue");
    // A late refund of the month's first order: the next report has it, from the pass
    // (the partials no longer reflect the stored events), and the partials catch up.
    let order = served[0]["recent_conversions"].as_array().and_then(|orders| orders.last()).expect("an order");
    let (order_id, visitor) =
        (order["order_id"].as_str().expect("an id"), order["visitor_id"].as_str().expect("a visitor"));
    let refund = json!({"event_id": "late-refund", "type": "refund", "ts": "2023-12-02T09:00:00Z", "visitor_id": visitor, "order_id": order_id, "cancel": true});
    assert_eq!(harness.post(&secret, &ndjson(&[refund])).json()["taken"], 1);
    let after = report("from=2023-11-01&to=2023-11-30");
    let revenue_after = after["overview"]["revenue"].as_f64().expect("revenue");
    let refunded = order["revenue"].as_f64().expect("revenue");
    assert!(
        (revenue_before - refunded - revenue_after).abs() < 0.005,
        "{revenue_before} - {refunded} != {revenue_after}"
    );
    wait_until(|| metric_of(&harness, "upshot_partials_builds_total") >= 2);
    let from_partials = metric_of(&harness, "upshot_reports_from_partials_total");
    assert_eq!(report("from=2023-11-01&to=2023-11-30"), after, "the rebuilt partials give the pass's figures");
    assert_eq!(metric_of(&harness, "upshot_reports_from_partials_total"), from_partials + 1);
    harness.stop_and_read("shop");
}

#[test]
fn a_restarted_server_sums_days_from_the_saved_partials_without_a_pass() {
    let mut harness = start(Limits::default(), &["shop"]);
    for batch in generated_shop() {
        assert_eq!(harness.post(&harness.secret("shop"), &batch).status, 200);
    }
    let secret = harness.secret("shop");
    let first = harness.get("/v1/sites/shop/report?from=2023-11-01&to=2023-11-30", &secret);
    assert_eq!(first.status, 200);
    wait_until(|| metric_of(&harness, "upshot_partials_builds_total") >= 1);
    assert!(harness.dir.path().join("sites/shop/derived/day-partials").is_file(), "saved after the build");
    harness.stop_and_read("shop");
    let store = Store::open(harness.dir.path()).expect("the data dir opens");
    let harness = restart(harness, store);
    let wanted = "/v1/sites/shop/report?from=2023-11-04&to=2023-11-18&model=first";
    wait_until(|| {
        harness.get(wanted, &secret).status == 200 && metric_of(&harness, "upshot_reports_from_partials_total") >= 1
    });
    assert!(metric_of(&harness, "upshot_reports_from_partials_total") >= 1, "read back, not rebuilt");
    assert_eq!(metric_of(&harness, "upshot_partials_builds_total"), 0, "no pass to build them");
}

#[test]
fn a_lens_not_kept_is_computed_once_then_summed_from_partials() {
    let mut harness = start(Limits::default(), &["shop"]);
    for batch in generated_shop() {
        assert_eq!(harness.post(&harness.secret("shop"), &batch).status, 200);
    }
    let secret = harness.secret("shop");
    let report = |query: &str| harness.get(&format!("/v1/sites/shop/report?{query}"), &secret);
    // Every dashboard view (model x page type) is kept; a placement filter is not: the
    // first report under it is a pass, and the next build keeps its lens.
    assert_eq!(report("from=2023-11-01&to=2023-11-30").status, 200);
    wait_until(|| metric_of(&harness, "upshot_partials_builds_total") >= 1);
    let passes = metric_of(&harness, "upshot_reports_full_pass_total");
    assert_eq!(report("from=2023-11-02&to=2023-11-15&placement=home_recs&model=linear").status, 200);
    assert_eq!(metric_of(&harness, "upshot_reports_full_pass_total"), passes + 1);
    wait_until(|| metric_of(&harness, "upshot_partials_builds_total") >= 2);
    let before = metric_of(&harness, "upshot_reports_from_partials_total");
    assert_eq!(report("from=2023-11-06&to=2023-11-08&placement=home_recs&model=linear").status, 200);
    assert_eq!(metric_of(&harness, "upshot_reports_from_partials_total"), before + 1);
    // Two dashboard controls changed at once: summed from the kept partials.
    let cookie = sign_in(&harness, "shop");
    let view = "/sites/shop/?from=2023-11-02&to=2023-11-15&page_type=cart&model=first";
    let page = request(harness.address(), "GET", view, &[("Cookie", &cookie)], b"").text();
    assert!(page.contains("<h1>Overview</h1>"));
    assert!(metric_of(&harness, "upshot_reports_from_partials_total") >= before + 2);
    harness.stop_and_read("shop");
}

#[test]
fn guessing_sign_ins_are_slowed_to_a_crawl() {
    let mut harness = start(Limits::default(), &["shop"]);
    let statuses: Vec<u16> = (0..30)
        .map(|attempt| {
            let form = format!("site=shop&secret=guess-{attempt}");
            let headers = [("Content-Type", "application/x-www-form-urlencoded")];
            request(harness.address(), "POST", "/signin", &headers, form.as_bytes()).status
        })
        .collect();
    assert!(statuses[..10].iter().all(|status| *status == 401), "{statuses:?}");
    assert!(statuses[10..].iter().all(|status| *status == 401 || *status == 429), "{statuses:?}");
    assert!(statuses[10..].contains(&429), "past the burst, attempts wait: {statuses:?}");
    harness.stop_and_read("shop");
}

#[test]
fn an_event_without_a_device_gets_the_one_its_user_agent_names() {
    let mut harness = start(Limits::default(), &["shop"]);
    let phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    let events = [
        json!({"event_id": "a", "type": "page_view", "ts": "2023-11-14T10:00:00Z", "visitor_id": "v1"}),
        json!({"event_id": "b", "type": "page_view", "ts": "2023-11-14T11:00:00Z", "visitor_id": "v2", "device": "tablet"}),
    ];
    let authorization = format!("Bearer {}", harness.public("shop"));
    let headers = [("Authorization", authorization.as_str()), ("User-Agent", phone)];
    let answer = support::request(harness.address(), "POST", "/v1/events", &headers, ndjson(&events).as_bytes());
    assert_eq!(answer.json()["taken"], 2, "{}", answer.text());
    // A backend's HTTP library names no device: its event stays without one.
    let backend = format!("Bearer {}", harness.secret("shop"));
    let library = [("Authorization", backend.as_str()), ("User-Agent", "python-requests/2.31")];
    let event = json!({"event_id": "c", "type": "page_view", "ts": "2023-11-14T12:00:00Z", "visitor_id": "v3"});
    let answer = support::request(harness.address(), "POST", "/v1/events", &library, ndjson(&[event]).as_bytes());
    assert_eq!(answer.json()["taken"], 1, "{}", answer.text());
    let report = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14", &harness.secret("shop")).json();
    let devices: Vec<(String, u64)> = report["breakdowns"]["device"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| (row["value"].as_str().expect("a value").to_string(), row["sessions"].as_u64().expect("a count")))
        .collect();
    assert_eq!(devices, [("mobile".to_string(), 1), ("tablet".to_string(), 1), ("unknown".to_string(), 1)]);
    harness.stop_and_read("shop");
}

#[test]
fn ga4_and_segment_senders_post_to_their_own_paths_unchanged() {
    use base64::Engine;
    let mut harness = start(Limits::default(), &["shop"]);
    let public = harness.public("shop");
    // GA4's Measurement Protocol, as its documentation shapes a body.
    let ga4 = json!({"client_id": "123456.7654321", "timestamp_micros": 1_699_956_000_000_000i64,
        "device": {"category": "mobile"},
        "events": [
            {"name": "page_view", "params": {"page_location": "https://shop.example/?utm_source=google&utm_medium=cpc",
                "page_referrer": "https://www.google.com/"}},
            {"name": "view_item", "params": {"items": [{"item_id": "p1"}]}}]});
    let path = format!("/mp/collect?measurement_id=G-TEST&api_secret={public}");
    let answer = request(harness.address(), "POST", &path, &[], ga4.to_string().as_bytes());
    assert_eq!((answer.status, answer.json()["taken"].clone()), (200, json!(2)), "{}", answer.text());
    let secret_in_url = format!("/mp/collect?measurement_id=G-TEST&api_secret={}", harness.secret("shop"));
    let refused = request(harness.address(), "POST", &secret_in_url, &[], ga4.to_string().as_bytes());
    assert_eq!(refused.status, 400, "the secret key never travels in a URL");

    // Segment's HTTP tracking API: the write key as the Basic user, calls without type
    // or messageId; and analytics.js's short path with the write key in the body.
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{public}:")));
    let page = json!({"anonymousId": "anon-1", "name": "Home", "timestamp": "2023-11-14T11:00:00Z",
        "properties": {"url": "https://shop.example/", "referrer": "https://www.facebook.com/"}});
    let answer =
        request(harness.address(), "POST", "/v1/page", &[("Authorization", &basic)], page.to_string().as_bytes());
    assert_eq!(answer.json()["taken"], 1, "{}", answer.text());
    let track = json!({"anonymousId": "anon-1", "event": "Product Viewed", "timestamp": "2023-11-14T11:01:00Z",
        "properties": {"product_id": "p2"}});
    let answer =
        request(harness.address(), "POST", "/v1/track", &[("Authorization", &basic)], track.to_string().as_bytes());
    assert_eq!(answer.json()["taken"], 1, "{}", answer.text());
    let again =
        request(harness.address(), "POST", "/v1/track", &[("Authorization", &basic)], track.to_string().as_bytes());
    assert_eq!(again.json()["duplicate"], 1, "a resent call is a duplicate: {}", again.text());
    let batch = json!({"writeKey": public, "batch": [
        {"type": "page", "anonymousId": "anon-2", "timestamp": "2023-11-14T12:00:00Z", "properties": {"url": "https://shop.example/"},
         "context": {"campaign": {"source": "newsletter", "medium": "email"}}},
        {"type": "identify", "anonymousId": "anon-2", "traits": {}}]});
    let answer = request(harness.address(), "POST", "/v1/b", &[], batch.to_string().as_bytes());
    assert_eq!(
        (answer.json()["taken"].clone(), answer.json()["rejected"].clone()),
        (json!(1), json!(1)),
        "{}",
        answer.text()
    );
    // analytics.js's identify calls are answered, as not counted (no 404 in the console).
    let identify = json!({"anonymousId": "anon-1", "userId": "u-1", "traits": {"plan": "gold"}}).to_string();
    let answer = request(harness.address(), "POST", "/v1/i", &[("Authorization", &basic)], identify.as_bytes());
    assert_eq!((answer.status, answer.json()["rejected"].clone()), (200, json!(1)), "{}", answer.text());
    let unknown = request(harness.address(), "POST", "/v1/t", &[], json!({"writeKey": "nope"}).to_string().as_bytes());
    assert_eq!(unknown.status, 401);
    // A large batch with the key in its header is read like any event body (well past
    // the dashboard forms' 16 KiB); without one, a body is read only up to 64 KiB.
    let calls: Vec<Value> = (0..400)
        .map(|index| {
            json!({"type": "page", "anonymousId": format!("bulk-{index}"), "timestamp": "2023-11-14T13:00:00Z",
            "properties": {"url": "https://shop.example/", "title": "x".repeat(100)}})
        })
        .collect();
    let large = json!({"batch": calls}).to_string();
    assert!(large.len() > 64 << 10);
    let answer = request(harness.address(), "POST", "/v1/batch", &[("Authorization", &basic)], large.as_bytes());
    assert_eq!(answer.json()["taken"], 400, "{}", answer.status);
    let keyed_in_body = large.replacen('{', &format!("{{\"writeKey\":\"{public}\","), 1);
    let refused = request(harness.address(), "POST", "/v1/b", &[], keyed_in_body.as_bytes());
    assert_eq!(refused.status, 413, "{}", refused.text());

    let report = harness.get("/v1/sites/shop/report?from=2023-11-14&to=2023-11-14", &harness.secret("shop")).json();
    let channels: Vec<&str> = report["breakdowns"]["channel"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row["value"].as_str().expect("a value"))
        .collect();
    assert_eq!(channels, ["direct", "email", "paid", "social"], "{}", report["breakdowns"]);
    let devices: Vec<(&str, u64)> = report["breakdowns"]["device"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| (row["value"].as_str().expect("a value"), row["sessions"].as_u64().expect("a count")))
        .collect();
    assert_eq!(
        devices,
        [("unknown", 402), ("mobile", 1)],
        "GA4's device category; Segment's calls came with no User-Agent"
    );
    harness.stop_and_read("shop");
}
