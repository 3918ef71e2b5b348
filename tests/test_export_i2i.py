"""Issue 21, the file side: an image-to-image student exported to ONNX and TFLite (fp32, int8) takes one
input, images (ONNX: NCHW, any height and width that are multiples of the run's ``multiple``; TFLite:
NHWC at the one --input-size), carries its ``input`` contract, and is parity-checked and int8-calibrated
on the task's inputs made from a real dataset's images; the runtime's ``translate`` turns uint8 pixels
into uint8 pixels equal to the PyTorch model's within the precision's limits; bad options and bad
images are one line (nothing written) or one typed error.

The runs and files are session fixtures (tests/conftest.py: ``i2i_run``, ``i2i_export``, and the
colorisation twins), shared with tests/runtime/test_runtime_images.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgegan.app.cli import main
from edgegan.checkpoint import load_run
from edgegan.export import parity
from edgegan.export.formats import FORMATS
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
CONFIG, OUTPUT = 2, 9  # edgegan's exit codes (edgegan/errors.py)


def sr_inputs(n: int = 24, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (n, 16, 16, 3) sr2x inputs, the same as float (n, 3, 16, 16) in [-1, 1]): CIFAR-10 test images
    downscaled by the task, rounded to 8-bit pixels as a camera gives them."""
    from edgegan.data import load_dataset
    from edgegan.tasks import get_task

    y = torch.from_numpy(load_dataset("cifar10", split="test", image_size=size, limit=n).images)
    x = get_task("sr2x").input(y).numpy()
    u8 = np.clip(np.rint((x + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(u8), np.ascontiguousarray(u8.transpose(0, 3, 1, 2)).astype(np.float32) / 127.5 - 1


def torch_images(run: Path, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return load_run(run).generator(torch.from_numpy(x)).numpy()


def file_io(path: Path) -> tuple[list, list]:
    """(input shape, output shape) of a file, read with onnx / LiteRT (not the runtime); None: dynamic."""
    if path.suffix == ".onnx":
        import onnx

        g = onnx.load(str(path)).graph
        dims = [[d.dim_value or None for d in t.type.tensor_type.shape.dim] for t in (g.input[0], g.output[0])]
        return dims[0], dims[1]
    from ai_edge_litert.interpreter import Interpreter

    r = Interpreter(model_path=str(path)).get_signature_runner("batch_1")
    (i,), (o,) = r.get_input_details().values(), r.get_output_details().values()
    return i["shape"].tolist(), o["shape"].tolist()


# ----------------------------------------------------------------------------------- the files

@pytest.mark.parametrize("fmt,quantize", FILES)
def test_file_takes_images_and_carries_the_input_contract(i2i_run, i2i_export, fmt, quantize):
    entry = i2i_export(fmt, quantize)
    path = i2i_run / entry["file"]
    layout = {"onnx": "NCHW", "tflite": "NHWC"}[fmt]
    ins, outs = file_io(path)
    if fmt == "onnx":  # any batch, height and width
        assert (ins, outs) == ([None, 3, None, None], [None, 3, None, None])
        assert entry["names"] == {"input": "image", "output": "images"} and entry["dynamic_size"] is True
    else:  # NHWC at the training size, batch 1 here
        assert (ins, outs) == ([1, 16, 16, 3], [1, 32, 32, 3])
    c = file_contract(path)
    assert "latent" not in c and "label" not in c
    shape = [None, 3, None, None] if fmt == "onnx" else [None, 16, 16, 3]
    assert c["input"] == {"kind": "image", "layout": layout, "shape": shape, "dtype": "float32", "range": [-1.0, 1.0],
                          "channels": 3, "size": [16, 16], "multiple": 1, "task": "sr2x",
                          "pixels": {"name": "u8-div-127.5-minus-1", "version": 1, "rule": c["input"]["pixels"]["rule"]}}
    out_shape = [None, 3, None, None] if fmt == "onnx" else [None, 32, 32, 3]
    assert c["output"] == {"shape": out_shape, "layout": layout, "dtype": "float32", "range": [-1.0, 1.0],
                           "channels": 3, "scale": 2}
    assert c["batch_sizes"] == (None if fmt == "onnx" else [1, 64])
    # The manifest entry says the same, and where its inputs came from.
    assert entry["input"]["kind"] == "image" and entry["input"]["shape"] == shape
    assert entry["input"]["dataset"] == "cifar10" and entry["output"]["scale"] == 2
    # The runtime reads it as an image file.
    with rt.load(path) as g:
        assert g.input_kind == "image" and g.latent_dim is None
        assert g.input_shape == ((3, None, None) if fmt == "onnx" else (3, 16, 16))
        assert (g.image.layout, g.image.scale, g.image.multiple, g.image.task) == (layout, 2, 1, "sr2x")


@pytest.mark.parametrize("fmt,quantize", FILES)
def test_parity_ran_on_real_inputs_and_passed(i2i_export, fmt, quantize):
    entry = i2i_export(fmt, quantize)
    par = entry["parity"]
    assert par["passed"] is True, par.get("failures")
    assert par["inputs"]["dataset"] == "cifar10" and par["inputs"]["split"] == "test"
    assert par["inputs"]["task"] == "sr2x" and par["inputs"]["size"] == [16, 16]
    runs = ["all", "batch_1", "size_17x18"] if fmt == "onnx" else ["all", "batch_1", "batch_64"]
    assert list(par["runs"]) == runs
    if fmt == "onnx":  # the second size, its images resized from 32x32 to 34x36
        assert par["inputs"]["second"]["size"] == [17, 18] and par["inputs"]["second"]["resized"]["to"] == [34, 36]
    thresholds = FORMATS.get(fmt).precision(quantize).thresholds
    for name, stats in par["runs"].items():
        assert parity.failures(stats, thresholds) == [], name
    if quantize == "int8":  # calibrated on the train split's task inputs, not noise
        cal = entry["calibration"]
        assert cal["distribution"] == "task inputs" and cal["count"] == 256
        assert cal["inputs"]["split"] == "train" and cal["inputs"]["task"] == "sr2x" and cal["inputs"]["seed"] == 1
    if (fmt, quantize) == ("onnx", "int8"):
        assert par["kernels"]["max_abs"] <= parity.KERNEL_MAX_ABS


@pytest.mark.onnx
def test_onnx_ops_and_tflite_ops(i2i_run, i2i_export):
    """The ops each file holds: no transposes around the TFLite file's NHWC graph, nearest resizing and
    depthwise convolutions as such (folded BatchNorm; the student's ReLU6, ONNX's Clip(0, 6), fused into the
    TFLite convolutions and sums)."""
    import onnx

    from edgegan.export.litert_layers import ops_of

    ops = {n.op_type for n in onnx.load(str(i2i_run / i2i_export("onnx")["file"])).graph.node}
    assert ops == {"Conv", "Clip", "Add", "Resize", "Tanh"}
    pytest.importorskip("ai_edge_quantizer")
    for quantize in ("none", "int8"):
        data = (i2i_run / i2i_export("tflite", quantize)["file"]).read_bytes()
        got = {o.op for o in ops_of(data, "batch_1")}
        assert got == {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESIZE_NEAREST_NEIGHBOR", "TANH"}, got


# -------------------------------------------------------------------------- the runtime round trip

@pytest.mark.parametrize("fmt,quantize", FILES)
def test_translate_uint8_round_trip_matches_torch(shared_data, i2i_run, i2i_export, fmt, quantize):
    u8, x = sr_inputs()
    want = torch_images(i2i_run, x)
    with rt.load(i2i_run / i2i_export(fmt, quantize)["file"]) as g:
        got = g.translate(u8)
        floats = g.translate_array(x)
        one = g.translate(u8[3])
    assert got.dtype == np.uint8 and got.shape == (24, 32, 32, 3) and one.shape == (32, 32, 3)
    assert np.array_equal(one, got[3])  # image i does not depend on the batch around it
    # translate is translate_array on the same floats, then the contract's pixel rule, exactly
    assert np.array_equal(got, rt.to_pixels(floats))
    # ... and translate_array is the PyTorch model within the precision's limits
    thresholds = FORMATS.get(fmt).precision(quantize).thresholds
    stats = parity.compare(floats, want)
    assert parity.failures(stats, thresholds) == [], stats
    diff = np.abs(got.astype(int) - rt.to_pixels(want).astype(int))
    if quantize == "none":  # float rounding moves a pixel across a level boundary at most
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    else:
        assert (diff > 2).mean() <= thresholds.changed_pixels


@pytest.mark.onnx
def test_onnx_takes_other_sizes_and_tflite_refuses_them(shared_data, i2i_run, i2i_export):
    _, x = sr_inputs(4, size=48)  # 24x24 inputs, a size neither file was checked at
    want = torch_images(i2i_run, x)
    with rt.load(i2i_run / i2i_export("onnx")["file"]) as g:
        got = g.translate_array(x)
    assert got.shape == (4, 3, 48, 48) and parity.compare(got, want)["max_abs"] <= 1e-4
    pytest.importorskip("ai_edge_litert")
    with rt.load(i2i_run / i2i_export("tflite")["file"]) as g:
        with pytest.raises(rt.ImageError, match=r"takes 16x16 images .* got 24x24 .*--input-size 24x24"):
            g.translate_array(x)


@pytest.mark.onnx
def test_colorize_takes_grey_and_multiples_of_four(shared_data, i2i_colorize_run, i2i_colorize_export):
    entry = i2i_colorize_export("onnx")
    assert entry["parity"]["passed"] and list(entry["parity"]["runs"]) == ["all", "batch_1", "size_36x40"]
    c = file_contract(i2i_colorize_run / entry["file"])
    assert (c["input"]["channels"], c["input"]["multiple"], c["input"]["task"], c["output"]["channels"]) == \
        (1, 4, "colorize", 3)
    grey = np.random.default_rng(0).integers(0, 256, (36, 44), dtype=np.uint8)
    with rt.load(i2i_colorize_run / entry["file"]) as g:
        out = g.translate(grey)
        assert out.shape == (36, 44, 3)
        assert np.array_equal(g.translate(grey[:, :, None]), out)  # (H, W) and (H, W, 1) are the same image
        with pytest.raises(rt.ImageError, match=r"multiples of 4; got 37x44: crop or pad it \(e.g. 36x44\)"):
            g.translate(np.zeros((37, 44), np.uint8))
        with pytest.raises(rt.ImageError, match=r"1 channel \(grey\); got 3; convert it to grey"):
            g.translate(np.zeros((36, 44, 3), np.uint8))


# ------------------------------------------------------------------------------------ bad inputs

@pytest.mark.onnx
def test_bad_images_are_typed_one_line_errors(shared_data, i2i_run, i2i_export):
    u8, x = sr_inputs(2)
    with rt.load(i2i_run / i2i_export("onnx")["file"]) as g:
        cases = [
            (lambda: g.translate(x), rt.ImageError, "must be uint8 pixels .* use translate_array"),
            (lambda: g.translate(u8.astype(np.int16)), rt.ImageError, "must be uint8 pixels"),
            (lambda: g.translate_array(u8), rt.ImageError, "must be float images .* use translate"),
            (lambda: g.translate(u8[..., :2]), rt.ImageError, r"3 channels \(RGB\); got 2"),
            (lambda: g.translate_array(x[:, :1]), rt.ImageError, r"3 channels \(RGB\); got 1"),
            (lambda: g.translate(u8[None]), rt.ImageError, "must be .* got shape"),
            (lambda: g.translate_array(x[0]), rt.ImageError, "must be float images .* got shape"),
            (lambda: g.translate(np.zeros((0, 7, 3), np.uint8)), rt.ImageError, "got 0x7"),
            (lambda: g.generate(2), rt.InputKindError, r"translates images .* not generate"),
            (lambda: g.generate_from(np.zeros((1, 100), np.float32)), rt.InputKindError, "not generate_from"),
        ]
        for call, error, pattern in cases:
            with pytest.raises(error, match=pattern) as e:
                call()
            assert "\n" not in str(e.value) and isinstance(e.value, rt.InputError)


def cli(capsys, *args) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["--threads", "1", *map(str, args)])
    return code, capsys.readouterr().err.strip().splitlines()


def _copy(run: Path, dst: Path, edit=None) -> Path:
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("exports"))
    m = json.loads((dst / "manifest.json").read_text())
    m.pop("exports", None)
    if edit:
        edit(m)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def _latent_run(tmp: Path) -> Path:
    from edgegan.testing import make_run, random_bn_generator

    return make_run(tmp / "latent", random_bn_generator(2, 0), {"d": 2})


BAD_EXPORTS = {
    # name: (run maker, options, exit code, text in the one line)
    "no dataset known": (lambda r, t: _copy(r, t / "r"), [], CONFIG, "records no dataset.* pass --dataset NAME"),
    "--input-size of sides not multiples": (None, ["--input-size", "18x20", "--dataset", "cifar10"], CONFIG,
                                            "multiples of 4.* e.g. 16x20"),
    "--input-size malformed": (None, ["--input-size", "16x", "--dataset", "cifar10"], CONFIG,
                               "--input-size must be HxW"),
    "--data-dir that does not exist": (None, ["--dataset", "cifar10", "--data-dir", "/nonexistent"], 3,
                                       "/nonexistent: data directory for 'cifar10' does not exist"),
    "a dataset of another channel count": (None, ["--dataset", "mnist"], CONFIG,
                                           "mnist has 1-channel images; this generator makes 3-channel"),
    "--input-size on a latent run": (lambda r, t: _latent_run(t), ["--input-size", "16x16"], CONFIG,
                                     "--input-size applies to image-to-image runs"),
    "--dataset on a latent run": (lambda r, t: _latent_run(t), ["--dataset", "cifar10"], CONFIG,
                                  "--dataset applies to image-to-image runs"),
}


@pytest.mark.onnx
@pytest.mark.parametrize("name", list(BAD_EXPORTS))
def test_bad_export_options_are_one_line_and_write_nothing(shared_data, i2i_colorize_run, tmp_path, capsys, name):
    make, options, code, pattern = BAD_EXPORTS[name]
    run = make(i2i_colorize_run, tmp_path) if make else _copy(i2i_colorize_run, tmp_path / "r")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    got, lines = cli(capsys, "export", run, "--format", "onnx", *options)
    assert got == code and len(lines) == 1, (got, lines)
    import re

    assert re.search(pattern, lines[0]), lines
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.onnx
def test_the_run_s_own_dataset_is_the_default(shared_data, i2i_colorize_run, tmp_path, capsys):
    """A run that records its dataset (a teacher's ``dataset``, a student's too) is exported without --dataset
    (--data-dir alone says where its files are here)."""
    run = _copy(i2i_colorize_run, tmp_path / "r",
                lambda m: m.update(dataset={"name": "cifar10", "count": 8333, "split": "train"}))
    got, lines = cli(capsys, "export", run, "--format", "onnx", "--data-dir", shared_data / "cifar10")
    assert got == 0, lines
    entry = json.loads((run / "manifest.json").read_text())["exports"][0]
    assert entry["parity"]["inputs"]["dataset"] == "cifar10" and entry["input"]["dataset"] == "cifar10"


@pytest.mark.tflite
def test_tflite_input_size_fixes_the_file_at_that_size(shared_data, i2i_run, tmp_path, capsys):
    pytest.importorskip("litert_torch")
    run = _copy(i2i_run, tmp_path / "r")
    got, lines = cli(capsys, "export", run, "--format", "tflite", "--input-size", "24x20", "--dataset", "cifar10")
    assert got == 0, lines
    entry = json.loads((run / "manifest.json").read_text())["exports"][0]
    assert file_io(run / entry["file"]) == ([1, 24, 20, 3], [1, 48, 40, 3])
    assert entry["parity"]["passed"] and entry["parity"]["inputs"]["resized"]["to"] == [48, 40]
    with rt.load(run / entry["file"]) as g:
        assert g.input_shape == (3, 24, 20) and g.output_shape == (3, 48, 40)
