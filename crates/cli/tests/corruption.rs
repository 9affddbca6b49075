//! Damage on disk: a flipped byte in a segment and a truncated log file are named by
//! `verify` (file and column), and reports still read everything else.

use std::path::Path;
use std::process::{Command, Output};

fn upshot(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_upshot")).arg("--data").arg(data).args(args).output().expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn page_views(day: u32, count: usize, prefix: &str) -> String {
    (0..count)
        .map(|i| format!("{{\"event_id\":\"{prefix}{i}\",\"type\":\"page_view\",\"ts\":\"2024-05-{day:02}T10:00:{:02}Z\",\"visitor_id\":\"{prefix}v{i}\"}}\n", i % 60))
        .collect()
}

/// The report's sessions and what it said on stderr; it must exit non-zero exactly when
/// it left damaged data out (and say so in its JSON's `warnings`).
fn sessions(data: &Path) -> (u64, String) {
    let output =
        upshot(data, &["report", "--site", "shop", "--from", "2024-05-01", "--to", "2024-05-31", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let warned = report["warnings"].as_array().is_some_and(|warnings| !warnings.is_empty());
    assert_eq!(output.status.success(), !warned, "{}", text(&output));
    (report["overview"]["sessions"].as_u64().expect("sessions"), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn damage_is_named_precisely_and_the_rest_stays_readable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    assert!(upshot(data, &["site", "create", "shop"]).status.success());
    for (day, prefix) in [(10, "a"), (11, "b")] {
        let file = data.join(format!("{prefix}.ndjson"));
        std::fs::write(&file, page_views(day, 20, prefix)).expect("write");
        assert!(upshot(data, &["import", "--site", "shop", file.to_str().expect("path")]).status.success());
    }
    assert_eq!(sessions(data).0, 40);
    let clean = upshot(data, &["verify"]);
    assert!(clean.status.success() && text(&clean).contains("no damage found"), "{}", text(&clean));

    // Flip one byte inside the day-10 segment's event_ids column.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("manifest.json")).expect("manifest")).expect("json");
    let entry =
        manifest["segments"].as_array().expect("segments").iter().find(|e| e["day"] == "2024-05-10").expect("day 10");
    let segment = data.join(entry["file"].as_str().expect("file"));
    let bytes = std::fs::read(&segment).expect("read segment");
    let header_length = u32::from_le_bytes(bytes[10..14].try_into().expect("4 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[14..14 + header_length]).expect("header");
    let column = header["buckets"][0]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["name"] == "event_ids")
        .expect("column");
    let mut damaged = bytes.clone();
    damaged[column["offset"].as_u64().expect("offset") as usize + 2] ^= 0x10;
    std::fs::write(&segment, &damaged).expect("write damaged segment");

    let report = upshot(data, &["verify"]);
    assert!(!report.status.success(), "verify fails on damage");
    let said = text(&report);
    assert!(
        said.contains(&segment.display().to_string()) && said.contains("event_ids") && said.contains("checksum"),
        "{said}"
    );
    let (readable, warning) = sessions(data);
    assert!((20..40).contains(&readable), "day 11 and the undamaged buckets of day 10 are still read: {readable}");
    assert!(warning.contains("skipped damaged data") && warning.contains("event_ids"), "{warning}");
    let export = upshot(data, &["export", "--site", "shop", "--format", "ndjson"]);
    assert!(!export.status.success() && text(&export).contains("left out 1 damaged part"), "{}", text(&export));

    // The log's last file ends in half a record (as after a crash mid-write): verify
    // reports an unfinished write, the next writer cuts it off, and nothing else moves.
    std::fs::write(&segment, &bytes).expect("repair the segment");
    let log_dir = data.join("wal");
    let logs: Vec<_> = std::fs::read_dir(&log_dir).expect("wal dir").map(|e| e.expect("entry").path()).collect();
    assert_eq!(logs.len(), 1, "after sealing one current log file remains");
    let mut log = std::fs::read(&logs[0]).expect("read log");
    log.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&logs[0], &log).expect("write torn log");
    let said = text(&upshot(data, &["verify"]));
    assert!(said.contains("unfinished write") && said.contains("no damage found"), "{said}");
    assert_eq!(sessions(data).0, 40);
    let file = data.join("c.ndjson");
    std::fs::write(&file, page_views(12, 5, "c")).expect("write");
    let import = upshot(data, &["import", "--site", "shop", file.to_str().expect("path")]);
    assert!(text(&import).contains("cut off 7 bytes of an unfinished write"), "{}", text(&import));
    assert_eq!(sessions(data).0, 45);
    assert!(text(&upshot(data, &["verify"])).contains("no damage found"));
}
