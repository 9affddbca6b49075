//! Saved day partials through the binary (ADR 0008): `rebuild-partials` saves them, a
//! report of any range of a kept lens reads them and prints the pass's figures byte for
//! byte; a late event makes them outdated (the next report reads every event and has
//! it); a damaged file is ignored with a warning; a data dir of the previous release
//! (segment entries without content digests) gets them on open, also after a migration
//! cut short.

use std::path::Path;
use std::process::{Command, Output};

use upshot_gen::{generate_events, GenOptions};
use upshot_store::Store;

fn upshot(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_upshot")).arg("--data").arg(data).args(args).output().expect("the binary runs")
}

fn report(data: &Path, from: &str, to: &str, model: &str) -> (String, String) {
    let args = ["report", "--site", "shop", "--from", from, "--to", to, "--model", model, "--format", "json"];
    let output = upshot(data, &args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A generated shop over several sealed segments and an unsealed tail.
fn shop(data: &Path) {
    let events = generate_events(GenOptions { seed: 12, visitors: 300, days: 20, ..GenOptions::default() });
    let mut store = Store::open(data).expect("a new data dir");
    let (record, _) = store.create_site("shop", "UTC", "USD").expect("a site");
    for (index, chunk) in events.chunks(events.len() / 3 + 1).enumerate() {
        store.append_events(&record, chunk).expect("append");
        if index < 2 {
            store.seal().expect("seal");
        }
    }
}

const RANGES: [(&str, &str, &str); 4] = [
    ("2024-05-01", "2024-05-31", "last"),
    ("2024-05-07", "2024-05-07", "first"),
    ("2024-05-03", "2024-05-16", "time_decay"),
    ("2024-04-20", "2024-05-12", "position"),
];

fn saved_partials(data: &Path) -> std::path::PathBuf {
    data.join("sites/shop/derived/day-partials")
}

#[test]
fn reports_from_saved_partials_equal_the_pass_and_a_late_event_is_in_the_next_report() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let data = dir.path();
    shop(data);
    let by_pass: Vec<String> = RANGES.iter().map(|(from, to, model)| report(data, from, to, model).0).collect();
    let built = upshot(data, &["rebuild-partials", "--site", "shop"]);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    assert!(String::from_utf8_lossy(&built.stdout).contains("built day partials of site shop"));
    assert!(saved_partials(data).is_file());
    for ((from, to, model), expected) in RANGES.iter().zip(&by_pass) {
        assert_eq!(&report(data, from, to, model).0, expected, "{from}..{to} {model}");
    }
    // A late refund of an order: the saved partials no longer match the events.
    let first_report: serde_json::Value = serde_json::from_str(&by_pass[0]).expect("JSON");
    let order = &first_report["recent_conversions"][0];
    let refund = serde_json::json!({"event_id": "late-refund", "type": "refund", "ts": "2024-06-25T00:00:00Z",
        "visitor_id": order["visitor_id"], "order_id": order["order_id"], "cancel": true});
    let file = dir.path().join("refund.ndjson");
    std::fs::write(&file, format!("{refund}\n")).expect("a file");
    let imported = upshot(data, &["import", "--site", "shop", file.to_str().expect("a path")]);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let (after, _) = report(data, "2024-05-01", "2024-05-31", "last");
    let after: serde_json::Value = serde_json::from_str(&after).expect("JSON");
    let (before, refunded) = (first_report["overview"]["revenue"].as_f64(), order["revenue"].as_f64());
    let expected = before.expect("revenue") - refunded.expect("revenue");
    assert!((after["overview"]["revenue"].as_f64().expect("revenue") - expected).abs() < 0.005);
    // Rebuilt, they give the new figures again.
    assert!(upshot(data, &["rebuild-partials", "--site", "shop"]).status.success());
    let (rebuilt, _) = report(data, "2024-05-01", "2024-05-31", "last");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&rebuilt).ok(), Some(after));
    // Proof that they are what answers: with a segment's events gone from its file
    // (bit rot the manifest cannot see), the partials still give the same figures.
    let segment = std::fs::read_dir(data.join("sites/shop/segments"))
        .expect("segments")
        .flat_map(|day| std::fs::read_dir(day.expect("a day").path()).expect("a day's files"))
        .map(|file| file.expect("a file").path())
        .next()
        .expect("a segment");
    std::fs::write(&segment, b"gone").expect("written");
    assert_eq!(report(data, "2024-05-01", "2024-05-31", "last").0, rebuilt);
}

#[test]
fn damaged_saved_partials_are_ignored_with_a_warning() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let data = dir.path();
    shop(data);
    let (expected, _) = report(data, "2024-05-02", "2024-05-20", "linear");
    assert!(upshot(data, &["rebuild-partials", "--site", "shop"]).status.success());
    let mut bytes = std::fs::read(saved_partials(data)).expect("saved partials");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(saved_partials(data), bytes).expect("written");
    let (got, warnings) = report(data, "2024-05-02", "2024-05-20", "linear");
    assert_eq!(got, expected, "the pass's figures");
    assert!(warnings.contains("checksum") && warnings.contains("rebuild-partials"), "{warnings}");
    let verified = upshot(data, &["verify"]);
    assert!(!verified.status.success());
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(said.contains("day-partials") && said.contains("rebuild-partials --site shop"), "{said}");
}

#[test]
fn a_data_dir_of_the_previous_release_gets_content_digests_even_after_a_migration_cut_short() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let data = dir.path();
    shop(data);
    let (expected, _) = report(data, "2024-05-01", "2024-05-31", "last");
    // The previous release wrote no content digests; a migration killed half-way left
    // some entries with one and some without.
    let manifest_path = data.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("a manifest")).expect("JSON");
    let segments = manifest["segments"].as_array_mut().expect("segments");
    assert!(segments.len() >= 2);
    for (index, entry) in segments.iter_mut().enumerate() {
        if index % 2 == 0 {
            entry.as_object_mut().expect("an entry").remove("content");
        }
    }
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest).expect("JSON")).expect("written");
    let built = upshot(data, &["rebuild-partials", "--site", "shop"]);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let manifest = std::fs::read_to_string(&manifest_path).expect("a manifest");
    let entries = manifest.matches("\"file\"").count();
    assert_eq!(manifest.matches("\"content\"").count(), entries, "every entry has its digest again");
    assert_eq!(report(data, "2024-05-01", "2024-05-31", "last").0, expected);
}

#[test]
fn forgetting_a_person_removes_the_saved_partials_that_may_hold_them() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let data = dir.path();
    shop(data);
    assert!(upshot(data, &["rebuild-partials", "--site", "shop"]).status.success());
    assert!(saved_partials(data).is_file());
    let (report_text, _) = report(data, "2024-05-01", "2024-05-31", "last");
    let report_value: serde_json::Value = serde_json::from_str(&report_text).expect("JSON");
    let visitor = report_value["recent_conversions"][0]["visitor_id"].as_str().expect("a visitor").to_string();
    let forgotten = upshot(data, &["forget", "--site", "shop", "--visitor", &visitor]);
    assert!(forgotten.status.success(), "{}", String::from_utf8_lossy(&forgotten.stderr));
    assert!(!saved_partials(data).exists(), "erased with the person");
    let (after, _) = report(data, "2024-05-01", "2024-05-31", "last");
    assert!(!after.contains(&format!("\"{visitor}\"")), "the person is gone from the report");
}
