"""The commands, in the order of the data flow. Implementations are imported inside each command, so
``edgegan --help`` is instant and torch-free.

Adding a command is one function::

    @cli.command("bundle", short_help="...")
    @click.argument("run")
    @json_option
    def bundle(run: str, as_json: bool) -> None:
        from edgegan.app.bundle import make_bundle   # the implementation, imported lazily
        ...
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from edgegan.app.cli.group import _STATE, cli
from edgegan.app.cli.options import _not_empty, config_options, json_option, out_option, quiet_option

# Seconds between progress lines when stderr is a log file (``nohup edgegan distill ... > log 2>&1 &``): the
# bar is silent there, and an hour-long run with an empty log looks hung (issue 19).
LOG_PROGRESS_EVERY = 60


def log_progress_default(cfg: Any, *, quiet: bool, given: bool, terminal: bool) -> Any:
    """``cfg`` with progress lines every ``LOG_PROGRESS_EVERY`` s when nobody asked otherwise and stderr is
    not a terminal (where the bar shows progress); --quiet and an explicit --progress-every win."""
    if quiet or given or terminal or cfg.progress_every:
        return cfg
    return replace(cfg, progress_every=LOG_PROGRESS_EVERY)

log = logging.getLogger("edgegan")


def _training_commands() -> None:
    from edgegan.distill import DistillConfig
    from edgegan.train import TrainConfig

    @cli.command("train-teacher", short_help="train a teacher (DCGAN, or image-to-image with --task) or a baseline")
    @out_option(True, "run directory to write (DIR/manifest.json and files)")
    @click.option("--resume", is_flag=True, help="continue an interrupted run in --out from its last checkpoint")
    @quiet_option
    @config_options(TrainConfig, required=("dataset",))
    def train_teacher(cfg: TrainConfig, out: str, resume: bool, quiet: bool) -> None:
        """Train a GAN. With --kind baseline it records a student-sized GAN trained from scratch (the paper's
        baseline). With --task it trains an image-to-image generator (pix2pix) on inputs the task makes from
        the dataset's images: super-resolution, colourisation, inpainting (issue 21)."""
        from edgegan.train import train_gan

        m = train_gan(cfg, out, resume=resume, progress=not quiet)
        if m is None:  # a rank other than 0 of a torchrun job: rank 0 reports
            return
        click.echo(f"{m['kind']} d={cfg.d}: {m['model']['params']:,} params, {m['train']['step']} steps "
                   f"in {m['train']['seconds']:.1f}s → {Path(out) / 'manifest.json'}")

    @cli.command("distill", short_help="distil a teacher into a small student (pixel MSE or joint GAN+MSE loss)")
    @out_option(True, "run directory to write (DIR/manifest.json and files)")
    @click.option("--resume", is_flag=True, help="continue an interrupted run in --out from its last checkpoint")
    @quiet_option
    @config_options(DistillConfig)
    def distill_cmd(cfg: DistillConfig, out: str, resume: bool, quiet: bool) -> None:
        """Distil a teacher (an edgegan run, an ONNX or TorchScript file, or module:factory) into a student."""
        from edgegan.distill import distill

        src = click.get_current_context().get_parameter_source("progress_every")
        cfg = log_progress_default(cfg, quiet=quiet, given=src is not click.core.ParameterSource.DEFAULT,
                                   terminal=sys.stderr.isatty())
        m = distill(cfg, out, resume=resume, progress=not quiet)
        if m is None:  # a rank other than 0 of a torchrun job: rank 0 reports
            return
        dd = m["distill"]
        ratio = f"{dd['compression_ratio']:,}:1" if dd["compression_ratio"] else "n/a"
        click.echo(f"student d={cfg.d}: {dd['student_params']:,} params (compression {ratio}); "
                   f"MSE to teacher {dd['eval']['mse_start']:.4g} → {dd['eval']['mse_end']:.4g} → "
                   f"{Path(out) / 'manifest.json'}")


def _export_commands() -> None:
    from edgegan.export.formats import ExportOptions

    @cli.command("export", short_help="export a run's generator to ONNX or TFLite, checked numerically")
    @click.argument("run")
    @out_option(False, "output directory (default: the run directory)")
    @json_option
    @config_options(ExportOptions)
    def export_cmd(cfg: ExportOptions, run: str, out: str | None, as_json: bool) -> None:
        """Export RUN's generator (a run directory or its manifest.json) to ONNX or TFLite; the file is kept only if
        it reproduces the PyTorch generator through the runtime (see `edgegan formats`)."""
        from edgegan.export import export_run
        from edgegan.quiet import converters_quiet

        with converters_quiet(not _STATE["debug"]):
            entry = export_run(run, cfg, out=out)
        if as_json:
            click.echo(json.dumps(entry, indent=2))
            return
        par = entry.get("parity") or {}
        status = "PASSED" if par.get("passed") else "FAILED (kept: --allow-mismatch)"
        nan = float("nan")
        click.echo(f"{entry['file']}: {entry['bytes']:,} bytes, parity {status}: max abs "
                   f"{_or(par.get('max_abs'), nan):.3g}, PSNR {_or(par.get('psnr_db'), nan):.1f} dB")
        if entry.get("layers"):
            from edgegan.export.quant_report import summary

            click.echo(summary(entry["layers"], table=cfg.report))

    @cli.command("formats", short_help="list export formats, the options each accepts and the backends that run them")
    @json_option
    def formats_cmd(as_json: bool) -> None:
        from edgegan.export.formats import format_table, formats_info

        click.echo(json.dumps(formats_info(), indent=2) if as_json else format_table())


def _bench_commands() -> None:
    from edgegan.bench.options import BenchOptions

    @cli.command("bench", short_help="compare teacher, student and exported files: size, speed, memory, quality")
    @click.argument("runs", nargs=-1, required=True)
    @out_option(True, "output directory (bench.json, bench.md, PNGs)")
    @quiet_option
    @json_option
    @config_options(BenchOptions)
    def bench_cmd(cfg: BenchOptions, runs: tuple[str, ...], out: str, quiet: bool, as_json: bool) -> None:
        """Bench student RUNS (run directories; the teacher is read from their manifests)."""
        from edgegan.app.bench_runs import run_bench
        from edgegan.quiet import converters_quiet

        with converters_quiet(not _STATE["debug"]):
            res = run_bench(list(runs), out=out, options=cfg, progress=not quiet)
        click.echo(Path(res["json_path" if as_json else "markdown_path"]).read_text())

    @cli.command("demo", short_help="the whole chain on the embedded digits: teacher → student → export → bench")
    @out_option(False, "output directory", default="runs/demo")
    @click.option("--fast", is_flag=True, help="fewer steps (for tests)")
    @quiet_option
    def demo_cmd(out: str, fast: bool, quiet: bool) -> None:
        from edgegan.app.demo import run_demo
        from edgegan.quiet import converters_quiet

        with converters_quiet(not _STATE["debug"]):
            run_demo(out, fast=fast, progress=not quiet)

    @cli.command("bundle", short_help="pack a run's exports, the runtime and its probe into a bundle for a board")
    @click.argument("run")
    @click.option("--target", default="aarch64", show_default=True, metavar="CPU",
                  help="the board's CPU family: aarch64 or x86_64; or web: a static site that generates in the browser")
    @click.option("--out", "-o", required=True, metavar="FILE", help="bundle to write, e.g. bundle.tar.gz (web: a folder)",
                  callback=_not_empty)
    @click.option("--export", "exports", multiple=True, metavar="E",
                  help="include only this export (format:precision or file name); repeatable (default: all that passed)")
    @click.option("--wheels", metavar="DIR", help="folder of the target's interpreter wheels to include")
    @click.option("--no-reference", is_flag=True, help="do not store this host's images for the board to compare")
    @click.option("--web-runtime", metavar="DIR", help="web: folder with node_modules/onnxruntime-web "
                  "(default: edgegan/web after `make web-deps`)")
    @json_option
    def bundle_cmd(run: str, target: str, out: str, exports: tuple[str, ...], wheels: str | None, no_reference: bool,
                   web_runtime: str | None, as_json: bool) -> None:
        """Bundle RUN (a run directory with exports) for a board: on it, `python3 run_bench.py -o device.json`
        checks the files, compares images with this host's, writes sample grids and runs the probe; merge the
        JSON here with `edgegan bench ... --device-results device.json`."""
        from edgegan.app.bundle import make_bundle

        if target == "web":
            _web_bundle(run, out, exports, wheels, no_reference, web_runtime, as_json)
            return
        if web_runtime is not None:
            from edgegan.errors import ConfigError

            raise ConfigError("--web-runtime is for --target web")
        b = make_bundle(run, out=out, target=target, exports=list(exports) or None, wheels=wheels,
                        reference=not no_reference)
        if as_json:
            click.echo(json.dumps(b, indent=2, default=str))
            return
        included = ", ".join(b["wheels"]["included"])
        named = "none included; on the board: pip install " + " ".join(b["wheels"]["named"])
        click.echo(f"{b['path']}: {b['bytes']:,} bytes for {b['target']}, models {', '.join(b['models'])}; "
                   f"wheels: {included or named}")
        for n in b["notes"]:
            click.echo(f"note: {n}")
        click.echo(f"on the board: tar xzf {Path(b['path']).name} && python3 {b['top']}/run_bench.py -o device.json")


def _web_bundle(run: str, out: str, exports: tuple[str, ...], wheels: str | None, no_reference: bool,
                web_runtime: str | None, as_json: bool) -> None:
    """`bundle --target web`: the static site (edgegan/web_bundle.py)."""
    from edgegan.errors import ConfigError
    from edgegan.app.web_bundle import make_site

    if wheels is not None or no_reference:
        raise ConfigError("--wheels and --no-reference are for board targets, not --target web")
    b = make_site(run, out=out, exports=list(exports) or None, web_runtime=web_runtime)
    if as_json:
        click.echo(json.dumps(b, indent=2, default=str))
        return
    click.echo(f"{b['path']}: {b['files']} files, {b['bytes']:,} bytes, models {', '.join(b['models'])} on {b['runtime']}")
    click.echo(f"serve it, e.g.: python3 -m http.server -d {b['path']} 8000, and open http://localhost:8000/")


def _sweep_commands() -> None:
    from edgegan.app.sweep import PickOptions, SweepConfig

    @cli.command("sweep", short_help="the paper's table: students per size × recipe × seed against tuned baselines")
    @out_option(True, "sweep directory (plan.json, runs/, sweep.json, sweep.md, plot.png, samples/); an interrupted "
                "sweep continues here")
    @quiet_option
    @config_options(SweepConfig)
    def sweep_cmd(cfg: SweepConfig, out: str, quiet: bool) -> None:
        """Train or reuse a teacher, distil every size × recipe × seed, train scratch baselines with a tuned learning
        rate, export and score every student, and write the table. Run it again to continue a killed sweep."""
        from edgegan.app.sweep import MARKDOWN_NAME, run_sweep

        run_sweep(cfg, out, progress=not quiet)
        click.echo((Path(out) / MARKDOWN_NAME).read_text())

    @cli.command("pick", short_help="name the best student of a sweep that meets a latency and size budget")
    @click.argument("sweep_dir", metavar="DIR")
    @json_option
    @config_options(PickOptions)
    def pick_cmd(cfg: PickOptions, sweep_dir: str, as_json: bool) -> None:
        """Choose the student to ship from sweep DIR: the best headline metric (on the deployed file's own images)
        among the files within --max-latency-us and --max-bytes; says why each other one lost."""
        from edgegan.app.sweep import pick

        res = pick(sweep_dir, cfg)
        if as_json:
            click.echo(json.dumps(res, indent=2))
            return
        from edgegan.text import one_line  # names read from sweep.json and device.json (issue 25)

        p, m = res["pick"], res["metric"]
        click.echo(one_line(f"pick: d={p['d']} {p['recipe']} seed {p['seed']}: {p['file']} ({p['bytes']:,} bytes, "
                   f"p50 {_or(p['p50_us'], float('nan')):,.1f} µs on {p['latency_from']}, {m['key']} {p['quality']:.4g})"))
        for o in res["others"]:
            click.echo("  " + one_line(f"d={o['d']} {o['recipe']} seed {o['seed']}: {'; '.join(o['why'])}"))


def _listing_commands() -> None:
    @cli.command("info", short_help="print a run's manifest")
    @click.argument("run")
    @click.option("--json", "as_json", is_flag=True, help="the manifest as JSON")
    def info_cmd(run: str, as_json: bool) -> None:
        from edgegan.manifest import read_manifest

        m = read_manifest(run)
        if as_json:
            click.echo(json.dumps(m, indent=2))
            return
        from edgegan.text import one_line

        def say(line: str) -> None:  # manifest values may hold control characters (issue 25)
            click.echo(one_line(line))

        mod = m["model"]
        say(f"{m.get('kind', '?')}: {mod['family']} {mod['args']}, {mod['params']:,} params")
        if "dataset" in m:
            say(f"dataset: {m['dataset']['name']} ({m['dataset']['count']} images)")
        if "train" in m:
            say(f"trained: {m['train']['step']} steps, {m['train']['seconds']:.1f}s")
        if "distill" in m:
            dd = m["distill"]
            tp = f"{dd['teacher_params']:,}" if dd["teacher_params"] is not None else "?"
            say(f"distilled from {dd['teacher']['kind']} {dd['teacher']['spec']} ({tp} "
                       f"params), ratio {dd['compression_ratio']}:1, MSE {dd['eval']['mse_start']:.4g} → "
                       f"{dd['eval']['mse_end']:.4g}")
        for ex in m.get("exports", []):
            par = ex.get("parity") or {}
            nbytes = f"{ex['bytes']:,}" if "bytes" in ex else "?"
            say(f"export: {ex['file']} ({ex.get('format', '?')} {ex.get('precision', '?')}, {nbytes} bytes, "
                       f"parity {'ok' if par.get('passed') else 'FAILED'})")

    @cli.command("datasets", short_help="list datasets and where their files are looked for")
    @json_option
    def datasets_cmd(as_json: bool) -> None:
        from edgegan.data import ENV_VAR, dataset_names

        root = os.environ.get(ENV_VAR)
        rows = []
        for n in dataset_names():
            if n == "digits":
                where, path = "embedded (scikit-learn)", None
            elif root:
                path = str(Path(root) / n)
                where = f"${ENV_VAR}/{n} = {path}"
            else:
                where, path = "--data-dir", None
            rows.append({"name": n, "where": where, "path": path, "embedded": n == "digits"})
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            for r in rows:
                click.echo(f"{r['name']:10s} {r['where']}")

    @cli.command("families", short_help="list generator families")
    @json_option
    def families_cmd(as_json: bool) -> None:
        from edgegan.models import FAMILIES, family_names

        rows = [{"name": n, "input": FAMILIES.get(n).input_kind, "description": FAMILIES.get(n).description}
                for n in family_names()]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            for r in rows:
                click.echo(f"{r['name']:10s} {r['input']:6s} {r['description']}")


_training_commands()
_export_commands()
_bench_commands()
_sweep_commands()
_listing_commands()
COMMANDS: dict[str, click.Command] = cli.commands


def build_parser() -> click.Group:
    """The click group (kept under its argparse-era name for callers)."""
    return cli


def _or(v: Any, default: Any) -> Any:
    return default if v is None else v

