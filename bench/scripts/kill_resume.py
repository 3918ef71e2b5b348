"""Kill and resume, with proof (issue 14): SIGKILL ``edgegan train-teacher`` and ``edgegan distill`` at
random moments, continue each with ``--resume``, and compare the final weights with an uninterrupted
run of the same seed.

For each command: one uninterrupted reference run (timed), then ``--trials`` runs each killed with
SIGKILL (no handler runs, as in a crash or the OOM killer) at a moment drawn uniformly over
the reference's training time (counted from the moment the trial's run folder appears, when training
starts), then resumed until it finishes. Each trial is recorded as

* ``resumed``: ``--resume`` finished the run (exit 0);
* ``lost``: the run could not be continued (a torn or corrupt checkpoint: ``--resume`` failed);
* ``no_checkpoint``: killed before its first checkpoint (nothing to resume; a user starts again);
* ``finished``: killed after the run's manifest was written (its commit point): nothing to resume;
* ``identical``: the resumed run's final weights equal the reference's bit for bit (else the max |diff|).

Tiny configurations (a few hundred steps, small d, one thread), so the whole script takes minutes.
Writes bench/results/kill-resume.json and kill-resume.md.

    .venv/bin/python bench/scripts/kill_resume.py [--trials 10] [--steps 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
from edgegan.sysinfo import machine

RESULTS = Path(__file__).resolve().parents[1] / "results"
EXE = [sys.executable, "-c", "import sys; from edgegan.app.cli import main; sys.exit(main())", "--threads", "1"]


def commands(steps: int, every: int, teacher: Path | None) -> dict[str, list[str]]:
    out = {"train-teacher": ["train-teacher", "--dataset", "digits", "--d", "4", "--steps", str(steps),
                             "--batch-size", "16", "--lr", "5e-4", "--checkpoint-every", str(every),
                             "--sample-every", "0", "--seed", "7", "--quiet"]}
    if teacher is not None:
        out["distill"] = ["distill", "--teacher", str(teacher), "--d", "2", "--steps", str(steps), "--batch-size", "16",
                          "--loss", "joint", "--lam", "0.05", "--checkpoint-every", str(every), "--eval-samples", "64",
                          "--seed", "7", "--quiet"]
    return out


def reference_run(cmd: list[str], out: Path) -> dict[str, float]:
    """Run ``cmd`` to the end, noting when its run folder appeared (training starts: the folder is made
    after the data and models are ready), its first checkpoint, and its manifest (training done)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([*EXE, *cmd, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[str, float] = {}
    while p.poll() is None:
        now = time.perf_counter() - t0
        for key, path in (("start", out), ("first_checkpoint", out / "state.json"), ("manifest", out / "manifest.json")):
            if key not in seen and path.exists():
                seen[key] = now
        time.sleep(0.005)
    seen["total"] = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"reference run failed: {p.stderr.read()}")
    seen.setdefault("manifest", seen["total"])
    seen.setdefault("start", 0.0)
    return seen


def weights(run: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / "generator.safetensors"))


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[bool, float]:
    same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    diff = max((float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) if a[k].size else 0.0)
               for k in a) if a.keys() == b.keys() else float("inf")
    return same, diff


def trial(cmd: list[str], out: Path, kill_after: float, reference: dict[str, np.ndarray]) -> dict:
    """Start ``cmd``, SIGKILL it ``kill_after`` seconds after its training started (its run folder
    appeared), resume it, and compare the result with the reference weights."""
    p = subprocess.Popen([*EXE, *cmd, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while p.poll() is None and not out.exists():
        time.sleep(0.005)
    try:
        p.wait(timeout=kill_after)
        finished_first = True
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        finished_first = False
    rec: dict = {"kill_after_s": round(kill_after, 2), "finished_before_kill": finished_first}
    state = out / "state.json"
    rec["checkpoint_step"] = json.loads(state.read_text())["step"] if state.exists() else None
    if finished_first or (out / "manifest.json").exists():  # killed after its commit point: the run was done
        rec["outcome"] = "finished"
    elif rec["checkpoint_step"] is None:
        rec["outcome"] = "no_checkpoint"
        return rec
    else:
        r = subprocess.run([*EXE, *cmd, "--out", str(out), "--resume"], capture_output=True, text=True)
        rec["resume_exit"] = r.returncode
        if r.returncode != 0:
            rec["outcome"] = "lost"
            rec["error"] = r.stderr.strip()[-300:]
            return rec
        rec["outcome"] = "resumed"
    same, diff = compare(reference, weights(out))
    rec["identical"], rec["max_abs_diff"] = same, diff
    return rec


def summarise(trials: list[dict]) -> dict:
    return {"trials": len(trials),
            "resumed": sum(t["outcome"] == "resumed" for t in trials),
            "lost": sum(t["outcome"] == "lost" for t in trials),
            "no_checkpoint": sum(t["outcome"] == "no_checkpoint" for t in trials),
            "finished_before_kill": sum(t["outcome"] == "finished" for t in trials),
            "identical": sum(bool(t.get("identical")) for t in trials),
            "max_abs_diff": max((t["max_abs_diff"] for t in trials if "max_abs_diff" in t), default=None)}


def markdown(doc: dict) -> str:
    m = doc["machine"]
    lines = [
        "# Kill and resume (SIGKILL at random moments, then `--resume`)",
        "",
        f"{doc['created']}, {m['cpu']} ({m['cores']} cores, ISA: {m['isa']}), one torch thread; "
        f"torch {doc['versions'].get('torch', '?')}, edgegan {doc['versions'].get('edgegan', '?')}. "
        f"Each command: {doc['settings']['steps']} steps, a checkpoint every {doc['settings']['checkpoint_every']}; "
        "each kill comes at a moment drawn uniformly over the reference's training time, counted from the moment "
        f"the run's folder appears (training starts) (seed {doc['settings']['seed']}). `bench/scripts/kill_resume.py`.",
        "",
        "| command | config | training s | trials | resumed | lost | no checkpoint yet | finished before kill "
        "| identical to uninterrupted | max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in doc["commands"].items():
        s = r["summary"]
        diff = "n/a" if s["max_abs_diff"] is None else f"{s['max_abs_diff']:.3g}"
        lines.append(f"| {name} | {r['config']} | {r['reference_training_seconds']:.1f} | {s['trials']} | {s['resumed']} | "
                     f"{s['lost']} | {s['no_checkpoint']} | {s['finished_before_kill']} | {s['identical']} | {diff} |")
    lines += ["", "Kill moments (seconds into training) and the checkpoint step each resumed from:", ""]
    for name, r in doc["commands"].items():
        lines.append(f"- {name}: " + ", ".join(f"{t['kill_after_s']}s→{t['checkpoint_step']} ({t['outcome']})"
                                               for t in r["trials"]))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--checkpoint-every", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    from tqdm.auto import tqdm

    rng = random.Random(args.seed)
    doc: dict = {"schema": "edgegan.bench.kill-resume/1", "created": now_iso(), "machine": machine(),
                 "settings": {"trials": args.trials, "steps": args.steps, "checkpoint_every": args.checkpoint_every,
                              "seed": args.seed, "threads": 1, "signal": "SIGKILL"}, "commands": {}}
    tmp = Path(tempfile.mkdtemp(prefix="kill_resume_"))
    try:
        teacher = None
        for name in ("train-teacher", "distill"):
            cmd = commands(args.steps, args.checkpoint_every, teacher)[name]
            ref = tmp / f"{name}-reference"
            times = reference_run(cmd, ref)
            training = times["manifest"] - times["start"]
            if name == "train-teacher":
                teacher = ref
            reference = weights(ref)
            trials = []
            for i in tqdm(range(args.trials), desc=f"kill {name}", file=sys.stderr):
                out = tmp / f"{name}-{i}"
                trials.append(trial(cmd, out, rng.uniform(0.0, training), reference))
                shutil.rmtree(out, ignore_errors=True)
            doc["commands"][name] = {"config": " ".join(c for c in cmd if c != "--quiet"),
                                     "reference_seconds": round(times["total"], 2),
                                     "reference_training_seconds": round(training, 2),
                                     "reference_first_checkpoint_after_s": round(times.get("first_checkpoint", training)
                                                                                 - times["start"], 2),
                                     "summary": summarise(trials), "trials": trials}
            print(name, doc["commands"][name]["summary"], file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    import edgegan.checkpoint  # noqa: F401 - torch's version in the record

    doc["versions"] = versions()
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / "kill-resume.json", doc)
    atomic_write_bytes(args.results / "kill-resume.md", markdown(doc).encode())
    print(markdown(doc))


if __name__ == "__main__":
    main()
