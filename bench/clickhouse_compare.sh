#!/usr/bin/env bash
# The ClickHouse backend against the embedded store on the same generated events, side
# by side (issue 14): ingest over HTTP into `serve --store clickhouse` (two-shard
# ClickHouse 18.16 on loopback) and import into the embedded store; then
# `cargo bench -p upshot-scan --bench sources` (day partials built and kept by each of
# the embedded store, the cluster and a current ClickHouse in chdb; reports from them,
# cold and warm, and without them); then the report API of both servers, restarted
# (the collector reads the partials the cluster keeps).
#   bench/clickhouse_compare.sh [VISITORS] [RUNS]      (500000 visitors: ~10.5M events)
# Needs python3 and chdb-core (UPSHOT_CHDB_PYTHON, as scripts/test sets up); starts and
# stops its own cluster under bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
visitors="${1:-50000}"
runs="${2:-5}"
bin=target/release/upshot
cargo build --release --quiet
cargo bench -p upshot-scan --bench sources --no-run --quiet 2>/dev/null
export UPSHOT_CHDB_PYTHON="${UPSHOT_CHDB_PYTHON:-target/chdb-venv/bin/python}"
out="$(pwd)/bench/out/clickhouse-compare"
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
seconds() { python3 -c "print(f'{$(date +%s.%N) - $1:.2f}')"; }
start=$(date +%s.%N)
$bin --data "$out/embedded" import --site shop "$out/events.ndjson" > /dev/null
echo "embedded import: $(seconds "$start") s"
start=$(date +%s.%N)
$bin --data "$out/embedded" rebuild-partials --site shop
echo "embedded partials: $(seconds "$start") s"

serve_ch() {
    $bin --data "$out/ch" serve --listen 127.0.0.1:18690 --store clickhouse --clickhouse-url "$node1" \
        --key-events-per-second 100000000 --key-events-burst 100000000 --report-seconds-max 900 \
        > "$out/ch.out" 2>> "$out/ch.err" &
    echo $! > "$out/ch.pid"
}
serve_embedded() {
    $bin --data "$out/embedded" serve --listen 127.0.0.1:18691 > "$out/embedded.out" 2>> "$out/embedded.err" &
    echo $! > "$out/embedded.pid"
}
stop() { kill "$(cat "$out/$1.pid")"; while kill -0 "$(cat "$out/$1.pid")" 2>/dev/null; do sleep 0.2; done; }

serve_ch
sleep 2
python3 - "$out" "$node1" <<'PY'
import json, sys, time, http.client, threading, urllib.request
out, node = sys.argv[1], sys.argv[2]
key = json.load(open(f"{out}/ch.keys"))["secret_key"]
batches, batch = [], []
with open(f"{out}/events.ndjson", "rb") as lines:
    for line in lines:
        batch.append(line)
        if len(batch) == 500:
            batches.append(b"".join(batch)); batch = []
if batch:
    batches.append(b"".join(batch))
taken, lock, position = [0], threading.Lock(), [0]
def post():
    connection = http.client.HTTPConnection("127.0.0.1", 18690)
    while True:
        with lock:
            index = position[0]; position[0] += 1
        if index >= len(batches):
            return
        while True:
            connection.request("POST", "/v1/events", batches[index], {"Authorization": "Bearer " + key})
            response = connection.getresponse()
            body = response.read()
            if response.status == 200:
                answer = json.loads(body)
                break
            # Pushed back (the collector's queue or spool is full): wait as told, resend.
            if response.status not in (429, 503):
                raise SystemExit(f"the collector answered {response.status}: {body[:200]!r}")
            time.sleep(float(response.getheader("Retry-After", "1")))
        with lock:
            taken[0] += answer["taken"]
started = time.perf_counter()
threads = [threading.Thread(target=post) for _ in range(8)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
acknowledged = time.perf_counter() - started
def count():
    return int(urllib.request.urlopen(node + "/?query=SELECT%20count()%20FROM%20upshot.events%20FORMAT%20TSV").read())
while count() < taken[0]:
    time.sleep(0.1)
shipped = time.perf_counter() - started
print(f"clickhouse ingest over HTTP (python client, 8 keep-alive connections): {taken[0]} acknowledged in "
      f"{acknowledged:.2f} s, all in ClickHouse after {shipped:.2f} s ({taken[0] / shipped:.0f} events/s end to end)")
PY
stop ch

UPSHOT_BENCH_DATA="$out/embedded" UPSHOT_BENCH_NODE="$node1" UPSHOT_BENCH_RUNS="$runs" \
    cargo bench -p upshot-scan --bench sources --quiet

serve_ch
serve_embedded
# Both servers settle first (the cluster merges after the benchmark's inserts; medians
# taken at once varied 2-9x run to run).
sleep 10
python3 - "$out" "$((runs * 3))" <<'PY'
import json, statistics, sys, time, urllib.request
out, runs = sys.argv[1], int(sys.argv[2])
keys = {store: json.load(open(f"{out}/{store}.keys")) for store in ("ch", "embedded")}
def report(port, store, query):
    url = f"http://127.0.0.1:{port}/v1/sites/shop/report?{query}"
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + keys[store]["secret_key"]})
    started = time.perf_counter()
    body = json.load(urllib.request.urlopen(request, timeout=900))
    return time.perf_counter() - started, body
for query in ("from=2024-05-31&to=2024-06-29", "from=2024-05-01&to=2024-06-29&model=linear",
              "from=2024-06-01&to=2024-06-30&segment=device:mobile"):
    results = {}
    for store, port in (("embedded", 18691), ("ch", 18690)):
        first, body = report(port, store, query)
        times = [report(port, store, query)[0] for _ in range(runs)]
        results[store] = (first, statistics.median(times), body)
    (e_first, e_median, e_body), (c_first, c_median, c_body) = results["embedded"], results["ch"]
    print(f"API {query}: first after start embedded {e_first:.3f} s, cluster {c_first:.3f} s ({c_first / e_first:.2f}x); "
          f"median of {runs} embedded {e_median:.4f} s, cluster {c_median:.4f} s ({c_median / e_median:.2f}x); "
          f"equal: {e_body == c_body}")
PY
