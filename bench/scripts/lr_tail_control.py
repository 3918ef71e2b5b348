"""Control for the quant-aware tail (issues 20, 22): the same resumed steps at the same 0.1 x lr, with the
int8 rounding switched off, so a quality change can be put on the rounding or on the low learning rate.

    .venv/bin/python bench/scripts/lr_tail_control.py RUN OUT --steps S+N --tail N  # then score OUT as usual

Copies RUN (a finished distillation) to OUT and runs ``edgegan distill --resume --steps S+N
--quant-aware N`` on it in this process, with ``edgegan.quant_aware``'s grids made the identity (their
ranges still tracked): the tail's learning rate, schedule and steps are the product's, the rounding is gone.
The manifest still says ``quant_aware`` (what the loop ran); OUT's name says what it is.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from edgegan import quant_aware
from edgegan.distill import distill
from edgegan.distill_config import DistillConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, required=True, help="total steps after the tail (S + N)")
    ap.add_argument("--tail", type=int, required=True, help="N: the last N steps at the quant-aware learning rate")
    a = ap.parse_args()
    if a.out.exists():
        raise SystemExit(f"{a.out} exists")
    shutil.copytree(a.run, a.out)
    cfg = json.loads((a.run / "manifest.json").read_text())["config"]
    cfg.update(steps=a.steps, quant_aware=a.tail)
    real = quant_aware._Grid.__call__

    def track_only(self, x, training):  # update the range as the real grid does, return x unrounded
        real(self, x, training)
        return x

    quant_aware._Grid.__call__ = track_only
    try:
        distill(DistillConfig(**cfg), a.out, resume=True, progress=False)
    finally:
        quant_aware._Grid.__call__ = real


if __name__ == "__main__":
    main()
