"""Torch thread settings for training on a shared 2-core machine (issue #8): seconds per step of the
demo's teacher (dcgan d=32 on the embedded digits, batch 64) with 1 or 2 intra-op threads, OpenMP's
default wait policy or PASSIVE, alone and with ``--load`` CPU-bound competitor processes.

Each configuration runs in its own process (OpenMP reads OMP_WAIT_POLICY once, at start-up), in
alternating rounds so that other activity on the machine hits every configuration alike; the median
of the rounds is reported. Writes bench/results/threads.json and threads.md.

With ``--demo`` it also times the whole ``edgegan demo`` (train, distil, export, bench) alone and
under the same load, with edgegan's default thread settings.

    .venv/bin/python bench/scripts/bench_threads.py [--steps 40] [--rounds 2] [--load 2] [--demo]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
from edgegan.sysinfo import machine

RESULTS = Path(__file__).resolve().parents[1] / "results"
CONFIGS = {  # name -> (threads, OMP_WAIT_POLICY or None for OpenMP's default)
    "2 threads, default wait": (2, None),
    "2 threads, PASSIVE wait": (2, "PASSIVE"),
    "1 thread": (1, None),
}
WORKER = """
import sys, time, torch
from edgegan.train import TrainConfig, train_gan
torch.set_num_threads(int(sys.argv[1]))
m = train_gan(TrainConfig(dataset="digits", d=32, steps=int(sys.argv[2]), lr=5e-4, sample_every=0, checkpoint_every=0),
              sys.argv[3], progress=False)
print(m["train"]["seconds_per_step"])
"""
BUSY = "while True: pass"


def one(threads: int, policy: str | None, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as tmp:
        r = subprocess.run([sys.executable, "-c", WORKER, str(threads), str(steps), str(Path(tmp) / "run")],
                           capture_output=True, text=True, env=env, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--load", type=int, default=2, help="CPU-bound competitor processes in the loaded runs")
    ap.add_argument("--demo", action="store_true", help="also time `edgegan demo` alone and loaded")
    a = ap.parse_args()
    samples: dict[str, dict[str, list[float]]] = {c: {"alone": [], "loaded": []} for c in CONFIGS}
    load_avg: list[float] = []
    for _ in range(a.rounds):
        for cond in ("alone", "loaded"):
            busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(a.load if cond == "loaded" else 0)]
            try:
                for name, (threads, policy) in CONFIGS.items():
                    samples[name][cond].append(one(threads, policy, a.steps))
                    load_avg.append(os.getloadavg()[0])
            finally:
                for p in busy:
                    p.kill()
                    p.wait()
    demo = {}
    if a.demo:
        for cond in ("alone", "loaded"):
            busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(a.load if cond == "loaded" else 0)]
            try:
                with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
                    t0 = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "edgegan.app.cli", "demo", "--out", str(Path(tmp) / "demo"), "-q"],
                                   check=True, capture_output=True)
                    demo[cond] = round(time.perf_counter() - t0, 1)
            finally:
                for p in busy:
                    p.kill()
                    p.wait()
    med = {c: {k: statistics.median(v) for k, v in s.items()} for c, s in samples.items()}
    import torch  # noqa: F401 - imported for versions() to report it (the workers run in subprocesses)

    doc = {"created": now_iso(), "machine": machine(), "versions": versions(), "steps": a.steps, "rounds": a.rounds,
           "load_processes": a.load, "load_average_1min": [round(x, 2) for x in load_avg],
           "seconds_per_step": samples, "median": med, "demo_seconds": demo or None,
           "defaults": "edgegan sets OMP_WAIT_POLICY=PASSIVE unless the user set it; threads: torch's default unless --threads"}
    atomic_write_json(RESULTS / "threads.json", doc)
    mc = doc["machine"]
    best_loaded = min(med, key=lambda c: med[c]["loaded"])
    md = ["# Torch threads for training on a shared machine", "",
          f"Seconds per step of the demo teacher (dcgan d=32, digits, batch 64), median of {a.rounds} alternating rounds "
          f"of {a.steps} steps, each configuration in its own process. Loaded: {a.load} CPU-bound competitor processes "
          f"(`{BUSY}`). Machine: {mc['cpu']} ({mc['isa']}), {mc['cores']} cores; torch {doc['versions'].get('torch')}; "
          f"{doc['created']}. 1-min load average seen during the runs: {min(load_avg):.1f}-{max(load_avg):.1f} "
          "(other work on the machine counts too).", "",
          "| configuration | s/step alone | s/step loaded | loaded ÷ alone |", "|---|---:|---:|---:|"]
    for c, m in med.items():
        md.append(f"| {c} | {m['alone']:.3f} | {m['loaded']:.3f} | {m['loaded'] / m['alone']:.2f} |")
    md += ["", f"Fastest under load: {best_loaded}.", ""]
    if demo:
        md += [f"`edgegan demo` end to end with edgegan's defaults: {demo['alone']:.0f} s alone, {demo['loaded']:.0f} s with "
               f"{a.load} CPU-bound competitors (goal: 300 s alone).", ""]
    atomic_write_bytes(RESULTS / "threads.md", "\n".join(md).encode())
    print("\n".join(md))
    print(json.dumps(med))


if __name__ == "__main__":
    main()
