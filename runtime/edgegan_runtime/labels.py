"""Class labels of conditional generators (issue 20): what a caller may pass, and the one-hot a file takes.

A conditional file has two inputs: z, float32 (N, L), and the label, a float32 one-hot (N, K), input 1
(its contract's ``label`` entry, see ``contract``). Callers give class indices, integers in [0, K);
``one_hot`` turns them into the rows the file takes: row i is 1.0 at column ``labels[i]`` and 0.0
elsewhere. ``edgegan_one_hot`` in ``c/edgegan.h`` is the same rule in C, bit for bit.

Every refusal is a ``LabelError`` with a one-line message that names the form expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgegan_runtime.errors import LabelError


def one_hot(labels: Any, k: int) -> np.ndarray:
    """float32 (n, k): row i is 1.0 at ``labels[i]`` and 0.0 elsewhere. ``labels``: integer class indices
    (n,); LabelError for anything else, or an index outside [0, k)."""
    idx = indices(labels, k)
    out = np.zeros((idx.shape[0], k), dtype=np.float32)
    out[np.arange(idx.shape[0]), idx] = np.float32(1)
    return out


def indices(labels: Any, k: int, n: int | None = None, name: str = "labels") -> np.ndarray:
    """``labels`` as int64 (n,) class indices, checked: integers (not floats, not bools), one per image
    (``n`` of them, when given), each in [0, k)."""
    want = f"{name} must be a sequence of {'' if n is None else f'{n} '}integer class indices in [0, {k})"
    if isinstance(labels, (list, tuple, range)):
        bad = next((v for v in labels if not _is_int(v)), None)
        if bad is not None:
            raise LabelError(f"{want}, got {_short(bad)} in it")
        values = [int(v) for v in labels]
    elif isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu" or labels.ndim != 1:
            raise LabelError(f"{want}, got a {labels.dtype} array of shape {labels.shape}")
        values = labels
    else:
        raise LabelError(f"{want}, got {_short(labels)}")
    if n is not None and len(values) != n:
        raise LabelError(f"{name} has {len(values)} entries for {n} images; give one class index per image")
    if len(values):
        array = isinstance(values, np.ndarray)
        low, high = (int(values.min()), int(values.max())) if array else (min(values), max(values))
        if low < 0 or high >= k:
            bad = low if low < 0 else high
            raise LabelError(f"{name}: class {bad} is outside [0, {k}); this model has {k} classes")
    return np.asarray(values, dtype=np.int64).reshape(len(values))


def resolve(n: int, k: int | None, label: Any = None, labels: Any = None, name: str = "model") -> np.ndarray | None:
    """The class index of each of ``n`` images (int64 (n,)), or None for an unconditional model (``k`` None).

    ``label``: one class for all n images; ``labels``: one per image. A conditional model needs exactly one
    of them; an unconditional one takes neither."""
    if k is None:
        if label is not None or labels is not None:
            raise LabelError(f"{name}: this model is unconditional; it takes no label (call without label= / labels=)")
        return None
    if label is not None and labels is not None:
        raise LabelError(f"{name}: give label= (one class for every image) or labels= (one per image), not both")
    if label is None and labels is None:
        raise LabelError(f"{name}: this model is conditional on {k} classes; give label=<class in [0, {k})> "
                         f"or labels=<one class per image>")
    if labels is not None:
        return indices(labels, k, n, name=f"{name}: labels")
    if not _is_int(label):
        raise LabelError(f"{name}: label must be an integer class index in [0, {k}), got {_short(label)}")
    if not 0 <= int(label) < k:
        raise LabelError(f"{name}: label: class {int(label)} is outside [0, {k}); this model has {k} classes")
    return np.full(n, int(label), dtype=np.int64)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
