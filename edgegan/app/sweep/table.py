"""The paper-shaped table of a sweep: aggregates over seeds, verdicts against the baselines, markdown,
the plot and the sample grids."""

from __future__ import annotations

import logging
import statistics as stats
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
from edgegan.app.sweep.config import (MARKDOWN_NAME, METRICS, PLOT_NAME, SCALE, SCHEMA, SWEEP_SWD, TABLE_NAME,
                                      Metric)

if TYPE_CHECKING:
    from edgegan.app.sweep.runs import Sweep

log = logging.getLogger("edgegan.sweep")


def _agg(values: list[float | None]) -> dict[str, Any] | None:
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"mean": stats.fmean(v), "std": stats.stdev(v) if len(v) > 1 else 0.0, "min": min(v), "max": max(v),
            "n": len(v), "values": v}


def _metrics_agg(results: list[dict[str, Any]], section: Callable[[dict], dict]) -> dict[str, Any]:
    return {k: _agg([m.value(section(r)["metrics"]) for r in results]) for k, m in METRICS.items()}


def write_table(sw: Sweep, plan: list[dict[str, Any]]) -> dict[str, Any]:
    from edgegan.sysinfo import machine

    cfg = sw.cfg
    results = {s["id"]: sw.result(s["id"]) for s in plan}
    t = results["teacher-score"]
    h = sw.scorer.headline
    rows = []
    for d in cfg.sizes():
        studs = {rcp: [results[f"student-d{d}-{rcp}-s{s}"] for s in range(cfg.seeds)] for rcp in cfg.recipe_list()}
        chosen = sw.chosen_lr(d)
        bases = [results[f"baseline-d{d}-lr{chosen['lr']:g}-s0"]] + [results[f"baseline-d{d}-s{s}"]
                                                                     for s in range(1, cfg.seeds)]
        first = next(iter(studs.values()))[0]
        row = {"d": d, "params": first["params"], "ratio": first["compression_ratio"], "recipes": {}, "baseline": {
            "lr": chosen, "seeds": [b["seed"] for b in bases], "metrics": _metrics_agg(bases, lambda r: r["quality"])}}
        for rcp, rs in studs.items():
            row["recipes"][rcp] = {
                "seeds": [r["seed"] for r in rs], "metrics": _metrics_agg(rs, lambda r: r["quality"]),
                "deployed": {"target": cfg.target, "metrics": _metrics_agg(rs, lambda r: r["deployed"]["quality"]),
                             "p50_us": _agg([r["deployed"]["latency"].get("p50_us") for r in rs]),
                             "bytes": _agg([r["deployed"]["bytes"] for r in rs]),
                             "parity_passed": all((r["deployed"].get("parity") or {}).get("passed") for r in rs),
                             "parity_failed_seeds": [r["seed"] for r in rs
                                                     if not (r["deployed"].get("parity") or {}).get("passed")]},
                "runs": [{"seed": r["seed"], "id": r["id"], "file": r["deployed"]["file"],
                          "sha256": r["deployed"]["sha256"], "bytes": r["deployed"]["bytes"],
                          "p50_us": r["deployed"]["latency"].get("p50_us"),
                          "latency_error": r["deployed"]["latency"].get("error"),
                          "headline": h.value(r["quality"]["metrics"]),
                          "headline_deployed": h.value(r["deployed"]["quality"]["metrics"])} for r in rs]}
        row["verdict"] = _verdict(row, h)
        rows.append(row)
    tq = t["quality"]
    doc = {
        "schema": SCHEMA, "created": now_iso(), "machine": machine(), "versions": versions(), "config": asdict(cfg),
        "scale": "CPU-scale" if cfg.device == "cpu" else f"device {cfg.device}",
        "headline": {"key": h.key, "label": h.label, "higher_is_better": h.higher_is_better},
        "metrics": {k: {"label": m.label, "higher_is_better": m.higher_is_better} for k, m in METRICS.items()},
        "budget": {"steps": cfg.steps, "batch_size": cfg.batch_size,
                   "statement": f"every student and every baseline: {cfg.steps} optimiser steps of {cfg.batch_size}"},
        "reference": tq["reference"], "classifier": tq["classifier"], "samples": cfg.samples, "swd_config": SWEEP_SWD,
        "teacher": {k: t[k] for k in ("spec", "params", "d", "steps", "latent_dim")} | {
            "metrics": {k: m.value(tq["metrics"]) for k, m in METRICS.items()}},
        "baseline_tuning": {"lrs": list(cfg.lrs()), "d_lr": 2e-4, "holdout_images": sw.scorer.n_holdout,
                            "train_images": sw.scorer.train_limit},
        "rows": rows,
        "seconds": round(sum(r.get("wall_seconds", 0) for r in results.values()), 1),
    }
    doc["goal"] = _goal(doc)
    atomic_write_json(sw.out / TABLE_NAME, doc)
    atomic_write_bytes(sw.out / MARKDOWN_NAME, to_markdown(doc).encode())
    _plot(doc, sw.out / PLOT_NAME)
    _grids(sw, doc, results)
    return doc


def _verdict(row: dict[str, Any], h: Metric) -> dict[str, Any]:
    """Best recipe (by the headline's mean) against the tuned baseline: a win only beyond both spreads."""
    means = {r: (v["metrics"][h.key] or {}).get("mean") for r, v in row["recipes"].items()}
    means = {r: m for r, m in means.items() if m is not None}
    b = row["baseline"]["metrics"][h.key]
    if not means or b is None:
        return {"best_recipe": None, "beats_baseline_beyond_spread": None}
    best = (max if h.higher_is_better else min)(means, key=means.get)
    s = row["recipes"][best]["metrics"][h.key]
    sign = 1 if h.higher_is_better else -1
    margin = sign * (s["mean"] - b["mean"])
    beyond = margin > s["std"] + b["std"]
    dep = row["recipes"][best]["deployed"]["metrics"][h.key]
    rel = abs(dep["mean"] - s["mean"]) / abs(s["mean"]) if dep and s["mean"] else None
    return {"best_recipe": best, "metric": h.key, "best_mean": s["mean"], "best_std": s["std"], "baseline_mean": b["mean"],
            "baseline_std": b["std"], "margin": margin, "beats_baseline_beyond_spread": bool(beyond),
            "deployed_relative_change": rel}


def _goal(doc: dict[str, Any]) -> dict[str, Any]:
    """The issue's goal, measured: wins beyond the spread; (MNIST) d=2 IS ≥ 90 % and FID ≤ 2× the teacher's;
    the deployed form within 2 % of fp32 on every metric that is a ratio-scale number (FID, KID, IS, SWD)."""
    rows = doc["rows"]
    g: dict[str, Any] = {"best_beats_baseline_every_d": all(r["verdict"]["beats_baseline_beyond_spread"] for r in rows)}
    tm = doc["teacher"]["metrics"]
    small = min(rows, key=lambda r: r["d"])
    best = small["verdict"]["best_recipe"]
    if best and tm.get("classifier_is") and tm.get("classifier_fid"):
        bm = small["recipes"][best]["metrics"]
        g["smallest_d"] = small["d"]
        g["is_share_of_teacher"] = bm["classifier_is"]["mean"] / tm["classifier_is"]
        g["fid_times_teacher"] = bm["classifier_fid"]["mean"] / tm["classifier_fid"]
        g["is_at_least_90pc"] = g["is_share_of_teacher"] >= 0.9
        g["fid_at_most_2x"] = g["fid_times_teacher"] <= 2.0
    worst = 0.0
    for r in rows:
        for v in r["recipes"].values():
            for k in ("classifier_fid", "classifier_is", "classifier_kid", "swd"):
                a, b = v["metrics"].get(k), v["deployed"]["metrics"].get(k)
                if a and b and a["mean"]:
                    worst = max(worst, abs(b["mean"] - a["mean"]) / abs(a["mean"]))
    g["deployed_worst_relative_change"] = worst
    g["deployed_within_2pc"] = worst <= 0.02
    return g


def _cell(a: dict[str, Any] | None, key: str) -> str:
    if not a:
        return "—"
    s = SCALE.get(key, 1.0)
    prec = 3 if key.endswith(("precision", "recall")) else 2
    return f"{s * a['mean']:.{prec}f} ± {s * a['std']:.{prec}f}"


def to_markdown(doc: dict[str, Any]) -> str:
    cfg, mc, t = doc["config"], doc["machine"], doc["teacher"]
    recipes = [r for r in cfg["recipes"].split(",") if r]
    h = doc["headline"]
    lines = [
        f"# edgegan sweep: {cfg['dataset']} ({doc['scale']})", "",
        f"Machine: {mc['cpu']} ({mc.get('isa', '?')}), {mc['cores']} cores; torch {doc['versions'].get('torch', '?')}. "
        f"Teacher: d={t['d']}, {t['params']:,} params, {t['steps']} steps ({t['spec']}). "
        f"Budget: {doc['budget']['statement']} (equal for students and baselines). Seeds: {cfg['seeds']}; "
        f"cells are mean ± sample std over seeds. Metrics on {doc['samples']} images per model, same latents, against "
        f"{doc['reference']['count']} {doc['reference']['name']} {doc['reference']['split']} images. "
        f"Baseline generator lr chosen per size from {', '.join(f'{x:g}' for x in doc['baseline_tuning']['lrs'])} "
        f"(discriminator 2e-4) on {doc['baseline_tuning']['holdout_images']} held-out training images (seed 0), never "
        f"on the reference. Deployed form: {cfg['target']} through the runtime; latency p50 at batch 1, 1 thread.", "",
        f"Headline metric: **{h['label']}**.", ""]
    for key, m in doc["metrics"].items():
        if all(r["baseline"]["metrics"].get(key) is None for r in doc["rows"]):
            continue
        tv = doc["teacher"]["metrics"].get(key)
        tcell = "—" if tv is None else f"{SCALE.get(key, 1.0) * tv:.{3 if key.endswith(('precision', 'recall')) else 2}f}"
        lines += [f"## {m['label']} (teacher {tcell})", "",
                  "| d | params | ratio | " + " | ".join(f"{r} | {r} {cfg['target']}" for r in recipes)
                  + " | baseline (lr) |", "|---:|---:|---:|" + "---:|---:|" * len(recipes) + "---:|"]
        for r in doc["rows"]:
            cells = " | ".join(f"{_cell(r['recipes'][rc]['metrics'].get(key), key)} | "
                               f"{_cell(r['recipes'][rc]['deployed']['metrics'].get(key), key)}" for rc in recipes)
            lines.append(f"| {r['d']} | {r['params']:,} | {r['ratio']:,.0f}:1 | {cells} | "
                         f"{_cell(r['baseline']['metrics'].get(key), key)} ({r['baseline']['lr']['lr']:g}) |")
        lines.append("")
    lines += [f"## Deployed files ({cfg['target']})", "", "| d | " + " | ".join(f"{r} p50 µs | {r} bytes" for r in recipes)
              + " |", "|---:|" + "---:|---:|" * len(recipes)]
    for r in doc["rows"]:
        dep = [r["recipes"][rc]["deployed"] for rc in recipes]
        lines.append(f"| {r['d']} | " + " | ".join(
            f"{_cell(x['p50_us'], 'p50').replace('.00', '')} | {x['bytes']['mean']:,.0f}" if x["p50_us"] else
            f"— | {x['bytes']['mean']:,.0f}" for x in dep) + " |")
    failed = [f"d={r['d']} {rc} seed {s}" for r in doc["rows"] for rc in recipes
              for s in r["recipes"][rc]["deployed"].get("parity_failed_seeds", [])]
    if failed:
        lines += ["", f"Parity against PyTorch missed the {cfg['target']} thresholds (file kept, scored on its own "
                  f"images): {', '.join(failed)}."]
    lines += ["", "## Verdicts", "", f"| d | best recipe | its {h['key']} | tuned baseline | beats it beyond the spread |"
              " deployed vs fp32 |", "|---:|---|---:|---:|---|---:|"]
    for r in doc["rows"]:
        v = r["verdict"]
        if v["best_recipe"] is None:
            lines.append(f"| {r['d']} | — | — | — | — | — |")
            continue
        s = SCALE.get(h["key"], 1.0)
        rel = "—" if v["deployed_relative_change"] is None else f"{100 * v['deployed_relative_change']:.1f} %"
        lines.append(f"| {r['d']} | {v['best_recipe']} | {s * v['best_mean']:.3g} ± {s * v['best_std']:.2g} | "
                     f"{s * v['baseline_mean']:.3g} ± {s * v['baseline_std']:.2g} | "
                     f"{'yes' if v['beats_baseline_beyond_spread'] else 'no'} | {rel} |")
    g = doc["goal"]
    goal = [f"best recipe beats the tuned baseline at every d beyond the spread: "
            f"**{'yes' if g['best_beats_baseline_every_d'] else 'no'}**"]
    if "is_share_of_teacher" in g:
        goal.append(f"d={g['smallest_d']} best recipe: IS {100 * g['is_share_of_teacher']:.0f} % of the teacher's "
                    f"(goal ≥ 90 %), FID {g['fid_times_teacher']:.2f}× the teacher's (goal ≤ 2×)")
    goal.append(f"deployed form's worst change of a recipe's mean FID/KID/IS/SWD: "
                f"{100 * g['deployed_worst_relative_change']:.1f} % (goal ≤ 2 %)")
    lines += ["", "Goal: " + "; ".join(goal) + "."]
    lines += ["", f"Plot: {PLOT_NAME}; sample grids per size: samples/d<d>.png (teacher, each recipe's seed 0 and its "
              "deployed form, the baseline's seed 0; same latents).", ""]
    return "\n".join(lines)


def _plot(doc: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s", path.name)
        return
    h = doc["headline"]
    s = SCALE.get(h["key"], 1.0)
    ds = [r["d"] for r in doc["rows"]]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    series = {rc: [r["recipes"][rc]["metrics"][h["key"]] for r in doc["rows"]] for rc in doc["rows"][0]["recipes"]}
    series["baseline (tuned lr)"] = [r["baseline"]["metrics"][h["key"]] for r in doc["rows"]]
    for name, vals in series.items():
        pts = [(d, v) for d, v in zip(ds, vals) if v]
        if pts:
            ax.errorbar([p[0] for p in pts], [s * p[1]["mean"] for p in pts], yerr=[s * p[1]["std"] for p in pts],
                        marker="o", capsize=3, label=name, linestyle="--" if name.startswith("baseline") else "-")
    tv = doc["teacher"]["metrics"].get(h["key"])
    if tv is not None:
        ax.axhline(s * tv, color="k", linewidth=0.8, label=f"teacher d={doc['teacher']['d']}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ds, [str(d) for d in ds])
    ax.set_xlabel("student depth d")
    ax.set_ylabel(h["label"])
    ax.set_title(f"{doc['config']['dataset']} sweep ({doc['scale']}), mean ± std over seeds")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _grids(sw: Sweep, doc: dict[str, Any], results: dict[str, dict]) -> None:
    import numpy as np

    from edgegan.viz import save_comparison

    cfg = sw.cfg
    teacher = np.load(sw.run_dir("teacher-score") / "samples.npy")
    for r in doc["rows"]:
        d = r["d"]
        cols = {f"teacher d={doc['teacher']['d']}": teacher}
        for rc in cfg.recipe_list():
            rd = sw.run_dir(f"student-d{d}-{rc}-s0")
            cols[f"{rc}"] = np.load(rd / "samples.npy")
            cols[f"{rc} {cfg.target}"] = np.load(rd / "samples-deployed.npy")
        cols[f"baseline lr {r['baseline']['lr']['lr']:g}"] = np.load(
            sw.run_dir(f"baseline-d{d}-lr{r['baseline']['lr']['lr']:g}-s0") / "samples.npy")
        save_comparison(cols, sw.out / "samples" / f"d{d}.png", nrow=4, scale=2)
