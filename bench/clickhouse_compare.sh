#!/usr/bin/env bash
# Ingest and report: the ClickHouse backend (local two-shard cluster) against the
# embedded store, on the same generated events, side by side.
#   bench/clickhouse_compare.sh [VISITORS] [RUNS]
# Needs python3; starts and stops its own cluster under bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
visitors="${1:-50000}"
runs="${2:-5}"
bin=target/release/upshot
cargo build --release --quiet
out=bench/out/clickhouse-compare
rm -rf "$out" && mkdir -p "$out"
nodes=$(scripts/clickhouse/cluster start "$out/cluster" 18600)
trap 'scripts/clickhouse/cluster stop "$out/cluster"; kill $(jobs -p) 2>/dev/null || true' EXIT
node1=$(echo "$nodes" | head -1); node2=$(echo "$nodes" | tail -1)
$bin --data "$out/ch" clickhouse init --url "$node1" --url "$node2" --cluster upshot_test
$bin gen --visitors "$visitors" --days 60 --seed 5 --start 2024-05-01 --out "$out/events.ndjson"
events=$(wc -l < "$out/events.ndjson")
echo "events: $events"

for store in embedded ch; do
    $bin --data "$out/$store" site create shop --format json > "$out/$store.keys"
done
start=$(date +%s.%N)
$bin --data "$out/embedded" import --site shop "$out/events.ndjson" > /dev/null
echo "embedded import: $(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')") s"

$bin --data "$out/ch" serve --listen 127.0.0.1:18690 --store clickhouse --clickhouse-url "$node1" --key-events-per-second 100000000 --key-events-burst 100000000 > "$out/ch.out" 2> "$out/ch.err" &
$bin --data "$out/embedded" serve --listen 127.0.0.1:18691 > "$out/embedded.out" 2> "$out/embedded.err" &
sleep 2
python3 - "$out" "$events" "$node1" "$runs" <<'PY'
import json, statistics, sys, time, urllib.request, concurrent.futures
out, events, node, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
keys = {store: json.load(open(f"{out}/{store}.keys")) for store in ("ch", "embedded")}
lines = open(f"{out}/events.ndjson", "rb").read().splitlines(keepends=True)
batches = [b"".join(lines[i:i + 500]) for i in range(0, len(lines), 500)]
def post(batch):
    request = urllib.request.Request("http://127.0.0.1:18690/v1/events", data=batch,
        headers={"Authorization": "Bearer " + keys["ch"]["secret_key"]})
    return json.load(urllib.request.urlopen(request))["taken"]
started = time.perf_counter()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    taken = sum(pool.map(post, batches))
acknowledged = time.perf_counter() - started
def count():
    return int(urllib.request.urlopen(node + "/?query=SELECT%20count()%20FROM%20upshot.events%20FORMAT%20TSV").read())
while count() < taken:
    time.sleep(0.1)
shipped = time.perf_counter() - started
print(f"clickhouse ingest over HTTP: {taken} acknowledged in {acknowledged:.2f} s, all in ClickHouse after {shipped:.2f} s ({taken / shipped:.0f} events/s end to end)")
def report(port, store):
    url = f"http://127.0.0.1:{port}/v1/sites/shop/report?from=2024-05-01&to=2024-06-29"
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + keys[store]["secret_key"]})
    started = time.perf_counter()
    body = json.load(urllib.request.urlopen(request))
    return time.perf_counter() - started, body
results = {}
for store, port in (("embedded", 18691), ("ch", 18690)):
    times = []
    for _ in range(runs):
        seconds, body = report(port, store)
        times.append(seconds)
    results[store] = body
    print(f"report via {store}: median {statistics.median(times):.2f} s of {runs} ({min(times):.2f}-{max(times):.2f})")
print("reports equal:", results["ch"] == results["embedded"])
PY
