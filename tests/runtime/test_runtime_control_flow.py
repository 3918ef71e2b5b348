"""Issue 25, items 2 and 3: control flow that crashed (recursion overflowing the interpreter's stack)
or hung (loops whose trip count is data). Each file is built here from a real export and loaded in the
fuzz worker subprocess, so a regression shows as CRASH or HANG, not as a dead test run; each must be
a typed refusal before native code runs (bounded time: refused, not run)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import rewrite_tflite
from rt_fuzzing import run_fuzz

needs_ort = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
needs_litert = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="LiteRT not installed")


def outcomes(paths: list[Path]) -> dict[str, str]:
    res = run_fuzz(paths, timeout=60)  # a generous hang guard; the refusals come before any run
    return {p.name: out for p, out in res.each}


# ---------------------------------------------------------------- TFLite


def _control_flow(code: int, calls: list[tuple[int, int]], extra_subgraphs: int = 0):
    """An edit adding, for each (caller, callee), an operator ``code`` (IF 118, WHILE 119, CALL_ONCE
    129) in subgraph ``caller`` that names subgraph ``callee``; ``extra_subgraphs`` copies of subgraph 0
    are appended first."""
    import copy

    from ai_edge_litert import schema_py_generated as schema

    def edit(model):
        for _ in range(extra_subgraphs):
            model.subgraphs.append(copy.deepcopy(model.subgraphs[0]))
        oc = schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        model.operatorCodes.append(oc)
        opcode = len(model.operatorCodes) - 1
        for caller, callee in calls:
            sg = model.subgraphs[caller]
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.array([1], np.int32).tobytes(), np.uint8)  # cond / trip count
            model.buffers.append(buf)
            cond = schema.TensorT()
            cond.name, cond.shape, cond.type, cond.buffer = b"cond", np.array([1], np.int32), schema.TensorType.INT32, \
                len(model.buffers) - 1
            sg.tensors.append(cond)
            out = schema.TensorT()
            out.name, out.shape, out.type = b"cf_out", np.array([1], np.int32), schema.TensorType.INT32
            model.buffers.append(schema.BufferT())
            out.buffer = len(model.buffers) - 1
            sg.tensors.append(out)
            op = schema.OperatorT()
            op.opcodeIndex = opcode
            op.inputs = np.array([len(sg.tensors) - 2], np.int32)
            op.outputs = np.array([len(sg.tensors) - 1], np.int32)
            if code == 118:
                opts = schema.IfOptionsT()
                opts.thenSubgraphIndex = opts.elseSubgraphIndex = callee
                op.builtinOptionsType = schema.BuiltinOptions.IfOptions
            elif code == 119:
                opts = schema.WhileOptionsT()
                opts.condSubgraphIndex = opts.bodySubgraphIndex = callee
                op.builtinOptionsType = schema.BuiltinOptions.WhileOptions
            else:
                opts = schema.CallOnceOptionsT()
                opts.initSubgraphIndex = callee
                op.builtinOptionsType = schema.BuiltinOptions.CallOnceOptions
            op.builtinOptions = opts
            sg.operators.insert(0, op)
    return edit


@needs_litert
@pytest.mark.tflite
def test_tflite_control_flow_that_recursed_or_looped_is_refused(tflite_model, tmp_path):
    cases = {
        "if_self": (_control_flow(118, [(0, 0)]), "cycle"),
        "call_once_mutual": (_control_flow(129, [(0, 1), (1, 0)], extra_subgraphs=1), "cycle"),
        "if_out_of_range": (_control_flow(118, [(0, 7)]), "calls subgraph 7 of"),
        "while_loop": (_control_flow(119, [(0, 1)], extra_subgraphs=1), "WHILE loop"),
        "while_self": (_control_flow(119, [(0, 0)]), "WHILE loop"),
    }
    paths = {name: rewrite_tflite(tflite_model, tmp_path / f"{name}.tflite", edit) for name, (edit, _) in cases.items()}
    got = outcomes(list(paths.values()))
    for name, (_, match) in cases.items():
        out = got[paths[name].name]
        assert out.startswith("TYPED ModelFileError") and match in out, f"{name}: {out}"


def test_tflite_calls_that_fan_out_exponentially_are_bounded(tflite_model, tmp_path):
    """A DAG of IFs (subgraph k calls k+1 twice, 12 deep) runs 2**12 subgraphs: refused statically."""
    pytest.importorskip("ai_edge_litert")
    from edgegan_runtime.errors import ModelFileError
    from edgegan_runtime.tflite_check import verify_tflite

    calls = [(k, k + 1) for k in range(12) for _ in range(2)]
    p = rewrite_tflite(tflite_model, tmp_path / "fan.tflite", _control_flow(118, calls, extra_subgraphs=12))
    with pytest.raises(ModelFileError, match="runs more than 1000 subgraphs"):
        verify_tflite(p.read_bytes(), p.name)


# ---------------------------------------------------------------- ONNX


def _onnx_loops(onnx_model: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    import onnx
    from onnx import helper, numpy_helper

    def edited(name: str, edit) -> Path:
        m = onnx.load(str(onnx_model))
        edit(m)
        p = tmp_path / f"{name}.onnx"
        p.write_bytes(m.SerializeToString())
        return p

    def loop(trips: int):
        def edit(m):
            body = helper.make_graph(
                [helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, [])],
                [helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, [])])
            m.graph.initializer.append(numpy_helper.from_array(np.array(trips, np.int64), "trips"))
            m.graph.initializer.append(numpy_helper.from_array(np.array(True), "go"))
            m.graph.node.insert(0, helper.make_node("Loop", ["trips", "go"], [], body=body))
        return edit

    def recursive_function(m):
        f = helper.make_function("local", "Rec", ["x"], ["y"], [helper.make_node("Rec", ["x"], ["y"], domain="local")],
                                 [helper.make_opsetid("", 17)])
        m.functions.append(f)
        m.opset_import.append(helper.make_opsetid("local", 1))
        out = m.graph.output[0].name
        m.graph.node.append(helper.make_node("Rec", [out], ["rec_out"], domain="local"))

    return {
        "loop_endless": (edited("loop_endless", loop(2**63 - 1)), "a Loop node"),
        "loop_2e31": (edited("loop_2e31", loop(2**31)), "a Loop node"),
        "function_recursion": (edited("function_recursion", recursive_function), "calls itself"),
    }


@needs_ort
@pytest.mark.onnx
def test_onnx_loops_and_recursion_are_refused(onnx_model, tmp_path):
    cases = _onnx_loops(onnx_model, tmp_path)
    got = outcomes([p for p, _ in cases.values()])
    for name, (path, match) in cases.items():
        out = got[path.name]
        assert out.startswith("TYPED ModelFileError") and match in out, f"{name}: {out}"


# ---------------------------------------------------------------- a latent of another array type (issue 25, item 8)


@needs_litert
@pytest.mark.tflite
def test_a_matrix_latent_on_an_int8_model_is_an_ordinary_array(tflite_int8io_model):
    import edgegan_runtime as rt

    if tflite_int8io_model is None:
        pytest.skip("no int8 model on this machine")
    with rt.load(tflite_int8io_model) as g:
        z = rt.latent(3, g.latent_dim, 0)
        with warnings.catch_warnings():  # numpy discourages np.matrix; a caller may still pass one
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            mz = np.matrix(z)
        assert np.array_equal(g.generate_from(mz), g.generate_from(z))
        masked = np.ma.masked_array(z, mask=np.zeros_like(z, bool))
        assert np.array_equal(g.generate_from(masked), g.generate_from(z))
