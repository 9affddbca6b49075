//! `cargo bench -p upshot-server --bench ingest_load`: HTTP ingest on loopback with
//! durable acknowledgements, bounded in events and time.
//!
//! 1. Throughput: `UPSHOT_LOAD_CONNECTIONS` keep-alive connections (default 8) send
//!    batches of `UPSHOT_LOAD_BATCH` generated events (default 500) back to back, until
//!    `UPSHOT_LOAD_EVENTS` (default 3,000,000) are acknowledged. Prints events/s.
//! 2. Latency at half that rate (or at `UPSHOT_LOAD_LATENCY_RATE` events/s, e.g. half
//!    the 150,000 target): the same connections send on a fixed schedule (open
//!    loop, so a slow answer does not hide the ones queued behind it: latency counts
//!    from the scheduled send) for `UPSHOT_LOAD_LATENCY_SECONDS` (default 10). Prints
//!    the p50 / p99 / max acknowledgement latency.
//!
//! Server and clients share this machine's cores: the figures are conservative. The
//! allocator is the `upshot` binary's (mimalloc), so the server runs as it does there.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use upshot_server::{Limits, ServeOptions};
use upshot_store::Store;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Request bodies of `batch` NDJSON events each, from the generated shop.
fn bodies(events: usize, batch: usize) -> Vec<Arc<Vec<u8>>> {
    let options = upshot_gen::GenOptions {
        seed: 3,
        visitors: (events / 20).max(1) as u64,
        days: 30,
        start_ms: 1_700_000_000_000,
        lift: 0.1,
        currency: "USD".into(),
        edge_cases: false,
        end_ms: None,
    };
    let mut lines = Vec::with_capacity(events);
    upshot_gen::Generator::new(options).run(|value| {
        if lines.len() < events {
            lines.push(value.to_string());
        }
    });
    lines.chunks(batch).map(|chunk| Arc::new((chunk.join("\n") + "\n").into_bytes())).collect()
}

struct Connection {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    head: String,
}

impl Connection {
    fn open(address: SocketAddr, key: &str) -> Connection {
        let stream = TcpStream::connect(address).expect("the server accepts");
        stream.set_nodelay(true).expect("nodelay");
        let reader = BufReader::new(stream.try_clone().expect("a second handle"));
        let head = format!("POST /v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\nContent-Type: application/x-ndjson\r\n");
        Connection { stream, reader, head }
    }

    /// Sends one batch and reads the answer; returns the events taken.
    fn post(&mut self, body: &[u8]) -> u64 {
        let mut request = format!("{}Content-Length: {}\r\n\r\n", self.head, body.len()).into_bytes();
        request.extend_from_slice(body);
        self.stream.write_all(&request).expect("sending");
        let mut status = String::new();
        self.reader.read_line(&mut status).expect("a status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("a header");
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut answer = vec![0u8; length];
        self.reader.read_exact(&mut answer).expect("the body");
        let text = String::from_utf8_lossy(&answer);
        let taken = text.split("\"taken\":").nth(1).and_then(|rest| rest.split([',', '}']).next());
        taken.and_then(|count| count.trim().parse().ok()).expect("a taken count")
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1)]
}

fn main() {
    let connections = setting("UPSHOT_LOAD_CONNECTIONS", 8);
    let batch = setting("UPSHOT_LOAD_BATCH", 500);
    let events = setting("UPSHOT_LOAD_EVENTS", 3_000_000);
    let latency_seconds = setting("UPSHOT_LOAD_LATENCY_SECONDS", 10);
    eprintln!("generating {events} events...");
    let bodies = Arc::new(bodies(events * 2, batch));
    let dir = tempfile::tempdir().expect("a temporary dir");
    let store = Store::open(dir.path()).expect("a data dir");
    let (_, keys) = store.create_site("shop", "UTC", "USD").expect("a site");
    // UPSHOT_LOAD_CLICKHOUSE_URL: ship to that ClickHouse node (schema set up by
    // `upshot clickhouse init`) instead of sealing into the embedded store.
    let clickhouse = std::env::var("UPSHOT_LOAD_CLICKHOUSE_URL")
        .ok()
        .map(|url| upshot_clickhouse::Node::parse(&url).expect("UPSHOT_LOAD_CLICKHOUSE_URL is a node URL"));
    let clickhouse_node = clickhouse.clone();
    // The spool may hold every event sent: acknowledgements outpace shipping to a
    // cluster on the same two cores, and the end-to-end rate is what is measured here
    // (with the default bound, the collector answers 503 once 5M events wait).
    let limits = Limits {
        key_events_per_second: u32::MAX / 2,
        key_events_burst: u32::MAX / 2,
        spool_events_max: (events as u64 * 2).max(Limits::default().spool_events_max),
        ..Limits::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = upshot_server::start(
        store,
        ServeOptions { listen: "127.0.0.1:0".parse().expect("an address"), limits, admin_password: None, clickhouse },
        async move {
            let _ = stopped.await;
        },
    )
    .expect("the server starts");
    let address = server.address;

    // 1. Throughput, closed loop.
    let next = Arc::new(AtomicUsize::new(0));
    let batches = events / batch;
    let started = Instant::now();
    let taken: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|_| {
                let (next, bodies, key) = (next.clone(), bodies.clone(), keys.public_key.clone());
                scope.spawn(move || {
                    let mut connection = Connection::open(address, &key);
                    let mut taken = 0;
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= batches {
                            return taken;
                        }
                        taken += connection.post(&bodies[index]);
                    }
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("a client thread")).sum()
    });
    let elapsed = started.elapsed();
    let rate = taken as f64 / elapsed.as_secs_f64();
    println!(
        "throughput: {taken} events in {:.2} s = {:.0} events/s ({connections} connections, {batch} events a request)",
        elapsed.as_secs_f64(),
        rate
    );

    // With ClickHouse: how long until every acknowledged event is in the cluster.
    if let Some(node) = &clickhouse_node {
        let count = || -> u64 {
            let answer = node.execute("SELECT count() FROM upshot.events FORMAT TSV", b"").expect("a count");
            String::from_utf8_lossy(&answer).trim().parse().expect("a number")
        };
        while count() < taken {
            std::thread::sleep(Duration::from_millis(100));
        }
        let drained = started.elapsed();
        println!(
            "in ClickHouse: all {taken} events {:.2} s after the first was sent = {:.0} events/s end to end",
            drained.as_secs_f64(),
            taken as f64 / drained.as_secs_f64()
        );
    }

    // 2. Latency at half that rate, open loop.
    let target =
        std::env::var("UPSHOT_LOAD_LATENCY_RATE").ok().and_then(|value| value.parse().ok()).unwrap_or(rate / 2.0);
    let interval = Duration::from_secs_f64(batch as f64 * connections as f64 / target);
    let rounds = ((latency_seconds as f64) / interval.as_secs_f64()).ceil() as usize;
    let first_unused = batches;
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|client| {
                let (bodies, key) = (bodies.clone(), keys.public_key.clone());
                scope.spawn(move || {
                    let mut connection = Connection::open(address, &key);
                    let start = Instant::now() + interval.mul_f64(client as f64 / connections as f64);
                    let mut latencies = Vec::with_capacity(rounds);
                    for round in 0..rounds {
                        let scheduled = start + interval * round as u32;
                        if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let index = (first_unused + round * connections + client) % bodies.len();
                        connection.post(&bodies[index]);
                        latencies.push(scheduled.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().expect("a client thread")).collect()
    });
    let mut sorted = latencies;
    sorted.sort();
    println!(
        "latency at {:.0} events/s for {latency_seconds} s ({} requests): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        target,
        sorted.len(),
        percentile(&sorted, 0.5).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3
    );
    let _ = stop.send(());
    server.join().expect("the server stops");
}
