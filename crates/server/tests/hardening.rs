//! Regression tests of the hardening issue, each named after what an attacker or a
//! careless client did: over real sockets, against a real server and data dir.

mod support;

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
