"""``edgegan sweep``: the paper's table in one command, and ``edgegan pick``: the student to ship.

A sweep (issue 13) trains or reuses a teacher, distils one student per size × recipe × seed, trains a
scratch baseline per size and seed whose generator learning rate is chosen on a held-out split,
exports every student to the deployed form (TFLite int8 by default) and scores both forms, then
writes the paper-shaped table (``sweep.json``, ``sweep.md``, ``plot.png``, ``samples/d*.png``).

Equal budget: every student and every baseline takes ``--steps`` optimiser steps of ``--batch-size``.

Resumable run by run. ``DIR/plan.json`` lists the runs (written once; a second call with another
configuration is refused). Each run is a folder ``DIR/runs/<id>/`` holding its edgegan run(s),
``result.json`` and, written last, ``DONE``. A killed sweep started again reuses every folder with
``DONE`` and starts any other one afresh (a run is minutes at most; its own checkpoint would save little).

The baseline's learning rate: for each size, seed 0 is trained at every rate of ``--baseline-lrs`` on the
training split minus its last ``--holdout`` images, and scored by the headline metric against those held-out
images (never against the test split, whose images are the table's reference). The best rate trains the
other seeds; the seed-0 run at that rate is reused as the table's seed-0 baseline.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import statistics as stats
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from edgegan.config import DATASET_NAMES, opt
from edgegan.errors import BudgetError, ConfigError, SweepError
from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions

MAX_JSON_BYTES = 64 << 20  # a sweep's plan, run results and table
DEFAULT_HOLDOUT = 1000  # held-out training images for the baselines' learning rate, at most

log = logging.getLogger(__name__)

SCHEMA = "edgegan.sweep/1"
PLAN_NAME, TABLE_NAME, MARKDOWN_NAME, PLOT_NAME = "plan.json", "sweep.json", "sweep.md", "plot.png"
DONE_NAME, RESULT_NAME = "DONE", "result.json"
SCORE_SEED = 0  # latents and reference draw shared by every model of a sweep
GRID_IMAGES = 32  # images per model kept for the sample grids
# SWD with a quarter of ProGAN's patches and half its directions: a sweep scores ~2 models per run and
# the reference's projections are re-sorted for each, which dominated a CPU sweep's time at the defaults.
# Recorded in sweep.json; its values are comparable within a sweep, not with `edgegan bench`'s SWD.
SWEEP_SWD = {"nhoods_per_image": 32, "dir_repeats": 2, "dirs_per_repeat": 128}


@dataclass(frozen=True)
class Metric:
    key: str  # key in evaluate()'s "metrics"
    label: str  # column header, naming the feature space
    higher_is_better: bool

    def value(self, metrics: dict[str, Any]) -> float | None:
        v = metrics.get(self.key)
        if isinstance(v, dict):
            v = v.get("mean")
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


# Every metric the table reports, in column order; the headline is one of them.
METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("classifier_kid", "KID (classifier features) ↓", False),
    Metric("classifier_fid", "FID (classifier features) ↓", False),
    Metric("classifier_is", "IS (classifier) ↑", True),
    Metric("classifier_precision", "precision k=3 (classifier features) ↑", True),
    Metric("classifier_recall", "recall k=3 (classifier features) ↑", True),
    Metric("swd", "SWD (Laplacian patches) ↓", False),
    Metric("inception_fid", "FID (Inception) ↓", False),
    Metric("inception_kid", "KID×1e3 (Inception) ↓", False),
)}
HEADLINES = ("auto", *METRICS)
AUTO_HEADLINES = ("inception_kid", "classifier_kid", "swd")  # "auto": the first one the dataset has
# Inception KID is shown ×1000 as in the literature; the classifier's ReLU features are not normalised, so
# its KID is of order 10-100 and shown as it is.
SCALE = {"inception_kid": 1e3}


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals) or len(set(vals)) != len(vals):
        raise ConfigError(f"{name} must be distinct integers >= 1, got {text!r}")
    return vals


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if not vals or any(not (math.isfinite(v) and v > 0) for v in vals) or len(set(vals)) != len(vals):
        raise ConfigError(f"{name} must be distinct numbers > 0, got {text!r}")
    return vals


@dataclass(frozen=True)
class SweepConfig:
    # `edgegan sweep` is generated from these fields.
    dataset: str = opt("mnist", "dataset of the teacher, the baselines and the reference images", choices=DATASET_NAMES)
    data_dir: str | None = opt(None, "folder holding the dataset's files (default: $EDGEGAN_DATA/<dataset>)")
    teacher: str = opt("64", "an edgegan teacher run to reuse (directory or manifest.json), or a depth d: train one "
                       "in DIR/runs/teacher")
    teacher_steps: int = opt(2000, "optimiser steps of a teacher the sweep trains")
    d: str = opt("2,4,8,16,32", "student (and baseline) sizes: depth factors, comma-separated")
    recipes: str = opt("mse,joint,best", "distillation recipes (edgegan distill --loss), comma-separated")
    seeds: int = opt(3, "seeds per size and recipe, and per baseline size")
    steps: int = opt(2000, "optimiser steps of every student and every baseline (the equal budget)")
    batch_size: int = opt(64, "latents (students) or images (baselines) per step")
    baseline_lrs: str = opt("2e-4,5e-4,1e-3,2e-3", "baseline generator learning rates tried (discriminator: 2e-4); "
                            "the best on the held-out split is used")
    holdout: int | None = opt(None, "last training images kept from the baselines to choose their learning rate "
                              "(default: 1000, or a sixth of the training images where that is fewer)")
    samples: int = opt(2000, "images per model for the metrics")
    latent_pool: int = opt(4096, "students draw z from this many fixed latents whose teacher outputs are computed "
                           "once per seed for all students (0: fresh z every step, the paper)")
    target: str = opt("tflite:int8", "the deployed form every student is exported to and scored in (format:precision)")
    headline: str = opt("auto", "metric ranking models in the verdicts, plot and pick (auto: Inception KID, else "
                        "classifier KID, else SWD)", choices=HEADLINES)
    device: str = opt("cpu", "cpu, cuda or cuda:N (training)")

    def __post_init__(self) -> None:
        from edgegan.distill import LOSSES

        self.sizes()
        self.lrs()
        bad = [r for r in self.recipe_list() if r not in LOSSES]
        if bad or not self.recipe_list():
            from edgegan.errors import UnknownNameError

            raise UnknownNameError("recipe", (bad or [self.recipes])[0], list(LOSSES))
        for name, lo in (("seeds", 1), ("steps", 1), ("batch_size", 1), ("teacher_steps", 1), ("holdout", 2),
                         ("samples", 4), ("latent_pool", 0)):
            v = getattr(self, name)
            if v is None and name == "holdout":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= {lo}, got {v!r}")
        if self.latent_pool and self.latent_pool < self.batch_size:
            raise ConfigError(f"latent-pool ({self.latent_pool}) must hold at least one batch ({self.batch_size})")
        self.target_parts()
        self.teacher_depth()

    def sizes(self) -> tuple[int, ...]:
        return _ints(self.d, "d")

    def lrs(self) -> tuple[float, ...]:
        return _floats(self.baseline_lrs, "baseline-lrs")

    def recipe_list(self) -> list[str]:
        return [r.strip() for r in self.recipes.split(",") if r.strip()]

    def target_parts(self) -> tuple[str, str]:
        """(format, --quantize value) of ``target``; ``fp32`` or nothing after the colon: no quantization."""
        fmt, _, precision = self.target.partition(":")
        from edgegan.export.formats import FORMATS

        spec = FORMATS.get(fmt)  # UnknownNameError with the valid ones
        quantize = "none" if precision in ("", "fp32") else precision
        spec.precision(quantize)
        return fmt, quantize

    def teacher_depth(self) -> int | None:
        """The depth of a teacher the sweep trains, or None when ``teacher`` names a run."""
        if self.teacher.isdigit():
            d = int(self.teacher)
            if d < 1:
                raise ConfigError(f"teacher depth must be >= 1, got {d}")
            return d
        return None


# ------------------------------------------------------------------------------------------ the plan

def make_plan(cfg: SweepConfig) -> list[dict[str, Any]]:
    """The runs of a sweep in the order they execute: teacher, baselines' tuning, baselines, students."""
    runs: list[dict[str, Any]] = []
    if cfg.teacher_depth() is not None:
        runs.append({"id": "teacher", "kind": "teacher", "d": cfg.teacher_depth(), "seed": 0})
    runs.append({"id": "teacher-score", "kind": "teacher-score"})
    for d in cfg.sizes():
        for lr in cfg.lrs():
            runs.append({"id": f"baseline-d{d}-lr{lr:g}-s0", "kind": "baseline-tune", "d": d, "lr": lr, "seed": 0})
        for seed in range(1, cfg.seeds):
            runs.append({"id": f"baseline-d{d}-s{seed}", "kind": "baseline", "d": d, "seed": seed})
    for d in cfg.sizes():
        for recipe in cfg.recipe_list():
            for seed in range(cfg.seeds):
                runs.append({"id": f"student-d{d}-{recipe}-s{seed}", "kind": "student", "d": d, "recipe": recipe,
                             "seed": seed})
    return runs


def _write_or_check_plan(cfg: SweepConfig, out: Path, plan: list[dict[str, Any]]) -> None:
    p = out / PLAN_NAME
    doc = {"schema": SCHEMA, "config": asdict(cfg), "runs": plan}
    if p.exists():
        try:
            old = read_json(p, "sweep plan")
        except SweepError as e:
            raise SweepError(f"{e}; use another --out") from None
        if not isinstance(old, dict) or not isinstance(old.get("config"), dict):
            raise SweepError(f"{p}: not a sweep plan; use another --out")
        if old.get("config") != doc["config"]:
            changed = sorted(k for k in doc["config"] if (old.get("config") or {}).get(k) != doc["config"][k])
            raise SweepError(f"{out}: a sweep with other settings ({', '.join(changed)}) is there; continue it with the "
                             "same options or use another --out")
        return
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: directory exists, is not empty and holds no sweep plan; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(p, doc)


# ------------------------------------------------------------------------------------------ scoring

class Scorer:
    """The sweep's shared measuring set-up: the same latents for every model, the test-split reference
    (the table's), and the held-out training images (the baseline's learning-rate choice)."""

    def __init__(self, cfg: SweepConfig, progress: bool):
        from edgegan.data import ImageDataset, load_dataset
        from edgegan.metrics.evaluate import prepare_reference

        self.cfg = cfg
        train = load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="train")
        # Sized from the data unless given (issue 25: a fixed 1,000 failed on datasets smaller than 2,000).
        self.n_holdout = cfg.holdout if cfg.holdout is not None else min(DEFAULT_HOLDOUT, len(train) // 6)
        if self.n_holdout < 2 or self.n_holdout >= len(train) // 2:
            raise ConfigError(f"holdout {self.n_holdout} does not fit {len(train)} training images (it must be at least 2 "
                              "and less than half of them)")
        self.n_train = len(train)
        self.train_limit = len(train) - self.n_holdout  # baselines train on the first images only
        held = ImageDataset(train.name, train.images[self.train_limit:],
                            None if train.labels is None else train.labels[self.train_limit:], train.num_classes,
                            train.source, "train-holdout")
        test = load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="test")
        clf = None
        if test.labels is not None:
            from edgegan.metrics.classifier import get_classifier

            clf = get_classifier(cfg.dataset, cfg.data_dir, progress=progress)
        from edgegan.metrics.swd import SWDConfig

        inception = False  # Inception weights are not fetched by a sweep: our own feature spaces (issue 13)
        swd = SWDConfig(**SWEEP_SWD)
        self.test = prepare_reference(test, classifier=clf, n_reference=min(len(test), max(cfg.samples, 1000)),
                                      reference_seed=SCORE_SEED, swd_seed=SCORE_SEED, inception=inception,
                                      swd_config=swd)
        self.holdout = prepare_reference(held, classifier=clf, swd_seed=SCORE_SEED, inception=inception, swd_config=swd)
        self.headline = self._headline()

    def _headline(self) -> Metric:
        if self.cfg.headline != "auto":
            return METRICS[self.cfg.headline]
        have = {"classifier_kid": self.test.classifier is not None, "inception_kid": self.test.inception_net is not None,
                "swd": True}
        return METRICS[next(k for k in AUTO_HEADLINES if have[k])]

    def score(self, images, reference: str = "test") -> dict[str, Any]:
        from edgegan.metrics.evaluate import evaluate

        ref = self.test if reference == "test" else self.holdout
        q = evaluate(images, ref)
        return {"metrics": _slim(q["metrics"]), "n_samples": q["n_samples"], "n_reference": q["n_reference"],
                "reference": q["reference"], "classifier": q["classifier"]}


def _slim(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics kept in the table: one number (or mean/std) each, unavailable ones with their reason."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if k == "swd" and isinstance(v, dict):
            out[k] = v.get("mean")
        else:
            out[k] = v
    return out


def _images_of(forward: Callable, z) -> Any:
    import numpy as np
    import torch

    with torch.no_grad():
        return np.concatenate([forward(torch.from_numpy(z[i:i + 256])).numpy() for i in range(0, len(z), 256)])


# ------------------------------------------------------------------------------------------ the runs

class Sweep:
    def __init__(self, cfg: SweepConfig, out: Path, progress: bool):
        self.cfg, self.out, self.progress = cfg, out, progress
        self._scorer: Scorer | None = None
        self._pools: dict[int, Any] = {}

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = Scorer(self.cfg, self.progress)
        return self._scorer

    def run_dir(self, run_id: str) -> Path:
        return self.out / "runs" / run_id

    def result(self, run_id: str) -> dict[str, Any]:
        d = self.run_dir(run_id)
        if not (d / DONE_NAME).exists():
            raise SweepError(f"{d}: run not finished")
        res = read_json(d / RESULT_NAME, "sweep run result")
        if not isinstance(res, dict):
            raise SweepError(f"{d / RESULT_NAME}: not a sweep run result (a JSON object)")
        return res

    def teacher_spec(self) -> str:
        if self.cfg.teacher_depth() is not None:
            return str((self.run_dir("teacher") / "run").resolve())
        from edgegan.manifest import read_manifest

        p = Path(self.cfg.teacher)
        run = p if p.is_dir() else p.parent
        m = read_manifest(run)  # CheckpointError for a missing or broken run, before anything runs
        if m.get("kind") != "teacher":
            raise ConfigError(f"{self.cfg.teacher}: not a teacher run (kind {m.get('kind')!r})")
        ds = (m.get("dataset") or {}).get("name")
        if ds != self.cfg.dataset:
            raise ConfigError(f"{self.cfg.teacher}: teacher was trained on {ds!r}, the sweep's dataset is "
                              f"{self.cfg.dataset!r}")
        return str(run.resolve())

    def z(self, latent_dim: int):
        from edgegan_runtime import latent

        return latent(self.cfg.samples, latent_dim, SCORE_SEED)

    # -- executors: each writes what it makes under `rd` and returns the run's result

    def teacher(self, spec: dict, rd: Path) -> dict[str, Any]:
        from edgegan.train import TrainConfig, train_gan

        tc = TrainConfig(dataset=self.cfg.dataset, data_dir=self.cfg.data_dir, d=spec["d"], steps=self.cfg.teacher_steps,
                         batch_size=self.cfg.batch_size, seed=spec["seed"], device=self.cfg.device, sample_every=0,
                         checkpoint_every=0)
        m = train_gan(tc, rd / "run", progress=self.progress)
        return {"params": m["model"]["params"], "steps": m["train"]["step"], "seconds": m["train"]["seconds"]}

    def teacher_score(self, spec: dict, rd: Path) -> dict[str, Any]:
        import numpy as np

        from edgegan.manifest import read_manifest
        from edgegan.sources import load_generator

        t = load_generator(self.teacher_spec())
        imgs = _images_of(t.forward, self.z(t.latent_dim))
        np.save(rd / "samples.npy", imgs[:GRID_IMAGES])
        m = read_manifest(self.teacher_spec())
        return {"spec": self.teacher_spec(), "params": t.params, "d": m["model"]["args"].get("d"),
                "steps": (m.get("train") or {}).get("step"), "latent_dim": t.latent_dim,
                "quality": self.scorer.score(imgs)}

    def _baseline(self, spec: dict, rd: Path, lr: float) -> dict[str, Any]:
        import numpy as np

        from edgegan.checkpoint import load_run
        from edgegan.train import TrainConfig, train_gan

        tc = TrainConfig(dataset=self.cfg.dataset, data_dir=self.cfg.data_dir, d=spec["d"], steps=self.cfg.steps,
                         batch_size=self.cfg.batch_size, lr=lr, d_lr=2e-4, seed=spec["seed"], device=self.cfg.device,
                         sample_every=0, checkpoint_every=0, kind="baseline", limit=self.scorer.train_limit)
        m = train_gan(tc, rd / "run", progress=self.progress)
        g = load_run(rd / "run").generator.eval()
        imgs = _images_of(g, self.z(m["model"]["args"]["latent_dim"]))
        np.save(rd / "samples.npy", imgs[:GRID_IMAGES])
        return {"d": spec["d"], "seed": spec["seed"], "lr": lr, "params": m["model"]["params"],
                "seconds": m["train"]["seconds"], "quality": self.scorer.score(imgs),
                "holdout_quality": self.scorer.score(imgs, "holdout") if spec["kind"] == "baseline-tune" else None}

    def baseline_tune(self, spec: dict, rd: Path) -> dict[str, Any]:
        return self._baseline(spec, rd, spec["lr"])

    def baseline(self, spec: dict, rd: Path) -> dict[str, Any]:
        return self._baseline(spec, rd, self.chosen_lr(spec["d"])["lr"])

    def chosen_lr(self, d: int) -> dict[str, Any]:
        """The baseline learning rate for size d: the best headline on the held-out split (seed 0)."""
        h = self.scorer.headline
        scores = {}
        for lr in self.cfg.lrs():
            r = self.result(f"baseline-d{d}-lr{lr:g}-s0")
            scores[lr] = h.value(r["holdout_quality"]["metrics"])
        valid = {lr: v for lr, v in scores.items() if v is not None}
        if not valid:
            raise SweepError(f"baseline d={d}: no learning rate gave a finite {h.key} on the held-out split")
        best = (max if h.higher_is_better else min)(valid, key=valid.get)
        return {"lr": best, "metric": h.key, "holdout_scores": {f"{lr:g}": v for lr, v in scores.items()}}

    def pool_outputs(self, seed: int, dcfg) -> Any:
        """The teacher's outputs on seed's latent pool, computed once and shared by every student (cached on disk)."""
        if seed in self._pools:
            return self._pools[seed]
        import torch

        from edgegan.checkpoint import load_tensors, save_tensors
        from edgegan.distill import latent_pool_z
        from edgegan.sources import load_generator

        path = self.out / "cache" / f"teacher-pool-s{seed}-n{self.cfg.latent_pool}.safetensors"
        if path.exists():
            t = load_tensors(path)["outputs"]
        else:
            teacher = load_generator(self.teacher_spec())
            z = torch.from_numpy(latent_pool_z(dcfg, teacher.latent_dim))
            with torch.no_grad():
                t = torch.cat([teacher.forward(z[i:i + 256]) for i in range(0, len(z), 256)]).contiguous()
            path.parent.mkdir(parents=True, exist_ok=True)
            save_tensors(path, {"outputs": t})  # atomic
        self._pools[seed] = t
        return t

    def student(self, spec: dict, rd: Path) -> dict[str, Any]:
        import numpy as np

        from edgegan.bench.harness import _file_images, probe_runtime
        from edgegan.checkpoint import load_run
        from edgegan.distill import DistillConfig, distill
        from edgegan.export import export_run
        from edgegan.quiet import converters_quiet

        dc = DistillConfig(teacher=self.teacher_spec(), d=spec["d"], loss=spec["recipe"], steps=self.cfg.steps,
                           batch_size=self.cfg.batch_size, latent_pool=self.cfg.latent_pool, seed=spec["seed"],
                           device=self.cfg.device, checkpoint_every=0, dataset=self.cfg.dataset,
                           data_dir=self.cfg.data_dir)
        pool = self.pool_outputs(spec["seed"], dc) if self.cfg.latent_pool and not _needs_features(dc) else None
        m = distill(dc, rd / "run", progress=self.progress, pool_outputs=pool)
        run = load_run(rd / "run")
        z = self.z(run.latent_dim)
        imgs = _images_of(run.generator.eval(), z)
        fmt, precision = self.cfg.target_parts()
        with converters_quiet(True):
            # Kept on a parity miss (an int8 file 0.01 over max_abs stopped a whole sweep): the deployed file is
            # scored on its own images, its parity is recorded, and the table flags it.
            entry = export_run(rd / "run", format=fmt, quantize=precision, allow_mismatch=True)
        f = rd / "run" / entry["file"] if not Path(entry["file"]).is_absolute() else Path(entry["file"])
        if not f.exists():
            f = rd / "run" / "exports" / Path(entry["file"]).name
        dep = _file_images(f, z)
        np.save(rd / "samples.npy", imgs[:GRID_IMAGES])
        np.save(rd / "samples-deployed.npy", dep[:GRID_IMAGES])
        lat = probe_runtime(f, batch=1, threads=1)
        dd = m["distill"]
        return {"d": spec["d"], "recipe": spec["recipe"], "seed": spec["seed"], "params": dd["student_params"],
                "compression_ratio": dd["compression_ratio"], "seconds": dd["seconds"],
                "mse_to_teacher": dd["eval"]["mse_end"], "quality": self.scorer.score(imgs),
                "deployed": {"target": self.cfg.target, "file": str(f.relative_to(self.out)), "bytes": entry["bytes"],
                             "sha256": entry.get("sha256"), "parity": entry.get("parity"),
                             "latency": {k: lat.get(k) for k in ("p50_us", "p90_us", "mean_us", "backend", "error")
                                         if k in lat},
                             "quality": self.scorer.score(dep)}}

    EXECUTORS = {"teacher": teacher, "teacher-score": teacher_score, "baseline-tune": baseline_tune,
                 "baseline": baseline, "student": student}


def _needs_features(dc) -> bool:
    from edgegan.terms import TERMS

    return any(TERMS.get(t.name).needs_features for t in dc.recipe().terms)


def run_sweep(cfg: SweepConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) the sweep in ``out`` and write its table; returns the table document."""
    from edgegan.utils import progress as bar

    out = Path(out)
    sw = Sweep(cfg, out, progress)
    sw.teacher_spec() if cfg.teacher_depth() is None else None  # a bad teacher run: an error before writing
    plan = make_plan(cfg)
    _write_or_check_plan(cfg, out, plan)
    done = sum((sw.run_dir(s["id"]) / DONE_NAME).exists() for s in plan)
    pb = bar(len(plan), f"sweep {cfg.dataset}", initial=done, enabled=progress)
    try:
        for spec in plan:
            rd = sw.run_dir(spec["id"])
            if (rd / DONE_NAME).exists():
                continue  # finished in an earlier call: reused
            if rd.exists():
                log.info("%s: unfinished run from an interrupted sweep, started again", rd)
                shutil.rmtree(rd)
            rd.mkdir(parents=True)
            pb.set_postfix_str(spec["id"], refresh=True)
            t0 = time.perf_counter()
            result = Sweep.EXECUTORS[spec["kind"]](sw, spec, rd)
            result = {"id": spec["id"], "kind": spec["kind"], "spec": spec, "created": now_iso(),
                      "wall_seconds": round(time.perf_counter() - t0, 2), **result}
            atomic_write_json(rd / RESULT_NAME, result)
            atomic_write_bytes(rd / DONE_NAME, now_iso().encode())  # the run's commit point, written last
            pb.update(1)
    finally:
        pb.close()
    return write_table(sw, plan)


# ------------------------------------------------------------------------------------------ the table

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


# ------------------------------------------------------------------------------------------ pick

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


def read_json(p: Path, what: str) -> Any:
    """A sweep's JSON file (plan, a run's result, the table) through the bounded, non-blocking
    regular-file reader: a FIFO, /dev/zero or deep nesting is a SweepError (issue 25)."""
    from edgegan.errors import CheckpointError
    from edgegan.manifest import load_json

    try:
        return load_json(p, what, MAX_JSON_BYTES)
    except CheckpointError as e:
        raise SweepError(str(e)) from None


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
    from edgegan.bench.harness import device_label, load_device_results

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


__all__ = ["METRICS", "PickOptions", "SweepConfig", "make_plan", "pick", "read_table", "run_sweep"]
