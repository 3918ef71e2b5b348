"""The bench table as markdown, the speed-ups against the teacher, and the Pareto plot."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any



log = logging.getLogger("edgegan.bench.harness")

TEACHER_REFERENCE = "teacher-samples"


def speedups(rows: list[dict[str, Any]]) -> None:
    """Teacher p50 ÷ model p50: in the same runtime (format) where the teacher was timed in it, and
    against the teacher in its fastest runtime (the fair ratio for a deployed student)."""
    teacher = {r["format"]: r["latency"]["p50_us"] for r in rows
               if r["kind"] == "teacher" and "p50_us" in r["latency"]}
    best = min(teacher.values(), default=None)
    for r in rows:
        p50 = r["latency"].get("p50_us")
        same = teacher.get(r["format"])
        r["speedup_vs_teacher_same_runtime"] = round(same / p50, 1) if p50 and same and r["kind"] != "teacher" else None
        r["speedup_vs_teacher_best"] = round(best / p50, 1) if p50 and best and r["kind"] != "teacher" else None


def _num(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v == "inf":
        return "∞"
    v = _num(v)
    if v is None:
        return "—"
    if math.isinf(v):
        return "∞"
    return format(v, spec)


def to_markdown(doc: dict) -> str:
    from edgegan.text import md_safe

    doc = md_safe(doc)  # names, files, labels and errors from files: one cell each, no control characters (issue 25)
    mc, st = doc["machine"], doc["settings"]
    lines = [f"# edgegan bench ({doc['created']})", "",
             f"Machine: {mc['cpu']} ({mc.get('isa', 'isa not recorded')}), {mc['cores']} cores; torch {doc['versions'].get('torch', '?')}, "
             f"numpy {doc['versions'].get('numpy', '?')}. Latency: p50 at batch {st['batch']} on {st['threads']} "
             f"thread(s), each model in its own process. Quality: {st['samples']} images per model, same latents.", ""]
    devices = doc.get("devices", [])
    for res in doc["results"]:
        q0 = next((r["quality"] for r in res["models"] if "metrics" in r.get("quality", {})), {})
        lines += [f"## {res['run']} (dataset {res['dataset']}, reference n={q0.get('n_reference', '?')})", "",
                  "| model | format | precision | params | MACs | bytes | compression | p50 µs | images/s | peak RSS MB "
                  "| × teacher same runtime | × teacher best runtime | clf-FID ↓ | clf-IS ↑ | clf-KID ↓ | clf-precision ↑ | clf-recall ↑ | SWD ↓ | colour FD ↓ | sharpness "
                  "| PSNR vs T dB | SSIM vs T |"
                  + "".join(f" {device_header(d)} |" for d in devices),
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                  + "---:|" * len(devices)]
        for r in res["models"]:
            lat, q = r["latency"], r.get("quality", {}).get("metrics", {})
            p50 = _fmt(lat.get("p50_us"), ",.1f") if "error" not in lat else f"error: {lat['error'][:60]}"
            swd = q.get("swd", {}).get("mean") if isinstance(q.get("swd"), dict) else None
            lines.append(
                f"| {r['name']} | {r['format']} | {r['precision']} | {r['params']:,} | {_fmt(r['macs'], ',.0f')} | "
                f"{_fmt(r['bytes'], ',.0f')} | {_fmt(r['compression'], ',.1f')} | {p50} | {_fmt(lat.get('images_per_s'), ',.0f')} | "
                f"{_fmt(lat.get('peak_rss_mb'), '.1f')} | {_fmt(r.get('speedup_vs_teacher_same_runtime'), ',.1f')} | "
                f"{_fmt(r.get('speedup_vs_teacher_best'), ',.1f')} | "
                f"{_fmt(q.get('classifier_fid'), '.2f')} | {_fmt(q.get('classifier_is'), '.2f')} | {_kid_cell(q)} | "
                f"{_fmt(q.get('classifier_precision'), '.3f')} | {_fmt(q.get('classifier_recall'), '.3f')} | {_fmt(swd, '.2f')} | "
                f"{_fmt(q.get('colour_fd'), '.3g')} | {_fmt(q.get('sharpness'), '.3g')} | {_fmt(q.get('psnr_db'), '.1f')} | {_fmt(q.get('ssim'), '.3f')} |"
                + "".join(f" {device_cell(r.get('devices', {}).get(d['label']))} |" for d in devices))
        for d in doc.get("devices", []):
            mc = d.get("machine") or {}
            lines += ["", f"Device columns \u2018{d['label']}\u2019: {d['file']} ({mc.get('platform', '?')}, "
                      f"python {d.get('python', '?')}); p50 µs at batch {(d.get('settings') or {}).get('batch', '?')}, "
                      "and whether its images match this host's within the export's parity thresholds."
                      + (" Emulated (qemu): those timings are the emulator's, not device latency." if mc.get("emulated")
                         else "")]
        per = [(r, r["quality"]["per_class"]) for r in res["models"] if "per_class" in r.get("quality", {})]
        if per:  # a conditional run (issue 20): does each model draw the class it is asked for
            classes = [c["name"] for c in per[0][1]["classes"]]
            lines += ["", "Per class (conditional): the domain classifier's accuracy on the class asked for, %.", "",
                      "| model | format | precision | all | " + " | ".join(classes) + " | mean per-class KID ↓ |",
                      "|---|---|---|---:|" + "---:|" * len(classes) + "---:|"]
            for r, pc in per:
                lines.append(f"| {r['name']} | {r['format']} | {r['precision']} | {100 * pc['accuracy']:.1f} | "
                             + " | ".join(f"{100 * c['accuracy']:.1f}" for c in pc["classes"])
                             + f" | {_fmt(pc.get('mean_class_kid'), '.3g')} |")
        if res["dataset"] == TEACHER_REFERENCE:
            lines += ["", "Reference: the teacher's own images on disjoint latents (no dataset known or given): the "
                      "teacher's SWD is the teacher-vs-teacher noise floor; PSNR/SSIM compare each model with the teacher "
                      "for the same z."]
        inc = q0.get("inception") or {}
        if inc.get("available") is False:
            lines += ["", f"Inception FID/IS: not computed ({inc.get('reason')})."]
        clf = q0.get("classifier") or {}
        if clf:
            lines += [f"Domain classifier: test accuracy {clf.get('test_accuracy', float('nan')):.4f}."]
        lines.append("")
    return "\n".join(lines)


def _kid_cell(q: dict[str, Any]) -> str:
    """KID as mean ± std over subsets (its own error bar)."""
    k = q.get("classifier_kid")
    if not isinstance(k, dict) or _num(k.get("mean")) is None:
        return "—"
    return f"{k['mean']:.3g} ± {k['std']:.2g}"


def device_header(d: dict[str, Any]) -> str:
    """A table's column header for one device's latency (shared by every bench table that has devices)."""
    if (d.get("machine") or {}).get("emulated"):
        return f"{d['label']}: p50 µs EMULATED, not device latency"
    return f"p50 µs on {d['label']}"


def device_cell(v: dict[str, Any] | None) -> str:
    """A table cell for one model on one device: p50 latency and whether its images matched the host's."""
    if not v:
        return "—"
    if v.get("error"):
        return f"error: {str(v['error'])[:40]}"
    par = v.get("parity_vs_host") or {}
    match = "" if not par else (" ✓ images" if par.get("passed") else " ✗ images differ")
    return f"{_fmt(v.get('p50_us'), ',.1f')}{match}"


def _pareto(doc: dict, path: Path) -> None:
    """Quality against latency, marker area proportional to bytes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no pareto.png (pip install 'edgegan[bench]')")
        return
    pts = []
    for res in doc["results"]:
        for r in res["models"]:
            q = r.get("quality", {}).get("metrics", {})
            y, ylabel = _num(q.get("classifier_fid")), "classifier FID (lower is better)"
            if y is None and isinstance(q.get("swd"), dict):
                y, ylabel = _num(q["swd"].get("mean")), "SWD (lower is better)"
            x = _num(r["latency"].get("p50_us"))
            if x is not None and y is not None:
                pts.append((x, y, r["bytes"] or 1, f"{r['name']} {r['format']} {r['precision']}", ylabel))
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    biggest = max(p[2] for p in pts)
    for i, (x, y, b, label, _) in enumerate(sorted(pts)):
        ax.scatter([x], [y], s=30 + 900 * math.sqrt(b / biggest), alpha=0.6)
        # neighbours on the latency axis get labels at staggered heights so they stay readable
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 10 - 11 * (i % 4)), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency p50 per call, µs (log)")
    ax.set_ylabel(pts[0][4])
    ax.set_title("quality vs latency (marker area ∝ file bytes)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
