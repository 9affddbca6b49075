//! The `upshot` binary as a user drives it: bad input is rejected with reasons and
//! loses none of the good events; re-importing changes no figure; settings validate.

use std::process::{Command, Output};

fn upshot(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_upshot")).arg("--data").arg(data).args(args).output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const EVENTS: &str = r#"{"event_id":"ok1","type":"page_view","ts":"2024-05-10T10:00:00Z","visitor_id":"a"}
{"event_id":"bad1","type":"page_view","ts":"2024-05-10T10:00:00Z"}
{"event_id":"bad2","type":"impression","ts":"2024-05-10T10:00:00Z","visitor_id":"a","placement":"p","kind":"banner"}
{"event_id":"bad3","type":"order","ts":"2024-05-10T10:00:00Z","visitor_id":"a","order_id":"o","revenue":"1.23456"}
{"event_id":"bad4","type":"page_view","ts":"2024-05-10 10:00","visitor_id":"a"}
not json at all

{"event_id":"bad5","type":"order","ts":1715335200000,"visitor_id":"a","order_id":"o","revenue":5,"items":[{"item":"x","price":"-1"}]}
{"event_id":"ok2","type":"order","ts":1715335200000,"visitor_id":"a","order_id":"o","revenue":5}
{"event_id":"ok1","type":"page_view","ts":"2024-05-11T10:00:00Z","visitor_id":"b"}
"#;

#[test]
fn import_rejects_bad_events_with_reasons_and_keeps_the_good_ones() {
    let data = tempfile::tempdir().expect("temp dir");
    let created = stdout(&upshot(data.path(), &["site", "create", "shop", "--format", "json"]));
    let keys: serde_json::Value = serde_json::from_str(&created).expect("keys as JSON");
    assert!(keys["secret_key"].as_str().is_some_and(|key| key.starts_with("up_sec_")));
    let file = data.path().join("events.ndjson");
    std::fs::write(&file, EVENTS).expect("write events");
    let path = file.to_str().expect("UTF-8 path");
    let printed = stdout(&upshot(data.path(), &["import", "--site", "shop", path]));
    assert!(printed.contains("2 taken, 1 duplicate, 6 rejected"), "{printed}");
    let rejects = std::fs::read_to_string(data.path().join("sites/shop/rejects.ndjson")).expect("rejects file");
    let fields: Vec<String> = rejects
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("reject is JSON")["field"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(fields, ["visitor_id", "kind", "revenue", "ts", "event", "items[0].price"]);
    let again = stdout(&upshot(data.path(), &["import", "--site", "shop", path]));
    assert!(again.contains("0 taken, 3 duplicate, 6 rejected"), "{again}");
    let report = stdout(&upshot(
        data.path(),
        &["report", "--site", "shop", "--from", "2024-05-10", "--to", "2024-05-10", "--format", "json"],
    ));
    let report: serde_json::Value = serde_json::from_str(&report).expect("report JSON");
    assert_eq!(report["overview"]["orders"], 1);
    assert_eq!(report["overview"]["visitors"], 1);
    assert_eq!(report["overview"]["revenue"], 5);
}

#[test]
fn site_settings_are_validated_and_shown() {
    let data = tempfile::tempdir().expect("temp dir");
    stdout(&upshot(data.path(), &["site", "create", "shop", "--timezone", "Europe/Berlin", "--currency", "EUR"]));
    let bad = upshot(data.path(), &["site", "set", "shop", "session_gap", "soon"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("session_gap"), "error names the setting");
    let bad_zone = upshot(data.path(), &["site", "create", "other", "--timezone", "Mars/Base"]);
    assert!(String::from_utf8_lossy(&bad_zone.stderr).contains("IANA"));
    stdout(&upshot(data.path(), &["site", "set", "shop", "experiment.hero.control", "baseline"]));
    let shown = stdout(&upshot(data.path(), &["site", "show", "shop"]));
    assert!(
        shown.contains("Europe/Berlin") && shown.contains("experiment.hero.control") && shown.contains("baseline"),
        "{shown}"
    );
    let unknown = upshot(data.path(), &["report", "--site", "nope", "--from", "2024-05-01", "--to", "2024-05-02"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("site create"), "error says how to fix it");
}

#[test]
fn table_and_csv_formats_render_the_same_report() {
    let data = tempfile::tempdir().expect("temp dir");
    stdout(&upshot(data.path(), &["site", "create", "shop"]));
    let file = data.path().join("gen.ndjson");
    stdout(&upshot(data.path(), &["gen", "--visitors", "300", "--days", "10", "--out", file.to_str().expect("path")]));
    stdout(&upshot(data.path(), &["import", "--site", "shop", file.to_str().expect("path")]));
    let range = ["report", "--site", "shop", "--from", "2024-05-01", "--to", "2024-05-10"];
    let table = stdout(&upshot(data.path(), &[&range[..], &["--format", "table"]].concat()));
    assert!(table.contains("Placements") && table.contains("home_recs (recommendation)") && table.contains("USD"));
    let csv = stdout(&upshot(data.path(), &[&range[..], &["--format", "csv"]].concat()));
    assert!(csv.starts_with("section,row,figure,value\n"));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&upshot(data.path(), &[&range[..], &["--format", "json"]].concat())))
            .expect("json");
    let sessions = json["overview"]["sessions"].as_u64().expect("sessions");
    assert!(csv.contains(&format!("overview,,sessions,{sessions}\n")), "csv carries the same sessions figure");
    let impressions = json["placements"][0]["impressions"].as_u64().expect("impressions");
    let name = json["placements"][0]["placement"].as_str().expect("name");
    assert!(csv.contains(&format!("placements,{name},impressions,{impressions}\n")));
}

#[test]
fn import_reads_json_arrays_gzip_and_stdin() {
    use std::io::Write;
    let data = tempfile::tempdir().expect("temp dir");
    stdout(&upshot(data.path(), &["site", "create", "shop"]));
    let array = data.path().join("batch.json");
    std::fs::write(
        &array,
        r#" [{"event_id":"j1","type":"page_view","ts":"2024-05-10T10:00:00Z","visitor_id":"a"}, 42,
            {"event_id":"j2","type":"page_view","ts":"2024-05-10T10:01:00Z","visitor_id":"a"}]"#,
    )
    .expect("write array");
    let printed = stdout(&upshot(data.path(), &["import", "--site", "shop", array.to_str().expect("path")]));
    assert!(printed.contains("2 taken, 0 duplicate, 1 rejected"), "{printed}");
    let gzipped = data.path().join("more.ndjson.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&gzipped).expect("create"), flate2::Compression::fast());
    encoder
        .write_all(b"{\"event_id\":\"g1\",\"type\":\"page_view\",\"ts\":1715335200000,\"visitor_id\":\"b\"}\n")
        .expect("compress");
    encoder.finish().expect("finish gzip");
    let printed = stdout(&upshot(data.path(), &["import", "--site", "shop", gzipped.to_str().expect("path")]));
    assert!(printed.contains("1 taken, 0 duplicate, 0 rejected"), "{printed}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_upshot"))
        .arg("--data")
        .arg(data.path())
        .args(["import", "--site", "shop", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"{\"event_id\":\"s1\",\"type\":\"page_view\",\"ts\":1715335200000,\"visitor_id\":\"c\"}\n")
        .expect("write stdin");
    let printed = stdout(&child.wait_with_output().expect("finishes"));
    assert!(printed.contains("-: 1 taken"), "{printed}");
    let report = stdout(&upshot(
        data.path(),
        &["report", "--site", "shop", "--from", "2024-05-10", "--to", "2024-05-10", "--format", "json"],
    ));
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    assert_eq!(report["overview"]["visitors"], 3);
}

#[test]
fn forget_and_retain_change_the_report_durably() {
    let data = tempfile::tempdir().expect("temp dir");
    stdout(&upshot(data.path(), &["site", "create", "shop"]));
    let file = data.path().join("events.ndjson");
    std::fs::write(
        &file,
        concat!(
            r#"{"event_id":"1","type":"page_view","ts":"2024-05-01T10:00:00Z","visitor_id":"old"}"#,
            "\n",
            r#"{"event_id":"2","type":"page_view","ts":"2024-05-20T10:00:00Z","visitor_id":"a","profile_id":"alice"}"#,
            "\n",
            r#"{"event_id":"3","type":"page_view","ts":"2024-05-21T10:00:00Z","visitor_id":"a"}"#,
            "\n",
            r#"{"event_id":"4","type":"page_view","ts":"2024-05-21T10:00:00Z","visitor_id":"b"}"#,
            "\n",
        ),
    )
    .expect("write");
    stdout(&upshot(data.path(), &["import", "--site", "shop", file.to_str().expect("path")]));
    let visitors = || {
        let report = stdout(&upshot(
            data.path(),
            &["report", "--site", "shop", "--from", "2024-05-01", "--to", "2024-05-31", "--format", "json"],
        ));
        serde_json::from_str::<serde_json::Value>(&report).expect("json")["overview"]["visitors"]
            .as_u64()
            .expect("visitors")
    };
    assert_eq!(visitors(), 3);
    let forgot = stdout(&upshot(data.path(), &["forget", "--site", "shop", "--profile", "alice"]));
    assert!(forgot.contains("erased 2 events of profile alice"), "{forgot}");
    assert_eq!(visitors(), 2);
    let retained =
        stdout(&upshot(data.path(), &["retain", "--site", "shop", "--retain-days", "10", "--today", "2024-05-25"]));
    assert!(retained.contains("dropped 1 events"), "{retained}");
    assert_eq!(visitors(), 1);
}

#[test]
fn export_writes_ndjson_by_local_dates_and_parquet() {
    let data = tempfile::tempdir().expect("temp dir");
    stdout(&upshot(data.path(), &["site", "create", "shop", "--timezone", "America/New_York"]));
    let file = data.path().join("events.ndjson");
    std::fs::write(
        &file,
        concat!(
            r#"{"event_id":"1","type":"page_view","ts":"2024-05-02T03:59:59.999Z","visitor_id":"a"}"#, "\n",
            r#"{"event_id":"2","type":"page_view","ts":"2024-05-02T04:00:00Z","visitor_id":"a"}"#, "\n",
            r#"{"event_id":"3","type":"order","ts":"2024-05-03T03:59:59Z","visitor_id":"b","order_id":"o","revenue":"12.34"}"#, "\n",
        ),
    )
    .expect("write");
    stdout(&upshot(data.path(), &["import", "--site", "shop", file.to_str().expect("path")]));
    let exported =
        stdout(&upshot(data.path(), &["export", "--site", "shop", "--from", "2024-05-02", "--to", "2024-05-02"]));
    let ids: Vec<String> = exported
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("json")["event_id"].as_str().expect("id").to_string()
        })
        .collect();
    assert_eq!(ids, ["2", "3"], "local May 2 in New York is [04:00Z, next 04:00Z)");
    let parquet = data.path().join("events.parquet");
    let output = upshot(
        data.path(),
        &["export", "--site", "shop", "--format", "parquet", "--out", parquet.to_str().expect("path")],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("exported 3 events"));
    let bytes = std::fs::read(&parquet).expect("parquet file");
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"), "a Parquet file");
}

#[test]
fn site_show_into_a_closed_pipe_ends_quietly_not_with_a_panic() {
    let data = tempfile::tempdir().expect("temp dir");
    stdout(&upshot(data.path(), &["site", "create", "shop"]));
    // The reading end is closed before upshot writes anything: every write fails.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_upshot"))
        .arg("--data")
        .arg(data.path())
        .args(["site", "show", "shop"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !stderr.contains("panicked"), "{:?}: {stderr}", output.status);
}

#[test]
fn verify_of_a_mistyped_data_dir_fails_rather_than_finding_no_damage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("upshot-2024-06-01-0300");
    let output = upshot(&missing, &["verify"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an upshot data dir"));
    assert!(!missing.exists(), "nothing is created where nothing was");
}
