"""The verifiers split by concept (issue 24): the op-shape table, and the old import names kept."""

from __future__ import annotations

import numpy as np
import pytest

from edgegan_runtime import onnx_check, tflite_check
from edgegan_runtime.errors import ModelFileError
from edgegan_runtime.tflite_flatbuffer import Obj, Verifier
from edgegan_runtime.tflite_op_shapes import OP_SHAPES, check_op_shapes


def test_every_checked_operator_has_one_rule_and_a_name():
    # CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED, RESHAPE, CONCATENATION, PAD, TRANSPOSE,
    # DEQUANTIZE, ADD, RESIZE_BILINEAR, MAX_POOL_2D: what exported generators use
    assert {3, 4, 67, 9, 22, 2, 34, 39, 6, 0, 23, 17} <= set(OP_SHAPES)
    assert all(callable(rule) for rule in OP_SHAPES.values())
    assert 102 not in OP_SHAPES  # BATCH_MATMUL: named in messages, shape left to the interpreter


def _shaped(v_bytes: bytearray, shape: tuple[int, ...]) -> Obj:
    """A tensor whose shape vector is appended to ``v_bytes`` (as the verifier would have read it)."""
    start = len(v_bytes)
    v_bytes += np.asarray(shape, dtype="<i4").tobytes()
    t = Obj()
    t.kind = "Tensor"
    t[4] = (start, len(shape), 4)
    return t


def test_a_rule_refuses_a_wrong_output_shape_and_unknown_operators_pass():
    buf = bytearray(8)
    tensors = [_shaped(buf, (1, 4)), _shaped(buf, (1, 5))]
    op = Obj()
    op.kind = "Operator"
    op[4] = 0
    op[6] = (len(buf), 1, 4)  # inputs: [0]
    op[8] = (len(buf) + 4, 1, 4)  # outputs: [1]
    v = Verifier(bytes(buf) + np.asarray([0, 1], dtype="<i4").tobytes(), "m.tflite")
    tanh, unknown = Obj(), Obj()
    tanh[10], unknown[10] = 28, 250  # builtin_code: TANH (output = input shape), one without a rule
    with pytest.raises(ModelFileError, match=r"operator 0 \(TANH\): output shape \[1, 5\] is not its input's \[1, 4\]"):
        check_op_shapes(v, op, 0, 0, tensors, [], [tanh])
    check_op_shapes(v, op, 0, 0, tensors, [], [unknown])


def test_old_import_names_still_work():
    for name in ("IDENTIFIER", "Entry", "TensorSpec", "inspect_tflite", "verify_tflite", "verify_tflite_metadata",
                 "_Verifier", "ints", "floats", "Obj", "TENSOR_TYPES", "MAX_WINDOW", "hybrid_operators"):
        assert hasattr(tflite_check, name), name
    assert tflite_check._Verifier is Verifier
    for name in ("verify_onnx", "wire_check", "check_structure", "check_shapes", "OnnxIO", "int8_scheme",
                 "MAX_RANK", "MAX_ELEMENTS", "LOOP_OPS"):
        assert hasattr(onnx_check, name), name
