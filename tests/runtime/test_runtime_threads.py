"""One generator shared by 8 threads gives the images single-threaded use gives, without crashing."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

import edgegan_runtime as rt


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_eight_threads_same_images(fmt, onnx_model, tflite_model):
    need = "onnxruntime" if fmt == "onnx" else "ai_edge_litert"
    if importlib.util.find_spec(need) is None:
        pytest.skip(f"{need} not installed")
    g = rt.load(onnx_model if fmt == "onnx" else tflite_model)
    # sizes that exercise both signatures, padding and splitting
    jobs = [(seed, n) for seed in range(8) for n in (1, 3, 64, 70)]
    want = {job: g.generate(job[1], seed=job[0]) for job in jobs}
    got: dict = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(k: int) -> None:
        try:
            start.wait()
            for rep in range(5):
                for job in jobs[k::2] + jobs[::3]:
                    got.setdefault(job, []).append(g.generate(job[1], seed=job[0]))
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert not errors, errors[0]
    assert set(got) == set(jobs)
    for job, outs in got.items():
        for out in outs:
            assert np.array_equal(out, want[job]), job


@pytest.mark.tflite
def test_pool_grows_only_on_demand(tflite_model):
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("ai-edge-litert not installed")
    g = rt.load(tflite_model)
    for _ in range(3):
        g.generate(2)
    assert g._pool._created == 1
