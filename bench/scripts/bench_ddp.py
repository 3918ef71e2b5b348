"""Data-parallel training throughput (issue 14, "Scale-out"): seconds per step of `edgegan train-teacher`
at the same global batch in one process and in N torchrun processes (gloo on CPU, nccl on CUDA).

Each configuration runs as its own command (`python -m edgegan ...` or `python -m torch.distributed.run
--nproc_per_node N --standalone -m edgegan -- ...`), in alternating rounds so that other activity on
the machine hits every configuration alike; the median of the rounds' ``train.seconds_per_step`` (rank
0's training loop, so start-up and data loading are not counted) is reported. With ``--gpu`` the
configurations are 1 GPU and, where torch sees more, N GPUs (one process each, nccl), beside the CPU
ones. Writes bench/results/ddp-<label>.json and .md.

    .venv/bin/python bench/scripts/bench_ddp.py [--steps 30] [--rounds 2] [--d 32] [--gpu] [--label cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
from edgegan.sysinfo import machine

RESULTS = Path(__file__).resolve().parents[1] / "results"
NOTE = ("Read with care on a shared machine: N processes get a larger share of the CPUs than one process beside "
        "the same other work, so a ratio near or above 1 here says that the overhead of DistributedDataParallel "
        "(gloo all-reduces of the gradients, BatchNorm statistics over the processes) is small at this size, not that "
        "two cores train faster as two processes. Data parallelism pays across GPUs or machines; `--gpu` adds 1 GPU "
        "(and N where torch sees more) to the table.")


def configs(gpu: bool) -> dict[str, dict]:
    """name -> processes, threads per process, device."""
    out = {
        "1 process, 1 thread": {"procs": 1, "threads": 1, "device": "cpu"},
        "1 process, 2 threads": {"procs": 1, "threads": 2, "device": "cpu"},
        "2 processes (gloo), 1 thread each": {"procs": 2, "threads": 1, "device": "cpu"},
    }
    if gpu:
        import torch

        n = torch.cuda.device_count()
        if n < 1:
            raise SystemExit("--gpu: torch sees no CUDA device")
        out["1 GPU"] = {"procs": 1, "threads": 1, "device": "cuda"}
        if n > 1:
            out[f"{n} GPUs (nccl)"] = {"procs": n, "threads": 1, "device": "cuda"}
    return out


def one(cfg: dict, a: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        out = Path(tmp) / "run"
        edgegan = ["--threads", str(cfg["threads"]), "train-teacher", "-q", "--out", str(out), "--dataset", a.dataset,
                   "--limit", str(a.limit), "--d", str(a.d), "--batch-size", str(a.batch_size), "--steps", str(a.steps),
                   "--sample-every", "0", "--checkpoint-every", "0", "--device", cfg["device"]]
        if cfg["procs"] == 1:
            cmd = [sys.executable, "-m", "edgegan", *edgegan]
        else:  # "--": torchrun's parser would take edgegan's --d for its own --duplicate-... options
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(cfg["procs"]), "--standalone",
                   "-m", "edgegan", "--", *edgegan]
        env = {**os.environ, "OMP_NUM_THREADS": str(cfg["threads"])}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
        m = json.loads((out / "manifest.json").read_text())
    return {"seconds_per_step": m["train"]["seconds_per_step"], "distributed": m["train"]["distributed"],
            "load_avg_1min": os.getloadavg()[0], "versions": m["versions"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--d", type=int, default=32, help="teacher depth factor")
    ap.add_argument("--batch-size", type=int, default=64, help="global batch")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--limit", type=int, default=5000)
    ap.add_argument("--gpu", action="store_true", help="also 1 GPU and, where there are more, N GPUs")
    ap.add_argument("--label", default=None, help="results file name: ddp-LABEL.{json,md} (default: cpu or gpu)")
    a = ap.parse_args()
    cfgs = configs(a.gpu)
    samples: dict[str, list[dict]] = {n: [] for n in cfgs}
    for _ in range(a.rounds):
        for name, cfg in cfgs.items():
            samples[name].append(one(cfg, a))
    rows = []
    for name, cfg in cfgs.items():
        sps = statistics.median(s["seconds_per_step"] for s in samples[name])
        rows.append({"configuration": name, **cfg, "seconds_per_step": round(sps, 4),
                     "images_per_second": round(a.batch_size / sps, 1), "rounds": [s["seconds_per_step"] for s in samples[name]],
                     "distributed": samples[name][0]["distributed"]})
    base = rows[0]["seconds_per_step"]
    for r in rows:
        r["speed_vs_1_process_1_thread"] = round(base / r["seconds_per_step"], 2)
    loads = [s["load_avg_1min"] for v in samples.values() for s in v]
    doc = {"created": now_iso(), "machine": machine(), "versions": {**versions(), **samples[rows[0]["configuration"]][0]["versions"]},
           "workload": {"command": "train-teacher", "dataset": a.dataset, "limit": a.limit, "family": "dcgan", "d": a.d,
                        "global_batch": a.batch_size, "steps": a.steps, "rounds": a.rounds},
           "load_avg_1min": [min(loads), max(loads)], "rows": rows}
    label = a.label or ("gpu" if a.gpu else "cpu")
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"ddp-{label}.json", doc)
    mc = doc["machine"]
    lines = [
        "# Data-parallel training: one process against torchrun processes",
        "",
        f"Seconds per step of `edgegan train-teacher` (dcgan d={a.d}, {a.dataset} first {a.limit}, global batch "
        f"{a.batch_size}), median of {a.rounds} alternating rounds of {a.steps} steps, rank 0's training loop (start-up "
        f"not counted). Machine: {mc['cpu']} ({mc['isa']}), {mc['cores']} cores, {mc['memory_gib']} GiB; torch "
        f"{doc['versions'].get('torch')}; {doc['created']}. 1-min load average seen: {min(loads):.1f}-{max(loads):.1f} "
        "(the machine is shared: other work on it counts too).",
        "",
        "| configuration | processes × threads | device | batch per process | s/step | images/s | speed vs 1×1 |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['configuration']} | {r['procs']} × {r['threads']} | {r['device']} | "
                     f"{r['distributed']['batch_per_rank']} | {r['seconds_per_step']:.3f} | {r['images_per_second']:.0f} | "
                     f"{r['speed_vs_1_process_1_thread']:.2f} |")
    lines += ["", NOTE]
    atomic_write_bytes(RESULTS / f"ddp-{label}.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
