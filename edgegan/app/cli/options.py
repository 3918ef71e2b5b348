"""The options of every command, generated from the dataclass that owns them: the default, choices and
help text are declared once, on the field (``edgegan.config.opt``), and read here."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Any, Callable

import click

from edgegan.config import Names, field_choices, field_help


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
