"""Latent generators through export: the steps of ``exporter._export`` that depend on what a file takes, for a
generator of z (B, latent_dim), and a conditional one's one-hot label (issue 20, ``labels``). The image-to-image
twin is ``images.ImageFile`` (issue 21)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgegan.errors import ExportError
from edgegan.export import labels, parity
from edgegan.export.formats import CALIBRATION_BATCH, CALIBRATION_SEED_OFFSET, PARITY_N, ExportOptions
from edgegan.export.prepare import prepare_for_export


class LatentFile:
    """The steps of ``exporter._export`` that depend on what the file takes, for a generator of z (B, latent_dim) (and a
    conditional one's label, ``classes``); ``expected_output`` the manifest's (C, H, W), checked by ``probe``."""

    image = None

    def __init__(self, latent_dim: int, classes: labels.Labels | None, expected_output: tuple[int, ...] | None = None):
        self.latent_dim, self.classes, self.expected_output = latent_dim, classes, expected_output

    def probe(self, reference: torch.nn.Module) -> tuple[int, ...]:
        out_shape = probe_output(reference, self.latent_dim)
        if self.expected_output is not None and tuple(out_shape) != tuple(self.expected_output):
            raise ExportError(f"generator makes images {list(out_shape)}, the manifest says {list(self.expected_output)}")
        return out_shape

    def prepare(self, reference: torch.nn.Module, spec: Any) -> tuple[torch.nn.Module, dict[str, int]]:
        return prepare_for_export(reference, rewrite_convt=spec.rewrite_convt, latent_dim=self.latent_dim)

    def load(self, opts: ExportOptions) -> None:
        """Nothing to read: the parity and calibration latents are made when needed."""

    def calibration(self, opts: ExportOptions) -> tuple[np.ndarray | None, dict[str, Any] | None]:
        return calibration_rows(opts, self.latent_dim, self.classes)

    def metadata(self, identity: dict[str, Any], opts: ExportOptions, out_shape: tuple[int, ...]) -> dict[str, str]:
        return file_metadata(identity, opts, self.latent_dim, out_shape, self.classes)

    def parity(self, path: Path, reference: torch.nn.Module, opts: ExportOptions, kernel_reference) -> dict[str, Any]:
        latent_dim, classes = self.latent_dim, self.classes

        def ref(z: np.ndarray) -> np.ndarray:  # z, or rows z ++ one-hot
            with torch.no_grad():
                return reference(*labels.torch_inputs(z, latent_dim, classes)).float().numpy()

        return parity.check(path, ref, latent_dim=latent_dim, batches=opts.batches, thresholds=opts.precision.thresholds,
                            n=max(PARITY_N, *(opts.batches or (1,))), seed=opts.seed,
                            kernel_reference=kernel_reference, classes=classes)

    def entry_io(self, fields: dict[str, Any], out_shape: tuple[int, ...]) -> dict[str, Any]:
        label = fields.pop("label", None)  # a conditional generator's label input (converters._label)
        return {"input": {"shape": [None, self.latent_dim], "dtype": "float32"},
                **({} if self.classes is None else {"label": {"shape": [None, self.classes.count], **label},
                                                    "classes": self.classes.record()}),
                "output": {"shape": [None, *out_shape], "dtype": "float32", "layout": "NCHW", "range": [-1.0, 1.0]}}


def file_metadata(identity: dict[str, Any], opts: ExportOptions, latent_dim: int, out_shape: tuple[int, ...],
                   classes: labels.Labels | None = None) -> dict[str, str]:
    """What every exported file carries inside itself: the ONNX path writes it to metadata_props, the
    TFLite path to the flatbuffer's metadata. ``edgegan.contract`` is the whole format-independent
    contract (``edgegan_runtime.contract``) that an app reads; the other keys are its older summary."""
    from edgegan_runtime import contract

    stem = identity["stem"]
    batches = list(opts.batches) if opts.batches is not None else None
    c = contract.make_contract(latent_dim=latent_dim, output_shape=out_shape, batch_sizes=batches, identity=identity,
                               label=None if classes is None else classes.contract())
    return {"edgegan.stem": stem, "edgegan.latent_dim": str(latent_dim),
            "edgegan.output": f"NCHW {list(out_shape)} float32 in [-1, 1]",
            contract.METADATA_NAME: contract.encode(c).decode()}


def calibration_rows(opts: ExportOptions, latent_dim: int,
                     classes: labels.Labels | None = None) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """Calibration latents for static precisions (seed + 1: never the parity latents) and their record; a
    conditional generator's are rows z ++ one-hot of uniform classes (``labels.calibration``)."""
    if opts.calibration_count is None:
        return None, None
    import edgegan_runtime as rt

    seed = opts.seed + CALIBRATION_SEED_OFFSET
    meta = {"count": opts.calibration_count, "batch": CALIBRATION_BATCH, "seed": seed,
            "distribution": "edgegan_runtime.latent (standard normal)"}
    rows, more = labels.calibration(rt.latent(opts.calibration_count, latent_dim, seed), classes, seed)
    return rows, {**meta, **more}


def probe_output(module: torch.nn.Module, latent_dim: int) -> tuple[int, ...]:
    """Output shape (C, H, W) for one latent; checks the module honours the file contract."""
    try:
        with torch.no_grad():
            y = module(*labels.sample_inputs(module, 2, latent_dim))
    except Exception as e:
        raise ExportError(f"generator does not accept z of shape (B, {latent_dim}): {type(e).__name__}: {e}") from e
    if not isinstance(y, torch.Tensor) or y.dim() != 4 or y.shape[0] != 2:
        got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ExportError(f"generator must return one tensor (B, C, H, W); got {got}")
    return tuple(int(s) for s in y.shape[1:])


