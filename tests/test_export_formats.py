"""Round trips: a tiny trained student to every format × precision, each file run through
edgegan_runtime and compared with PyTorch; the ConvT rewrite; other generator shapes; wrong
recipes caught by the parity check; the manifest entry and the self-contained ``-o`` folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgegan.checkpoint import load_run
from edgegan.errors import ParityError
from edgegan.export import FORMATS, export_module, export_run
from edgegan.export.onnx_export import fp16_weights as real_fp16_weights
from edgegan.manifest import read_manifest, sha256_file
from tests.test_export import make_run, train_student, tree

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_quantizer.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:onnxruntime.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

rt = pytest.importorskip("edgegan_runtime")

CASES = [
    pytest.param("onnx", "none", None, marks=pytest.mark.onnx),
    pytest.param("onnx", "fp16", None, marks=pytest.mark.onnx),
    pytest.param("onnx", "int8", None, marks=pytest.mark.onnx),
    pytest.param("tflite", "none", [64], marks=pytest.mark.tflite),
    pytest.param("tflite", "fp16", None, marks=pytest.mark.tflite),
    pytest.param("tflite", "dynamic-int8", None, marks=pytest.mark.tflite),
    pytest.param("tflite", "weight-int8", None, marks=pytest.mark.tflite),
    pytest.param("tflite", "int8", [64], marks=pytest.mark.tflite),
    pytest.param("tflite", "int16x8", None, marks=pytest.mark.tflite),
]


# The recipe each format x precision is made with (None: plain conversion).
RECIPES = {
    ("onnx", "none"): None,
    ("onnx", "fp16"): "float16 initializers + Cast to float32",
    ("onnx", "int8"): "onnxruntime quantize_static QDQ U8U8 (per-channel uint8 weights, uint8 activations, MinMax)",
    ("tflite", "none"): None,
    ("tflite", "fp16"): "float_casting weight-only fp16",
    ("tflite", "dynamic-int8"): "dynamic_wi8_afp32",
    ("tflite", "weight-int8"): "weight_only_wi8_afp32",
    ("tflite", "int8"): "static_wi8_ai8",
    ("tflite", "int16x8"): "static_wi8_ai16",
}


def _needs(fmt: str) -> None:
    for mod in (("onnx", "onnxscript", "onnxruntime") if fmt == "onnx" else ("litert_torch", "ai_edge_quantizer",
                                                                              "ai_edge_litert")):
        pytest.importorskip(mod)


@pytest.fixture(scope="module")
def student():
    return train_student(d=2, steps=40, seed=0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, student):
    return make_run(tmp_path_factory.mktemp("student") / "student", student, {"d": 2})


def _torch_images(g: nn.Module, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return g(torch.from_numpy(z)).numpy()


@pytest.mark.parametrize("fmt,quantize,batch", CASES)
def test_round_trip_through_the_runtime(run_dir, fmt, quantize, batch):
    _needs(fmt)
    entry = export_run(run_dir, format=fmt, quantize=quantize, batch=batch)
    spec = FORMATS.get(fmt)
    prec = spec.precision(quantize)
    path = run_dir / entry["file"]
    assert path.name == f"student-{fmt}-{prec.label}{spec.extension}"
    assert path.parent == run_dir / "exports"
    assert entry["sha256"] == sha256_file(path) and entry["bytes"] == path.stat().st_size
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left

    par = entry["parity"]
    assert par["passed"] is True and par["backend"] in ("onnxruntime", "litert", "tflite-runtime")
    assert par["thresholds"] == prec.thresholds.to_dict()
    if prec.thresholds.max_abs is not None:
        assert par["max_abs"] <= prec.thresholds.max_abs
    if prec.thresholds.psnr_db is not None:
        assert par["psnr_db"] >= prec.thresholds.psnr_db

    # The contract the runtime relies on, and the manifest entry.
    assert entry["input"] == {"shape": [None, 100], "dtype": "float32"}
    assert entry["output"]["shape"] == [None, 1, 32, 32] and entry["output"]["layout"] == "NCHW"
    assert entry["output"]["range"] == [-1.0, 1.0]
    assert entry["seconds"] > 0 and entry["created"]
    if fmt == "onnx":
        assert entry["dynamic_batch"] is True and entry["opset"] >= 18
        assert entry["names"] == {"input": "z", "output": "images"}
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["edgegan.latent_dim"] == "100" and props["edgegan.precision"] == prec.label
        # no exporter provenance (stack traces with this machine's source paths) in a shipped file
        root = str(Path(__file__).resolve().parents[1]).encode()
        assert root not in path.read_bytes() and b"stack_trace" not in path.read_bytes()
        assert entry["versions"]["onnxruntime"] and entry["versions"]["onnxscript"]
    else:
        want = [1] + (batch or [])
        assert entry["signatures"] == [{"key": f"batch_{b}", "batch": b} for b in want]
        assert entry["versions"]["litert-torch"] and entry["versions"]["ai-edge-quantizer"]
    if prec.static:
        assert entry["calibration"] == {"count": 256, "batch": 64, "seed": 1,
                                        "distribution": "edgegan_runtime.latent (standard normal)"}
    else:
        assert entry["calibration"] is None
    if fmt == "tflite" and quantize == "int8":
        q = entry["quantization"]
        assert q["input"]["dtype"] == "int8" and q["input"]["scale"] > 0
        assert q["output"]["dtype"] == "int8" and q["output"]["scale"] == pytest.approx(1 / 128)
    elif fmt == "tflite" and quantize == "int16x8":  # symmetric int16 (a16w8): tanh's fixed output scale 2^-15
        q = entry["quantization"]
        assert q["input"]["dtype"] == "int16" and q["input"]["zero_point"] == 0 and q["input"]["scale"] > 0
        assert q["output"]["dtype"] == "int16" and q["output"]["scale"] == pytest.approx(2 ** -15)
    else:
        assert entry["quantization"] is None
    if fmt == "onnx" and quantize == "int8":
        assert any("not faster" in n for n in entry["notes"])
    # Which recipe made each precision, and why (issue #8): recorded in the manifest.
    assert entry["recipe"] == RECIPES[(fmt, quantize)]
    if fmt == "onnx" and quantize == "int8":
        assert "U8S8" in entry["recipe_why"] and "VNNI" in entry["recipe_why"]
        from edgegan_runtime.onnx_check import verify_onnx

        assert verify_onnx(path.read_bytes(), path.name).int8_scheme == "u8u8"  # the file is what it says
        # This CPU's fused integer kernels were checked against the file's own arithmetic.
        k = par["kernels"]
        assert k["max_abs"] <= k["max_abs_limit"] and "simulated in float" in k["reference"]
    else:
        assert entry["recipe_why"] is None and "kernels" not in par

    manifest = read_manifest(run_dir)
    assert entry in manifest["exports"]
    assert [(e["format"], e["precision"]) for e in manifest["exports"]].count((fmt, prec.label)) == 1

    # Independently of the exporter: load by the manifest, as an app would, on other latents.
    gen = rt.load(run_dir, export=f"{fmt}:{prec.label}")
    z = rt.latent(65, 100, seed=123)  # 65: a full batch of 64 plus a remainder where there are signatures
    got = gen.generate_from(z)
    want = _torch_images(load_run(run_dir).generator, z)
    psnr = 10 * np.log10(4 / np.mean((got.astype(np.float64) - want) ** 2))
    assert psnr >= (prec.thresholds.psnr_db or 80.0) - 3.0

    # The contract inside the file (issue 12), read with the format's own tools rather than the runtime:
    # the runtime read the same, and it says what the manifest entry says.
    c = file_contract(path)
    assert gen.contract == c
    assert c["identity"] == {"stem": "student", "file": path.name, "format": fmt, "precision": prec.label,
                             "quantize": quantize, "model_sha256": manifest["model"]["weights"]["sha256"]}
    assert c["latent"] == {"dim": 100, "dtype": "float32",
                           "sampler": {"name": "splitmix64-box-muller", "version": 1, "spec": "edgegan_runtime.latent"}}
    assert {k: c["output"][k] for k in ("shape", "layout", "range")} == \
        {k: entry["output"][k] for k in ("shape", "layout", "range")}
    assert c["pixels"]["name"] == "clip-rint-127.5" and c["pixels"]["version"] == 1
    if fmt == "tflite":
        assert c["signatures"] == entry["signatures"] and c["batch_sizes"] == [s["batch"] for s in entry["signatures"]]
    else:
        assert c["batch_sizes"] is None


def file_contract(path: Path) -> dict:
    """edgegan.contract from a file, read with onnx / LiteRT's generated flatbuffer schema (not the runtime)."""
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        return json.loads(props["edgegan.contract"])
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAs(bytearray(path.read_bytes()), 0)
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if md.Name() == b"edgegan.contract":
            return json.loads(m.Buffers(md.Buffer()).DataAsNumpy().tobytes())
    raise AssertionError(f"{path.name} has no edgegan.contract metadata")


@pytest.mark.onnx
def test_reexport_replaces_the_entry_and_other_sections_stay(run_dir):
    _needs("onnx")
    export_run(run_dir, format="onnx")
    before = read_manifest(run_dir)
    export_run(run_dir, format="onnx", seed=5)
    after = read_manifest(run_dir)
    assert [(e["format"], e["precision"]) for e in after["exports"]].count(("onnx", "fp32")) == 1
    onnx_fp32 = next(e for e in after["exports"] if e["precision"] == "fp32" and e["format"] == "onnx")
    assert onnx_fp32["parity"]["seed"] == 5
    for key in before:
        if key != "exports":
            assert after[key] == before[key]


@pytest.mark.onnx
def test_out_dir_is_self_contained(run_dir, tmp_path):
    _needs("onnx")
    run_manifest = (run_dir / "manifest.json").read_bytes()
    out = tmp_path / "deploy"
    entry = export_run(run_dir, format="onnx", quantize="fp16", out=out)
    assert (run_dir / "manifest.json").read_bytes() == run_manifest  # the run itself is not touched
    assert (out / entry["file"]).is_file() and entry["file"] == "exports/student-onnx-fp16.onnx"
    m = read_manifest(out)
    assert m["model"] == read_manifest(run_dir)["model"] and m["kind"] == "student"
    assert [e["file"] for e in m["exports"]] == [entry["file"]]
    assert load_run(out).latent_dim == 100  # weights copied and verified
    assert rt.load(out).generate_from(rt.latent(2, 100, 0)).shape == (2, 1, 32, 32)


# ----------------------------------------------------------------------- other generator shapes

class ConvT3Generator(nn.Module):
    """Transposed convolutions litert-torch rejects: kernel 3 / 5 with output_padding, and one whose
    output_padding exceeds its padding (the rewrite then zero-pads before the bias)."""

    def __init__(self, latent: int = 16, c: int = 8):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(),  # 4x4
            nn.ConvTranspose2d(c, c, 3, 2, 1, output_padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),  # 8x8
            nn.ConvTranspose2d(c, c, 5, 2, 2, output_padding=1), nn.ReLU(),  # 16x16
            nn.ConvTranspose2d(c, c, 2, 2, 0, output_padding=1), nn.ReLU(),  # 33x33
            nn.Conv2d(c, 1, 2, 1, 0), nn.Tanh())  # 32x32

    def forward(self, z):
        return self.net(z[:, :, None, None])


class UpsampleGenerator(nn.Module):
    """Not a DCGAN: a Linear stem, then nearest upsampling + 3x3 convolution blocks (RGB)."""

    def __init__(self, latent: int = 16, c: int = 8, nc: int = 3):
        super().__init__()
        self.c = c
        self.stem = nn.Sequential(nn.Linear(latent, c * 16), nn.BatchNorm1d(c * 16), nn.ReLU())
        blocks: list[nn.Module] = []
        for _ in range(3):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, 1, 1, bias=False),
                       nn.BatchNorm2d(c), nn.ReLU()]
        self.body = nn.Sequential(*blocks, nn.Conv2d(c, nc, 3, 1, 1), nn.Tanh())

    def forward(self, z):
        return self.body(self.stem(z).view(-1, self.c, 4, 4))


def _settled(g: nn.Module, latent: int = 16) -> nn.Module:
    torch.manual_seed(0)
    for m in g.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.3)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = None
    g.train()
    with torch.no_grad():
        for _ in range(3):
            g(torch.randn(64, latent))
    return g.eval()


@pytest.mark.tflite
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_rejected_convtranspose_is_rewritten_for_tflite(tmp_path, quantize):
    _needs("tflite")
    g = _settled(ConvT3Generator())
    entry = export_module(g, latent_dim=16, out_dir=tmp_path, stem="k3", format="tflite", quantize=quantize,
                          batch=[64] if quantize == "int8" else None)
    assert entry["rewrites"]["convtranspose_rewritten"] == 3
    assert entry["rewrites"]["batchnorm_folded"] == 2
    assert entry["output"]["shape"] == [None, 1, 32, 32]
    assert entry["parity"]["passed"], entry["parity"]


@pytest.mark.tflite
def test_rejected_convtranspose_fails_without_the_rewrite():
    _needs("tflite")
    from edgegan.errors import ExportError
    from edgegan.export import litert_adapter
    from edgegan.export.prepare import prepare_for_export

    prepared, _ = prepare_for_export(_settled(ConvT3Generator()), rewrite_convt=False)
    with pytest.raises(ExportError, match="litert-torch could not convert"):
        litert_adapter.convert(prepared, 16, (1,))


@pytest.mark.parametrize("fmt,quantize", [pytest.param("onnx", "none", marks=pytest.mark.onnx),
                                          pytest.param("onnx", "int8", marks=pytest.mark.onnx),
                                          pytest.param("tflite", "int8", marks=pytest.mark.tflite),
                                          pytest.param("tflite", "fp16", marks=pytest.mark.tflite)])
def test_any_generator_not_only_dcgan(tmp_path, fmt, quantize):
    _needs(fmt)
    g = _settled(UpsampleGenerator())
    entry = export_module(g, latent_dim=16, out_dir=tmp_path, stem="up", format=fmt, quantize=quantize)
    assert entry["output"]["shape"] == [None, 3, 32, 32]
    assert entry["rewrites"]["batchnorm_folded"] == 4  # the BatchNorm1d of the Linear stem too
    assert entry["parity"]["passed"], entry["parity"]
    assert entry["file"] == f"up-{fmt}-{FORMATS.get(fmt).precision(quantize).label}{FORMATS.get(fmt).extension}"


# ----------------------------------------------------------------- wrong recipes are caught

@pytest.mark.tflite
def test_static_w8a16_recipe_is_caught_and_nothing_is_left(run_dir, monkeypatch):
    """ai-edge-quantizer's static w8a16 recipe made wrong images here; whatever it makes, the
    parity check stops it. (With 0.10 its int16 input already fails the runtime's file contract.)"""
    _needs("tflite")
    from ai_edge_quantizer import recipe

    from edgegan.export import litert_adapter

    monkeypatch.setattr(litert_adapter, "RECIPES", lambda precision: (recipe.static_wi8_ai16(), "static_wi8_ai16"))
    exports_before, manifest_before = tree(run_dir / "exports"), (run_dir / "manifest.json").read_bytes()
    with pytest.raises(ParityError, match="static|int16|runtime could not run"):
        export_run(run_dir, format="tflite", quantize="int8")
    assert tree(run_dir / "exports") == exports_before
    assert (run_dir / "manifest.json").read_bytes() == manifest_before


def _broken_fp16(model):
    """A 'recipe' that loads and runs but makes wrong images: fp16 weights, one of them scaled."""
    from onnx import numpy_helper

    out = real_fp16_weights(model)
    for i, init in enumerate(out.graph.initializer):
        arr = numpy_helper.to_array(init)
        if arr.ndim == 4:  # the first convolution's weight
            out.graph.initializer[i].CopyFrom(numpy_helper.from_array((arr * 1.5).astype(arr.dtype), init.name))
            break
    return out


@pytest.mark.onnx
def test_wrong_images_raise_parity_error_with_numbers(run_dir, monkeypatch):
    _needs("onnx")
    from edgegan.export import onnx_export

    monkeypatch.setattr(onnx_export, "fp16_weights", _broken_fp16)
    manifest_before = (run_dir / "manifest.json").read_bytes()
    target = run_dir / "exports" / "student-onnx-fp16.onnx"
    file_before = target.read_bytes() if target.exists() else None
    with pytest.raises(ParityError) as e:
        export_run(run_dir, format="onnx", quantize="fp16")
    msg = str(e.value)
    assert "student-onnx-fp16.onnx" in msg and "max_abs" in msg and "psnr" in msg and "batch_1" in msg
    assert (run_dir / "manifest.json").read_bytes() == manifest_before
    assert (target.read_bytes() if target.exists() else None) == file_before  # an earlier good file survives
    from edgegan.safedir import LOCK_NAME  # the manifest's lock file (issue 25) stays, empty, by design

    assert not [p for p in tree(run_dir) if Path(p).name.startswith(".") and Path(p).name != LOCK_NAME]  # nor a temporary one


@pytest.mark.onnx
def test_allow_mismatch_keeps_the_file_marked_failed(run_dir, tmp_path, monkeypatch):
    _needs("onnx")
    from edgegan.export import onnx_export

    monkeypatch.setattr(onnx_export, "fp16_weights", _broken_fp16)
    out = tmp_path / "kept"
    entry = export_run(run_dir, format="onnx", quantize="fp16", out=out, allow_mismatch=True)
    assert (out / entry["file"]).is_file()
    par = entry["parity"]
    assert par["passed"] is False and par["failures"] and par["psnr_db"] < 50
    assert json.loads((out / "manifest.json").read_text())["exports"][0]["parity"]["passed"] is False


# ------------------------------------------------------------------------------------ the goal

@pytest.mark.slow
@pytest.mark.onnx
@pytest.mark.tflite
def test_d2_student_to_onnx_and_tflite_int8(student, tmp_path):
    """The deliverable of the export goal; its time (goal <= 15 s) is measured by bench/scripts/bench_export.py
    and recorded in bench/results/export.md, never asserted here: it depends on the machine's load."""
    _needs("onnx")
    _needs("tflite")
    run = make_run(tmp_path / "goal", student, {"d": 2})
    a = export_run(run, format="onnx")
    b = export_run(run, format="tflite", quantize="int8", batch=[64])
    assert a["parity"]["passed"] and b["parity"]["passed"]
    assert [(e["format"], e["precision"]) for e in read_manifest(run)["exports"]] == [("onnx", "fp32"), ("tflite", "int8")]


# ------------------------------------------------------------------------------------- onnxsim

@pytest.mark.onnx
def test_onnxsim_runs_on_every_onnx_export_and_is_recorded(run_dir):
    pytest.importorskip("onnxsim")  # in the export extra: `make install` has it
    from importlib import metadata

    entry = export_run(run_dir, format="onnx", quantize="fp16")
    sim = entry["onnxsim"]
    assert sim["version"] == metadata.version("onnxsim") == entry["versions"]["onnxsim"]
    assert sim["status"] in ("applied", "no-change"), sim
    assert sim["nodes_before"] >= sim["nodes_after"] >= 1
    assert sim["applied"] == (sim["status"] == "applied") == (sim["nodes_after"] < sim["nodes_before"])
    m = read_manifest(run_dir)
    assert [e["onnxsim"] for e in m["exports"] if e["format"] == "onnx" and e["precision"] == "fp16"] == [sim]


@pytest.mark.onnx
@pytest.mark.parametrize("failure", ["raises", "check-fails"])
def test_onnxsim_failure_is_recorded_and_the_exporters_graph_kept(tmp_path, student, monkeypatch, failure):
    onnxsim = pytest.importorskip("onnxsim")

    def broken(model, **kw):
        if failure == "raises":
            raise RuntimeError("simplifier exploded")
        return model, False

    monkeypatch.setattr(onnxsim, "simplify", broken)
    entry = export_module(student, latent_dim=100, out_dir=tmp_path, stem="s", format="onnx")
    sim = entry["onnxsim"]
    assert sim["status"] == ("failed" if failure == "raises" else "check-failed") and sim["applied"] is False
    assert ("simplifier exploded" in sim["error"]) == (failure == "raises") and sim["error"]
    assert sim["nodes_after"] == sim["nodes_before"] and entry["parity"]["passed"] is True
