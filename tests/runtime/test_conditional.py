"""Issue 20 in the runtime: conditional (two-input) files load, verified; ``generate(n, seed, label=...)``,
``labels=[...]`` and ``generate_from(z, labels=...)`` build the one-hot the file takes; every bad label is a
``LabelError`` that writes nothing; the contract's ``label`` entry is checked against the file; the CLI
(generate --label/--labels, info, bench) and the probe handle a two-input file.

The files come from the session fixture ``conditional_export`` (tests/conftest.py): a d=2 student of 10
classes exported by ``edgegan export``."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgegan_runtime as rt
from edgegan_runtime import contract
from edgegan_runtime.cli import LABEL_EXIT, main
from edgegan_runtime.errors import InputError, LabelError, ModelFileError, RuntimeModelError
from tests.conftest import CLASS_NAMES

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_quantizer.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:onnxruntime.*"),
]

FILES = [pytest.param("onnx", "none", marks=pytest.mark.onnx),
         pytest.param("tflite", "none", marks=pytest.mark.tflite),
         pytest.param("tflite", "int8", marks=pytest.mark.tflite)]


def _path(conditional_run, conditional_export, fmt: str, quantize: str = "none"):
    return conditional_run / conditional_export(fmt, quantize)["file"]


# ------------------------------------------------------------------------------------- one-hot

def test_one_hot_rule():
    got = rt.one_hot([2, 0, 2, 1], 3)
    assert got.dtype == np.float32 and got.shape == (4, 3)
    assert got.tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert rt.one_hot(np.array([], dtype=np.int64), 4).shape == (0, 4)
    assert rt.one_hot(np.array([3], dtype=np.uint8), 4).tolist() == [[0, 0, 0, 1]]
    for bad in ([3], [-1], [0.0], [True], np.array([1.5]), np.array([[1]]), "1", None, [2 ** 70]):
        with pytest.raises(LabelError):
            rt.one_hot(bad, 3)


# -------------------------------------------------------------------------------- the generator

@pytest.mark.parametrize("fmt,quantize", FILES)
def test_a_conditional_file_loads_with_its_classes(conditional_run, conditional_export, fmt, quantize):
    with rt.load(_path(conditional_run, conditional_export, fmt, quantize)) as g:
        assert g.num_classes == 10 and g.class_names == CLASS_NAMES and g.latent_dim == 100
        assert g.contract["label"] == {"classes": 10, "names": CLASS_NAMES, "form": "onehot", "dtype": "float32",
                                       "input": 1}


@pytest.mark.parametrize("fmt,quantize", FILES)
def test_label_and_labels_and_the_latents(conditional_run, conditional_export, fmt, quantize):
    """The latents are those of an unconditional call with the same seed; ``label=c`` is ``labels=[c] * n``;
    image i of a mixed call is image i of the call with its class for every image (across the padded
    remainder of a fixed-batch file: 70 = 64 + 6)."""
    with rt.load(_path(conditional_run, conditional_export, fmt, quantize)) as g:
        n, seed = 70, 4
        z = rt.latent(n, 100, seed)
        by_class = {c: g.generate(n, seed=seed, label=c) for c in (0, 3, 7)}
        for c, pixels in by_class.items():
            assert np.array_equal(pixels, rt.to_pixels(g.generate_from(z, labels=np.full(n, c))))
            assert np.array_equal(pixels, g.generate(n, seed=seed, labels=[c] * n))
        mixed = [(0, 3, 7)[i % 3] for i in range(n)]
        got = g.generate(n, seed=seed, labels=mixed)
        want = np.stack([by_class[c][i] for i, c in enumerate(mixed)])
        assert np.array_equal(got, want)
        assert not np.array_equal(by_class[0], by_class[3])  # the label changes the images
        assert g.generate(0, label=1).shape == (0, 32, 32, 1)


BAD_CALLS = [
    ("generate", {}, "conditional on 10 classes; give label="),
    ("generate", {"label": 10}, r"class 10 is outside \[0, 10\)"),
    ("generate", {"label": -1}, r"class -1 is outside \[0, 10\)"),
    ("generate", {"label": 2.0}, "label must be an integer class index"),
    ("generate", {"label": True}, "label must be an integer class index"),
    ("generate", {"label": "3"}, "label must be an integer class index"),
    ("generate", {"label": np.float32(3)}, "label must be an integer class index"),
    ("generate", {"labels": [1, 2]}, "labels has 2 entries for 4 images"),
    ("generate", {"labels": [1, 2, 3, 10]}, r"class 10 is outside \[0, 10\)"),
    ("generate", {"labels": [1, 2, 3.0, 4]}, "integer class indices"),
    ("generate", {"labels": [1, 2, True, 4]}, "integer class indices"),
    ("generate", {"labels": np.zeros(4)}, "integer class indices"),
    ("generate", {"label": 1, "labels": [1, 1, 1, 1]}, "not both"),
    ("generate_from", {}, "conditional on 10 classes"),
    ("generate_from", {"labels": [0, 1, 2]}, "labels has 3 entries for 4 images"),
    ("generate_from", {"labels": 3}, "integer class indices"),
]


@pytest.mark.onnx
@pytest.mark.parametrize("method,kw,message", BAD_CALLS, ids=lambda x: x if isinstance(x, str) else None)
def test_bad_labels_are_typed_one_line_errors(conditional_run, conditional_export, method, kw, message):
    with rt.load(_path(conditional_run, conditional_export, "onnx")) as g:
        call = (lambda: g.generate(4, seed=0, **kw)) if method == "generate" else \
            (lambda: g.generate_from(rt.latent(4, 100, 0), **kw))
        with pytest.raises(LabelError, match=message) as e:
            call()
    assert isinstance(e.value, InputError) and isinstance(e.value, RuntimeModelError)
    assert "\n" not in str(e.value)


@pytest.mark.onnx
def test_an_unconditional_model_refuses_a_label(onnx_model):
    with rt.load(onnx_model) as g:
        assert g.num_classes is None and g.class_names is None
        for kw in ({"label": 0}, {"labels": [0, 0]}):
            with pytest.raises(LabelError, match="unconditional; it takes no label"):
                g.generate(2, **kw)
        with pytest.raises(LabelError, match="unconditional"):
            g.generate_from(rt.latent(2, 100, 0), labels=[0, 0])
        assert g.generate(2).shape == (2, 32, 32, 1)


# --------------------------------------------------------------------------------- the contract

def _label_contract(**label) -> dict:
    c = contract.make_contract(latent_dim=100, output_shape=(1, 32, 32), batch_sizes=None,
                               identity={"stem": "x"}, label=contract.label_entry(10, CLASS_NAMES))
    c["label"].update(label)
    return c


def _onnx_with_contract(src, dst, c: dict | None):
    import onnx

    m = onnx.load(str(src))
    props = [(p.key, p.value) for p in m.metadata_props if p.key != contract.METADATA_NAME]
    del m.metadata_props[:]
    for key, value in props + ([(contract.METADATA_NAME, contract.encode(c).decode())] if c is not None else []):
        p = m.metadata_props.add()
        p.key, p.value = key, value
    onnx.save(m, str(dst))
    return dst


@pytest.mark.onnx
@pytest.mark.parametrize("change,message", [
    ({"classes": 9}, "says 9 classes, the file's label input is 10 wide"),
    ({"form": "index"}, "float32 one-hot at input 1"),
    ({"input": 0}, "float32 one-hot at input 1"),
    ({"names": ["a"]}, "names must be null or 10 strings"),
])
def test_a_label_entry_that_disagrees_with_the_file_is_refused(conditional_run, conditional_export, tmp_path,
                                                               change, message):
    path = _onnx_with_contract(_path(conditional_run, conditional_export, "onnx"), tmp_path / "x.onnx",
                               _label_contract(**change))
    with pytest.raises(ModelFileError, match=message):
        rt.load(path)


@pytest.mark.onnx
def test_two_inputs_need_a_label_entry_and_one_input_must_not_have_one(conditional_run, conditional_export,
                                                                       onnx_model, tmp_path):
    src = _path(conditional_run, conditional_export, "onnx")
    c = _label_contract()
    del c["label"]
    for path in (_onnx_with_contract(src, tmp_path / "no-label.onnx", c),
                 _onnx_with_contract(src, tmp_path / "no-contract.onnx", None)):
        with pytest.raises(ModelFileError, match="2 inputs and 1 output; an edgegan generator has one of each"):
            rt.load(path)
    one = _onnx_with_contract(onnx_model, tmp_path / "one.onnx", _label_contract())
    with pytest.raises(ModelFileError, match="has a label entry but the file has one input"):
        rt.load(one)


@pytest.mark.tflite
def test_tflite_two_inputs_without_a_label_entry_are_refused(conditional_run, conditional_export, tmp_path):
    from edgegan.export.litert_adapter import add_metadata

    src = _path(conditional_run, conditional_export, "tflite")
    c = json.loads(contract.encode(rt.load(src).contract))
    del c["label"]
    bad = tmp_path / "no-label.tflite"
    bad.write_bytes(add_metadata(src.read_bytes(), {contract.METADATA_NAME: contract.encode(c).decode()}))
    with pytest.raises(ModelFileError, match="2 inputs and 1 output; an edgegan generator has one of each"):
        rt.load(bad)
    c["label"] = contract.label_entry(12)
    bad.write_bytes(add_metadata(src.read_bytes(), {contract.METADATA_NAME: contract.encode(c).decode()}))
    with pytest.raises(ModelFileError, match="says 12 classes, the file's label input is 10 wide"):
        rt.load(bad)


# ---------------------------------------------------------------------------- CLI and the probe

@pytest.mark.tflite
def test_cli_generate_with_a_label(conditional_run, conditional_export, tmp_path, capsys):
    from tests.runtime.test_runtime_cli import read_png

    model = str(_path(conditional_run, conditional_export, "tflite"))
    out = tmp_path / "seven.png"
    assert main(["generate", model, "-n", "4", "--seed", "2", "--label", "7", "-o", str(out)]) == 0
    assert "class 7" in capsys.readouterr().out
    img = read_png(out.read_bytes())
    assert np.array_equal(img[2:34, 2:34], rt.load(model).generate(4, seed=2, label=7)[0])
    out3 = tmp_path / "three.png"
    assert main(["generate", model, "--labels", "0,1,2", "-o", str(out3)]) == 0
    img = read_png(out3.read_bytes())
    want = rt.load(model).generate(3, seed=0, labels=[0, 1, 2])
    assert np.array_equal(img[2:34, 2 + 34:34 + 34], want[1])


@pytest.mark.tflite
@pytest.mark.parametrize("args,message", [
    ([], "conditional on 10 classes"),
    (["--label", "10"], r"class 10 is outside \[0, 10\)"),
    (["--labels", "1,2"], "labels has 2 entries for 4 images"),
    (["--label", "1", "--labels", "1,1,1,1"], "not both"),
])
def test_cli_bad_label_is_one_line_exit_3_and_writes_nothing(conditional_run, conditional_export, tmp_path, capsys,
                                                              args, message):
    import re

    model = str(_path(conditional_run, conditional_export, "tflite"))
    out = tmp_path / "x.png"
    assert main(["generate", model, "-n", "4", *args, "-o", str(out)]) == LABEL_EXIT == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgegan-runtime: error: ") and re.search(message, err[0]), err
    assert not out.exists()


@pytest.mark.onnx
def test_cli_label_for_an_unconditional_model(onnx_model, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["generate", str(onnx_model), "-n", "2", "--label", "1", "-o", str(out)]) == LABEL_EXIT
    assert "unconditional" in capsys.readouterr().err and not out.exists()


@pytest.mark.onnx
def test_cli_info_shows_the_classes(conditional_run, conditional_export, onnx_model, capsys):
    assert main(["info", str(_path(conditional_run, conditional_export, "onnx"))]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == {"count": 10, "names": CLASS_NAMES}
    assert main(["info", str(onnx_model)]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] is None


@pytest.mark.parametrize("fmt,quantize", FILES)
def test_bench_feeds_a_label(conditional_run, conditional_export, fmt, quantize, capsys):
    entry = conditional_export(fmt, quantize)
    assert main(["bench", str(conditional_run), "--export", f"{fmt}:{entry['precision']}", "--batch", "3",
                 "--runs", "5", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["num_classes"] == 10 and r["batch"] == 3 and r["runs"] == 5 and r["torch_imported"] in (True, False)
