"""Declared shapes of the JSON documents a command reads from strangers, checked before any work (issue 25).

``sweep.json`` (read by ``pick``) and a board's ``device.json`` (read by ``bench`` and ``pick``) are
validated against the specs below: a wrong type, a missing field, a NaN, an infinite or negative
number, an integer beyond 64 bits or an over-long string is one typed error naming the field, instead
of an internal error deep in a command or a NaN that wins a ranking. The nesting depth of the file
itself is bounded by ``edgegan.manifest.load_json`` (its parser's recursion limit is a typed error).

A spec is a Python type (``str``, ``int``, ``bool``: exactly that type, a bool is no int), ``NUM``
(a finite number >= 0), ``FINITE``, ``ANY``, ``Opt(spec)`` (missing or null allowed), a dict ``{field: spec}``
(other fields are kept and not checked), ``[spec]`` (a list of such items), or ``MapOf(spec)`` (a dict
with string keys and values of one spec).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_ITEMS = 100_000  # items in one list or map
MAX_STR = 4096  # characters in one string
MAX_INT = (1 << 63) - 1

NUM = "a finite number >= 0"
FINITE = "a finite number"
ANY = "anything"


@dataclass(frozen=True)
class Opt:
    spec: Any


@dataclass(frozen=True)
class MapOf:
    spec: Any


def check(doc: Any, spec: Any, where: str, error: type[Exception]) -> None:
    """Raise ``error`` ("WHERE: field a.b[3].c should be …, got …") unless ``doc`` fits ``spec``."""
    _check(doc, spec, "", where, error)


def _got(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return type(v).__name__
    text = repr(v)
    return f"{type(v).__name__} ({text[:40]}{'…' if len(text) > 40 else ''})"


def _check(v: Any, spec: Any, path: str, where: str, error: type[Exception]) -> None:
    def fail(want: str) -> None:
        raise error(f"{where}: field {path or '(top)'} should be {want}, got {_got(v)}")

    if isinstance(spec, Opt):
        if v is not None:
            _check(v, spec.spec, path, where, error)
        return
    if spec is ANY:
        return
    if spec is NUM or spec is FINITE:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            fail(spec)
        if isinstance(v, int) and abs(v) > MAX_INT or isinstance(v, float) and not math.isfinite(v):
            fail(spec)
        if spec is NUM and v < 0:
            fail(spec)
        return
    if spec is bool:
        if not isinstance(v, bool):
            fail("true or false")
        return
    if spec is int:
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) > MAX_INT:
            fail("a 64-bit integer")
        return
    if spec is str:
        if not isinstance(v, str) or len(v) > MAX_STR or "\0" in v:
            fail(f"a string of at most {MAX_STR} characters without NUL")
        return
    if isinstance(spec, list):
        if not isinstance(v, list) or len(v) > MAX_ITEMS:
            fail(f"a list of at most {MAX_ITEMS} items")
        for i, item in enumerate(v):
            _check(item, spec[0], f"{path}[{i}]", where, error)
        return
    if isinstance(spec, MapOf):
        if not isinstance(v, dict) or len(v) > MAX_ITEMS:
            fail(f"an object of at most {MAX_ITEMS} fields")
        for k, item in v.items():
            _check(k, str, f"{path}.<key>", where, error)
            _check(item, spec.spec, f"{path}.{k}" if path else k, where, error)
        return
    if isinstance(spec, dict):
        if not isinstance(v, dict):
            fail("an object")
        for k, sub in spec.items():
            p = f"{path}.{k}" if path else k
            if k not in v:
                if isinstance(sub, Opt):
                    continue
                raise error(f"{where}: field {p} is missing")
            _check(v[k], sub, p, where, error)
        return
    raise TypeError(f"unknown spec {spec!r}")  # a bug in a spec below, not bad input


# A board's device-results file (edgegan/bundle_script.py writes it): what bench and pick read.
_LATENCY = {k: Opt(NUM) for k in ("p50_us", "p90_us", "p99_us", "mean_us", "images_per_s", "load_ms", "first_ms",
                                   "peak_rss_mb", "runs")}
DEVICE_RESULTS = {
    "schema": str,
    "created": Opt(str),
    "machine": Opt({"cpu": Opt(str), "machine": Opt(str), "platform": Opt(str), "cores": Opt(NUM),
                    "emulated": Opt(bool)}),
    "python": Opt(str),
    "versions": Opt(MapOf(Opt(str))),
    "settings": Opt({"batch": Opt(NUM), "threads": Opt(NUM), "runs": Opt(NUM)}),
    "models": [{
        "name": Opt(str),
        "sha256": Opt(str),
        "error": Opt(str),
        "latency": Opt({**_LATENCY, "backend": Opt(str), "in_process": Opt(bool), "error": Opt(str)}),
        "parity": Opt({"passed": Opt(bool)}),
    }],
}

# A sweep's table (edgegan/sweep.py writes it): what pick reads.
SWEEP_TABLE = {
    "schema": str,
    "config": {"target": str},
    "headline": {"key": str, "higher_is_better": bool},
    "rows": [{
        "d": int,
        "recipes": MapOf({"runs": [{
            "seed": int, "id": str, "file": str, "bytes": NUM, "p50_us": Opt(NUM), "sha256": Opt(str),
            "headline_deployed": Opt(FINITE),  # KID, unbiased, may be slightly negative
        }]}),
    }],
}
