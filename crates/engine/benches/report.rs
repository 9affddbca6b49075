//! `cargo bench -p upshot-engine`: the full report over a generated shop.
//! Prints the median of several runs and events per second. Set `UPSHOT_BENCH_VISITORS`
//! to change the shop's size (default 50,000 visitors, about a million events).

use std::time::{Duration, Instant};

use upshot_engine::{compute_report, Dataset, Model, Query};
use upshot_gen::{GenOptions, Generator};
use upshot_model::{parse_event_value, ParseContext, Settings};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let visitors = std::env::var("UPSHOT_BENCH_VISITORS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let options = GenOptions { seed: 42, visitors, days: 60, ..GenOptions::default() };
    let context = ParseContext { currency: "USD".into() };
    let mut events = Vec::new();
    Generator::new(options).run(|value| events.push(parse_event_value(&value, &context).expect("valid")));
    let count = events.len();

    let mut build_times = Vec::new();
    let mut dataset = Dataset::new();
    for _ in 0..3 {
        let started = Instant::now();
        dataset = Dataset::from_events(&events);
        build_times.push(started.elapsed());
    }
    drop(events);
    let query = Query {
        from: jiff::civil::date(2024, 5, 1),
        to: jiff::civil::date(2024, 6, 29),
        time_zone: jiff::tz::TimeZone::UTC,
        time_zone_name: "UTC".into(),
        currency: "USD".into(),
        model: Model::Last,
        page_type: None,
        placement: None,
        kind: None,
    };
    let settings = Settings::default();
    let mut report_times = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let report = compute_report(&dataset, &settings, &query).expect("valid query");
        report_times.push(started.elapsed());
        std::hint::black_box(report);
    }
    let (build, report) = (median(build_times), median(report_times));
    let rate = |time: Duration| count as f64 / time.as_secs_f64();
    println!("events: {count}");
    println!("dataset build (intern, sort by visitor/time): median {build:?}, {:.0} events/s", rate(build));
    println!("full report (last model, 60 days):           median {report:?}, {:.0} events/s", rate(report));
}
