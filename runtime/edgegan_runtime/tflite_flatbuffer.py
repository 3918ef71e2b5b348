"""The structural layer of TFLite verification: is the buffer a well-formed flatbuffer at all?

A corrupted flatbuffer can make the TFLite interpreter read out of bounds and segfault, because the
Python interpreters build models without running the flatbuffers verifier. ``Verifier`` is that
verifier, driven by the table layouts frozen in ``_tflite_schema`` (the same checks as flatc's
generated ``Verify``): every offset, vtable, vector, string and sub-table inside the buffer and
aligned; strings NUL-terminated; nesting and table count bounded. ``read_model`` runs it over a
whole file and returns the Model table as nested ``Obj`` dicts.

It knows the schema's layouts but not what the fields mean: indices in range, constant sizes,
quantization and operator shapes are ``tflite_semantics`` and ``tflite_op_shapes``. Only ``struct``
and numpy: no flatbuffers package, no native code.
"""

from __future__ import annotations

import struct

import numpy as np

from edgegan_runtime._tflite_schema import TABLES, UNIONS
from edgegan_runtime.errors import ModelFileError

IDENTIFIER = b"TFL3"
MAX_DEPTH = 64  # as flatbuffers::Verifier
MAX_TABLES = 1_000_000  # as flatbuffers::Verifier


class Obj(dict):
    """A verified table: vtable offset -> value. Scalars are unsigned ints; vectors of scalars are
    (position, count, element bytes); sub-tables are Obj; vectors of tables are lists of Obj;
    strings are bytes; a union is Obj (its type is the scalar in the slot before)."""

    __slots__ = ("kind",)


class Verifier:
    """Reads tables out of ``data`` (named ``name`` in messages), checking each byte it follows."""

    def __init__(self, data: bytes | memoryview, name: str):
        self.b = data
        self.n = len(data)
        self.name = name
        self.tables = 0

    def fail(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: corrupt TFLite file ({what})")

    def _need(self, pos: int, size: int, align: int, what: str) -> None:
        if pos < 0 or pos + size > self.n:
            raise self.fail(f"{what} at byte {pos} runs past the end of the {self.n}-byte file")
        if align > 1 and pos % align:
            raise self.fail(f"{what} at byte {pos} is misaligned")

    def u(self, pos: int, size: int, what: str) -> int:
        self._need(pos, size, size, what)
        return int.from_bytes(self.b[pos : pos + size], "little")

    def offset(self, pos: int, what: str) -> int:
        """Follow the uoffset stored at ``pos``; the target must lie inside the buffer."""
        rel = self.u(pos, 4, what)
        if rel == 0 or pos + rel >= self.n:
            raise self.fail(f"{what} at byte {pos} points outside the file")
        return pos + rel

    def vector(self, pos: int, elem: int, what: str) -> tuple[int, int]:
        count = self.u(pos, 4, f"{what} length")
        if count * elem > self.n - pos - 4:
            raise self.fail(f"{what} at byte {pos} claims {count} elements, more than the file holds")
        return pos + 4, count

    def string(self, pos: int, what: str) -> bytes:
        start, count = self.vector(pos, 1, what)
        self._need(start + count, 1, 1, f"{what} terminator")
        if self.b[start + count] != 0:
            raise self.fail(f"{what} at byte {pos} is not NUL-terminated")
        return bytes(self.b[start : start + count])

    def table(self, pos: int, tname: str, depth: int) -> Obj:
        if depth > MAX_DEPTH:
            raise self.fail("tables nested too deeply")
        self.tables += 1
        if self.tables > MAX_TABLES:
            raise self.fail("too many tables")
        self._need(pos, 4, 4, f"{tname} table")
        vt = pos - struct.unpack_from("<i", self.b, pos)[0]
        self._need(vt, 4, 2, f"{tname} vtable")
        vsize, tsize = self.u(vt, 2, "vtable size"), self.u(vt + 2, 2, "table size")
        if vsize < 4 or vsize % 2:
            raise self.fail(f"{tname} vtable at byte {vt} has a bad size {vsize}")
        self._need(vt, vsize, 2, f"{tname} vtable")
        self._need(pos, tsize, 1, f"{tname} table")
        obj = Obj()
        obj.kind = tname
        for slot, kind, arg in TABLES[tname]:
            if slot >= vsize:
                continue
            off = self.u(vt + slot, 2, "field offset")
            if off == 0:
                continue
            if off >= tsize:
                raise self.fail(f"{tname} field outside its table at byte {pos}")
            p = pos + off
            what = f"{tname} field {slot}"
            if kind == "s":
                obj[slot] = self.u(p, arg, what)
            elif kind == "str":
                obj[slot] = self.string(self.offset(p, what), what)
            elif kind == "t":
                obj[slot] = self.table(self.offset(p, what), arg, depth + 1)
            elif kind == "vs":
                obj[slot] = (*self.vector(self.offset(p, what), arg, what), arg)
            elif kind in ("vt", "vstr"):
                start, count = self.vector(self.offset(p, what), 4, what)
                items = []
                for i in range(count):
                    target = self.offset(start + 4 * i, what)
                    items.append(self.table(target, arg, depth + 1) if kind == "vt" else self.string(target, what))
                obj[slot] = items
            elif kind == "u":
                utype = obj.get(slot - 2, 0)
                member = UNIONS[arg].get(utype)
                if member is not None:  # an unknown member is skipped, as flatc's verifier does
                    obj[slot] = self.table(self.offset(p, what), member, depth + 1)
        return obj


def read_model(data: bytes | memoryview, name: str) -> tuple[Verifier, Obj]:
    """Verify the structure of ``data`` (a whole .tflite file): its size, the 'TFL3' identifier and
    every table reachable from the root. Returns the verifier (for reading vectors) and the Model."""
    v = Verifier(data, name)
    if v.n < 16:
        raise v.fail(f"only {v.n} bytes")
    if bytes(data[4:8]) != IDENTIFIER:
        raise ModelFileError(f"{name}: not a TFLite file (no 'TFL3' identifier at bytes 4..8)")
    return v, v.table(v.offset(0, "root offset"), "Model", 0)


def ints(v: Verifier, field: tuple[int, int, int] | None, signed: bool = True) -> np.ndarray:
    """A verified vector of scalars as an int64 array (empty if absent)."""
    if field is None:
        return np.zeros(0, dtype=np.int64)
    start, count, size = field
    dt = np.dtype(f"<{'i' if signed else 'u'}{size}")
    return np.frombuffer(v.b, dtype=dt, count=count, offset=start).astype(np.int64)


def floats(v: Verifier, field: tuple[int, int, int] | None) -> np.ndarray:
    """A verified vector of float32 as an array (empty if absent)."""
    if field is None:
        return np.zeros(0, dtype=np.float32)
    start, count, _ = field
    return np.frombuffer(v.b, dtype="<f4", count=count, offset=start).copy()


def signed32(x: int) -> int:
    """A 4-byte scalar (read unsigned by the verifier) as the int32 the schema declares."""
    return x - (1 << 32) if x >= 1 << 31 else x
