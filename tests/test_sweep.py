"""`edgegan sweep` end to end on the embedded digits (killed once and resumed), and `edgegan pick`.

The sweep is tiny (teacher d=4 for 40 steps, students and baselines d=1 and d=2 for 20 steps, two
seeds, one recipe, two baseline learning rates, 64 images per model) so the file stays near a minute of CPU;
it checks the mechanics and the table's shape, not the quality of such short runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgegan.errors import BudgetError, ConfigError, SweepError
from edgegan.app.sweep import DONE_NAME, PLAN_NAME, SCHEMA, PickOptions, SweepConfig, make_plan, pick
from tests.procs import spawned, wait_until

TINY = ["--dataset", "digits", "--teacher", "4", "--teacher-steps", "40", "--d", "1,2", "--recipes", "mse",
        "--seeds", "2", "--steps", "20", "--batch-size", "16", "--baseline-lrs", "5e-4,2e-3", "--holdout", "100",
        "--samples", "64", "--latent-pool", "64"]


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "edgegan.app.cli", "--threads", "1", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _done(out: Path) -> set[str]:
    return {p.parent.name for p in (out / "runs").glob(f"*/{DONE_NAME}")} if (out / "runs").exists() else set()


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, dict, dict[str, float]]:
    out = tmp_path_factory.mktemp("sweep") / "s"
    cmd = _cli(["sweep", "--out", str(out), "--quiet", *TINY])
    # Kill it (SIGKILL: no clean-up at all) once a few runs are finished and a student has started.
    log = out.parent / "first.log"
    with open(log, "wb") as err, spawned(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=err) as p:
        wait_until(lambda: any(n.startswith("student") for n in _done(out)), p, "finished student run")
        alive = p.poll() is None  # killed mid-sweep, or the test tests no resume
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert alive, f"the sweep ended before it could be killed: {log.read_text()[-2000:]}"
    before = _done(out)
    assert before and not (out / "sweep.json").exists()
    stamps = {n: (out / "runs" / n / DONE_NAME).stat().st_mtime_ns for n in before}
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "# edgegan sweep: digits" in r.stdout
    return out, json.loads((out / "sweep.json").read_text()), stamps


def test_a_killed_sweep_resumes_and_reuses_finished_runs(swept):
    out, doc, stamps = swept
    for name, ns in stamps.items():  # finished before the kill: reused, not run again
        assert (out / "runs" / name / DONE_NAME).stat().st_mtime_ns == ns, name
    plan = json.loads((out / PLAN_NAME).read_text())["runs"]
    assert _done(out) == {r["id"] for r in plan}
    assert len(plan) == 1 + 1 + 2 * (2 + 1) + 2 * 1 * 2  # teacher, its score, baselines (2 lrs + 1 seed), students


def test_the_table_has_a_row_per_size_with_every_column(swept):
    out, doc, _ = swept
    assert doc["schema"] == SCHEMA and doc["scale"] == "CPU-scale"
    assert [r["d"] for r in doc["rows"]] == [1, 2]
    assert doc["budget"]["steps"] == 20
    assert doc["headline"]["key"] == "classifier_kid"  # digits have labels: the classifier's feature space
    t = doc["teacher"]
    assert t["d"] == 4 and t["steps"] == 40 and t["params"] > 0
    for row in doc["rows"]:
        assert row["params"] > 0 and row["ratio"] == pytest.approx(t["params"] / row["params"], rel=1e-2)
        assert set(row["recipes"]) == {"mse"}
        for rc, v in row["recipes"].items():
            for section in (v["metrics"], v["deployed"]["metrics"]):
                for key in ("classifier_fid", "classifier_is", "classifier_kid", "classifier_precision",
                            "classifier_recall", "swd"):
                    a = section[key]
                    assert a["n"] == 2 and len(a["values"]) == 2
                    # the spread is the sample std of the two seeds' values
                    assert a["std"] == pytest.approx(abs(a["values"][0] - a["values"][1]) / 2 ** 0.5, rel=1e-6, abs=1e-12)
                    assert a["min"] <= a["mean"] <= a["max"]
            assert v["deployed"]["bytes"]["mean"] > 0
            assert [r["seed"] for r in v["runs"]] == [0, 1]
            assert all(Path(out / r["file"]).is_file() and r["file"].endswith(".tflite") for r in v["runs"])
        b = row["baseline"]
        assert b["lr"]["lr"] in (5e-4, 2e-3) and b["lr"]["metric"] == "classifier_kid"
        assert set(b["lr"]["holdout_scores"]) == {"0.0005", "0.002"}
        assert b["seeds"] == [0, 1] and b["metrics"]["classifier_fid"]["n"] == 2
        assert row["verdict"]["best_recipe"] == "mse"
    md = (out / "sweep.md").read_text()
    assert "| d | params | ratio | mse | mse tflite:int8 | baseline (lr) |" in md
    assert md.count("\n| 1 | ") >= 5 and "CPU-scale" in md
    assert (out / "plot.png").stat().st_size > 0
    assert {p.name for p in (out / "samples").glob("*.png")} == {"d1.png", "d2.png"}


def test_the_baselines_never_see_the_held_out_images(swept):
    out, doc, _ = swept
    man = json.loads((out / "runs" / "baseline-d1-s1" / "run" / "manifest.json").read_text())
    assert man["config"]["limit"] == doc["baseline_tuning"]["train_images"]
    assert man["dataset"]["count"] == doc["baseline_tuning"]["train_images"]
    assert man["config"]["lr"] == doc["rows"][0]["baseline"]["lr"]["lr"] and man["config"]["d_lr"] == 2e-4


def test_a_sweep_dir_with_other_settings_is_refused(swept):
    out, _, _ = swept
    r = subprocess.run(_cli(["sweep", "--out", str(out), *TINY[:-2], "--latent-pool", "32"]), env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == SweepError.exit_code
    assert "latent_pool" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_pick_on_the_real_sweep_names_a_file(swept):
    out, doc, _ = swept
    res = pick(out, PickOptions(max_bytes=10**9))
    assert (out / res["pick"]["file"]).is_file()
    assert len(res["others"]) == 2 * 1 * 2 - 1


# --------------------------------------------------------------------------- pick on a hand-made table


def _table(tmp_path: Path) -> Path:
    """Three students: small and fast but worse; middle; big, slow and best (lower KID is better)."""
    def run(d, seed, p50, nbytes, kid):
        return {"seed": seed, "id": f"student-d{d}-mse-s{seed}", "file": f"runs/d{d}.tflite", "sha256": f"sha{d}",
                "bytes": nbytes, "p50_us": p50, "headline": kid, "headline_deployed": kid}

    rows = [{"d": d, "recipes": {"mse": {"runs": [run(d, 0, p50, b, k)]}}}
            for d, p50, b, k in ((2, 50.0, 10_000, 0.30), (4, 120.0, 40_000, 0.10), (8, 400.0, 150_000, 0.05))]
    doc = {"schema": SCHEMA, "config": {"target": "tflite:int8"}, "rows": rows,
           "headline": {"key": "classifier_kid", "label": "KID", "higher_is_better": False}}
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    return tmp_path


def test_pick_chooses_the_best_within_the_budget_and_says_why_others_lost(tmp_path):
    d = _table(tmp_path)
    res = pick(d, PickOptions(max_latency_us=200, max_bytes=100_000))
    assert res["pick"]["d"] == 4
    why = {o["d"]: " ".join(o["why"]) for o in res["others"]}
    assert "latency 400.0 µs > 200.0" in why[8] and "150,000 bytes > 100,000" in why[8]
    assert "not better than" in why[2]
    assert pick(d, PickOptions())["pick"]["d"] == 8  # no budget: the best
    assert pick(d, PickOptions(max_bytes=20_000))["pick"]["d"] == 2


def test_pick_uses_device_latency_when_merged(tmp_path):
    d = _table(tmp_path)
    dev = {"schema": "edgegan.device-results/1", "machine": {"cpu": "Cortex-A72", "emulated": False},
           "models": [{"sha256": "sha4", "latency": {"p50_us": 900.0}}, {"sha256": "sha2", "latency": {"p50_us": 150.0}}]}
    (tmp_path / "device.json").write_text(json.dumps(dev))
    res = pick(d, PickOptions(max_latency_us=200, device_results=(str(tmp_path / "device.json"),)))
    assert res["pick"]["d"] == 2 and res["pick"]["latency_from"] == "Cortex-A72"


def test_pick_refuses_an_impossible_budget_with_a_typed_error(tmp_path):
    d = _table(tmp_path)
    with pytest.raises(BudgetError, match="fastest takes 50.0 µs, the smallest has 10,000 bytes"):
        pick(d, PickOptions(max_latency_us=10, max_bytes=5_000))
    r = subprocess.run(_cli(["pick", str(d), "--max-latency-us", "10"]), env=_env(), capture_output=True, text=True)
    assert r.returncode == BudgetError.exit_code and r.stderr.startswith("edgegan: error: no student")
    with pytest.raises(SweepError, match="no sweep.json"):
        pick(tmp_path / "nowhere", PickOptions())
    with pytest.raises(ConfigError):
        PickOptions(max_bytes=0)


def test_sweep_config_is_validated_before_anything_runs():
    with pytest.raises(ConfigError, match="recipe"):
        SweepConfig(recipes="mse,nope")
    with pytest.raises(ConfigError, match="d must"):
        SweepConfig(d="2,x")
    with pytest.raises(ConfigError, match="baseline-lrs"):
        SweepConfig(baseline_lrs="0")
    with pytest.raises(ConfigError):
        SweepConfig(target="tflite:int3")
    plan = make_plan(SweepConfig(d="2,4", recipes="mse", seeds=3, baseline_lrs="1e-3,2e-3"))
    ids = [r["id"] for r in plan]
    assert ids[:4] == ["teacher", "teacher-score", "baseline-d2-lr0.001-s0", "baseline-d2-lr0.002-s0"]
    assert "baseline-d2-s0" not in ids and "baseline-d2-s2" in ids and ids[-1] == "student-d4-mse-s2"
