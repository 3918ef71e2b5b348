// The page: a grid for a seed, the model's contract, a check against the host's images and a probe
// that writes device.json. State for scripts and tests: body[data-state] (loading | ready | error),
// #check[data-state] (pending | pass | fail), and window.edgegan (firstImageMs, reference(), measure()).
import { loadGenerator, latent, toPixels, threadsAvailable, imageData, startRuntime } from "./edgegan.js";

const GRID_N = 8;
const $ = (id) => document.getElementById(id);
const api = (window.edgegan = { firstImageMs: null, site: null, generators: {}, timeline: {} });
// The runtime starts first thing (index.html's inline script did already, unless blocked; one start either way),
// beside site.json and the model. "ort/" is the site's runtime.path (edgegan bundle writes that folder; index.html
// names it too). A failure here shows up again, with its message, in loadGenerator.
const RUNTIME_PATH = "ort/";
startRuntime(new URL(RUNTIME_PATH, document.baseURI).href, threadsAvailable().threads)
  .then(() => { api.timeline.runtime_ready = performance.now(); }, () => {});

function fail(msg) {
  document.body.dataset.state = "error";
  $("status").textContent = `error: ${msg}`;
  $("status").className = "fail";
  api.error = msg;
}

async function generator(name) {
  const entry = api.site.models.find((m) => m.name === name);
  if (!api.generators[name]) api.generators[name] = loadGenerator(api.site, entry, { timeline: api.timeline });
  return api.generators[name];
}

/** The class picker for a conditional model (issue 20): shown with the contract's class names, hidden otherwise;
 *  keeps the chosen class when the model changes and has it. Returns the class to draw (null: unconditional). */
function showClasses(g) {
  const box = $("label-box");
  const sel = $("label");
  if (g.classes === null) {
    box.hidden = true;
    return null;
  }
  const keep = Number(sel.value);
  if (sel.options.length !== g.classes || [...sel.options].some((o, k) => o.textContent !== `${k}: ${g.className(k)}`))
    sel.replaceChildren(...Array.from({ length: g.classes }, (_, k) => new Option(`${k}: ${g.className(k)}`, String(k))));
  sel.value = String(Number.isInteger(keep) && keep < g.classes ? keep : 0);
  box.hidden = false;
  return Number(sel.value);
}

async function showGrid(name, seed) {
  const g = await generator(name);
  const label = showClasses(g);
  const t0 = performance.now();
  const images = await g.generate(GRID_N, { seed, label });
  const ms = performance.now() - t0;
  const grid = $("grid");
  grid.replaceChildren(...images.map((im) => {
    const c = document.createElement("canvas");
    c.width = im.width;
    c.height = im.height;
    c.getContext("2d").putImageData(im, 0, 0);
    return c;
  }));
  if (api.firstImageMs === null) api.firstImageMs = api.timeline.first_image = performance.now(); // since navigation start
  const what = label === null ? `seed ${seed}` : `seed ${seed}, ${g.className(label)}`;
  $("latency").textContent = `${(ms / GRID_N).toFixed(2)} ms per image (${GRID_N} in one call, ${what})`;
  return g;
}

function showContract(g) {
  const e = g.entry;
  const c = g.contract;
  const rows = [
    ["file", e.file], ["format, precision", `${e.format}, ${e.precision}`], ["bytes", e.bytes.toLocaleString("en")],
    ["sha256 (site.json)", e.sha256],
    ["sha256 (checked here)", g.sha256 === null ? "not checked (no WebCrypto: not a secure context)" : g.sha256 === e.sha256 ? "same ✓" : g.sha256],
    ["latent", `${c.latent.dim} × ${c.latent.dtype}, ${c.latent.sampler.name} v${c.latent.sampler.version}`],
    ...(c.label ? [["label", `${c.label.classes} classes, ${c.label.dtype} ${c.label.form} at input ${c.label.input}` +
                    (c.label.names ? ` (${c.label.names.join(", ")})` : "")]] : []),
    ["images", `${c.output.shape.slice(1).join(" × ")} ${c.output.layout}, range [${c.output.range}]`],
    ["pixels", `${c.pixels.name} v${c.pixels.version}`],
    ["runtime", `${api.site.runtime.name} ${api.site.runtime.version} (WebAssembly, CPU)`],
  ];
  $("contract").replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement("tr");
    tr.innerHTML = "<th></th><td><code></code></td>";
    tr.children[0].textContent = k;
    tr.querySelector("code").textContent = v;
    return tr;
  }));
}

async function fetchArray(url, Type) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Type(await r.arrayBuffer());
}

/** This browser's images for the reference latents against the host's (bundle_script.compare's numbers). */
async function reference(name) {
  const g = await generator(name);
  const e = g.entry;
  const ref = api.site.reference;
  const x = await g.generateFrom(latent(ref.n, g.latentDim, ref.seed), ref.n, e.reference.labels ?? null);
  const px = toPixels(x, ref.n, g.channels, g.height, g.width);
  const hostX = await fetchArray(e.reference.floats, Float32Array);
  const hostPx = await fetchArray(e.reference.pixels, Uint8Array);
  let maxAbs = 0, se = 0, differing = 0, maxPx = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i] - hostX[i]);
    maxAbs = Math.max(maxAbs, d);
    se += d * d;
    const dp = Math.abs(px[i] - hostPx[i]);
    if (dp) differing++;
    maxPx = Math.max(maxPx, dp);
  }
  const mse = se / x.length;
  const psnr = mse === 0 ? null : 10 * Math.log10(4 / mse);
  const t = e.thresholds;
  const limits = [];
  let ok = x.length === hostX.length;
  if (t.max_abs != null) { ok &&= maxAbs <= t.max_abs; limits.push(`max_abs <= ${t.max_abs}`); }
  if (t.psnr_db != null) { ok &&= psnr === null || psnr >= t.psnr_db; limits.push(`PSNR >= ${t.psnr_db} dB`); }
  if (t.max_pixel_diff != null) { ok &&= maxPx <= t.max_pixel_diff; limits.push(`pixels within ${t.max_pixel_diff} level`); }
  return {
    floats: Array.from(x), pixels: Array.from(px),
    parity: { max_abs: maxAbs, psnr_db: psnr, bit_exact: maxAbs === 0, pixels: px.length, pixels_differing: differing,
              max_pixel_diff: maxPx, threshold: limits.join(", ") || "none", passed: ok },
  };
}

async function showCheck(name) {
  const r = (await reference(name)).parity;
  const tbl = $("check");
  tbl.innerHTML = "<tr><th>model</th><th>max |Δ| float</th><th>pixels differing</th><th>largest pixel Δ</th><th>threshold</th><th></th></tr>";
  const tr = document.createElement("tr");
  for (const v of [name, r.max_abs.toExponential(2), `${r.pixels_differing} of ${r.pixels}`, r.max_pixel_diff, r.threshold,
                   r.passed ? "✓ same as the host" : "✗ differs"]) {
    const td = document.createElement("td");
    td.textContent = v;
    tr.append(td);
  }
  tr.lastChild.className = r.passed ? "pass" : "fail";
  tbl.append(tr);
  tbl.dataset.state = r.passed ? "pass" : "fail";
  return r;
}

/** The runtime's probe protocol in the page: batch 1, warm-up, then blocks of calls (performance.now()
 *  is coarsened to 100 µs without cross-origin isolation, so one call is not timed alone). */
async function probe(name, { block = 10, blocks = 30 } = {}) {
  const t0 = performance.now();
  api.generators[name] = null;
  const g = await generator(name);
  const loadMs = performance.now() - t0;
  const z = latent(1, g.latentDim, 0);
  const lab = g.classes === null ? null : [0]; // a conditional model is timed with its label input fed
  const t1 = performance.now();
  await g.generateFrom(z, 1, lab);
  const firstMs = performance.now() - t1;
  for (let i = 0; i < block; i++) await g.generateFrom(z, 1, lab);
  const per = [];
  for (let b = 0; b < blocks; b++) {
    const a = performance.now();
    for (let i = 0; i < block; i++) await g.generateFrom(z, 1, lab);
    per.push(((performance.now() - a) * 1000) / block);
  }
  const s = [...per].sort((a, b) => a - b);
  const mean = per.reduce((a, b) => a + b, 0) / per.length;
  return { p50_us: s[Math.floor(s.length / 2)], p90_us: s[Math.floor(s.length * 0.9)], mean_us: mean,
           images_per_s: 1e6 / mean, load_ms: loadMs, first_ms: firstMs, backend: api.site.runtime.name,
           runs: block * blocks, timer: `blocks of ${block} calls` };
}

function browserName() {
  const b = (navigator.userAgentData && navigator.userAgentData.brands) || [];
  const named = b.find((x) => !/Not.?A.?Brand/i.test(x.brand) && x.brand !== "Chromium") || b.find((x) => x.brand === "Chromium");
  if (named) return `${named.brand} ${named.version}`;
  const m = navigator.userAgent.match(/(Firefox|Chrome|Version)\/([\d.]+)/);
  return m ? `${m[1] === "Version" ? "Safari" : m[1]} ${m[2]}` : navigator.userAgent;
}

async function measure(label) {
  const site = api.site;
  const { isolated, threads } = threadsAvailable();
  const cpu = (label || "").trim() || `${navigator.platform || "unknown CPU"}, ${navigator.hardwareConcurrency || "?"} logical cores`;
  const models = [];
  for (const e of site.models) {
    const res = { name: e.name, file: e.file, format: e.format, precision: e.precision, sha256: e.sha256, backend: site.runtime.name };
    try {
      res.parity = (await reference(e.name)).parity;
      res.latency = await probe(e.name);
    } catch (err) {
      res.error = String(err && err.message || err);
    }
    models.push(res);
  }
  const doc = {
    schema: "edgegan.device-results/1",
    created: new Date().toISOString(),
    bundle: { run: site.run, target: "web", created: site.created, model_sha256: site.model_sha256 },
    machine: { cpu, browser: browserName(), machine: navigator.platform || null, cores: navigator.hardwareConcurrency || null,
               platform: navigator.userAgent, emulated: false, cross_origin_isolated: isolated },
    versions: { [site.runtime.name]: site.runtime.version },
    backends: [site.runtime.name],
    checks: { sha256: "checked by the page with WebCrypto where available" },
    settings: { batch: 1, threads, runs: null },
    models,
  };
  api.deviceResults = doc;
  const a = $("download");
  a.href = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" }));
  a.hidden = false;
  $("measured").textContent = models.map((m) => m.error ? `${m.name}: ${m.error}` :
    `${m.name}: p50 ${m.latency.p50_us.toFixed(1)} µs per image, ${m.parity.passed ? "images match the host" : "IMAGES DIFFER"}`).join("\n");
  return doc;
}

async function main() {
  const r = await fetch("site.json");
  if (!r.ok) throw new Error(`site.json: HTTP ${r.status}`);
  const site = (api.site = await r.json());
  api.timeline.site_json = performance.now();
  const sel = $("model");
  for (const m of site.models) sel.append(new Option(`${m.name} (${m.bytes.toLocaleString("en")} bytes)`, m.name));
  const { isolated, threads } = threadsAvailable();
  $("threads").textContent = isolated
    ? `Cross-origin isolated: the runtime may use ${threads} threads.`
    : "Threads unavailable: this page is not cross-origin isolated (the server sends no COOP/COEP headers), so the runtime runs on 1 thread.";
  const seedIn = $("seed");
  const redraw = async () => {
    const g = await showGrid(sel.value, Number(seedIn.value) || 0);
    showContract(g);
    return g;
  };
  await redraw();
  $("status").textContent = `${site.run}: ${sel.value}, generated here from seed ${seedIn.value}` +
    ($("label-box").hidden ? "" : ` for the class you pick`);
  document.body.dataset.state = "ready";
  $("new-seed").onclick = async () => {
    seedIn.value = crypto.getRandomValues(new Uint32Array(1))[0];
    await redraw().catch((e) => fail(e.message));
  };
  seedIn.onchange = () => redraw().catch((e) => fail(e.message));
  $("label").onchange = () => redraw().catch((e) => fail(e.message));
  sel.onchange = () => redraw().then(() => showCheck(sel.value)).catch((e) => fail(e.message));
  $("measure").onclick = () => measure($("device-label").value).catch((e) => fail(e.message));
  api.reference = reference;
  api.measure = measure;
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").catch((e) => { $("threads").textContent += ` No offline copy: ${e.message}.`; });
  }
  await showCheck(sel.value);
}

main().catch((e) => fail(e && e.message ? e.message : String(e)));
