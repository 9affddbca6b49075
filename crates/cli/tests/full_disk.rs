//! A full disk mid-import: writes fail (here through a file-size limit, which makes
//! them fail with EFBIG exactly where a full disk gives ENOSPC). The import stops with
//! an error naming the file, nothing already taken is lost or damaged, and a later
//! import, with room again, goes on where the data stands.

use std::path::Path;
use std::process::{Command, Output};

fn upshot(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_upshot")).arg("--data").arg(data).args(args).output().expect("the binary runs")
}

fn page_views(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "{{\"event_id\":\"{prefix}-{i}\",\"type\":\"page_view\",\"ts\":{},\"visitor_id\":\"{prefix}-v{}\",\"url\":\"https://shop.example/{}\"}}\n",
                1_715_335_200_000_i64 + i as i64 * 1000,
                i % 5000,
                "x".repeat(40)
            )
        })
        .collect()
}

fn sessions(data: &Path) -> u64 {
    let output =
        upshot(data, &["report", "--site", "shop", "--from", "2024-05-10", "--to", "2024-05-12", "--format", "json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    report["overview"]["sessions"].as_u64().expect("sessions")
}

#[test]
fn a_full_disk_stops_the_import_with_a_clear_error_and_loses_nothing_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    assert!(upshot(&data, &["site", "create", "shop"]).status.success());
    let first = dir.path().join("first.ndjson");
    std::fs::write(&first, page_views("a", 100)).expect("write");
    assert!(upshot(&data, &["import", "--site", "shop", first.to_str().expect("path")]).status.success());
    let before = sessions(&data);
    assert_eq!(before, 100);

    // 40,000 events need a log record of several MB; allow files of 256 KiB only.
    let second = dir.path().join("second.ndjson");
    std::fs::write(&second, page_views("b", 40_000)).expect("write");
    let script = format!(
        "trap '' XFSZ; ulimit -f 256; exec '{}' --data '{}' import --site shop '{}'",
        env!("CARGO_BIN_EXE_upshot"),
        data.display(),
        second.display()
    );
    let output = Command::new("bash").args(["-c", &script]).output().expect("bash runs");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the import must fail when the disk is full");
    assert!(said.contains("wal") && said.contains("File too large"), "the error names the file and the cause: {said}");

    assert_eq!(sessions(&data), before, "what was taken before is intact, nothing half-written shows");
    let verify = upshot(&data, &["verify"]);
    let verified = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && verified.contains("no damage found"), "{verified}");

    // With room again the same file imports completely, once.
    let retry = upshot(&data, &["import", "--site", "shop", second.to_str().expect("path")]);
    assert!(retry.status.success(), "{}", String::from_utf8_lossy(&retry.stderr));
    assert!(String::from_utf8_lossy(&retry.stdout).contains("40000 taken, 0 duplicate"));
    // Each visitor's events are 5,000 s apart: every event is a session of its own.
    assert_eq!(sessions(&data), before + 40_000);
}
