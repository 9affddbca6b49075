//! upshot's generated SQL on a current ClickHouse (26.x, embedded by chdb from PyPI's
//! `chdb-core`; the two-shard cluster tests run Debian's 18.16): the reports it computes,
//! by either route (a shard's own table, the Distributed one) in either dialect (the
//! one detected for a current server, and 18.16's), equal the engine's over
//! the same events, figure for figure, for every model, the filters and a segment, on a
//! shop crowded onto the rules' edges. `scripts/test`
//! installs chdb-core in `target/chdb-venv` and names its Python in
//! `UPSHOT_CHDB_PYTHON`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use jiff::civil::date;
use upshot_clickhouse::figures::{Dialect, Route};
use upshot_clickhouse::{ClickHouseError, SqlSource};
use upshot_engine::query::Segment;
use upshot_engine::{compute_report, Dataset, Model, Query};
use upshot_model::{Event, Kind};
use upshot_store::Store;

/// Runs each query in a fresh chdb process over the rows written once.
struct Chdb {
    python: String,
    dir: PathBuf,
}

impl Chdb {
    fn new(events: &[Event], dir: &Path) -> Chdb {
        let python = std::env::var("UPSHOT_CHDB_PYTHON").unwrap_or_else(|_| "python3".into());
        let probe = Command::new(&python).args(["-c", "import chdb"]).output();
        assert!(
            probe.is_ok_and(|output| output.status.success()),
            "{python} cannot import chdb: install PyPI's chdb-core (scripts/test does, in target/chdb-venv) \
             or point UPSHOT_CHDB_PYTHON at a Python that has it"
        );
        let mut rows = Vec::new();
        for event in events {
            upshot_clickhouse::rows::RowValues::of("shop", event).write_row_binary(&mut rows);
        }
        std::fs::write(dir.join("rows.bin"), rows).expect("rows written");
        let columns: Vec<String> =
            upshot_clickhouse::schema::COLUMNS.iter().map(|(name, kind)| format!("`{name}` {kind}")).collect();
        std::fs::write(dir.join("columns.txt"), columns.join(", ")).expect("columns written");
        Chdb { python, dir: dir.to_path_buf() }
    }
}

impl SqlSource for Chdb {
    fn name(&self) -> String {
        "chdb".into()
    }

    fn query_lines(&self, query: &str, visit: &mut dyn FnMut(&[u8])) -> Result<(), ClickHouseError> {
        // Several queries may run at once (one per filter): each gets its own file.
        let file = self.dir.join(format!("query-{:016x}.sql", fnv(query)));
        std::fs::write(&file, query).expect("query written");
        let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/chdb_runner.py");
        let output = Command::new(&self.python)
            .arg(runner)
            .arg(self.dir.join("rows.bin"))
            .arg(self.dir.join("columns.txt"))
            .arg(&file)
            .output()
            .expect("the chdb runner starts");
        assert!(output.status.success(), "chdb refused the SQL: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()).for_each(visit);
        Ok(())
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[test]
fn reports_from_the_sql_on_a_current_clickhouse_equal_the_engines() {
    let mut events = upshot_gen::generate_events(upshot_gen::GenOptions {
        seed: 23,
        visitors: 250,
        days: 20,
        start_ms: 1_714_521_600_000, // 2024-05-01
        lift: 0.1,
        currency: "USD".into(),
        edge_cases: true,
        end_ms: None,
    });
    events.extend(support::unusual_visitors());
    let dir = tempfile::tempdir().expect("a temporary dir");
    let chdb = Chdb::new(&events, dir.path());
    let store = Store::open(dir.path().join("store")).expect("a store");
    let (record, _) = store.create_site("shop", "UTC", "USD").expect("a site");
    let range = |from, to| Query::utc(from, to);
    let mut queries: Vec<Query> =
        Model::ALL.into_iter().map(|model| Query { model, ..range(date(2024, 5, 3), date(2024, 5, 18)) }).collect();
    queries.push(range(date(2024, 5, 10), date(2024, 5, 10)));
    queries.push(Query { page_type: Some("product".into()), ..range(date(2024, 5, 3), date(2024, 5, 18)) });
    queries.push(Query { kind: Some(Kind::Recommendation), ..range(date(2024, 5, 1), date(2024, 5, 20)) });
    let mobile = Some(Segment::parse("device:mobile").expect("a segment"));
    queries.push(Query { segment: mobile, ..range(date(2024, 5, 2), date(2024, 5, 19)) });
    let dataset = Dataset::from_events(&events);
    // The dialect a current server is sent, detected from its version().
    assert_eq!(Dialect::of(chdb.server_version().expect("a version")), Dialect::Current);
    // Both routes: one shard's own table (what each shard runs), and the Distributed one;
    // both dialects: the one for 18.16 must also run on a current server (a cluster
    // mid-upgrade answers in either).
    let variants = [Route::PerShard, Route::Distributed]
        .into_iter()
        .flat_map(|route| [Dialect::Current, Dialect::Legacy].into_iter().map(move |dialect| (route, dialect)));
    for (route, dialect) in variants {
        let from_sql = upshot_scan::clickhouse::reports_from_sql(&chdb, &record, &queries, (route, dialect))
            .expect("reports from chdb");
        for (query, report) in queries.iter().zip(from_sql) {
            let engine = compute_report(&dataset, &record.settings, query).expect("the engine's report");
            assert_eq!(
                serde_json::to_value(&report).expect("json"),
                serde_json::to_value(&engine).expect("json"),
                "{route:?} {dialect:?} {query:?}"
            );
        }
    }
}
