// The tracker alone, without the Rust binary: a node server here serves t.js straight
// from crates/server/tracker/t.js, a test shop page, and a mock collector whose answers
// each test scripts (503 with Retry-After, 400, 429, ...). The mock records every body it
// gets; the tests assert on what was sent. Page time is Playwright's fake clock, so retry
// delays pass in a moment and nothing depends on wall-clock durations.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { test, onCleanup, USER_AGENT } from "./lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const TRACKER = path.resolve(here, "../../crates/server/tracker/t.js");
const POLL_DEADLINE_MS = 10000;
const BATCH_BYTES_MAX = 48 * 1024;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// One handler on two ports: the shop's origin and the collector's (t.js and /v1/...), so
/// the tracker posts cross-origin as it does on a real shop.
function startMock() {
  const pages = new Map(); // path -> html
  const answers = new Map(); // key -> answers still to give, in order; then 200
  const received = []; // { key, path, mode, at, body, events }
  const cors = { "access-control-allow-origin": "*", "access-control-expose-headers": "Retry-After" };
  const handler = (request, response) => {
    const url = new URL(request.url, "http://mock");
    if (url.pathname === "/t.js") {
      // Read on every request: the file under test, as it is now.
      response.writeHead(200, { "content-type": "application/javascript; charset=utf-8", "cache-control": "no-store" });
      response.end(fs.readFileSync(TRACKER));
    } else if (url.pathname === "/v1/events" || url.pathname === "/v1/beacon") {
      if (request.method === "OPTIONS") {
        response.writeHead(204, { ...cors, "access-control-allow-methods": "POST", "access-control-allow-headers": "content-type" });
        response.end();
        return;
      }
      const chunks = [];
      request.on("data", (chunk) => chunks.push(chunk));
      request.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const key = url.searchParams.get("key");
        const events = body.split("\n").filter(Boolean).map((line) => JSON.parse(line));
        received.push({ key, path: url.pathname, mode: request.headers["sec-fetch-mode"], at: Date.now(), body, events });
        const answer = (answers.get(key) || []).shift() || { status: 200 };
        const headers = { ...cors, "content-type": "application/json" };
        if (answer.retryAfter !== undefined) headers["retry-after"] = String(answer.retryAfter);
        response.writeHead(answer.status, headers);
        response.end(JSON.stringify(answer.status === 200 ? { accepted: events.length } : { error: "scripted" }));
      });
    } else if (pages.has(url.pathname)) {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      response.end(pages.get(url.pathname));
    } else {
      response.writeHead(404);
      response.end();
    }
  };
  const listen = () => {
    const server = http.createServer(handler);
    onCleanup(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }));
    return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${server.address().port}`)));
  };
  return Promise.all([listen(), listen()]).then(([shop, collector]) => ({ shop, collector, pages, answers, received }));
}

let keys = 0;

/// A shop page for one test, with its own key (so the mock tells tests apart). `before`
/// runs before t.js (the paste snippet's queue); `body` is the page's HTML body.
function shopPage(mock, { consent = false, before = "", body = "<p>A product page</p>", answers = [] } = {}) {
  const key = `up_pub_test${++keys}`;
  mock.answers.set(key, answers.slice());
  const consentAttribute = consent ? ' data-consent="required"' : "";
  mock.pages.set(`/shop/${key}`, `<!doctype html><html><head><meta charset="utf-8"><title>Test shop</title>
<script>window.upshot=window.upshot||function(){(upshot.q=upshot.q||[]).push(arguments)}</script>
<script>${before}</script>
<script async src="${mock.collector}/t.js" data-key="${key}" data-page-type="product"${consentAttribute}></script>
<style>body { margin: 0; font-family: sans-serif; } .box { height: 120px; border: 1px solid #999; }</style>
</head><body>${body}</body></html>`);
  return { key, url: `${mock.shop}/shop/${key}`, collectorOrigin: mock.collector, sent: () => mock.received.filter((r) => r.key === key) };
}

/// A fresh context on the fake clock; `init` runs in the page before anything else.
async function open(browser, shop, init) {
  const context = await browser.newContext({ userAgent: USER_AGENT, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const messages = [];
  const pageErrors = [];
  page.on("console", (message) => messages.push({ type: message.type(), text: message.text() }));
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  // Requests to the collector and those whose answer the page has (to settle on).
  const collector = { asked: 0, answered: 0 };
  const isCollector = (request) => request.url().startsWith(`${shop.collectorOrigin}/v1/`);
  page.on("request", (request) => { if (isCollector(request)) collector.asked += 1; });
  page.on("requestfinished", (request) => { if (isCollector(request)) collector.answered += 1; });
  page.on("requestfailed", (request) => { if (isCollector(request)) collector.answered += 1; });
  if (init) await page.addInitScript(init);
  await page.clock.install();
  await page.goto(shop.url);
  await until("t.js loaded", () => page.evaluate(() => window.__upshotLoaded === true && typeof window.upshot === "function"));
  const warnings = () => messages.filter((m) => m.type === "warning").map((m) => m.text);
  const errors = () => messages.filter((m) => m.type === "error").map((m) => m.text);
  // Lets the page take the answers to what it sent: every answer is in, then a few
  // round trips so that the tracker's handlers have run.
  const settle = async () => {
    await until("the collector's answers", () => collector.answered >= collector.asked);
    for (let i = 0; i < 3; i++) await page.evaluate(() => Promise.resolve());
    await sleep(50);
  };
  return { context, page, warnings, errors, pageErrors, settle };
}

/// Polls `ready` (real time, bounded) until it holds.
async function until(what, ready) {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  while (Date.now() < deadline) {
    if (await ready()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/// Moves the page's fake clock on a step at a time until `ready` holds (answers arrive in
/// real time, so each step also gives the page a moment to take them).
async function advanceUntil(page, what, ready, stepMs = 1000, steps = 300) {
  for (let i = 0; i < steps; i++) {
    if (await ready()) return;
    await page.clock.runFor(stepMs);
    await sleep(15);
  }
  throw new Error(`the clock moved on ${steps * stepMs} ms and still not: ${what}`);
}

const eventsOf = (requests) => requests.flatMap((r) => r.events);
const ids = (request) => request.events.map((e) => e.event_id);

export async function run(browser) {
const mock = await startMock();

for (let n = 0; n < 15; n++) {
await test("tracker: leaving the page sends the batch waiting for a retry by beacon", async () => {
  const shop = shopPage(mock, { answers: [{ status: 503, retryAfter: 60 }] });
  const { context, page, settle } = await open(browser, shop);
  await page.evaluate(() => window.upshot("flush"));
  await until("the first try", () => shop.sent().length === 1);
  await settle(); // the 503 is in: the batch waits a minute for its retry
  await page.evaluate(() => window.upshot("productView", { item: "p1" })); // and one still queued
  const [first] = shop.sent();
  await page.close({ runBeforeUnload: true }); // visibilitychange + pagehide
  try { await until("the beacons", () => eventsOf(shop.sent().slice(1)).length === 2); } catch (e) { console.log(JSON.stringify(shop.sent().map(r => ({mode: r.mode, types: r.events.map(e => e.type)})))); throw e; }
  const later = shop.sent().slice(1);
  const waited = later.find((r) => r.events.some((e) => e.event_id === first.events[0].event_id));
  assert.ok(waited, "the batch waiting for its retry went with the page");
  assert.equal(waited.mode, "no-cors", "by sendBeacon");
  assert.ok(waited.events[0].sent_at >= first.events[0].sent_at);
  assert.ok(eventsOf(later).some((e) => e.type === "product_view" && e.item === "p1"), "the queue went too");
  for (const request of later) assert.ok(Buffer.byteLength(request.body) <= BATCH_BYTES_MAX);
  await context.close();
});

}
}
