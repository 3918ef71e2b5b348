"""Which conditional form for a dcgan student (issue 20): the one-hot label concatenated to z (what
edgegan ships, ``edgegan.models.conditional``) against class-conditional BatchNorm (CBN: BigGAN's and
TinyGAN's form, every hidden stage normalised without affine and then scaled and shifted per class), both
at once (cbn+concat), and the concat student with an EMA of its weights (decay 0.999, exported instead of
them).

All students are distilled from the same conditional teacher by the product's own loop
(``edgegan.distill``, the same recipe, steps and seeds); the CBN student is a research family registered
by this script only (``dcgan_cbn``), never exported. Scored as ``bench_conditional.py`` scores: the
domain classifier's accuracy on the class asked for, KID and classifier FID against the dataset's test
split, the same latents and labels for every model. Writes bench/results/conditional-forms.{json,md}
and -grid.png (rows = labels; teacher and each form's first seed for the same z).

    .venv/bin/python bench/scripts/conditional_forms.py --teacher RUN --work DIR [--seeds 0 1 2] [--forms concat cbn] \
        [--steps 6000] [--d 2] [--loss best] [--per-class 500]

Runs already complete in DIR are reused, an interrupted one resumes (the product's --resume).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgegan.checkpoint import load_run
from edgegan.data import load_dataset
from edgegan.distill import distill
from edgegan.distill_config import DistillConfig
from edgegan.manifest import atomic_write_bytes, atomic_write_json, now_iso, versions
from edgegan.metrics.classifier import get_classifier
from edgegan.metrics.conditional import per_class
from edgegan.models import FAMILIES, Family, get_family
from edgegan.models.conditional import one_hot
from edgegan.models.dcgan import DCGANArgs, DCGANDiscriminator, DCGANGenerator, _dcgan_init
from edgegan.sysinfo import machine
from edgegan.viz import save_comparison
from edgegan_runtime import latent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conditional import GRID_Z, summarise, torch_images  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results"
# name -> (student family, EMA decay of the student's weights or None: the recipe's)
FORMS = {"concat": ("dcgan", None), "cbn": ("dcgan_cbn", None), "cbn+concat": ("dcgan_cbn_concat", None),
         "concat-ema": ("dcgan", 0.999)}


class ClassAffine(nn.Module):
    """BatchNorm's affine made per class: x * (1 + gamma[y]) + beta[y], gamma and beta starting at 0
    (the plain BatchNorm of an unconditional generator at step 0)."""

    def __init__(self, k: int, channels: int):
        super().__init__()
        self.k = k
        self.gamma = nn.Linear(k, channels, bias=False)
        self.beta = nn.Linear(k, channels, bias=False)
        nn.init.zeros_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)
        self.label = None  # set by the generator for each forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        oh = self.label
        return x * (1 + self.gamma(oh))[:, :, None, None] + self.beta(oh)[:, :, None, None]


class CBNGenerator(DCGANGenerator):
    """The dcgan student's stages and widths, z alone into the first layer (z ++ one-hot with ``concat``),
    class-conditional BatchNorm after every transposed convolution."""

    concat = False

    def __init__(self, args: DCGANArgs):
        nn.Module.__init__(self)  # its own layers; the latent_dim / num_classes properties are DCGANGenerator's
        if not args.num_classes:
            raise ValueError("dcgan_cbn is a conditional family")
        self.args = args
        widths = args.widths()
        layers: list[nn.Module] = []
        for i, cout in enumerate(widths):
            cin = args.latent_dim + (args.num_classes if self.concat else 0) if i == 0 else widths[i - 1]
            conv = nn.ConvTranspose2d(cin, cout, 4, 1, 0, bias=False) if i == 0 else \
                nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
            layers += [conv, nn.BatchNorm2d(cout, affine=False), ClassAffine(args.num_classes, cout), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(widths[-1], args.nc, 1, 1, 0, bias=True), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                _dcgan_init(m)  # Radford et al.'s N(0, 0.02); the class affines start at identity

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        oh = one_hot(label, self.args.num_classes, z.shape[0]).to(z.dtype)
        for m in self.net:
            if isinstance(m, ClassAffine):
                m.label = oh
        try:
            return self.net(torch.cat([z, oh[:, :, None, None]], 1) if self.concat else z)
        finally:
            for m in self.net:
                if isinstance(m, ClassAffine):
                    m.label = None


class CBNConcatGenerator(CBNGenerator):
    """Both: the one-hot concatenated to z and class-conditional BatchNorm in every stage."""

    concat = True


def register() -> None:
    dc = get_family("dcgan")
    for name, gen in (("dcgan_cbn", CBNGenerator), ("dcgan_cbn_concat", CBNConcatGenerator)):
        if name not in FAMILIES.names():
            FAMILIES.add(name, Family(name=name, make_args=DCGANArgs, build_generator=gen,
                                      build_discriminator=DCGANDiscriminator,
                                      description="research: dcgan with class-conditional BatchNorm",
                                      student_args=dc.student_args))


def train(teacher: str, work: Path, form: str, seed: int, a) -> Path:
    out = work / f"{form}-d{a.d}-s{seed}"
    family, ema = FORMS[form]
    cfg = DistillConfig(teacher=teacher, d=a.d, loss=a.loss, steps=a.steps, seed=seed, family=family, ema=ema)
    t0 = time.time()
    distill(cfg, out, resume=(out / "manifest.json").exists() or (out / "checkpoints").exists(), progress=False)
    print(f"{out.name}: trained/loaded in {time.time() - t0:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--work", required=True, help="folder for the student runs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--d", type=int, default=2)
    ap.add_argument("--loss", default="best")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--z-seed", type=int, default=123)
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--existing", action="store_true", help="score the runs already finished in --work; train none")
    ap.add_argument("--out", default=str(RESULTS / "conditional-forms"))
    a = ap.parse_args()
    register()
    work = Path(a.work)
    if a.existing:  # score the finished runs in --work, train nothing
        runs = {}
        for s in a.seeds:
            for f in a.forms:
                m = work / f"{f}-d{a.d}-s{s}" / "manifest.json"
                if m.exists() and json.loads(m.read_text())["distill"]["steps"] == a.steps:
                    runs[(f, s)] = m.parent
                else:
                    print(f"{m.parent.name}: not finished at {a.steps} steps, left out", flush=True)
    else:
        runs = {(f, s): train(a.teacher, work, f, s, a) for s in a.seeds for f in a.forms}
    if a.train_only:
        return

    teacher = load_run(a.teacher)
    k, names = teacher.num_classes, teacher.class_names
    ref = load_dataset(a.dataset, data_dir=a.data_dir, split="test", image_size=teacher.output_shape[1])
    clf = get_classifier(a.dataset, a.data_dir, image_size=teacher.output_shape[1])
    ref_feats = clf.features(ref.images)
    y = np.repeat(np.arange(k, dtype=np.int64), a.per_class)
    z = latent(len(y), teacher.latent_dim, a.z_seed)
    rows, images = [], {}

    def score(name: str, imgs: np.ndarray) -> dict:
        r = summarise(name, per_class(imgs, y, ref.images, ref.labels, clf, names=names, reference_features=ref_feats))
        rows.append(r)
        images[name] = imgs
        print(f"{name}: accuracy {r['accuracy']:.4f}  KID {r['kid']:.5f}  FID {r['classifier_fid']:.3f}", flush=True)
        return r

    t = score("teacher", torch_images(teacher.generator, z, y))
    students = []
    for (form, seed), run in runs.items():
        s = load_run(run)
        m = s.manifest
        r = score(f"{form} seed {seed}", torch_images(s.generator, z, y))
        students.append({"form": form, "seed": seed, "run": str(run.resolve()), "params": m["model"]["params"],
                         "compression": m["distill"]["compression_ratio"], "steps": m["distill"]["steps"],
                         "seconds_per_step": m["distill"]["seconds_per_step"], "mse_end": m["distill"]["eval"]["mse_end"],
                         "accuracy_points": round(100 * (r["accuracy"] - t["accuracy"]), 2),
                         "kid_ratio": round(r["kid"] / t["kid"], 3)})
    summary = {}
    for form in a.forms:
        mine = [s for s in students if s["form"] == form]
        if not mine:
            continue
        summary[form] = {k2: {"mean": statistics.mean(s[k2] for s in mine),
                              "min": min(s[k2] for s in mine), "max": max(s[k2] for s in mine)}
                         for k2 in ("accuracy_points", "kid_ratio")}
        summary[form]["params"] = mine[0]["params"]
        summary[form]["seeds"] = [s["seed"] for s in mine]
        summary[form]["fid"] = statistics.mean(r["classifier_fid"] for r in rows if r["model"].startswith(form + " "))
    out = {"created": now_iso(), "machine": machine(), "versions": versions(), "teacher": str(Path(a.teacher).resolve()),
           "teacher_params": teacher.manifest["model"]["params"], "dataset": a.dataset, "per_class": a.per_class,
           "steps": a.steps, "loss": a.loss, "d": a.d, "classifier": clf.summary(), "results": rows,
           "students": students, "summary": summary, "load_average_end": [round(v, 2) for v in os.getloadavg()]}
    dest = Path(a.out)
    atomic_write_json(dest.with_suffix(".json"), out)
    pick = np.concatenate([np.where(y == c)[0][:GRID_Z] for c in range(k)])
    panels = ["teacher", *[f"{f} seed {min(s for g, s in runs if g == f)}" for f in a.forms if any(g == f for g, _ in runs)]]
    save_comparison({n: images[n][pick] for n in panels}, dest.parent / f"{dest.name}-grid.png", nrow=GRID_Z, scale=1)
    write_md(dest.with_suffix(".md"), out, dest.name)


def write_md(path: Path, out: dict, stem: str) -> None:
    mc = out["machine"]
    lines = ["# Conditional form of a dcgan student: concatenated one-hot vs class-conditional BatchNorm (issue 20)", "",
             f"Teacher `{Path(out['teacher']).name}` ({out['teacher_params']:,} parameters), {out['dataset']}; students "
             f"d={out['d']}, recipe `{out['loss']}`, {out['steps']:,} steps, distilled by `edgegan.distill`; "
             f"{out['per_class']} images per class for every model, the same z and labels. Machine: {mc.get('cpu')} "
             f"({mc.get('isa', '')}). Written by `bench/scripts/conditional_forms.py`.", "",
             "| model | params | accuracy | KID (classifier space) | classifier FID | acc. vs teacher (points) | KID / teacher |",
             "|---|---:|---|---|---|---:|---:|"]
    by = {s["form"] + " seed " + str(s["seed"]): s for s in out["students"]}
    for r in out["results"]:
        s = by.get(r["model"])
        lines.append(f"| {r['model']} | {s['params'] if s else out['teacher_params']:,} | {100 * r['accuracy']:.2f} % | "
                     f"{r['kid']:.5f} ± {r['kid_std']:.5f} | {r['classifier_fid']:.3f} | "
                     f"{'' if s is None else format(s['accuracy_points'], '+.2f')} | {'' if s is None else s['kid_ratio']} |")
    lines += ["", "| student | s/step | MSE to teacher (end) |", "|---|---:|---:|"]
    lines += [f"| {s['form']} seed {s['seed']} | {s['seconds_per_step']:.3f} | {s['mse_end']:.4f} |" for s in out["students"]]
    lines += ["", "| form | params | seeds | accuracy vs teacher, mean (min … max) | KID / teacher, mean (min … max) | "
                  "mean classifier FID |", "|---|---:|---|---|---|---:|"]
    for form, sm in out["summary"].items():
        a, kr = sm["accuracy_points"], sm["kid_ratio"]
        lines.append(f"| {form} | {sm['params']:,} | {', '.join(map(str, sm['seeds']))} | {a['mean']:+.2f} ({a['min']:+.2f} … {a['max']:+.2f}) | "
                     f"{kr['mean']:.2f} ({kr['min']:.2f} … {kr['max']:.2f}) | {sm['fid']:.3f} |")
    lines += ["", f"![rows = labels; teacher and each form's first seed, same z]({stem}-grid.png)", ""]
    atomic_write_bytes(path, "\n".join(lines).encode())


if __name__ == "__main__":
    main()
