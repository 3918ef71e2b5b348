import json

import pytest
import torch

from edgegan.checkpoint import flatten_state, load_run, model_section, unflatten_state
from edgegan.errors import CheckpointError
from edgegan.manifest import atomic_write_json, read_manifest, write_manifest
from edgegan.models import build_generator


def _run(tmp_path, d=2):
    g = build_generator("dcgan", d=d).eval()
    sec = model_section(g, "dcgan", {"d": d}, tmp_path)
    write_manifest(tmp_path, {"schema": "edgegan.manifest/1", "kind": "student", "model": sec})
    return g


def test_round_trip(tmp_path):
    g = _run(tmp_path)
    r = load_run(tmp_path)
    z = torch.randn(3, 100)
    assert torch.equal(r.generator(z), g(z))
    assert r.latent_dim == 100 and r.output_shape == (1, 32, 32)
    assert r.manifest["model"]["params"] == 28351


def test_corrupt_weights_detected(tmp_path):
    _run(tmp_path)
    w = tmp_path / "generator.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_run(tmp_path)


def test_truncated_weights_with_matching_hash_still_typed(tmp_path):
    _run(tmp_path)
    w = tmp_path / "generator.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["model"]["weights"]["sha256"] = None  # skip the hash: the parser itself must fail cleanly
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_run(tmp_path)


@pytest.mark.parametrize("content", ["{not json", '{"schema": "other"}', '{"schema": "edgegan.manifest/1"}'])
def test_bad_manifests(tmp_path, content):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(CheckpointError):
        read_manifest(tmp_path)


def test_missing_run(tmp_path):
    with pytest.raises(CheckpointError, match="no such run"):
        load_run(tmp_path / "nope")


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "a.json", {"x": object()})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    from edgegan.manifest import FILE_MODE

    assert (tmp_path / "a.json").stat().st_mode & 0o777 == FILE_MODE  # not mkstemp's 0600


def test_optimizer_state_round_trip():
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.5, 0.999))
    m(torch.randn(4, 3)).sum().backward()
    opt.step()
    t, meta = {}, {}
    flatten_state("", opt.state_dict(), t, meta)
    json.dumps(meta)  # scalars must be JSON
    back = unflatten_state(t, meta)
    opt2 = torch.optim.Adam(m.parameters(), lr=5.0)
    opt2.load_state_dict(back)
    assert opt2.param_groups[0]["lr"] == 1e-3 and opt2.param_groups[0]["betas"] == (0.5, 0.999)
    for k, v in opt.state_dict()["state"].items():
        assert torch.equal(opt2.state_dict()["state"][k]["exp_avg"], v["exp_avg"])


def test_json_is_strict_and_keeps_infinities(tmp_path):
    import numpy as np

    atomic_write_json(tmp_path / "b.json", {"psnr": float("inf"), "x": [float("nan"), np.float32(1.5)]})
    text = (tmp_path / "b.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"psnr": "inf", "x": ["nan", 1.5]}
