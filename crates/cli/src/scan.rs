//! Computing a site's report from the store on every core: the 16 visitor buckets of
//! the segments are shared out between threads, first to build the order book, then to
//! run the engine's workers, whose totals are merged at the end. Memory stays bounded
//! by one bucket of every segment per thread.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use upshot_engine::ingest::{add_bucket_to_order_book, run_bucket};
use upshot_engine::{add_to_order_book, OrderBook, Query, Report, ReportPlan};
use upshot_model::Event;
use upshot_store::segment::{bucket_of, sort_for_segment, BucketColumns, ColumnSet, SegmentFile, BUCKETS};
use upshot_store::{SiteRecord, Store};

/// The report, and what had to be skipped as damaged.
pub fn site_report(store: &Store, record: &SiteRecord, query: &Query) -> Result<(Report, Vec<String>)> {
    let plan = ReportPlan::new(&record.settings, query)?;
    let problems = Mutex::new(Vec::new());
    let note = |problem: String| problems.lock().expect("no thread panics while holding it").push(problem);
    let segments: Vec<SegmentFile> = store
        .site_segments(&record.site)
        .into_iter()
        .filter_map(|segment| segment.map_err(|error| note(error.to_string())).ok())
        .collect();
    let mut tail: Vec<Event> = Vec::new();
    let summary = store.scan_tail(record, |event| tail.push(event)).context("reading the log's unsealed events")?;
    summary.problems.into_iter().for_each(&note);
    sort_for_segment(&mut tail);
    let tail_of = |bucket: u32| {
        let start = tail.partition_point(|e| bucket_of(e.visitor_id.as_deref().unwrap_or("")) < bucket);
        let end = tail.partition_point(|e| bucket_of(e.visitor_id.as_deref().unwrap_or("")) <= bucket);
        &tail[start..end]
    };
    let load = |bucket: u32, columns: ColumnSet| -> Vec<BucketColumns> {
        segments
            .iter()
            .filter_map(|segment| match segment.bucket(bucket, columns) {
                Ok(loaded) => loaded,
                Err(error) => {
                    note(error.to_string());
                    None
                }
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, BUCKETS as usize);

    let next = AtomicU32::new(0);
    let books = parallel(threads, || {
        let mut book = OrderBook::default();
        while let Some(bucket) = take(&next) {
            for loaded in load(bucket, ColumnSet::OrdersAndRefunds) {
                if let Err(reason) = add_bucket_to_order_book(&mut book, &loaded) {
                    note(format!("bucket {bucket}: {reason}"));
                }
            }
        }
        book
    });
    let mut book = OrderBook::default();
    books.into_iter().for_each(|partial| book.merge(partial));
    tail.iter().for_each(|event| add_to_order_book(&mut book, event));

    let next = AtomicU32::new(0);
    let workers = parallel(threads, || {
        let mut worker = plan.worker();
        while let Some(bucket) = take(&next) {
            let loaded = load(bucket, ColumnSet::All);
            if let Err(reason) = run_bucket(&mut worker, &plan, &book, &loaded, tail_of(bucket)) {
                note(format!("bucket {bucket}: {reason}"));
            }
        }
        worker
    });
    let report = plan.finish(workers);
    let mut problems = problems.into_inner().expect("no thread panicked");
    problems.sort();
    problems.dedup();
    Ok((report, problems))
}

fn take(next: &AtomicU32) -> Option<u32> {
    let bucket = next.fetch_add(1, Ordering::Relaxed);
    (bucket < BUCKETS).then_some(bucket)
}

/// Runs `work` on `threads` threads and collects their results.
fn parallel<T: Send>(threads: usize, work: impl Fn() -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(&work)).collect();
        handles.into_iter().map(|handle| handle.join().expect("a report thread panicked")).collect()
    })
}
