//! A soak test, bounded in time: several clients post valid, invalid, duplicated and
//! hostile batches to a real `upshot serve` while it is killed (SIGKILL) and restarted.
//! Afterwards every acknowledged event is stored exactly once, every rejected one is
//! absent, and one whose request broke off with the server is stored at most once.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod process;

use process::{listening, upshot};

const CLIENTS: usize = 6;
const ROUNDS: usize = 4;
const ROUND_LENGTH: Duration = Duration::from_millis(1200);

fn serve(data: &std::path::Path) -> (Child, SocketAddr) {
    listening(upshot(data).args(["serve", "--listen", "127.0.0.1:0"]))
}

/// One request; `None` when the connection failed or broke off (the server was killed).
fn try_request(address: SocketAddr, key: &str, body: &[u8], gzip: bool) -> Option<(u16, serde_json::Value)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let encoding = if gzip { "Content-Encoding: gzip\r\n" } else { "" };
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: soak\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n{encoding}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n")?;
    let status = String::from_utf8_lossy(&raw[..split]).split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_slice(&raw[split + 4..]).unwrap_or(serde_json::Value::Null)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Acknowledged,
    Rejected,
    /// The request broke off: the event may or may not have been taken.
    Unknown,
}

/// What each client saw of each event id it sent.
type Seen = Arc<Mutex<HashMap<String, Outcome>>>;

fn record(seen: &Seen, id: &str, outcome: Outcome) {
    let mut seen = seen.lock().expect("unpoisoned");
    let entry = seen.entry(id.to_string()).or_insert(outcome);
    // Once acknowledged, an id stays so; an unknown one may become acknowledged.
    if *entry != Outcome::Acknowledged {
        *entry = outcome;
    }
}

struct Client {
    index: usize,
    key: String,
    address: Arc<Mutex<Option<SocketAddr>>>,
    seen: Seen,
    stop: Arc<AtomicBool>,
}

impl Client {
    fn run(self) {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (self.index as u64 + 1);
        let mut random = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut next = 0u64;
        let mut acknowledged: Vec<String> = Vec::new();
        while !self.stop.load(Ordering::SeqCst) {
            let Some(address) = *self.address.lock().expect("unpoisoned") else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            match random(10) {
                0 => self.hostile(address, random(4)),
                _ => self.batch(address, &mut next, &mut acknowledged, &mut random),
            }
        }
    }

    /// New valid events, a few repeats of acknowledged ones, a few invalid ones.
    fn batch(
        &self,
        address: SocketAddr,
        next: &mut u64,
        acknowledged: &mut Vec<String>,
        random: &mut impl FnMut(u64) -> u64,
    ) {
        let mut ids = Vec::new();
        let mut lines = Vec::new();
        for _ in 0..1 + random(20) {
            let roll = random(10);
            let (id, line) = if roll == 0 && !acknowledged.is_empty() {
                let id = acknowledged[random(acknowledged.len() as u64) as usize].clone();
                let line = format!(
                    r#"{{"event_id":"{id}","type":"page_view","ts":"2024-05-10T10:00:00Z","visitor_id":"{id}"}}"#
                );
                (id, line)
            } else if roll == 1 {
                *next += 1;
                let id = format!("rej-{}-{next}", self.index);
                (id.clone(), format!(r#"{{"event_id":"{id}","type":"page_view","ts":"2024-05-10T10:00:00Z"}}"#))
            } else {
                *next += 1;
                let id = format!("c{}-{next}", self.index);
                let line = format!(
                    r#"{{"event_id":"{id}","type":"page_view","ts":"2024-05-10T10:00:00Z","visitor_id":"{id}"}}"#
                );
                (id, line)
            };
            ids.push(id);
            lines.push(line);
        }
        let body = lines.join("\n");
        match try_request(address, &self.key, body.as_bytes(), false) {
            Some((200, answer)) => {
                let statuses = answer["events"].as_array().cloned().unwrap_or_default();
                assert_eq!(statuses.len(), ids.len(), "one answer per event: {answer}");
                for (id, status) in ids.iter().zip(statuses) {
                    match status["status"].as_str() {
                        Some("taken" | "duplicate") => {
                            record(&self.seen, id, Outcome::Acknowledged);
                            acknowledged.push(id.clone());
                        }
                        Some("rejected") => record(&self.seen, id, Outcome::Rejected),
                        other => panic!("unknown status {other:?}"),
                    }
                }
            }
            Some((503 | 429, _)) | None => ids.iter().for_each(|id| record(&self.seen, id, Outcome::Unknown)),
            Some((status, answer)) => panic!("a valid batch answered {status}: {answer}"),
        }
    }

    /// Bodies an attacker sends: none may be taken, none may hurt the server.
    fn hostile(&self, address: SocketAddr, which: u64) {
        let (key, body, gzip): (&str, Vec<u8>, bool) = match which {
            0 => (&self.key, b"[{\"event_id\": \"x\", ".to_vec(), false),
            1 => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                encoder.write_all(format!("[{}]", vec!["{}"; 2_000_000].join(",")).as_bytes()).expect("gzip");
                (&self.key, encoder.finish().expect("gzip"), true)
            }
            2 => ("up_pub_not_a_key", b"{\"event_id\":\"never\",\"type\":\"page_view\"}".to_vec(), false),
            _ => (&self.key, vec![b'['; 2 << 20], false),
        };
        if let Some((status, answer)) = try_request(address, key, &body, gzip) {
            assert!((400..500).contains(&status) || status == 503, "a hostile body answered {status}: {answer}");
        }
    }
}

fn keys(data: &std::path::Path) -> (String, String) {
    let output = upshot(data).args(["site", "create", "shop", "--format", "json"]).output().expect("the binary runs");
    assert!(output.status.success());
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout).expect("keys as JSON");
    (keys["public_key"].as_str().expect("public").into(), keys["secret_key"].as_str().expect("secret").into())
}

#[test]
fn soak_with_kills_keeps_every_acknowledged_event_exactly_once_and_no_rejected_one() {
    let data = tempfile::tempdir().expect("temp dir");
    let (public, secret) = keys(data.path());
    let address = Arc::new(Mutex::new(None));
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Each client sticks to one key: a role deduplicates only its own ids (SPEC 7).
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let key = if index % 2 == 0 { public.clone() } else { secret.clone() };
            let client = Client { index, key, address: address.clone(), seen: seen.clone(), stop: stop.clone() };
            std::thread::spawn(move || client.run())
        })
        .collect();
    for round in 0..ROUNDS {
        let (mut child, listening) = serve(data.path());
        *address.lock().expect("unpoisoned") = Some(listening);
        std::thread::sleep(ROUND_LENGTH);
        let last = round + 1 == ROUNDS;
        if last {
            stop.store(true, Ordering::SeqCst);
        }
        let signal = if last { "-TERM" } else { "-KILL" };
        Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill runs");
        let _ = child.wait();
        *address.lock().expect("unpoisoned") = None;
    }
    for client in clients {
        client.join().expect("a client thread");
    }
    let export = upshot(data.path()).args(["export", "--site", "shop", "--format", "ndjson"]).output().expect("runs");
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let mut stored: HashMap<String, usize> = HashMap::new();
    for line in String::from_utf8_lossy(&export.stdout).lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("exported JSON");
        *stored.entry(event["event_id"].as_str().expect("an id").to_string()).or_default() += 1;
    }
    let seen = seen.lock().expect("unpoisoned");
    let count = |outcome| seen.values().filter(|seen| **seen == outcome).count();
    eprintln!(
        "soak: {} acknowledged, {} rejected, {} broke off with a kill; {} stored",
        count(Outcome::Acknowledged),
        count(Outcome::Rejected),
        count(Outcome::Unknown),
        stored.len()
    );
    assert!(count(Outcome::Acknowledged) > 500, "enough traffic to mean something: {}", count(Outcome::Acknowledged));
    assert!(count(Outcome::Rejected) > 20);
    for (id, outcome) in seen.iter() {
        let copies = stored.get(id).copied().unwrap_or(0);
        match outcome {
            Outcome::Acknowledged => assert_eq!(copies, 1, "{id} was acknowledged"),
            Outcome::Rejected => assert_eq!(copies, 0, "{id} was rejected"),
            Outcome::Unknown => assert!(copies <= 1, "{id} broke off: at most once, stored {copies}"),
        }
    }
    assert!(stored.keys().all(|id| seen.contains_key(id)), "nothing stored that nobody sent");
}
