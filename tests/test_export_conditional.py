"""Issue 20, the file side: a conditional (class-label) student exported to ONNX and TFLite (fp32, int8)
has two inputs (z, one-hot label) and a ``label`` entry in its contract; every class is parity-checked;
the int8 label path is exact (and a file where it is not is refused, leaving nothing); unconditional
exports keep their single input and their manifest entry.

The files are the session fixture ``conditional_export`` (tests/conftest.py), shared with
tests/runtime/test_conditional.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgegan.checkpoint import load_run
from edgegan.errors import ExportError
from edgegan.export import FORMATS, export_run, labels, parity
from edgegan.export.prepare import LatentToImage, prepare_for_export
from edgegan.manifest import read_manifest
from tests.conftest import CLASS_NAMES
from tests.test_export_formats import file_contract

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_quantizer.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:onnxruntime.*"),
]

rt = pytest.importorskip("edgegan_runtime")

FILES = [pytest.param("onnx", "none", marks=pytest.mark.onnx), pytest.param("onnx", "int8", marks=pytest.mark.onnx),
         pytest.param("tflite", "none", marks=pytest.mark.tflite),
         pytest.param("tflite", "int8", marks=pytest.mark.tflite)]
LABEL_ENTRY = {"classes": 10, "names": CLASS_NAMES, "form": "onehot", "dtype": "float32", "input": 1}


def torch_images(g: torch.nn.Module, z: np.ndarray, classes) -> np.ndarray:
    with torch.no_grad():
        return g(torch.from_numpy(z), torch.as_tensor(np.asarray(classes), dtype=torch.long)).numpy()


def file_inputs(path) -> list[tuple[str, list]]:
    """(name, shape) of a file's inputs in order, read with onnx / LiteRT (not the runtime)."""
    if path.suffix == ".onnx":
        import onnx

        m = onnx.load(str(path))
        return [(i.name, [d.dim_value or None for d in i.type.tensor_type.shape.dim]) for i in m.graph.input]
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    sig = interp.get_signature_list()["batch_1"]["inputs"]
    details = interp.get_signature_runner("batch_1").get_input_details()
    return [(name, details[name]["shape"].tolist()) for name in sig]


@pytest.mark.parametrize("fmt,quantize", FILES)
def test_conditional_file_has_two_inputs_and_a_label_contract(conditional_run, conditional_export, fmt, quantize):
    entry = conditional_export(fmt, quantize)
    path = conditional_run / entry["file"]
    names = {"onnx": ["z", "label"], "tflite": ["args_0", "args_1"]}[fmt]
    batch = None if fmt == "onnx" else 1
    assert file_inputs(path) == [(names[0], [batch, 100]), (names[1], [batch, 10])]
    c = file_contract(path)
    assert c["label"] == LABEL_ENTRY and c["latent"]["dim"] == 100
    assert entry["input"] == {"shape": [None, 100], "dtype": "float32"}
    assert entry["classes"] == {"count": 10, "names": CLASS_NAMES}
    lab = entry["label"]
    assert {k: lab[k] for k in ("shape", "dtype", "form", "input", "name")} == \
        {"shape": [None, 10], "dtype": "float32", "form": "onehot", "input": 1, "name": names[1]}
    assert lab["path"]["exact"] is True and lab["path"]["into"]  # the one-hot reaches a convolution of its own
    assert entry["rewrites"]["label_layer_split"] == 1
    if fmt == "onnx":
        assert entry["names"] == {"input": "z", "label": "label", "output": "images"}
    # Parity per label: all 10 classes, each on the 64 parity latents, and each fixed batch.
    par = entry["parity"]
    assert par["passed"] is True
    assert par["labels"] == {"classes": 10, "checked": list(range(10)), "rule": "every class"}
    want = [f"label_{c}" for c in range(10)] + (["batch_1"] if fmt == "onnx" else ["batch_1", "batch_64"])
    assert list(par["runs"]) == want
    if entry["calibration"] is not None:
        assert "uniform over the 10 classes" in entry["calibration"]["labels"]
    assert entry in read_manifest(conditional_run)["exports"]


@pytest.mark.parametrize("fmt,quantize", FILES)
def test_runtime_images_equal_the_torch_student_per_label(conditional_run, conditional_export, fmt, quantize):
    """Independently of the exporter's own check (which ran every class): other latents, three classes and a
    mix of all ten, loaded through the manifest as an app does."""
    entry = conditional_export(fmt, quantize)
    prec = FORMATS.get(fmt).precision(quantize)
    g = load_run(conditional_run).generator
    z = rt.latent(65, 100, seed=123)  # a full batch of 64 and a padded remainder where there are signatures
    with rt.load(conditional_run, export=f"{fmt}:{entry['precision']}") as gen:
        assert gen.num_classes == 10 and gen.class_names == CLASS_NAMES
        for c in (0, 3, 9):
            got, want = gen.generate_from(z, labels=[c] * 65), torch_images(g, z, [c] * 65)
            assert parity.failures(parity.compare(got, want), prec.thresholds, values=got.size) == [], c
        mixed = np.arange(65) % 10
        got, want = gen.generate_from(z, labels=mixed), torch_images(g, z, mixed)
        assert parity.failures(parity.compare(got, want), prec.thresholds, values=got.size) == []


@pytest.mark.parametrize("fmt,quantize", FILES)
def test_different_labels_give_different_images_for_the_same_z(conditional_run, conditional_export, fmt, quantize):
    entry = conditional_export(fmt, quantize)
    g = load_run(conditional_run).generator
    z = rt.latent(16, 100, seed=5)
    with rt.load(conditional_run, export=f"{fmt}:{entry['precision']}") as gen:
        got = np.stack([gen.generate_from(z, labels=[c] * 16) for c in range(10)])
    want = np.stack([torch_images(g, z, [c] * 16) for c in range(10)])
    # Each class's images are nearest to the student's own images of that class, among the 10 classes.
    err = ((got[:, None] - want[None]) ** 2).mean(axis=(2, 3, 4, 5))
    assert (err.argmin(axis=1) == np.arange(10)).all(), err
    apart = np.abs(got[:, None] - got[None]).mean(axis=(2, 3, 4, 5))[~np.eye(10, dtype=bool)]
    assert apart.min() > 0.005  # ~0.02 measured: the classes are not one image


@pytest.mark.tflite
def test_tflite_int8_label_input_holds_0_and_1_exactly(conditional_run, conditional_export):
    """ai-edge-quantizer quantizes the inputs of a static int8 file: the one-hot input gets scale 1/255 and zero
    point -128 (calibrated on one-hots), so 0 and 1 are its levels -128 and 127, and the label reaches its
    convolution through RESHAPE and PAD only, at that quantization (no requantization on the way)."""
    from ai_edge_litert.interpreter import Interpreter

    entry = conditional_export("tflite", "int8")
    q = entry["quantization"]["label"]
    assert q["dtype"] == "int8" and q["zero_point"] == -128 and q["scale"] == pytest.approx(1 / 255)
    assert labels.exact(q["scale"], q["zero_point"], "int8")
    scale = np.float32(q["scale"])
    assert np.float32(127 - -128) * scale == np.float32(1.0)  # level 127 is 1.0, level -128 is 0.0
    path = entry["label"]["path"]
    assert path["exact"] and path["quantized"] == [q] and path["into"] == ["CONV_2D"]
    assert set(path["through"]) <= {"RESHAPE", "PAD"}
    # The file says so itself, in every signature.
    interp = Interpreter(model_path=str(conditional_run / entry["file"]))
    for key in ("batch_1", "batch_64"):
        d = interp.get_signature_runner(key).get_input_details()["args_1"]
        assert np.dtype(d["dtype"]) == np.int8 and d["quantization"] == (pytest.approx(1 / 255), -128)
    # What the runtime feeds: the one-hot quantized with those parameters is exactly levels -128 and 127.
    from edgegan_runtime.backend import _dequantize, _quantize
    from edgegan_runtime.tflite_check import TensorSpec

    spec = TensorSpec(0, (10, 10), (10, 10), "int8", q["scale"], q["zero_point"])
    onehot = rt.one_hot(np.arange(10), 10)
    levels = _quantize(onehot, spec)
    assert set(np.unique(levels).tolist()) == {-128, 127}
    assert np.array_equal(_dequantize(levels, spec), onehot)


def test_the_worst_layer_of_a_conditional_int8_file_is_not_the_exact_label_path(conditional_export):
    """The label's layer, fed an exactly held one-hot, would "lose" the whole SNR cap to its own rounding; it is
    reported (exact_input) but never named the worst layer, which is the one --keep-float should chase."""
    entry = conditional_export("tflite", "int8")
    rep = entry["layers"]
    exact = [r for r in rep["layers"] if r["exact_input"]]
    assert any(r["op"] == "CONV_2D" and r["drop_db"] > 100 for r in exact)  # what the rule is there for
    assert rep["worst_index"] not in {r["index"] for r in exact} and rep["worst_drop_db"] < 100
    # --keep-float auto chases the same layers: keeping the label's conv in float would change nothing
    # (it once chose "label" for a conditional student, and its int8 file came out bit for bit the same).
    from edgegan.export import quant_report

    chosen = quant_report.most_sensitive(rep, 3)
    assert chosen and not set(chosen) & {r["layer"] for r in exact}


@pytest.mark.onnx
def test_onnx_int8_label_is_quantized_exactly(conditional_export):
    """onnxruntime's QDQ quantizer keeps the file's inputs float and quantizes the one-hot before its
    convolution: uint8, scale 1/255, zero point 0 (0 and 1 are levels 0 and 255)."""
    entry = conditional_export("onnx", "int8")
    path = entry["label"]["path"]
    assert path["exact"] and path["into"] == ["ConvTranspose"]
    (q,) = path["quantized"]
    assert q["dtype"] == "uint8" and q["zero_point"] == 0 and q["scale"] == pytest.approx(1 / 255)
    assert np.float32(255) * np.float32(q["scale"]) == np.float32(1.0)


def test_exactness_rule():
    assert labels.exact(np.float32(1 / 255), -128, "int8") and labels.exact(np.float32(1 / 255), 0, "uint8")
    assert labels.exact(0.5, 0, "int8") and labels.exact(1 / 127, 0, "int8")
    assert not labels.exact(0.028299326, -11, "int8")  # z's scale: 1 is 35 steps = 0.9905
    assert not labels.exact(1 / 100, 100, "int8")  # 1 is level 200, past 127
    assert not labels.exact(1 / 255, 300, "uint8") and not labels.exact(0.0, 0, "int8")


class _Concatenated(torch.nn.Module):
    """The conditional file as the generator computes it (one-hot concatenated to z before the first layer),
    without the exporter's split: what the exactness check must refuse in int8."""

    def __init__(self, generator: torch.nn.Module, latent_dim: int):
        super().__init__()
        self.generator = generator
        self.num_classes = generator.num_classes

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.generator(z, label).float()


@pytest.mark.tflite
def test_a_file_that_requantizes_the_label_is_refused_and_nothing_is_written(conditional_run, monkeypatch):
    """Without the split, ai-edge-quantizer requantizes the one-hot to z's scale before the concatenation
    (1 becomes ~0.99): the export fails with the numbers, and leaves no file and no manifest entry."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    monkeypatch.setattr(labels, "LabelledToImage", _Concatenated)
    before = read_manifest(conditional_run)
    files = sorted(p.name for p in (conditional_run / "exports").iterdir()) \
        if (conditional_run / "exports").exists() else []
    with pytest.raises(ExportError, match=r"requantized to int8 scale .* where 1 becomes 0\.9.*not exact"):
        export_run(conditional_run, format="tflite", quantize="int8", batch=[1])
    assert read_manifest(conditional_run) == before
    now = sorted(p.name for p in (conditional_run / "exports").iterdir()) \
        if (conditional_run / "exports").exists() else []
    assert now == files


def test_prepared_module_splits_the_first_layer_exactly():
    from edgegan.testing import random_bn_generator

    g = random_bn_generator(2, 0, num_classes=10)
    prepared, done = prepare_for_export(g, latent_dim=100)
    assert isinstance(prepared, labels.LabelledToImage) and prepared.num_classes == 10
    assert done["label_layer_split"] == 1 and g.num_classes == 10  # the original is untouched
    z, classes = torch.randn(7, 100), torch.tensor([0, 1, 2, 3, 9, 9, 5])
    with torch.no_grad():
        got = prepared(z, torch.nn.functional.one_hot(classes, 10).float())
        want = g(z, classes)
    assert torch.allclose(got, want, atol=1e-5)
    # An unconditional generator is wrapped as before: one input, nothing about labels.
    plain, done = prepare_for_export(random_bn_generator(2, 0))
    assert type(plain) is LatentToImage and "label_layer_split" not in done
    assert len(labels.sample_inputs(plain, 2, 100)) == 1


@pytest.mark.onnx
def test_unconditional_export_keeps_one_input_and_no_label(tmp_path):
    """An unconditional file and its entry carry nothing of issue 20. (Byte-for-byte: the same weights exported
    before and after issue 20 gave the same sha256 for ONNX fp32/fp16/int8 and TFLite fp32/fp16/int8.)"""
    from edgegan.testing import make_run, random_bn_generator

    run = make_run(tmp_path / "plain", random_bn_generator(2, 0), {"d": 2})
    entry = export_run(run, format="onnx")
    path = run / entry["file"]
    assert file_inputs(path) == [("z", [None, 100])]
    assert "label" not in file_contract(path) and "label" not in entry and "classes" not in entry
    assert entry["names"] == {"input": "z", "output": "images"} and "labels" not in entry["parity"]
    assert list(entry["parity"]["runs"]) == ["all", "batch_1"] and "label_layer_split" not in entry["rewrites"]


def test_auto_keep_float_counts_the_split_first_layer_s_weights():
    """The report names a conditional file's split first layer "z" and "label" (it runs outside the generator's
    module calls); --keep-float auto must see their weights, or it keeps the z half, most of a small student's
    bytes, in float (it did: 119,656 bytes against int8's 43,368)."""
    from edgegan.export import quant_report
    from edgegan.export.formats import AUTO_KEEP_BUDGET
    from edgegan.export.labels import LabelledToImage
    from edgegan.testing import tiny_conditional_student

    module = LabelledToImage(tiny_conditional_student(steps=1), 100)
    sizes = quant_report.weight_bytes(module)
    assert sizes["z"] == 4 * 100 * 16 * 16 and sizes["label"] == 4 * 10 * 16 * 16  # ConvT(100 or 10 -> 16 channels, 4x4)
    rows = [{"layer": "z", "modules": ["z"], "drop_db": 5.0, "exact_input": False},
            {"layer": "net.13", "modules": ["net.13"], "drop_db": 4.0, "exact_input": False}]
    chosen = quant_report.most_sensitive({"layers": rows}, 1, weight_bytes=sizes, budget=AUTO_KEEP_BUDGET)
    assert chosen == ["net.13"]
