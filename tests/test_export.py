"""edgegan.export without the converters: the format table, option validation, the torch rewrites,
and failures that must leave nothing behind. The round trips are in test_export_formats.py."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from edgegan.errors import CheckpointError, ConfigError, UnknownNameError
from edgegan.export import FORMATS, ExportOptions, export_run, format_table
from edgegan.export.prepare import CroppedConvTranspose2d, convt_is_native, fold_batchnorm, prepare_for_export
from edgegan.testing import make_run, random_bn_generator, tiny_student

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*")


# ------------------------------------------------------------------------------ helpers (shared)

def train_student(d: int = 2, steps: int = 40, seed: int = 0, latent_dim: int = 100) -> nn.Module:
    return tiny_student(d, steps, seed, latent_dim)


def random_bn_student(d: int = 2, seed: int = 0) -> nn.Module:
    return random_bn_generator(d, seed)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


# ------------------------------------------------------------------------------- format table

def test_format_table_lists_every_format_and_option():
    table = format_table()
    for name in FORMATS:
        spec = FORMATS.get(name)
        assert name in table and spec.extension in table
        for q in spec.quantize_names:
            assert q in table
    assert "not faster" in table  # the int8 ONNX caveat is documented where users look


def test_formats_registry_shape():
    onnx, tfl = FORMATS.get("onnx"), FORMATS.get("tflite")
    assert onnx.quantize_names == ("none", "fp16", "int8") and not onnx.batch
    assert set(tfl.quantize_names) == {"none", "fp16", "dynamic-int8", "int8", "int16x8", "weight-int8"} and tfl.batch
    assert [p.name for p in tfl.precisions if p.static] == ["int8", "int16x8"]
    assert FORMATS.get("onnx").precision("none").thresholds.max_abs <= 1e-4
    assert FORMATS.get("tflite").precision("int8").thresholds.psnr_db >= 30


# ---------------------------------------------------------------------------------- validation

def test_unknown_format_suggests_closest():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'onnx'") as e:
        ExportOptions(format="onxx")
    assert "tflite" in str(e.value)  # lists the valid ones
    with pytest.raises(UnknownNameError, match=r"Did you mean 'tflite'"):
        ExportOptions(format="tfilte")


def test_quantize_not_accepted_by_format_is_an_error():
    with pytest.raises(ConfigError, match=r"'onnx' does not accept --quantize 'dynamic-int8'.*tflite accepts it"):
        ExportOptions(format="onnx", quantize="dynamic-int8")
    with pytest.raises(ConfigError, match=r"Did you mean 'fp16'"):
        ExportOptions(format="tflite", quantize="fp61")


def test_batch_is_rejected_for_a_dynamic_batch_format():
    with pytest.raises(ConfigError, match="does not accept --batch"):
        ExportOptions(format="onnx", batch=(1, 64))


@pytest.mark.parametrize("bad", [(0,), (-1, 2), (1.5,), ("x",), "1,a"])
def test_bad_batch_values(bad):
    with pytest.raises(ConfigError, match="--batch"):
        ExportOptions(format="tflite", batch=bad)


def test_batch_one_always_present_sorted_unique():
    assert ExportOptions(format="tflite", batch=(64, 8, 64)).batches == (1, 8, 64)
    assert ExportOptions(format="tflite").batches == (1,)
    assert ExportOptions(format="tflite", batch="64").batches == (1, 64)
    assert ExportOptions(format="onnx").batches is None


@pytest.mark.parametrize("fmt,q", [("onnx", "none"), ("onnx", "fp16"), ("tflite", "dynamic-int8"),
                                   ("tflite", "weight-int8"), ("tflite", "fp16")])
def test_calibration_samples_for_a_non_static_precision_is_an_error(fmt, q):
    with pytest.raises(ConfigError, match="only to static quantization"):
        ExportOptions(format=fmt, quantize=q, calibration_samples=512)
    assert ExportOptions(format=fmt, quantize=q).calibration_count is None


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_static_int8_calibration_guard(fmt):
    with pytest.raises(ConfigError, match=">= 256"):
        ExportOptions(format=fmt, quantize="int8", calibration_samples=128)
    assert ExportOptions(format=fmt, quantize="int8").calibration_count == 256
    assert ExportOptions(format=fmt, quantize="int8", calibration_samples=512).calibration_count == 512


def test_tflite_calibration_must_fill_whole_batches():
    with pytest.raises(ConfigError, match="multiple of 64"):
        ExportOptions(format="tflite", quantize="int8", calibration_samples=300)
    assert ExportOptions(format="onnx", quantize="int8", calibration_samples=300).calibration_count == 300


def test_importing_edgegan_export_is_cheap():
    code = "import sys, edgegan.export as e; e.format_table(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------ torch rewrites

def _randomise_bn(bn: nn.Module) -> nn.Module:
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.normal_()
    bn.bias.data.normal_()
    return bn.eval()


@pytest.mark.parametrize("layer,x", [
    (nn.ConvTranspose2d(4, 6, 4, 2, 1, bias=False), (3, 4, 5, 5)),
    (nn.ConvTranspose2d(4, 6, 3, 2, 1, groups=2), (3, 4, 5, 5)),
    (nn.Conv2d(4, 6, 3, 1, 1), (3, 4, 5, 5)),
    (nn.Linear(4, 6), (3, 4)),
])
def test_fold_batchnorm_is_exact(layer, x):
    torch.manual_seed(0)
    bn = _randomise_bn(nn.BatchNorm1d(6) if isinstance(layer, nn.Linear) else nn.BatchNorm2d(6))
    seq = nn.Sequential(layer, bn, nn.ReLU()).eval()
    inp = torch.randn(*x)
    want = seq(inp)
    assert fold_batchnorm(seq) == 1
    assert isinstance(seq[1], nn.Identity)
    torch.testing.assert_close(seq(inp), want, atol=1e-5, rtol=1e-5)


def test_prepare_folds_every_dcgan_batchnorm_and_keeps_the_original():
    g = random_bn_student()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    prepared, done = prepare_for_export(g)
    assert done == {"batchnorm_folded": 4, "batchnorm_unfolded": 0}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    z = torch.randn(8, 100)
    with torch.no_grad():
        torch.testing.assert_close(prepared(z), g(z), atol=1e-5, rtol=1e-4)
    for k, v in g.state_dict().items():  # the caller's module is untouched
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("k,s,p,op", [c for c in itertools.product((1, 2, 3, 4, 5), (1, 2, 3), (0, 1, 2), (0, 1, 2))
                                      if c[3] < c[1] and 2 * c[2] < c[0] + 2])
def test_cropped_convtranspose_equals_the_original(k, s, p, op):
    torch.manual_seed(k * 100 + s * 10 + p + op)
    conv = nn.ConvTranspose2d(4, 6, k, s, p, output_padding=op, groups=2)
    x = torch.randn(2, 4, 5, 6)
    try:
        want = conv(x)
    except RuntimeError:
        pytest.skip("not a valid ConvTranspose2d configuration")
    got = CroppedConvTranspose2d(conv)(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_convt_native_predicate_matches_what_litert_accepts():
    # Measured with litert-torch 0.10: these legalise (TFLite VALID or SAME padding) ...
    for k, s, p in [(4, 2, 1), (4, 1, 0), (3, 1, 1), (3, 2, 0), (2, 2, 0)]:
        assert convt_is_native(nn.ConvTranspose2d(2, 2, k, s, p))
    # ... k3/s2/p1/op1 and k5/s2/p2/op1 do not; anything neither VALID nor SAME is rewritten.
    for k, s, p, op in [(3, 2, 1, 1), (5, 2, 2, 1), (3, 2, 1, 0), (4, 2, 0, 1)]:
        assert not convt_is_native(nn.ConvTranspose2d(2, 2, k, s, p, output_padding=op))


# --------------------------------------------------------------- failures that write nothing

def test_missing_run_is_a_checkpoint_error_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match="no such run"):
        export_run(tmp_path / "nope", format="onnx", out=out)
    assert not out.exists() and tree(tmp_path) == []


@pytest.mark.parametrize("damage", ["manifest-garbage", "weights-truncated", "weights-missing", "manifest-no-model"])
def test_corrupt_run_is_a_checkpoint_error_and_writes_nothing(tmp_path, damage):
    run = make_run(tmp_path / "run", random_bn_student(), {"d": 2})
    if damage == "manifest-garbage":
        (run / "manifest.json").write_text("{not json")
    elif damage == "manifest-no-model":
        (run / "manifest.json").write_text(json.dumps({"schema": "edgegan.manifest/1"}))
    elif damage == "weights-truncated":
        w = run / "generator.safetensors"
        w.write_bytes(w.read_bytes()[:100])
    else:
        (run / "generator.safetensors").unlink()
    before = tree(tmp_path)
    for out in (None, tmp_path / "out"):
        with pytest.raises(CheckpointError):
            export_run(run, format="tflite", quantize="int8", out=out)
    assert tree(tmp_path) == before


def test_invalid_options_fail_before_the_run_is_even_read(tmp_path):
    run = make_run(tmp_path / "run", random_bn_student(), {"d": 2})
    before = tree(tmp_path)
    with pytest.raises(ConfigError):
        export_run(run, format="onnx", quantize="weight-int8")
    with pytest.raises(ConfigError):
        export_run(tmp_path / "missing", format="tflite", quantize="int8", calibration_samples=64)
    with pytest.raises(UnknownNameError):
        export_run(run, format="coreml")
    assert tree(tmp_path) == before


def test_out_dir_holding_another_model_is_refused_before_writing(tmp_path):
    run = make_run(tmp_path / "run", random_bn_student(seed=0), {"d": 2})
    other = make_run(tmp_path / "other", random_bn_student(seed=1), {"d": 2})
    before = tree(tmp_path)
    with pytest.raises(ConfigError, match="another model"):
        export_run(run, format="onnx", out=other)
    assert tree(tmp_path) == before
