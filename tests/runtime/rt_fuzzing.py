"""Corrupted variants of real model files, and a crash-tolerant driver that loads them in a subprocess."""

from __future__ import annotations

import os
import random
import selectors
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

WORKER = Path(__file__).with_name("rt_fuzz_worker.py")


def structure_offsets(data: bytes, fmt: str) -> list[int]:
    """Byte offsets of a model file that are structure, not weight values: mutations there matter."""
    weights = bytearray(len(data))
    if fmt == "tflite":
        from edgegan_runtime.tflite_check import _Verifier

        v = _Verifier(data, "fuzz")
        model = v.table(v.offset(0, "root"), "Model", 0)
        spans = [(b[4][0], b[4][1]) for b in model.get(12, []) if 4 in b]
    else:
        import onnx

        spans = []
        for t in onnx.load_model_from_string(data).graph.initializer:
            if len(t.raw_data) >= 16:
                start = data.find(t.raw_data)
                spans.append((start, len(t.raw_data)))
    for start, count in spans:
        weights[start : start + count] = b"\1" * count
    return [i for i, w in enumerate(weights) if not w]


def mutate(data: bytes, other: bytes, rng: random.Random, hot: list[int]) -> tuple[str, bytes]:
    """One corrupted copy of ``data``: (kind, bytes). ``hot`` lists the offsets holding the file's
    structure (not weights), where most point mutations land; ``other`` is a file of the other format."""
    n = len(data)
    kind = rng.choice(["flip", "flip", "flip", "truncate", "zero", "swap", "bytes"])

    def pos() -> int:
        return rng.choice(hot) if rng.random() < 0.8 else rng.randrange(n)

    b = bytearray(data)
    if kind == "flip":
        for _ in range(rng.choice([1, 1, 2, 4, 8])):
            b[pos()] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for _ in range(rng.choice([1, 2, 4])):
            b[pos()] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    elif kind == "truncate":
        b = b[: rng.choice([0, 1, 4, 8, 16, 64, rng.randrange(n), rng.choice(hot), n - 1])]
    elif kind == "zero":
        start = pos()
        end = min(n, start + rng.choice([4, 16, 64, 256, 4096]))
        b[start:end] = bytes(end - start)
    elif kind == "swap":  # another file's header on this body, or this header on another body
        k = rng.choice([8, 16, 64, 512])
        b = bytearray(other[:k] + data[k:]) if rng.random() < 0.5 else bytearray(data[:k] + other[k:])
    return kind, bytes(b)


@dataclass
class FuzzResult:
    outcomes: Counter = field(default_factory=Counter)  # OK / TYPED <cls> / UNTYPED ... / CRASH / HANG
    each: list[tuple[Path, str]] = field(default_factory=list)  # (path, full outcome with a typed error's message)
    failures: list[str] = field(default_factory=list)  # "path: outcome" for crashes, hangs, untyped errors
    seconds: float = 0.0


class _Worker:
    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=env,
        )
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    def ask(self, path: str, timeout: float) -> str:
        try:
            self.proc.stdin.write(path + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return "CRASH"
        deadline = time.monotonic() + timeout
        while True:
            if not self.sel.select(max(0.0, deadline - time.monotonic())):
                return "HANG"
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(timeout=10)
                code = self.proc.returncode
                return f"CRASH signal={-code}" if code < 0 else f"CRASH exit={code}"
            if line.startswith("@@ "):
                return line[3:].strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.sel.close()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def run_fuzz(paths: list[Path], *, timeout: float = 20.0) -> FuzzResult:
    """Load each file in a worker subprocess; a dead or silent worker is counted and replaced."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    res = FuzzResult()
    t0 = time.monotonic()
    worker = _Worker(env)
    try:
        for p in paths:
            out = worker.ask(str(p), timeout)
            res.each.append((p, out))
            res.outcomes[out.split(" ")[0] if out.startswith(("UNTYPED", "CRASH")) else out.split("\t")[0]] += 1
            if out.startswith(("UNTYPED", "CRASH", "HANG")):
                res.failures.append(f"{p.name}: {out}")
                worker.close()
                worker = _Worker(env)
    finally:
        worker.close()
    res.seconds = time.monotonic() - t0
    return res
