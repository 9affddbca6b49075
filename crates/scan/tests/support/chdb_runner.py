"""Runs one SQL query of upshot's on a current ClickHouse embedded by chdb (PyPI
`chdb-core`), over a fresh in-memory copy of the events: the tables as upshot's schema
makes them (ReplacingMergeTree; the Distributed table becomes a second local table),
the rows as upshot writes them (RowBinary). Prints the answer (JSONEachRow) or exits 2
with ClickHouse's error.

Usage: python3 chdb_runner.py ROWS.bin COLUMNS.txt QUERY.sql
"""
import sys

from chdb import session

rows, columns_file, query_file = sys.argv[1:4]
columns = open(columns_file).read()
db = session.Session()
db.query("CREATE DATABASE IF NOT EXISTS upshot")
for table in ["events_local", "events"]:
    db.query(
        f"CREATE TABLE upshot.{table} ({columns}) ENGINE = ReplacingMergeTree "
        "PARTITION BY toYYYYMM(day) ORDER BY (site, visitor_id, ts, event_id)"
    )
    db.query(f"INSERT INTO upshot.{table} SELECT * FROM file('{rows}', RowBinary, '{columns}')")
try:
    answer = db.query(open(query_file).read())
except Exception as error:  # ClickHouse's own message, for the test to show
    print(str(error), file=sys.stderr)
    sys.exit(2)
sys.stdout.write(str(answer))
