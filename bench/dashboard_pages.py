#!/usr/bin/env python3
"""Times every dashboard page of a running `upshot serve` (standard library only).

    UPSHOT_ADMIN_PASSWORD=... upshot --data D serve --listen 127.0.0.1:8090 &
    bench/dashboard_pages.py --url http://127.0.0.1:8090 --site shop --password ... [--runs 7]

For each page: the time until its figures show (a report may have to be computed,
unless the server's start-up warm-up already did; meanwhile the page answers with a
notice that reloads itself, which this follows) and the median of --runs further requests
(reports come from the cache; this is the page's render time as a marketer clicking
through sees it). Then the overview of every date preset; of a page type and of a model
(one control away from the default view: kept ready) under every preset; of two
controls changed at once; and of a custom range (both computed when first asked for).
"""
import argparse
import http.cookiejar
import statistics
import time
import urllib.parse
import urllib.request

PAGES = ["", "placements", "rollups", "recommendations", "experiments", "journeys"]
PRESETS = ["today", "yesterday", "last_7_days", "last_30_days", "this_month", "last_month"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    body = urllib.parse.urlencode({"site": "", "secret": args.password}).encode()
    opener.open(args.url + "/signin", data=body).read()

    def timed(path):
        """Milliseconds until the page shows its figures (a new view first answers with
        a notice that reloads itself every second; this follows it at once)."""
        started = time.perf_counter()
        while True:
            with opener.open(args.url + path) as response:
                body = response.read()
                assert response.status == 200, (path, response.status)
            if b"Computing the figures" not in body:
                return (time.perf_counter() - started) * 1000
            time.sleep(0.05)

    base = f"/sites/{args.site}/"
    placement = None
    print(f"{'page':<44} {'first ms':>10} {'median ms':>10}")  # first: until the figures show
    for page in PAGES:
        first = timed(base + page)
        median = statistics.median(timed(base + page) for _ in range(args.runs))
        print(f"{page or 'overview':<44} {first:>10.1f} {median:>10.1f}")
        if page == "placements":
            with opener.open(args.url + base + "placements.csv?table=placements") as response:
                placement = response.read().decode().splitlines()[1].split(",")[0]
    if placement:
        path = base + "placements/" + urllib.parse.quote(placement, safe="")
        first = timed(path)
        median = statistics.median(timed(path) for _ in range(args.runs))
        print(f"{'placement ' + placement:<44} {first:>10.1f} {median:>10.1f}")
    # Every date preset (the server keeps the unfiltered ones ready).
    for preset in PRESETS:
        path = base + "?preset=" + preset
        first = timed(path)
        median = statistics.median(timed(path) for _ in range(args.runs))
        print(f"{'overview, ' + preset:<44} {first:>10.1f} {median:>10.1f}")
    # One control away from the default view (kept ready), then its other presets
    # (computed in the background after its first view).
    for control in ["page_type=product", "model=linear"]:
        for preset in ["last_30_days"] + [p for p in PRESETS if p != "last_30_days"]:
            path = base + "?" + control + "&preset=" + preset
            first = timed(path)
            median = statistics.median(timed(path) for _ in range(args.runs))
            print(f"{'overview, ' + control + ', ' + preset:<44} {first:>10.1f} {median:>10.1f}")
    # Two controls at once: computed when first asked for.
    path = base + "?page_type=cart&model=first"
    first = timed(path)
    median = statistics.median(timed(path) for _ in range(args.runs))
    print(f"{'overview, cart pages, first model':<44} {first:>10.1f} {median:>10.1f}")
    path = base + "?from=2026-10-05&to=2026-10-19"
    first = timed(path)
    median = statistics.median(timed(path) for _ in range(args.runs))
    print(f"{'overview, custom range':<44} {first:>10.1f} {median:>10.1f}")
    # SPEC section 9: the breakdown switched to another attribute (the same report), and
    # a segment (its own lens: the first view waits for a pass, later ones add days).
    for label, query in [("overview, by channel", "?breakdown=channel"), ("overview, mobile sessions", "?segment=device%3Amobile")]:
        path = base + query
        first = timed(path)
        median = statistics.median(timed(path) for _ in range(args.runs))
        print(f"{label:<44} {first:>10.1f} {median:>10.1f}")


if __name__ == "__main__":
    main()
