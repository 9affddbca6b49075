//! `cargo bench -p upshot-engine`: the report over a generated shop held in memory.
//! Prints medians of several runs and events per second for: the whole in-memory report
//! (`compute_report`: events converted to the engine's form, order book, per-visitor
//! pass, finish), the conversion alone, and the per-visitor pass alone on visitors
//! already converted. One core. `UPSHOT_BENCH_VISITORS` sets the shop's size (default
//! 50,000 visitors, about a million events).

use std::time::{Duration, Instant};

use upshot_engine::{add_to_order_book, compute_report, Dataset, OrderBook, Query, ReportPlan, VisitorEvents};
use upshot_gen::{generate_events, GenOptions};
use upshot_model::Settings;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn timed<T>(runs: usize, mut work: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(work());
                started.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let visitors = std::env::var("UPSHOT_BENCH_VISITORS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let options = GenOptions { seed: 42, visitors, days: 60, ..GenOptions::default() };
    let events = generate_events(options);
    let count = events.len();
    let dataset = Dataset::from_events(&events);
    drop(events);
    let query = Query::utc(jiff::civil::date(2024, 5, 1), jiff::civil::date(2024, 6, 29));
    let settings = Settings::default();
    let plan = ReportPlan::new(&settings, &query).expect("valid query");
    let mut book = OrderBook::default();
    dataset.events.iter().for_each(|event| add_to_order_book(&mut book, event));

    let whole = timed(7, || compute_report(&dataset, &settings, &query).expect("valid query"));
    let mut base = plan.worker();
    let convert = |base: &mut upshot_engine::Worker| -> Vec<VisitorEvents> {
        dataset
            .visitors()
            .map(|group| {
                let mut visitor = VisitorEvents::default();
                visitor.clear(group[0].visitor_id.as_deref().unwrap_or(""));
                group.iter().for_each(|event| visitor.push_event(&mut base.dictionary, event));
                visitor.sort();
                visitor
            })
            .collect()
    };
    let conversion = timed(5, || convert(&mut base));
    let mut prepared = convert(&mut base);
    let pass = timed(7, || {
        let mut worker = plan.worker_with_dictionary(base.dictionary.clone());
        for visitor in prepared.iter_mut() {
            // Swapped in and out: the pass is timed, not copying the visitor.
            std::mem::swap(&mut worker.visitor, visitor);
            worker.end_visitor(&plan, &book);
            std::mem::swap(&mut worker.visitor, visitor);
        }
        plan.finish(vec![worker])
    });
    let rate = |time: Duration| count as f64 / time.as_secs_f64();
    println!("events: {count}");
    println!(
        "whole in-memory report (convert + order book + pass + finish): median {whole:?}, {:.0} events/s",
        rate(whole)
    );
    println!(
        "conversion into the engine's compact form:                  median {conversion:?}, {:.0} events/s",
        rate(conversion)
    );
    println!("per-visitor pass + finish on converted visitors:            median {pass:?}, {:.0} events/s", rate(pass));
}
