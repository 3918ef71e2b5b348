"""The ``edgegan`` click group: global options (--debug, --threads), the command class that applies them,
and the process-wide state the exit-code mapping reads."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from edgegan import __version__

_STATE: dict[str, Any] = {"debug": False, "threads": None}
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


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


def _quiet_third_party() -> None:
    """The converters' own start-up chatter (absl/TFLite native logs, torchao kernel notices) says
    nothing about the user's model; keep it for --debug."""
    for var, val in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("GLOG_minloglevel", "2"), ("ABSL_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(var, val)
    from edgegan.quiet import THIRD_PARTY_LOGGERS

    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
