"""ONNX int8 across CPUs (issue #8): export edgegan's U8U8 int8 files, and onnxruntime's default U8S8
for contrast, natively (``make``); then run them through edgegan_runtime on the CPU under test
(``check``), natively or under an emulated CPU, against the float PyTorch outputs.

    .venv/bin/python bench/scripts/onnx_int8_cpus.py make /tmp/int8
    .venv/bin/python bench/scripts/onnx_int8_cpus.py check /tmp/int8
    qemu-x86_64-static -cpu Haswell .venv/bin/python bench/scripts/onnx_int8_cpus.py check /tmp/int8   # AVX2 only
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np


def make(d: Path) -> None:
    import onnx
    import onnxruntime.quantization as q
    import torch

    import edgegan_runtime as rt
    from edgegan.export import export_module
    from edgegan.export import onnx_export as ox
    from edgegan.export.prepare import prepare_for_export
    from edgegan.testing import tiny_student

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.test_export_formats import UpsampleGenerator, _settled

    d.mkdir(parents=True, exist_ok=True)
    for name, g, L in [("up", _settled(UpsampleGenerator()), 16), ("dcgan2", tiny_student(2), 100)]:
        export_module(g, latent_dim=L, out_dir=d, stem=name, format="onnx", quantize="int8")
        z = rt.latent(64, L, 0)
        with torch.no_grad():
            np.save(d / f"{name}-ref.npy", g.eval()(torch.from_numpy(z)).numpy())
        np.save(d / f"{name}-z.npy", z)
        prep, _ = prepare_for_export(g)
        m, _ = ox.to_onnx(prep, L)
        with tempfile.TemporaryDirectory() as t:
            src = Path(t, "f.onnx")
            onnx.save(m, src)
            q.quantize_static(str(src), str(d / f"{name}-u8s8.onnx"), ox._Reader(rt.latent(256, L, 1), 64),
                              quant_format=q.QuantFormat.QDQ, per_channel=True, activation_type=q.QuantType.QUInt8,
                              weight_type=q.QuantType.QInt8)


def check(d: Path) -> None:
    import edgegan_runtime as rt

    for name in ("up", "dcgan2"):
        z, ref = np.load(d / f"{name}-z.npy"), np.load(d / f"{name}-ref.npy")
        for f in (d / f"{name}-onnx-int8.onnx", d / f"{name}-u8s8.onnx"):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                g = rt.load(f)
            x = g.generate_from(z)
            err = np.abs(x.astype(np.float64) - ref)
            warned = any(issubclass(i.category, rt.PrecisionWarning) for i in w)
            print(f"| {f.name} | {err.max():.3f} | {10 * np.log10(4 / np.mean(err ** 2)):.1f} | {'yes' if warned else 'no'} |")


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](Path(sys.argv[2]))
