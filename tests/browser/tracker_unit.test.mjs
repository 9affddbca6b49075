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
  // Lets the page take the answers to what it sent: the page saw every request the mock
  // got and has every answer, then a few round trips so that the tracker's handlers ran.
  const settle = async () => {
    await until("the collector's answers", () =>
      collector.asked >= shop.sent().length && collector.answered >= collector.asked);
    for (let i = 0; i < 3; i++) await page.evaluate(() => Promise.resolve());
    await sleep(50);
  };
  return { context, page, warnings, errors, pageErrors, settle };
}

/// Polls `ready` (real time, bounded) until it holds; `state` describes a failure.
async function until(what, ready, state = () => "") {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  while (Date.now() < deadline) {
    if (await ready()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for: ${what} ${state()}`);
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

await test("tracker: a retry stamps sent_at at its own send, after the Retry-After", async () => {
  const shop = shopPage(mock, { answers: [{ status: 503, retryAfter: 3 }] });
  const { context, page } = await open(browser, shop);
  await page.evaluate(() => window.upshot("flush"));
  await until("the first try", () => shop.sent().length === 1);
  await advanceUntil(page, "the retry", () => shop.sent().length === 2);
  const [first, retry] = shop.sent();
  assert.deepEqual(ids(retry), ids(first), "the same batch again");
  assert.deepEqual(retry.events.map((e) => e.ts), first.events.map((e) => e.ts), "ts is when it happened, unchanged");
  const firstSentAt = first.events[0].sent_at;
  const retrySentAt = retry.events[0].sent_at;
  assert.ok(retry.events.every((e) => e.sent_at === retrySentAt));
  assert.ok(retrySentAt >= firstSentAt + 3000, `the retry's sent_at ${retrySentAt} is its own clock, after Retry-After (first ${firstSentAt})`);
  await context.close();
});

await test("tracker: 429 is retried after its Retry-After, 408 too; a 400 is dropped with a warning", async () => {
  const limited = shopPage(mock, { answers: [{ status: 429, retryAfter: 5 }] });
  let opened = await open(browser, limited);
  await opened.page.evaluate(() => window.upshot("flush"));
  await until("the first try", () => limited.sent().length === 1);
  await advanceUntil(opened.page, "the retry after 429", () => limited.sent().length === 2);
  const [first, retry] = limited.sent();
  assert.deepEqual(ids(retry), ids(first));
  assert.ok(retry.events[0].sent_at >= first.events[0].sent_at + 5000, "not before the Retry-After");
  assert.deepEqual(opened.warnings(), []);
  await opened.context.close();

  const timedOut = shopPage(mock, { answers: [{ status: 408 }] }); // the collector's slow-body answer
  opened = await open(browser, timedOut);
  await opened.page.evaluate(() => window.upshot("flush"));
  await until("the first try", () => timedOut.sent().length === 1);
  await advanceUntil(opened.page, "the retry after 408", () => timedOut.sent().length === 2);
  assert.deepEqual(ids(timedOut.sent()[1]), ids(timedOut.sent()[0]));
  assert.deepEqual(opened.warnings(), []);
  await opened.context.close();

  const refused = shopPage(mock, { answers: [{ status: 400 }] });
  opened = await open(browser, refused);
  await opened.page.evaluate(() => { window.upshot("goal", { goal: "g" }); window.upshot("flush"); });
  await until("the only try", () => refused.sent().length === 1);
  await until("a warning", () => opened.warnings().length > 0);
  await opened.page.clock.runFor(120000);
  await opened.settle();
  assert.equal(refused.sent().length, 1, "a 400 is final");
  assert.equal(opened.warnings().length, 1, opened.warnings().join(" | "));
  assert.match(opened.warnings()[0], /^upshot: dropped 2 events\b.*\b400\b/);
  assert.ok(!opened.warnings()[0].includes("\n"), "one line");
  await opened.context.close();
});

await test("tracker: a batch dropped after six tries says so on the console", async () => {
  const failing = Array.from({ length: 10 }, () => ({ status: 500 }));
  const shop = shopPage(mock, { answers: failing });
  const { context, page, warnings, settle } = await open(browser, shop);
  await page.evaluate(() => window.upshot("flush"));
  await advanceUntil(page, "six tries", () => shop.sent().length === 6);
  await until("the warning", () => warnings().length > 0);
  await page.clock.runFor(600000);
  await settle();
  assert.equal(shop.sent().length, 6, "no seventh try");
  assert.equal(warnings().length, 1);
  assert.match(warnings()[0], /^upshot: dropped 1 event after 6 tries \(last: HTTP 500\)$/);
  await context.close();
});

await test("tracker: leaving the page sends the batch waiting for a retry by beacon", async () => {
  const shop = shopPage(mock, { answers: [{ status: 503, retryAfter: 60 }] });
  const { context, page, settle } = await open(browser, shop);
  await page.evaluate(() => window.upshot("flush"));
  await until("the first try", () => shop.sent().length === 1);
  await settle(); // the 503 is in: the batch waits a minute for its retry
  await page.evaluate(() => window.upshot("productView", { item: "p1" })); // and one still queued
  const [first] = shop.sent();
  await page.close({ runBeforeUnload: true }); // visibilitychange + pagehide
  await until("the beacons", () => eventsOf(shop.sent().slice(1)).length === 2, () =>
    JSON.stringify(shop.sent().map((r) => ({ mode: r.mode, types: r.events.map((e) => e.type) }))));
  const later = shop.sent().slice(1);
  const waited = later.find((r) => r.events.some((e) => e.event_id === first.events[0].event_id));
  assert.ok(waited, "the batch waiting for its retry went with the page");
  assert.equal(waited.mode, "no-cors", "by sendBeacon");
  assert.ok(waited.events[0].sent_at >= first.events[0].sent_at);
  assert.ok(eventsOf(later).some((e) => e.type === "product_view" && e.item === "p1"), "the queue went too");
  for (const request of later) assert.ok(Buffer.byteLength(request.body) <= BATCH_BYTES_MAX);
  await context.close();
});

await test("tracker: withdrawing consent cancels a scheduled retry and sends nothing more", async () => {
  const shop = shopPage(mock, { answers: [{ status: 503, retryAfter: 1 }] });
  const { context, page, settle } = await open(browser, shop);
  await page.evaluate(() => window.upshot("flush"));
  await until("the first try", () => shop.sent().length === 1);
  await settle(); // the retry is scheduled
  await page.evaluate(() => {
    window.upshot("consent", false);
    window.upshot("productView", { item: "p1" });
    window.upshot("flush");
  });
  for (let i = 0; i < 20; i++) { await page.clock.runFor(10000); await sleep(10); }
  await settle();
  await page.close({ runBeforeUnload: true });
  await sleep(300);
  assert.equal(shop.sent().length, 1, "nothing after consent(false)");
  await context.close();
});

await test("tracker: before consent, the queue keeps the first 100 events and warns once", async () => {
  const shop = shopPage(mock, { consent: true });
  const { context, page, warnings, settle } = await open(browser, shop);
  await page.evaluate(() => { for (let i = 0; i < 150; i++) window.upshot("productView", { item: `p${i}` }); });
  await page.clock.runFor(5000);
  assert.equal(shop.sent().length, 0, "nothing before consent");
  await page.evaluate(() => window.upshot("consent", true));
  await until("the queue sent", async () => {
    await page.evaluate(() => window.upshot("flush"));
    return eventsOf(shop.sent()).length >= 100;
  });
  await page.evaluate(() => window.upshot("flush"));
  await settle();
  const events = eventsOf(shop.sent());
  assert.equal(events.length, 100);
  assert.equal(events[0].type, "page_view");
  assert.deepEqual(events.slice(1).map((e) => e.item), Array.from({ length: 99 }, (_, i) => `p${i}`), "the oldest kept");
  const full = warnings().filter((text) => text.includes("consent"));
  assert.equal(full.length, 1, warnings().join(" | "));
  await context.close();
});

await test("tracker: a batch is cut at 48 KB of UTF-8, not 48 K characters", async () => {
  const shop = shopPage(mock);
  const { context, page } = await open(browser, shop);
  const item = "€".repeat(4000); // 4,000 characters, 12,000 bytes
  await page.evaluate((item) => {
    for (let i = 0; i < 10; i++) window.upshot("productView", { item: item + i });
  }, item);
  await until("every event", async () => {
    await page.evaluate(() => window.upshot("flush"));
    return eventsOf(shop.sent()).length >= 11;
  });
  const requests = shop.sent();
  assert.equal(eventsOf(requests).length, 11);
  assert.ok(requests.length >= 3, `120 KB in ${requests.length} requests`);
  for (const request of requests) {
    assert.ok(Buffer.byteLength(request.body, "utf8") <= BATCH_BYTES_MAX, `a body of ${Buffer.byteLength(request.body)} bytes`);
  }
  // Concurrent flushes may arrive in any order; every item arrives whole, once.
  const items = eventsOf(requests).filter((e) => e.item).map((e) => e.item);
  assert.ok(items.every((text) => text.startsWith(item)), "multi-byte text arrives intact");
  assert.deepEqual(items.map((text) => Number(text.slice(item.length))).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  await context.close();
});

await test("tracker: without window.crypto, events still carry ids", async () => {
  const shop = shopPage(mock);
  const { context, page, pageErrors } = await open(browser, shop, () => { delete window.crypto; });
  assert.equal(await page.evaluate(() => typeof window.crypto), "undefined");
  await page.evaluate(() => {
    window.upshot("productView", { item: "p1" });
    window.upshot("productView", { item: "p2" });
    window.upshot("flush");
  });
  await until("the batch", () => eventsOf(shop.sent()).length === 3);
  const events = eventsOf(shop.sent());
  for (const event of events) assert.match(event.event_id, /^[0-9a-f]{32}$/);
  assert.equal(new Set(events.map((e) => e.event_id)).size, 3, "distinct ids");
  assert.match(events[0].visitor_id, /^[0-9a-f]{32}$/);
  assert.deepEqual(pageErrors, []);
  await context.close();
});

await test("tracker: only the first page view of a page load says where the visitor came from", async () => {
  const shop = shopPage(mock);
  shop.url += "?utm_source=news&utm_medium=email&utm_campaign=" + "x".repeat(600) + "&other=1";
  const { context, page, pageErrors } = await open(browser, shop);
  await page.evaluate(() => { window.upshot("page", { page_type: "cart" }); window.upshot("flush"); });
  await until("both page views", () => eventsOf(shop.sent()).filter((e) => e.type === "page_view").length === 2);
  const [first, second] = eventsOf(shop.sent()).filter((e) => e.type === "page_view");
  assert.deepEqual([first.utm_source, first.utm_medium, first.utm_campaign.length], ["news", "email", 512], "cut to 512");
  assert.equal(first.referrer, undefined, "no referrer was there to send");
  assert.deepEqual([second.utm_source, second.utm_medium, second.utm_campaign, second.referrer], [undefined, undefined, undefined, undefined]);
  assert.deepEqual(pageErrors, []);
  await context.close();
});

await test("tracker: a throwing command does not stop the ones after it", async () => {
  const before = `upshot("visitorId", function () { throw new Error("boom in queue"); });
upshot("goal", { goal: "after-queue" });`;
  const shop = shopPage(mock, { before });
  const { context, page, errors, pageErrors } = await open(browser, shop);
  const threw = await page.evaluate(() => {
    try {
      window.upshot("visitorId", () => { throw new Error("boom in api"); });
    } catch {
      return true;
    }
    window.upshot("goal", { goal: "after-api" });
    window.upshot("flush");
    return false;
  });
  assert.equal(threw, false, "the API does not throw at the caller");
  await until("both goals", () => eventsOf(shop.sent()).filter((e) => e.type === "goal").length === 2);
  assert.deepEqual(eventsOf(shop.sent()).filter((e) => e.type === "goal").map((e) => e.goal), ["after-queue", "after-api"]);
  assert.ok(errors().some((text) => text.includes("boom in queue")), errors().join(" | "));
  assert.ok(errors().some((text) => text.includes("boom in api")), errors().join(" | "));
  assert.deepEqual(pageErrors, []);
  await context.close();
});

await test("tracker: a placement removed from the page is no longer observed", async () => {
  const body = `<div class="box" id="gone" data-upshot-placement="gone">gone</div>
<div class="box" id="moved" data-upshot-placement="moved">moved</div>
<div class="box" id="stays" data-upshot-placement="stays">stays</div><div id="elsewhere"></div>`;
  const shop = shopPage(mock, { body });
  const init = () => {
    window.__unobserved = [];
    const unobserve = IntersectionObserver.prototype.unobserve;
    IntersectionObserver.prototype.unobserve = function (target) {
      window.__unobserved.push(target.getAttribute("data-upshot-placement"));
      return unobserve.call(this, target);
    };
  };
  const { context, page, pageErrors, settle } = await open(browser, shop, init);
  await page.evaluate(() => {
    document.getElementById("gone").remove(); // leaves the page
    document.getElementById("elsewhere").appendChild(document.getElementById("moved")); // only moves
  });
  await until("gone unobserved", () => page.evaluate(() => window.__unobserved.includes("gone")));
  await advanceUntil(page, "the impressions", async () => {
    await page.evaluate(() => window.upshot("flush"));
    return eventsOf(shop.sent()).filter((e) => e.type === "impression").length >= 2;
  }, 500, 40);
  await page.clock.runFor(3000);
  await page.evaluate(() => window.upshot("flush"));
  await settle();
  assert.deepEqual(await page.evaluate(() => window.__unobserved), ["gone"], "a moved element stays observed");
  const shown = eventsOf(shop.sent()).filter((e) => e.type === "impression").map((e) => e.placement).sort();
  assert.deepEqual(shown, ["moved", "stays"]);
  assert.deepEqual(pageErrors, []);
  await context.close();
});
}
