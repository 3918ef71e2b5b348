"""The runtime once more, with the tflite-runtime backend: boards that cannot take numpy 2 run it.

tflite-runtime (2.14, its last release) has no numpy 2 build and no wheels past Python 3.11, so it
lives in a virtual environment of its own, made by ``make tflite-venv`` (a prerequisite of ``make
test``): ``.venv-tflite``, or ``$EDGEGAN_TFLITE_VENV``. Where it could not be made, that target
wrote why into ``SKIP`` there, and this test skips with that reason.

Every TFLite precision of the export table is exported here (through LiteRT's parity check), then
run by tflite-runtime in a worker process and compared with LiteRT on the same latents; the
precisions the backend registry says tflite-runtime refuses must be refused with a typed error
before an interpreter is built, and the interpreter itself must still fail on them (else the
refusal is stale).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import LATENT, SUMMARY

import edgegan_runtime as rt
from edgegan_runtime.backend import BACKENDS

pytestmark = [pytest.mark.slow, pytest.mark.tflite]

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("rt_tflite_worker.py")
FLOAT_ATOL = 1e-5  # float kernels of another build: the same images to rounding (measured: 4e-6)


@pytest.fixture(scope="module")
def tflite_python() -> Path:
    venv = Path(os.environ.get("EDGEGAN_TFLITE_VENV", REPO / ".venv-tflite"))
    skip = venv / "SKIP"
    if skip.is_file():
        pytest.skip(f"tflite-runtime venv unavailable: {skip.read_text().strip()}")
    py = venv / "bin" / "python"
    if not py.exists():
        pytest.skip(f"no tflite-runtime venv at {venv}: run `make tflite-venv` (make test does)")
    return py


@pytest.fixture(scope="module")
def exported(torch_generator, tmp_path_factory):
    """{precision label: (file, output scale or None, parity thresholds)} for every TFLite precision."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    from edgegan.export import FORMATS, export_module

    out = tmp_path_factory.mktemp("tflite-runtime")
    files = {}
    for p in FORMATS.get("tflite").precisions:
        batch = [1, 64] if p.name in ("none", "int8") else None
        e = export_module(torch_generator, latent_dim=LATENT, out_dir=out, stem="d2", format="tflite",
                          quantize=p.name, batch=batch)
        q = (e.get("quantization") or {}).get("output")
        files[p.label] = (str(out / e["file"]), q["scale"] if q else None, p.thresholds)
    return files


def test_tflite_runtime_matches_litert_for_every_precision_it_runs(tflite_python, exported, tmp_path):
    py = tflite_python
    z = rt.latent(70, LATENT, 7)
    np.save(tmp_path / "z.npy", z)
    job = json.dumps({"latents": str(tmp_path / "z.npy"), "files": {k: v[0] for k, v in exported.items()}})
    r = subprocess.run([str(py), str(WORKER)], input=job, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["numpy"].startswith("1.") and "tflite-runtime" in report["backends"]
    assert "litert" not in report["backends"]  # the comparison is between two interpreters, not one

    from edgegan.export import parity

    spec = BACKENDS["tflite-runtime"]
    ran = []
    for label, (path, out_scale, thresholds) in exported.items():
        got = report["files"][label]
        why = spec.refusal(label)
        if why is None:
            assert got["ran"] and got["backend"] == got["auto"] == "tflite-runtime", got
            theirs = np.load(path + ".tflite-runtime.npy")
            with rt.load(path, backend="litert") as g:
                ours = g.generate_from(z)
            stats = parity.compare(theirs, ours)
            if out_scale is None:  # float arithmetic (weights dequantized or cast): the same to rounding
                assert stats["max_abs"] <= FLOAT_ATOL, (label, stats)
            else:  # int8 kernels round requantization differently (measured: 1% of pixels, up to 0.14):
                # as close to LiteRT as the export's parity check demands of LiteRT against PyTorch
                assert not parity.failures(stats, thresholds), (label, stats)
            diff = stats["max_abs"]
            assert float(np.abs(ours).max()) > 0.5  # real images, not values near zero
            ran.append(label)
            SUMMARY.append(f"tflite-runtime {report['tflite_runtime']} (numpy {report['numpy']}) vs LiteRT, "
                           f"{label}: max abs {diff:.3g}, PSNR {stats['psnr_db']:.1f} dB")
        else:
            for backend in ("tflite-runtime", "None"):
                msg = got[f"refused_{backend}"]
                assert msg is not None and msg.startswith("BackendUnavailableError") and why in msg, got
            assert got["native"] is not None and "transpose_conv" in got["native"].lower(), got
            SUMMARY.append(f"tflite-runtime refuses {label} before native code: {why}")
    assert {"fp32", "int8"} <= set(ran)


def test_hybrid_files_are_recognised_from_their_bytes_and_refused_by_name(exported):
    """No venv needed: the refusal comes from the registry and the file's structure, before any import."""
    from edgegan_runtime.checks import read_and_check

    for label, (path, _, _) in exported.items():
        hybrid = read_and_check(path).hybrid_ops
        assert ("TRANSPOSE_CONV" in hybrid) == (label == "dynamic-int8"), (label, hybrid)
    path = exported["dynamic-int8"][0]
    with pytest.raises(rt.BackendUnavailableError, match="transpose_conv.cc"):
        rt.load(path, backend="tflite-runtime")
    with rt.load(path) as g:  # chosen without asking: LiteRT runs it
        assert g.backend == "litert"
