//! A two-shard ClickHouse cluster for tests: Debian's clickhouse-server started by
//! scripts/clickhouse/cluster on loopback ports from a base port, stopped when dropped.
//! Shared by the test binaries that need one (`#[path]`-included).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use upshot_clickhouse::{read_shard_events, Node};
use upshot_model::Event;

/// The cluster of a test binary; stopped when dropped.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/clickhouse/cluster")
}

impl Cluster {
    /// Starts both shards (HTTP on `base_port + 10` and `+ 20`).
    pub fn start(base_port: u16) -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary dir");
        let output = Command::new(script())
            .args(["start", &dir.path().display().to_string(), &base_port.to_string()])
            .output()
            .expect("the cluster script runs");
        assert!(output.status.success(), "starting ClickHouse: {}", String::from_utf8_lossy(&output.stderr));
        let nodes = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|url| Node::parse(url.trim()).expect("the script prints node URLs"))
            .collect::<Vec<_>>();
        assert_eq!(nodes.len(), 2, "two shards");
        Cluster { dir, nodes }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["stop", &self.dir.path().display().to_string()]).status();
    }
}

/// Each shard's events of `site`.
pub fn stored(nodes: &[Node], site: &str) -> Vec<Vec<Event>> {
    nodes.iter().map(|node| read_shard_events(node, site).expect("the shard answers")).collect()
}

/// Each shard's events of `site` once they number `count` in all (bounded wait).
pub fn wait_for(nodes: &[Node], site: &str, count: usize) -> Vec<Vec<Event>> {
    // Inserts through a Distributed table reach the other shard asynchronously.
    for _ in 0..200 {
        let shards = stored(nodes, site);
        if shards.iter().map(Vec::len).sum::<usize>() >= count {
            return shards;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    stored(nodes, site)
}
