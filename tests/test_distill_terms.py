"""The distiller as a frozen teacher plus loss terms (issue #9): each term alone on tiny real data,
recipes, weights of 0, the EMA and schedule, and kill-and-resume equal to an uninterrupted run."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys

import pytest
import torch

from edgegan.distill import DistillConfig, distill, ema_decay
from edgegan.distill_config import lr_at
from edgegan.errors import ConfigError, TeacherError, UnknownNameError
from edgegan.stages import pair_stages
from edgegan.terms import RECIPES, TERMS, Context, FeatureTerm, GanTerm, PerceptualTerm, PixelTerm, Step, parse_terms
from edgegan.train import TrainConfig, train_gan
from tests.procs import Lines, spawned, wait_until


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A real (tiny) teacher: dcgan d=4 trained 40 steps on the embedded digits, with its discriminator."""
    out = tmp_path_factory.mktemp("t") / "teacher"
    train_gan(TrainConfig(dataset="digits", d=4, steps=40, lr=1e-3, sample_every=0, checkpoint_every=0), out,
              progress=False)
    return out


def _weights(run) -> dict[str, torch.Tensor]:
    from edgegan.checkpoint import load_tensors

    return load_tensors(run / "generator.safetensors")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ recipes


def test_parse_terms_and_named_recipes():
    assert [(t.name, t.weight) for t in parse_terms("pixel:1, feature:0.5,gan:0.01")] == [
        ("pixel", 1.0), ("feature", 0.5), ("gan", 0.01)]
    assert parse_terms("pixel")[0].weight == 1.0
    assert {"mse", "joint", "best"} <= set(RECIPES.names())
    assert set(TERMS.names()) == {"pixel", "gan", "feature", "perceptual"}
    r = DistillConfig(teacher="t", loss="joint", lam=0.2).recipe()
    assert r.name == "joint" and r.describe()["weights"] == {"pixel": 1.0, "gan": 0.2}
    assert DistillConfig(teacher="t").recipe().describe()["terms"] == "pixel:1"
    best = DistillConfig(teacher="t", loss="best").recipe()
    assert best.describe()["weights"] == {"pixel": 1.0, "feature": 0.1, "gan": 0.01}
    assert best.ema == 0.0 and best.lr_schedule == "constant"
    # the user's options win over the recipe's; --terms replaces --loss and takes no recipe options
    tuned = DistillConfig(teacher="t", loss="best", ema=0.99, lr_schedule="cosine").recipe()
    assert (tuned.ema, tuned.lr_schedule) == (0.99, "cosine")
    custom = DistillConfig(teacher="t", loss="best", terms="pixel:1,feature:2").recipe()
    assert custom.name == "custom" and custom.ema == 0.0 and custom.describe()["weights"] == {"pixel": 1.0, "feature": 2.0}


@pytest.mark.parametrize("spec,match", [
    ("pixle:1", "Did you mean 'pixel'"),
    ("pixel:-1", "finite number >= 0"),
    ("pixel:abc", "must be a number"),
    ("pixel:nan", "finite number >= 0"),
    ("pixel:1,pixel:2", "given twice"),
    ("gan:1", "needs a term that matches the teacher"),
    ("pixel:0", "needs a term that matches the teacher"),
    ("", "must look like"),
])
def test_bad_recipe_is_a_config_error(spec, match):
    with pytest.raises(ConfigError, match=match):
        DistillConfig(teacher="t", terms=spec)


def test_bad_options_are_config_errors():
    with pytest.raises(UnknownNameError, match="Did you mean 'best'"):
        DistillConfig(teacher="t", loss="bset")
    for kw in ({"ema": 1.0}, {"ema": -0.1}, {"lr": float("inf")}, {"lam": float("nan")}, {"d_lr": 0},
               {"lr_schedule": "linear"}, {"latent_pool": 10, "batch_size": 64}, {"pixel_loss": "l2"}):
        with pytest.raises(ConfigError):
            DistillConfig(teacher="t", **kw)


def test_bad_recipe_on_the_command_line_is_one_line_and_writes_nothing(teacher, tmp_path):
    out = tmp_path / "s"
    for args in (["--terms", "pixle:1"], ["--terms", "pixel:-2"], ["--loss", "nope"]):
        r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "distill", "--teacher", str(teacher), "--out", str(out),
                            *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()


def test_lr_schedule_and_ema_warmup_closed_forms():
    cfg = DistillConfig(teacher="t", lr=1e-2, steps=100, warmup_steps=10)
    assert lr_at(5, cfg, "constant") == pytest.approx(5e-3)
    assert lr_at(50, cfg, "constant") == 1e-2
    assert lr_at(10, cfg, "cosine") == pytest.approx(1e-2)
    assert lr_at(55, cfg, "cosine") == pytest.approx(1e-2 * (0.01 + 0.99 * 0.5))
    assert lr_at(100, cfg, "cosine") == pytest.approx(1e-4)
    assert ema_decay(1, 0.999) == pytest.approx(2 / 11) and ema_decay(10**6, 0.999) == 0.999


# ------------------------------------------------------------------------------ each term alone


def _ctx(teacher_run, **cfg):
    from edgegan.models import build_generator
    from edgegan.sources import load_generator

    src = load_generator(str(teacher_run))
    torch.manual_seed(0)
    student = build_generator("dcgan", d=2, latent_dim=100)
    c = DistillConfig(teacher=str(teacher_run), **cfg)
    stages = pair_stages(src, student, None)
    real = lambda n: (torch.rand(n, 1, 32, 32) * 2 - 1, None)  # noqa: E731 - images in [-1, 1], no labels
    return Context(config=c, teacher=src, student=student, device=torch.device("cpu"),
                   rng=torch.Generator().manual_seed(0), real=real, stages=stages), src, student


def _step(ctx, src, student):
    from edgegan.stages import FeatureCapture

    th, sh = FeatureCapture(ctx.stages.teacher_modules), FeatureCapture(ctx.stages.student_modules)
    try:
        z = torch.randn(8, 100, generator=torch.Generator().manual_seed(1))
        t = src.forward(z)
        s = student(z)
        return Step(z=z, student=s, teacher=t, student_features=sh.take(), teacher_features=th.take())
    finally:
        th.close()
        sh.close()


def test_pixel_term_is_mse_or_l1(teacher):
    for kind, fn in (("mse", torch.nn.functional.mse_loss), ("l1", torch.nn.functional.l1_loss)):
        ctx, src, student = _ctx(teacher, pixel_loss=kind)
        st = _step(ctx, src, student)
        assert PixelTerm(ctx).loss(st).item() == pytest.approx(fn(st.student, st.teacher).item())


def test_dcgan_stages_pair_by_resolution(teacher):
    ctx, _, _ = _ctx(teacher)
    assert ctx.stages.teacher_channels == [32, 16, 8, 4] and ctx.stages.student_channels == [16, 8, 4, 2]


def test_feature_term_gradient_reaches_adaptors_and_student(teacher):
    ctx, src, student = _ctx(teacher)
    term = FeatureTerm(ctx)
    st = _step(ctx, src, student)
    assert len(st.teacher_features) == 4 and not st.teacher_features[0].requires_grad
    loss = term.loss(st)
    loss.backward()
    assert loss.item() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in term.parameters())
    first_conv = student.net[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_perceptual_term_uses_the_teachers_discriminator(teacher):
    ctx, src, student = _ctx(teacher)
    term = PerceptualTerm(ctx)
    assert not any(p.requires_grad for p in term.net.parameters())
    st = _step(ctx, src, student)
    same = Step(z=st.z, student=st.teacher.clone().requires_grad_(True), teacher=st.teacher, student_features=[],
                teacher_features=[])
    assert term.loss(same).item() == 0.0
    loss = term.loss(st)
    loss.backward()
    assert loss.item() > 0 and student.net[0].weight.grad.abs().sum() > 0


def test_gan_term_trains_its_discriminator_and_pushes_the_student(teacher):
    for kind in ("nonsat", "hinge"):
        ctx, src, student = _ctx(teacher, gan_loss=kind)
        term = GanTerm(ctx)
        before = [p.detach().clone() for p in term.D.parameters()]
        st = _step(ctx, src, student)
        logs = term.before_student(st)
        assert math.isfinite(logs["loss_d"])
        assert any(not torch.equal(a, b) for a, b in zip(before, term.D.parameters()))
        loss = term.loss(st)
        loss.backward()
        assert student.net[0].weight.grad.abs().sum() > 0
        assert set(term.modules()) == {"discriminator"} and set(term.optimizers()) == {"opt_discriminator"}


def test_terms_the_teacher_cannot_serve_are_refused_before_writing(teacher, tmp_path):
    """An ONNX teacher has no discriminator (perceptual). (Its features are served since issue 19, as
    extra graph outputs: tests/test_blackbox.py.)"""
    from edgegan.checkpoint import load_run

    g = load_run(teacher).generator
    onnx_path = tmp_path / "t.onnx"
    torch.onnx.export(g, (torch.randn(2, 100),), str(onnx_path), input_names=["z"], output_names=["x"],
                      dynamic_axes={"z": {0: "n"}, "x": {0: "n"}}, dynamo=False)
    for terms, match in (("pixel:1,perceptual:1", "has none"),):
        with pytest.raises(TeacherError, match=match):
            distill(DistillConfig(teacher=str(onnx_path), terms=terms, steps=2), tmp_path / "s", progress=False)
        assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------ whole runs


def test_weight_zero_changes_nothing(teacher, tmp_path):
    a = distill(DistillConfig(teacher=str(teacher), terms="pixel:1", steps=6, checkpoint_every=0), tmp_path / "a",
                progress=False)
    b = distill(DistillConfig(teacher=str(teacher), terms="pixel:1,gan:0,feature:0,perceptual:0", steps=6,
                              checkpoint_every=0), tmp_path / "b", progress=False)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert b["distill"]["recipe"]["weights"] == {"pixel": 1.0, "gan": 0.0, "feature": 0.0, "perceptual": 0.0}
    assert a["distill"]["eval"]["mse_end"] == b["distill"]["eval"]["mse_end"]


def test_joint_differs_from_mse_in_the_weights_not_only_the_manifest(teacher, tmp_path):
    mse = distill(DistillConfig(teacher=str(teacher), loss="mse", steps=15, checkpoint_every=0), tmp_path / "m",
                  progress=False)
    joint = distill(DistillConfig(teacher=str(teacher), loss="joint", lam=0.5, steps=15, checkpoint_every=0),
                    tmp_path / "j", progress=False)
    a, b = _weights(tmp_path / "m"), _weights(tmp_path / "j")
    assert max((a[k] - b[k]).abs().max().item() for k in a) > 1e-3
    assert joint["distill"]["dataset"]["name"] == "digits" and joint["distill"]["lam"] == 0.5
    assert mse["distill"]["lam"] is None and joint["distill"]["loss_curve"]["columns"][-1] == "gan"


def test_ema_is_what_is_saved_and_a_recipe_is_recorded(teacher, tmp_path):
    m = distill(DistillConfig(teacher=str(teacher), loss="best", ema=0.999, lr_schedule="cosine", steps=8,
                              checkpoint_every=0), tmp_path / "e", progress=False)
    dd = m["distill"]
    assert dd["weights_exported"] == "ema" and dd["recipe"]["ema"] == 0.999 and dd["recipe"]["lr_schedule"] == "cosine"
    assert dd["recipe"]["terms"] == RECIPES.get("best").terms
    assert dd["latent_sampling"] == "fresh z every step"
    from edgegan.checkpoint import load_tensors

    state = load_tensors(tmp_path / "e" / json.loads((tmp_path / "e" / "state.json").read_text())["tensors"])
    ema = {k[len("module.ema."):]: v for k, v in state.items() if k.startswith("module.ema.")}
    raw = {k[len("module.student."):]: v for k, v in state.items() if k.startswith("module.student.")}
    assert _same(_weights(tmp_path / "e"), ema) and not _same(ema, raw)


def test_latent_pool_caches_teacher_outputs(teacher, tmp_path):
    m = distill(DistillConfig(teacher=str(teacher), latent_pool=128, batch_size=32, steps=5, checkpoint_every=0),
                tmp_path / "p", progress=False)
    assert m["distill"]["latent_sampling"] == "pool of 128 fixed latents"


RESUME_TERMS = "pixel:1,feature:0.5,perceptual:0.5,gan:0.05"  # every kind of state: adaptors, D and its Adam, EMA


def test_resume_bit_exact_in_process(teacher, tmp_path, monkeypatch):
    """A run that dies right after its step-4 checkpoint, resumed, equals the uninterrupted run
    (cosine schedule, EMA, adaptors, discriminator and its optimiser all restored)."""
    import edgegan.checkpoint as ck

    kw = dict(teacher=str(teacher), terms=RESUME_TERMS, ema=0.9, lr_schedule="cosine", seed=3)
    distill(DistillConfig(steps=8, checkpoint_every=0, **kw), tmp_path / "a", progress=False)
    save = ck.save_training_state

    def save_then_die(out, *, step, **k):
        save(out, step=step, **k)
        if step == 4:
            raise _Stop

    proc = tmp_path / "b"
    monkeypatch.setattr(ck, "save_training_state", save_then_die)
    with pytest.raises(_Stop):
        distill(DistillConfig(steps=8, checkpoint_every=4, **kw), proc, progress=False)
    monkeypatch.setattr(ck, "save_training_state", save)
    assert json.loads((proc / "state.json").read_text())["step"] == 4 and not (proc / "manifest.json").exists()
    m = distill(DistillConfig(steps=8, checkpoint_every=4, **kw), proc, resume=True, progress=False)
    assert m["distill"]["resumed_from"] == 4
    assert _same(_weights(tmp_path / "a"), _weights(proc))


class _Stop(Exception):
    pass


def test_resume_refuses_changed_settings_and_finished_runs(teacher, tmp_path):
    out = tmp_path / "r"
    distill(DistillConfig(teacher=str(teacher), steps=4, checkpoint_every=2), out, progress=False)
    with pytest.raises(ConfigError, match=r"changed settings \['d'\]"):
        distill(DistillConfig(teacher=str(teacher), d=3, steps=8), out, resume=True, progress=False)
    # the same command again reports the finished run (issue 25); fewer steps than it ran is an error
    again = distill(DistillConfig(teacher=str(teacher), steps=4, checkpoint_every=2), out, resume=True, progress=False)
    assert again == json.loads((out / "manifest.json").read_text())
    with pytest.raises(ConfigError, match="already at step 4 > --steps 3"):
        distill(DistillConfig(teacher=str(teacher), steps=3, checkpoint_every=2), out, resume=True, progress=False)
    with pytest.raises(ConfigError, match="not empty"):
        distill(DistillConfig(teacher=str(teacher), steps=8), out, progress=False)
    from edgegan.errors import CheckpointError

    with pytest.raises(CheckpointError, match="nothing to resume"):
        distill(DistillConfig(teacher=str(teacher), steps=8), tmp_path / "none", resume=True, progress=False)


@pytest.mark.slow
def test_distill_killed_with_sigkill_resumes_to_the_uninterrupted_result(teacher, tmp_path):
    """A crash (SIGKILL, no chance to save) after a checkpoint: --resume ends where a run that was
    never interrupted ends, bit for bit (constant schedule, so --steps may grow on resume)."""
    base = [sys.executable, "-m", "edgegan.app.cli", "distill", "--teacher", str(teacher), "--terms", RESUME_TERMS,
            "--ema", "0.9", "--seed", "5", "--quiet"]
    out = tmp_path / "killed"
    state = out / "state.json"

    def at_step_10() -> bool:
        try:
            return json.loads(state.read_text())["step"] >= 10
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return False

    with spawned([*base, "--steps", "100000", "--checkpoint-every", "5", "--out", str(out)],
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        err = Lines(proc)
        assert wait_until(at_step_10, proc, "checkpoint at step 10"), err.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = json.loads(state.read_text())["step"]
    assert saved >= 10 and saved % 5 == 0 and not (out / "manifest.json").exists()
    total = saved + 7
    r = subprocess.run([*base, "--steps", str(total), "--out", str(out), "--resume"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    straight = tmp_path / "straight"
    r = subprocess.run([*base, "--steps", str(total), "--out", str(straight)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert _same(_weights(out), _weights(straight))
    m = json.loads((out / "manifest.json").read_text())
    assert m["distill"]["resumed_from"] == saved and m["distill"]["steps"] == total
    steps = [row[0] for row in m["distill"]["loss_curve"]["rows"]]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
