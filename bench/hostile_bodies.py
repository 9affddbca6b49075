#!/usr/bin/env python3
"""Memory of `upshot serve` under the worst bodies a holder of the public key can send.

Starts a release `upshot serve` on a fresh data dir, measures its resident memory,
then sends, from 16 threads at once for a while, the worst-case requests: small gzip
bombs of `[{},{},...]` (16 MiB once decompressed), gzip'd bodies at the decompression
limit full of impressions with 1000 one-letter items (the most event memory per byte),
and 1 MiB plain bodies of the same. Meanwhile one client posts tracker-sized batches
and times them. Prints the resident-memory peak (VmHWM) above the idle server, how the
hostile requests were answered, and how the legitimate traffic fared.

    cargo build --release && python3 bench/hostile_bodies.py [--seconds 20] [--threads 16]
"""

import argparse
import gzip
import http.client
import json
import os
import re
import subprocess
import tempfile
import threading
import time


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def post(address, key, body, gzipped, timeout=60):
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    try:
        connection.request("POST", "/v1/events", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def hostile_bodies():
    bomb = gzip.compress(("[" + ",".join(["{}"] * 5_600_000) + "]").encode(), 9)
    items = ",".join(['"a"'] * 1000)

    def impressions(count, prefix):
        return "\n".join(
            f'{{"event_id":"{prefix}{i}","type":"impression","ts":1700000000000,"visitor_id":"v{i}",'
            f'"placement":"p","kind":"recommendation","items":[{items}]}}'
            for i in range(count)
        ).encode()

    at_limit = impressions(16 * 1024 * 1024 // 4100, "g")[: 16 * 1024 * 1024]
    at_limit = at_limit[: at_limit.rfind(b"\n")]
    plain = impressions(1024 * 1024 // 4100, "p")
    return [(bomb, True), (gzip.compress(at_limit, 6), True), (plain, False)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/upshot")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="upshot-hostile-")
    keys = json.loads(subprocess.check_output([args.bin, "--data", data, "site", "create", "shop", "--format", "json"]))
    server = subprocess.Popen(
        [args.bin, "--data", data, "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "UPSHOT_LOG": "error"},
    )
    address = re.search(r"http://([\d.]+:\d+)/", server.stdout.readline()).group(1)
    threading.Thread(target=server.stdout.read, daemon=True).start()
    public = keys["public_key"]
    bodies = hostile_bodies()
    # Warm up with legitimate traffic, then take the idle peak as the baseline.
    for i in range(50):
        line = json.dumps({"event_id": f"w{i}", "type": "page_view", "ts": 1700000000000, "visitor_id": "w"})
        post(address, public, line.encode(), False)
    time.sleep(1)
    baseline = status_kib(server.pid, "VmRSS")
    stop = time.time() + args.seconds
    answers = {}
    lock = threading.Lock()

    def attacker(index):
        n = index
        while time.time() < stop:
            body, gzipped = bodies[n % len(bodies)]
            status = post(address, public, body, gzipped)
            with lock:
                answers[status] = answers.get(status, 0) + 1
            n += 1

    latencies, legit = [], {}

    def tracker():
        n = 0
        while time.time() < stop:
            batch = "\n".join(
                json.dumps({"event_id": f"t{n}-{i}", "type": "page_view", "ts": 1700000000000, "visitor_id": f"t{n}"})
                for i in range(10)
            )
            started = time.time()
            status = post(address, public, batch.encode(), False, timeout=30)
            latencies.append(time.time() - started)
            legit[status] = legit.get(status, 0) + 1
            n += 1
            time.sleep(0.05)

    threads = [threading.Thread(target=attacker, args=(i,)) for i in range(args.threads)]
    threads.append(threading.Thread(target=tracker))
    for thread in threads:
        thread.start()
    peak_rss = baseline
    while any(thread.is_alive() for thread in threads):
        peak_rss = max(peak_rss, status_kib(server.pid, "VmRSS"))
        time.sleep(0.05)
    high_water = status_kib(server.pid, "VmHWM")
    server.terminate()
    server.wait()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")
    print(f"hostile requests ({args.threads} threads, {args.seconds:.0f} s), answers by status: {dict(sorted(answers.items()))}")
    print(f"resident memory: idle {baseline / 1024:.0f} MiB, peak sampled {peak_rss / 1024:.0f} MiB, "
          f"high-water {high_water / 1024:.0f} MiB: +{(high_water - baseline) / 1024:.0f} MiB over idle")
    print(f"legitimate tracker batches: {dict(sorted(legit.items()))}, latency p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms")


if __name__ == "__main__":
    main()
