// Shared by the browser tests: a tiny test runner, the browser, and real `upshot`
// processes on temporary data dirs (cleaned up at the end).
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const binary = process.env.UPSHOT_BIN || path.resolve(here, "../../target/debug/upshot");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
// Headless Chromium says "HeadlessChrome", which the collector counts as a bot.
export const USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
export const SCREENSHOTS = path.resolve(here, "../../target/screenshots");

const results = { passed: 0, failed: 0 };
const cleanups = [];

export function onCleanup(cleanup) {
  cleanups.push(cleanup);
}

export async function test(name, body) {
  try {
    await body();
    results.passed += 1;
    console.log(`test ${name} ... ok`);
  } catch (error) {
    results.failed += 1;
    console.log(`test ${name} ... FAILED\n${error.stack || error}`);
  }
}

export async function finish() {
  for (const cleanup of cleanups.reverse()) {
    try { await cleanup(); } catch { /* already gone */ }
  }
  console.log(`test result: ${results.failed ? "FAILED" : "ok"}. ${results.passed} passed; ${results.failed} failed; 0 ignored`);
  process.exit(results.failed ? 1 : 0);
}

export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  onCleanup(() => browser.close());
  return browser;
}

export function upshot(data, ...args) {
  return execFileSync(binary, ["--data", data, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
}

/// A data dir with `sites` created (their keys returned), prepared by `prepare`, then
/// `upshot serve` on a free port. Resolves to { origin, keys, data }.
export function startUpshot({ sites = ["shop"], env = {}, prepare = () => {} } = {}) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), "upshot-browser-"));
  const keys = {};
  for (const site of sites) keys[site] = JSON.parse(upshot(data, "site", "create", site, "--format", "json"));
  prepare(data, keys);
  const server = spawn(binary, ["--data", data, "serve", "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  const exited = new Promise((resolve) => server.on("exit", resolve));
  onCleanup(async () => {
    server.kill("SIGTERM");
    await exited; // it drains and seals first
    fs.rmSync(data, { recursive: true, force: true });
  });
  return new Promise((resolve, reject) => {
    exited.then((code) => reject(new Error(`upshot serve exited with ${code}`)));
    let printed = "";
    server.stdout.on("data", (chunk) => {
      printed += chunk.toString();
      const match = /http:\/\/([\d.]+:\d+)\//.exec(printed);
      if (match) resolve({ origin: `http://${match[1]}`, keys: keys[sites[0]], allKeys: keys, data });
    });
  });
}
