//! Golden cases: each `test_data/cases/<name>/` holds `events.ndjson`, a `case.json`
//! with the site's settings, the report runs and their hand-worked expectations, and
//! one snapshot of the whole JSON report per run (`<run>.report.json`). The real
//! `upshot` binary creates the site, imports and reports, end to end.
//!
//! `UPSHOT_UPDATE_SNAPSHOTS=1 cargo test --test golden` rewrites the snapshots; the
//! hand-worked `expect` values are never rewritten.

use std::path::{Path, PathBuf};
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

/// Resolves `a.b[key].c`: `[key]` picks the array element one of whose row-naming
/// fields equals `key`; `[3]` picks by position.
fn resolve<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split('.') {
        let (name, selector) = match part.split_once('[') {
            Some((name, rest)) => (name, Some(rest.trim_end_matches(']'))),
            None => (part, None),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        if let Some(selector) = selector {
            let array = current.as_array()?;
            current = match selector.parse::<usize>() {
                Ok(index) => array.get(index)?,
                Err(_) => array.iter().find(|row| {
                    [
                        "placement",
                        "kind",
                        "campaign",
                        "sequence",
                        "journey",
                        "experiment",
                        "variant",
                        "label",
                        "goal",
                        "date",
                        "order_id",
                    ]
                    .iter()
                    .any(|key| row.get(*key).and_then(Value::as_str) == Some(selector))
                })?,
            };
        }
    }
    Some(current)
}

fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(e)) => {
            let (a, e) = (a.as_f64().unwrap_or(f64::NAN), e.as_f64().unwrap_or(f64::NAN));
            (a - e).abs() <= 1e-9 * e.abs().max(1.0)
        }
        (Value::Array(a), Value::Array(e)) => a.len() == e.len() && a.iter().zip(e).all(|(a, e)| same(a, e)),
        _ => actual == expected,
    }
}

fn run_case(dir: &Path) -> Vec<String> {
    let case: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).expect("case.json exists"))
        .expect("case.json is JSON");
    let data = tempfile::tempdir().expect("temp dir");
    let site = &case["site"];
    let text =
        |value: &Value, key: &str, default: &str| value.get(key).and_then(Value::as_str).unwrap_or(default).to_string();
    upshot(
        data.path(),
        &[
            "site",
            "create",
            "case",
            "--timezone",
            &text(site, "timezone", "UTC"),
            "--currency",
            &text(site, "currency", "USD"),
        ],
    );
    if let Some(settings) = site.get("settings").and_then(Value::as_object) {
        for (key, value) in settings {
            upshot(data.path(), &["site", "set", "case", key, value.as_str().expect("settings are strings")]);
        }
    }
    let events = dir.join("events.ndjson");
    let imported = upshot(data.path(), &["import", "--site", "case", events.to_str().expect("UTF-8 path")]);
    let mut failures = Vec::new();
    if let Some(expected) = case.get("import").and_then(Value::as_str) {
        if !imported.contains(expected) {
            failures.push(format!("import printed {imported:?}, expected it to contain {expected:?}"));
        }
    }
    for run in case["runs"].as_array().expect("runs is an array") {
        let name = text(run, "name", "report");
        let query = &run["query"];
        let mut args = vec!["report".to_string(), "--site".into(), "case".into(), "--format".into(), "json".into()];
        for flag in ["from", "to", "model", "page_type", "placement", "kind", "segment"] {
            if let Some(value) = query.get(flag).and_then(Value::as_str) {
                args.push(format!("--{}", flag.replace('_', "-")));
                args.push(value.to_string());
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let report: Value = serde_json::from_str(&upshot(data.path(), &args)).expect("report is JSON");
        for (path, expected) in run["expect"].as_object().expect("expect is an object") {
            match resolve(&report, path) {
                Some(actual) if same(actual, expected) => {}
                // `null` on a row selector means the row is not listed.
                None if expected.is_null() && path.ends_with(']') => {}
                actual => failures.push(format!("{name}: {path} = {actual:?}, expected {expected}")),
            }
        }
        let snapshot = dir.join(format!("{name}.report.json"));
        let rendered = serde_json::to_string_pretty(&report).expect("serializes") + "\n";
        if std::env::var_os("UPSHOT_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&snapshot, &rendered).expect("snapshot written");
        } else {
            match std::fs::read_to_string(&snapshot) {
                Ok(stored) if stored == rendered => {}
                Ok(_) => failures.push(format!(
                    "{name}: report differs from {} (UPSHOT_UPDATE_SNAPSHOTS=1 to accept)",
                    snapshot.display()
                )),
                Err(_) => failures
                    .push(format!("{name}: no snapshot {} (UPSHOT_UPDATE_SNAPSHOTS=1 to write)", snapshot.display())),
            }
        }
    }
    failures
}

#[test]
fn golden_cases_match_hand_worked_figures() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test_data/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("test_data/cases exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.join("case.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "expected the golden cases under {}", root.display());
    let mut failures = Vec::new();
    for dir in &dirs {
        for failure in run_case(dir) {
            failures.push(format!("{}: {failure}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("?")));
        }
    }
    assert!(failures.is_empty(), "{} golden failures:\n{}", failures.len(), failures.join("\n"));
}
