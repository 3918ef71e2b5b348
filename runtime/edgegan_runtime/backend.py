"""The runtime backends: one registry, defined here, and the adapters that drive each interpreter.

=============== ============ ======================= =========================================== ==============
name            formats      pip extra               import                                      refuses
=============== ============ ======================= =========================================== ==============
onnxruntime     onnx         edgegan-runtime[onnx]   onnxruntime (+ onnx, to verify files)
litert          tflite       edgegan-runtime[litert] ai_edge_litert.interpreter
tflite-runtime  tflite       edgegan-runtime[tflite] tflite_runtime.interpreter (numpy < 2 boards) dynamic-int8
=============== ============ ======================= =========================================== ==============

A backend runs every precision of its formats except those it ``refuses``, each with the reason; the
runtime refuses such a file with ``BackendUnavailableError`` before native code sees it (a manifest's
``precision``, or the file's own structure: int8 weights feeding float32 activations are
"dynamic-int8"). ``edgegan formats`` shows the same table.

Interpreters are imported only when a backend is built. An adapter turns a verified model into
``Session`` objects with one method, ``run(z, batch, onehot=None) -> float32 (batch, C, H, W)``, where
``batch`` is one of the model's batch sizes (any size when the batch is dynamic) and ``onehot`` the
label input (batch, K) of a conditional model (issue 20); an image-to-image model's sessions take its
images instead of z, (batch, ...) in the file's layout (issue 21). A ``Session`` serves one
caller at a time; the generator keeps a pool of them. ONNX Runtime sessions share one thread-safe
InferenceSession and are cheap (an IOBinding each); a TFLite interpreter is not thread-safe, so each
TFLite session is a whole interpreter, and the pool holds at most ``pool_size`` of them.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edgegan_runtime.checks import CheckedModel
from edgegan_runtime.errors import BackendError, BackendUnavailableError
from edgegan_runtime.tflite_check import TensorSpec


@dataclass(frozen=True)
class BackendSpec:
    name: str
    formats: tuple[str, ...]
    extra: str
    module: str  # imported to build a session; its failure means "not installed"
    distribution: str  # for version reports
    pool_size: int  # most sessions a generator builds for concurrent callers (each is single-threaded)
    open: Callable[..., Callable[[], "Session"]]  # (module, checked, threads) -> session factory
    refuses: tuple[tuple[str, str], ...] = ()  # (precision, why) this backend cannot run, measured

    def refusal(self, precision: str | None) -> str | None:
        """Why this backend cannot run files of ``precision``, or None when it can."""
        return dict(self.refuses).get(precision) if precision is not None else None

    def runs(self, fmt: str, precision: str) -> bool:
        return fmt in self.formats and self.refusal(precision) is None


class Session:
    """One native session or interpreter; ``run`` is called with a C-contiguous float32 (batch, latent), and
    a conditional model's C-contiguous float32 one-hot (batch, K)."""

    def run(self, z: np.ndarray, batch: int, onehot: np.ndarray | None = None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


def _load_module(spec: BackendSpec) -> Any:
    try:
        return importlib.import_module(spec.module)
    except Exception as e:  # ImportError, or a binary built against another numpy
        raise BackendUnavailableError(
            f"backend {spec.name!r} is not installed or does not import ({type(e).__name__}: {str(e)[:120]}); "
            f"pip install 'edgegan-runtime[{spec.extra}]'"
        ) from None


# ---------------------------------------------------------------- ONNX Runtime


def _ort_session(ort: Any, checked: CheckedModel, threads: int) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # EXTENDED: every fusion (BatchNorm into ConvTranspose, Conv+Tanh, ...) but not the x86 NCHWc
    # layout transform of ENABLE_ALL, which costs the DCGAN students here 5 us at d=2, batch 1,
    # and gains nothing measurable at d=8 or d=32 (bench/results/runtime.md).
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.log_severity_level = 4  # fatal only: a refusal is one typed error, not also an ERROR line on stderr
    try:
        return _quiet_session_class(ort)(checked.data, so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise BackendError(f"{checked.path}: ONNX Runtime refused the model ({_one_line(e)})") from None


class _OrtRunner(Session):
    """One caller's view of a shared InferenceSession (whose Run is thread-safe): an IOBinding with
    preallocated input and output buffers per batch size, which saves the per-call allocation and
    feed-dict conversion (about 1.5 us of 16 at d=2, batch 1)."""

    MAX_BINDINGS = 4

    def __init__(self, ort: Any, sess: Any, checked: CheckedModel):
        self.name = str(checked.path)
        self.sess = sess
        self._ort = ort
        self._in, self._out = checked.onnx_io.input_name, checked.onnx_io.output_name
        self._shape = checked.onnx_io.input_shape or (checked.latent_dim,), checked.output_shape
        self._label = checked.onnx_io.label_name, checked.num_classes  # a conditional model's second input
        self._bindings: dict[int, tuple[Any, np.ndarray, np.ndarray, np.ndarray | None]] = {}
        self._options = ort.RunOptions()
        self._options.log_severity_level = 4
        csess = getattr(sess, "_sess", None)
        # The C++ session's entry point skips the wrapper's per-call checks, which ours make redundant.
        self._run_bound = (
            (lambda b: csess.run_with_iobinding(b._iobinding, self._options))
            if csess is not None and hasattr(csess, "run_with_iobinding")
            else (lambda b: sess.run_with_iobinding(b, self._options))
        )

    def _binding(self, batch: int) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray | None]:
        got = self._bindings.get(batch)
        if got is None:
            if len(self._bindings) >= self.MAX_BINDINGS:
                self._bindings.pop(next(iter(self._bindings)))
            x = np.zeros((batch, *self._shape[0]), np.float32)
            y = np.zeros((batch, *self._shape[1]), np.float32)
            b = self.sess.io_binding()
            b.bind_input(self._in, "cpu", 0, np.float32, x.shape, x.ctypes.data)
            b.bind_output(self._out, "cpu", 0, np.float32, y.shape, y.ctypes.data)
            h = None
            if self._label[0] is not None:
                h = np.zeros((batch, self._label[1]), np.float32)
                b.bind_input(self._label[0], "cpu", 0, np.float32, h.shape, h.ctypes.data)
            got = self._bindings[batch] = (b, x, y, h)
        return got

    def run(self, z: np.ndarray, batch: int, onehot: np.ndarray | None = None) -> np.ndarray:
        try:
            b, x, y, h = self._binding(batch)
            np.copyto(x.reshape(z.shape), z)  # a view: z (N, L) into a (N, L) or (N, L, 1, 1) buffer
            if h is not None:
                np.copyto(h, onehot)
            self._run_bound(b)
            return y.copy()
        except Exception as e:
            raise BackendError(f"{self.name}: ONNX Runtime failed ({_one_line(e)})") from None


def _quiet_session_class(ort: Any) -> type:
    """InferenceSession without its provider fallback, which prints to stdout and retries the same
    CPU provider when a model is refused; a refusal must surface as one typed error instead."""

    class QuietSession(ort.InferenceSession):
        _enable_fallback = property(lambda self: False, lambda self, value: None)

    return QuietSession


class _OrtImageRunner(Session):
    """An image-to-image file's caller (issue 21): like ``_OrtRunner``, an IOBinding with preallocated buffers,
    kept per input shape (batch and size: an ONNX image file takes any size that is a multiple of its own)."""

    MAX_BINDINGS = 4

    def __init__(self, ort: Any, sess: Any, checked: CheckedModel):
        self.name = str(checked.path)
        self.sess = sess
        self._in, self._out = checked.onnx_io.input_name, checked.onnx_io.output_name
        self._spec = checked.image
        self._bindings: dict[tuple[int, ...], tuple[Any, np.ndarray, np.ndarray]] = {}
        self._options = ort.RunOptions()
        self._options.log_severity_level = 4

    def run(self, x: np.ndarray, batch: int, onehot: np.ndarray | None = None) -> np.ndarray:
        try:
            got = self._bindings.get(x.shape)
            if got is None:
                if len(self._bindings) >= self.MAX_BINDINGS:
                    self._bindings.pop(next(iter(self._bindings)))
                h, w = (x.shape[2], x.shape[3]) if self._spec.layout == "NCHW" else (x.shape[1], x.shape[2])
                xb = np.zeros(x.shape, np.float32)
                yb = np.zeros((x.shape[0], *self._spec.output_dims(h, w)), np.float32)
                b = self.sess.io_binding()
                b.bind_input(self._in, "cpu", 0, np.float32, xb.shape, xb.ctypes.data)
                b.bind_output(self._out, "cpu", 0, np.float32, yb.shape, yb.ctypes.data)
                got = self._bindings[x.shape] = (b, xb, yb)
            b, xb, yb = got
            np.copyto(xb, x)
            self.sess.run_with_iobinding(b, self._options)
            return yb.copy()
        except Exception as e:
            raise BackendError(f"{self.name}: ONNX Runtime failed ({_one_line(e)})") from None


def _open_ort(ort: Any, checked: CheckedModel, threads: int) -> Callable[[], Session]:
    sess = _ort_session(ort, checked, threads)
    if checked.image is not None:
        return lambda: _OrtImageRunner(ort, sess, checked)
    return lambda: _OrtRunner(ort, sess, checked)


# ---------------------------------------------------------------- TFLite (LiteRT, tflite-runtime)


@dataclass
class _Plan:
    subgraph: int
    input: TensorSpec
    output: TensorSpec
    allocated_batch: int | None = None
    label: TensorSpec | None = None  # a conditional model's one-hot input


class _TfliteSession(Session):
    """One interpreter. The wrapper's per-subgraph SetTensor/Invoke/GetTensor are called directly:
    the same calls the public SignatureRunner makes, minus a resize and an allocation per call."""

    def __init__(self, interp_mod: Any, checked: CheckedModel, threads: int, allocate: bool):
        self.name = name = str(checked.path)
        try:
            self.interpreter = interp_mod.Interpreter(model_content=checked.data, num_threads=threads)
        except Exception as e:
            raise BackendError(f"{name}: the TFLite interpreter refused the model ({_one_line(e)})") from None
        self._w = self.interpreter._interpreter
        # The output after the batch, as the file declares it (a latent file's (C, H, W); an image file's in its
        # layout, issue 21): every signature's is the same (checks.py).
        self._image = tuple(checked.entries[0].output.shape[1:])
        self._plans: dict[int | None, _Plan] = {}
        for e in checked.entries:
            sg = e.subgraph
            if e.key is not None:
                got = self._w.GetSubgraphIndexFromSignature(e.key)
                if got != sg:
                    raise BackendError(f"{name}: signature {e.key!r} runs subgraph {got}, the file says {sg}")
            batch = None if checked.batch_sizes is None else e.input.shape[0]
            self._plans.setdefault(batch, _Plan(sg, e.input, e.output, label=e.label))
        if allocate:  # the smallest batch only: the others allocate on first use (1.2 MB for batch_64 at d=2)
            batch = min(self._plans, key=lambda b: b or 0)
            self._prepare(self._plans[batch], batch or 1)

    def _prepare(self, plan: _Plan, batch: int) -> None:
        try:
            for t in (plan.input, plan.label) if plan.label is not None else (plan.input,):
                if t.shape_signature[:1] == (-1,) or t.shape[0] != batch:
                    shape = np.array((batch, *t.shape[1:]), dtype=np.int32)
                    self._w.ResizeInputTensor(t.index, shape, False, plan.subgraph)
            self._w.AllocateTensors(plan.subgraph)
            got = tuple(int(d) for d in self._w.TensorSize(plan.output.index, plan.subgraph))
        except Exception as e:
            raise BackendError(f"{self.name}: cannot allocate the model's tensors ({_one_line(e)})") from None
        # The interpreter recomputes shapes; a file whose declared output disagrees is corrupt.
        if got != (batch, *self._image):
            want = [batch, *self._image]
            raise BackendError(f"{self.name}: the model computes images of shape {list(got)}, its file declares {want}")
        plan.allocated_batch = batch

    def run(self, z: np.ndarray, batch: int, onehot: np.ndarray | None = None) -> np.ndarray:
        plan = self._plans.get(batch) or self._plans[None]
        if plan.allocated_batch != batch:
            self._prepare(plan, batch)
        x = z if plan.input.dtype == "float32" else _quantize(z, plan.input)
        w, sg = self._w, plan.subgraph
        try:
            if plan.label is not None:  # exact in int8: the exporter checked 0 and 1 are two of its levels
                label = plan.label
                w.SetTensor(label.index, onehot if label.dtype == "float32" else _quantize(onehot, label), sg)
            w.SetTensor(plan.input.index, x, sg)
            w.Invoke(sg)
            y = w.GetTensor(plan.output.index, sg)
        except Exception as e:
            raise BackendError(f"{self.name}: the TFLite interpreter failed ({_one_line(e)})") from None
        if y.shape != (batch, *self._image):
            want = [batch, *self._image]
            raise BackendError(f"{self.name}: the model returned shape {list(y.shape)}, expected {want}")
        return y if plan.output.dtype == "float32" else _dequantize(y, plan.output)


def _quantize(z: np.ndarray, t: TensorSpec) -> np.ndarray:
    """q = clamp(round(z / scale) + zero_point), rounding half away from zero, in float32: as
    TFLite's own QUANTIZE kernel, so feeding an int8 input gives what a float input would have."""
    info = np.iinfo(t.dtype)
    v = z / np.float32(t.scale)
    q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + np.float32(t.zero_point)
    return np.clip(q, info.min, info.max).astype(t.dtype)


def _dequantize(y: np.ndarray, t: TensorSpec) -> np.ndarray:
    return ((y.astype(np.float32) - np.float32(t.zero_point)) * np.float32(t.scale)).astype(np.float32)


def _open_tflite(interp_mod: Any, checked: CheckedModel, threads: int) -> Callable[[], Session]:
    # Built and allocated now, so a model that cannot run fails at load, not at the first call.
    first = [_TfliteSession(interp_mod, checked, threads, allocate=True)]

    def make() -> Session:
        # The first call hands out the interpreter built at load; later ones build more for the pool.
        return first.pop() if first else _TfliteSession(interp_mod, checked, threads, allocate=False)

    return make


BACKENDS: dict[str, BackendSpec] = {
    s.name: s
    for s in (
        BackendSpec("onnxruntime", ("onnx",), "onnx", "onnxruntime", "onnxruntime", 64, _open_ort),
        BackendSpec("litert", ("tflite",), "litert", "ai_edge_litert.interpreter", "ai-edge-litert", 4, _open_tflite),
        BackendSpec(
            "tflite-runtime",
            ("tflite",),
            "tflite",
            "tflite_runtime.interpreter",
            "tflite-runtime",
            4,
            _open_tflite,
            refuses=(
                (
                    "dynamic-int8",
                    "tflite-runtime 2.14 has no hybrid TRANSPOSE_CONV kernel (int8 weights with float32 "
                    "activations: transpose_conv.cc weights->type != input->type); use the litert backend, "
                    "or export --quantize int8 or weight-int8",
                ),
            ),
        ),
    )
}
# Order of preference when the caller does not choose: first installed wins.
PREFERENCE = {"onnx": ("onnxruntime",), "tflite": ("litert", "tflite-runtime")}

_available: dict[str, bool] = {}


def is_available(name: str) -> bool:
    if name not in _available:
        try:
            _load_module(BACKENDS[name])
            _available[name] = True
        except BackendUnavailableError:
            _available[name] = False
    return _available[name]


def backends() -> list[str]:
    """Names of the backends that import in this environment, in order of preference."""
    return [n for n in BACKENDS if is_available(n)]


def get_spec(name: str) -> BackendSpec:
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, list(BACKENDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BackendUnavailableError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)}){hint}")
    return BACKENDS[name]


def choose(fmt: str, backend: str | None, name: str, precision: str | None = None) -> tuple[BackendSpec, Any]:
    """The backend spec and its imported module for a file of format ``fmt`` (and ``precision``, when known).

    A backend that refuses ``precision`` is never chosen: asked for by name, it raises
    BackendUnavailableError with its reason; when choosing, the next installed backend is taken."""
    if backend is not None:
        spec = get_spec(backend)
        if fmt not in spec.formats:
            raise BackendUnavailableError(f"{name}: backend {backend!r} cannot run {fmt.upper()} files")
        why = spec.refusal(precision)
        if why is not None:
            raise BackendUnavailableError(f"{name}: backend {backend!r} cannot run {precision} files: {why}")
        return spec, _load_module(spec)
    refused = []
    for cand in PREFERENCE[fmt]:
        if is_available(cand):
            spec = BACKENDS[cand]
            why = spec.refusal(precision)
            if why is not None:
                refused.append(f"{cand}: {why}")
                continue
            return spec, _load_module(spec)
    if refused:
        raise BackendUnavailableError(f"{name}: no installed backend runs {precision} files ({'; '.join(refused)})")
    extras = " or ".join(f"'edgegan-runtime[{BACKENDS[c].extra}]'" for c in PREFERENCE[fmt])
    raise BackendUnavailableError(f"{name}: no backend for {fmt.upper()} files is installed; pip install {extras}")


def backend_version(spec: BackendSpec) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(spec.distribution)
    except metadata.PackageNotFoundError:
        return None


def _one_line(e: BaseException) -> str:
    return (" ".join(str(e).split()) or type(e).__name__)[:300]
