// edgegan.js: run an edgegan student in the browser (issue 23). One ES module, no build step:
//
//   import { loadGenerator } from "./edgegan.js";
//   const g = await loadGenerator(site, site.models[0]);     // site: the site's site.json
//   const images = await g.generate(8, { seed: 0 });         // ImageData[], the host's pixels for seed 0
//   const sevens = await g.generate(8, { seed: 0, label: 7 }); // a conditional model (contract.label): class 7
//
// The model runs in onnxruntime-web (WebAssembly, CPU), loaded from ./ort/ on the first loadGenerator.
// The latent sampler and the pixel rule below are edgegan_runtime's, in JavaScript.
//
// latent(n, dim, seed) reproduces edgegan_runtime.latent bit for bit (its module doc is the
// specification; the test vectors below are its own): SplitMix64 -> uniform in (0, 1) -> Box-Muller
// in double precision -> float32. toPixels reproduces edgegan_runtime.to_pixels: clip(rint((x + 1) *
// 127.5), 0, 255) in float32, half to even, NaN -> 0. Checked against the Python runtime under node
// (tests/test_web.py) and in Chromium (the site's own check against the host's images).
//
//   latent(1, 4, 0)  -> [-0.45275775, 0.20776604, 2.6506059, -0.49042282]
//   latent(1, 3, -1) -> [0.40389818, -0.24716993, -1.5578115]      (seed -1 is 2**64 - 1)

export const SAMPLER = { name: "splitmix64-box-muller", version: 1 };
export const PIXELS = { name: "clip-rint-127.5", version: 1 };

const M64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;
const M1 = 0xbf58476d1ce4e5b9n;
const M2 = 0x94d049bb133111ebn;
const TWO_M53 = 2 ** -53;
// Most values one call makes: the Python runtime's bound (2**32); a page never needs near that.
export const MAX_VALUES = 2 ** 32;

/** Output k (0, 1, 2, ...) of the SplitMix64 stream started at seed (BigInt, mod 2**64). */
export function splitmix64(seed, k) {
  let x = (BigInt.asUintN(64, BigInt(seed)) + (BigInt(k) + 1n) * GOLDEN) & M64;
  x = ((x ^ (x >> 30n)) * M1) & M64;
  x = ((x ^ (x >> 27n)) * M2) & M64;
  return x ^ (x >> 31n);
}

function checkInt(name, v) {
  const ok = typeof v === "bigint" || (typeof v === "number" && Number.isSafeInteger(v));
  if (!ok) throw new RangeError(`latent: ${name} must be an integer (a safe integer or a BigInt), got ${v}`);
}

/** Elements first .. first+count-1 of the standard-normal stream of seed, as a Float32Array. */
export function latentRange(seed, first, count) {
  checkInt("seed", seed);
  const out = new Float32Array(count);
  const s = BigInt.asUintN(64, BigInt(seed));
  let i = 0;
  let pair = Math.floor(first / 2);
  while (i < count) {
    const u1 = (Number(splitmix64(s, 2 * pair) >> 11n) + 0.5) * TWO_M53;
    const u2 = (Number(splitmix64(s, 2 * pair + 1) >> 11n) + 0.5) * TWO_M53;
    // (x >> 11) < 2**53 converts to a double exactly, + 0.5 and * 2**-53 are exact: u is the spec's.
    const r = Math.sqrt(-2.0 * Math.log(u1));
    const a = 2.0 * Math.PI * u2;
    for (const [j, g] of [[2 * pair, r * Math.cos(a)], [2 * pair + 1, r * Math.sin(a)]]) {
      if (j >= first && i < count) out[i++] = g; // Float32Array rounds to nearest, as numpy's astype
    }
    pair += 1;
  }
  return out;
}

/** latent(n, dim, seed): Float32Array of n*dim values, row-major, equal to edgegan_runtime.latent. */
export function latent(n, dim, seed = 0) {
  checkInt("n", n);
  checkInt("dim", dim);
  checkInt("seed", seed);
  if (n < 0 || dim < 1) throw new RangeError(`latent: need n >= 0 and dim >= 1, got n=${n}, dim=${dim}`);
  if (n * dim > MAX_VALUES) throw new RangeError(`latent: n * dim = ${n * dim} values is more than one call makes`);
  return latentRange(seed, 0, n * dim);
}

/** rint: round half to even (IEEE 754's default, C's lrintf); v - floor(v) is exact for these values. */
function rint(v) {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** One float32 output value to its 8-bit pixel. Math.fround after each double operation gives the
 *  float32 result: double has more than 2 * 24 + 2 bits, so rounding twice equals rounding once
 *  (Figueroa, "When is double rounding innocuous?", 1995). */
export function pixel(x) {
  if (Number.isNaN(x)) return 0;
  const p = rint(Math.fround(Math.fround(Math.fround(x) + 1) * 127.5));
  return p < 0 ? 0 : p > 255 ? 255 : p;
}

/** uint8 pixels (n, h, w, c) from float images (n, c, h, w): edgegan_runtime.to_pixels. */
export function toPixels(x, n, c, h, w) {
  const out = new Uint8Array(n * h * w * c);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++)
          out[((b * h + y) * w + xx) * c + ch] = pixel(x[((b * c + ch) * h + y) * w + xx]);
  return out;
}

/** ImageData (RGBA) of image i of uint8 pixels (n, h, w, c): grey for c = 1, RGB for c >= 3. */
export function imageData(pixels, i, h, w, c) {
  const rgba = new Uint8ClampedArray(h * w * 4);
  for (let k = 0; k < h * w; k++) {
    const o = (i * h * w + k) * c;
    rgba[4 * k] = pixels[o];
    rgba[4 * k + 1] = pixels[o + (c >= 3 ? 1 : 0)];
    rgba[4 * k + 2] = pixels[o + (c >= 3 ? 2 : 0)];
    rgba[4 * k + 3] = 255;
  }
  return new ImageData(rgba, w, h);
}

/** The class index of each of n images (edgegan_runtime.labels.resolve): null for an unconditional model
 *  (classes null), which takes no label; a conditional one takes label (one class for all n images) or
 *  labels (one per image), integers in [0, classes). Errors name the form expected. */
export function resolveLabels(n, classes, { label = null, labels = null } = {}, name = "model") {
  const given = (v) => v !== null && v !== undefined;
  if (classes === null || classes === undefined) {
    if (given(label) || given(labels)) throw new Error(`${name}: this model is unconditional; it takes no label`);
    return null;
  }
  if (given(label) && given(labels)) throw new Error(`${name}: give label (one class for every image) or labels (one per image), not both`);
  if (!given(label) && !given(labels))
    throw new Error(`${name}: this model is conditional on ${classes} classes; give label (a class in [0, ${classes})) or labels (one class per image)`);
  const out = given(labels) ? Array.from(labels) : new Array(n).fill(label);
  if (out.length !== n) throw new Error(`${name}: labels has ${out.length} entries for ${n} images; give one class index per image`);
  for (const v of out) {
    if (!Number.isSafeInteger(v)) throw new Error(`${name}: a label must be an integer class index in [0, ${classes}), got ${v}`);
    if (v < 0 || v >= classes) throw new Error(`${name}: class ${v} is outside [0, ${classes}); this model has ${classes} classes`);
  }
  return out;
}

/** float32 (n, classes) one-hot rows, row i 1.0 at labels[i]: edgegan_runtime.labels.one_hot, the label
 *  input a conditional file takes (its contract's label entry: form onehot, float32, input 1). */
export function oneHot(labels, classes) {
  const out = new Float32Array(labels.length * classes);
  labels.forEach((v, i) => { out[i * classes + v] = 1; });
  return out;
}

export const LABEL = { form: "onehot", dtype: "float32", input: 1 };

/** The file's contract (from site.json, read by `edgegan bundle --target web` from the file itself):
 *  this page implements one latent sampler, one pixel rule and one label form; anything else is refused. */
export function checkContract(c, name) {
  const s = c && c.latent && c.latent.sampler;
  const p = c && c.pixels;
  if (!s || !p || !c.output || !Array.isArray(c.output.shape)) throw new Error(`${name}: no readable edgegan.contract`);
  if (s.name !== SAMPLER.name || s.version !== SAMPLER.version)
    throw new Error(`${name}: made for latent sampler ${s.name} v${s.version}; this page implements ${SAMPLER.name} v${SAMPLER.version}`);
  if (p.name !== PIXELS.name || p.version !== PIXELS.version)
    throw new Error(`${name}: made for pixel rule ${p.name} v${p.version}; this page implements ${PIXELS.name} v${PIXELS.version}`);
  const l = c.label;
  if (l !== null && l !== undefined) {
    if (l.form !== LABEL.form || l.dtype !== LABEL.dtype || l.input !== LABEL.input || !Number.isSafeInteger(l.classes) || l.classes < 1)
      throw new Error(`${name}: its label is ${l.form} ${l.dtype} at input ${l.input}; this page feeds a float32 one-hot at input ${LABEL.input}`);
  }
}

async function sha256Hex(bytes) {
  if (!(globalThis.crypto && crypto.subtle)) return null; // not a secure context (plain http, not localhost)
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

let ortPromise = null;
let ortBaseLoaded = null;
let runtimePromise = null;

/** onnxruntime-web, loaded once from ortBase (a folder URL holding the site's ort/ files); threads is fixed
 *  by the first call (onnxruntime-web reads env.wasm.numThreads once, when it starts). */
export function loadOrt(ortBase, threads) {
  if (!ortPromise) {
    ortBaseLoaded = ortBase;
    ortPromise = import(new URL("ort.wasm.min.mjs", ortBase).href).then((ort) => {
      ort.env.wasm.wasmPaths = ortBase;
      ort.env.wasm.numThreads = threads;
      return ort;
    });
  } else if (ortBase !== ortBaseLoaded) {
    return Promise.reject(new Error(`onnxruntime-web is loaded from ${ortBaseLoaded}, not ${ortBase}`));
  }
  return ortPromise;
}

// An ONNX file of one Identity node (x -> y, float32 [1]; 65 bytes): a session of it makes onnxruntime-web
// start before any model is known.
const WARM_MODEL = "CAg6NwoQCgF4EgF5IghJZGVudGl0eRIBd1oPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEA0=";

/** Start onnxruntime-web now instead of on the first model's InferenceSession.create (it starts lazily, on
 *  the first session). Its start is most of a first visit's time to the first image: compiling its 15 MB
 *  WebAssembly, instantiating it, OrtInit with its kernel registry, and V8 compiling, on first call, the
 *  ~3,500 functions a session and a run use (one ~0.5 s task on the page's thread). Called as the page's
 *  first script, the compile reads the .wasm as it downloads and all of it overlaps fetching app.js,
 *  site.json and the model; the model's session then reads only its own file. Resolves to the ort module
 *  once a session of WARM_MODEL was made, run and released; idempotent (one promise). */
export function startRuntime(ortBase, threads = threadsAvailable().threads) {
  if (!runtimePromise) {
    runtimePromise = loadOrt(ortBase, threads).then(async (ort) => {
      const bytes = Uint8Array.from(atob(WARM_MODEL), (ch) => ch.charCodeAt(0));
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
      try {
        const x = new ort.Tensor("float32", new Float32Array(1), [1]);
        const r = await session.run({ x });
        x.dispose();
        r.y.dispose();
      } finally {
        await session.release();
      }
      return ort;
    });
  }
  return runtimePromise;
}

/** Threads the WebAssembly runtime can use here: several only with cross-origin isolation
 *  (SharedArrayBuffer needs the server's COOP/COEP headers), else one. */
export function threadsAvailable() {
  const isolated = globalThis.crossOriginIsolated === true;
  const cores = (globalThis.navigator && navigator.hardwareConcurrency) || 1;
  return { isolated, threads: isolated ? Math.max(1, Math.min(4, cores)) : 1 };
}

export class Generator {
  constructor(ort, session, entry, sha256) {
    this.ort = ort;
    this.session = session;
    this.entry = entry;
    this.contract = entry.contract;
    this.sha256 = sha256;
    this.latentDim = entry.contract.latent.dim;
    [this.channels, this.height, this.width] = entry.contract.output.shape.slice(1);
    this.input = session.inputNames[0];
    this.output = session.outputNames[0];
    const label = entry.contract.label;
    this.classes = label ? label.classes : null; // a conditional model (issue 20): K classes, else null
    this.classNames = label && Array.isArray(label.names) ? label.names : null;
    this.labelInput = label ? session.inputNames[label.input] : null;
    if (label && (session.inputNames.length !== 2 || !this.labelInput))
      throw new Error(`${entry.name}: its contract names a label but the file has ${session.inputNames.length} input(s)`);
    if (!label && session.inputNames.length !== 1)
      throw new Error(`${entry.name}: ${session.inputNames.length} inputs but its contract names no label`);
  }

  /** Float images (n, c, h, w) in [-1, 1] for latents z (n * latentDim float32 values) and, for a
   *  conditional model, labels (n class indices; edgegan_runtime's generate_from(z, labels)). */
  async generateFrom(z, n, labels = null) {
    const idx = resolveLabels(n, this.classes, { labels }, this.entry.name);
    const feeds = { [this.input]: new this.ort.Tensor("float32", z, [n, this.latentDim]) };
    if (idx) feeds[this.labelInput] = new this.ort.Tensor("float32", oneHot(idx, this.classes), [n, this.classes]);
    try {
      const r = await this.session.run(feeds);
      const out = r[this.output];
      const x = out.data;
      out.dispose();
      return x;
    } finally {
      for (const t of Object.values(feeds)) t.dispose();
    }
  }

  /** uint8 pixels (n, h, w, c) for latent(n, latentDim, seed): edgegan_runtime's generate(n, seed, label=,
   *  labels=); a conditional model needs label or labels, an unconditional one takes neither. */
  async pixels(n, { seed = 0, label = null, labels = null } = {}) {
    const idx = resolveLabels(n, this.classes, { label, labels }, this.entry.name);
    const x = await this.generateFrom(latent(n, this.latentDim, seed), n, idx);
    return toPixels(x, n, this.channels, this.height, this.width);
  }

  /** The name of class k (the contract's class names, else "class k"). */
  className(k) {
    return this.classNames ? this.classNames[k] : `class ${k}`;
  }

  /** n ImageData for latent(n, latentDim, seed); image i depends only on (seed, i) (and its class). */
  async generate(n, opts = {}) {
    const p = await this.pixels(n, opts);
    return Array.from({ length: n }, (_, i) => imageData(p, i, this.height, this.width, this.channels));
  }

  release() {
    return this.session.release();
  }
}

/** Fetch a model of the site, check its sha256 and contract, and open it in onnxruntime-web. */
export async function loadGenerator(site, entry, { base = document.baseURI, threads = null, timeline = {} } = {}) {
  checkContract(entry.contract, entry.name);
  const th = threads ?? threadsAvailable().threads;
  // The runtime's module and the model download at the same time.
  const ortP = loadOrt(new URL(site.runtime.path, base).href, th).then((o) => ((timeline.runtime_module = performance.now()), o));
  const res = await fetch(new URL(entry.file, base));
  if (!res.ok) throw new Error(`${entry.file}: HTTP ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const sha = await sha256Hex(bytes);
  timeline.model_fetched = performance.now();
  if (sha !== null && sha !== entry.sha256) throw new Error(`${entry.file}: sha256 differs from site.json (corrupt or replaced)`);
  const ort = await ortP;
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ["wasm"], graphOptimizationLevel: "all",
  });
  timeline.session = performance.now(); // includes starting the runtime, unless startRuntime did before
  return new Generator(ort, session, entry, sha);
}
