"""Students of foreign teachers without their data (issue 19): the data-free GAN term and its
stabilisers, the feature term on a ``module:factory`` teacher through hooks, the refusals, and the
label-free metrics (the teacher's own samples as the reference)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgegan.distill import DistillConfig, distill, progress_line
from edgegan.errors import ConfigError, TeacherError
from edgegan.sources import load_generator
from edgegan.stages import pair_stages
from edgegan.terms import Context, GanTerm, Step

FACE64 = Path(__file__).resolve().parents[2] / "shared" / "teachers" / "face64"


class TutorialDCGAN(nn.Module):
    """The PyTorch DCGAN tutorial's generator (face64's architecture) at a tenth of its width:
    z (N, 16, 1, 1) -> 3x64x64, ReLU stages at 4, 8, 16 and 32."""

    def __init__(self, nz: int = 16, ngf: int = 4):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


def tutorial64():
    torch.manual_seed(0)
    g = TutorialDCGAN()
    for m in g.modules():  # BatchNorm statistics that make varied images in eval mode
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.fill_(0.05)
    return g


class _Constant(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.full((1, 3, 32, 32), 0.25))

    def forward(self, z):
        return self.bias.expand(z.shape[0], -1, -1, -1) + 0 * z.sum()


def constant_teacher():
    return _Constant()


def wide_teacher():  # 16x24 images: the distiller picks an anyshape student for it
    from edgegan.models import build_generator

    torch.manual_seed(0)
    return build_generator("anyshape", d=2, nc=3, height=16, width=24, latent_dim=8).eval()


SPEC = "tests.test_blackbox:tutorial64"


def _kw(**kw):
    return dict(teacher=SPEC, batch_size=8, eval_samples=16, checkpoint_every=0, **kw)


# ------------------------------------------------------------------------------ the data-free GAN term


def test_gan_term_takes_the_teachers_images_as_real_without_a_dataset(tmp_path):
    m = distill(DistillConfig(**_kw(terms="pixel:1,gan:0.1", gan_loss="hinge", d_sn=True, d_disc=4, steps=4)),
                tmp_path / "s", progress=False)
    dd = m["distill"]
    assert dd["gan"]["real"] == "teacher" and dd["dataset"] is None
    assert dd["gan"]["spectral_norm"] is True and dd["gan"]["loss"] == "hinge"
    assert all(r[-1] != 0 for r in dd["loss_curve"]["rows"])  # the GAN term ran from step 1
    no_gan = distill(DistillConfig(**_kw(steps=2)), tmp_path / "p", progress=False)
    assert no_gan["distill"]["gan"] is None


def test_gan_real_teacher_with_a_dataset_is_refused_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="would be unused"):
        distill(DistillConfig(**_kw(terms="pixel:1,gan:0.1", gan_real="teacher", dataset="digits", steps=2)),
                tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_warm_start_leaves_the_discriminator_alone_until_gan_start(tmp_path):
    m = distill(DistillConfig(**_kw(terms="pixel:1,gan:0.1", d_disc=4, gan_start=3, steps=5)), tmp_path / "s",
                progress=False)
    rows = m["distill"]["loss_curve"]["rows"]  # step, mse, loss, pixel, gan
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert [r[-1] for r in rows[:3]] == [0.0, 0.0, 0.0] and all(r[-1] != 0 for r in rows[3:])
    assert all(r[2] == pytest.approx(r[3]) for r in rows[:3])  # loss = pixel alone before the start


def _gan_ctx(**cfg):
    src = load_generator(SPEC)
    from edgegan.models import build_generator, student_args

    c = DistillConfig(teacher=SPEC, d_disc=4, **cfg)
    student = build_generator("dcgan", **student_args("dcgan", 2, src.output_shape, src.latent_dim))
    ctx = Context(config=c, teacher=src, student=student, device=torch.device("cpu"), rng=torch.Generator(),
                  real=None, stages=None)
    z = torch.randn(8, src.latent_dim)
    return ctx, Step(z=z, student=student(z), teacher=src.forward(z), student_features=[], teacher_features=[])


@pytest.mark.parametrize("kind", ["nonsat", "hinge", "relativistic"])
def test_every_gan_loss_trains_d_on_teacher_images_and_pushes_the_student(kind):
    ctx, st = _gan_ctx(gan_loss=kind)
    term = GanTerm(ctx)
    before = [p.detach().clone() for p in term.D.parameters()]
    assert np.isfinite(term.before_student(st)["loss_d"])
    assert any(not torch.equal(a, b) for a, b in zip(before, term.D.parameters()))
    term.loss(st).backward()
    assert ctx.student.net[0].weight.grad.abs().sum() > 0


def test_spectral_norm_makes_each_layer_1_lipschitz():
    ctx, st = _gan_ctx(d_sn=True)
    term = GanTerm(ctx)
    for _ in range(30):  # power iteration: one step per forward in training mode
        term.D(st.teacher)
    convs = [m for m in term.D.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_spectral_norm_discriminator_resumes(tmp_path):
    kw = _kw(terms="pixel:1,gan:0.1", d_sn=True, d_disc=4, ema=0.9, seed=2)
    distill(DistillConfig(**{**kw, "steps": 4}), tmp_path / "a", progress=False)
    distill(DistillConfig(**{**kw, "steps": 2, "checkpoint_every": 2}), tmp_path / "b", progress=False)
    (tmp_path / "b" / "manifest.json").unlink()
    distill(DistillConfig(**{**kw, "steps": 4}), tmp_path / "b", resume=True, progress=False)
    from edgegan.checkpoint import load_tensors

    a, b = load_tensors(tmp_path / "a" / "generator.safetensors"), load_tensors(tmp_path / "b" / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ the feature term, foreign teachers


def test_factory_teacher_stages_pair_by_resolution():
    from edgegan.models import build_generator

    src = load_generator(SPEC)
    student = build_generator("dcgan", d=2, nc=3, image_size=64, latent_dim=16)
    st = pair_stages(src, student, None)
    assert [t for t, _ in st.names] == ["main.2", "main.5", "main.8", "main.11"]  # 4, 8, 16, 32: not the Tanh
    assert st.teacher_channels == [32, 16, 8, 4] and st.student_channels == [32, 16, 8, 4]


def test_feature_term_on_a_factory_teacher_trains(tmp_path):
    m = distill(DistillConfig(**_kw(terms="pixel:1,feature:0.1", steps=3)), tmp_path / "s", progress=False)
    assert m["distill"]["loss_curve"]["columns"][-1] == "feature"
    assert all(r[-1] > 0 for r in m["distill"]["loss_curve"]["rows"])


@pytest.mark.parametrize("layers, match", [
    ("main.22=net.2", "the teacher has no layer 'main.22'; did you mean 'main.2'"),
    ("main.2=net.22", "the student has no layer 'net.22'; did you mean 'net.2'"),
    ("main.2", "must be teacher_module=student_module"),
])
def test_unknown_feature_layer_names_the_closest_and_writes_nothing(tmp_path, layers, match):
    with pytest.raises(ConfigError, match=match):
        distill(DistillConfig(**_kw(terms="pixel:1,feature:0.1", feature_layers=layers, steps=2)), tmp_path / "s",
                progress=False)
    assert not (tmp_path / "s").exists()


def _exported(tmp_path):
    g = tutorial64().eval()
    ts = tmp_path / "t.pt"
    torch.jit.script(g).save(str(ts))
    onnx_path = tmp_path / "t.onnx"
    torch.onnx.export(g, (torch.randn(2, 16, 1, 1),), str(onnx_path), input_names=["z"], output_names=["x"],
                      dynamic_axes={"z": {0: "n"}, "x": {0: "n"}}, dynamo=False)
    return g, ts, onnx_path


def test_torchscript_teacher_is_refused_with_the_factory_route(tmp_path):
    _, ts, _ = _exported(tmp_path)
    with pytest.raises(TeacherError, match="TorchScript modules take no forward hooks: pass the generator's Python "
                                           "class as module:factory with --teacher-weights"):
        distill(DistillConfig(teacher=str(ts), terms="pixel:1,feature:0.1", steps=2), tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


@pytest.mark.onnx
def test_onnx_teacher_features_are_extra_graph_outputs_equal_to_the_modules_hooks(tmp_path):
    from edgegan.models import build_generator
    from edgegan.stages import FeatureCapture

    g, _, onnx_path = _exported(tmp_path)
    student = build_generator("dcgan", d=2, nc=3, image_size=64, latent_dim=16)
    onnx_src, fac_src = load_generator(str(onnx_path)), load_generator(SPEC)
    st_onnx, st_fac = pair_stages(onnx_src, student, None), pair_stages(fac_src, student, None)
    assert [s for _, s in st_onnx.names] == [s for _, s in st_fac.names] and len(st_onnx.names) == 4
    assert st_onnx.teacher_channels == st_fac.teacher_channels == [32, 16, 8, 4]
    z = torch.randn(5, 16)
    hooks = FeatureCapture(st_fac.teacher_modules)
    img_f = fac_src.forward(z)
    want = hooks.take()
    hooks.close()
    img_o = onnx_src.forward(z)  # now through the tapped model
    got = st_onnx.teacher_tap.take()
    assert torch.allclose(img_o, img_f, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, want))
    m = distill(DistillConfig(teacher=str(onnx_path), terms="pixel:1,feature:0.1", batch_size=8, eval_samples=16,
                              steps=3, checkpoint_every=0), tmp_path / "s", progress=False)
    assert all(r[-1] > 0 for r in m["distill"]["loss_curve"]["rows"])
    tensor = st_onnx.names[0][0]
    with pytest.raises(ConfigError, match=f"the teacher has no tensor '{tensor}x'; did you mean '{tensor}'"):
        distill(DistillConfig(teacher=str(onnx_path), terms="pixel:1,feature:0.1", feature_layers=f"{tensor}x=net.2",
                              steps=2), tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------ bad teachers, options, progress


def test_constant_teacher_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(TeacherError, match="same image for every latent"):
        distill(DistillConfig(teacher="tests.test_blackbox:constant_teacher", latent_dim=8, steps=2),
                tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_min_width_widens_only_the_narrow_stages():
    from edgegan.models import build_generator, count_params

    g = build_generator("dcgan", d=2, nc=3, image_size=64, latent_dim=100, min_width=8)
    convs = [m for m in g.net if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d))]
    assert [c.out_channels for c in convs] == [32, 16, 8, 8, 8, 3]
    # closed form: ConvT weights (k=4) + BN (2 per channel) + the 1x1 head with its bias
    widths = [32, 16, 8, 8, 8]
    expect = 100 * 32 * 16 + sum(a * b * 16 for a, b in zip(widths, widths[1:])) + 2 * sum(widths) + 8 * 3 + 3
    assert count_params(g) == expect == 63659
    with pytest.raises(ConfigError, match="shapes dcgan students"):
        DistillConfig(teacher=SPEC, family="anyshape", min_width=8)


def test_flat_width_profile_closed_form_and_refusals():
    from edgegan.models import build_generator, count_params

    g = build_generator("dcgan", d=2, nc=3, image_size=64, latent_dim=100, profile="flat")
    convs = [m for m in g.net if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d))]
    widths = [24, 24, 20, 16, 12]  # 12d, 12d, 10d, 8d, 6d
    assert [c.out_channels for c in convs] == widths + [3]
    expect = 100 * 24 * 16 + sum(a * b * 16 for a, b in zip(widths, widths[1:])) + 2 * sum(widths) + 12 * 3 + 3
    assert count_params(g) == expect == 63719
    assert g(torch.randn(2, 100)).shape == (2, 3, 64, 64)
    small = build_generator("dcgan", d=2, nc=1, image_size=32, profile="flat")  # 12d, 10d, 8d, 6d
    assert [m.out_channels for m in small.net if isinstance(m, nn.ConvTranspose2d)] == [24, 20, 16, 12]
    # min_width still raises the narrow stages of either profile; the default stays the paper's
    assert build_generator("dcgan", d=1, nc=3, image_size=64, profile="flat", min_width=8).args.widths() == [12, 12, 10, 8, 8]
    assert build_generator("dcgan", d=2, nc=3, image_size=64).args.widths() == [32, 16, 8, 4, 2]
    with pytest.raises(ConfigError, match="unknown dcgan profile 'flt'.*Did you mean 'flat'"):
        build_generator("dcgan", d=2, profile="flt")
    with pytest.raises(ConfigError, match="profile must be one of"):
        build_generator("dcgan", d=2, profile=3)
    with pytest.raises(ConfigError, match="--width-profile shapes dcgan students"):
        DistillConfig(teacher=SPEC, family="anyshape", width_profile="flat")


@pytest.mark.parametrize("opt", [{"width_profile": "flat"}, {"min_width": 8}])
def test_dcgan_shape_options_are_refused_for_a_teacher_that_gets_an_anyshape_student(tmp_path, opt):
    # the family is chosen from the teacher's shape; the config's own check runs again on that choice
    with pytest.raises(ConfigError, match="shapes dcgan students; the anyshape family has no such option"):
        distill(DistillConfig(teacher="tests.test_blackbox:wide_teacher", latent_dim=8, steps=2, **opt),
                tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_log_progress_default_only_fills_in_for_a_log_file():
    from edgegan.app.cli.commands import LOG_PROGRESS_EVERY, log_progress_default

    cfg = DistillConfig(teacher="t")
    assert log_progress_default(cfg, quiet=False, given=False, terminal=False).progress_every == LOG_PROGRESS_EVERY
    for kw in ({"quiet": True, "given": False, "terminal": False}, {"quiet": False, "given": True, "terminal": False},
               {"quiet": False, "given": False, "terminal": True}):
        assert log_progress_default(cfg, **kw).progress_every == 0, kw
    assert log_progress_default(DistillConfig(teacher="t", progress_every=5), quiet=False, given=False,
                                terminal=False).progress_every == 5


def test_progress_line_closed_form():
    assert progress_line(100, 0, 1000, 50.0, 0.5) == "step 100/1000 (10%), 0.500 s/step, ETA 0:07:30, loss 0.5"
    # a resumed run: the pace of this session only
    assert progress_line(600, 500, 4100, 100.0, 0.25) == "step 600/4100 (15%), 1.000 s/step, ETA 0:58:20, loss 0.25"


# ------------------------------------------------------------------------------ label-free metrics


def test_bench_reference_is_the_teachers_own_samples_on_disjoint_latents():
    from edgegan.bench.harness import TEACHER_REFERENCE, _dataset_of, teacher_reference

    src = load_generator(SPEC)
    ref = teacher_reference(src, 16, seed=0)
    assert ref.name == TEACHER_REFERENCE and ref.images.shape == (16, 3, 64, 64) and ref.labels is None
    from edgegan_runtime import latent

    scored = src.forward(torch.from_numpy(latent(16, 16, 0))).numpy()
    assert not np.isclose(ref.images, scored).all(axis=(1, 2, 3)).any()  # no image scored against itself
    m = {"distill": {"dataset": None}}
    assert _dataset_of(m, None, None, None) == (None, None)
    assert _dataset_of(m, None, "celeba", None) == ("celeba", None)


@pytest.mark.slow
@pytest.mark.skipif(not (FACE64 / "face64.safetensors").is_file(), reason="the face64 teacher is not in ../shared")
def test_label_free_headline_ranks_blur_checkerboard_and_colour_cast_worse_on_face64():
    """The failures a person sees on face64 students (issue 19) must rank below a faithful copy on
    PSNR, SSIM (same z) and SWD to the teacher's own samples."""
    from edgegan.metrics import colour_fd, psnr, ssim, swd
    from edgegan_runtime import latent

    src = load_generator("generator:make", weights=str(FACE64 / "face64.safetensors"), import_dir=str(FACE64))
    t = src.forward(torch.from_numpy(latent(192, 100, 0))).numpy()
    ref = src.forward(torch.from_numpy(latent(192, 100, 1_000_003))).numpy()
    rng = np.random.default_rng(0)
    faithful = np.clip(t + rng.normal(0, 0.02, t.shape).astype(np.float32), -1, 1)
    k = np.ones(5, np.float32) / 5
    blur = np.apply_along_axis(lambda v: np.convolve(v, k, "same"), -1, t)
    blur = np.apply_along_axis(lambda v: np.convolve(v, k, "same"), -2, blur)
    yy, xx = np.mgrid[:64, :64]
    checker = np.clip(t + 0.15 * np.where((yy + xx) % 2, 1, -1).astype(np.float32), -1, 1)
    cast = np.clip(t + np.array([0.25, 0.0, -0.25], np.float32)[None, :, None, None], -1, 1)
    floor, c_floor = swd(t, ref, seed=0).mean, colour_fd(t, ref)
    good = (psnr(faithful, t), ssim(faithful, t), swd(faithful, ref, seed=0).mean, colour_fd(faithful, ref))
    assert good[2] < 1.5 * floor and good[3] < 1.5 * c_floor
    scores = {}
    for name, bad in (("blur", blur), ("checkerboard", checker), ("colour cast", cast)):
        scores[name] = p, s, w, c = psnr(bad, t), ssim(bad, t), swd(bad, ref, seed=0).mean, colour_fd(bad, ref)
        assert p < good[0] and s < good[1], name
        # each failure shows in a distribution distance: texture in SWD, colour in the colour FD
        assert w > 1.5 * floor or c > 1.5 * c_floor, (name, scores[name])
    assert scores["blur"][2] > 1.5 * floor and scores["checkerboard"][2] > 1.5 * floor
    # SWD normalises each set's colour statistics away: the cast is the colour FD's to catch
    assert scores["colour cast"][3] > 10 * c_floor


def test_colour_fd_closed_forms():
    from edgegan.metrics import colour_fd

    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 0.5, (64, 3, 8, 8)).astype(np.float64)
    b = a.copy()
    b[:, 0] += 0.2  # one channel shifted by c: the mean moves by c, nothing else does
    assert colour_fd(a, a) == pytest.approx(0.0, abs=1e-9)
    assert colour_fd(a, b) == pytest.approx(1e3 * 0.2 ** 2, rel=1e-6)


# ------------------------------------------------------------------------------ a downloaded .pth


class _NotAStateDict:
    pass


def test_pth_state_dict_is_read_with_weights_only_and_a_key_picks_one(tmp_path):
    g = tutorial64()
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.01)
    sd = g.state_dict()
    pth = tmp_path / "weights.tar"  # what a download often is: torch.save of several state dicts
    torch.save({"netG_state_dict": sd, "netD_state_dict": {"w": torch.zeros(2)}, "epoch": 3}, pth)
    z = torch.randn(4, 16)
    src = load_generator(SPEC, weights=f"{pth}#netG_state_dict")
    want = g.eval()(z[:, :, None, None])
    assert torch.allclose(src.forward(z), want) and src.info["weights"].endswith("#netG_state_dict")
    with pytest.raises(TeacherError, match=r"pick the generator's state dict with --teacher-weights .*#netD_state_dict"):
        load_generator(SPEC, weights=str(pth))
    with pytest.raises(TeacherError, match="no key 'netG'"):
        load_generator(SPEC, weights=f"{pth}#netG")
    bad = tmp_path / "code.pth"
    torch.save({"x": _NotAStateDict()}, bad)
    with pytest.raises(TeacherError, match="weights_only=True"):
        load_generator(SPEC, weights=str(bad))


# ------------------------------------------------------------------------------ the named recipe


def test_latent_pool_over_its_memory_limit_is_refused_or_capped(tmp_path, monkeypatch):
    import edgegan.distill_parts as parts

    per = 4 * 3 * 64 * 64  # bytes of one float32 output of the 64x64 RGB teacher
    monkeypatch.setattr(parts, "POOL_MAX_BYTES", 40 * per)
    # asked for by the user: an error naming what fits, before anything is written
    with pytest.raises(ConfigError, match=r"--latent-pool 64 keeps 64 teacher outputs of 3x64x64 .* at most 32 fit"):
        distill(DistillConfig(**_kw(latent_pool=64, steps=2)), tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    # chosen by the recipe: capped to the largest power of two that fits, recorded, and kept on resume
    m = distill(DistillConfig(**_kw(loss="blackbox", steps=2)), tmp_path / "b", progress=False)
    assert m["config"]["latent_pool"] == 32
    m = distill(DistillConfig(**_kw(loss="blackbox", steps=3)), tmp_path / "b", resume=True, progress=False)
    assert m["config"]["latent_pool"] == 32 and m["config"]["steps"] == 3
    monkeypatch.setattr(parts, "POOL_MAX_BYTES", 4 * per)  # not even one batch (8) fits
    with pytest.raises(ConfigError, match="cannot hold one batch"):
        distill(DistillConfig(**_kw(loss="blackbox", steps=2)), tmp_path / "c", progress=False)


def test_blackbox_recipe_sets_its_options_where_left_at_their_defaults(tmp_path):
    eff = DistillConfig(teacher=SPEC, loss="blackbox").effective()
    assert (eff.latent_pool, eff.min_width, eff.width_profile) == (65536, 8, "flat")
    assert [t.name for t in eff.recipe().terms] == ["pixel"]
    mine = DistillConfig(teacher=SPEC, loss="blackbox", latent_pool=64, min_width=4).effective()
    assert (mine.latent_pool, mine.min_width) == (64, 4)
    assert DistillConfig(teacher=SPEC, terms="pixel:1,gan:0.1").effective().latent_pool == 0  # --terms: none
    m = distill(DistillConfig(**_kw(loss="blackbox", latent_pool=32, steps=3)), tmp_path / "s", progress=False)
    assert m["config"]["latent_pool"] == 32 and m["config"]["min_width"] == 8
    assert m["distill"]["recipe"]["name"] == "blackbox" and m["model"]["args"]["min_width"] == 8
    assert m["model"]["args"]["profile"] == "flat"
