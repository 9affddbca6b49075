// Runs every browser test in one headless Chromium and prints one summary line in the
// format scripts/test sums up.
import { launchBrowser, finish } from "./lib.mjs";
import { run as trackerUnit } from "./tracker_unit.test.mjs";
import { run as tracker } from "./tracker.test.mjs";
import { run as dashboard } from "./dashboard.test.mjs";

const browser = await launchBrowser();
await trackerUnit(browser); // t.js against a mock collector: needs no binary
await tracker(browser);
await dashboard(browser);
await finish();
