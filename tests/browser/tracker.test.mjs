// End to end in a real browser: a demo shop page served here loads the tracker from a
// real `upshot serve`; headless Chromium scrolls, hovers, clicks, discards, adds to cart
// and orders; then the report must show exactly those impressions, clicks and the
// attributed order. Run by run.mjs (scripts/test, after the Rust tests build the binary).
import http from "node:http";
import assert from "node:assert/strict";
import { test, startUpshot, onCleanup, USER_AGENT } from "./lib.mjs";

const POLL_DEADLINE_MS = 30000;

function shopPage(collector, key, consentRequired) {
  const consent = consentRequired ? ' data-consent="required"' : "";
  return `<!doctype html><html><head><meta charset="utf-8"><title>Demo shop</title>
<script>window.upshot=window.upshot||function(){(upshot.q=upshot.q||[]).push(arguments)}</script>
<script async src="${collector}/t.js" data-key="${key}" data-page-type="product"${consent}></script>
<style>
  body { margin: 0; font-family: sans-serif; }
  .spacer { height: 1600px; }
  .banner { height: 220px; border: 1px solid #999; }
  .popup { position: fixed; top: 20px; right: 20px; width: 220px; height: 110px; background: #eef; }
  .notification { position: fixed; bottom: 20px; left: 20px; width: 220px; height: 60px; background: #ffd; }
</style></head><body>
<div class="notification" data-upshot-placement="toast" data-upshot-kind="notification">Free shipping today</div>
<div class="popup" id="popup" data-upshot-placement="welcome" data-upshot-kind="popup" data-upshot-campaign="spring">
  Welcome! <button id="close" data-upshot-discard>close</button></div>
<div class="spacer">A product page</div>
<div class="banner" id="similar" data-upshot-placement="similar" data-upshot-kind="recommendation" data-upshot-items="p1,p2,p3">
  <a href="#p1" data-upshot-item="p1">Product 1</a> <a href="#p2" id="p2" data-upshot-item="p2">Product 2</a>
  <a href="#p3" data-upshot-item="p3">Product 3</a></div>
<div class="spacer"></div>
<div class="banner" data-upshot-placement="never-seen" data-upshot-kind="block">Far below the fold</div>
</body></html>`;
}

function startShop(collector, key, consentRequired) {
  const shop = http.createServer((request, response) => {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    response.end(shopPage(collector, key, consentRequired));
  });
  onCleanup(() => shop.close());
  return new Promise((resolve) => shop.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${shop.address().port}`)));
}

function dayOffset(days) {
  return new Date(Date.now() + days * 86400000).toISOString().slice(0, 10);
}

async function report(upshot) {
  const url = `${upshot.origin}/v1/sites/shop/report?from=${dayOffset(-1)}&to=${dayOffset(1)}`;
  const response = await fetch(url, { headers: { authorization: `Bearer ${upshot.keys.secret_key}` } });
  assert.equal(response.status, 200);
  return response.json();
}

/// Polls the report until `ready` holds; fails (with the last report) after the deadline.
async function reportWhen(upshot, ready) {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  let last;
  while (Date.now() < deadline) {
    last = await report(upshot);
    if (ready(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the report never got there: ${JSON.stringify(last, null, 1).slice(0, 3000)}`);
}

function placement(report, name) {
  return report.placements.find((row) => row.placement === name);
}

async function newPage(browser, origins) {
  const context = await browser.newContext({ userAgent: USER_AGENT, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const requests = [];
  const consoleErrors = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  return { context, page, requests, consoleErrors, origins };
}

export async function run(browser) {
await test("the report shows exactly what the shopper saw, clicked and bought", async () => {
  const upshot = await startUpshot();
  const shop = await startShop(upshot.origin, upshot.keys.public_key, false);
  const { context, page, requests, consoleErrors } = await newPage(browser);
  // Landing from a newsletter (SPEC section 9.1: referrer and utm_* go with the first page view).
  await page.goto(`${shop}/?utm_source=news&utm_medium=Email&utm_campaign=spring`, { referer: "https://mail.example/inbox" });
  // The pop-up and the notification are on screen from the start: one second each.
  await page.waitForFunction(() => typeof window.upshot === "function" && window.__upshotLoaded);
  await reportWhen(upshot, (r) => {
    page.evaluate(() => window.upshot("flush"));
    return placement(r, "welcome")?.impressions === 1 && placement(r, "toast")?.impressions === 1;
  });
  await page.hover(".notification");
  await page.waitForTimeout(900); // a hover counts after half a second of dwelling
  await page.mouse.move(640, 400);
  await page.click("#close");
  await page.locator("#similar").scrollIntoViewIfNeeded();
  await reportWhen(upshot, (r) => {
    page.evaluate(() => window.upshot("flush"));
    return placement(r, "similar")?.impressions === 1;
  });
  await page.click("#p2");
  await page.evaluate(() => {
    window.upshot("addToCart", { item: "p2", quantity: 1, price: "19.90" });
    window.upshot("order", { order_id: "o-1", revenue: "19.90", currency: "USD", items: [{ item: "p2", quantity: 1, price: "19.90" }] });
  });
  // pagehide: the rest goes by sendBeacon. page.close with runBeforeUnload does not
  // wait for the page to go; closing the context at once could cut the beacon off.
  const closed = page.waitForEvent("close");
  await page.close({ runBeforeUnload: true });
  await closed;
  await context.close();
  const final = await reportWhen(upshot, (r) => r.overview.orders === 1 && placement(r, "similar")?.clicks === 1);

  const similar = placement(final, "similar");
  assert.deepEqual(
    [similar.impressions, similar.product_impressions, similar.clicks, similar.ctr, similar.orders, similar.value, similar.direct_revenue],
    [1, 3, 1, 1, 1, 19.9, 19.9],
  );
  const welcome = placement(final, "welcome");
  assert.deepEqual([welcome.impressions, welcome.clicks, welcome.orders], [1, 0, 0], "a discard is no click");
  const toast = placement(final, "toast");
  assert.deepEqual([toast.impressions, toast.hovered_sessions, toast.clicks, toast.orders], [1, 1, 0, 0]);
  assert.equal(placement(final, "never-seen"), undefined, "an element never on screen has no impression");
  assert.deepEqual([final.overview.sessions, final.overview.orders, final.overview.revenue], [1, 1, 19.9]);
  assert.equal(final.recent_conversions[0].placement, "similar");
  const only = (rows) => rows.map((row) => [row.value, row.sessions]);
  assert.deepEqual(only(final.breakdowns.channel), [["email", 1]], "utm_medium Email lands an email session");
  assert.deepEqual(only(final.breakdowns.device), [["desktop", 1]], "the collector reads the browser's User-Agent");
  assert.deepEqual(consoleErrors, []);
  for (const url of requests) {
    assert.ok(url.startsWith(shop) || url.startsWith(upshot.origin), `a request left the shop and upshot: ${url}`);
  }
});

await test("with consent required, nothing is sent until it is given", async () => {
  const upshot = await startUpshot();
  const shop = await startShop(upshot.origin, upshot.keys.public_key, true);
  const { context, page, requests } = await newPage(browser);
  await page.goto(shop);
  await page.waitForFunction(() => window.__upshotLoaded);
  await page.evaluate(() => { window.upshot("productView", { item: "p9" }); window.upshot("flush"); });
  await page.waitForTimeout(1500); // long enough for a visible element's impression
  assert.deepEqual(requests.filter((url) => url.includes("/v1/")), [], "no event request before consent");
  assert.equal((await context.cookies()).length, 0, "no visitor cookie before consent");
  await page.evaluate(() => { window.upshot("consent", true); window.upshot("flush"); });
  const final = await reportWhen(upshot, (r) => r.overview.visitors === 1 && placement(r, "welcome")?.impressions === 1);
  assert.equal(final.overview.sessions, 1);
  assert.ok((await context.cookies()).some((cookie) => cookie.name === "upshot_vid"));
  await context.close();
});

}
