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
