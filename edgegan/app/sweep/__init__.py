"""``edgegan sweep``: the paper's table in one command, and ``edgegan pick``: the student to ship.

A sweep (issue 13) trains or reuses a teacher, distils one student per size × recipe × seed, trains a
scratch baseline per size and seed whose generator learning rate is chosen on a held-out split,
exports every student to the deployed form (TFLite int8 by default) and scores both forms, then
writes the paper-shaped table (``sweep.json``, ``sweep.md``, ``plot.png``, ``samples/d*.png``).

Equal budget: every student and every baseline takes ``--steps`` optimiser steps of ``--batch-size``.

Resumable run by run. ``DIR/plan.json`` lists the runs (written once; a second call with another
configuration is refused). Each run is a folder ``DIR/runs/<id>/`` holding its edgegan run(s),
``result.json`` and, written last, ``DONE``. A killed sweep started again reuses every folder with
``DONE`` and starts any other one afresh (a run is minutes at most; its own checkpoint would save little).

The baseline's learning rate: for each size, seed 0 is trained at every rate of ``--baseline-lrs`` on the
training split minus its last ``--holdout`` images, and scored by the headline metric against those held-out
images (never against the test split, whose images are the table's reference). The best rate trains the
other seeds; the seed-0 run at that rate is reused as the table's seed-0 baseline.
"""

from edgegan.app.sweep.config import (DONE_NAME, MARKDOWN_NAME, METRICS, PLAN_NAME, SCHEMA, SweepConfig,
                                      make_plan)
from edgegan.app.sweep.pick import PickOptions, pick, read_table
from edgegan.app.sweep.runs import Scorer, Sweep, run_sweep
from edgegan.app.sweep.table import _plot, to_markdown

__all__ = ["METRICS", "PickOptions", "SweepConfig", "make_plan", "pick", "read_table", "run_sweep"]
