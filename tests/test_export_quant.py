"""Issue #22: the image-parity criterion, defects it must still catch (a single broken channel, a
wrong calibration), the per-layer report, ``--keep-float`` (named and automatic), int16x8, and the
one-line refusals of bad input. The thresholds' numbers are in export/formats.py and
bench/results/int8-parity.md."""

from __future__ import annotations

import numpy as np
import pytest

from edgegan.errors import ConfigError, ParityError
from edgegan.export import ExportOptions, export_module, export_run
from edgegan.export import parity, quant_report
from edgegan.export.formats import AUTO_KEEP_BUDGET, AUTO_KEEP_FLOAT, CHANGED_LEVELS, FORMATS, Thresholds
from edgegan.manifest import read_manifest
from tests.test_export import make_run, train_student, tree

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_quantizer.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _needs_tflite() -> None:
    for mod in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"):
        pytest.importorskip(mod)


@pytest.fixture(scope="module")
def student():
    return train_student(d=2, steps=40, seed=0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, student):
    return make_run(tmp_path_factory.mktemp("quant") / "student", student, {"d": 2})


# ------------------------------------------------------------------------- the criterion, closed form

def test_compare_reports_percentiles_and_changed_8bit_pixels():
    want = np.full((10, 1, 10, 10), 0.1, dtype=np.float32)  # 1,000 values, pixel 140.25 (no rounding tie)
    got = want.copy()
    step = np.float32(2 / 255)  # one 8-bit level
    got.reshape(-1)[:5] += 3 * step  # 0.5 % of the values move by 3 levels: changed
    got.reshape(-1)[5:20] += 2 * step  # 1.5 % by 2 levels: not changed (the limit is > CHANGED_LEVELS)
    s = parity.compare(got, want)
    assert CHANGED_LEVELS == 2
    assert s["changed_pixels"] == pytest.approx(0.005)
    assert s["max_abs"] == pytest.approx(3 * step, rel=1e-5) and s["p999_abs"] == pytest.approx(3 * step, rel=1e-5)
    assert s["p99_abs"] == pytest.approx(2 * step, rel=1e-5)
    assert s["psnr_db"] == pytest.approx(10 * np.log10(4 / ((5 * 9 + 15 * 4) * step ** 2 / 1000)), abs=1e-3)
    nan = parity.compare(np.full_like(want, np.nan), want)
    assert all(np.isnan(v) for v in nan.values()) and "output is not finite" in parity.failures(nan, Thresholds())


def test_each_limit_fails_on_its_own():
    s = {"max_abs": 0.3, "mean_abs": 0.01, "psnr_db": 40.0, "p99_abs": 0.05, "p999_abs": 0.1, "changed_pixels": 0.02}
    assert parity.failures(s, Thresholds(max_abs=0.3, psnr_db=40, p999_abs=0.1, changed_pixels=0.02)) == []
    assert parity.failures(s, Thresholds(p999_abs=0.09)) == ["p99.9 abs 0.1 > 0.09"]
    assert parity.failures(s, Thresholds(changed_pixels=0.01))[0].startswith("2.00% of 8-bit pixels off by > 2")
    assert parity.failures(s, Thresholds(psnr_db=41)) == ["psnr 40.00 dB < 41 dB"]


def test_int8_is_judged_by_many_pixels_not_the_worst_one():
    """One pixel off by 1.5 (a sharp edge crossing a quantization step) no longer fails int8 on its own;
    fp32 keeps its exact limit."""
    t = FORMATS.get("tflite").precision("int8").thresholds
    assert t.max_abs is None and t.psnr_db and t.p999_abs and t.changed_pixels
    assert FORMATS.get("tflite").precision("none").thresholds.max_abs <= 1e-4
    want = np.random.default_rng(0).uniform(-1, 1, (64, 1, 32, 32)).astype(np.float32)
    got = want + np.float32(1 / 128) * np.random.default_rng(1).uniform(-1, 1, want.shape).astype(np.float32)
    got.reshape(-1)[123] += 1.5
    assert parity.failures(parity.compare(got, want), t) == []


# ------------------------------------------------------------------------------- layer names

def test_module_paths_are_read_from_litert_tensor_names():
    p = "edgegan.export.prepare.LatentToImage/edgegan.models.dcgan.DCGANGenerator_generator/" \
        "torch.nn.modules.container.Sequential_net/"
    scope = f"{p}torch.nn.modules.activation.Tanh_13;;{p}torch.nn.modules.conv.Conv2d_12;"
    assert quant_report.modules_of(scope) == ["net.13", "net.12"]
    assert quant_report.layer_of("TANH", ["net.13", "net.12"], "x") == "net.13"
    assert quant_report.layer_of("CONV_2D", ["net.2", "net.0"], "x") == "net.0"
    assert quant_report.modules_of("batch_1_output_0_output") == []


# ------------------------------------------------------------------------------------ bad input

def test_keep_float_unknown_layer_is_one_line_with_closest_match_and_writes_nothing(run_dir):
    before = tree(run_dir)
    with pytest.raises(ConfigError, match=r"--keep-float 'net.99'.*Did you mean 'net.9'") as e:
        export_run(run_dir, format="tflite", quantize="int8", keep_float="net.12,net.99")
    assert "\n" not in str(e.value) and "net.1," not in str(e.value)  # folded BatchNorms are no layers
    assert tree(run_dir) == before


@pytest.mark.parametrize("kw,match", [
    ({"format": "onnx", "quantize": "int16x8"}, r"'onnx' does not accept --quantize 'int16x8'.*tflite accepts it"),
    ({"format": "onnx", "quantize": "fp16", "report": True},
     r"--report applies to --format onnx --quantize int8 or --format tflite --quantize int8"),
    ({"format": "onnx", "quantize": "int8", "keep_float": "net.12"}, r"--keep-float applies to --format tflite"),
    ({"format": "tflite", "quantize": "fp16", "keep_float": "net.12"}, r"--keep-float applies to"),
    ({"format": "tflite", "quantize": "int8", "keep_float": "auto,net.12"}, r"'auto' or layer names, not both"),
    ({"format": "tflite", "quantize": "int8", "keep_float": " , "}, r"at least one layer name"),
])
def test_options_that_cannot_apply_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match) as e:
        ExportOptions(**kw)
    assert "\n" not in str(e.value)


# -------------------------------------------------------------------------- defects still fail

def _break_channel(model: bytes, factor: float) -> bytes:
    """Output channel 0 of the last TRANSPOSE_CONV's int8 weights times ``factor`` (0: dead), every signature."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    for sg in m.subgraphs:
        convs = [op for op in sg.operators
                 if m.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.TRANSPOSE_CONV]
        w = sg.tensors[convs[-1].inputs[1]]
        buf = m.buffers[w.buffer]
        data = np.asarray(buf.data, dtype=np.uint8).view(np.int8).reshape(w.shape[0], -1).astype(np.int32)
        data[0] = np.clip(np.rint(data[0] * factor), -127, 127)
        buf.data = data.astype(np.int8).reshape(-1).view(np.uint8)
    b = flatbuffers.Builder(len(model) + 4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.tflite
@pytest.mark.parametrize("defect", ["dead-channel", "narrow-calibration"])
def test_a_single_broken_channel_or_a_wrong_calibration_fails_and_leaves_nothing(run_dir, monkeypatch, defect):
    _needs_tflite()
    from edgegan.export import litert_adapter

    real = litert_adapter.quantize

    def broken(float_model, precision, **kw):
        if defect == "narrow-calibration":  # ranges from latents a quarter of their size: activations clip
            kw["calibration"] = (kw["calibration"] * 0.25).astype(np.float32)
            return real(float_model, precision, **kw)
        data, name = real(float_model, precision, **kw)
        return _break_channel(data, 0.0), name

    monkeypatch.setattr(litert_adapter, "quantize", broken)
    before, manifest_before = tree(run_dir / "exports"), (run_dir / "manifest.json").read_bytes()
    # The dead channel is seen layer by layer before any file is written (at d=32 the image alone cannot
    # tell it from int8 noise; here the image fails too); narrow ranges break every layer's image.
    want = r"broken layer against the float file: layer net\.9 .* channel 0" if defect == "dead-channel" else \
        r"psnr|p99.9|8-bit pixels|broken layer"
    with pytest.raises(ParityError, match=want) as e:
        export_run(run_dir, format="tflite", quantize="int8", batch=[64])
    assert tree(run_dir / "exports") == before and (run_dir / "manifest.json").read_bytes() == manifest_before
    if defect == "dead-channel":
        assert "\n" not in str(e.value)
        kept = export_run(run_dir, format="tflite", quantize="int8", batch=[64], allow_mismatch=True,
                          out=run_dir.parent / f"kept-{defect}")
        par = kept["parity"]
        assert par["passed"] is False and "layers" in par["failures"] and "all" in par["failures"]
        limit = FORMATS.get("tflite").precision("int8").thresholds.channel_err_db
        assert kept["layers"]["worst_channel"]["err_db"] > limit and kept["layers"]["latents"] == 64
        # ... and its error is about its own signal (0 dB), far from a correct channel's own SNR.
        own = FORMATS.get("tflite").precision("int8").thresholds.channel_snr_db
        assert kept["layers"]["worst_channel"]["snr_db"] < own


def test_broken_channel_check_tells_a_dead_or_scaled_channel_from_a_deep_network_s_noise():
    """Closed form: noise 16 dB under each channel's own signal (a deep image-to-image student's last layers,
    issue 21, where the loudest channels' noise reaches -13 dB of the layer's mean power) is not a broken
    channel; the same layer with one channel dead (error = its signal) or multiplied by 4 (error = 3x its
    signal) is, and the report names that channel."""
    from edgegan.export.quant_report import _Acc, channel_failures

    t = FORMATS.get("tflite").precision("int8").thresholds
    rng = np.random.default_rng(0)
    ref = rng.normal(0.0, 1.0, (64, 8, 8, 16)) * np.linspace(0.5, 1.5, 16)  # NHWC, channels of unequal power
    noisy = ref + rng.normal(0.0, 1.0, ref.shape) * np.sqrt(10 ** -1.6 * (ref**2).mean(axis=(0, 1, 2)))

    def verdict(got):
        a = _Acc()
        a.add(ref, got)
        ch, err_db, snr_db = a.worst_channel()
        rep = {"worst_channel": {"layer": "net.15", "index": 23, "channel": ch, "err_db": err_db, "snr_db": snr_db}}
        return ch, err_db, snr_db, channel_failures(rep, t)

    ch, err_db, snr_db, fails = verdict(noisy)
    assert err_db > t.channel_err_db and snr_db > t.channel_snr_db and fails == []  # loud noise, not a defect
    for name, factor in (("dead", 0.0), ("x4", 4.0)):
        got = noisy.copy()
        got[..., 3] = ref[..., 3] * factor
        ch, err_db, snr_db, fails = verdict(got)
        assert ch == 3 and snr_db < t.channel_snr_db, name
        assert len(fails) == 1 and "channel 3" in fails[0] and "under its own signal" in fails[0], name


# ----------------------------------------------------------------- report, keep-float, int16x8

@pytest.mark.tflite
def test_report_names_the_worst_layer_and_auto_keeps_the_most_sensitive_in_float(run_dir, student, tmp_path):
    _needs_tflite()
    e = export_run(run_dir, format="tflite", quantize="int8", batch=[64], report=True, out=tmp_path / "a")
    rep = e["layers"]
    assert rep["latents"] == 256 and rep["kept_float"] == []
    layers = {r["layer"] for r in rep["layers"]}
    assert {"net.0", "net.3", "net.6", "net.9", "net.12", "net.13"} <= layers
    worst = next(r for r in rep["layers"] if r["index"] == rep["worst_index"])
    assert worst["layer"] == rep["worst"] and worst["drop_db"] == max(r["drop_db"] for r in rep["layers"]) > 0
    assert all(r["snr_db"] > 20 and r["max_abs"] >= 0 and not r["float"] for r in rep["layers"])
    assert read_manifest(tmp_path / "a")["exports"][0]["layers"] == rep  # in the manifest too

    auto = export_run(run_dir, format="tflite", quantize="int8", batch=[64], keep_float="auto", out=tmp_path / "b")
    # The most sensitive among the layers that hold at most AUTO_KEEP_BUDGET of the weights.
    sizes = {name: 4 * sum(p.numel() for p in m.parameters(recurse=False))
             for name, m in student.named_modules() if not list(m.children())}
    assert sum(sizes.values()) == 4 * sum(p.numel() for p in student.parameters())
    chosen = quant_report.most_sensitive(rep, AUTO_KEEP_FLOAT, weight_bytes=sizes, budget=AUTO_KEEP_BUDGET)
    assert all(sizes[c] <= AUTO_KEEP_BUDGET * sum(sizes.values()) for c in chosen)
    assert auto["layers"]["auto"] is True and auto["layers"]["kept_float"] == chosen and len(chosen) == AUTO_KEEP_FLOAT
    assert auto["recipe"] == f"static_wi8_ai8 + float {','.join(chosen)}" and auto["parity"]["passed"]
    assert auto["bytes"] <= 1.1 * e["bytes"]


def test_onnx_int8_report_names_layers_by_their_modules(run_dir, tmp_path):
    e = export_run(run_dir, format="onnx", quantize="int8", report=True, out=tmp_path / "o")
    rep = e["layers"]
    assert rep["latents"] == 256 and "float32 graph" in rep["reference"]
    layers = [r["layer"] for r in rep["layers"]]
    assert {"net.0", "net.3", "net.6", "net.9", "net.12", "output"} <= set(layers)
    worst = next(r for r in rep["layers"] if r["index"] == rep["worst_index"])
    assert worst["layer"] == rep["worst"] and worst["drop_db"] == max(r["drop_db"] for r in rep["layers"]) > 0
    # A correct int8 graph: every layer well above noise, no broken channel (NCHW channels of 4-D tensors).
    assert all(r["snr_db"] > 20 for r in rep["layers"])
    w = rep["worst_channel"]
    assert w is not None and w["err_db"] < FORMATS.get("tflite").precision("int8").thresholds.channel_err_db
    assert read_manifest(tmp_path / "o")["exports"][0]["layers"] == rep


@pytest.mark.tflite
def test_keep_float_leaves_the_named_layers_in_float(run_dir, tmp_path):
    _needs_tflite()
    e = export_run(run_dir, format="tflite", quantize="int8", batch=[64], keep_float="net.12,net.13", report=True,
                   out=tmp_path / "k")
    rows = {r["layer"]: r for r in e["layers"]["layers"]}
    assert rows["net.12"]["float"] and rows["net.13"]["float"] and not rows["net.9"]["float"]
    assert e["layers"]["worst"] not in ("net.12", "net.13")  # the worst of the layers still quantized
    assert e["recipe"] == "static_wi8_ai8 + float net.12,net.13" and e["parity"]["passed"]
    from ai_edge_litert.interpreter import Interpreter

    path = tmp_path / "k" / e["file"]
    ops = Interpreter(model_path=str(path))._get_ops_details()
    conv = [o for o in ops if o["op_name"] == "CONV_2D"][-1]  # net.12, the output convolution
    types = {d["index"]: d["dtype"] for d in Interpreter(model_path=str(path)).get_tensor_details()}
    assert types[conv["inputs"][1]] == np.float32  # its weights stay float


@pytest.mark.tflite
def test_int16x8_is_closer_to_float_than_int8(student, tmp_path):
    _needs_tflite()
    a = export_module(student, latent_dim=100, out_dir=tmp_path, stem="s", format="tflite", quantize="int8")
    b = export_module(student, latent_dim=100, out_dir=tmp_path, stem="s", format="tflite", quantize="int16x8")
    assert b["quantization"]["output"]["dtype"] == "int16" and b["parity"]["passed"]
    assert b["parity"]["psnr_db"] > a["parity"]["psnr_db"] + 3
    assert b["bytes"] <= 1.1 * a["bytes"]  # int8 weights either way


@pytest.mark.tflite
@pytest.mark.slow
def test_int8_of_a_generator_past_256_kib_of_weights(tmp_path):
    """ai-edge-quantizer writes such files with their constants after the flatbuffer; the metadata
    step takes them back inside (the exporter refused every d >= 16 int8 file before)."""
    _needs_tflite()
    g = train_student(d=16, steps=5, seed=0)
    e = export_module(g, latent_dim=100, out_dir=tmp_path, stem="big", format="tflite", quantize="int8",
                      allow_mismatch=True)
    import edgegan_runtime as rt

    assert e["bytes"] > 256 * 1024
    assert rt.load(tmp_path / e["file"]).contract["identity"]["precision"] == "int8"


@pytest.mark.tflite
def test_cli_report_prints_the_worst_layer_and_nothing_else_on_stderr(run_dir, tmp_path):
    _needs_tflite()
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgegan.app.cli", "export", str(run_dir), "--format", "tflite",
                        "--quantize", "int8", "--report", "-o", str(tmp_path / "cli")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.strip().splitlines()
    assert "parity PASSED" in lines[0] and lines[1].startswith("worst quantized layer: net.")
    assert any(ln.rstrip().endswith("<- worst") for ln in lines[2:]) and "SNR dB" in lines[2]
