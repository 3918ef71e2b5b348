"""Image-to-image teachers (issue 21): `train-teacher --task` on tiny real CelebA / CIFAR-10 runs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgegan.errors import ConfigError, UnknownNameError
from edgegan.train import TrainConfig, train_gan

EXE = [sys.executable, "-m", "edgegan.app.cli"]
TINY = dict(d=4, steps=4, batch_size=4, limit=32, sample_every=2, checkpoint_every=2, seed=1)


def _run(tmp_path_factory, name: str, **kw) -> tuple:
    out = tmp_path_factory.mktemp(name) / "run"
    return out, train_gan(TrainConfig(**{**TINY, **kw}), out, progress=False)


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory, shared_data):
    return _run(tmp_path_factory, "sr", dataset="celeba", task="sr2x")


@pytest.fixture(scope="module")
def colorize_run(tmp_path_factory, shared_data):
    return _run(tmp_path_factory, "col", dataset="cifar10", task="colorize")


def test_sr_manifest_records_the_input_and_the_task_defaults(sr_run):
    out, m = sr_run
    assert m["kind"] == "teacher" and m["model"]["family"] == "resnet_i2i"
    assert m["model"]["input"] == {"kind": "image", "shape": [3, 16, 16], "range": [-1.0, 1.0], "layout": "NCHW",
                                   "task": "sr2x", "multiple": 1}
    assert m["model"]["output"]["shape"] == [3, 32, 32] and "latent" not in m["model"]
    a = m["model"]["args"]
    assert (a["ngf"], a["scale"], a["n_down"], a["n_blocks"], a["block"], a["d_disc"]) == (4, 2, 0, 8, "conv", 4)
    assert m["config"]["task"] == "sr2x" and m["config"]["n_blocks"] is None  # the config as asked; args resolved
    assert m["train"]["objective"]["l1_weight"] == 100.0
    assert m["train"]["loss_curve"]["columns"] == ["step", "loss_gan", "loss_l1", "loss_d"]
    assert [r[0] for r in m["train"]["loss_curve"]["rows"]] == [1, 2, 3, 4]
    assert m["dataset"]["name"] == "celeba" and m["dataset"]["count"] == 32
    for f in ("generator.safetensors", "discriminator.safetensors", "samples/step_000002.png", "samples/step_000004.png"):
        assert (out / f).is_file(), f
    assert m == json.loads((out / "manifest.json").read_text())


def test_sr_eval_is_reproduced_from_the_saved_run(sr_run, shared_data):
    """The eval section's numbers, recomputed from load_run's generator on the documented batch of the test
    split (and the bicubic reference computed here with torch directly)."""
    import torch.nn.functional as F

    from edgegan.checkpoint import load_run
    from edgegan.data import load_dataset
    from edgegan.metrics.fidelity import psnr, ssim
    from edgegan.tasks import get_task
    from edgegan.train_i2i import EVAL_COUNT, eval_batch

    out, m = sr_run
    ev = m["eval"]
    test = load_dataset("celeba", split="test", image_size=32)
    assert (ev["split"], ev["count"], ev["test_sha256"]) == ("test", min(EVAL_COUNT, len(test)), test.sha256)
    x, inp = eval_batch(test.torch(), get_task("sr2x"), ev["count"], ev["seed"])
    run = load_run(out)
    assert run.input["task"] == "sr2x" and tuple(run.input["shape"]) == tuple(inp.shape[1:]) == (3, 16, 16)
    with torch.no_grad():
        y = run.generator(inp)
    assert y.shape == x.shape == (ev["count"], 3, 32, 32)
    assert psnr(y.numpy(), x.numpy()) == pytest.approx(ev["psnr"], abs=1e-3)
    assert ssim(y.numpy(), x.numpy()) == pytest.approx(ev["ssim"], abs=1e-4)
    bicubic = F.interpolate(inp, scale_factor=2, mode="bicubic", align_corners=False).clamp(-1, 1).numpy()
    assert ev["reference"]["method"] == "bicubic"
    assert ev["reference"]["psnr"] == pytest.approx(psnr(bicubic, x.numpy()), abs=1e-3)
    assert ev["reference"]["ssim"] == pytest.approx(ssim(bicubic, x.numpy()), abs=1e-4)


def test_colorize_takes_one_grey_channel(colorize_run):
    from edgegan.checkpoint import load_run
    from edgegan.tasks import LUMA

    out, m = colorize_run
    assert m["model"]["input"]["shape"] == [1, 32, 32] and m["model"]["input"]["multiple"] == 4
    a = m["model"]["args"]
    assert (a["in_channels"], a["nc"], a["scale"], a["n_down"], a["n_blocks"]) == (1, 3, 1, 2, 6)
    ref = m["eval"]["reference"]
    assert ref["method"] == "luma as RGB" and np.isfinite([m["eval"]["psnr"], m["eval"]["ssim"], ref["psnr"]]).all()
    assert load_run(out).generator(torch.zeros(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    assert sum(LUMA) == pytest.approx(1.0)  # grey in, grey out: the reference is the image's own luma


def test_sample_grid_shows_input_output_truth():
    """Each row of a grid: the input upsampled (grey as RGB) | the output | the ground truth."""
    from edgegan.train_i2i import as_image

    grey = torch.rand(2, 1, 4, 4) * 2 - 1
    shown = as_image(grey, (3, 8, 8))
    assert shown.shape == (2, 3, 8, 8) and torch.equal(shown[:, 0], shown[:, 2])
    assert torch.equal(shown[:, 0, ::2, ::2], grey[:, 0])  # nearest: every input pixel, 2x2 times
    masked = torch.cat([torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8)], 1)  # inpaint: image + mask channel
    assert torch.equal(as_image(masked, (3, 8, 8)), masked[:, :3])


@pytest.mark.slow
@pytest.mark.parametrize("task,dataset,in_shape,n_down", [("inpaint", "celeba", [4, 32, 32], 2),
                                                          ("sr4x", "cifar10", [3, 8, 8], 0)])
def test_other_tasks_train(tmp_path, shared_data, task, dataset, in_shape, n_down):
    m = train_gan(TrainConfig(**{**TINY, "steps": 2, "sample_every": 0}, dataset=dataset, task=task), tmp_path / "r",
                  progress=False)
    assert m["model"]["input"]["shape"] == in_shape and m["model"]["args"]["n_down"] == n_down
    assert m["eval"]["reference"]["method"] == ("bicubic" if task == "sr4x" else "input as it is")


def test_explicit_depth_and_weight_are_used(tmp_path, shared_data):
    m = train_gan(TrainConfig(**{**TINY, "steps": 1, "sample_every": 0}, dataset="celeba", task="sr2x", n_blocks=2,
                              n_down=1, l1_weight=10.0, d_disc=8), tmp_path / "r", progress=False)
    a = m["model"]["args"]
    assert (a["n_blocks"], a["n_down"], a["d_disc"]) == (2, 1, 8) and m["model"]["input"]["multiple"] == 2
    assert m["train"]["objective"]["l1_weight"] == 10.0


@pytest.mark.slow
def test_mobile_family_is_a_baseline(tmp_path, shared_data):
    m = train_gan(TrainConfig(**{**TINY, "steps": 1, "sample_every": 0}, dataset="celeba", task="sr2x",
                              family="mobile_i2i", kind="baseline"), tmp_path / "r", progress=False)
    assert m["kind"] == "baseline" and m["model"]["args"]["block"] == "mobile"


def test_resume_is_bit_exact(tmp_path, shared_data):
    """2 + 2 steps equal 4 straight steps: weights of both networks and the loss history. inpaint draws its
    holes from the run's generator, so this also checks that its state is restored."""
    from edgegan.checkpoint import load_tensors

    cfg = dict(TINY, dataset="celeba", task="inpaint", sample_every=0)
    a = train_gan(TrainConfig(**cfg), tmp_path / "a", progress=False)
    train_gan(TrainConfig(**{**cfg, "steps": 2}), tmp_path / "b", progress=False)
    b = train_gan(TrainConfig(**cfg), tmp_path / "b", resume=True, progress=False)
    assert b["train"]["resumed_from"] == 2
    for f in ("generator.safetensors", "discriminator.safetensors"):
        ta, tb = load_tensors(tmp_path / "a" / f), load_tensors(tmp_path / "b" / f)
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), f
    assert a["train"]["loss_curve"] == b["train"]["loss_curve"] and a["eval"]["psnr"] == b["eval"]["psnr"]


def test_resume_refuses_another_task(tmp_path, shared_data):
    cfg = dict(TINY, dataset="celeba", task="sr2x", steps=2, sample_every=0)
    train_gan(TrainConfig(**cfg), tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match=r"changed settings \['task'\]"):
        train_gan(TrainConfig(**{**cfg, "task": "sr4x", "steps": 4}), tmp_path / "r", resume=True, progress=False)


def test_latent_defaults_are_unchanged():
    cfg = TrainConfig(dataset="digits")
    assert cfg.family == "dcgan" and cfg.task is None and cfg.n_blocks is None and cfg.l1_weight is None
    assert TrainConfig(dataset="celeba", task="colorize").family == "resnet_i2i"
    assert TrainConfig(**{**vars(cfg)}) == cfg  # a recorded config rebuilds the same (resume compares them)


@pytest.mark.parametrize("kw,pattern", [
    (dict(task="colourize"), "unknown image-to-image task 'colourize'.*Did you mean 'colorize'"),
    (dict(task="sr2x", conditional=True), "--conditional"),
    (dict(n_blocks=4), "--n-blocks applies to image-to-image teachers only"),
    (dict(l1_weight=1.0), "--l1-weight applies"),
    (dict(task="none"), "no ground truth"),
])
def test_bad_configs_are_config_errors(kw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TrainConfig(dataset="celeba", **kw)


def test_unknown_task_is_an_unknown_name():
    with pytest.raises(UnknownNameError):
        TrainConfig(dataset="celeba", task="colourise")


# ------------------------------------------------------------------------------------------ the CLI

def cli(*args, timeout=600):
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args,pattern", [
    (["--dataset", "mnist", "--task", "colorize"], "learns colours from RGB images; mnist is grey"),
    (["--dataset", "celeba", "--task", "sr2x", "--family", "dcgan"], "dcgan takes latents"),
    (["--dataset", "celeba", "--task", "sr2x", "--conditional"], "--conditional"),
    (["--dataset", "celeba", "--task", "sr2"], "unknown image-to-image task 'sr2'; valid: colorize, inpaint, none, sr2x, sr4x. Did you mean 'sr2x'?"),
    (["--dataset", "celeba", "--family", "resnet_i2i"], "name the task"),
    (["--dataset", "digits", "--n-blocks", "3"], "--n-blocks applies"),
])
def test_bad_inputs_one_line_and_nothing_written(tmp_path, shared_data, args, pattern):
    out = tmp_path / "out"
    r = cli("train-teacher", *args, "--steps", "2", "--out", str(out), "--quiet")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and pattern in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()


def test_cli_trains_an_sr_teacher(tmp_path, shared_data):
    out = tmp_path / "t"
    r = cli("--threads", "1", "train-teacher", "--dataset", "celeba", "--task", "sr2x", "--d", "4", "--steps", "2",
            "--batch-size", "4", "--limit", "16", "--sample-every", "0", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "teacher d=4" in r.stdout and str(out / "manifest.json") in r.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["input"]["task"] == "sr2x" and m["config"]["family"] == "resnet_i2i"


def test_help_lists_the_tasks():
    r = cli("train-teacher", "--help", timeout=120)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "--task [colorize|inpaint|none|sr2x|sr4x]" in text and "--n-blocks" in text and "--l1-weight" in text
