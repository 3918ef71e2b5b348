"""Host-side benchmark harness (``edgegan bench``). The scripts and the recorded results the README quotes
live outside the package, in the repository's bench/scripts and bench/results. ``edgegan.app.bench_runs``
is the same call with the teacher's ONNX export handed in."""

from __future__ import annotations


def run_bench(*args, **kwargs):
    from edgegan.bench.harness import run_bench as _run

    return _run(*args, **kwargs)


__all__ = ["run_bench"]
