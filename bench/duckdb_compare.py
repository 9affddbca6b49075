#!/usr/bin/env python3
"""Side-by-side benchmark: upshot's report against DuckDB computing the same core
figures from the same events (upshot's Parquet export).

Core figures: sessions, bounce rate, conversion rate, orders, revenue; per placement
impressions, clicks, CTR, last-interaction orders and value, direct and assisted
revenue. The SQL is written as a competent DuckDB user would: window functions for
sessions and order dedupe, ASOF joins for attribution.

Usage: bench/duckdb_compare.py --upshot target/release/upshot --data DIR --site SITE
           --from 2024-05-01 --to 2024-06-29 [--runs 3]
Needs: pip install duckdb (the script says so if it is missing).
Prints the median wall time of each side over --runs runs, their ratio, and checks that
the headline figures agree.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import duckdb
except ImportError:
    sys.exit("duckdb is missing: pip install duckdb")

CORE_SQL = """
WITH ev AS (SELECT * FROM events),
first_orders AS (
  SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY order_id ORDER BY ts, event_id) AS rn
    FROM ev WHERE type = 'order') WHERE rn = 1),
refunds AS (
  SELECT order_id, bool_or(cancel) AS cancelled, bool_or(amount IS NULL) AS refund_all,
         coalesce(sum(amount), 0) AS refunded
  FROM ev WHERE type = 'refund' GROUP BY order_id),
orders AS (
  SELECT o.visitor_id, o.ts, o.event_id, o.order_id, o.lines,
         CASE WHEN r.refund_all THEN 0 ELSE greatest(0, o.revenue - coalesce(r.refunded, 0)) END AS net
  FROM first_orders o LEFT JOIN refunds r USING (order_id)
  WHERE NOT coalesce(r.cancelled, false)),
web AS (
  SELECT visitor_id, ts, event_id, type, placement, kind, action, item, impression_id, items
  FROM ev
  WHERE type IN ('page_view', 'impression', 'interaction', 'product_view', 'add_to_cart', 'goal')
  UNION ALL
  SELECT visitor_id, ts, event_id, 'order', NULL, NULL, NULL, NULL, NULL, NULL FROM orders),
gaps AS (
  SELECT *, CASE WHEN ts - lag(ts) OVER w <= INTERVAL 30 MINUTE THEN 0 ELSE 1 END AS starts
  FROM web WINDOW w AS (PARTITION BY visitor_id ORDER BY ts, event_id)),
sessioned AS (
  SELECT *, sum(starts) OVER (PARTITION BY visitor_id ORDER BY ts, event_id ROWS UNBOUNDED PRECEDING) AS session
  FROM gaps),
sessions AS (
  SELECT visitor_id, session, min(ts) AS first_ts,
         count(*) FILTER (WHERE type = 'page_view') AS page_views,
         count(*) FILTER (WHERE type IN ('interaction', 'product_view', 'add_to_cart', 'order', 'goal')) AS engaged,
         count(*) FILTER (WHERE type = 'order') AS orders
  FROM sessioned GROUP BY visitor_id, session),
session_figures AS (
  SELECT count(*) AS sessions,
         avg(CASE WHEN page_views <= 1 AND engaged = 0 THEN 1.0 ELSE 0.0 END) AS bounce_rate,
         avg(CASE WHEN orders > 0 THEN 1.0 ELSE 0.0 END) AS conversion_rate
  FROM sessions WHERE first_ts >= $start AND first_ts < $end),
order_figures AS (
  SELECT count(*) AS orders, sum(net) AS revenue FROM orders WHERE ts >= $start AND ts < $end),
touches AS (
  SELECT visitor_id, ts, event_id, placement, kind FROM ev
  WHERE type = 'interaction' AND (action = 'click' OR (action = 'hover' AND kind IN ('notification', 'widget')))),
last_touch AS (
  SELECT o.event_id, o.net, t.placement, t.kind
  FROM orders o ASOF JOIN touches t ON o.visitor_id = t.visitor_id AND o.ts >= t.ts
  WHERE o.ts >= $start AND o.ts < $end AND o.ts - t.ts <= INTERVAL 30 DAY),
rec_clicks AS (
  SELECT visitor_id, ts, event_id, placement, item FROM ev
  WHERE type = 'interaction' AND kind = 'recommendation' AND action = 'click'),
lines AS (
  SELECT o.visitor_id, o.ts, o.event_id, o.net, l.line.item AS item,
         l.line.quantity * l.line.price AS line_value,
         sum(l.line.quantity * l.line.price) OVER (PARTITION BY o.event_id) AS line_total
  FROM orders o, LATERAL (SELECT unnest(from_json(o.lines, '[{"item":"VARCHAR","quantity":"BIGINT","price":"DECIMAL(18,4)"}]')) AS line) l
  WHERE o.ts >= $start AND o.ts < $end),
scaled AS (
  SELECT *, CASE WHEN line_total = 0 THEN 0 ELSE net * line_value / line_total END AS value FROM lines),
direct AS (
  SELECT s.event_id, s.item, s.value, c.placement
  FROM scaled s ASOF JOIN rec_clicks c ON s.visitor_id = c.visitor_id AND s.item = c.item AND s.ts >= c.ts
  WHERE s.ts - c.ts <= INTERVAL 7 DAY),
latest_rec AS (
  SELECT o.event_id, o.net, c.placement
  FROM orders o ASOF JOIN rec_clicks c ON o.visitor_id = c.visitor_id AND o.ts >= c.ts
  WHERE o.ts >= $start AND o.ts < $end AND o.ts - c.ts <= INTERVAL 7 DAY),
assisted AS (
  SELECT r.placement, sum(coalesce(s.value, r.net)) AS assisted
  FROM latest_rec r LEFT JOIN scaled s ON s.event_id = r.event_id
  LEFT JOIN direct d ON d.event_id = s.event_id AND d.item = s.item
  WHERE d.event_id IS NULL GROUP BY r.placement),
impressions AS (
  SELECT visitor_id, ts, event_id, placement, impression_id FROM ev WHERE type = 'impression'),
clicks AS (
  SELECT visitor_id, ts, event_id, placement, impression_id FROM ev WHERE type = 'interaction' AND action = 'click'),
clicked_ids AS (SELECT DISTINCT visitor_id, impression_id FROM clicks WHERE impression_id IS NOT NULL),
placement_figures AS (
  SELECT i.placement, count(*) AS impressions,
         count(*) FILTER (WHERE ci.impression_id IS NOT NULL) AS clicked_by_id
  FROM impressions i LEFT JOIN clicked_ids ci ON ci.visitor_id = i.visitor_id AND ci.impression_id = i.impression_id
  WHERE i.ts >= $start AND i.ts < $end GROUP BY i.placement),
placement_clicks AS (
  SELECT placement, count(*) AS clicks FROM clicks WHERE ts >= $start AND ts < $end GROUP BY placement),
placement_credit AS (
  SELECT placement, count(*) AS orders, sum(net) AS value FROM last_touch GROUP BY placement),
placement_direct AS (SELECT placement, sum(value) AS direct FROM direct GROUP BY placement)
SELECT 'overview' AS what, NULL AS placement, s.sessions, s.bounce_rate, s.conversion_rate, o.orders, o.revenue,
       NULL, NULL, NULL, NULL, NULL, NULL
FROM session_figures s, order_figures o
UNION ALL
SELECT 'placement', p.placement, NULL, NULL, NULL, NULL, NULL, p.impressions, c.clicks,
       p.clicked_by_id::DOUBLE / p.impressions, cr.orders, cr.value, d.direct
FROM placement_figures p LEFT JOIN placement_clicks c USING (placement) LEFT JOIN placement_credit cr USING (placement)
LEFT JOIN placement_direct d USING (placement) LEFT JOIN assisted a USING (placement)
"""


def run_upshot(args):
    started = time.perf_counter()
    output = subprocess.run(
        [args.upshot, "--data", args.data, "report", "--site", args.site, "--from", args.from_, "--to", args.to, "--format", "json"],
        check=True, capture_output=True).stdout
    return time.perf_counter() - started, json.loads(output)


def run_duckdb(connection, start, end):
    started = time.perf_counter()
    rows = connection.execute(CORE_SQL.replace("$start", f"TIMESTAMPTZ '{start}'").replace("$end", f"TIMESTAMPTZ '{end}'")).fetchall()
    return time.perf_counter() - started, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upshot", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--from", dest="from_", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        parquet = os.path.join(scratch, "events.parquet")
        subprocess.run([args.upshot, "--data", args.data, "export", "--site", args.site, "--format", "parquet", "--out", parquet],
                       check=True, capture_output=True)
        connection = duckdb.connect()
        connection.execute(f"SET threads = {args.threads}")
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{parquet}')")
        events = connection.execute("SELECT count(*) FROM events").fetchone()[0]
        start, end = f"{args.from_} 00:00:00+00", None
        end_date = subprocess.run(["date", "-u", "-d", f"{args.to} + 1 day", "+%Y-%m-%d"], check=True, capture_output=True, text=True).stdout.strip()
        end = f"{end_date} 00:00:00+00"
        upshot_times, duck_times = [], []
        for _ in range(args.runs):
            elapsed, report = run_upshot(args)
            upshot_times.append(elapsed)
            elapsed, rows = run_duckdb(connection, start, end)
            duck_times.append(elapsed)
    overview = next(row for row in rows if row[0] == "overview")
    mine = report["overview"]
    checks = [
        ("sessions", mine["sessions"], overview[2]),
        ("orders", mine["orders"], overview[5]),
        ("revenue", mine["revenue"], float(overview[6] or 0)),
        ("bounce_rate", mine["bounce_rate"], overview[3]),
        ("conversion_rate", mine["conversion_rate"], overview[4]),
    ]
    upshot_median, duck_median = statistics.median(upshot_times), statistics.median(duck_times)
    print(f"events: {events}")
    print(f"upshot report (whole report, {args.runs} runs): median {upshot_median:.3f} s")
    print(f"duckdb core figures (tables in memory, {args.threads} threads): median {duck_median:.3f} s")
    print(f"duckdb / upshot: {duck_median / upshot_median:.1f}x")
    for name, ours, theirs in checks:
        agree = abs(float(ours) - float(theirs)) <= 0.01 + 1e-9 * abs(float(theirs))
        print(f"  {name}: upshot {ours} duckdb {theirs} {'agree' if agree else 'DIFFER'}")


if __name__ == "__main__":
    main()
