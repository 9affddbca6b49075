//! A data dir written by the previous release keeps working: `test_data/previous_release`
//! was made by that release's binary (`import` of 11 events, sealed into a format-5
//! segment; then `serve` took 2 more over HTTP and was killed before sealing, so its log
//! holds a block without the traffic column). Every event reads back as it was, `verify`
//! passes, and events with SPEC section 9.1's traffic fields are appended, sealed and
//! read next to the old ones.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn upshot(data: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_upshot"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("the upshot binary runs");
    assert!(output.status.success(), "upshot {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("upshot prints UTF-8")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a dir");
    for entry in std::fs::read_dir(from).expect("the fixture") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copied");
        }
    }
}

fn exported(data: &Path) -> Vec<Value> {
    let mut events: Vec<Value> = upshot(data, &["export", "--site", "shop"])
        .lines()
        .map(|line| serde_json::from_str(line).expect("an NDJSON line"))
        .collect();
    events.sort_by_key(|event| event["event_id"].as_str().expect("an id").to_string());
    events
}

#[test]
fn a_data_dir_of_the_previous_release_reads_and_takes_traffic_fields() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let data = dir.path().join("data");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test_data/previous_release"), &data);
    upshot(&data, &["verify"]);

    let old = exported(&data);
    let ids: Vec<&str> = old.iter().map(|event| event["event_id"].as_str().expect("an id")).collect();
    assert_eq!(ids, ["e1", "e10", "e11", "e12", "e2", "e3", "e4", "e6", "e7", "e8", "e9", "t1", "t2"]);
    assert_eq!(old[0]["revenue"], "10.5", "a segment's order reads as written: {}", old[0]);
    assert_eq!(old[0]["url"], "https://shop/x");
    assert_eq!(old[11]["url"], "https://shop/", "the log's block reads as written: {}", old[11]);
    assert!(old.iter().all(|event| event.get("device").is_none()), "no traffic fields appear");

    let file = dir.path().join("new.ndjson");
    std::fs::write(
        &file,
        r#"{"event_id":"n1","type":"page_view","ts":3000,"visitor_id":"c","device":"mobile","referrer":"https://www.google.com/","utm_campaign":"spring"}"#,
    )
    .expect("written");
    let imported = upshot(&data, &["import", "--site", "shop", file.to_str().expect("UTF-8")]);
    assert!(imported.contains("1 taken"), "{imported}");
    upshot(&data, &["verify"]);

    let all = exported(&data);
    assert_eq!(all.len(), 14);
    let new = all.iter().find(|event| event["event_id"] == "n1").expect("the new event");
    assert_eq!(
        (&new["device"], &new["referrer"], &new["utm_campaign"]),
        (&"mobile".into(), &"https://www.google.com/".into(), &"spring".into())
    );
    let without_new: Vec<&Value> = all.iter().filter(|event| event["event_id"] != "n1").collect();
    assert_eq!(without_new, old.iter().collect::<Vec<_>>(), "the old events are unchanged");

    let report: Value = serde_json::from_str(&upshot(
        &data,
        &["report", "--site", "shop", "--from", "1970-01-01", "--to", "1970-01-01", "--format", "json"],
    ))
    .expect("a JSON report");
    let devices: Vec<&str> = report["breakdowns"]["device"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row["value"].as_str().expect("a value"))
        .collect();
    assert_eq!(devices, ["unknown", "mobile"], "{}", report["breakdowns"]);
    let channels = &report["breakdowns"]["channel"];
    assert!(channels.as_array().expect("rows").iter().any(|row| row["value"] == "search"), "{channels}");
}
