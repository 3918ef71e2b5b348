"""The ``edgegan`` command line. Imports implementations inside each command so ``--help`` is instant
and torch-free. The library raises typed errors; this module alone maps them to one-line messages on
stderr and exit codes (``EdgeganError.exit_code``); ``--debug`` shows the traceback instead."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from edgegan import __version__
from edgegan.errors import EdgeganError

log = logging.getLogger("edgegan")
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def deco(fn):
        COMMANDS[name] = fn
        return fn

    return deco


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _int_list(s: str) -> list[int]:
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {s!r}")
    return vals


def _training_options(p: argparse.ArgumentParser, steps: int, batch: int) -> None:
    p.add_argument("--out", "-o", required=True, help="run directory to write (DIR/manifest.json and files)")
    p.add_argument("--steps", type=_positive_int, default=steps, help=f"optimiser steps (default {steps})")
    p.add_argument("--batch-size", type=_positive_int, default=batch, help=f"batch size (default {batch})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _data_options(p: argparse.ArgumentParser, required: bool = False, default: str | None = None) -> None:
    p.add_argument("--dataset", required=required, default=default,
                   help="digits (embedded), mnist, cifar10, celeba, folder")
    p.add_argument("--data-dir", help="folder holding that dataset's files (else $EDGEGAN_DATA/<dataset>)")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), like every other edgegan error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgegan", description="Distil GAN generators into tiny students, export them "
                                "to ONNX/TFLite and measure them against the teacher.")
    p.add_argument("--version", action="version", version=f"edgegan {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    p.add_argument("--threads", type=_positive_int, help="torch intra-op threads for training and distillation "
                   "(default: one per core; 1 degrades best on a busy machine, see bench/results/threads.md)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train-teacher", help="train a DCGAN teacher (or a from-scratch baseline) on a dataset",
                       description="Train a GAN. With --kind baseline it records a student-sized GAN trained from scratch "
                       "(the paper's baseline).")
    _data_options(t, required=True)
    t.add_argument("--d", type=_positive_int, default=64, help="generator depth factor (default 64)")
    t.add_argument("--d-disc", type=_positive_int, help="discriminator depth factor (default: same as --d)")
    t.add_argument("--family", default="dcgan", help="generator family (default dcgan)")
    t.add_argument("--image-size", type=int, default=32, choices=(32, 64))
    t.add_argument("--latent-dim", type=_positive_int, default=100)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--kind", choices=("teacher", "baseline"), default="teacher")
    t.add_argument("--sample-every", type=int, default=500, help="steps between sample grids (0: end only)")
    t.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (0: end only)")
    t.add_argument("--limit", type=_positive_int, help="use only the first N training images")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out from its last checkpoint")
    _training_options(t, steps=2000, batch=64)

    d = sub.add_parser("distill", help="distil a teacher into a small student (pixel MSE or joint GAN+MSE loss)")
    d.add_argument("--teacher", required=True, help="edgegan run dir, .onnx, TorchScript file, or module:factory")
    d.add_argument("--teacher-weights", help="safetensors weights for a module:factory teacher")
    d.add_argument("--latent-dim", type=_positive_int, help="latent size, when it cannot be read from the teacher")
    d.add_argument("--d", type=_positive_int, default=2, help="student depth factor (default 2)")
    d.add_argument("--family", default="dcgan", help="student family (default dcgan)")
    d.add_argument("--loss", choices=("mse", "joint", "best"), default="mse",
                   help="named recipe: mse (paper), joint (paper: MSE + lam*GAN), best (ours)")
    d.add_argument("--terms", help="recipe of loss terms replacing --loss, e.g. pixel:1,feature:1,gan:0.01 "
                                   "(pixel, gan, feature, perceptual)")
    d.add_argument("--lam", type=float, default=0.01, help="weight of the GAN term of the joint loss (default 0.01)")
    d.add_argument("--pixel-loss", choices=("mse", "l1"), default="mse", help="pixel term's distance (default mse)")
    d.add_argument("--gan-loss", choices=("nonsat", "hinge"), default="nonsat", help="GAN term's loss (default nonsat)")
    d.add_argument("--d-disc", type=_positive_int, default=16, help="discriminator depth for the GAN term")
    d.add_argument("--d-lr", type=float, default=2e-4, help="discriminator learning rate (default 2e-4)")
    d.add_argument("--d-beta1", type=float, default=0.5, help="discriminator Adam beta1 (default 0.5)")
    d.add_argument("--feature-layers", help="feature term for non-dcgan teachers: teacher_module=student_module,...")
    _data_options(d)
    d.add_argument("--lr", type=float, default=5e-3, help="student learning rate (default 5e-3)")
    d.add_argument("--lr-schedule", choices=("constant", "cosine"), help="learning-rate schedule (default: the recipe's)")
    d.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up steps (default 0)")
    d.add_argument("--ema", type=float, help="EMA decay of the student's weights, exported when on (0: off; "
                                             "default: the recipe's)")
    d.add_argument("--latent-pool", type=int, default=0,
                   help="0: fresh z every step (the paper); N: N fixed latents, teacher outputs cached")
    d.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (0: end only)")
    d.add_argument("--resume", action="store_true", help="continue an interrupted run in --out from its last checkpoint")
    _training_options(d, steps=2000, batch=64)

    e = sub.add_parser("export", help="export a run's generator to ONNX or TFLite, checked numerically")
    e.add_argument("run", help="run directory (or its manifest.json)")
    e.add_argument("--format", required=True, help="onnx or tflite (see `edgegan formats`)")
    e.add_argument("--quantize", default="none", help="none, fp16, dynamic-int8, int8, weight-int8")
    e.add_argument("--batch", type=_int_list, help="fixed batch sizes for TFLite signatures, e.g. 1,64")
    e.add_argument("--calibration-samples", type=_positive_int, help="latents for static int8 calibration (>= 256)")
    e.add_argument("--allow-mismatch", action="store_true", help="keep a file that fails the parity check (marked failed)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", "-o", help="output directory (default: the run directory)")

    sub.add_parser("formats", help="list export formats and the options each accepts")

    b = sub.add_parser("bench", help="compare teacher, student and exported files: size, speed, memory, quality")
    b.add_argument("runs", nargs="+", help="student run directories (the teacher is read from their manifest)")
    b.add_argument("--models", default="teacher,student,exports", help="which models to include")
    b.add_argument("--baseline", action="append", default=[], metavar="RUN",
                   help="a student-sized GAN trained from scratch (train-teacher --kind baseline) to compare; repeatable")
    b.add_argument("--samples", type=_positive_int, default=2000, help="images per model for the quality metrics")
    b.add_argument("--out", "-o", required=True, help="output directory (bench.json, bench.md, PNGs)")
    _data_options(b)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--device-results", action="append", default=[], metavar="FILE",
                   help="JSON written by a bench bundle on a board (edgegan bundle); its own columns; repeatable")
    b.add_argument("--quiet", "-q", action="store_true")

    u = sub.add_parser("bundle", help="pack a run's exports, the runtime and its probe into a bundle for a board")
    u.add_argument("run", help="run directory with exports (or its manifest.json)")
    u.add_argument("--target", default="aarch64", help="board CPU family: aarch64 (default) or x86_64")
    u.add_argument("--out", "-o", required=True, help="output file, e.g. bundle.tar.gz")
    u.add_argument("--export", action="append", metavar="E",
                   help="include only this export (format:precision or file name); repeatable (default: all passed)")
    u.add_argument("--wheels", metavar="DIR", help="folder of the target's interpreter wheels to include")
    u.add_argument("--no-reference", action="store_true", help="do not store this host's images for comparison")

    m = sub.add_parser("demo", help="the whole chain on the embedded digits: teacher → student → export → bench")
    m.add_argument("--out", "-o", default="runs/demo", help="output directory (default runs/demo)")
    m.add_argument("--fast", action="store_true", help="fewer steps (for tests)")
    m.add_argument("--quiet", "-q", action="store_true")

    i = sub.add_parser("info", help="print a run's manifest")
    i.add_argument("run")
    i.add_argument("--json", action="store_true", help="the manifest as JSON")

    sub.add_parser("datasets", help="list datasets and where their files are looked for")
    sub.add_parser("families", help="list generator families")
    return p


# --------------------------------------------------------------------------- commands

@command("train-teacher")
def _cmd_train(a: argparse.Namespace) -> int:
    from edgegan.train import TrainConfig, train_gan

    cfg = TrainConfig(dataset=a.dataset, data_dir=a.data_dir, family=a.family, d=a.d, d_disc=a.d_disc,
                      image_size=a.image_size, latent_dim=a.latent_dim, steps=a.steps, batch_size=a.batch_size,
                      lr=a.lr, seed=a.seed, device=a.device, sample_every=a.sample_every,
                      checkpoint_every=a.checkpoint_every, kind=a.kind, limit=a.limit)
    m = train_gan(cfg, a.out, resume=a.resume, progress=not a.quiet)
    print(f"{m['kind']} d={a.d}: {m['model']['params']:,} params, {m['train']['step']} steps "
          f"in {m['train']['seconds']:.1f}s → {Path(a.out) / 'manifest.json'}")
    return 0


@command("distill")
def _cmd_distill(a: argparse.Namespace) -> int:
    from edgegan.distill import DistillConfig, distill

    cfg = DistillConfig(teacher=a.teacher, teacher_weights=a.teacher_weights, latent_dim=a.latent_dim, family=a.family,
                        d=a.d, loss=a.loss, terms=a.terms, lam=a.lam, pixel_loss=a.pixel_loss, gan_loss=a.gan_loss,
                        d_disc=a.d_disc, d_lr=a.d_lr, d_beta1=a.d_beta1, feature_layers=a.feature_layers,
                        dataset=a.dataset, data_dir=a.data_dir, steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                        lr_schedule=a.lr_schedule, warmup_steps=a.warmup_steps, ema=a.ema, latent_pool=a.latent_pool,
                        checkpoint_every=a.checkpoint_every, seed=a.seed, device=a.device)
    m = distill(cfg, a.out, resume=a.resume, progress=not a.quiet)
    dd = m["distill"]
    ratio = f"{dd['compression_ratio']:,}:1" if dd["compression_ratio"] else "n/a"
    print(f"student d={a.d}: {dd['student_params']:,} params (compression {ratio}); "
          f"MSE to teacher {dd['eval']['mse_start']:.4g} → {dd['eval']['mse_end']:.4g} → {Path(a.out) / 'manifest.json'}")
    return 0


@command("export")
def _cmd_export(a: argparse.Namespace) -> int:
    from edgegan.export import export_run

    kw: dict[str, Any] = {}
    if a.calibration_samples is not None:
        kw["calibration_samples"] = a.calibration_samples
    entry = export_run(a.run, format=a.format, quantize=a.quantize, batch=a.batch, out=a.out,
                       allow_mismatch=a.allow_mismatch, seed=a.seed, **kw)
    par = entry.get("parity") or {}
    status = "PASSED" if par.get("passed") else "FAILED (kept: --allow-mismatch)"
    nan = float("nan")
    print(f"{entry['file']}: {entry['bytes']:,} bytes, parity {status}: max abs {_or(par.get('max_abs'), nan):.3g}, "
          f"PSNR {_or(par.get('psnr_db'), nan):.1f} dB")
    return 0


@command("formats")
def _cmd_formats(a: argparse.Namespace) -> int:
    from edgegan.export import format_table

    print(format_table())
    return 0


@command("bench")
def _cmd_bench(a: argparse.Namespace) -> int:
    from edgegan.bench import run_bench

    res = run_bench(a.runs, out=a.out, models=[m.strip() for m in a.models.split(",") if m.strip()],
                    samples=a.samples, dataset=a.dataset, data_dir=a.data_dir, seed=a.seed, progress=not a.quiet,
                    baselines=a.baseline, device_results=a.device_results)
    print(Path(res["markdown_path"]).read_text())
    return 0


@command("bundle")
def _cmd_bundle(a: argparse.Namespace) -> int:
    from edgegan.bundle import make_bundle

    b = make_bundle(a.run, out=a.out, target=a.target, exports=a.export, wheels=a.wheels,
                    reference=not a.no_reference)
    wheels = ", ".join(b["wheels"]["included"]) or "none included; on the board: pip install " + \
        " ".join(b["wheels"]["named"])
    print(f"{b['path']}: {b['bytes']:,} bytes for {b['target']}, models {', '.join(b['models'])}; wheels: {wheels}")
    for n in b["notes"]:
        print(f"note: {n}")
    print(f"on the board: tar xzf {Path(b['path']).name} && python3 {b['top']}/run_bench.py -o device.json")
    return 0


@command("demo")
def _cmd_demo(a: argparse.Namespace) -> int:
    from edgegan.demo import run_demo

    run_demo(a.out, fast=a.fast, progress=not a.quiet)
    return 0


@command("info")
def _cmd_info(a: argparse.Namespace) -> int:
    from edgegan.manifest import read_manifest

    m = read_manifest(a.run)
    if a.json:
        print(json.dumps(m, indent=2))
        return 0
    mod = m["model"]
    print(f"{m.get('kind', '?')}: {mod['family']} {mod['args']}, {mod['params']:,} params")
    if "dataset" in m:
        print(f"dataset: {m['dataset']['name']} ({m['dataset']['count']} images)")
    if "train" in m:
        print(f"trained: {m['train']['step']} steps, {m['train']['seconds']:.1f}s")
    if "distill" in m:
        dd = m["distill"]
        print(f"distilled from {dd['teacher']['kind']} {dd['teacher']['spec']} ({dd['teacher_params']:,} params), "
              f"ratio {dd['compression_ratio']}:1, MSE {dd['eval']['mse_start']:.4g} → {dd['eval']['mse_end']:.4g}")
    for ex in m.get("exports", []):
        par = ex.get("parity", {})
        print(f"export: {ex['file']} ({ex['format']} {ex['precision']}, {ex['bytes']:,} bytes, "
              f"parity {'ok' if par.get('passed') else 'FAILED'})")
    return 0


@command("datasets")
def _cmd_datasets(a: argparse.Namespace) -> int:
    from edgegan.data import ENV_VAR, dataset_names

    root = os.environ.get(ENV_VAR)
    for n in dataset_names():
        where = "embedded (scikit-learn)" if n == "digits" else (f"${ENV_VAR}/{n} = {Path(root) / n}" if root else "--data-dir")
        print(f"{n:10s} {where}")
    return 0


@command("families")
def _cmd_families(a: argparse.Namespace) -> int:
    from edgegan.models import FAMILIES, family_names

    for n in family_names():
        print(f"{n:10s} {FAMILIES.get(n).description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not a.debug:
        _quiet_third_party()
    from edgegan.utils import configure_threads

    configure_threads(a.threads)
    if a.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[a.command](a)
    except EdgeganError as e:
        if a.debug:
            raise
        print(f"edgegan: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgegan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgegan formats | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 - last resort: still one line, traceback under --debug
        if a.debug:
            raise
        print(f"edgegan: internal error: {type(e).__name__}: {_one_line(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _quiet_third_party() -> None:
    """The converters' own start-up chatter (absl/TFLite native logs, torchao kernel notices) says
    nothing about the user's model; keep it for --debug."""
    for var, val in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("GLOG_minloglevel", "2"), ("ABSL_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(var, val)
    for name in ("torchao", "torch", "absl", "jax", "litert_torch", "ai_edge_quantizer", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _or(v, default):
    return default if v is None else v


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
