"""A sweep's configuration (``SweepConfig``, the metrics a table can rank by), its plan of runs, and the
bounded reader of its JSON files."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgegan.config import DATASET_NAMES, opt
from edgegan.errors import ConfigError, SweepError
from edgegan.manifest import atomic_write_json

MAX_JSON_BYTES = 64 << 20  # a sweep's plan, run results and table
DEFAULT_HOLDOUT = 1000  # held-out training images for the baselines' learning rate, at most

log = logging.getLogger("edgegan.sweep")  # the name log lines had before the split


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
        from edgegan.distill_config import LOSSES

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


def read_json(p: Path, what: str) -> Any:
    """A sweep's JSON file (plan, a run's result, the table) through the bounded, non-blocking
    regular-file reader: a FIFO, /dev/zero or deep nesting is a SweepError (issue 25)."""
    from edgegan.errors import CheckpointError
    from edgegan.manifest import load_json

    try:
        return load_json(p, what, MAX_JSON_BYTES)
    except CheckpointError as e:
        raise SweepError(str(e)) from None
