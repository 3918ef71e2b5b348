"""The edgegan.contract a file carries (issue 12): the runtime reads it from TFLite metadata and ONNX
metadata_props, and refuses a file whose contract disagrees with its tensors or with this runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgegan_runtime as rt
from edgegan_runtime import contract
from edgegan_runtime.errors import ModelFileError
from tests.runtime.conftest import LATENT, SHAPE, rewrite_tflite

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*")


def _good(**change) -> dict:
    c = contract.make_contract(latent_dim=LATENT, output_shape=SHAPE, batch_sizes=[1, 64],
                               identity={"stem": "d2", "file": "d2.tflite", "format": "tflite", "precision": "fp32",
                                         "quantize": "none", "model_sha256": None})
    for path, value in change.items():
        *keys, last = path.split("__")
        node = c
        for k in keys:
            node = node[k]
        node[last] = value
    return c


def _with_metadata(tflite_model, tmp_path, payload: bytes, name: str = contract.METADATA_NAME):
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

    def edit(model):
        buf = schema.BufferT()
        buf.data = np.frombuffer(payload, dtype=np.uint8).copy()
        model.buffers.append(buf)
        md = schema.MetadataT()
        md.name = name
        md.buffer = len(model.buffers) - 1
        model.metadata = list(model.metadata or []) + [md]

    return rewrite_tflite(tflite_model, tmp_path / "with-contract.tflite", edit)


@pytest.mark.tflite
def test_tflite_contract_is_read_back(tflite_model, tmp_path):
    c = _good()
    path = _with_metadata(tflite_model, tmp_path, contract.encode(c))
    with rt.load(path) as g:
        assert g.contract == json.loads(json.dumps(c))
        assert g.generate(2, seed=3).shape == (2, 32, 32, 1)


@pytest.mark.tflite
def test_file_without_contract_still_loads(tflite_model):
    with rt.load(tflite_model) as g:
        assert g.contract is None


@pytest.mark.tflite
@pytest.mark.parametrize("change,message", [
    ({"latent__dim": LATENT + 1}, "the file's tensors say"),
    ({"output__shape": [None, 3, 32, 32]}, "the file's tensors say"),
    ({"batch_sizes": [1, 8]}, "batch sizes"),
    ({"latent__sampler__version": 2}, "latent sampler"),
    ({"pixels__name": "srgb-gamma"}, "pixel rule"),
    ({"schema": "edgegan.contract/9"}, "schema"),
])
def test_disagreeing_contract_is_refused(tflite_model, tmp_path, change, message):
    path = _with_metadata(tflite_model, tmp_path, contract.encode(_good(**change)))
    with pytest.raises(ModelFileError, match=message):
        rt.load(path)


@pytest.mark.tflite
@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe", b"[1, 2]", b" " * (contract.MAX_BYTES + 1)])
def test_corrupt_contract_is_a_typed_error(tflite_model, tmp_path, payload):
    path = _with_metadata(tflite_model, tmp_path, payload)
    with pytest.raises(ModelFileError, match=contract.METADATA_NAME):
        rt.load(path)


@pytest.mark.onnx
def test_onnx_contract_is_read_back(onnx_model, tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(onnx_model))
    c = _good(batch_sizes=None)
    prop = model.metadata_props.add()
    prop.key, prop.value = contract.METADATA_NAME, contract.encode(c).decode()
    path = tmp_path / "with-contract.onnx"
    onnx.save(model, str(path))
    with rt.load(path) as g:
        assert g.contract["latent"]["dim"] == LATENT and g.contract["batch_sizes"] is None
    prop.value = contract.encode(_good(latent__dim=7)).decode()
    onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match="latent 7"):
        rt.load(path)
