//! A server over a new data dir, started and stopped by the collector's tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::{json, Value};
use upshot_server::{Limits, RunningServer, ServeOptions};
use upshot_store::{SiteKeys, Store};

use crate::support::{request, Answer};

pub struct Harness {
    pub server: Option<RunningServer>,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub dir: tempfile::TempDir,
    pub keys: HashMap<String, SiteKeys>,
}

pub fn start(limits: Limits, sites: &[&str]) -> Harness {
    start_configured(limits, sites, |_| {})
}

/// Starts a server over a new data dir holding `sites`, after `configure` ran on its store.
pub fn start_configured(limits: Limits, sites: &[&str], configure: impl Fn(&Store)) -> Harness {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let store = Store::open(dir.path()).expect("a new data dir opens");
    let mut keys = HashMap::new();
    for site in sites {
        let (_, site_keys) = store.create_site(site, "UTC", "USD").expect("the site is created");
        keys.insert(site.to_string(), site_keys);
    }
    configure(&store);
    serve(store, limits, dir, keys)
}

fn serve(store: Store, limits: Limits, dir: tempfile::TempDir, keys: HashMap<String, SiteKeys>) -> Harness {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().expect("an address"),
        limits,
        admin_password: None,
        clickhouse: None,
    };
    let server = upshot_server::start(store, options, async move {
        let _ = stopped.await;
    })
    .expect("the server starts");
    Harness { server: Some(server), stop: Some(stop), dir, keys }
}

/// Serves the data dir of a stopped harness again, from `store` (opened on it).
pub fn restart(harness: Harness, store: Store) -> Harness {
    assert!(harness.server.is_none(), "stop the harness first");
    serve(store, Limits::default(), harness.dir, harness.keys)
}

impl Harness {
    pub fn address(&self) -> SocketAddr {
        self.server.as_ref().expect("running").address
    }

    pub fn public(&self, site: &str) -> String {
        self.keys[site].public_key.clone()
    }

    pub fn secret(&self, site: &str) -> String {
        self.keys[site].secret_key.clone()
    }

    pub fn post(&self, key: &str, body: &str) -> Answer {
        let authorization = format!("Bearer {key}");
        request(self.address(), "POST", "/v1/events", &[("Authorization", &authorization)], body.as_bytes())
    }

    pub fn get(&self, path: &str, key: &str) -> Answer {
        let authorization = format!("Bearer {key}");
        request(self.address(), "GET", path, &[("Authorization", &authorization)], b"")
    }

    pub fn metric(&self, line_prefix: &str) -> u64 {
        let text = request(self.address(), "GET", "/metrics", &[], b"").text();
        text.lines()
            .find_map(|line| line.strip_prefix(line_prefix).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0)
    }

    /// Stops the server (drain, write, seal) and returns the ids of the site's stored events.
    pub fn stop_and_read(&mut self, site: &str) -> Vec<String> {
        let _ = self.stop.take().expect("running").send(());
        self.server.take().expect("running").join().expect("the server stops cleanly");
        let store = Store::open_read_only(self.dir.path()).expect("the data dir opens");
        let record = store.load_site(site).expect("the site exists");
        let mut ids = Vec::new();
        let summary = store.scan_events(&record, |event| ids.push(event.event_id)).expect("the events read back");
        assert!(summary.problems.is_empty(), "{:?}", summary.problems);
        ids.sort();
        ids
    }
}

/// The status of each event of a batch's answer, in order.
pub fn event_statuses(answer: &Value) -> Vec<&str> {
    answer["events"].as_array().expect("per event").iter().map(|e| e["status"].as_str().expect("a status")).collect()
}

pub fn page_view(id: &str) -> Value {
    json!({"event_id": id, "type": "page_view", "ts": 1_700_000_000_000i64, "visitor_id": "v1"})
}

pub fn ndjson(events: &[Value]) -> String {
    events.iter().map(|event| format!("{event}\n")).collect()
}

/// Signs in to the dashboard with the site's secret key; the session cookie.
pub fn sign_in(harness: &Harness, site: &str) -> String {
    let form = format!("site={site}&secret={}", harness.secret(site));
    let signed_in = request(
        harness.address(),
        "POST",
        "/signin",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    assert_eq!(signed_in.status, 303);
    assert!(signed_in
        .header("set-cookie")
        .is_some_and(|value| value.contains("HttpOnly") && value.contains("SameSite=Strict")));
    signed_in.header("set-cookie").expect("a session cookie").split(';').next().expect("name=value").to_string()
}

/// Waits (bounded) until `done` holds; the caller asserts what it needs afterwards.
pub fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
