"""The runs of a sweep: the teacher, the tuned scratch baselines and the students, each scored once
(``Scorer``) and kept resumable run by run (``Sweep``, ``run_sweep``)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from edgegan.errors import ConfigError, SweepError
from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso
from edgegan.app.sweep.config import (AUTO_HEADLINES, DEFAULT_HOLDOUT, DONE_NAME, GRID_IMAGES, METRICS, RESULT_NAME,
                                      SCORE_SEED, SWEEP_SWD, Metric, SweepConfig, _write_or_check_plan, make_plan,
                                      read_json)
from edgegan.app.sweep.table import write_table

log = logging.getLogger("edgegan.sweep")


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

        t = _unconditional(load_generator(self.teacher_spec()))
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
            teacher = _unconditional(load_generator(self.teacher_spec()))
            z = torch.from_numpy(latent_pool_z(dcfg, teacher.latent_dim))
            with torch.no_grad():
                t = torch.cat([teacher.forward(z[i:i + 256]) for i in range(0, len(z), 256)]).contiguous()
            path.parent.mkdir(parents=True, exist_ok=True)
            save_tensors(path, {"outputs": t})  # atomic
        self._pools[seed] = t
        return t

    def student(self, spec: dict, rd: Path) -> dict[str, Any]:
        import numpy as np

        from edgegan.bench.probes import _file_images, probe_runtime
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


def _unconditional(teacher):
    """A sweep compares unconditional students; a conditional teacher (issue 20) is a one-line error."""
    if teacher.num_classes is not None:
        from edgegan.errors import ConfigError

        raise ConfigError(f"{teacher.spec}: a conditional teacher ({teacher.num_classes} classes); sweep does not take "
                          "those yet: distil with edgegan distill and compare with edgegan bench")
    return teacher
