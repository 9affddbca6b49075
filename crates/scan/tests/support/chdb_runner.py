"""Runs upshot's SQL on a current ClickHouse embedded by chdb (PyPI `chdb-core`): one
process, one session over DB_DIR, the tables made by upshot's own schema statements
(DB_DIR/schema.sql; the Distributed tables become copies of the local ones: one process
is one shard and its node), answering requests on stdin until it closes.

Usage: python3 chdb_runner.py DB_DIR

A request is a line of JSON, {"query": SQL, "body": N} or {"query": SQL, "file": PATH},
then N bytes: an INSERT ... FORMAT RowBinary's rows (the body, or the file's). An answer
is a line of JSON, {"ok": true|false, "bytes": M}, then M bytes: the query's answer in
the format it names, or ClickHouse's error.
"""
import json
import os
import re
import sys
import tempfile

from chdb import session

INSERT = re.compile(r"^\s*INSERT INTO (\S+) \(([^)]*)\) FORMAT RowBinary\s*$", re.S)


def create_tables(db, statements):
    """upshot's own schema statements (`schema::statements`), each Distributed table
    made a copy of its local one (`CREATE TABLE x AS x_local` without an engine)."""
    for statement in statements.splitlines():
        if statement.strip():
            db.query(re.sub(r" ENGINE = Distributed\(.*\)$", "", statement.strip()))


def insert(db, query, path):
    """An INSERT with RowBinary rows as ClickHouse's HTTP interface takes it, run as
    INSERT ... SELECT from the rows' file (chdb takes no request body)."""
    match = INSERT.match(query)
    if not match:
        raise ValueError(f"not an INSERT ... FORMAT RowBinary: {query[:200]}")
    table, listed = match.group(1), [name.strip().strip("`") for name in match.group(2).split(",")]
    described = db.query(f"DESCRIBE TABLE {table}", "TabSeparated").bytes().decode()
    kinds = dict(line.split("\t")[:2] for line in described.splitlines())
    structure = ", ".join(f"`{name}` {kinds[name]}" for name in listed)
    names = ", ".join(f"`{name}`" for name in listed)
    db.query(f"INSERT INTO {table} ({names}) SELECT * FROM file('{path}', RowBinary, '{structure}')")
    return b""


def answer(out, ok, payload):
    out.write(json.dumps({"ok": ok, "bytes": len(payload)}).encode() + b"\n")
    out.write(payload)
    out.flush()


def main():
    db_dir = sys.argv[1]
    statements = open(os.path.join(db_dir, "schema.sql")).read()
    db = session.Session(os.path.join(db_dir, "chdb"))
    create_tables(db, statements)
    requests, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = requests.readline()
        if not header:
            return
        request = json.loads(header)
        body = requests.read(request.get("body", 0))
        try:
            if "file" in request:
                payload = insert(db, request["query"], request["file"])
            elif body:
                with tempfile.NamedTemporaryFile(dir=db_dir, suffix=".bin", delete=False) as rows:
                    rows.write(body)
                try:
                    payload = insert(db, request["query"], rows.name)
                finally:
                    os.unlink(rows.name)
            else:
                payload = db.query(request["query"], "TabSeparated").bytes()
        except Exception as error:  # ClickHouse's own message, for the caller to show
            answer(out, False, str(error).encode())
            continue
        answer(out, True, payload)


main()
