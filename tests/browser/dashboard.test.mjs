// The dashboard in a real browser, as a marketer uses it: sign in, open every page,
// change the date preset and the page-type filter, sort a table, follow a placement,
// download a CSV, sign out. No console errors, no request outside the server, names
// from the shop shown as text. Screenshots of every page at 1280x800 and 390x844 go to
// target/screenshots/ for a person to look at.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test, startUpshot, upshot, USER_AGENT, SCREENSHOTS } from "./lib.mjs";

const ADMIN_PASSWORD = "browser-test-admin-password";

function isoDay(offsetDays) {
  return new Date(Date.now() + offsetDays * 86400000).toISOString().slice(0, 10);
}

/// A generated shop of the last 40 days, plus a placement and labels with hostile names.
function prepare(data) {
  const generated = path.join(data, "shop.ndjson");
  upshot(data, "gen", "--visitors", "1500", "--days", "40", "--seed", "3", "--start", isoDay(-39), "--out", generated);
  const now = Date.now() - 3600000;
  const hostile = [
    { event_id: "x1", type: "page_view", ts: now, visitor_id: "x", page_type: "product" },
    { event_id: "x2", type: "impression", ts: now + 1000, visitor_id: "x", page_type: "product",
      placement: "<script>alert(1)</script>", kind: "widget", campaign: "say \"hi\" & 'bye'" },
    { event_id: "x3", type: "interaction", ts: now + 2000, visitor_id: "x", page_type: "product",
      placement: "<script>alert(1)</script>", kind: "widget", action: "click", label: "\"><img src=x onerror=alert(2)>" },
  ];
  const hostileFile = path.join(data, "hostile.ndjson");
  fs.writeFileSync(hostileFile, hostile.map((event) => JSON.stringify(event)).join("\n") + "\n");
  upshot(data, "import", "--site", "shop", generated, hostileFile);
  fs.rmSync(generated);
}

async function watchedPage(browser, origin, viewport) {
  const context = await browser.newContext({ userAgent: USER_AGENT, viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  page.on("console", (message) => { if (message.type() === "error") problems.push(`console: ${message.text()}`); });
  page.on("pageerror", (error) => problems.push(`page error: ${error}`));
  page.on("dialog", async (dialog) => { problems.push(`a dialog opened: ${dialog.message()}`); await dialog.dismiss(); });
  page.on("request", (request) => {
    if (!request.url().startsWith(origin)) problems.push(`request outside the server: ${request.url()}`);
  });
  return { context, page, problems };
}

/// A new view may first show the "computing" notice, which reloads itself: wait for the
/// real page (it has the page navigation).
async function settle(page) {
  await page.waitForSelector("nav.pages", { timeout: 30000 });
}

async function signIn(page, origin, site, secret) {
  await page.goto(origin + "/");
  assert.match(page.url(), /\/signin$/);
  await page.fill("input[name=site]", site);
  await page.fill("input[name=secret]", secret);
  await Promise.all([page.waitForURL(/\/sites\/[^/]+\/$/), page.click("button[type=submit]")]);
  await settle(page);
}

const PAGES = [
  ["overview", ""],
  ["placements", "placements"],
  ["rollups", "rollups"],
  ["recommendations", "recommendations"],
  ["experiments", "experiments"],
  ["journeys", "journeys"],
];

export async function run(browser) {
  const upshotServer = startUpshot({ sites: ["shop", "other"], env: { UPSHOT_ADMIN_PASSWORD: ADMIN_PASSWORD }, prepare });

  await test("a marketer signs in, filters, sorts, follows a placement and downloads a CSV", async () => {
    const { origin, keys } = await upshotServer;
    const { context, page, problems } = await watchedPage(browser, origin, { width: 1280, height: 800 });
    await signIn(page, origin, "shop", keys.secret_key);
    assert.equal(await page.locator(".tile").count(), 10, "ten KPI tiles");
    assert.ok(await page.locator(".tile .change.up, .tile .change.down, .tile .change.flat").count() > 0, "changes against the previous period");
    assert.equal(await page.locator("figure.chart svg").count(), 2, "daily revenue and sessions charts");
    assert.ok((await page.getAttribute(".tile", "title")).length > 10, "a definition one hover away");

    // The date preset: the select submits itself, the URL keeps the view.
    await Promise.all([page.waitForURL(/preset=last_7_days/), page.selectOption("select[name=preset]", "last_7_days")]);
    await settle(page);
    assert.match(await page.textContent("p.range"), new RegExp(`${isoDay(-6)} – ${isoDay(0)}`));
    await Promise.all([page.waitForURL(/page_type=product/), page.selectOption("select[name=page_type]", "product")]);
    await settle(page);
    assert.match(page.url(), /preset=last_7_days/, "filters add up in the URL");

    // The placements table, sorted by clicks, largest first.
    await page.click("nav.pages a:has-text('Placements')");
    await page.waitForURL(/\/placements\?/);
    await settle(page);
    await Promise.all([page.waitForURL(/sort=clicks/), page.click("th a:has-text('Clicks')")]);
    const clicksColumn = await page.locator("thead th").allTextContents();
    const index = clicksColumn.findIndex((text) => text.startsWith("Clicks"));
    const clicks = (await page.locator(`tbody tr td:nth-child(${index + 1})`).allTextContents()).map((text) => Number(text.replace(/,/g, "")));
    assert.ok(clicks.length > 1, "several placements");
    assert.deepEqual(clicks, [...clicks].sort((a, b) => b - a), "sorted by clicks, descending");

    // The hostile placement is text, and its link leads to its page.
    const hostile = page.locator("tbody a", { hasText: "<script>alert(1)</script>" });
    assert.equal(await hostile.count(), 1, "the name is shown as text");
    await Promise.all([page.waitForURL(/\/placements\/%3Cscript/), hostile.click()]);
    await settle(page);
    assert.equal(await page.textContent("h1"), "Placement <script>alert(1)</script>");
    assert.equal(await page.locator("figure.chart").count(), 4, "daily impressions, clicks, CTR and revenue");

    // A CSV download of the placements table.
    await page.goBack();
    await settle(page);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("a.download")]);
    const csv = fs.readFileSync(await download.path(), "utf8");
    assert.match(csv.split("\n")[0], /^placement,kind,impressions,clicks,ctr,orders,value,/);
    assert.ok(csv.includes("<script>alert(1)</script>"), "the CSV holds the data as is");

    // Every other page opens, on the same view.
    for (const [, pagePath] of PAGES) {
      await page.goto(`${origin}/sites/shop/${pagePath}?preset=last_30_days`);
      await settle(page);
      assert.equal(await page.locator("h1").count(), 1);
    }
    const rollups = await page.goto(`${origin}/sites/shop/rollups`);
    assert.equal(rollups.status(), 200);
    await settle(page);
    assert.equal(await page.locator("td", { hasText: "say \"hi\" & 'bye'" }).count(), 1, "quotes and ampersands shown as text");
    await page.goto(`${origin}/sites/shop/experiments`);
    await settle(page);
    assert.ok(await page.locator("svg.interval").count() > 0, "lifts drawn with their interval");

    // Another site is not this key's (the browser logs the 403 it was meant to get).
    const before = problems.length;
    const other = await page.goto(`${origin}/sites/other/`);
    assert.equal(other.status(), 403);
    problems.splice(before);

    await Promise.all([page.waitForURL(/\/signin$/), page.goto(`${origin}/sites/shop/`).then(() => page.click("form.signout button"))]);
    const after = await page.goto(`${origin}/sites/shop/`);
    assert.match(after.url(), /\/signin$/, "signed out means signed out");
    assert.deepEqual(problems, []);
    await context.close();
  });

  await test("every page reads well at 1280x800 and 390x844 (screenshots for a person)", async () => {
    const { origin } = await upshotServer;
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    for (const [label, viewport] of [["wide", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]]) {
      const { context, page, problems } = await watchedPage(browser, origin, viewport);
      await signIn(page, origin, "", ADMIN_PASSWORD);
      for (const [name, pagePath] of PAGES) {
        await page.goto(`${origin}/sites/shop/${pagePath}`);
        await settle(page);
        // Nothing may stick out sideways except inside the tables' own scroll boxes.
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflow <= 0, `${name} at ${label} is ${overflow}px too wide`);
        await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${label}.png`), fullPage: true });
      }
      assert.equal(await page.locator("select[name=site] option").count(), 2, "the admin may switch between both sites");
      assert.deepEqual(problems, []);
      await context.close();
    }
  });
}
