"""Teacher training, --resume, and distillation on real MNIST (the paper's RQ1 set-up, tiny)."""

import json
import signal
import subprocess
import sys

import pytest
import torch

from edgegan.distill import DistillConfig, distill
from edgegan.errors import ConfigError, TeacherError
from edgegan.train import TrainConfig, train_gan
from tests.procs import Lines, spawned, wait_until


@pytest.fixture(scope="module")
def mnist_teacher(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("teacher")
    # lr 1e-3: at DCGAN's 2e-4 a small teacher is still grey after 150 steps (nothing to distil).
    train_gan(TrainConfig(dataset="mnist", d=16, steps=150, lr=1e-3, batch_size=64, sample_every=100,
                          checkpoint_every=0, limit=5000), out, progress=False)
    return out


def test_teacher_run_layout(mnist_teacher):
    m = json.loads((mnist_teacher / "manifest.json").read_text())
    assert m["kind"] == "teacher" and m["model"]["params"] == 377_329
    assert m["dataset"]["name"] == "mnist" and m["dataset"]["count"] == 5000
    assert m["train"]["step"] == 150 and len(m["train"]["loss_curve"]["rows"]) > 10
    assert {"python", "torch", "numpy"} <= set(m["versions"])
    assert (mnist_teacher / "samples" / "step_000100.png").exists()
    assert (mnist_teacher / "samples" / "step_000150.png").exists()


@pytest.mark.slow
def test_distillation_on_mnist_drops_mse_tenfold(mnist_teacher, tmp_path):
    m = distill(DistillConfig(teacher=str(mnist_teacher), d=2, steps=300, batch_size=64), tmp_path / "s", progress=False)
    dd = m["distill"]
    assert dd["eval"]["mse_start"] / dd["eval"]["mse_end"] >= 10, dd["eval"]
    assert dd["compression_ratio"] == pytest.approx(377_329 / 28_351, rel=1e-3)
    assert m["model"]["params"] == 28_351
    rows = dd["loss_curve"]["rows"]
    assert rows[0][0] >= 1 and rows[-1][0] == 300
    assert (tmp_path / "s" / "samples" / "teacher_vs_student.png").exists()


def test_joint_loss_runs(mnist_teacher, tmp_path):
    m = distill(DistillConfig(teacher=str(mnist_teacher), d=2, steps=20, loss="joint", lam=0.05), tmp_path / "j",
                progress=False)
    assert m["distill"]["loss"] == "joint" and m["distill"]["dataset"]["name"] == "mnist"


def test_teacher_sources_agree(mnist_teacher, tmp_path):
    """The same generator as TorchScript, ONNX and module:factory gives the same distillation targets."""
    from edgegan.checkpoint import load_run, save_tensors
    from edgegan.sources import load_generator

    run = load_run(mnist_teacher)
    g = run.generator
    ts = tmp_path / "teacher.pt"
    torch.jit.trace(g, torch.randn(2, 100)).save(str(ts))
    onnx_path = tmp_path / "teacher.onnx"
    torch.onnx.export(g, (torch.randn(2, 100),), str(onnx_path), input_names=["z"], output_names=["x"],
                      dynamic_axes={"z": {0: "n"}, "x": {0: "n"}}, dynamo=False)
    w = tmp_path / "w.safetensors"
    save_tensors(w, g.state_dict())
    z = torch.randn(4, 100)
    ref = g(z).detach()
    srcs = [load_generator(str(mnist_teacher)), load_generator(str(ts)), load_generator(str(onnx_path)),
            load_generator("tests.factories:dcgan_d16", weights=str(w))]
    for s in srcs:
        assert s.latent_dim == 100 and s.output_shape == (1, 32, 32), s.kind
        assert torch.allclose(s.forward(z), ref, atol=1e-4), s.kind
    # ONNX counts every initializer, BatchNorm running statistics included (2 x 15d = 480 at d=16).
    assert srcs[0].params == srcs[1].params == srcs[3].params == 377_329
    assert srcs[2].params == 377_329 + 480


def test_student_that_cannot_match(tmp_path):
    from edgegan.checkpoint import save_tensors

    w = tmp_path / "w.safetensors"
    from tests.factories import odd_size

    save_tensors(w, odd_size().state_dict())
    with pytest.raises(TeacherError, match="cannot match"):
        # a typed --family dcgan (24x24 is not square 32 or 64); without --family anyshape is chosen (issue 25)
        distill(DistillConfig(teacher="tests.factories:odd_size", teacher_weights=str(w), family="dcgan", steps=1),
                tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_resume_after_kill(tmp_path):
    """A run killed with SIGKILL after a checkpoint continues from the saved step."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgegan.app.cli", "train-teacher", "--dataset", "digits", "--d", "4", "--steps", "2000",
           "--checkpoint-every", "20", "--sample-every", "0", "--out", str(out), "--quiet"]
    state = out / "state.json"

    def at_step_20() -> bool:
        try:
            return json.loads(state.read_text())["step"] >= 20
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return False

    with spawned(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        err = Lines(proc)
        assert wait_until(at_step_20, proc, "checkpoint at step 20"), err.close()
        proc.send_signal(signal.SIGKILL)  # a crash, not a polite stop
        proc.wait()
    saved = json.loads(state.read_text())["step"]
    assert 20 <= saved < 2000 and not (out / "manifest.json").exists()
    total = max(60, saved + 20)
    r = subprocess.run([*cmd[:9], str(total), *cmd[10:], "--resume"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["train"]["resumed_from"] == saved and m["train"]["step"] == total
    steps = [row[0] for row in m["train"]["loss_curve"]["rows"]]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


def test_resume_refuses_changed_settings(tmp_path):
    out = tmp_path / "r"
    train_gan(TrainConfig(dataset="digits", d=2, steps=4, checkpoint_every=2, sample_every=0), out, progress=False)
    with pytest.raises(ConfigError, match=r"changed settings \['d'\]"):
        train_gan(TrainConfig(dataset="digits", d=3, steps=8), out, resume=True, progress=False)
    with pytest.raises(ConfigError, match="not empty"):
        train_gan(TrainConfig(dataset="digits", d=2, steps=8), out, progress=False)
    m = train_gan(TrainConfig(dataset="digits", d=2, steps=8, checkpoint_every=2, sample_every=0), out, resume=True,
                  progress=False)
    assert m["train"]["resumed_from"] == 4


def test_resume_bit_exact(tmp_path):
    """Resuming restores optimiser moments and RNG state: 4+4 steps equal 8 straight steps."""
    cfg = dict(dataset="digits", d=2, checkpoint_every=4, sample_every=0, seed=3)
    train_gan(TrainConfig(steps=8, **cfg), tmp_path / "a", progress=False)
    train_gan(TrainConfig(steps=4, **cfg), tmp_path / "b", progress=False)
    train_gan(TrainConfig(steps=8, **cfg), tmp_path / "b", resume=True, progress=False)
    from edgegan.checkpoint import load_tensors

    a = load_tensors(tmp_path / "a" / "generator.safetensors")
    b = load_tensors(tmp_path / "b" / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
