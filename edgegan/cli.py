"""The ``edgegan`` command line (click).

Each command's options are generated from the dataclass that owns them (``TrainConfig``,
``DistillConfig``, ``ExportOptions``, ``BenchOptions``): the default, choices and help text are
declared once, on the field (``edgegan.config.opt``), so a new field appears here without an edit.
Implementations are imported inside each command, so ``edgegan --help`` is instant and torch-free.

The library raises typed errors; this module alone maps them to one-line messages on stderr and exit
codes (``EdgeganError.exit_code``; 2 for a usage error); ``--debug`` shows the traceback instead.

Adding a command is one function::

    @cli.command("bundle", short_help="...")
    @click.argument("run")
    @json_option
    def bundle(run: str, as_json: bool) -> None:
        from edgegan.bundle import make_bundle   # the implementation, imported lazily
        ...
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable

import click

from edgegan import __version__
from edgegan.config import Names, field_choices, field_help
from edgegan.errors import EdgeganError
from edgegan.utils import Terminated

log = logging.getLogger("edgegan")
_STATE: dict[str, Any] = {"debug": False, "threads": None}
COMPLETE_VAR = "_EDGEGAN_COMPLETE"  # eval "$(_EDGEGAN_COMPLETE=bash_source edgegan)"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


# ------------------------------------------------------------------------------ generated options

class _Choice(click.ParamType):
    """One of a tuple of values, or of a registry's names (``Names``, loaded on first use). A wrong
    value is a usage error that lists the valid ones and the closest match."""

    name = "choice"

    def __init__(self, choices: tuple[Any, ...] | Names, base: click.ParamType):
        self.choices, self.base = choices, base

    def values(self) -> list[Any]:
        return self.choices() if isinstance(self.choices, Names) else list(self.choices)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        if isinstance(self.choices, Names) and not self.choices.listed:
            return "NAME"
        return "[" + "|".join(str(v) for v in self.values()) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import difflib

        v = self.base.convert(value, param, ctx)
        valid = self.values()
        if v in valid:
            return v
        kind = self.choices.kind if isinstance(self.choices, Names) else "value"
        close = difflib.get_close_matches(str(v), [str(x) for x in valid], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        self.fail(f"unknown {kind} {v!r}; valid: {', '.join(str(x) for x in valid)}.{hint}", param, ctx)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(str(v)) for v in self.values() if str(v).startswith(incomplete)]


class _Json(click.ParamType):
    """A field whose type has no plain command-line form: its value as JSON."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            self.fail(f"expected JSON, got {value!r} ({e.msg})", param, ctx)


_SCALARS: dict[Any, click.ParamType] = {int: click.INT, float: click.FLOAT, str: click.STRING, Path: click.STRING}


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(type without None, whether None was allowed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return (str if str in args else tp), optional  # e.g. Sequence[int] | str: the string form
    return tp, False


def option_for(cls: type, f: dataclasses.Field, tp: Any, *, required: bool = False) -> Callable:
    """The click option of one dataclass field: ``--field-name``, its type, default, choices, help."""
    tp, _optional = _unwrap(tp)
    name = "--" + f.name.replace("_", "-")
    has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
    kw: dict[str, Any] = {"help": field_help(cls, f), "required": required or not has_default}
    if tp is bool:
        decl = name if not default else f"{name}/--no-{name[2:]}"
        return click.option(decl, f.name, is_flag=True, default=bool(default), show_default=bool(default), **kw)
    multiple = typing.get_origin(tp) is tuple
    if multiple:
        tp = typing.get_args(tp)[0]
    base = _SCALARS.get(tp, _Json())
    choices = field_choices(f)
    ptype = _Choice(choices, base) if choices is not None else base
    if not kw["required"]:
        kw["default"] = default
        kw["show_default"] = default not in (None, ())
    return click.option(name, f.name, type=ptype, multiple=multiple, **kw)


def config_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _field_types(cls: type, fields: list[dataclasses.Field]) -> dict[str, Any]:
    """Each field's evaluated annotation; one that cannot be evaluated (a name imported only for type
    checkers) becomes a JSON-valued option rather than breaking the whole command line."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - fall back field by field
        import sys as _sys

        ns = vars(_sys.modules[cls.__module__])
        out: dict[str, Any] = {}
        for f in fields:
            try:
                out[f.name] = eval(f.type, ns) if isinstance(f.type, str) else f.type  # noqa: S307 - annotations
            except Exception:  # noqa: BLE001
                out[f.name] = Any
        return out


def config_options(cls: type, *, required: tuple[str, ...] = ()) -> Callable:
    """Decorator: one option per field of dataclass ``cls``; the command receives ``cfg=cls(...)``
    (built, and so validated, before the command runs). Put it directly above the function."""
    fields = config_fields(cls)
    hints = _field_types(cls, fields)

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(**kw: Any) -> Any:
            values = {f.name: kw.pop(f.name) for f in fields}
            return fn(cfg=cls(**values), **kw)

        wrapper.__click_params__ = list(getattr(fn, "__click_params__", []))  # type: ignore[attr-defined]
        for f in reversed(fields):  # click lists options in reverse order of application: fields in source order
            wrapper = option_for(cls, f, hints[f.name], required=f.name in required)(wrapper)
        return wrapper

    return deco


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON (for scripts) instead of text")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="no progress bar")


def _not_empty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():  # '' would be the current directory (issue 25)
        raise click.BadParameter("must name a folder, not be empty (use . for the current directory)")
    return value


def out_option(required: bool, help: str, default: str | None = None) -> Callable:
    return click.option("--out", "-o", required=required, default=default, show_default=default is not None,
                        metavar="DIR", help=help, callback=_not_empty)


# ------------------------------------------------------------------------------ the group

class _Command(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        # Here, after the command's own options are parsed (so `--threads 2 CMD --help` imports no torch).
        if _STATE["threads"] is not None:
            _configure_threads(_STATE["threads"])
        return super().invoke(ctx)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), prefix="usage: ")


class _Group(click.Group):
    command_class = _Command

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), prefix="usage: ")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order of the data flow, not alphabetical


@click.group("edgegan", cls=_Group, context_settings=CONTEXT,
             help="Distil GAN generators into tiny students, export them to ONNX/TFLite and measure them against "
                  "the teacher.")
@click.version_option(__version__, "--version", prog_name="edgegan", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="show tracebacks, debug logging and the converters' own output")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="torch intra-op threads (default: torch's own choice)")
def cli(debug: bool, threads: int | None) -> None:
    _STATE["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        _quiet_third_party()
        from edgegan.text import OneLineFormatter

        for h in logging.getLogger().handlers:  # log lines name files: one printable line each (issue 25)
            if type(h) is logging.StreamHandler:
                h.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    _STATE["threads"] = threads  # applied by each command as it starts (_Command.invoke)
    from edgegan.utils import configure_threads

    configure_threads(None)  # OpenMP's wait policy, before any command imports torch


def _configure_threads(n: int) -> None:
    from edgegan.utils import configure_threads

    configure_threads(n)


# ------------------------------------------------------------------------------ commands

def _training_commands() -> None:
    from edgegan.distill import DistillConfig
    from edgegan.train import TrainConfig

    @cli.command("train-teacher", short_help="train a DCGAN teacher (or a from-scratch baseline) on a dataset")
    @out_option(True, "run directory to write (DIR/manifest.json and files)")
    @click.option("--resume", is_flag=True, help="continue an interrupted run in --out from its last checkpoint")
    @quiet_option
    @config_options(TrainConfig, required=("dataset",))
    def train_teacher(cfg: TrainConfig, out: str, resume: bool, quiet: bool) -> None:
        """Train a GAN. With --kind baseline it records a student-sized GAN trained from scratch (the paper's
        baseline)."""
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
            entry = export_run(run, format=cfg.format, quantize=cfg.quantize, batch=cfg.batch, out=out,
                               calibration_samples=cfg.calibration_samples, allow_mismatch=cfg.allow_mismatch,
                               seed=cfg.seed, keep_float=cfg.keep_float, report=cfg.report)
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
        from edgegan.bench import run_bench
        from edgegan.quiet import converters_quiet

        with converters_quiet(not _STATE["debug"]):
            res = run_bench(list(runs), out=out, options=cfg, progress=not quiet)
        click.echo(Path(res["json_path" if as_json else "markdown_path"]).read_text())

    @cli.command("demo", short_help="the whole chain on the embedded digits: teacher → student → export → bench")
    @out_option(False, "output directory", default="runs/demo")
    @click.option("--fast", is_flag=True, help="fewer steps (for tests)")
    @quiet_option
    def demo_cmd(out: str, fast: bool, quiet: bool) -> None:
        from edgegan.demo import run_demo
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
        from edgegan.bundle import make_bundle

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
    from edgegan.web_bundle import make_site

    if wheels is not None or no_reference:
        raise ConfigError("--wheels and --no-reference are for board targets, not --target web")
    b = make_site(run, out=out, exports=list(exports) or None, web_runtime=web_runtime)
    if as_json:
        click.echo(json.dumps(b, indent=2, default=str))
        return
    click.echo(f"{b['path']}: {b['files']} files, {b['bytes']:,} bytes, models {', '.join(b['models'])} on {b['runtime']}")
    click.echo(f"serve it, e.g.: python3 -m http.server -d {b['path']} 8000, and open http://localhost:8000/")


def _sweep_commands() -> None:
    from edgegan.sweep import PickOptions, SweepConfig

    @cli.command("sweep", short_help="the paper's table: students per size × recipe × seed against tuned baselines")
    @out_option(True, "sweep directory (plan.json, runs/, sweep.json, sweep.md, plot.png, samples/); an interrupted "
                "sweep continues here")
    @quiet_option
    @config_options(SweepConfig)
    def sweep_cmd(cfg: SweepConfig, out: str, quiet: bool) -> None:
        """Train or reuse a teacher, distil every size × recipe × seed, train scratch baselines with a tuned learning
        rate, export and score every student, and write the table. Run it again to continue a killed sweep."""
        from edgegan.sweep import MARKDOWN_NAME, run_sweep

        run_sweep(cfg, out, progress=not quiet)
        click.echo((Path(out) / MARKDOWN_NAME).read_text())

    @cli.command("pick", short_help="name the best student of a sweep that meets a latency and size budget")
    @click.argument("sweep_dir", metavar="DIR")
    @json_option
    @config_options(PickOptions)
    def pick_cmd(cfg: PickOptions, sweep_dir: str, as_json: bool) -> None:
        """Choose the student to ship from sweep DIR: the best headline metric (on the deployed file's own images)
        among the files within --max-latency-us and --max-bytes; says why each other one lost."""
        from edgegan.sweep import pick

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

        rows = [{"name": n, "description": FAMILIES.get(n).description} for n in family_names()]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            for r in rows:
                click.echo(f"{r['name']:10s} {r['description']}")


_training_commands()
_export_commands()
_bench_commands()
_sweep_commands()
_listing_commands()
COMMANDS: dict[str, click.Command] = cli.commands


def build_parser() -> click.Group:
    """The click group (kept under its argparse-era name for callers)."""
    return cli


# ------------------------------------------------------------------------------ entry point

def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (``--help`` and ``--version`` raise SystemExit(0), as argparse did).

    Every failure is one line on stderr (issue 14): typed errors with their exit code, Ctrl-C (a
    second Ctrl-C too) as "interrupted", anything else as "internal error"; warnings, errors in
    other threads and at exit are one line each as well. ``--debug`` shows tracebacks instead."""
    args = list(sys.argv[1:] if argv is None else argv)
    _STATE.update(debug=False, threads=None)
    if COMPLETE_VAR in os.environ:  # shell completion (README): click's own protocol, then exit
        cli.main(args, prog_name="edgegan", complete_var=COMPLETE_VAR)
    hooks = _one_line_hooks()
    try:
        return _run(args)
    finally:
        _restore_hooks(hooks)


def _run(args: list[str]) -> int:
    try:
        with cli.make_context("edgegan", args) as ctx:
            cli.invoke(ctx)
        return 0
    except click.exceptions.Exit as e:
        raise SystemExit(e.exit_code) from None
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else cli.get_help(click.Context(cli, info_name="edgegan")))
        return 2
    except click.UsageError as e:
        prog = e.ctx.command_path if e.ctx is not None else "edgegan"
        print(f"{prog}: error: {_one_line(e.format_message())} (see {prog} --help)", file=sys.stderr)
        return 2
    except click.ClickException as e:
        print(f"edgegan: error: {_one_line(e.format_message())}", file=sys.stderr)
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt) as e:
        return _interrupted(terminated=isinstance(e, Terminated))
    except EdgeganError as e:
        if _STATE["debug"]:
            raise
        print(f"edgegan: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `edgegan formats | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        if _STATE["debug"]:
            raise
        print("edgegan: error: out of memory (lower --batch-size, --d or --samples)", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - last resort: still one line, traceback under --debug
        if _STATE["debug"]:
            raise
        if isinstance(e, RuntimeError) and "can't allocate memory" in str(e):  # torch's CPU allocator
            print("edgegan: error: out of memory (lower --batch-size, --d or --samples)", file=sys.stderr)
            return 1
        print(f"edgegan: internal error: {type(e).__name__}: {_one_line(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _interrupted(terminated: bool = False) -> int:
    """Ctrl-C (130) or SIGTERM (143): one line. Further signals are ignored from here to the exit, so a
    second press while the process winds down (threads, atexit) cannot print a traceback; the checkpoint
    is already saved."""
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass
    print("edgegan: terminated" if terminated else "edgegan: interrupted", file=sys.stderr)
    return 143 if terminated else 130


def _one_line_hooks() -> tuple:
    """Warnings, exceptions in other threads and "exception ignored" at exit as one line each
    (tracebacks are for --debug, which is read after parsing: the hooks check it when they fire)."""
    import threading
    import warnings

    saved = (warnings.showwarning, threading.excepthook, sys.unraisablehook)

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if _STATE["debug"]:
            return saved[0](message, category, filename, lineno, file, line)
        print(f"edgegan: warning: {category.__name__}: {_one_line(str(message))}", file=sys.stderr)

    def thread_hook(a):
        if _STATE["debug"] or a.exc_type is SystemExit:
            return saved[1](a)
        print(f"edgegan: internal error in a thread: {a.exc_type.__name__}: {_one_line(str(a.exc_value))}",
              file=sys.stderr)

    def unraisable(u):
        if _STATE["debug"]:
            return saved[2](u)
        if u.exc_type is KeyboardInterrupt:
            return
        print(f"edgegan: internal error: {u.exc_type.__name__}: {_one_line(str(u.exc_value))}", file=sys.stderr)

    warnings.showwarning, threading.excepthook, sys.unraisablehook = showwarning, thread_hook, unraisable
    return saved


def _restore_hooks(saved: tuple) -> None:
    import threading
    import warnings

    warnings.showwarning, threading.excepthook, sys.unraisablehook = saved


def _quiet_third_party() -> None:
    """The converters' own start-up chatter (absl/TFLite native logs, torchao kernel notices) says
    nothing about the user's model; keep it for --debug."""
    for var, val in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("GLOG_minloglevel", "2"), ("ABSL_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(var, val)
    from edgegan.quiet import THIRD_PARTY_LOGGERS

    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def _or(v: Any, default: Any) -> Any:
    return default if v is None else v


def _one_line(e: BaseException | str) -> str:
    from edgegan.text import one_line  # the one place control characters are escaped (issue 25)

    try:
        text = e if isinstance(e, str) else str(e)
    except Exception:  # noqa: BLE001 - an exception whose str() fails still gets its line
        text = ""
    return one_line(text) or (type(e).__name__ if not isinstance(e, str) else "error")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
