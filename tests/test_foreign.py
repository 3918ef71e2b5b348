"""Foreign teachers (issue 10): generators edgegan's tests have never seen, built here in the three forms
a user brings (ONNX, TorchScript, module:factory), through distill -> export -> runtime -> bench.

* latents (N, L) and (N, L, 1, 1) (the PyTorch DCGAN example's) everywhere, read once and recorded;
* any image size: 1x28x28, 3x48x64, 3x64x64 students (``anyshape``), bench at the run's size,
  ``distill --image-size`` where real images must be resized (recorded, never silent);
* output range: a Sigmoid [0, 1] teacher is mapped to [-1, 1], recorded, and gives the images a Tanh
  teacher with the same weights gives (2 sigmoid(x) - 1 = tanh(x / 2));
* references stored absolute, factories importable from the directory distill ran in;
* conditional teachers in every form (issue 20), the feature term on a conditional ONNX teacher included.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from edgegan.distill import DistillConfig, distill
from edgegan.errors import ConditionalTeacherError, ConfigError, TeacherError
from edgegan.sources import load_generator, load_recorded

pytestmark = [pytest.mark.onnx, pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*"),
              pytest.mark.filterwarnings("ignore::UserWarning:onnxruntime.*")]

MODULE = "i10_foreign_gens"
GENS = textwrap.dedent('''
    """Foreign generators, as users write them (not edgegan families)."""
    import torch
    from torch import nn


    class DCGANExample(nn.Module):
        """The PyTorch DCGAN example's generator: z (N, 100, 1, 1) -> 3x64x64, Tanh (ngf small)."""

        def __init__(self, nz=100, ngf=4, nc=3):
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

        def forward(self, z):
            return self.main(z)


    class Small(nn.Module):
        """z (N, L) -> Linear -> a (c, h0, w0) grid -> nearest x2 up-sampling + 3x3 conv stages -> head."""

        def __init__(self, latent=16, nc=1, h0=7, w0=7, ups=2, head="tanh"):
            super().__init__()
            self.latent_dim, self.h0, self.w0 = latent, h0, w0
            self.fc = nn.Linear(latent, 16 * h0 * w0)
            layers = []
            for _ in range(ups):
                layers += [nn.Upsample(scale_factor=2), nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU()]
            layers += [nn.Conv2d(16, nc, 3, 1, 1)]
            self.body = nn.Sequential(*layers)
            self.head = head

        def forward(self, z):
            x = self.body(torch.relu(self.fc(z)).view(-1, 16, self.h0, self.w0))
            if self.head == "sigmoid":
                return torch.sigmoid(x)
            if self.head == "tanh_half":  # 2 sigmoid(x) - 1, exactly as the Sigmoid head mapped to [-1, 1]
                return torch.tanh(x / 2)
            return torch.tanh(x)


    class Conditional(nn.Module):
        def __init__(self, latent=16, classes=10):
            super().__init__()
            self.embed = nn.Embedding(classes, latent)
            self.g = Small(latent)

        def forward(self, z, y):
            return self.g(z * self.embed(y))


    def dcgan_example():
        torch.manual_seed(0)
        return DCGANExample()


    def mnist28():
        torch.manual_seed(1)
        return Small(16, 1, 7, 7, 2)


    def wide48x64():
        torch.manual_seed(2)
        return Small(32, 3, 6, 8, 3)


    def sigmoid28():
        torch.manual_seed(3)
        return Small(16, 1, 7, 7, 2, head="sigmoid")


    def tanh_half28():
        torch.manual_seed(3)
        return Small(16, 1, 7, 7, 2, head="tanh_half")


    def conditional():
        torch.manual_seed(4)
        return Conditional()
''')


@pytest.fixture(scope="module")
def gens(tmp_path_factory):
    """The generators' module, written to a folder that is not on sys.path (as a user's project is)."""
    folder = tmp_path_factory.mktemp("project")
    (folder / f"{MODULE}.py").write_text(GENS)
    sys.path.insert(0, str(folder))
    try:
        mod = importlib.import_module(MODULE)
    finally:
        sys.path.remove(str(folder))
    yield folder, mod
    sys.modules.pop(MODULE, None)


def to_onnx(module, z, path: Path, names=("z",)) -> Path:
    module.eval()
    args = z if isinstance(z, tuple) else (z,)
    torch.onnx.export(module, args, str(path), input_names=list(names), output_names=["images"], dynamo=False,
                      dynamic_axes={**{n: {0: "batch"} for n in names}, "images": {0: "batch"}})
    return path


def to_torchscript(module, z, path: Path) -> Path:
    torch.jit.trace(module.eval(), z).save(str(path))
    return path


def cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ""}  # a factory must be found without PYTHONPATH
    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "--threads", "1", *args], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=900)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def quick(teacher: str, **kw) -> DistillConfig:
    base = dict(teacher=teacher, d=2, steps=8, batch_size=16, eval_samples=32, checkpoint_every=0)
    return DistillConfig(**{**base, **kw})


# ------------------------------------------------------------------------------ latent shapes

def test_dcgan_example_4d_latent_in_all_three_forms(gens, tmp_path):
    folder, mod = gens
    g = mod.dcgan_example()
    z4 = torch.randn(2, 100, 1, 1)
    with pytest.raises(Exception):  # the example's generator refuses (N, 100): what made the MAC counter fail
        g(torch.randn(2, 100))
    onnx_path = to_onnx(g, z4, tmp_path / "g.onnx")
    ts_path = to_torchscript(g, z4, tmp_path / "g.pt")
    want = g.eval()(z4).detach()
    sys.path.insert(0, str(folder))
    try:
        srcs = [load_generator(str(onnx_path)), load_generator(str(ts_path)), load_generator(f"{MODULE}:dcgan_example")]
    finally:
        sys.path.remove(str(folder))
    for src in srcs:
        assert (src.latent_dim, src.latent_rank, src.output_shape) == (100, 4, (3, 64, 64)), src.kind
        assert src.describe()["latent_shape"] == [100, 1, 1]
        np.testing.assert_allclose(src.forward(z4.reshape(2, 100)).numpy(), want.numpy(), atol=1e-5)
    # the MAC counter calls the module with the teacher's own latent shape
    from edgegan.bench.harness import count_macs

    ngf = 4
    convt = [(100, 8 * ngf, 1, 4), (8 * ngf, 4 * ngf, 4, 8), (4 * ngf, 2 * ngf, 8, 16), (2 * ngf, ngf, 16, 32),
             (ngf, 3, 32, 64)]
    # a transposed conv scatters a 4x4 x Cout patch per input pixel: Cin * H_in^2 * Cout * 16
    assert count_macs(srcs[2].module, 100, 4) == sum(ci * h * h * co * 16 for ci, co, h, _ in convt)


def test_a_4d_latent_module_exports_to_a_file_that_takes_n_l(gens, tmp_path):
    import edgegan_runtime as rt
    from edgegan.export import export_module

    _, mod = gens
    g = mod.dcgan_example().eval()
    entry = export_module(g, latent_dim=100, latent_rank=4, out_dir=tmp_path, stem="ex", format="onnx")
    assert entry["parity"]["passed"] and entry["input"]["shape"] == [None, 100]
    z = rt.latent(2, 100, 3)
    with rt.load(tmp_path / entry["file"]) as f:
        got = f.generate_from(z)
    np.testing.assert_allclose(got, g(torch.from_numpy(z)[:, :, None, None]).detach().numpy(), atol=1e-4)


def test_runtime_accepts_an_onnx_file_with_a_4d_latent(gens, tmp_path):
    import onnxruntime as ort

    import edgegan_runtime as rt

    _, mod = gens
    path = to_onnx(mod.dcgan_example(), torch.randn(2, 100, 1, 1), tmp_path / "g.onnx")
    with rt.load(path) as g:
        assert (g.latent_dim, g.output_shape) == (100, (3, 64, 64))
        z = rt.latent(3, 100, 7)
        got = g.generate_from(z)
        assert g.generate(3, seed=7).shape == (3, 64, 64, 3)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"z": z[:, :, None, None]})[0]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_a_latent_of_another_rank_is_refused(tmp_path):
    class Flat(torch.nn.Module):
        def forward(self, z):
            return torch.tanh(z[:, :1, :, None].expand(-1, -1, 4, 4))

    p = to_onnx(Flat(), torch.randn(2, 8, 1), tmp_path / "bad.onnx")  # (N, 8, 1): neither (N, L) nor (N, L, 1, 1)
    with pytest.raises(TeacherError, match=r"expected \(N, L\) or \(N, L, 1, 1\)"):
        load_generator(str(p))


# ------------------------------------------------------------------------------ conditional

def test_conditional_teachers_load_in_every_form_with_their_labels_probed(gens, tmp_path):
    """Issue 20 (which replaced the refusal of issue 10): an index-label teacher as ONNX, TorchScript and
    module:factory is probed once, the same everywhere: z of 16, 10 classes (the smallest label its
    embedding refuses), and forward(z, y) is the module's own output for those labels."""
    folder, mod = gens
    g = mod.conditional().eval()
    z, y = torch.randn(2, 16), torch.tensor([1, 2])
    onnx_path = to_onnx(g, (z, y), tmp_path / "c.onnx", names=("z", "y"))
    ts_path = tmp_path / "c.pt"
    torch.jit.script(g).save(str(ts_path))
    zz, yy = torch.randn(5, 16), torch.tensor([0, 3, 9, 9, 4])
    with torch.no_grad():
        want = g(zz, yy)
    sys.path.insert(0, str(folder))
    try:
        for spec in (str(onnx_path), str(ts_path), f"{MODULE}:conditional"):
            src = load_generator(spec)
            assert (src.latent_dim, src.num_classes, src.labels.form) == (16, 10, "index"), spec
            assert src.describe()["labels"] == {"form": "index", "num_classes": 10, "dtype": "int64"}
            assert torch.allclose(src.forward(zz, yy), want, atol=1e-5), spec
            with pytest.raises(ConfigError, match=r"label outside \[0, 10\)"):
                src.forward(zz, torch.tensor([0, 1, 2, 3, 10]))
            with pytest.raises(ConfigError, match="integer class indices"):
                src.forward(zz, torch.zeros(5))
        with pytest.raises(ConfigError, match="--num-classes 12 contradicts"):
            load_generator(str(ts_path), num_classes=12)
    finally:
        sys.path.remove(str(folder))


def test_feature_term_taps_a_conditional_onnx_teacher_with_its_labels(gens, tmp_path):
    """Issue 20: a conditional ONNX teacher's activations become extra outputs of a run fed (z, label); they
    equal the module's own activations for the same labels, and a feature-term distillation runs on it."""
    folder, mod = gens
    g = mod.conditional().eval()
    onnx_path = to_onnx(g, (torch.randn(2, 16), torch.tensor([1, 2])), tmp_path / "c.onnx", names=("z", "y"))
    src = load_generator(str(onnx_path))
    m = distill(quick(str(onnx_path), terms="pixel:1,feature:0.5", d=2), tmp_path / "s", progress=False)
    assert m["distill"]["recipe"]["weights"]["feature"] == 0.5 and m["distill"]["teacher"]["kind"] == "onnx"
    # the tapped tensors are the module's ReLU outputs for the same (z, label)
    from edgegan.onnx_taps import OnnxTaps, activation_outputs

    names = activation_outputs(str(onnx_path))
    taps = OnnxTaps(src, names)
    z, y = torch.randn(3, 16), torch.tensor([0, 5, 9])
    img, feats = taps.run(z, y)
    relus = [mm for mm in g.modules() if isinstance(mm, torch.nn.ReLU)]
    got = []
    hooks = [r.register_forward_hook(lambda _m, _a, o: got.append(o.detach().clone())) for r in relus]
    with torch.no_grad():
        want = g(z, y)
    for h in hooks:
        h.remove()
    # the graph's Relu nodes: the functional one after fc, then the two stages' ReLU modules
    assert torch.allclose(img, want, atol=1e-5) and len(feats) == len(got) + 1 == 3
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(feats[1:], got))
    with pytest.raises(Exception, match="needs the labels"):
        taps.run(z)


def test_a_teacher_with_three_inputs_is_refused_in_one_line(tmp_path):
    class Three(torch.nn.Module):
        def forward(self, z, y, w):
            return torch.tanh(z[:, :1, None, None].expand(-1, 1, 4, 4) + w[:, :1, None, None] + y[:, None, None, None])

    p = to_onnx(Three(), (torch.randn(2, 8), torch.randn(2), torch.randn(2, 8)), tmp_path / "three.onnx",
                names=("z", "y", "w"))
    with pytest.raises(ConditionalTeacherError, match="takes 3 inputs"):
        load_generator(str(p))
    r = cli("distill", "--teacher", str(p), "--out", str(tmp_path / "s"), check=False)
    assert r.returncode == 4 and "takes 3 inputs" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------ output range

def test_sigmoid_teacher_is_mapped_and_matches_the_tanh_twin(gens, tmp_path):
    folder, mod = gens
    z = torch.randn(4, 16)
    sig_path = to_torchscript(mod.sigmoid28(), z, tmp_path / "sig.pt")
    tanh_path = to_torchscript(mod.tanh_half28(), z, tmp_path / "tanh.pt")
    sig, twin = load_generator(str(sig_path)), load_generator(str(tanh_path))
    assert (sig.range, sig.range_source) == ((0.0, 1.0), "measured")
    assert (twin.range, twin.range_source) == ((-1.0, 1.0), "measured")
    with torch.no_grad():
        raw = torch.jit.load(str(sig_path))(z)
    assert float(raw.min()) >= 0  # the teacher's own images are in [0, 1] ...
    np.testing.assert_allclose(sig.forward(z).numpy(), (2 * raw - 1).numpy(), atol=1e-6)  # ... mapped
    np.testing.assert_allclose(sig.forward(z).numpy(), twin.forward(z).numpy(), atol=1e-5)
    # distilled the same way, both give the same student: what the metrics see does not depend on the head
    ms = distill(quick(str(sig_path), family="anyshape", steps=30), tmp_path / "s_sig", progress=False)
    mt = distill(quick(str(tanh_path), family="anyshape", steps=30), tmp_path / "s_tanh", progress=False)
    rec = ms["distill"]["teacher"]["range"]
    assert rec["declared"] == [0.0, 1.0] and rec["source"] == "measured" and rec["mapping"].startswith("x_edgegan = 2 *")
    assert ms["model"]["output"]["range"] == [-1.0, 1.0]  # the student is edgegan's convention
    assert ms["distill"]["eval"]["mse_end"] == pytest.approx(mt["distill"]["eval"]["mse_end"], rel=1e-3, abs=1e-6)
    assert ms["distill"]["eval"]["mse_end"] < 0.5 * ms["distill"]["eval"]["mse_start"]
    # the recorded mapping is what a later command applies
    # (a recorded TorchScript teacher is code: loaded only when trusted, as bench --trust-teacher does; issue 25)
    again = load_recorded(ms["distill"]["teacher"], tmp_path / "s_sig", allow_torchscript=True)
    assert again.range_source == "given" and again.range == (0.0, 1.0)
    np.testing.assert_allclose(again.forward(z).numpy(), sig.forward(z).numpy(), atol=1e-6)
    from edgegan.checkpoint import load_run

    student = load_run(tmp_path / "s_sig").generator
    with torch.no_grad():
        s_img, t_img = student(z), sig.forward(z)
    # the student's images match the teacher's after the mapping far better than before it
    assert float(((s_img - t_img) ** 2).mean()) < 0.25 * float(((s_img - raw) ** 2).mean())


def test_given_range_and_outputs_outside_it_are_reported(gens, tmp_path, caplog):
    _, mod = gens
    z = torch.randn(4, 16)
    tanh_path = to_torchscript(mod.mnist28(), z, tmp_path / "t.pt")
    with caplog.at_level(logging.WARNING, logger="edgegan.sources"):
        src = load_generator(str(tanh_path), output_range="0,1")  # a Tanh teacher declared [0, 1]
    assert src.range_source == "given" and src.probe["outside"] > 0.1 and src.probe["min"] < 0
    assert any("outside its declared range" in r.getMessage() for r in caplog.records)
    m = distill(quick(str(tanh_path), family="anyshape", teacher_range="0,1"), tmp_path / "s", progress=False)
    assert m["distill"]["teacher"]["range"]["eval_outside"] > 0.1
    with pytest.raises(ConfigError, match="teacher-range"):
        DistillConfig(teacher="x", teacher_range="1,0")

    class Wide(torch.nn.Module):
        def forward(self, z):
            return 255 * torch.sigmoid(z[:, :1, None, None].expand(-1, 1, 8, 8))

    wide = to_torchscript(Wide(), z, tmp_path / "w.pt")
    with pytest.raises(TeacherError, match="--teacher-range"):
        load_generator(str(wide))
    assert load_generator(str(wide), output_range="0,255").probe["outside"] == 0


# ------------------------------------------------------------------------------ image sizes and the chain

def _export_and_run(run: Path, quantize: str = "none", fmt: str = "onnx") -> np.ndarray:
    import edgegan_runtime as rt
    from edgegan.export import export_run

    entry = export_run(run, format=fmt, quantize=quantize)
    assert entry["parity"]["passed"]
    with rt.load(run / entry["file"]) as g:
        return g.generate(4, seed=1)


def _bench(run: Path, out: Path, *extra: str, cwd: Path | None = None) -> dict:
    cli("bench", str(run), "--out", str(out), "--samples", "64", "--quiet", *extra, cwd=cwd)
    return json.loads((out / "bench.json").read_text())


@pytest.mark.slow
def test_dcgan_example_chain_from_another_directory(gens, tmp_path, shared_data):
    """The 64x64 4-D-latent teacher as ONNX, given by a relative path, distilled from its folder;
    exported; run; benched from elsewhere at 64x64 against CelebA upsampled (recorded)."""
    _, mod = gens
    work = tmp_path / "work"
    work.mkdir()
    to_onnx(mod.dcgan_example(), torch.randn(2, 100, 1, 1), work / "g.onnx")
    cli("distill", "--teacher", "g.onnx", "--d", "1", "--steps", "6", "--batch-size", "8", "--eval-samples", "16",
        "--checkpoint-every", "0", "--out", "s", "--quiet", cwd=work)
    m = json.loads((work / "s" / "manifest.json").read_text())
    t = m["distill"]["teacher"]
    assert Path(t["spec"]).is_absolute() and t["spec"] == str((work / "g.onnx").resolve())
    assert t["latent_shape"] == [100, 1, 1] and t["spec_from_run"] == "../g.onnx"
    assert m["model"]["family"] == "dcgan" and m["model"]["output"]["shape"] == [3, 64, 64]
    assert _export_and_run(work / "s").shape == (4, 64, 64, 3)
    doc = _bench(work / "s", tmp_path / "b", "--dataset", "celeba", cwd=tmp_path)
    rows = doc["results"][0]["models"]
    assert [(r["kind"], r["format"]) for r in rows] == [("teacher", "onnx"), ("student", "torch"), ("export", "onnx")]
    assert rows[0]["macs"] is None and rows[1]["macs"] > 0
    for r in rows:
        assert "p50_us" in r["latency"], r["latency"]
        assert isinstance(r["quality"]["metrics"]["swd"]["mean"], float)
        assert r["quality"]["reference_resized"] == {"from": [32, 32], "to": [64, 64],
                                                     "method": "centre crop to the aspect ratio, bicubic resize"}


@pytest.mark.slow
def test_28x28_torchscript_teacher_chain(gens, tmp_path):
    _, mod = gens
    ts = to_torchscript(mod.mnist28(), torch.randn(2, 16), tmp_path / "m.pt")
    with pytest.raises(TeacherError, match="--family anyshape"):
        distill(quick(str(ts), family="dcgan"), tmp_path / "refused", progress=False)
    m = distill(quick(str(ts)), tmp_path / "s", progress=False)  # no --family: chosen from the shape (issue 25)
    assert m["model"]["output"]["shape"] == [1, 28, 28] and m["model"]["args"]["height"] == 28
    assert _export_and_run(tmp_path / "s").shape == (4, 28, 28, 1)
    # TorchScript is code (issue 25): a recorded TorchScript teacher runs only with --trust-teacher (or typed)
    doc = _bench(tmp_path / "s", tmp_path / "b", "--dataset", "digits", "--models", "teacher,student,exports",
                 "--trust-teacher")
    rows = doc["results"][0]["models"]
    assert rows[0]["format"] == "torch" and rows[0]["macs"] is None  # TorchScript: unknown, shown as —
    assert "| — |" in (tmp_path / "b" / "bench.md").read_text()
    for r in rows:
        assert isinstance(r["quality"]["metrics"]["classifier_fid"], float), r["quality"]  # a 28x28 classifier


@pytest.mark.slow
def test_48x64_factory_teacher_chain_without_pythonpath(gens, tmp_path):
    """module:factory from the directory distill runs in (not on PYTHONPATH), bench from another one;
    the GAN term's real images are resized only when asked, and the resize is recorded."""
    folder, _ = gens
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "imgs.npz", images=rng.integers(0, 255, (60, 30, 40, 3), dtype=np.uint8))
    common = ("--teacher", f"{MODULE}:wide48x64", "--family", "anyshape", "--steps", "4", "--batch-size", "8",
              "--eval-samples", "16", "--checkpoint-every", "0", "--loss", "joint", "--d-disc", "2",
              "--dataset", "folder", "--data-dir", str(data), "--quiet")
    r = cli("distill", *common, "--out", str(tmp_path / "no"), cwd=folder, check=False)
    assert r.returncode == 2 and "--image-size 48x64" in r.stderr, r.stderr
    cli("distill", *common, "--image-size", "48x64", "--out", str(tmp_path / "s"), cwd=folder)
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert m["distill"]["dataset"]["resized"] == {"from": [30, 40], "to": [48, 64],
                                                  "method": "centre crop to the aspect ratio, bicubic resize"}
    t = m["distill"]["teacher"]
    assert t["import_dir"] == str(folder) and t["distill_cwd"] == str(folder) and t["latent_shape"] == [32]
    assert m["model"]["output"]["shape"] == [3, 48, 64]
    assert _export_and_run(tmp_path / "s").shape == (4, 48, 64, 3)
    # A manifest never names code to run (issue 14): bench asks for the factory again ...
    r = cli("bench", str(tmp_path / "s"), "--out", str(tmp_path / "b0"), "--quiet", cwd=tmp_path, check=False)
    assert r.returncode == 4 and f"pass --teacher {MODULE}:wide48x64" in r.stderr, r.stderr
    assert not (tmp_path / "b0").exists()
    # ... and, typed, finds its module from another directory through the recorded import_dir.
    doc = _bench(tmp_path / "s", tmp_path / "b", "--models", "teacher,student", "--teacher", f"{MODULE}:wide48x64",
                 cwd=tmp_path)
    rows = doc["results"][0]["models"]
    assert rows[0]["macs"] > 0 and "p50_us" in rows[0]["latency"], rows[0]  # an eager factory: counted, timed
    assert doc["results"][0]["dataset"] == "folder"


@pytest.mark.slow
def test_bench_scores_a_64x64_edgegan_run(tmp_path, shared_data):
    """`train-teacher --image-size 64` then distill: bench reads the teacher's dataset at 64x64 (CelebA's
    32x32 files upsampled, which train-teacher and bench both record)."""
    from edgegan.train import TrainConfig, train_gan

    t = train_gan(TrainConfig(dataset="celeba", d=2, image_size=64, steps=2, batch_size=8, limit=64, sample_every=0,
                              checkpoint_every=0), tmp_path / "t", progress=False)
    assert t["dataset"]["resized"]["to"] == [64, 64]
    distill(quick(str(tmp_path / "t"), d=1, steps=3), tmp_path / "s", progress=False)
    doc = _bench(tmp_path / "s", tmp_path / "b", "--models", "student")
    assert doc["results"][0]["dataset"] == "celeba"
    q = doc["results"][0]["models"][0]["quality"]
    assert q["n_samples"] == 64 and isinstance(q["metrics"]["swd"]["mean"], float)
    assert q["reference_resized"]["to"] == [64, 64]


def test_gan_term_never_upsamples_silently(tmp_path):
    from edgegan.train import TrainConfig, train_gan

    # a 32x32 teacher trained on digits, distilled with 64x64 CIFAR-like folder images: resized only on request
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "imgs.npz", images=rng.integers(0, 255, (24, 64, 64, 1), dtype=np.uint8))
    train_gan(TrainConfig(dataset="digits", d=2, steps=2, sample_every=0, checkpoint_every=0), tmp_path / "t",
              progress=False)
    cfg = dict(loss="joint", dataset="folder", data_dir=str(tmp_path), d_disc=2, steps=2)
    with pytest.raises(ConfigError, match="64x64 images, the teacher makes 32x32: pass --image-size 32"):
        distill(quick(str(tmp_path / "t"), **cfg), tmp_path / "s", progress=False)
    with pytest.raises(ConfigError, match="must be the teacher's size"):
        distill(quick(str(tmp_path / "t"), image_size="48", **cfg), tmp_path / "s", progress=False)
    m = distill(quick(str(tmp_path / "t"), image_size="32", **cfg), tmp_path / "s", progress=False)
    assert m["distill"]["dataset"]["resized"]["from"] == [64, 64]


# ------------------------------------------------------------------------------ the anyshape family

@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 48, 64), (3, 32, 32), (3, 27, 33), (1, 4, 4), (3, 256, 256)])
def test_anyshape_makes_every_shape(shape):
    from edgegan.models import build_generator, count_params, student_args

    args = student_args("anyshape", 1, shape, 8)
    g = build_generator("anyshape", **args).eval()
    with torch.no_grad():
        y = g(torch.randn(2, 8))
    assert tuple(y.shape) == (2, *shape) and float(y.abs().max()) <= 1
    wider = build_generator("anyshape", **student_args("anyshape", 2, shape, 8))
    assert count_params(wider) > count_params(g)


def test_anyshape_at_32x32_has_dcgans_widths():
    from edgegan.models import build_generator, count_params
    from edgegan.models.dcgan import dcgan_param_count

    g = build_generator("anyshape", d=2, nc=1, height=32, width=32, latent_dim=100)
    assert count_params(g) == dcgan_param_count(2, 1)  # same layers as the paper's network
    with pytest.raises(ConfigError, match="height must be in"):
        build_generator("anyshape", d=2, nc=1, height=1024, width=32)


@pytest.mark.slow
@pytest.mark.tflite
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 48, 64)])
def test_anyshape_exports_to_tflite_int8_with_parity(tmp_path, shape):
    from edgegan.export import export_module
    from edgegan.models import student_args
    from edgegan.testing import random_bn_generator

    args = student_args("anyshape", 2, shape, 16)
    g = random_bn_generator(family="anyshape", **{k: v for k, v in args.items() if k != "d"})
    entry = export_module(g, latent_dim=16, out_dir=tmp_path, stem="a", format="tflite", quantize="int8",
                          expected_output=shape)
    assert entry["parity"]["passed"] and entry["output"]["shape"] == [None, *shape]
