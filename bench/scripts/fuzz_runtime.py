"""Fuzz the runtime with >= 10,000 structurally mutated model files per format (issue 14).

    .venv/bin/python bench/scripts/fuzz_runtime.py                  # 10,000 per format -> bench/results/fuzz-runtime.{json,md}
    .venv/bin/python bench/scripts/fuzz_runtime.py -n 500 --no-write   # a smoke run

Base files are what `edgegan export` writes for a DCGAN d=2 with random weights: ONNX fp32, fp16
and int8 (QDQ), TFLite fp32, fp16 and int8 (made once, in a subprocess that imports torch, and kept
under runs/fuzz-runtime/bases). Each case is one mutation (tests/runtime/rt_mutate.py: shapes,
attributes, initializer dimensions, tensor types, quantization parameters, indices, If branches,
constant values; 15% are the byte-level flips and truncations of rt_fuzzing.mutate) followed by
``rt.load`` and ``generate(2)`` in a forked child with a timeout and a 4 GiB address-space limit,
so a crash or a hang is counted and the next child goes on. A child runs a batch of cases (fork
costs more than a small load); the parent never builds an interpreter.

Outcomes: ``ok`` (loaded and made finite images), ``typed <Error>`` (refused with a RuntimeModelError),
``untyped <Exception>`` (a bug), ``crash <signal>``, ``hang``, and ``silent-nonfinite`` (images with
NaN or inf returned without an error). Goal: 0 crashes, 0 hangs, 0 silent non-finite, 0 untyped.
Crashing and hanging files are kept under runs/fuzz-runtime/failures for reproduction.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
WORK = Path(os.environ.get("EDGEGAN_FUZZ_WORK", REPO / "runs" / "fuzz-runtime"))
sys.path.insert(0, str(REPO / "tests" / "runtime"))  # rt_mutate, rt_fuzzing: the test suite's mutators

BASES = {"onnx": ("none", "fp16", "int8"), "tflite": ("none", "fp16", "int8")}  # export --quantize
BYTE_LEVEL_SHARE = 0.15
MEMORY_LIMIT = 4 << 30  # address space of a child: a file that makes the runtime allocate more is reported
NOTES = [
    "Cases are reproducible: case i of a format is the same file for the same seed (rng seeded with "
    "seed/format/i); crashing, hanging, untyped and silent non-finite cases are written to "
    "runs/fuzz-runtime/failures (baseline: runs/fuzz-runtime/baseline/failures).",
    "Baseline 'untyped MemoryError': the loader before the fixes asked for a 2 GiB read buffer up front "
    "(f.read(2 GiB + 1)), which fails under this bench's 4 GiB address-space limit once a child has other "
    "models mapped; read_regular now reads the file's size plus one byte. The baseline's crashes are SIGFPE "
    "(ONNX attributes: group 0) and SIGSEGV (TFLite shapes and operator indices), its hangs a batch dimension "
    "of -1, its silent non-finite images NaN/inf constants.",
    "Re-recorded for issue 25 with two more mutation kinds (tflite control_flow: an IF, WHILE or CALL_ONCE naming "
    "itself, another subgraph or one out of range; onnx loop: a Loop with a trip count of 2**31, 2**63-1, -1, 0 or 3), "
    "which the runtime's verifiers now refuse before native code (WHILE and Loop always; calls out of range, in a "
    "cycle or past 1,000 subgraph runs). An IF that calls another subgraph once, without a cycle, is bounded and runs "
    "(the 'ok' control_flow cases).",
    "Timings include making each mutation (TFLite: unpack and repack the flatbuffer in Python) and are on a "
    "shared 2-core machine at nice 10: they say how long the bench takes, not how fast the runtime loads.",
]


# ---------------------------------------------------------------- base files (torch, in a subprocess)


def make_bases(out: Path) -> None:
    import warnings

    import torch

    from edgegan.checkpoint import model_section
    from edgegan.export import export_run
    from edgegan.manifest import write_manifest
    from edgegan.models import build_generator

    torch.manual_seed(0)
    g = build_generator("dcgan", d=2).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.normal_(0, 1.0).mul_(2.0 / m.weight[0].numel() ** 0.5)
    run = out / "run"
    write_manifest(run, {"schema": "edgegan.manifest/1", "kind": "student",
                         "model": model_section(g, "dcgan", {"d": 2}, run)})
    for fmt, precisions in BASES.items():
        for q in precisions:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = export_run(run, format=fmt, quantize=q, batch=[1, 64] if fmt == "tflite" else None)
            src = run / e["file"]
            (out / f"{fmt}-{e['precision']}.{fmt}").write_bytes(src.read_bytes())


def bases() -> dict[str, list[Path]]:
    d = REPO / "runs" / "fuzz-runtime" / "bases"
    found = {fmt: sorted(d.glob(f"{fmt}-*.{fmt}")) for fmt in BASES}
    if any(len(found[f]) < len(BASES[f]) for f in BASES):
        d.mkdir(parents=True, exist_ok=True)
        print("making base files (edgegan export, DCGAN d=2) ...", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "--make-bases", str(d)], check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        found = {fmt: sorted(d.glob(f"{fmt}-*.{fmt}")) for fmt in BASES}
    return found


# ---------------------------------------------------------------- one case (in the child)


def case_bytes(fmt: str, base_paths: list[Path], base_data: list, idx: int, seed: int) -> tuple[str, str, bytes]:
    """(base name, mutation kind, bytes) of case ``idx``: the same for the same (seed, format, idx)."""
    from rt_fuzzing import mutate

    rng = random.Random(f"{seed}/{fmt}/{idx}")
    k = idx % len(base_paths)
    name = base_paths[k].name
    if rng.random() < BYTE_LEVEL_SHARE:
        raw, hot, other = base_data[k][1], base_data[k][2], base_data[(k + 1) % len(base_data)][1]
        kind, data = mutate(raw, other, rng, hot)
        return name, f"bytes-{kind}", data
    if fmt == "onnx":
        from rt_mutate import mutate_onnx

        kind, data = mutate_onnx(base_data[k][0], rng)
    else:
        from rt_mutate import mutate_tflite

        kind, data = mutate_tflite(base_data[k][1], rng)
    return name, kind, data


def run_one(path: Path) -> str:
    import numpy as np

    import edgegan_runtime as rt

    try:
        g = rt.load(path)
        g.generate(2, seed=1)
        x = g.generate_from(rt.latent(2, g.latent_dim, 2))
        g.close()
        return "ok" if np.isfinite(x).all() else "silent-nonfinite"
    except rt.RuntimeModelError as e:
        return f"typed {type(e).__name__}"
    except Exception as e:  # noqa: BLE001 - counted as a bug
        return f"untyped {type(e).__name__}: {' '.join(str(e).split())[:160]}"


def child(fmt: str, base_paths: list[Path], base_data: list, indices: range, seed: int, w: int, tmp: Path) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    out = os.fdopen(w, "w", buffering=1)
    for idx in indices:
        name, kind, data = case_bytes(fmt, base_paths, base_data, idx, seed)
        path = tmp / f"case{idx}.{fmt}"
        path.write_bytes(data)
        out.write(f"B {idx} {name} {kind}\n")
        outcome = run_one(path)
        out.write(f"E {idx} {outcome}\n")
        path.unlink()
    out.flush()
    os._exit(0)


# ---------------------------------------------------------------- the driver (parent)


def load_bases(paths: list[Path], fmt: str) -> list:
    from rt_fuzzing import structure_offsets

    out = []
    for p in paths:
        raw = p.read_bytes()
        proto = None
        if fmt == "onnx":
            from rt_mutate import onnx_base

            proto = onnx_base(raw)
        out.append((proto, raw, structure_offsets(raw, fmt)))
    return out


def fuzz(fmt: str, n: int, seed: int, timeout: float, batch: int, budget_s: float | None) -> dict:
    from tqdm import tqdm

    paths = bases()[fmt]
    data = load_bases(paths, fmt)
    tmp = WORK / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    outcomes, by_kind, failures = Counter(), {}, []
    t0 = time.monotonic()
    idx = 0
    bar = tqdm(total=n, desc=f"fuzz {fmt}", unit="case", file=sys.stderr, mininterval=5)
    while idx < n and (budget_s is None or time.monotonic() - t0 < budget_s):
        r, w = os.pipe()
        stop = min(n, idx + batch)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(r)
            try:
                child(fmt, paths, data, range(idx, stop), seed, w, tmp)
            finally:
                os._exit(3)
        os.close(w)
        current, buf, done_batch = None, b"", False
        deadline = time.monotonic() + timeout
        while not done_batch:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:  # the current case runs past its time: a hang
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                outcome = "hang"
            else:
                chunk = os.read(r, 65536)
                if chunk:
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        parts = line.decode().split(" ", 3)
                        if parts[0] == "B":
                            current = (int(parts[1]), parts[2], parts[3])
                            deadline = time.monotonic() + timeout
                        elif parts[0] == "E" and current is not None:
                            outcome = " ".join(parts[2:])
                            record(outcomes, by_kind, current[2], outcome)
                            if outcome.startswith(("untyped", "silent")):
                                failures.append(keep_failure(fmt, paths, data, seed, current, outcome))
                            bar.update(1)
                            idx = current[0] + 1
                            current = None
                    continue
                _, status = os.waitpid(pid, 0)
                if current is None:  # the batch finished
                    done_batch = True
                    idx = max(idx, stop)
                    break
                sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
                outcome = f"crash {signal.Signals(sig).name}" if sig else f"crash exit={os.WEXITSTATUS(status)}"
            # a crash or a hang of case ``current`` (or of the child before its first case)
            if current is None:
                current = (idx, "?", "?")
            record(outcomes, by_kind, current[2], outcome)
            bar.update(1)
            failures.append(keep_failure(fmt, paths, data, seed, current, outcome))
            idx = current[0] + 1
            done_batch = True
        os.close(r)
    bar.close()
    seconds = time.monotonic() - t0
    done = sum(outcomes.values())
    return {"format": fmt, "cases": done, "asked": n, "seconds": round(seconds, 1), "seed": seed,
            "bases": [p.name for p in paths], "outcomes": dict(outcomes.most_common()),
            "by_kind": {k: dict(v.most_common()) for k, v in sorted(by_kind.items())}, "failures": failures,
            "summary": summarize(outcomes)}


def keep_failure(fmt: str, paths: list[Path], data: list, seed: int, current: tuple, outcome: str) -> dict:
    """Write the failing case's file under runs/fuzz-runtime/failures (rebuilt from its seed) and describe it."""
    keep = WORK / "failures" / f"{fmt}-{seed}-{current[0]}-{current[2]}.{fmt}"
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_bytes(case_bytes(fmt, paths, data, current[0], seed)[2])
    return {"case": current[0], "base": current[1], "kind": current[2], "outcome": outcome,
            "file": str(keep.relative_to(REPO))}


def record(outcomes: Counter, by_kind: dict, kind: str, outcome: str) -> None:
    key = outcome.split(":")[0]
    outcomes[key] += 1
    by_kind.setdefault(kind, Counter())[_cls(key)] += 1


def _cls(key: str) -> str:
    return key.split(" ")[0]


def summarize(outcomes: Counter) -> dict:
    s = Counter()
    for k, v in outcomes.items():
        s[_cls(k)] += v
    return {c: s.get(c, 0) for c in ("ok", "typed", "untyped", "crash", "hang", "silent-nonfinite")}


# ---------------------------------------------------------------- report


def machine() -> dict:
    from edgegan.sysinfo import machine as sysinfo

    return {**sysinfo(), "platform": platform.platform()}


def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("edgegan-runtime", "numpy", "onnxruntime", "onnx", "ai-edge-litert", "flatbuffers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_markdown(doc: dict, path: Path) -> None:
    m = doc["machine"]
    lines = [
        "# Runtime fuzzing: structured mutations, each loaded and run in a forked child",
        "",
        f"Machine: {m['cpu']} ({m.get('isa')}), {m['cores']} cores, {m.get('memory_gib')} GiB; shared with other "
        f"jobs, run at nice {doc['nice']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".",
        "",
        "Each case: one mutation of an exported DCGAN d=2 file (bases below), then `rt.load` + `generate(2)` + "
        f"`generate_from` in a forked child (timeout {doc['timeout_s']:g} s, address space "
        f"{MEMORY_LIMIT >> 30} GiB). Goal: 0 crashes, 0 hangs, 0 silent non-finite images, 0 untyped errors.",
        "",
        "| format | cases | ok | typed refusals | untyped | crashes | hangs | silent non-finite | time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        s = r["summary"]
        lines.append(f"| {r['format']} | {r['cases']:,} | {s['ok']:,} | {s['typed']:,} | {s['untyped']} | "
                     f"{s['crash']} | {s['hang']} | {s['silent-nonfinite']} | {r['seconds'] / 60:.1f} min |")
    if doc.get("baseline"):
        b = doc["baseline"]
        same = (f"The same cases (the first {b['results'][0]['asked']:,} per format, same seed)" if not b.get("note")
                else f"{b['results'][0]['asked']:,} cases per format ({b['note']})")
        lines += ["", f"{same} against the runtime before issue 14's fixes (commit {b['commit']}):", "",
                  "| format | cases | ok | typed refusals | untyped | crashes | hangs | silent non-finite | time |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in b["results"]:
            s = r["summary"]
            lines.append(f"| {r['format']} | {r['cases']:,} | {s['ok']:,} | {s['typed']:,} | {s['untyped']} | "
                         f"{s['crash']} | {s['hang']} | {s['silent-nonfinite']} | {r['seconds'] / 60:.1f} min |")
        kinds = Counter(f"{r['format']} {f['kind']}: {f['outcome'].split(':')[0]}" for r in b["results"]
                        for f in r["failures"])
        lines += ["", "Before the fixes, by mutation kind: " + "; ".join(f"{k} ({v})" for k, v in kinds.most_common())
                  + "."]
    for r in doc["results"]:
        lines += ["", f"## {r['format']}: outcomes per mutation kind", "", f"Bases: {', '.join(r['bases'])}.", "",
                  "| kind | " + " | ".join(("ok", "typed", "untyped", "crash", "hang", "silent-nonfinite")) + " |",
                  "|---|" + "---:|" * 6]
        for kind, c in r["by_kind"].items():
            lines.append(f"| {kind} | " + " | ".join(str(c.get(k, 0)) for k in
                                                    ("ok", "typed", "untyped", "crash", "hang", "silent-nonfinite")) + " |")
        if r["cases"] < r["asked"]:
            lines += ["", f"Stopped at {r['cases']:,} of {r['asked']:,} cases (time budget)."]
        if r["failures"]:
            lines += ["", "Failures (kept for reproduction):", ""]
            lines += [f"- case {f['case']} ({f['base']}, {f['kind']}): {f['outcome']} — `{f['file']}`"
                      for f in r["failures"][:30]]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in NOTES]
    lines += ["", "Reproduce: `nice -n 10 .venv/bin/python bench/scripts/fuzz_runtime.py --baseline OLD/runtime` "
              f"(seed {doc['results'][0]['seed'] if doc['results'] else 0}).", ""]
    path.write_text("\n".join(lines))


def baseline(args: argparse.Namespace) -> dict:
    """The same cases (same seed, first ``--baseline-n``) against another checkout's runtime, in a subprocess."""
    import tempfile

    root = Path(args.baseline).resolve()
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "baseline.json"
        env = dict(os.environ, PYTHONPATH=str(root), EDGEGAN_FUZZ_WORK=str(WORK / "baseline"))
        subprocess.run([sys.executable, __file__, "-n", str(args.baseline_n), "--formats", args.formats,
                        "--seed", str(args.seed), "--timeout", str(args.timeout), "--batch", str(args.batch),
                        "--json-out", str(out)], check=True, env=env)
        doc = json.loads(out.read_text())
    return {"runtime": str(root), "commit": commit, "results": doc["results"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10_000, help="cases per format (default 10,000)")
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--batch", type=int, default=100, help="cases per forked child")
    ap.add_argument("--budget-min", type=float, default=None, help="stop a format after this many minutes")
    ap.add_argument("--no-write", action="store_true", help="print the summary, write no results")
    ap.add_argument("--json-out", help="write the JSON here instead of bench/results (no markdown)")
    ap.add_argument("--baseline", metavar="DIR", help="also fuzz the edgegan_runtime package in DIR (another "
                    "checkout's runtime/, e.g. before a fix) with the same cases, and record it beside")
    ap.add_argument("--baseline-n", type=int, default=2000, help="cases per format for --baseline (default 2,000)")
    ap.add_argument("--make-bases", help=argparse.SUPPRESS)
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the recorded .json")
    args = ap.parse_args()
    if args.markdown_only:
        write_markdown(json.loads((RESULTS / "fuzz-runtime.json").read_text()), RESULTS / "fuzz-runtime.md")
        return
    if args.make_bases:
        make_bases(Path(args.make_bases))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The parent imports what every child needs (fork shares it) but never builds an interpreter.
    import edgegan_runtime  # noqa: F401
    import onnxruntime  # noqa: F401
    from ai_edge_litert import interpreter  # noqa: F401

    results = []
    for fmt in args.formats.split(","):
        budget = None if args.budget_min is None else args.budget_min * 60
        r = fuzz(fmt, args.n, args.seed, args.timeout, args.batch, budget)
        print(json.dumps({k: r[k] for k in ("format", "cases", "seconds", "summary")}), file=sys.stderr)
        results.append(r)
    doc = {"machine": machine(), "versions": versions(), "nice": os.nice(0), "timeout_s": args.timeout,
           "results": results}
    if args.baseline:
        doc["baseline"] = baseline(args)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1) + "\n")
        return
    if args.no_write:
        print(json.dumps(doc, indent=1)[:4000])
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fuzz-runtime.json").write_text(json.dumps(doc, indent=1) + "\n")
    write_markdown(doc, RESULTS / "fuzz-runtime.md")
    print(f"wrote {RESULTS / 'fuzz-runtime.json'} and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
