"""Issue 14: files and calls that crashed, hung or silently misbehaved, each built here.

Files that used to kill or hang the process are loaded and run in a worker subprocess (the fuzz
worker), so a regression shows as a failed test (CRASH / HANG) rather than a dead test run. Each
must end as a typed error naming what is wrong.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import rewrite_tflite
from rt_fuzzing import run_fuzz

import edgegan_runtime as rt

needs_ort = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
needs_litert = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="LiteRT not installed")


def outcomes(paths: list[Path], timeout: float = 30) -> dict[str, str]:
    """{file name: outcome} from one worker subprocess: OK, TYPED <class>\\t<message>, CRASH, HANG, UNTYPED."""
    res = run_fuzz(paths, timeout=timeout)
    return {p.name: out for p, out in res.each}


# ---------------------------------------------------------------- ONNX


def _onnx_edits(onnx_model: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (bad file, expected message part)."""
    import onnx
    from onnx import helper, numpy_helper

    def edited(name: str, edit) -> Path:
        m = onnx.load(str(onnx_model))
        edit(m)
        p = tmp_path / f"{name}.onnx"
        p.write_bytes(m.SerializeToString())
        return p

    def node(m, op: str, k: int = 0):
        return [n for n in m.graph.node if n.op_type == op][k]

    def set_attr(m, op, name, value, k=0):
        n = node(m, op, k)
        for a in list(n.attribute):
            if a.name == name:
                n.attribute.remove(a)
        n.attribute.append(helper.make_attribute(name, value))

    def weight(m, op: str, k: int = 0):
        w = node(m, op, k).input[1]
        return next(t for t in m.graph.initializer if t.name == w)

    def enlarge_weight(m):
        t = weight(m, "ConvTranspose", 1)
        t.dims[1] *= 1000  # bytes stay: the shape now claims 1000x what the file holds

    def if_branch_external_data(m):
        # A Constant inside an If branch whose tensor points at a file next to the model.
        ext = helper.make_tensor("leak", onnx.TensorProto.FLOAT, [1], [0.0])
        ext.ClearField("float_data")
        ext.data_location = onnx.TensorProto.EXTERNAL
        ext.external_data.add(key="location", value="secret.bin")
        branch = helper.make_graph([helper.make_node("Constant", [], ["c"], value=ext)], "b", [],
                                   [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [1])])
        cond = numpy_helper.from_array(np.array(True), "cond")
        m.graph.initializer.append(cond)
        m.graph.node.append(helper.make_node("If", ["cond"], ["unused"], then_branch=branch, else_branch=branch))

    def nan_output(m):  # the last convolution's bias becomes NaN: every image is NaN
        b = node(m, "Conv", len([n for n in m.graph.node if n.op_type == "Conv"]) - 1).input[2]
        t = next(t for t in m.graph.initializer if t.name == b)
        t.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, np.nan, np.float32), b))

    def batch(value):
        def edit(m):
            m.graph.input[0].type.tensor_type.shape.dim[0].Clear()
            m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = value
        return edit

    return {
        "group0": (edited("group0", lambda m: set_attr(m, "ConvTranspose", "group", 0)), "group=0"),
        "group3": (edited("group3", lambda m: set_attr(m, "ConvTranspose", "group", 3)), "group"),
        "stride0": (edited("stride0", lambda m: set_attr(m, "ConvTranspose", "strides", [0, 0])), "strides=[0, 0]"),
        "stride_huge": (edited("stride_huge", lambda m: set_attr(m, "ConvTranspose", "strides", [10**9, 1])),
                        "strides"),
        "dilation0": (edited("dilation0", lambda m: set_attr(m, "ConvTranspose", "dilations", [0, 1])), "dilations"),
        "pads_neg": (edited("pads_neg", lambda m: set_attr(m, "ConvTranspose", "pads", [-1, 0, 0, 0])), "pads"),
        "pads_huge": (edited("pads_huge", lambda m: set_attr(m, "Conv", "pads", [10**8] * 4)), "pads"),
        "kernel": (edited("kernel", lambda m: set_attr(m, "ConvTranspose", "kernel_shape", [3, 3], 1)),
                   "kernel_shape=[3, 3] but a weight of shape"),
        "weight_bytes": (edited("weight_bytes", enlarge_weight), "bytes, expected"),
        "batch_minus1": (edited("batch_minus1", batch(-1)), "batch size -1"),
        "batch_huge": (edited("batch_huge", batch(10**6)), "batch size 1000000"),
        "if_external": (edited("if_external", if_branch_external_data), "external data"),
        "nan_output": (edited("nan_output", nan_output), "non-finite"),
    }


@needs_ort
@pytest.mark.onnx
def test_onnx_files_that_crashed_hung_or_leaked(onnx_model, tmp_path):
    (tmp_path / "secret.bin").write_bytes(np.float32(123.0).tobytes())
    cases = _onnx_edits(onnx_model, tmp_path)
    got = outcomes([p for p, _ in cases.values()])
    for name, (path, match) in cases.items():
        out = got[path.name]
        assert out.startswith("TYPED ") and match in out, f"{name}: {out}"
    assert got["nan_output.onnx"].startswith("TYPED BackendError")


# ---------------------------------------------------------------- TFLite


def _fp16_weights(model) -> None:
    """The fp16 export's layout: each float32 filter stored as float16 and expanded by a DEQUANTIZE."""
    from ai_edge_litert import schema_py_generated as schema

    deq = len(model.operatorCodes)
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    oc.version = 3
    model.operatorCodes.append(oc)
    for sg in model.subgraphs:
        new_ops = []
        for op in sg.operators:
            code = model.operatorCodes[op.opcodeIndex].builtinCode
            if code == schema.BuiltinOperator.TRANSPOSE_CONV:
                w = int(op.inputs[1])
                t = sg.tensors[w]
                buf = model.buffers[t.buffer]
                data = np.frombuffer(bytes(buf.data), np.float32).astype(np.float16)
                half = schema.BufferT()
                half.data = np.frombuffer(data.tobytes(), np.uint8)
                model.buffers.append(half)
                h = schema.TensorT()
                h.name, h.shape, h.type, h.buffer = b"w16", np.array(t.shape, np.int32), schema.TensorType.FLOAT16, \
                    len(model.buffers) - 1
                sg.tensors.append(h)
                empty = schema.BufferT()
                model.buffers.append(empty)
                t.buffer = len(model.buffers) - 1
                d = schema.OperatorT()
                d.opcodeIndex, d.inputs, d.outputs = deq, np.array([len(sg.tensors) - 1], np.int32), np.array([w])
                new_ops.append(d)
            new_ops.append(op)
        sg.operators = new_ops


@pytest.fixture(scope="module")
def tflite_fp16(tflite_model, tmp_path_factory) -> Path:
    return rewrite_tflite(tflite_model, tmp_path_factory.mktemp("fp16") / "fp16.tflite", _fp16_weights)


def _tflite_edits(tflite_model: Path, fp16: Path, int8io: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    from ai_edge_litert import schema_py_generated as schema

    def edited(src: Path, name: str, edit) -> Path:
        return rewrite_tflite(src, tmp_path / f"{name}.tflite", edit)

    def deq_output(size: int, dim: int):  # one dimension of every DEQUANTIZE output set to ``size``
        def edit(model):
            for sg in model.subgraphs:
                for op in sg.operators:
                    if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.DEQUANTIZE:
                        t = sg.tensors[int(op.outputs[0])]
                        t.shape[dim] = size
        return edit

    def out_scale(value: float):
        def edit(model):
            for sg in model.subgraphs:
                sg.tensors[int(sg.outputs[0])].quantization.scale = [value]
        return edit

    def transpose_conv_output(model):
        sg = model.subgraphs[0]
        for op in sg.operators:
            if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.TRANSPOSE_CONV:
                sg.tensors[int(op.outputs[0])].shape[1] += 3
                return

    def huge_dims(model):
        sg = model.subgraphs[0]
        t = sg.tensors[int(sg.operators[1].outputs[0])]
        t.shape = np.array([1, 1 << 20, 1 << 20, 100], np.int32)

    def conv_filter(model):
        sg = model.subgraphs[0]
        for op in sg.operators:
            if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.CONV_2D:
                sg.tensors[int(op.outputs[0])].shape[3] += 1
                return

    return {
        "deq_1000": (edited(fp16, "deq_1000", deq_output(1000, 0)), "DEQUANTIZE"),
        "deq_1m": (edited(fp16, "deq_1m", deq_output(1 << 20, 0)), "DEQUANTIZE"),
        "deq_int8io": (edited(int8io, "deq_int8io", deq_output(700, 1)), "DEQUANTIZE"),
        "scale_3e38": (edited(int8io, "scale_3e38", out_scale(3e38)), "scale"),
        "scale_inf": (edited(int8io, "scale_inf", out_scale(float("inf"))), "scale"),
        "transpose_conv": (edited(tflite_model, "transpose_conv", transpose_conv_output), "TRANSPOSE_CONV"),
        "conv_out": (edited(tflite_model, "conv_out", conv_filter), "CONV_2D"),
        "huge_dims": (edited(tflite_model, "huge_dims", huge_dims), "larger than 2 GiB"),
    }


@needs_litert
@pytest.mark.tflite
def test_tflite_files_that_crashed_or_made_nan(tflite_model, tflite_fp16, tflite_int8io_model, tmp_path):
    fp16 = rt.load(tflite_fp16)  # the rewrite itself is a valid model: same images as fp32, to fp16 precision
    ref = rt.load(tflite_model)
    z = rt.latent(3, ref.latent_dim, 5)
    assert np.abs(fp16.generate_from(z) - ref.generate_from(z)).max() < 0.05
    cases = _tflite_edits(tflite_model, tflite_fp16, tflite_int8io_model, tmp_path)
    got = outcomes([p for p, _ in cases.values()])
    for name, (path, match) in cases.items():
        out = got[path.name]
        assert out.startswith("TYPED ModelFileError") and match in out, f"{name}: {out}"


# ---------------------------------------------------------------- calls


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_thread_count_limit(fmt, onnx_model, tflite_model):
    path = onnx_model if fmt == "onnx" else tflite_model
    for bad in (10**6, rt.generator.MAX_THREADS + 1, 0, -1, 2.0, True):
        with pytest.raises(rt.InputError, match="threads must be an integer from 1 to"):
            rt.load(path, threads=bad)


def test_latent_errors_are_typed():
    for args in ((2.5, 4), ("2", 4), (2, 0), (-1, 4), (2, 4, 1.5), (None, 4), (10**30, 100)):
        with pytest.raises(rt.InputError, match="latent"):
            rt.latent(*args)
    assert rt.latent(np.int64(2), 3, np.uint32(1)).shape == (2, 3)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_generate_too_many_is_typed(fmt, onnx_model, tflite_model):
    g = rt.load(onnx_model if fmt == "onnx" else tflite_model)
    cap = g.max_images()
    with pytest.raises(rt.InputError, match="smaller calls"):
        g.generate(10**9)
    with pytest.raises(rt.InputError, match="smaller calls"):
        g.generate(cap + 1)
    assert 10_000 < cap < 10**9  # 1x32x32 images: a few KB each, half of any machine's memory


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_close_and_reuse_never_hangs(fmt, onnx_model, tflite_model):
    """100 load/generate/close cycles; a closed generator refuses with a typed error. Before the fix
    a generator used after close hung after 4 (TFLite) or 64 (ONNX) closes."""
    path = onnx_model if fmt == "onnx" else tflite_model
    g = rt.load(path)
    want = g.generate(2, seed=3)

    def cycles():
        for _ in range(100):
            h = rt.load(path)
            assert np.array_equal(h.generate(2, seed=3), want)
            h.close()
            with pytest.raises(rt.InputError, match="closed"):
                h.generate(1)
        for _ in range(100):  # the same generator closed again and again
            g.close()
            with pytest.raises(rt.InputError, match="closed"):
                g.generate(1)

    t = threading.Thread(target=cycles, daemon=True)
    t.start()
    t.join(240)
    assert not t.is_alive(), "generate hung after load/close cycles"


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_close_while_threads_generate(fmt, onnx_model, tflite_model):
    """close() from one thread while eight generate: each call finishes or raises the typed
    'closed' error; nothing hangs and nothing else is raised."""
    g = rt.load(onnx_model if fmt == "onnx" else tflite_model)
    g.generate(1)
    start = threading.Barrier(9)
    results: list[str] = []

    def work():
        start.wait()
        for _ in range(200):
            try:
                g.generate(3, seed=1)
                results.append("ok")
            except rt.InputError as e:
                assert "closed" in str(e)
                results.append("closed")
                return
            except BaseException as e:  # noqa: BLE001 - recorded and asserted below
                results.append(f"{type(e).__name__}: {e}")
                return

    threads = [threading.Thread(target=work, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    start.wait()
    g.close()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a generating thread hung after close()"
    assert set(results) <= {"ok", "closed"} and results.count("closed") == 8, set(results)


# ---------------------------------------------------------------- CLI outputs


def _cli(args: list[str], file_size_limit: int | None = None):
    """edgegan-runtime in a subprocess, optionally under RLIMIT_FSIZE (set in the child itself)."""
    import subprocess
    import sys

    limit = "" if file_size_limit is None else (
        f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({file_size_limit}, {file_size_limit})); ")
    code = limit + "import sys; from edgegan_runtime.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env)


def _one_line_error(r) -> str:
    """The one line the CLI printed (native libraries may print their own INFO lines around it)."""
    assert r.returncode == 1, (r.returncode, r.stderr)
    ours = [line for line in r.stderr.splitlines() if line.startswith("edgegan-runtime:")]
    assert len(ours) == 1 and ours[0].startswith("edgegan-runtime: error: "), r.stderr
    assert "Traceback" not in r.stderr
    return ours[0]


def test_generate_into_missing_folder_or_folder(tmp_path, tflite_model):
    from edgegan_runtime.cli import main

    target = tmp_path / "missing" / "dir" / "x.png"
    assert main(["generate", str(tflite_model), "-n", "2", "-o", str(target)]) == 1
    assert not (tmp_path / "missing").exists()
    assert main(["generate", str(tflite_model), "-n", "2", "-o", str(tmp_path)]) == 1
    assert list(tmp_path.iterdir()) == []


def test_generate_on_a_full_disk_leaves_nothing(tmp_path, tflite_model):
    """A file-size limit (RLIMIT_FSIZE) stands in for a full disk: the write fails with EFBIG."""
    r = _cli(["generate", str(tflite_model), "-n", "4", "-o", str(tmp_path / "g.png")], file_size_limit=200)
    assert "cannot write the PNG" in _one_line_error(r)
    assert list(tmp_path.iterdir()) == []  # neither the PNG nor the atomic write's temporary file


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs a read-only /sys")
def test_generate_into_a_read_only_folder(tflite_model):
    r = _cli(["generate", str(tflite_model), "-n", "1", "-o", "/sys/kernel/edgegan-test.png"])
    if r.returncode == 0:  # pragma: no cover - a writable /sys: not the case this test is for
        os.unlink("/sys/kernel/edgegan-test.png")
        pytest.skip("/sys/kernel is writable here")
    assert "cannot write the PNG" in _one_line_error(r)


@pytest.mark.parametrize("args", [["--nrow", "-1"], ["-n", "0"], ["--threads", "1000000"], ["-n", "10**9"]])
def test_generate_bad_numbers_are_usage_errors(tmp_path, tflite_model, args, capsys):
    from edgegan_runtime.cli import main

    with pytest.raises(SystemExit) as e:
        main(["generate", str(tflite_model), "-o", str(tmp_path / "x.png"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err
    assert list(tmp_path.iterdir()) == []
