"""Data-parallel training under torchrun (issue 14, "Scale-out"): two CPU processes (gloo) train what
one process trains at the same global batch and seed, only rank 0 writes, and a run checkpointed by
two processes resumes in one.

The tolerances. Adam moves a weight by at most about ``lr`` per step (|m̂ / (√v̂ + ε)| ≲ 1), so
``lr * steps`` is the scale of how far training moves any weight, and both checks are fractions of it.
Two processes differ from one only in the order of float32 reductions (gradients summed per rank then
averaged across ranks; BatchNorm sums in two parts), about 1e-7 relative per gradient; Adam divides by
the gradient's size, so a weight whose gradient nearly cancels can move by a sizeable part of a step
either way, and which weights do depends on the CPU's kernels (issue 18). Measured, as fractions of
``lr * steps`` (worst weight / root mean square over all weights):

    what                                     teacher              student
    global-batch BatchNorm, AVX2 (EPYC)      2.2e-4 / -           7.0e-4 / -
    global-batch BatchNorm, AVX-512 (EPYC)   2.2e-4 / 3.8e-6      2.2e-2 / 4.4e-4
    per-rank BatchNorm (the defect), AVX-512 8.1    / 0.42        2.0    / 0.35

The worst weight must stay within MAX_FRACTION = 0.2 (9x the AVX-512 student's 2.2e-2, 10x below the
defect's 2.0) and the RMS within RMS_FRACTION = 0.01 (23x its 4.4e-4, 35x below the defect's 0.35):
each sits near the geometric middle of what it must tell apart, so another CPU's summation order
passes and per-rank statistics fail both. The random streams must match bit for bit: every rank
draws the whole global batch and keeps its slice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from edgegan.distill import DistillConfig, distill
from edgegan.errors import ConfigError
from edgegan.train import TrainConfig, train_gan

HERE = Path(__file__).resolve().parent
TEACHER = {"dataset": "mnist", "limit": 256, "d": 4, "steps": 4, "batch_size": 16, "sample_every": 2, "checkpoint_every": 2}
STUDENT = {"d": 2, "loss": "best", "ema": 0.9, "steps": 4, "batch_size": 16, "eval_samples": 32, "checkpoint_every": 2}
MAX_FRACTION = 0.2  # of lr * steps, for the worst weight (module docstring: measured on AVX2 and AVX-512)
RMS_FRACTION = 0.01  # of lr * steps, for the root mean square over all trained weights
# The logged loss curves (global-batch means, 5-6 decimals): relative differences measured 0 (teacher) and
# 6.4e-5 (student) on AVX-512 with global-batch BatchNorm, 1.2e-2 and 2.1e-1 with per-rank BatchNorm.
CURVE_REL = 1e-3


def _args(options: dict) -> list[str]:
    return [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@contextmanager
def _one_thread():
    """The reference process with one intra-op thread, like each torchrun rank (restored after)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _state(run: Path) -> dict[str, torch.Tensor]:
    """The tensors of a run's checkpoint: the file its state.json names (edgegan.checkpoint)."""
    return load_file(str(run / json.loads((run / "state.json").read_text())["tensors"]))


def _trained(run: Path) -> dict[str, torch.Tensor]:
    """Every trained tensor of a run's checkpoint: weights of each module (student, EMA, adaptors,
    discriminators) and the weights files."""
    st = _state(run)
    out = {k: v for k, v in st.items() if k.startswith("module.")}
    for f in ("generator", "discriminator"):
        if (run / f"{f}.safetensors").exists():
            out.update({f"{f}.{k}": v for k, v in load_file(str(run / f"{f}.safetensors")).items()})
    return out


def _assert_match(one: Path, two: Path, lr: float, steps: int) -> float:
    a, b = _trained(one), _trained(two)
    assert a.keys() == b.keys() and a, (sorted(a), sorted(b))
    diff = torch.cat([(a[k].double() - b[k].double()).flatten() for k in a if a[k].is_floating_point()])
    worst, rms = diff.abs().max().item(), diff.pow(2).mean().sqrt().item()
    assert worst <= MAX_FRACTION * lr * steps, f"{two} differs from {one} by {worst:.3g} > {MAX_FRACTION * lr * steps:.3g}"
    assert rms <= RMS_FRACTION * lr * steps, f"{two} differs from {one} by {rms:.3g} RMS > {RMS_FRACTION * lr * steps:.3g}"
    for k in a:  # counters (num_batches_tracked) exactly
        if not a[k].is_floating_point():
            assert torch.equal(a[k], b[k]), k
    sa, sb = _state(one), _state(two)
    for k in ("rng.sampler", "rng.torch"):  # the same samples were drawn, whatever the number of processes
        assert torch.equal(sa[k], sb[k]), k
    return worst


def _curve(run: Path, section: str) -> list:
    """The loss curve, flattened (logged to 5-6 decimals: compared within CURVE_REL, or 1e-5 near zero)."""
    rows = json.loads((run / "manifest.json").read_text())[section]["loss_curve"]["rows"]
    return [v for row in rows for v in row]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data):
    """One process (here) and two torchrun processes, train-teacher then distill, same options."""
    root = tmp_path_factory.mktemp("ddp")
    with _one_thread():
        train_gan(TrainConfig(**TEACHER), root / "t1", progress=False)
        distill(DistillConfig(teacher=str(root / "t1"), **STUDENT), root / "s1", progress=False)
    report = root / "report"
    report.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",  # free port
           str(HERE / "ddp_worker.py"), "--", str(report),  # "--": torchrun would read --d as its own option
           "--threads", "1", "train-teacher", "-q", "--out", str(root / "t2"), *_args(TEACHER), "--then",
           "--threads", "1", "distill", "-q", "--out", str(root / "s2"), "--teacher", str(root / "t1"), *_args(STUDENT)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ranks = {int(p.stem[4:]): json.loads(p.read_text()) for p in report.glob("rank*.json")}
    assert sorted(ranks) == [0, 1] and all(v["exit_codes"] == [0, 0] for v in ranks.values()), ranks
    return root, ranks, r.stdout


@pytest.mark.slow  # one torchrun start of 2 processes (about 25 s on 2 cores), shared by 4 tests
def test_two_processes_train_the_teacher_one_trains(runs):
    root, _, _ = runs
    _assert_match(root / "t1", root / "t2", lr=TrainConfig().lr, steps=TEACHER["steps"])
    assert _curve(root / "t2", "train") == pytest.approx(_curve(root / "t1", "train"), rel=CURVE_REL, abs=1e-5)
    m = json.loads((root / "t2" / "manifest.json").read_text())
    assert m["train"]["distributed"] == {"world_size": 2, "backend": "gloo", "batch_global": 16, "batch_per_rank": 8}
    assert json.loads((root / "t1" / "manifest.json").read_text())["train"]["distributed"]["world_size"] == 1
    assert sorted(p.name for p in (root / "t2" / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]


@pytest.mark.slow  # one torchrun start of 2 processes (about 25 s on 2 cores), shared by 4 tests
def test_two_processes_distil_what_one_distils(runs):
    """The joint + feature recipe with EMA: student and adaptors in one DDP, the GAN term's
    discriminator in another, the teacher frozen and unwrapped."""
    root, _, _ = runs
    _assert_match(root / "s1", root / "s2", lr=DistillConfig(teacher="x").lr, steps=STUDENT["steps"])
    assert {k.split(".")[1] for k in _trained(root / "s2") if k.startswith("module.")} == {
        "student", "ema", "adaptors", "discriminator"}
    assert _curve(root / "s2", "distill") == pytest.approx(_curve(root / "s1", "distill"), rel=CURVE_REL, abs=1e-5)
    assert json.loads((root / "s2" / "manifest.json").read_text())["distill"]["distributed"]["world_size"] == 2


@pytest.mark.slow  # one torchrun start of 2 processes (about 25 s on 2 cores), shared by 4 tests
def test_only_rank_0_writes(runs):
    root, ranks, stdout = runs
    ours = [str(root / "t2"), str(root / "s2")]
    by_rank = {r: [p for p in v["written"] if any(p == o or p.startswith(o + os.sep) for o in ours)] for r, v in ranks.items()}
    assert by_rank[1] == [], by_rank[1]
    # ... and the record sees rank 0's writes, or it tests nothing.
    assert str(root / "t2" / "manifest.json") in by_rank[0] and str(root / "s2" / "manifest.json") in by_rank[0]
    assert stdout.count("manifest.json") == 2, stdout  # one summary line per command, from rank 0


@pytest.mark.slow  # one torchrun start of 2 processes (about 25 s on 2 cores), shared by 4 tests
def test_a_two_process_checkpoint_resumes_in_one_process(runs):
    """Nothing in a checkpoint depends on the number of processes: continue both runs alone to step 6."""
    root, _, _ = runs
    more = TrainConfig(**{**TEACHER, "steps": 6})
    with _one_thread():
        for run in ("t1", "t2"):
            shutil.copytree(root / run, root / f"{run}-resumed")
            m = train_gan(more, root / f"{run}-resumed", resume=True, progress=False)
            assert m["train"]["resumed_from"] == 4 and m["train"]["distributed"]["world_size"] == 1
    _assert_match(root / "t1-resumed", root / "t2-resumed", lr=more.lr, steps=6)


def test_global_batch_must_split_over_the_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="global batch and must split evenly over the 2 processes"):
        train_gan(TrainConfig(dataset="digits", steps=1, batch_size=15), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_one_gpu_for_every_process_of_a_machine_is_refused(monkeypatch):
    from edgegan.distributed import setup

    for k, v in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match="pass --device cuda"):
        setup("cuda:1", 16)


def test_world_slices_partition_the_global_batch():
    from edgegan.distributed import World

    for size in (1, 2, 3, 4):
        parts = [World(r, size, r, "gloo", torch.device("cpu")).local(12) for r in range(size)]
        assert [i for p in parts for i in range(12)[p]] == list(range(12))


def test_sync_batchnorm_keeps_the_layer_and_matches_batchnorm_in_one_process():
    from torch import nn

    from edgegan.distributed import sync_batchnorm

    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    net.load_state_dict(ref.state_dict())
    seen = []
    bn = net[1]
    bn.register_forward_hook(lambda *_: seen.append(1))
    keys = list(net.state_dict())
    sync_batchnorm(net)
    assert net[1] is bn and isinstance(bn, nn.BatchNorm2d) and type(bn) is not nn.BatchNorm2d
    assert list(net.state_dict()) == keys
    x = torch.randn(5, 3, 8, 8)
    assert torch.equal(net(x), ref(x)) and seen == [1]  # no process group: torch's own BatchNorm
