//! `upshot serve` as a real process: it answers on the address it prints, a second
//! server on the same data dir is refused clearly, SIGTERM drains and seals, and a
//! SIGKILL loses nothing that was acknowledged.

mod process;
#[path = "../../server/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::{Child, Command};

use process::{listening, upshot};

/// Starts `upshot serve` on a free port and returns it with the address it printed.
fn serve(data: &std::path::Path) -> (Child, SocketAddr) {
    listening(upshot(data).args(["serve", "--listen", "127.0.0.1:0"]))
}

fn create_site(data: &std::path::Path) -> String {
    let output = upshot(data).args(["site", "create", "shop", "--format", "json"]).output().expect("the binary runs");
    assert!(output.status.success());
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout).expect("keys as JSON");
    keys["secret_key"].as_str().expect("a secret key").to_string()
}

fn post_page_views(address: SocketAddr, key: &str, ids: std::ops::Range<u32>) -> u64 {
    let body: String = ids
        .map(|id| format!("{{\"event_id\":\"e{id}\",\"type\":\"page_view\",\"ts\":\"2024-05-10T10:00:00Z\",\"visitor_id\":\"v{id}\"}}\n"))
        .collect();
    let authorization = format!("Bearer {key}");
    let answer = support::request(address, "POST", "/v1/events", &[("Authorization", &authorization)], body.as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["taken"].as_u64().expect("a count")
}

fn visitors_reported(data: &std::path::Path) -> u64 {
    let output = upshot(data)
        .args(["report", "--site", "shop", "--from", "2024-05-10", "--to", "2024-05-10", "--format", "json"])
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("report JSON");
    report["overview"]["visitors"].as_u64().expect("a count")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
}

#[test]
fn sigterm_drains_and_seals_and_a_second_server_is_refused() {
    let data = tempfile::tempdir().expect("temp dir");
    let key = create_site(data.path());
    let (mut child, address) = serve(data.path());
    assert_eq!(post_page_views(address, &key, 0..50), 50);
    let second = upshot(data.path()).args(["serve", "--listen", "127.0.0.1:0"]).output().expect("the binary runs");
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(message.contains("another upshot process"), "{message}");
    signal(&child, "TERM");
    let status = child.wait().expect("the server exits");
    assert!(status.success(), "{status}");
    assert_eq!(visitors_reported(data.path()), 50);
    let verified = upshot(data.path()).arg("verify").output().expect("the binary runs");
    let printed = String::from_utf8_lossy(&verified.stdout);
    assert!(printed.contains("(50 events), 0 log records"), "sealed at shutdown: {printed}");
}

#[test]
fn sigkill_loses_no_acknowledged_event() {
    let data = tempfile::tempdir().expect("temp dir");
    let key = create_site(data.path());
    let (mut child, address) = serve(data.path());
    let mut acknowledged = 0;
    for round in 0..10 {
        acknowledged += post_page_views(address, &key, round * 10..round * 10 + 10);
    }
    signal(&child, "KILL");
    let _ = child.wait();
    assert_eq!(visitors_reported(data.path()), acknowledged);
    // A restarted server recovers the log and goes on.
    let (mut child, address) = serve(data.path());
    assert_eq!(post_page_views(address, &key, 100..110), 10);
    signal(&child, "TERM");
    assert!(child.wait().expect("the server exits").success());
    assert_eq!(visitors_reported(data.path()), acknowledged + 10);
}

fn exported_ids(data: &std::path::Path) -> std::collections::HashSet<String> {
    let output = upshot(data).args(["export", "--site", "shop", "--format", "ndjson"]).output().expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).expect("JSON");
            event["event_id"].as_str().expect("an id").to_string()
        })
        .collect()
}

#[test]
fn a_backup_of_a_live_data_dir_holds_everything_acknowledged_before_it_began() {
    let data = tempfile::tempdir().expect("temp dir");
    let key = create_site(data.path());
    let (mut child, address) = serve(data.path());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let writer = {
        let (stop, acknowledged, key) = (stop.clone(), acknowledged.clone(), key.clone());
        std::thread::spawn(move || {
            let mut batch = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                post_page_views(address, &key, batch * 10..batch * 10 + 10);
                batch += 1;
                acknowledged.store(batch * 10, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    let backups = tempfile::tempdir().expect("temp dir");
    let mut checks = Vec::new();
    for round in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let before = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
        let target = backups.path().join(format!("copy-{round}"));
        let output = upshot(data.path()).args(["backup", "--to"]).arg(&target).output().expect("runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        checks.push((target, before));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().expect("the writer thread");
    signal(&child, "TERM");
    assert!(child.wait().expect("the server exits").success());
    for (target, before) in checks {
        assert!(before > 0, "events were flowing");
        let verified = upshot(&target).arg("verify").output().expect("runs");
        assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
        let ids = exported_ids(&target);
        let missing: Vec<u32> = (0..before).filter(|id| !ids.contains(&format!("e{id}"))).collect();
        assert!(missing.is_empty(), "{} acknowledged before the backup are missing: {missing:?}", missing.len());
    }
    let again = upshot(data.path()).args(["backup", "--to"]).arg(backups.path()).output().expect("runs");
    assert!(!again.status.success(), "a non-empty destination is refused");
}

#[test]
fn a_500_answer_names_no_path_of_the_server() {
    let data = tempfile::tempdir().expect("temp dir");
    let key = create_site(data.path());
    // Log files may not grow past 64 KiB: a large batch fails to be written (EFBIG, as
    // a full disk fails with ENOSPC).
    let script = format!(
        "trap '' XFSZ; ulimit -f 64; exec '{}' --data '{}' serve --listen 127.0.0.1:0",
        env!("CARGO_BIN_EXE_upshot"),
        data.path().display()
    );
    let (mut child, address) = listening(Command::new("bash").args(["-c", &script]));
    let body: String = (0..2000)
        .map(|id| format!("{{\"event_id\":\"big{id}\",\"type\":\"page_view\",\"ts\":\"2024-05-10T10:00:00Z\",\"visitor_id\":\"v{id}\",\"url\":\"https://shop.example/{id}/{}\"}}\n", "x".repeat(200)))
        .collect();
    let authorization = format!("Bearer {key}");
    let answer = support::request(address, "POST", "/v1/events", &[("Authorization", &authorization)], body.as_bytes());
    let text = answer.text();
    assert_eq!(answer.status, 500, "{}", &text[..text.len().min(300)]);
    let root = data.path().display().to_string();
    assert!(!text.contains(&root) && !text.contains("/wal") && text.contains("log says why"), "{text}");
    signal(&child, "KILL");
    let _ = child.wait();
}
