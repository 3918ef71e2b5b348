"""Fuzz: >= 1,000 corrupted variants of real exported files (bit flips, byte overwrites, truncations,
zeroed spans, swapped headers), each loaded and run in a subprocess: 0 crashes, 0 hangs, and each
one either a typed error or a correct load.

EDGEGAN_FUZZ_SEED picks another set of variants (default 0); EDGEGAN_FUZZ_N changes their number.
"""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest
from rt_fuzzing import mutate, run_fuzz, structure_offsets

pytestmark = [pytest.mark.slow, pytest.mark.onnx, pytest.mark.tflite]


def test_corrupted_files_never_crash(
    tmp_path, onnx_model, tflite_model, tflite_nosig_model, tflite_int8io_model, tflite_int8_model
):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ai_edge_litert")
    seed = int(os.environ.get("EDGEGAN_FUZZ_SEED", "0"))
    n = int(os.environ.get("EDGEGAN_FUZZ_N", "1200"))
    rng = random.Random(seed)
    # ONNX, TFLite fp32, fp32 without signatures, int8 I/O, and static int8 (QUANTIZE/DEQUANTIZE inside)
    models = (onnx_model, tflite_model, onnx_model, tflite_nosig_model, onnx_model, tflite_int8io_model)
    models += (tflite_int8_model,) if tflite_int8_model else (tflite_model,)
    sources = [(p, p.read_bytes(), p.suffix[1:]) for p in models]
    hot = {p: structure_offsets(data, fmt) for p, data, fmt in sources}
    paths, kinds = [], Counter()
    for i in range(n):
        src, data, fmt = sources[i % len(sources)]
        other = sources[1][1] if fmt == "onnx" else sources[0][1]  # a file of the other format
        kind, variant = mutate(data, other, rng, hot[src])
        kinds[kind] += 1
        path = tmp_path / f"v{i:05d}-{kind}{src.suffix}"
        path.write_bytes(variant)
        paths.append(path)

    result = run_fuzz(paths, timeout=30)

    summary = f"seed {seed}: {dict(result.outcomes)} in {result.seconds:.1f} s; variants {dict(kinds)}"
    print(summary)
    assert sum(result.outcomes.values()) == n >= 1000
    assert not result.failures, summary + "\n" + "\n".join(result.failures[:20])
    assert set(result.outcomes) <= {"OK", "TYPED ModelFileError", "TYPED BackendError"}, summary
    # the fuzzer must exercise both outcomes, or it tests nothing
    assert result.outcomes["OK"] > 50 and result.outcomes["TYPED ModelFileError"] > 300, summary
    assert min(kinds.values()) > 50, kinds


def test_structured_mutations_never_crash(tmp_path, onnx_model, tflite_model, tflite_int8io_model, tflite_int8_model):
    """A few hundred structured mutations (rt_mutate: shapes, attributes, initializer dimensions,
    types, quantization parameters, indices, If branches, constant values) of ONNX and TFLite files,
    each loaded and run in the worker subprocess: 0 crashes, 0 hangs, 0 untyped errors, and both
    outcomes occur. bench/scripts/fuzz_runtime.py runs >= 10,000 per format."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ai_edge_litert")
    from rt_mutate import mutate_onnx, mutate_tflite, onnx_base

    seed = int(os.environ.get("EDGEGAN_FUZZ_SEED", "0"))
    per_format = int(os.environ.get("EDGEGAN_STRUCT_FUZZ_N", "150"))
    rng = random.Random(seed)
    onnx_proto = onnx_base(onnx_model.read_bytes())
    tflites = [p.read_bytes() for p in (tflite_model, tflite_int8io_model, tflite_int8_model or tflite_model)]
    paths, kinds = [], Counter()
    for i in range(per_format):
        kind, data = mutate_onnx(onnx_proto, rng)
        kinds[f"onnx {kind}"] += 1
        paths.append(tmp_path / f"s{i:04d}-{kind}.onnx")
        paths[-1].write_bytes(data)
        kind, data = mutate_tflite(tflites[i % len(tflites)], rng)
        kinds[f"tflite {kind}"] += 1
        paths.append(tmp_path / f"s{i:04d}-{kind}.tflite")
        paths[-1].write_bytes(data)

    result = run_fuzz(paths, timeout=60)

    summary = f"seed {seed}: {dict(result.outcomes)} in {result.seconds:.1f} s; variants {dict(kinds)}"
    print(summary)
    assert sum(result.outcomes.values()) == 2 * per_format
    assert not result.failures, summary + "\n" + "\n".join(result.failures[:20])
    assert set(result.outcomes) <= {"OK", "TYPED ModelFileError", "TYPED BackendError"}, summary
    assert result.outcomes["OK"] > per_format // 10 and result.outcomes["TYPED ModelFileError"] > per_format // 2, summary
    assert len(kinds) >= 20, kinds  # most mutation kinds of both formats were drawn
