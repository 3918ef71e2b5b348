import { chromium } from "./node_modules/playwright-core/index.mjs";
import fs from "node:fs";
const [,, base, ...cases] = process.argv;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
const results = {};
try {
  for (const c of cases) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.on("console", m => console.error("console:", m.text()));
    await page.goto(base + "/page.html?" + c);
    await page.waitForFunction(() => window.result, null, { timeout: 120000 });
    results[c] = await page.evaluate(() => window.result);
    const r = results[c]; console.error(c, r.error || `load ${r.load_ms.toFixed(0)} ms, first8 ${r.first8_ms.toFixed(1)} ms, p50 ${(r.p50_ms*1000).toFixed(1)} us`);
    await ctx.close();
  }
} finally { await browser.close(); }
fs.writeFileSync("results.json", JSON.stringify(results));
