"""``edgegan pick``: the best student of a finished sweep within a latency and size budget."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgegan.config import opt
from edgegan.errors import BudgetError, ConfigError, SweepError
from edgegan.app.sweep.config import SCHEMA, TABLE_NAME, read_json

log = logging.getLogger("edgegan.sweep")


@dataclass(frozen=True)
class PickOptions:
    # `edgegan pick` is generated from these fields.
    max_latency_us: float | None = opt(None, "latency budget: p50 µs per image at batch 1 of the deployed file")
    max_bytes: int | None = opt(None, "size budget: bytes of the deployed file")
    target: str = opt("tflite:int8", "deployed form to choose among (format:precision); the sweep's own")
    device_results: tuple[str, ...] = opt((), "JSON written by a bench bundle on a board (edgegan bundle): its latency "
                                              "replaces this machine's for the files it measured; repeatable")

    def __post_init__(self) -> None:
        if self.max_latency_us is not None and not (math.isfinite(self.max_latency_us) and self.max_latency_us > 0):
            raise ConfigError(f"max-latency-us must be > 0, got {self.max_latency_us}")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ConfigError(f"max-bytes must be >= 1, got {self.max_bytes}")


def read_table(sweep_dir: str | Path) -> dict[str, Any]:
    """``sweep.json``: a bounded regular file, checked against its declared schema before any work
    (issue 25: a NaN headline won the pick, wrong types and deep nesting were internal errors)."""
    from edgegan.schema import SWEEP_TABLE, check

    p = Path(sweep_dir)
    p = p / TABLE_NAME if p.is_dir() else p
    if not os.path.lexists(p):
        raise SweepError(f"{sweep_dir}: no {TABLE_NAME} (run edgegan sweep --out {sweep_dir} to finish it)")
    doc = read_json(p, "sweep table")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise SweepError(f"{p}: not a sweep table (schema {got!r}, expected {SCHEMA})")
    check(doc, SWEEP_TABLE, str(p), SweepError)
    return doc


def pick(sweep_dir: str | Path, options: PickOptions) -> dict[str, Any]:
    """The best deployed student meeting the budget, ranked by the sweep's headline metric (on the deployed
    form's own images), with why every other candidate lost. Raises BudgetError if none fits."""
    doc = read_table(sweep_dir)
    if options.target != doc["config"]["target"]:
        raise SweepError(f"{sweep_dir}: the sweep deployed {doc['config']['target']}, not {options.target}")
    device = _device_latency(options.device_results)
    h = doc["headline"]
    cands = []
    for row in doc["rows"]:
        for rc, v in row["recipes"].items():
            for run in v["runs"]:
                lat, where = run.get("p50_us"), "this machine"
                if run.get("sha256") in device:
                    lat, where = device[run["sha256"]]
                cands.append({"d": row["d"], "recipe": rc, "seed": run["seed"], "id": run["id"], "file": run["file"],
                              "bytes": run["bytes"], "p50_us": lat, "latency_from": where,
                              "quality": run["headline_deployed"]})
    if not cands:
        raise SweepError(f"{sweep_dir}: the table lists no students")
    better = (lambda a, b: a > b) if h["higher_is_better"] else (lambda a, b: a < b)
    fits, lost = [], []
    for c in cands:
        why = []
        if options.max_latency_us is not None and (c["p50_us"] is None or c["p50_us"] > options.max_latency_us):
            why.append("no latency measured" if c["p50_us"] is None else
                       f"latency {c['p50_us']:,.1f} µs > {options.max_latency_us:,.1f}")
        if options.max_bytes is not None and c["bytes"] > options.max_bytes:
            why.append(f"{c['bytes']:,} bytes > {options.max_bytes:,}")
        if c["quality"] is None:
            why.append(f"no {h['key']}")
        (lost if why else fits).append({**c, "why": why} if why else c)
    if not fits:
        lat = [c["p50_us"] for c in cands if c["p50_us"] is not None]
        budget = " and ".join(b for b in (
            f"latency ≤ {options.max_latency_us:,.1f} µs" if options.max_latency_us is not None else "",
            f"≤ {options.max_bytes:,} bytes" if options.max_bytes is not None else "") if b)
        raise BudgetError(
            f"no student in {sweep_dir} meets the budget ({budget}): the fastest takes {min(lat):,.1f} µs, the "
            f"smallest has {min(c['bytes'] for c in cands):,} bytes" if lat else
            f"no student in {sweep_dir} meets the budget ({budget}): no latency was measured")
    best = fits[0]
    for c in fits[1:]:
        if better(c["quality"], best["quality"]) or (c["quality"] == best["quality"] and
                                                       (c["p50_us"] or math.inf) < (best["p50_us"] or math.inf)):
            best = c
    for c in fits:
        if c is not best:
            lost.append({**c, "why": [f"{h['key']} {c['quality']:.4g} not better than {best['quality']:.4g}"]})
    return {"sweep": str(sweep_dir), "metric": h, "budget": {"max_latency_us": options.max_latency_us,
            "max_bytes": options.max_bytes}, "target": options.target, "pick": best,
            "others": sorted(lost, key=lambda c: (c["d"], c["recipe"], c["seed"]))}


def _device_latency(paths: tuple[str, ...]) -> dict[str, tuple[float, str]]:
    """{sha256: (p50 µs, device label)} from device-results files (emulated timings are never used)."""
    from edgegan.bench.devices import device_label, load_device_results

    out: dict[str, tuple[float, str]] = {}
    for d in load_device_results(list(paths)):
        if (d.get("machine") or {}).get("emulated"):
            log.warning("%s: emulated timings are not device latency; ignored", d["_path"])
            continue
        for m in d["models"]:
            p50 = (m.get("latency") or {}).get("p50_us")
            if m.get("sha256") and p50 is not None:
                out[m["sha256"]] = (float(p50), device_label(d))
    return out
