"""How a configuration field declares its default, help text and choices: once, on the dataclass.

The command line is generated from these declarations (``edgegan.app.cli``), so a field added to
``TrainConfig`` or ``DistillConfig`` appears in ``--help`` with its default and help text without
touching the CLI::

    @dataclass(frozen=True)
    class DistillConfig:
        loss: str = opt("mse", "distillation loss", choices=LOSSES)
        ema: float = opt(0.0, "EMA decay of the student's weights (0: off)")
        warmup: int = 0  # learning-rate warm-up steps   <- a plain comment works too (read from the source)

Choices are a tuple of values, or ``Names`` (a registry's names, loaded only when needed, so that
declaring a field never imports numpy or torch). Cheap: stdlib only.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import textwrap
import tokenize
from functools import lru_cache
from typing import Any, Callable, Sequence

HELP = "help"
CHOICES = "choices"
BOUNDS = "bounds"


@dataclasses.dataclass(frozen=True)
class Names:
    """The names of a registry, read on demand from ``module:function`` (a function returning the names).

    ``listed`` says whether ``--help`` may list them: False where loading the registry imports torch
    (generator families); those are still checked, with a closest-match hint, when the option is used.
    """

    kind: str  # "dataset", "generator family": for messages
    loader: str  # "edgegan.data:dataset_names"
    listed: bool = True
    see: str | None = None  # a command that lists them, e.g. "edgegan families"

    def __call__(self) -> list[str]:
        module, _, attr = self.loader.partition(":")
        fn: Callable[[], Sequence[str]] = getattr(importlib.import_module(module), attr)
        return list(fn())


DATASET_NAMES = Names("dataset", "edgegan.data:dataset_names", see="edgegan datasets")
FAMILY_NAMES = Names("generator family", "edgegan.models:family_names", listed=False, see="edgegan families")
WIDTH_PROFILES = Names("dcgan width profile", "edgegan.models.dcgan:profile_names", listed=False)
TASK_NAMES = Names("image-to-image task", "edgegan.tasks:task_names")


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The values a numeric field accepts: ``lo``..``hi`` (None: unbounded on that side), ends included
    unless ``lo_open``/``hi_open``. A float field must also be finite (``--lr inf``, ``--lam nan``);
    an int field a true int (not a bool). Upper bounds keep an absurd value (``--batch-size 10**9``,
    ``--seed 2**70``) a one-line ConfigError instead of an allocation failure or an overflow deep in
    torch (issue 14)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:,}" if isinstance(self.lo, int) else
                         f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:,}" if isinstance(self.hi, int) else
                         f"{'<' if self.hi_open else '<='} {self.hi:g}")
        return " and ".join(parts)

    def admits(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))


# Shared ranges, declared once. Depth factors: a d=512 DCGAN teacher already holds ~175M parameters.
DEPTH = Bounds(1, 512)
SEED = Bounds(0, 2**63 - 1)  # torch.manual_seed takes a signed 64-bit value
STEPS = Bounds(1, 10**9)
EVERY = Bounds(0, 10**9)  # "every N steps" (0: off)
BATCH = Bounds(1, 8192)
LATENT = Bounds(1, 4096)
LEARNING_RATE = Bounds(0.0, None, lo_open=True)
BETA = Bounds(0.0, 1.0, hi_open=True)
WEIGHT = Bounds(0.0, None)  # a loss weight: finite, >= 0


def opt(default: Any = dataclasses.MISSING, help: str = "", *, choices: Sequence[Any] | Names | None = None,
        bounds: Bounds | None = None) -> Any:
    """A dataclass field with its help text (choices, bounds) in ``metadata``: the one place the CLI reads."""
    metadata: dict[str, Any] = {HELP: help}
    if choices is not None:
        metadata[CHOICES] = tuple(choices) if not isinstance(choices, Names) else choices
    if bounds is not None:
        metadata[BOUNDS] = bounds
    return dataclasses.field(default=default, metadata=metadata)


def field_bounds(f: dataclasses.Field) -> Bounds | None:
    return f.metadata.get(BOUNDS)


def check_bounds(obj: Any) -> None:
    """Raise ConfigError for a field outside its ``bounds`` (None passes: an unset optional field).
    Whether the field is a float is read from its annotation (``float``, ``float | None``)."""
    import math

    from edgegan.errors import ConfigError

    for f in dataclasses.fields(obj):
        b = field_bounds(f)
        v = getattr(obj, f.name)
        if b is None or v is None:
            continue
        name = f.name.replace("_", "-")
        if "float" in str(f.type):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{name} must be a finite number{' ' + b.describe() if b.describe() else ''}, got {v!r}")
        elif isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{name} must be an integer{' ' + b.describe() if b.describe() else ''}, got {v!r}")
        if not b.admits(v):
            raise ConfigError(f"{name} must be {b.describe()}, got {v!r}")


def field_help(cls: type, f: dataclasses.Field) -> str:
    """A field's help: its ``metadata["help"]``, else the comment on its line in the source of the class
    that declares it (``cls`` or a base: a config assembled from option classes keeps their comments)."""
    text = f.metadata.get(HELP)
    if text:
        return str(text)
    owner = next((c for c in cls.__mro__ if f.name in inspect.get_annotations(c)), cls)
    return _source_comments(owner).get(f.name, "")


def field_choices(f: dataclasses.Field) -> tuple[Any, ...] | Names | None:
    return f.metadata.get(CHOICES)


def check_choices(obj: Any) -> None:
    """Raise ConfigError for a field whose value is not one of its tuple ``choices`` (registries check their own)."""
    from edgegan.errors import ConfigError

    for f in dataclasses.fields(obj):
        choices = field_choices(f)
        value = getattr(obj, f.name)
        if isinstance(choices, tuple) and value is not None and value not in choices:
            valid = ", ".join(str(c) for c in choices)
            raise ConfigError(f"{f.name.replace('_', '-')} must be one of {valid}, got {value!r}")


@lru_cache(maxsize=None)
def _source_comments(cls: type) -> dict[str, str]:
    """{field name: trailing comment} for ``name: type = value  # comment`` lines of a class body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))  # a class defined in a function is indented
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    line_name: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.start[0] not in line_name:
                line_name[tok.start[0]] = tok.string
            elif tok.type == tokenize.COMMENT and tok.start[0] in line_name:
                out.setdefault(line_name[tok.start[0]], tok.string.lstrip("#").strip())
    except (tokenize.TokenError, IndentationError):
        return out
    return out
