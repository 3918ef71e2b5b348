"""The entry point: runs the group and maps every outcome to one line on stderr and an exit code.

The library raises typed errors; this module alone maps them (``EdgeganError.exit_code``; 2 for a usage
error); ``--debug`` shows the traceback instead."""

from __future__ import annotations

import os
import sys

import click

from edgegan.app.cli.commands import cli
from edgegan.app.cli.group import _STATE
from edgegan.errors import EdgeganError
from edgegan.utils import Terminated

COMPLETE_VAR = "_EDGEGAN_COMPLETE"  # eval "$(_EDGEGAN_COMPLETE=bash_source edgegan)"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (``--help`` and ``--version`` raise SystemExit(0), as argparse did).

    Every failure is one line on stderr (issue 14): typed errors with their exit code, Ctrl-C (a
    second Ctrl-C too) as "interrupted", anything else as "internal error"; warnings, errors in
    other threads and at exit are one line each as well. ``--debug`` shows tracebacks instead."""
    args = list(sys.argv[1:] if argv is None else argv)
    _STATE.update(debug=False, threads=None)
    if COMPLETE_VAR in os.environ:  # shell completion (docs/cli.md): click's own protocol, then exit
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


def _one_line(e: BaseException | str) -> str:
    from edgegan.text import one_line  # the one place control characters are escaped (issue 25)

    try:
        text = e if isinstance(e, str) else str(e)
    except Exception:  # noqa: BLE001 - an exception whose str() fails still gets its line
        text = ""
    return one_line(text) or (type(e).__name__ if not isinstance(e, str) else "error")
