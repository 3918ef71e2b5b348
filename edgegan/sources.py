"""Load a generator from any of the forms the distiller accepts.

| spec                                   | how it runs                                             |
|----------------------------------------|---------------------------------------------------------|
| an edgegan run directory / manifest    | rebuilt from the manifest, weights sha256-checked       |
| ``file.pt`` / ``file.ts`` TorchScript  | ``torch.jit.load`` (a TorchScript archive, not a pickle) |
| ``file.onnx``                          | onnxruntime (MSE distillation needs only its outputs)   |
| ``pkg.module:factory`` + ``--teacher-weights W.safetensors`` | ``factory()`` then safetensors weights |

What a foreign generator looks like is read once, recorded in the student's manifest
(``distill.teacher``) and read back from there by every later command (``load_recorded``):

* **latent shape**: z of shape (N, L) or (N, L, 1, 1) (the PyTorch DCGAN example's). L is read from
  the source (manifest, ONNX input shape, ``module.latent_dim``) or probed with the usual sizes;
  ``forward`` always takes (N, L) and reshapes for the teacher, ``latent_rank`` says which it takes.
* **output shape**: (C, H, W) from one forward pass; any size, square or not.
* **output range**: edgegan's convention is [-1, 1]. A foreign teacher's range is given
  (``--teacher-range 0,1``) or measured on a probe batch ([0, 1] when no output is negative, else
  [-1, 1]); ``forward`` maps it affinely to [-1, 1], so the student is trained and exported in
  edgegan's convention and every metric sees the same images. Outputs outside the declared range
  are reported (a warning, and ``outside`` in the record).
* **references** are stored absolute (run directories and files resolved, weights too), plus the
  directory a ``module:factory`` was imported from (``import_dir``, the directory ``distill`` ran in),
  so later commands find the teacher from any directory.

* **labels** (issue 20): a conditional generator takes z and a class label, as an integer index (N,)
  or a one-hot (N, K); the form and K are probed (``edgegan.teacher_labels``) or given
  (``--num-classes``) and recorded; ``forward(z, y)`` then takes int64 indices y (N,) and hands the
  teacher its own form. A generator with three or more inputs is refused (``ConditionalTeacherError``).
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgegan.errors import ConditionalTeacherError, ConfigError, TeacherError
from edgegan.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)

_PROBE_LATENTS = (100, 128, 64, 256, 512, 200, 120, 32, 16)
EDGEGAN_RANGE = (-1.0, 1.0)  # what every edgegan model makes, and what a teacher's outputs are mapped to
PROBE_SAMPLES = 64  # latents of the range probe
PROBE_SEED = 0
RANGE_TOLERANCE = 1e-3  # fraction of the range's span an output may overshoot before it is "outside"
LATENT_RANKS = (2, 4)  # z (N, L) or (N, L, 1, 1)
CONDITIONAL_HINT = ("edgegan distils generators that take z, or z and a class label (an integer index (N,) or a "
                    "one-hot (N, K)); wrap the teacher so that it takes one of those")


def parse_range(text: str | tuple | list | None) -> tuple[float, float] | None:
    """``"0,1"`` or ``(0, 1)`` -> (0.0, 1.0); ConfigError unless two finite numbers lo < hi."""
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        lo, hi = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"teacher-range must be two numbers LO,HI (e.g. 0,1 or -1,1), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"teacher-range must be finite with LO < HI, got {text!r}")
    return lo, hi


def to_edgegan_range(x, rng: tuple[float, float]):
    """The affine map from a teacher's range [lo, hi] to edgegan's [-1, 1]: 2 (x - lo) / (hi - lo) - 1."""
    lo, hi = rng
    if (lo, hi) == EDGEGAN_RANGE:
        return x
    return (x - lo) * (2.0 / (hi - lo)) - 1.0


def mapping_text(rng: tuple[float, float]) -> str:
    lo, hi = rng
    return "identity" if (lo, hi) == EDGEGAN_RANGE else f"x_edgegan = 2 * (x_teacher - {lo:g}) / {hi - lo:g} - 1"


class FactoryRefused(TeacherError):
    """Code named by a file, not typed by the user: a ``module:factory`` read from a manifest (never
    imported) or a TorchScript teacher recorded there (never loaded: ``torch.jit.load`` runs the
    archive's code, issue 25)."""


TORCHSCRIPT_HINT = ("a TorchScript teacher is code (loading it runs the archive's own code) and runs only when typed "
                    "on the command line (a manifest never names code to run); pass --teacher {spec} again, or "
                    "--trust-teacher, or hand teachers over as ONNX")


@dataclass
class GeneratorSource:
    kind: str  # "edgegan" | "torchscript" | "onnx" | "factory"
    spec: str  # absolute path (run directory or file), or module:factory
    latent_dim: int
    output_shape: tuple[int, int, int]  # (C, H, W)
    params: int | None
    forward: Callable  # torch.Tensor (N, latent) -> torch.Tensor (N, C, H, W) in [-1, 1], no grad
    module: Any = None  # the torch module when there is one (export, bench); it takes z of ``latent_rank``
    info: dict[str, Any] = field(default_factory=dict)
    latent_rank: int = 2  # 2: the teacher takes z (N, L); 4: z (N, L, 1, 1)
    range: tuple[float, float] = EDGEGAN_RANGE  # the teacher's own output range, mapped to [-1, 1] by forward
    range_source: str = "edgegan"  # "edgegan" (a run), "given" (--teacher-range), "measured" (probe batch)
    probe: dict[str, Any] = field(default_factory=dict)  # min, max, outside fraction on the probe batch
    # An edgegan teacher's manifest, read once when it is loaded and read from here by distill, the terms
    # and bench (never re-read from the run); None for foreign teachers.
    manifest: dict[str, Any] | None = field(default=None, repr=False)
    # A conditional teacher's label form (teacher_labels.LabelForm); forward then takes (z, y), y int64 (N,)
    labels: Any = None
    input_names: dict[str, str] | None = None  # a conditional ONNX teacher's inputs: {"z": name, "label": name}
    class_names: list[str] | None = None

    @property
    def num_classes(self) -> int | None:
        return None if self.labels is None else self.labels.num_classes

    @property
    def latent_shape(self) -> list[int]:
        return [self.latent_dim] if self.latent_rank == 2 else [self.latent_dim, 1, 1]

    def module_input(self, z):
        """z (N, L) shaped as the teacher's module takes it."""
        return z if self.latent_rank == 2 else z.reshape(z.shape[0], -1, 1, 1)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "spec": self.spec, "latent_dim": self.latent_dim, "latent_shape": self.latent_shape,
                "output_shape": list(self.output_shape), "params": self.params,
                **({} if self.labels is None else {"labels": self.labels.describe(), "class_names": self.class_names}),
                "range": {"declared": list(self.range), "source": self.range_source, "mapping": mapping_text(self.range),
                          "probe": self.probe},
                **self.info}


def load_generator(spec: str, *, weights: str | None = None, latent_dim: int | None = None,
                   device: str = "cpu", latent_rank: int | None = None,
                   output_range: tuple[float, float] | str | None = None,
                   import_dir: str | None = None, check_range: bool = True,
                   allow_factory: bool = True, allow_torchscript: bool | None = None,
                   num_classes: int | None = None, label_form: dict | None = None) -> GeneratorSource:
    """Load ``spec``; ``latent_rank`` and ``output_range`` skip the probes (as recorded in a manifest);
    ``import_dir``: where a module:factory's module is found when it is not importable otherwise;
    ``check_range`` False skips the probe batch where the range is known (a latency probe's load time);
    ``allow_factory=False`` for a spec read from a file (a manifest): a manifest must never name
    code to run, so a ``module:factory`` there is refused before anything is imported (issue 14), and
    so is a TorchScript file, before ``torch.jit.load`` runs its code (issue 25), unless
    ``allow_torchscript`` (``bench --trust-teacher``; default: as ``allow_factory``). ``num_classes``
    (``--num-classes``) and ``label_form`` (as recorded: form, num_classes, dtype) for a conditional teacher."""
    from edgegan import teacher_files  # the foreign forms; it imports this module's helpers

    if latent_rank is not None and latent_rank not in LATENT_RANKS:
        raise ConfigError(f"latent rank must be 2 (N, L) or 4 (N, L, 1, 1), got {latent_rank!r}")
    rng = parse_range(output_range)
    p = Path(spec)
    if p.is_dir() or p.name == MANIFEST_NAME:
        src = _from_run(spec, device)
        if num_classes is not None and num_classes != src.num_classes:
            raise ConfigError(f"{spec}: --num-classes {num_classes} contradicts the run, whose generator takes "
                              + (f"{src.num_classes} classes" if src.num_classes else "no label"))
        if rng is not None and rng != EDGEGAN_RANGE:
            raise ConfigError(f"{spec}: an edgegan run makes images in [-1, 1]; --teacher-range {rng} contradicts it")
        if check_range:
            _check_range(src, src.range, "edgegan")
        return src
    if _is_factory(spec) and not p.exists():
        if not allow_factory:
            refuse_recorded_factory(spec, weights)
        src = teacher_files.from_factory(spec, weights, latent_dim, latent_rank, device, import_dir,
                                         labels=(num_classes, label_form))
    else:
        if not p.exists():
            raise TeacherError(f"{spec}: no such teacher (expected a run directory, .onnx, TorchScript file, or "
                               "module:factory)")
        if not p.is_file():  # a FIFO or a device: opening it could block forever
            raise TeacherError(f"{spec}: teacher is not a regular file")
        if p.stat().st_size == 0:
            raise TeacherError(f"{spec}: teacher file is empty")
        p = p.resolve()
        head = _head(p, spec)
        if p.suffix == ".onnx" or (head[:1] == b"\x08" and p.suffix not in (".pt", ".ts", ".pth")):
            src = teacher_files.from_onnx(p, latent_dim, labels=(num_classes, label_form))
        elif head[:2] == b"PK":  # TorchScript archives are zip files
            # issue 25: torch.jit.load runs the archive's __setstate__, then bench runs its forward
            if not (allow_factory if allow_torchscript is None else allow_torchscript):
                raise FactoryRefused(f"{spec}: " + TORCHSCRIPT_HINT.format(spec=spec))
            src = teacher_files.from_torchscript(p, latent_dim, latent_rank, device, labels=(num_classes, label_form))
        else:
            raise TeacherError(f"{spec}: unrecognised teacher file (not ONNX, not a TorchScript archive)")
    if num_classes is not None and src.labels is None:
        raise ConfigError(f"{spec}: --num-classes {num_classes} given, but the teacher takes z alone (no label)")
    _set_range(src, rng, check_range)
    return src


def load_recorded(teacher: dict[str, Any], run_dir: str | os.PathLike | None = None,
                  device: str = "cpu", check_range: bool = True, allow_factory: bool = False,
                  allow_torchscript: bool = False) -> GeneratorSource:
    """The teacher a student's manifest records (``distill.teacher``), with its latent shape and range
    as recorded; a file moved with its run is found relative to the run (``spec_from_run``). A recorded
    ``module:factory`` is refused unless ``allow_factory`` (the user typed it again: a manifest never
    names code to run)."""
    spec = teacher["spec"]
    if run_dir is not None and teacher.get("spec_from_run") and not Path(spec).exists() and not _is_factory(spec):
        alt = Path(run_dir) / teacher["spec_from_run"]
        if alt.exists():
            spec = str(alt.resolve())
    shape = teacher.get("latent_shape")
    rank = None if shape is None else (2 if len(shape) == 1 else 4)
    rng = (teacher.get("range") or {}).get("declared")
    return load_generator(spec, weights=teacher.get("weights"), latent_dim=teacher.get("latent_dim"), device=device,
                          latent_rank=rank, output_range=tuple(rng) if rng else None,
                          import_dir=teacher.get("import_dir"), check_range=check_range,
                          allow_factory=allow_factory, allow_torchscript=allow_factory or allow_torchscript,
                          label_form=teacher.get("labels"))


def refuse_recorded_factory(spec: str, weights: str | None = None, kind: str | None = None,
                            allow_torchscript: bool = False) -> None:
    """Raise FactoryRefused if ``spec``, read from a file, names code: a ``module:factory`` (issue 14)
    or a TorchScript file (recorded as such, or a zip archive where the spec points; issue 25)."""
    if not isinstance(spec, str):
        return
    if _is_factory(spec) and not Path(spec).exists():
        raise FactoryRefused(f"{spec}: a module:factory teacher is run only when typed on the command line "
                             f"(a manifest never names code to run); pass --teacher {spec}"
                             + (f" --teacher-weights {weights}" if weights else "") + " again")
    p = Path(spec)
    if allow_torchscript:
        return
    if kind == "torchscript" or (p.is_file() and p.name != MANIFEST_NAME and _head(p, spec)[:2] == b"PK"):
        raise FactoryRefused(f"{spec}: " + TORCHSCRIPT_HINT.format(spec=spec))


def _head(p: Path, spec: str) -> bytes:
    """The first bytes of a teacher file, read without blocking (a FIFO swapped in is refused)."""
    import stat

    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise TeacherError(f"{spec}: cannot read the teacher ({e.strerror or type(e).__name__})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TeacherError(f"{spec}: teacher is not a regular file")
        return os.read(fd, 4)
    finally:
        os.close(fd)


def _is_factory(spec: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec) is not None


def _wrap(module, device):
    import torch

    module.eval().to(device)

    def forward(z: torch.Tensor, *label: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # not inference_mode: its tensors cannot enter the student's loss
            return module(z.to(device), *(y.to(device) for y in label))

    return forward


def _from_run(spec: str, device: str) -> GeneratorSource:
    from edgegan.checkpoint import load_run
    from edgegan.errors import CheckpointError

    try:
        run = load_run(spec)
    except CheckpointError as e:
        raise TeacherError(str(e)) from None
    from edgegan.teacher_labels import LabelForm

    m = run.manifest["model"]
    k = run.num_classes
    return GeneratorSource("edgegan", str(run.run_dir.resolve()), run.latent_dim, tuple(m["output"]["shape"]),
                           m["params"], _wrap(run.generator, device), run.generator,
                           {"family": m["family"], "args": m["args"], "sha256": m["weights"]["sha256"]},
                           manifest=run.manifest, labels=LabelForm("index", k) if k else None,
                           class_names=run.class_names)


def _probe(raw, latent_dim: int | None, rank: int | None, spec: str) -> tuple[int, int, tuple[int, int, int]]:
    """(L, rank, (C, H, W)) of a module called with z of shape (2, L) or (2, L, 1, 1)."""
    import torch

    cands = [latent_dim] if latent_dim else list(_PROBE_LATENTS)
    ranks = [rank] if rank else list(LATENT_RANKS)
    errors = []
    for L in cands:
        for r in ranks:
            shape = (2, L) if r == 2 else (2, L, 1, 1)
            try:
                y = raw(torch.zeros(shape))
            except Exception as e:  # noqa: BLE001 - probing a foreign model
                errors.append(f"{shape}: {type(e).__name__}")
                continue
            if isinstance(y, torch.Tensor) and y.dim() == 4 and y.shape[0] == 2:
                return L, r, tuple(int(s) for s in y.shape[1:])  # type: ignore[return-value]
            errors.append(f"{shape}: output {getattr(y, 'shape', type(y))} is not (N, C, H, W)")
    hint = "" if latent_dim else " (pass --latent-dim if z is not one of the usual sizes)"
    raise TeacherError(f"{spec}: cannot run the teacher on latents {cands}{hint}; tried {'; '.join(errors[:4])}")


def _shaped(raw, rank: int):
    """A forward that takes (N, L) for a module that takes z of ``rank``."""
    if rank == 2:
        return raw
    return lambda z: raw(z.reshape(z.shape[0], -1, 1, 1))


def _refuse_conditional(spec: str, n_inputs: int) -> None:
    if n_inputs > 2:
        raise ConditionalTeacherError(f"{spec}: the teacher takes {n_inputs} inputs; {CONDITIONAL_HINT}")


def _required_args(fn) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in sig.parameters.values()
               if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _probe_outputs(src: GeneratorSource):
    import torch

    from edgegan_runtime import latent

    z = torch.from_numpy(latent(PROBE_SAMPLES, src.latent_dim, PROBE_SEED))
    if src.labels is not None:  # every class in turn
        return src.forward(z, torch.arange(PROBE_SAMPLES) % src.num_classes).float()
    return src.forward(z).float()


def _check_range(src: GeneratorSource, rng: tuple[float, float], source: str, y=None) -> None:
    """Record the probe batch's min, max and the fraction outside ``rng``; warn when any is."""
    y = _probe_outputs(src) if y is None else y
    lo, hi = rng
    tol = RANGE_TOLERANCE * (hi - lo)
    finite = bool(y.isfinite().all())
    outside = float(((y < lo - tol) | (y > hi + tol) | ~y.isfinite()).float().mean())
    src.range, src.range_source = (float(lo), float(hi)), source
    src.probe = {"samples": PROBE_SAMPLES, "seed": PROBE_SEED, "min": float(y.min()) if finite else None,
                 "max": float(y.max()) if finite else None, "outside": round(outside, 6)}
    if outside > 0:
        log.warning("%s: %.2f%% of the teacher's outputs on a probe batch lie outside its declared range [%g, %g] "
                    "(min %s, max %s); they are mapped as they are, and the student learns them", src.spec,
                    100 * outside, lo, hi, src.probe["min"], src.probe["max"])


def _set_range(src: GeneratorSource, rng: tuple[float, float] | None, check: bool = True) -> None:
    """Given (``--teacher-range``) or measured on a probe batch; then ``forward`` maps it to [-1, 1]."""
    if rng is not None:
        if check:
            _check_range(src, rng, "given")
        else:
            src.range, src.range_source = (float(rng[0]), float(rng[1])), "given"
    else:
        y = _probe_outputs(src)
        if not bool(y.isfinite().all()):
            raise TeacherError(f"{src.spec}: the teacher makes NaN or infinite values on a probe batch")
        lo, hi = float(y.min()), float(y.max())
        tol = RANGE_TOLERANCE * 2
        if lo >= 0 and hi <= 1 + tol:
            rng = (0.0, 1.0)
        elif lo >= -1 - tol and hi <= 1 + tol:
            rng = EDGEGAN_RANGE
        else:
            raise TeacherError(f"{src.spec}: the teacher's outputs span [{lo:.4g}, {hi:.4g}] on a probe batch, neither "
                               "[-1, 1] nor [0, 1]; pass its range with --teacher-range LO,HI (e.g. 0,255)")
        _check_range(src, rng, "measured", y)
    if rng != EDGEGAN_RANGE:
        raw = src.forward
        src.forward = lambda z, *y: to_edgegan_range(raw(z, *y), rng)
