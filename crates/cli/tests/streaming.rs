//! The report the binary computes from the store (segments scanned bucket by bucket on
//! several threads, merged with the log's unsealed tail) equals the in-memory engine's
//! on the same events, figure for figure, for generated shops spread over many
//! segments.

use std::process::Command;

use upshot_engine::{compute_report, Dataset, Model, Query};
use upshot_gen::{generate_events, GenOptions};
use upshot_model::{Event, Kind, Settings};
use upshot_store::Store;

fn events(seed: u64) -> Vec<Event> {
    generate_events(GenOptions {
        seed,
        visitors: 400,
        days: 20,
        edge_cases: seed.is_multiple_of(2),
        ..GenOptions::default()
    })
}

#[test]
fn store_scan_on_all_cores_equals_the_in_memory_engine() {
    for seed in [3, 4] {
        let all = events(seed);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("store");
        let (record, _) = store.create_site("shop", "UTC", "USD").expect("site");
        // Three sealed generations (several segments a day) and an unsealed tail.
        for (index, chunk) in all.chunks(all.len() / 4 + 1).enumerate() {
            store.append_events(&record, chunk).expect("append");
            if index < 3 {
                store.seal().expect("seal");
            }
        }
        drop(store);
        let dataset = Dataset::from_events(&all);
        for (model, page_type, kind) in [
            ("last", None, None),
            ("time_decay", None, None),
            ("position", Some("product"), None),
            ("linear", None, Some("recommendation")),
        ] {
            let mut args = vec![
                "report",
                "--site",
                "shop",
                "--from",
                "2024-05-03",
                "--to",
                "2024-05-18",
                "--format",
                "json",
                "--model",
                model,
            ];
            if let Some(page_type) = page_type {
                args.extend(["--page-type", page_type]);
            }
            if let Some(kind) = kind {
                args.extend(["--kind", kind]);
            }
            let output = Command::new(env!("CARGO_BIN_EXE_upshot"))
                .arg("--data")
                .arg(dir.path())
                .args(&args)
                .output()
                .expect("runs");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            let streamed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
            let query = Query {
                model: Model::parse(model).expect("model"),
                page_type: page_type.map(str::to_string),
                kind: kind.and_then(Kind::parse),
                ..Query::utc(jiff::civil::date(2024, 5, 3), jiff::civil::date(2024, 5, 18))
            };
            let in_memory = compute_report(&dataset, &Settings::default(), &query).expect("report");
            let in_memory = serde_json::to_value(in_memory).expect("json");
            let mut differences = Vec::new();
            diff("", &streamed, &in_memory, &mut differences);
            assert!(
                differences.is_empty(),
                "seed {seed}, model {model}: store report differs:\n{}",
                differences.join("\n")
            );
        }
    }
}

/// Paths where two JSON values differ (store first, in-memory second).
fn diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                diff(
                    &format!("{path}.{key}"),
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (index, (a, b)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{index}]"), a, b, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}
