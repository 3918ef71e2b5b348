// The browser side of tests/test_web.py: open an edgegan site in headless Chromium (Debian's, through
// playwright-core from edgegan/web/node_modules), wait for the page's own states, collect its images for
// the reference latents, take a screenshot, download device.json, and reload offline.
//
//   node web_driver.mjs SITE_URL OUT.json SCREENSHOT.png DEVICE.json "DEVICE LABEL"
//
// Writes OUT.json: {firstImageMs, state, threadsNote, models: {name: {floats, pixels, parity}}, offline, settleMs}.
// Every wait has a generous ceiling (the test must not depend on CPU load); the browser is closed in
// `finally`.
//
// EDGEGAN_WEB_CLASS=K (a conditional site, issue 20): after the check, record the class picker's options, pick
// class K and wait for the grid to say it drew that class, take the screenshot; then stop (no measure, no offline
// reload).
//
// EDGEGAN_WEB_SETTLE_MS=N (bench/scripts/bench_web.py sets it): after launching the browser, wait until its own
// start-up work is over (at most N ms) before opening the page, so that firstImageMs times the page and not the
// browser: a fresh profile still has nothing cached, but a just-launched Chromium (new headless, Debian's) builds
// its UI for the next second or so (the omnibox popup's WebUI renderer among others), which on a 2-core machine
// takes the CPU the page's first image needs. "Over": its processes used at most 10 % of one core over 200 ms
// (from /proc; where there is none, N ms).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = process.env.EDGEGAN_WEB_DIR || path.join(here, "..", "edgegan", "web");
const { chromium } = createRequire(path.join(webDir, "package.json"))("playwright-core");
const [url, outPath, shotPath, devicePath, deviceLabel] = process.argv.slice(2);
const CEILING = 180_000;
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const userDataDir = fs.mkdtempSync(path.join(path.dirname(outPath), "chromium-profile-"));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ARGS, acceptDownloads: true,
  viewport: { width: 1000, height: 1100 },
});
const out = { console: [] };
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  const settle = Number(process.env.EDGEGAN_WEB_SETTLE_MS || 0);
  if (settle > 0) out.settleMs = await settleBrowser(settle);
  page.on("console", (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));
  await page.goto(url);
  await page.waitForSelector("body[data-state=ready], body[data-state=error]", { timeout: CEILING });
  out.state = await page.getAttribute("body", "data-state");
  out.error = await page.evaluate(() => window.edgegan.error || null);
  if (out.state === "ready") {
    out.firstImageMs = await page.evaluate(() => window.edgegan.firstImageMs);
    out.timeline = await page.evaluate(() => ({ ...window.edgegan.timeline,
      dom_content_loaded: performance.getEntriesByType("navigation")[0]?.domContentLoadedEventEnd }));
    await page.waitForSelector("#check[data-state=pass], #check[data-state=fail]", { timeout: CEILING });
    out.check = await page.getAttribute("#check", "data-state");
    out.threadsNote = await page.textContent("#threads");
    out.models = {};
    const names = await page.evaluate(() => window.edgegan.site.models.map((m) => m.name));
    for (const n of names) out.models[n] = await page.evaluate((name) => window.edgegan.reference(name), n);
    if (process.env.EDGEGAN_WEB_CLASS !== undefined) {
      out.classBoxHidden = await page.evaluate(() => document.getElementById("label-box").hidden);
      out.classOptions = await page.$$eval("#label option", (os) => os.map((o) => o.textContent));
      const k = process.env.EDGEGAN_WEB_CLASS;
      const want = out.classOptions[Number(k)].split(": ").slice(1).join(": ");
      await page.selectOption("#label", k);
      await page.waitForFunction((w) => document.getElementById("latency").textContent.endsWith(`, ${w})`), want,
                                 { timeout: CEILING });
      out.latencyText = await page.textContent("#latency");
      out.stateAfterClass = await page.getAttribute("body", "data-state");
      out.contractText = await page.textContent("#contract");
      await page.screenshot({ path: shotPath, fullPage: true });
    } else {
      await page.screenshot({ path: shotPath, fullPage: true });
      await page.fill("#device-label", deviceLabel);
      const download = page.waitForEvent("download", { timeout: CEILING });
      await page.click("#measure");
      await page.waitForSelector("#download:not([hidden])", { timeout: CEILING });
      await page.click("#download");
      await (await download).saveAs(devicePath);
      // Offline: once the service worker controls the page, the site must load with no network at all.
      await page.evaluate(() => navigator.serviceWorker.ready);
      await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: CEILING });
      await ctx.setOffline(true);
      await page.reload();
      await page.waitForSelector("body[data-state=ready], body[data-state=error]", { timeout: CEILING });
      await page.waitForSelector("#check[data-state=pass], #check[data-state=fail]", { timeout: CEILING });
      out.offline = { state: await page.getAttribute("body", "data-state"), check: await page.getAttribute("#check", "data-state") };
      out.offlineFirstImageMs = await page.evaluate(() => window.edgegan.firstImageMs);
      out.offlineTimeline = await page.evaluate(() => window.edgegan.timeline);
    }
  }
} finally {
  await ctx.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
fs.writeFileSync(outPath, JSON.stringify(out));

/** CPU time (ms) of this process's descendants (the browser's processes), from /proc; null without /proc. */
function browserCpuMs() {
  const tick = 10; // USER_HZ = 100 on Linux
  const kids = (pid) => {
    const out = [];
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      let ch = "";
      try { ch = fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8"); } catch { continue; }
      for (const c of ch.split(/\s+/).filter(Boolean)) {
        out.push(Number(c));
        try { out.push(...kids(Number(c))); } catch { /* it exited */ }
      }
    }
    return out;
  };
  try {
    let ms = 0;
    for (const p of kids(process.pid)) {
      try {
        const f = fs.readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" ");
        ms += (Number(f[11]) + Number(f[12])) * tick; // utime, stime
      } catch { /* it exited */ }
    }
    return ms;
  } catch {
    return null;
  }
}

/** Wait until the browser is idle (see the top), at most maxMs; the ms waited. */
async function settleBrowser(maxMs) {
  const t0 = Date.now();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let prev = browserCpuMs();
  if (prev === null) {
    await sleep(maxMs);
    return Date.now() - t0;
  }
  while (Date.now() - t0 < maxMs) {
    await sleep(200);
    const now = browserCpuMs();
    if (now - prev <= 20) break;
    prev = now;
  }
  return Date.now() - t0;
}
