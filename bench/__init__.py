"""Host-side benchmark harness (``edgegan bench``) and the recorded results the README quotes (results/)."""

from __future__ import annotations


def run_bench(*args, **kwargs):
    from edgegan.bench.harness import run_bench as _run

    return _run(*args, **kwargs)


__all__ = ["run_bench"]
