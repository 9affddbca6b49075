//! A current ClickHouse (26.x, embedded by PyPI's `chdb-core`) as an `SqlSource`: one
//! Python process running `chdb_runner.py` over a session in a directory, sent requests
//! on a pipe. `scripts/test` installs chdb-core in `target/chdb-venv` and names its
//! Python in `UPSHOT_CHDB_PYTHON`. Shared by the chdb test and the cluster benchmark.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use upshot_clickhouse::{ClickHouseError, SqlSource};
use upshot_model::Event;

pub struct Chdb {
    child: Child,
    pipe: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    dir: PathBuf,
}

impl Chdb {
    /// Starts the runner over `dir` (its tables are made there if missing).
    pub fn start(dir: &Path) -> Chdb {
        let python = std::env::var("UPSHOT_CHDB_PYTHON").unwrap_or_else(|_| "python3".into());
        let probe = Command::new(&python).args(["-c", "import chdb"]).output();
        assert!(
            probe.is_ok_and(|output| output.status.success()),
            "{python} cannot import chdb: install PyPI's chdb-core (scripts/test does, in target/chdb-venv) \
             or point UPSHOT_CHDB_PYTHON at a Python that has it"
        );
        // upshot's own DDL, run on 26.x by the runner.
        let statements = upshot_clickhouse::schema::statements("upshot_test");
        assert!(statements.iter().all(|statement| !statement.contains('\n')), "one statement a line");
        std::fs::write(dir.join("schema.sql"), statements.join("\n")).expect("schema written");
        let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/chdb_runner.py");
        let mut child = Command::new(&python)
            .arg(runner)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the chdb runner starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Chdb { child, pipe: Mutex::new((stdin, stdout)), dir: dir.to_path_buf() }
    }

    /// Stores `events` of `site` in both tables (the shard's and the "Distributed" one),
    /// as the collector's rows, and records the shipment.
    pub fn load(&self, site: &str, events: &[Event]) {
        let mut rows = Vec::new();
        for event in events {
            upshot_clickhouse::rows::RowValues::of(site, event).write_row_binary(&mut rows);
        }
        let file = self.dir.join("rows.bin");
        std::fs::write(&file, rows).expect("rows written");
        self.load_file(&file);
        self.query_lines(
            &format!("INSERT INTO upshot.changes (site, shipments, events) VALUES ('{site}', 1, {})", events.len()),
            &mut |_| {},
        )
        .expect("a change recorded");
    }

    /// Stores the RowBinary rows of `file` (upshot's columns) in both tables.
    pub fn load_file(&self, file: &Path) {
        let columns = upshot_clickhouse::schema::column_names();
        for table in ["events_local", "events"] {
            let header = serde_json::json!({
                "query": format!("INSERT INTO upshot.{table} ({columns}) FORMAT RowBinary"),
                "file": file.display().to_string(),
            });
            self.request(&header, b"").expect("rows loaded");
        }
    }

    fn request(&self, header: &serde_json::Value, body: &[u8]) -> Result<Vec<u8>, ClickHouseError> {
        let mut pipe = self.pipe.lock().expect("no thread panics while holding it");
        let (stdin, stdout) = &mut *pipe;
        stdin.write_all(format!("{header}\n").as_bytes()).expect("the runner reads");
        stdin.write_all(body).expect("the runner reads");
        stdin.flush().expect("the runner reads");
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the runner answers");
        let answer: serde_json::Value = serde_json::from_str(&line).expect("the runner's header is JSON");
        let length = answer["bytes"].as_u64().expect("a length") as usize;
        let mut payload = vec![0u8; length];
        stdout.read_exact(&mut payload).expect("the runner's answer");
        if answer["ok"] == true {
            Ok(payload)
        } else {
            Err(ClickHouseError::Query {
                node: "chdb".into(),
                status: 500,
                message: String::from_utf8_lossy(&payload).into(),
            })
        }
    }

    fn run(&self, query: &str, body: &[u8]) -> Result<Vec<u8>, ClickHouseError> {
        self.request(&serde_json::json!({ "query": query, "body": body.len() }), body)
    }
}

impl Drop for Chdb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SqlSource for Chdb {
    fn name(&self) -> String {
        "chdb".into()
    }

    fn query_lines(&self, query: &str, visit: &mut dyn FnMut(&[u8])) -> Result<(), ClickHouseError> {
        let answer = self.run(query, b"")?;
        answer.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()).for_each(visit);
        Ok(())
    }

    fn query_reader(&self, query: &str) -> Result<Box<dyn Read + Send>, ClickHouseError> {
        Ok(Box::new(std::io::Cursor::new(self.run(query, b"")?)))
    }

    fn insert(&self, query: &str, body: &[u8]) -> Result<(), ClickHouseError> {
        self.run(query, body).map(drop)
    }
}
