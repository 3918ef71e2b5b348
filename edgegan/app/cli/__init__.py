"""The ``edgegan`` command line (click): ``options`` (generated from the dataclasses), ``group`` (global
options), ``commands`` and ``exits`` (the entry point and its exit codes).

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
        from edgegan.app.bundle import make_bundle   # the implementation, imported lazily
        ...
"""

from edgegan.app.cli.commands import COMMANDS, build_parser, cli
from edgegan.app.cli.exits import COMPLETE_VAR, main
from edgegan.app.cli.options import config_options, json_option, option_for, out_option, quiet_option

__all__ = ["COMMANDS", "COMPLETE_VAR", "build_parser", "cli", "config_options", "json_option", "main", "option_for",
           "out_option", "quiet_option"]
