"""Class-conditional teachers (issue 20): which label a generator takes, probed once and recorded.

A conditional teacher's forward takes z and a class label, in one of two forms:

* ``index``: an integer tensor (N,) of class indices (an ``nn.Embedding`` inside, BigGAN's and most
  cGANs'); int64 unless the teacher says int32 (an ONNX input's element type);
* ``onehot``: a float tensor (N, K).

The number of classes K is read from the teacher where it says it (an ONNX one-hot input's width, a
module's ``num_classes`` / ``n_classes`` attribute), given (``--num-classes``), or, for an index
teacher, probed: the smallest label its forward refuses (an embedding raises on an index past its
table). A given K that the teacher contradicts (a one-hot of another width, an index teacher that
refuses a label below K or accepts K) is refused. Every distiller-side label is an int64 index; the
source turns it into the teacher's form (``LabelForm.encode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from edgegan.errors import ConfigError, TeacherError

FORMS = ("index", "onehot")
MAX_CLASSES = 1000  # as models.conditional: ImageNet's
_ONEHOT_GUESSES = (10, 100, 1000, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 16, 20, 26, 40, 43, 200, 365)
K_HINT = "pass --num-classes K"


@dataclass(frozen=True)
class LabelForm:
    form: str  # "index" | "onehot"
    num_classes: int
    dtype: str = "int64"  # index: int64 or int32; onehot: float32

    def encode(self, y):
        """int64 indices (N,) -> the tensor this teacher takes."""
        import torch

        if self.form == "onehot":
            return torch.nn.functional.one_hot(y.long(), self.num_classes).float()
        return y.to(torch.int32 if self.dtype == "int32" else torch.int64)

    def describe(self) -> dict[str, Any]:
        return {"form": self.form, "num_classes": self.num_classes, "dtype": self.dtype}


def check_labels(y, k: int) -> None:
    """ConfigError unless ``y`` is an integer tensor (N,) of classes in [0, k)."""
    if y.dim() != 1 or y.is_floating_point() or str(y.dtype) == "torch.bool":
        raise ConfigError(f"labels must be integer class indices (N,), got {y.dtype} {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ConfigError(f"label outside [0, {k}): min {int(y.min())}, max {int(y.max())}")


def _runs(raw2: Callable, z, y) -> bool:
    import torch

    try:
        out = raw2(z, y)
    except Exception:  # noqa: BLE001 - probing a foreign model
        return False
    return isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[0] == z.shape[0]


def probe_form(raw2: Callable, z, spec: str, *, num_classes: int | None, form: str | None = None,
               declared_k: int | None = None, index_dtype: str = "int64") -> LabelForm:
    """The label form of a teacher ``raw2(z, label)`` that runs on latents ``z`` (a probe batch of the
    teacher's own latent shape). ``declared_k``: K as the teacher states it (ONNX width, attribute)."""
    import torch

    n = z.shape[0]
    if num_classes is not None and declared_k is not None and num_classes != declared_k:
        raise ConfigError(f"{spec}: --num-classes {num_classes} contradicts the teacher, which takes {declared_k} classes")
    k = num_classes or declared_k
    forms = [form] if form else list(FORMS)
    for f in forms:
        if f == "index":
            lf = LabelForm("index", 1, index_dtype)
            if not _runs(raw2, z, lf.encode(torch.zeros(n, dtype=torch.int64))):
                continue
            return LabelForm("index", _index_classes(raw2, z, k, spec, lf), index_dtype)
        guesses = [k] if k else list(_ONEHOT_GUESSES)
        for g in guesses:
            lf = LabelForm("onehot", g, "float32")
            if _runs(raw2, z, lf.encode(torch.zeros(n, dtype=torch.int64))):
                return lf
        if k:
            raise ConfigError(f"{spec}: the teacher does not run on a one-hot label of {k} classes"
                              + (" (--num-classes contradicts it?)" if num_classes else ""))
    tried = " or ".join(f"{f} labels" for f in forms)
    raise TeacherError(f"{spec}: the teacher takes a second input but runs on neither {tried}; a conditional "
                       f"teacher takes z and a class label as an integer index (N,) or a one-hot (N, K)"
                       + ("" if k else f"; {K_HINT} if it is not one of the usual counts"))


def _index_classes(raw2: Callable, z, k: int | None, spec: str, lf: LabelForm) -> int:
    """K of an index teacher: given/declared and checked (K-1 runs, K does not), else the smallest label
    it refuses, found by bisection."""
    import torch

    n = z.shape[0]

    def ok(v: int) -> bool:
        return _runs(raw2, z, lf.encode(torch.full((n,), v, dtype=torch.int64)))

    if k is not None:
        if not ok(k - 1):
            raise ConfigError(f"{spec}: the teacher refuses label {k - 1}; --num-classes {k} contradicts it "
                              "(it has fewer classes)")
        if ok(k):
            raise ConfigError(f"{spec}: the teacher accepts label {k}; --num-classes {k} contradicts it "
                              "(it has more classes)")
        return k
    if ok(MAX_CLASSES):
        raise TeacherError(f"{spec}: the teacher accepts any class index it is given (label {MAX_CLASSES} runs), so its "
                           f"number of classes cannot be probed; {K_HINT}")
    lo, hi = 0, MAX_CLASSES  # ok(lo), not ok(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    if hi < 2:
        raise TeacherError(f"{spec}: the teacher runs on label 0 alone; a conditional teacher has 2 classes or more")
    return hi


def module_classes(module) -> int | None:
    """K where a module states it (``num_classes``, ``n_classes``), else None."""
    for name in ("num_classes", "n_classes"):
        v = getattr(module, name, None)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 2:
            return v
    return None


def probe_conditional(raw2: Callable, spec: str, *, latent_dim: int | None, rank: int | None,
                      num_classes: int | None, recorded: dict | None = None, declared_k: int | None = None,
                      index_dtype: str = "int64") -> tuple[int, int, tuple[int, int, int], LabelForm]:
    """(L, latent rank, (C, H, W), label form) of a teacher ``raw2(z, label)``: the latent probe of
    ``sources._probe`` run with a label of each form in turn, then the form's K (``probe_form``).
    ``recorded``: the form a manifest records (no probing of the form; K is checked against it)."""
    import torch

    from edgegan.sources import _probe

    if recorded is not None:
        try:
            lf = LabelForm(str(recorded["form"]), int(recorded["num_classes"]), str(recorded.get("dtype", "int64")))
        except (KeyError, TypeError, ValueError):
            raise TeacherError(f"{spec}: the recorded label form {recorded!r} is not (form, num_classes, dtype)") from None
        if lf.form not in FORMS or not 2 <= lf.num_classes <= MAX_CLASSES:
            raise TeacherError(f"{spec}: recorded label form {recorded!r} is not one edgegan knows")
        L, r, shape = _probe(lambda z: raw2(z, lf.encode(torch.zeros(len(z), dtype=torch.int64))), latent_dim, rank, spec)
        return L, r, shape, lf
    if num_classes is not None and declared_k is not None and num_classes != declared_k:
        raise ConfigError(f"{spec}: --num-classes {num_classes} contradicts the teacher, which takes {declared_k} classes")
    k = num_classes or declared_k
    candidates = [LabelForm("index", 1, index_dtype)] + [LabelForm("onehot", g, "float32")
                                                         for g in ([k] if k else _ONEHOT_GUESSES)]
    errors = []
    for cand in candidates:
        try:
            L, r, shape = _probe(lambda z: raw2(z, cand.encode(torch.zeros(len(z), dtype=torch.int64))),
                                 latent_dim, rank, spec)
        except TeacherError as e:
            errors.append(str(e))
            continue
        z = torch.zeros((2, L) if r == 2 else (2, L, 1, 1))
        return L, r, shape, probe_form(raw2, z, spec, num_classes=num_classes, form=cand.form,
                                       declared_k=declared_k, index_dtype=index_dtype)
    raise TeacherError(f"{spec}: the teacher takes z and a second input, but runs with neither an integer class index "
                       f"(N,) nor a one-hot (N, K){'' if k else ' of the usual K (' + K_HINT + ')'}; "
                       f"{errors[0].split('; ', 1)[-1] if errors else ''}")


def conditional_forward(raw2: Callable, rank: int, lf: LabelForm) -> Callable:
    """forward(z (N, L), y int64 (N,)) for a teacher taking z of ``rank`` and labels of form ``lf``."""

    def forward(z, y):
        check_labels(y, lf.num_classes)
        return raw2(z if rank == 2 else z.reshape(z.shape[0], -1, 1, 1), lf.encode(y))

    return forward
