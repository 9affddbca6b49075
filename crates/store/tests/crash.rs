//! Crash test with real processes: a child appends batches and prints `ack N` after each
//! durable append, sealing and compacting as it goes; the parent kills it with SIGKILL at random moments, round after
//! round (each new child recovers the log and re-sends a batch it may or may not have
//! written), then checks that every acknowledged batch is present, every event exactly
//! once, and no batch half-present.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use upshot_model::{parse_event_line, Event, ParseContext};
use upshot_store::Store;

const CHILD_ENV: &str = "UPSHOT_CRASH_CHILD_DIR";
const ROUND_ENV: &str = "UPSHOT_CRASH_CHILD_ROUND";
const EVENTS_PER_BATCH: usize = 8;
const ROUNDS: u64 = 200;

fn batch(number: u64) -> Vec<Event> {
    let context = ParseContext { currency: "USD".into() };
    (0..EVENTS_PER_BATCH)
        .map(|index| {
            let line = format!(
                r#"{{"event_id":"b{number}-e{index}","type":"page_view","ts":{},"visitor_id":"v{}"}}"#,
                1_700_000_000_000 + number as i64 * 1000 + index as i64,
                number % 17
            );
            parse_event_line(&line, &context).expect("valid event")
        })
        .collect()
}

/// The child's part: append batches round*1000, round*1000+1, ... until killed, after
/// re-sending the previous round's first batch (a retry that must not duplicate).
#[test]
fn crash_writer_child() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_ENV), std::env::var(ROUND_ENV)) else {
        return; // Only meaningful when started by the parent below.
    };
    let round: u64 = round.parse().expect("round number");
    let mut store = Store::open(&dir).expect("child opens the store");
    let record = store.load_site("shop").expect("site exists");
    if round > 0 {
        store.append_events(&record, &batch((round - 1) * 1000)).expect("retry append");
    }
    for number in round * 1000.. {
        store.append_events(&record, &batch(number)).expect("append");
        println!("ack {number}");
    }
}

struct Jitter(u64);

impl Jitter {
    fn next_millis(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[test]
fn every_acknowledged_event_survives_sigkill_exactly_once() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    Store::open(dir.path()).expect("store").create_site("shop", "UTC", "USD").expect("site");
    let test_binary = std::env::current_exe().expect("test binary path");
    let mut acknowledged = BTreeSet::new();
    let mut jitter = Jitter(0x2545_F491_4F6C_DD1D);
    for round in 0..ROUNDS {
        let mut child = Command::new(&test_binary)
            .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("child starts");
        std::thread::sleep(Duration::from_millis(5 + jitter.next_millis(40)));
        child.kill().expect("SIGKILL the child");
        let mut output = String::new();
        child.stdout.take().expect("stdout").read_to_string(&mut output).expect("read child output");
        child.wait().expect("child reaped");
        // Only whole lines count: a line cut by the kill was never fully acknowledged.
        let whole = output.rsplit_once('\n').map_or("", |(whole, _)| whole);
        for line in whole.lines() {
            if let Some(number) = line.strip_prefix("ack ") {
                acknowledged.insert(number.parse::<u64>().expect("batch number"));
            }
        }
    }
    let store = Store::open(dir.path()).expect("store reopens after the last kill");
    let record = store.load_site("shop").expect("site");
    let mut per_batch: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    store
        .scan_events(&record, |event| {
            assert!(seen.insert(event.event_id.clone()), "event {} stored twice", event.event_id);
            let number = event.event_id[1..].split('-').next().and_then(|n| n.parse().ok()).expect("batch id");
            per_batch.entry(number).or_default().insert(event.event_id);
        })
        .expect("scan");
    assert!(
        acknowledged.len() as u64 >= ROUNDS / 2,
        "the children acknowledged too little to test: {}",
        acknowledged.len()
    );
    for number in &acknowledged {
        assert!(per_batch.contains_key(number), "acknowledged batch {number} is missing");
    }
    for (number, events) in &per_batch {
        assert_eq!(events.len(), EVENTS_PER_BATCH, "batch {number} is half-present");
    }
}
