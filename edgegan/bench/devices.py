"""Device results: the JSON a bench bundle's script writes on a board (``edgegan.app.bundle``), read and
merged into the host's table as columns labelled with the board's CPU."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


from edgegan.errors import BenchError, EdgeganError

log = logging.getLogger("edgegan.bench.harness")


DEVICE_SCHEMA = "edgegan.device-results/1"  # written by the bundle's script (edgegan/bundle_script.py)


DEVICE_KEYS = ("p50_us", "p90_us", "mean_us", "images_per_s", "load_ms", "first_ms", "peak_rss_mb", "backend",
               "runs", "in_process")


def load_device_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Read and check device-results files (before anything is written); raises BenchError."""
    docs = []
    for p in paths:
        from edgegan.manifest import load_json

        try:  # bounded, non-blocking, regular files only (issue 14)
            d = load_json(p, "device-results file", 64 << 20)
        except EdgeganError as e:
            raise BenchError(str(e).replace("manifest", "device-results file")) from None
        if not isinstance(d, dict) or d.get("schema") != DEVICE_SCHEMA or not isinstance(d.get("models"), list):
            raise BenchError(f"{p}: not a device-results file (schema {DEVICE_SCHEMA}, written by a bundle's "
                             "run_bench.py)")
        from edgegan.schema import DEVICE_RESULTS, check

        check(d, DEVICE_RESULTS, str(p), BenchError)  # types, finite non-negative numbers (issue 25)
        d["_path"] = str(p)
        docs.append(d)
    return docs


def device_label(d: dict[str, Any]) -> str:
    """The board's CPU as the column says it; an emulator is never shown as the device."""
    mc = d.get("machine") or {}
    cpu = str(mc.get("cpu") or mc.get("machine") or "device")
    if mc.get("browser"):  # the web page's device.json (edgegan/web/app.js): the browser runs it, on this CPU
        cpu = f"{mc['browser']} on {cpu}"
    return f"{cpu} (emulated)" if mc.get("emulated") and "emulated" not in cpu else cpu


def merge_device_results(doc: dict[str, Any], devices: list[dict[str, Any]]) -> None:
    """Add each device's numbers to the export rows they measured (matched by the file's sha256), under
    ``row["devices"][label]``, and list the devices in ``doc["devices"]``. Emulated timings keep
    ``emulated: true`` and the markdown never shows them as device latency."""
    if not devices:
        return
    doc["devices"] = []
    for d in devices:
        label = device_label(d)
        by_sha = {m.get("sha256"): m for m in d["models"] if m.get("sha256")}
        matched = 0
        for res in doc["results"]:
            for r in res["models"]:
                if r["kind"] != "export" or r.get("sha256") not in by_sha:
                    continue
                m = by_sha[r["sha256"]]
                lat = m.get("latency") or {}
                r.setdefault("devices", {})[label] = {
                    **{k: lat.get(k) for k in DEVICE_KEYS if k in lat},
                    "error": m.get("error") or lat.get("error"),
                    "emulated": bool((d.get("machine") or {}).get("emulated")),
                    "parity_vs_host": m.get("parity"),
                }
                matched += 1
        if not matched:
            log.warning("%s: none of its models is an export in this bench (different files?)", d["_path"])
        doc["devices"].append({"label": label, "file": d["_path"], "machine": d.get("machine"),
                               "python": d.get("python"), "versions": d.get("versions"),
                               "settings": d.get("settings"), "created": d.get("created"), "matched": matched})
