"""Typed errors. The library raises these; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class EdgeganError(Exception):
    """Base class of every error edgegan raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(EdgeganError, ValueError):
    """An option or configuration value is invalid (d < 1, unknown name, conflicting flags)."""

    exit_code = 2


class UnknownNameError(ConfigError):
    """A name looked up in a registry does not exist; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        import difflib

        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}.{hint}")
        self.kind, self.name, self.valid = kind, name, valid


class DatasetError(EdgeganError):
    """A dataset is missing or malformed; the message names the file and what was expected."""

    exit_code = 3


class CheckpointError(EdgeganError):
    """A run, checkpoint or model file is missing, corrupt or inconsistent with its manifest."""

    exit_code = 4


class TeacherError(CheckpointError):
    """A teacher cannot be loaded, or a student cannot match its latent size or output shape."""


class ConditionalTeacherError(TeacherError):
    """The teacher takes more than z (a class label): not supported; wrap it with a fixed label (issue 10)."""


class ExportError(EdgeganError):
    """Conversion of a model to a deployable format failed."""

    exit_code = 5


class ParityError(ExportError):
    """An exported file does not reproduce the PyTorch model within the precision's thresholds."""

    exit_code = 6


class BenchError(EdgeganError):
    """A benchmark could not be run or its inputs are inconsistent."""

    exit_code = 7


class BundleError(EdgeganError):
    """A bench bundle cannot be made (no exports, a file that does not match its manifest)."""

    exit_code = 8


class OutputError(EdgeganError):
    """An output cannot be written where it was asked for: ``--out`` is a file or lies under one, its
    folder is read-only, the disk is full. Nothing half-written is left behind (issue 14)."""

    exit_code = 9


class DivergenceError(EdgeganError):
    """Training stopped because a loss, or a teacher's output, is not finite (NaN or inf): a result
    computed from it would be silently wrong. The last checkpoint is kept (issue 14)."""

    exit_code = 10


class SweepError(EdgeganError):
    """A sweep directory is missing, from another configuration, or lacks the results a command needs."""

    exit_code = 11


class BudgetError(SweepError):
    """No student of a sweep meets the latency and size budget given to ``edgegan pick``."""
