"""Inception FID/IS through pytorch-fid, when it imports and its weights file is present and verified.

This module never downloads anything and never substitutes another network: when pytorch-fid (or
its torchvision) does not import, or the weights are missing or do not match the pinned sha256,
``inception_available`` says why and the bench reports the metric as unavailable.

Weights: pytorch-fid's port of TF Inception (2015-12-05), ``pt_inception-2015-12-05-6726825d.pth``,
95,628,359 bytes. The pinned sha256 below is the one torch-fidelity pins for the same file (its
first 8 digits are the ``6726825d`` in the name, torch.hub's hash-prefix convention). Default
location: torch.hub's cache, ``$TORCH_HOME/hub/checkpoints/`` (``~/.cache/torch/hub/checkpoints``).
Another file can be passed with its own expected sha256.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgegan.manifest import sha256_file
from edgegan.metrics._images import check_images
from edgegan.metrics.errors import MetricError
from edgegan.metrics.fid import fid_from_features, inception_score

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FEATURE_DIM = 2048  # pool3 features, the standard FID space


@dataclass(frozen=True)
class InceptionOptions:
    weights_path: Path | None = None  # None: torch.hub's cache location of WEIGHTS_NAME
    sha256: str = WEIGHTS_SHA256  # expected sha256 of the weights file
    batch_size: int = 50

    def __post_init__(self) -> None:
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256.lower()):
            raise MetricError(f"inception sha256 must be 64 hex digits, got {self.sha256!r}")
        if self.batch_size < 1:
            raise MetricError(f"inception batch_size must be >= 1, got {self.batch_size}")

    def resolved_path(self) -> Path:
        return Path(self.weights_path) if self.weights_path is not None else default_weights_path()


def default_weights_path() -> Path:
    """Where torch.hub (and so pytorch-fid) keeps the file, computed without importing torch."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints" / WEIGHTS_NAME


def _import_problem() -> str | None:
    try:
        import pytorch_fid.inception  # noqa: F401
    except Exception as e:  # noqa: BLE001 - a CUDA-only torchvision fails with OSError/RuntimeError, not only ImportError
        return f"pytorch-fid does not import ({type(e).__name__}: {e}); install it with torchvision for this torch"
    return None


def _weights_problem(path: Path, sha256: str) -> str | None:
    if not path.is_file():
        return f"Inception weights not found at {path} (download {WEIGHTS_NAME} from pytorch-fid's releases and pass its path)"
    actual = sha256_file(path)
    if actual != sha256.lower():
        return f"Inception weights {path} have sha256 {actual}, expected {sha256.lower()}"
    return None


def inception_available(options: InceptionOptions | None = None) -> tuple[bool, str]:
    """(True, description) when the Inception metrics can run; else (False, every reason why not)."""
    options = options or InceptionOptions()
    path = options.resolved_path()
    problems = [p for p in (_weights_problem(path, options.sha256), _import_problem()) if p]
    if problems:
        return False, "; ".join(problems)
    from importlib import metadata

    try:
        version = metadata.version("pytorch-fid")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return True, f"pytorch-fid {version}, weights {path} (sha256 {options.sha256[:16]}...)"


@contextmanager
def _hub_dir_holding(path: Path) -> Iterator[None]:
    """Point torch.hub at a temporary folder holding (a link to) ``path`` under the name pytorch-fid asks for,
    so its ``load_state_dict_from_url`` finds the file and never goes to the network."""
    import torch

    # torch.hub keeps an explicit set_dir() in _hub_dir (None: follow $TORCH_HOME); restore exactly that
    previous = getattr(torch.hub, "_hub_dir", torch.hub.get_dir())
    with tempfile.TemporaryDirectory(prefix="edgegan-inception-") as tmp:
        target = Path(tmp) / "checkpoints" / WEIGHTS_NAME
        target.parent.mkdir()
        try:
            target.symlink_to(path.resolve())
        except OSError:
            shutil.copyfile(path, target)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            if hasattr(torch.hub, "_hub_dir"):
                torch.hub._hub_dir = previous
            else:  # pragma: no cover - a torch without the private attribute
                torch.hub.set_dir(previous)


class InceptionNet:
    """pytorch-fid's FID Inception: pool3 features (N, 2048) and the 1008-way softmax for IS."""

    def __init__(self, options: InceptionOptions | None = None):
        ok, reason = inception_available(options)
        if not ok:
            raise MetricError(f"Inception metrics unavailable: {reason}")
        import torch
        from pytorch_fid.inception import InceptionV3

        self.options = options or InceptionOptions()
        path = self.options.resolved_path()
        with _hub_dir_holding(path):
            block = InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]
            self.model = InceptionV3([block], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.fc_weight = state["fc.weight"].double()  # (1008, 2048): the TF graph's logits for IS
        self.fc_bias = state["fc.bias"].double()

    def activations(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, 2048) and class probabilities (N, 1008) of images (N, 1|3, H, W) in [-1, 1]."""
        import torch

        x = check_images(images)
        feats, probs = [], []
        with torch.no_grad():
            for i in range(0, len(x), self.options.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[i:i + self.options.batch_size], dtype=np.float32))
                batch = (batch + 1.0) / 2.0  # pytorch-fid takes [0, 1] and rescales itself
                if batch.shape[1] == 1:
                    batch = batch.repeat(1, 3, 1, 1)
                f = self.model(batch)[0].flatten(1)
                logits = f.double() @ self.fc_weight.T + self.fc_bias
                feats.append(f.numpy())
                probs.append(torch.softmax(logits, dim=1).numpy())
        return np.concatenate(feats), np.concatenate(probs)


def inception_fid_is(images: np.ndarray, reference: np.ndarray, options: InceptionOptions | None = None,
                     net: InceptionNet | None = None) -> dict[str, Any]:
    """Inception FID of ``images`` to ``reference`` and the Inception Score of ``images``; raises if unavailable."""
    net = net or InceptionNet(options)
    fa, pa = net.activations(images)
    fb, _ = net.activations(reference)
    return {"fid": fid_from_features(fa, fb), "is": inception_score(pa), "n_samples": len(fa), "n_reference": len(fb)}
