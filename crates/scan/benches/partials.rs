//! Reports from day partials against the full pass, side by side on one data dir
//! (ADR 0008). Needs a data dir made by `upshot gen ... | upshot --data D import --site S -`:
//!
//!     UPSHOT_BENCH_DATA=D UPSHOT_BENCH_SITE=shop cargo bench -p upshot-scan --bench partials
//!
//! Prints, for the whole stored history and for its last 30 days: the median of
//! `UPSHOT_BENCH_RUNS` (default 5) reports by the full pass and from the partials;
//! then the time to build the partials of one lens and of the kept ones (every model
//! under every page type),
//! and the peak memory.

use std::time::{Duration, Instant};

use upshot_engine::Query;
use upshot_scan::{ReportParams, Snapshot};
use upshot_store::Store;

/// The median of `runs` timings of `work`, in seconds.
fn median_of(runs: usize, mut work: impl FnMut()) -> f64 {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2].as_secs_f64()
}

fn peak_memory_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn main() {
    let Ok(data) = std::env::var("UPSHOT_BENCH_DATA") else {
        eprintln!("set UPSHOT_BENCH_DATA to a data dir (and UPSHOT_BENCH_SITE to its site) to run this benchmark");
        return;
    };
    let site = std::env::var("UPSHOT_BENCH_SITE").unwrap_or_else(|_| "shop".into());
    let runs: usize = std::env::var("UPSHOT_BENCH_RUNS").ok().and_then(|text| text.parse().ok()).unwrap_or(5);
    let store = Store::open_read_only(&data).expect("the data dir opens");
    let record = store.load_site(&site).expect("the site exists");
    let snapshot = Snapshot::take(&store, &record).expect("a snapshot");
    let (first, last) = snapshot.time_span().expect("events");
    let date =
        |ts: i64| jiff::Timestamp::from_millisecond(ts).expect("an instant").to_zoned(jiff::tz::TimeZone::UTC).date();
    let (from, to) = (date(first), date(last));
    let month_from = to.checked_sub(jiff::Span::new().days(29)).expect("a date");
    let query = |from: jiff::civil::Date, model: &str, page_type: Option<&str>| {
        ReportParams {
            from: from.to_string(),
            to: to.to_string(),
            page_type: page_type.map(str::to_string),
            model: Some(model.to_string()),
            ..ReportParams::default()
        }
        .query(&record, str::to_string)
        .expect("a valid query")
    };
    let whole = query(from, "last", None);
    let month = query(month_from, "last", None);

    let started = Instant::now();
    let (one_lens, _) =
        snapshot.day_partials(&record.settings, std::slice::from_ref(&whole)).expect("partials").expect("events");
    let build_one = started.elapsed();
    let lenses: Vec<Query> = upshot_scan::saved::default_lenses(&record);
    let started = Instant::now();
    let (_all_lenses, _) = snapshot.day_partials(&record.settings, &lenses).expect("partials").expect("events");
    let build_all = started.elapsed();

    println!("| range | full pass (median of {runs}) | from partials (median of {runs}) | ratio |");
    println!("|---|---|---|---|");
    for (name, wanted) in [("whole history", &whole), ("last 30 days", &month)] {
        let pass = median_of(runs, || drop(snapshot.report(&record.settings, wanted).expect("a report")));
        let summed =
            median_of(runs, || drop(one_lens.report(&record.settings, wanted).expect("the partials answer it")));
        println!("| {name} ({}) | {:.3} s | {:.4} s | {:.0}x |", wanted.from, pass, summed, pass / summed);
        let (expected, _) = snapshot.report(&record.settings, wanted).expect("a report");
        let got = one_lens.report(&record.settings, wanted).expect("the partials answer it");
        assert_eq!(
            serde_json::to_value(&got).expect("json"),
            serde_json::to_value(&expected).expect("json"),
            "the partials' report equals the pass's"
        );
    }
    println!();
    println!(
        "build, one lens: {:.2} s; the {} kept lenses: {:.2} s",
        build_one.as_secs_f64(),
        lenses.len(),
        build_all.as_secs_f64()
    );
    println!("peak memory: {} MB", peak_memory_mb());
}
