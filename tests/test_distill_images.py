"""Image-to-image distillation (issue 21): teachers that take an image, in every form a user brings.

The teacher here is a small resnet_i2i trained for a few dozen L1 steps on real CelebA (sr2x), so its
outputs depend on its input; students are mobile_i2i. Foreign forms are the same teacher as ONNX,
TorchScript and module:factory (with a Sigmoid head: a [0, 1] generator)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from edgegan.distill import DistillConfig, distill
from edgegan.errors import ConfigError, TeacherError

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning:onnxruntime.*"),
              pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]

ARGS = dict(ngf=8, in_channels=3, nc=3, height=32, width=32, scale=2, n_down=0, n_blocks=2, block="conv")


def _fit_teacher(steps: int = 60):
    """resnet_i2i fitted by L1 to CelebA's sr2x pairs: a teacher whose output follows its input."""
    from edgegan.data import load_dataset
    from edgegan.models import build_generator
    from edgegan.tasks import get_task

    torch.manual_seed(0)
    g = build_generator("resnet_i2i", **ARGS)
    y = torch.from_numpy(load_dataset("celeba", split="train", image_size=32, limit=512).images)
    x = get_task("sr2x").input(y)
    opt = torch.optim.Adam(g.parameters(), lr=3e-3)
    for i in range(steps):
        idx = torch.arange(16 * i, 16 * i + 16) % len(y)
        loss = (g(x[idx]) - y[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return g.eval()


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, shared_data) -> Path:
    from edgegan.manifest import read_manifest, write_manifest
    from edgegan.testing import make_run

    g = _fit_teacher()
    run = make_run(tmp_path_factory.mktemp("i2i") / "teacher", g, ARGS, family="resnet_i2i", kind="teacher",
                   task="sr2x")
    m = read_manifest(run)
    m["dataset"] = {"name": "celeba", "count": 512}
    write_manifest(run, m)
    return run


def _cfg(teacher, **kw) -> DistillConfig:
    return DistillConfig(teacher=str(teacher), **{"d": 4, "steps": 12, "batch_size": 8, "eval_samples": 32,
                                                 "lr": 3e-3, **kw})


def test_distils_an_edgegan_image_teacher_and_records_input_task_and_quality(teacher_run, tmp_path):
    from edgegan.checkpoint import load_run

    out = tmp_path / "s"
    m = distill(_cfg(teacher_run, steps=60), out, progress=False)
    d = m["distill"]
    assert m["model"]["family"] == "mobile_i2i" and m["model"]["input"]["task"] == "sr2x"
    assert m["model"]["input"]["shape"] == [3, 16, 16] and "latent" not in m["model"]
    assert d["task"] == "sr2x" and d["teacher"]["input"]["shape"] == [3, 16, 16]
    assert d["eval"]["mse_drop"] > 2  # it learnt the teacher's mapping
    assert d["teacher_outputs"] == "cached once for the training set"  # sr2x's inputs depend on the image alone
    truth = d["eval"]["to_truth"]
    assert set(truth) == {"teacher", "student", "bicubic"}
    # the fitted teacher beats a constant grey image by far: its PSNR to the ground truth is an SR's, not noise's
    assert truth["teacher"]["psnr"] > 15
    assert d["student_macs"] > 0 and d["macs_ratio"] > 1 and d["compression_ratio"] > 1
    assert (out / "samples" / "teacher_vs_student.png").is_file()
    run = load_run(out)
    assert run.input["task"] == "sr2x"
    y = run.generator(torch.zeros(2, 3, 24, 40))  # fully convolutional: any size the stages divide
    assert tuple(y.shape) == (2, 3, 48, 80)


def test_resume_ends_where_an_uninterrupted_run_ends(teacher_run, tmp_path):
    from edgegan.checkpoint import load_tensors

    kw = dict(loss="best", steps=8, checkpoint_every=4)
    distill(_cfg(teacher_run, **kw), tmp_path / "a", progress=False)
    distill(_cfg(teacher_run, **{**kw, "steps": 4}), tmp_path / "b", progress=False)
    m = distill(_cfg(teacher_run, **kw), tmp_path / "b", resume=True, progress=False)
    assert m["distill"]["resumed_from"] == 4 and m["distill"]["gan"]["real"] == "teacher"
    assert m["distill"]["teacher_outputs"] == "computed every step"  # the feature term hooks the teacher's stages
    a = load_tensors(tmp_path / "a" / "generator.safetensors")
    b = load_tensors(tmp_path / "b" / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_feature_stages_pair_by_resolution_with_residual_block_outputs(teacher_run, shared_data):
    from edgegan.data import load_dataset
    from edgegan.image_sources import load_image_generator
    from edgegan.models import build_generator, image_student_args
    from edgegan.stages import pair_stages

    y = torch.from_numpy(load_dataset("celeba", split="train", image_size=32, limit=8).images)
    t = load_image_generator(str(teacher_run), y, task=None)
    s = build_generator("mobile_i2i", **image_student_args("mobile_i2i", 4, t.output_shape, t.input_shape))
    pairs = pair_stages(t, s, None)
    t_named, s_named = dict(t.module.named_modules()), dict(s.named_modules())
    # one pair per resolution: the last residual block at 16x16 (its sum; the student's bounded by its ReLU6),
    # the up-sampling stage at 32x32
    assert [type(t_named[a]).__name__ for a, _ in pairs.names] == ["ResBlock", "ReLU"]
    assert [type(s_named[b]).__name__ for _, b in pairs.names] == ["ReLU6", "ReLU6"]
    assert [b for _, b in pairs.names] == ["net.10", "net.17"]  # after the last block; the up stage's pointwise
    assert pairs.teacher_channels == [8, 8] and pairs.student_channels == [4, 4]


# ------------------------------------------------------------------ foreign forms

FACTORY = textwrap.dedent('''
    import torch
    from torch import nn
    from edgegan.models import build_generator

    ARGS = dict(ngf=8, in_channels=3, nc=3, height=32, width=32, scale=2, n_down=0, n_blocks=2, block="conv")


    class Sigmoid01(nn.Module):
        """The teacher with its Tanh replaced by a Sigmoid of twice the input: [0, 1] images, in [0, 1] out."""

        def __init__(self):
            super().__init__()
            self.g = build_generator("resnet_i2i", **ARGS)
            self.g.net[-1] = nn.Sigmoid()

        def forward(self, x):  # x in [0, 1]
            y = x * 2 - 1
            for m in list(self.g.net)[:-2]:
                y = m(y)
            return torch.sigmoid(2 * self.g.net[-2](y))


    def make():
        return Sigmoid01()
''')


@pytest.fixture(scope="module")
def foreign(teacher_run, tmp_path_factory):
    """The fitted teacher as ONNX, TorchScript, and a [0, 1] module:factory with safetensors weights."""
    from safetensors.torch import save_file

    from edgegan.checkpoint import load_run

    d = tmp_path_factory.mktemp("foreign")
    g = load_run(teacher_run).generator.eval()
    x = torch.zeros(1, 3, 16, 16)
    torch.onnx.export(g, x, d / "t.onnx", input_names=["image"], output_names=["out"], dynamo=False)
    torch.jit.trace(g, x).save(str(d / "t.pt"))
    (d / "i21_factory.py").write_text(FACTORY)
    save_file({f"g.{k}": v.contiguous() for k, v in g.state_dict().items()}, str(d / "w.safetensors"))
    return d


@pytest.mark.onnx
@pytest.mark.parametrize("form", ["onnx", "torchscript", "factory"])
def test_foreign_image_teachers_distil_with_task_and_dataset(foreign, teacher_run, tmp_path, monkeypatch, form):
    from edgegan.image_sources import load_image_generator
    from edgegan.data import load_dataset

    monkeypatch.chdir(foreign)
    spec = {"onnx": str(foreign / "t.onnx"), "torchscript": str(foreign / "t.pt"), "factory": "i21_factory:make"}[form]
    weights = str(foreign / "w.safetensors") if form == "factory" else None
    y = torch.from_numpy(load_dataset("celeba", split="test", image_size=32, limit=16).images)
    ref = load_image_generator(str(teacher_run), y, task=None)
    src = load_image_generator(spec, y, task="sr2x", weights=weights)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (4, 3, 16, 16)).astype(np.float32))
    # the same weights give the same images: a Sigmoid teacher's [0, 1] is mapped to [-1, 1]
    # (2 sigmoid(2a) - 1 = tanh(a)), its [0, 1] input handed to it from [-1, 1]
    assert float((src.forward(x) - ref.forward(x)).abs().max()) < 1e-4
    assert src.range == ((0.0, 1.0) if form == "factory" else (-1.0, 1.0)) and src.range_source == "measured"
    m = distill(_cfg(spec, task="sr2x", dataset="celeba", teacher_weights=weights, steps=4), tmp_path / "s",
                progress=False)
    assert m["distill"]["teacher"]["kind"] == form and m["model"]["input"]["task"] == "sr2x"
    assert m["distill"]["teacher"]["clipped_to_range"] is True  # a foreign head may overshoot: clipped, recorded
    assert float(src.forward(x * 50).abs().max()) <= 1.0  # far outside the training inputs: still in range


@pytest.mark.onnx
def test_feature_term_taps_an_image_onnx_teacher_at_the_module_teacher_s_stages(foreign, teacher_run, tmp_path):
    """The ONNX form of the teacher exposes its last residual sum and its up-sampling stage's ReLU as extra
    outputs: the same tensors the module teacher's hooks capture, paired with the same student stages."""
    from edgegan.data import load_dataset
    from edgegan.image_sources import load_image_generator
    from edgegan.models import build_generator, image_student_args
    from edgegan.stages import FeatureCapture, pair_stages

    y = torch.from_numpy(load_dataset("celeba", split="train", image_size=32, limit=8).images)
    ref = load_image_generator(str(teacher_run), y, task=None)
    onx = load_image_generator(str(foreign / "t.onnx"), y, task="sr2x")
    s = build_generator("mobile_i2i", **image_student_args("mobile_i2i", 4, ref.output_shape, ref.input_shape))
    p_ref, p_onx = pair_stages(ref, s, None), pair_stages(onx, s, None)
    assert [b for _, b in p_onx.names] == [b for _, b in p_ref.names]
    assert p_onx.teacher_channels == p_ref.teacher_channels == [8, 8]
    x = load_image_generator(str(teacher_run), y, task=None)  # a fresh module teacher to hook
    cap = FeatureCapture(p_ref.teacher_modules)
    inp = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (3, 3, 16, 16)).astype(np.float32))
    img_ref = x.forward(inp)
    feats_ref = cap.take()
    cap.close()
    img = onx.forward(inp)  # replaced by the tapped run
    feats = p_onx.teacher_tap.take()
    assert float((img - img_ref).abs().max()) < 1e-4
    assert len(feats) == 2 and all(float((a - b).abs().max()) < 1e-3 for a, b in zip(feats, feats_ref))
    m = distill(_cfg(str(foreign / "t.onnx"), task="sr2x", dataset="celeba", loss="best", steps=4), tmp_path / "s",
                progress=False)
    assert m["distill"]["recipe"]["weights"]["feature"] > 0 and m["distill"]["teacher"]["kind"] == "onnx"


@pytest.mark.onnx
def test_image_teacher_bad_input_is_one_error_and_writes_nothing(foreign, teacher_run, tmp_path):
    out = tmp_path / "s"
    cases = [
        # an image teacher given latents: the latent loader names --task
        (_cfg(str(foreign / "t.onnx")), TeacherError, "pass --task"),
        # a task whose input does not fit the teacher: colorize makes 1 channel, the teacher takes 3
        (_cfg(str(foreign / "t.onnx"), task="colorize", dataset="celeba"), TeacherError, "check --task"),
        (_cfg(str(teacher_run), task="colorize"), ConfigError, "contradicts the teacher, trained for sr2x"),
        (_cfg(str(foreign / "t.onnx"), task="sr2x"), ConfigError, "pass --dataset"),
        (_cfg(str(teacher_run), latent_pool=64), ConfigError, "--latent-pool is for teachers that take latents"),
        (_cfg(str(teacher_run), family="dcgan"), ConfigError, "an image family"),
        (_cfg(str(teacher_run), loss="blackbox"), ConfigError, "latent teachers"),
        (_cfg(str(teacher_run), gan_real="dataset", task="none", terms="pixel:1,gan:0.1"), ConfigError,
         "contradicts the teacher"),
    ]
    for cfg, err, text in cases:
        with pytest.raises(err) as e:
            distill(cfg, out, progress=False)
        assert text in str(e.value) and "\n" not in str(e.value), str(e.value)
        assert not out.exists()


def test_cli_distils_an_image_teacher(teacher_run, tmp_path):
    out = tmp_path / "s"
    r = subprocess.run([sys.executable, "-m", "edgegan", "--threads", "1", "distill", "--teacher", str(teacher_run),
                        "--d", "4", "--steps", "3", "--batch-size", "4", "--eval-samples", "8", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["input"]["task"] == "sr2x" and m["config"]["task"] == "sr2x"
    r = subprocess.run([sys.executable, "-m", "edgegan", "distill", "--teacher", str(teacher_run), "--task", "sr3x",
                        "--out", str(tmp_path / "t")], capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "sr2x" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "t").exists()


def test_bench_scores_an_image_student_against_teacher_and_ground_truth(teacher_run, tmp_path):
    from edgegan.bench.harness import run_bench
    from edgegan.bench.images import colourfulness

    run = tmp_path / "s"
    distill(_cfg(teacher_run, steps=30), run, progress=False)
    doc = run_bench([str(run)], out=tmp_path / "b", models=["teacher", "student"], samples=64, progress=False)
    res = doc["results"][0]
    assert res["task"] == "sr2x" and res["input_shape"] == [3, 16, 16] and res["samples"] == 64
    rows = {r["name"].split()[0]: r for r in res["models"]}
    assert set(rows) == {"teacher", "student", "bicubic"}
    assert rows["teacher"]["quality"]["to_teacher"]["psnr"] == float("inf")
    assert rows["student"]["macs_ratio"] > 1 and rows["student"]["latency"].get("p50_us", 0) > 0
    for r in rows.values():
        assert set(r["quality"]["to_truth"]) == {"psnr", "ssim", "swd"}
    md = (tmp_path / "b" / "bench.md").read_text()
    assert "PSNR to truth" in md and "bicubic" in md and (tmp_path / "b" / "samples.png").is_file()
    # a board's results (a bench bundle run here) become a column beside the file they measured
    from edgegan.app.bundle import make_bundle, run_bundle_here
    from edgegan.export import export_run

    pytest.importorskip("onnxruntime")
    e = export_run(run, format="onnx")
    b = make_bundle(run, out=tmp_path / "bundle.tar.gz")
    dev = run_bundle_here(b["path"], out=tmp_path / "device.json", runs=5)
    assert dev["models"][0]["parity"]["passed"]
    doc = run_bench([str(run)], out=tmp_path / "b2", models=["student", "exports"], samples=16, progress=False,
                    device_results=[tmp_path / "device.json"])
    row = next(r for r in doc["results"][0]["models"] if r["kind"] == "export")
    assert row["sha256"] == e["sha256"] and list(row["devices"].values())[0]["p50_us"] > 0
    assert "p50 µs on" in (tmp_path / "b2" / "bench.md").read_text()
    # colourfulness: 0 for grey images, and a saturated red image scores above a dull one
    grey = np.zeros((2, 3, 8, 8), np.float32)
    assert colourfulness(grey) == 0.0
    red, dull = grey.copy(), grey.copy()
    red[:, 0], dull[:, 0] = 1.0, 0.2
    red[:, :, :4] = -1  # some variation, so the spread term counts too
    assert colourfulness(red) > colourfulness(dull) > 0


def test_quant_aware_steps_continue_a_finished_run_and_are_recorded(teacher_run, tmp_path):
    out = tmp_path / "s"
    distill(_cfg(teacher_run, steps=8, checkpoint_every=0), out, progress=False)
    m = distill(_cfg(teacher_run, steps=14, quant_aware=6, checkpoint_every=0), out, resume=True, progress=False)
    q = m["distill"]["quant_aware"]
    assert q["steps"] == 6 and q["from_step"] == 9 and m["distill"]["resumed_from"] == 8
    assert "input" in q["grids"] and all(np.isfinite(g["hi"]) and g["hi"] >= 0 for g in q["grids"].values())
    assert m["distill"]["eval"]["to_teacher"]["psnr"] > 10  # the float weights are saved and evaluated in float


def test_quant_aware_bad_input_is_one_error_and_latent_students_take_it_too(teacher_run, tmp_path):
    from edgegan.testing import make_run, tiny_student

    with pytest.raises(ConfigError, match="more than --steps"):
        distill(_cfg(teacher_run, steps=4, quant_aware=5), tmp_path / "a", progress=False)
    latent = make_run(tmp_path / "latent", tiny_student(2, 1, 0, 100), {"d": 2})
    with pytest.raises(ConfigError, match="more than --steps"):
        distill(DistillConfig(teacher=str(latent), steps=4, quant_aware=5), tmp_path / "b", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # a latent student takes it too: the ReLU outputs, the latent and the tanh head on their grids
    m = distill(DistillConfig(teacher=str(latent), d=2, steps=6, quant_aware=3, batch_size=8, eval_samples=16,
                              checkpoint_every=0), tmp_path / "c", progress=False)
    q = m["distill"]["quant_aware"]
    assert q["from_step"] == 4 and "input" in q["grids"] and len(q["grids"]) >= 3


def test_colorize_bench_scores_classifier_accuracy_beside_a_grey_reference(tmp_path, shared_data):
    """CIFAR-10 colourisation through distil and bench: every row carries the domain classifier's accuracy
    on its outputs against the images' labels, and the grey input (luma as RGB) is the reference row."""
    from edgegan.bench.harness import run_bench
    from edgegan.data import load_dataset
    from edgegan.manifest import read_manifest, write_manifest
    from edgegan.metrics.classifier import get_classifier
    from edgegan.models import build_generator
    from edgegan.tasks import get_task
    from edgegan.testing import make_run

    args = dict(ngf=8, in_channels=1, nc=3, height=32, width=32, scale=1, n_down=2, n_blocks=1, block="conv")
    torch.manual_seed(0)
    g = build_generator("resnet_i2i", **args)
    y = torch.from_numpy(load_dataset("cifar10", split="train", image_size=32, limit=256).images)
    x = get_task("colorize").input(y)
    opt = torch.optim.Adam(g.parameters(), lr=3e-3)
    for i in range(30):
        idx = torch.arange(16 * i, 16 * i + 16) % len(y)
        loss = (g(x[idx]) - y[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    teacher = make_run(tmp_path / "t", g.eval(), args, family="resnet_i2i", kind="teacher", task="colorize")
    m = read_manifest(teacher)
    m["dataset"] = {"name": "cifar10", "count": 256}
    write_manifest(teacher, m)
    distill(_cfg(teacher, steps=10), tmp_path / "s", progress=False)
    doc = run_bench([str(tmp_path / "s")], out=tmp_path / "b", models=["teacher", "student"], samples=256,
                    progress=False)
    res = doc["results"][0]
    rows = {r["name"].split()[0]: r for r in res["models"]}
    assert set(rows) == {"teacher", "student", "grey"}
    assert rows["grey"]["quality"]["colourfulness"] == 0.0
    for r in rows.values():
        assert 0.0 <= r["quality"]["classifier_accuracy"] <= 1.0
    clf = get_classifier("cifar10", image_size=32, progress=False)  # the cached one the bench used
    assert res["truth"]["classifier"] == clf.record["key"]
    # the first 256 test images score near the classifier's own test accuracy (binomial sd ~0.03 at 256)
    assert abs(res["truth"]["classifier_accuracy"] - clf.test_accuracy) < 0.15
    md = (tmp_path / "b" / "bench.md").read_text()
    assert "classifier accuracy" in md and "grey (luma as RGB)" in md
