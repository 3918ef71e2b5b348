"""The domain classifier: a small CNN trained on the dataset's own labels, whose feature space
gives FID and IS for data Inception was never trained on (the paper's MNIST IS used such a net).

Architecture (``ClassifierArgs``): three blocks of conv3x3 → BatchNorm → ReLU → max-pool 2
(widths w, 2w, 4w), adaptive average pool to 4x4, Linear(64w → feature_dim) → ReLU (the
features), dropout, Linear(feature_dim → classes) (the logits). It trains on the train split and
is scored on the test split; the test accuracy goes into the cache record and every report.

Cache: ``$EDGEGAN_CACHE/classifiers/<key>/`` (default ``~/.cache/edgegan``) holding
``classifier.safetensors`` and ``classifier.json``. The key is the first 16 hex digits of a
sha256 over the train and test splits' content hashes and the training configuration, so a
change of data or settings trains a new classifier and never reuses a stale one. The JSON is
written last, after the weights, and records their sha256; a cache whose weights do not match is
retrained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgegan.checkpoint import load_tensors, save_tensors
from edgegan.errors import CheckpointError
from edgegan.manifest import atomic_write_json, now_iso, sha256_file
from edgegan.metrics._images import check_images
from edgegan.metrics.errors import MetricError, NeedsLabelsError

log = logging.getLogger(__name__)

CACHE_ENV = "EDGEGAN_CACHE"
SCHEMA = "edgegan.classifier/1"
WEIGHTS_NAME = "classifier.safetensors"
RECORD_NAME = "classifier.json"


@dataclass(frozen=True)
class ClassifierArgs:
    in_channels: int = 1  # 1 grey, 3 RGB
    num_classes: int = 10
    image_size: int = 32  # the images it was trained on (32 or 64); others are refused
    width: int = 16  # channels of the first conv block; then 2x, 4x (16: ~0.07 s a step on 2 cores)
    feature_dim: int = 128  # size of the penultimate layer, the FID feature space

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "image_size", "width", "feature_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise MetricError(f"classifier: {name} must be a positive integer, got {v!r}")
        if self.in_channels not in (1, 3):
            raise MetricError(f"classifier: in_channels must be 1 or 3, got {self.in_channels}")
        if self.num_classes < 2:
            raise MetricError(f"classifier: needs at least 2 classes, got {self.num_classes}")


@dataclass(frozen=True)
class TrainConfig:
    steps: int | None = None  # optimiser steps; None: 10 epochs, at most max_steps
    max_steps: int = 400  # MNIST: 98.9 % test accuracy; ~25 s on 2 idle CPU cores
    batch_size: int = 128
    lr: float = 3e-3  # Adam peak, one-cycle schedule
    shift: int = 2  # random translation of up to this many pixels (light augmentation)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise MetricError(f"classifier: steps must be a positive integer or None, got {self.steps!r}")
        if self.max_steps < 1 or self.batch_size < 1 or not self.lr > 0 or self.shift < 0:
            raise MetricError("classifier: max_steps and batch_size must be >= 1, lr > 0, shift >= 0")

    def resolved_steps(self, n_train: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, min(self.max_steps, math.ceil(10 * n_train / self.batch_size)))


class ClassifierNet(nn.Module):
    def __init__(self, args: ClassifierArgs):
        super().__init__()
        self.args = args
        w = args.width
        blocks: list[nn.Module] = []
        for cin, cout in ((args.in_channels, w), (w, 2 * w), (2 * w, 4 * w)):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(4 * w * 16, args.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(args.feature_dim, args.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# --------------------------------------------------------------------------- the trained model


@dataclass
class DomainClassifier:
    """A trained classifier in eval mode; ``features`` and ``probs`` take numpy (N, C, S, S) in [-1, 1]."""

    net: ClassifierNet
    record: dict[str, Any] = field(default_factory=dict)  # what classifier.json holds
    path: Path | None = None  # cache folder it was loaded from or saved to

    @property
    def args(self) -> ClassifierArgs:
        return self.net.args

    @property
    def test_accuracy(self) -> float:
        return float(self.record["test_accuracy"])

    @property
    def num_classes(self) -> int:
        return self.args.num_classes

    def summary(self) -> dict[str, Any]:
        """What a report should quote about the feature space its FID/IS were measured in."""
        r = self.record
        return {"dataset": r.get("train", {}).get("name"), "test_accuracy": self.test_accuracy,
                "test_count": r.get("test", {}).get("count"), "feature_dim": self.args.feature_dim,
                "key": r.get("key"), "weights_sha256": r.get("weights_sha256")}

    def _check(self, images: np.ndarray) -> np.ndarray:
        x = check_images(images)
        want = (self.args.in_channels, self.args.image_size, self.args.image_size)
        if x.shape[1:] != want:
            raise MetricError(f"the domain classifier takes images of shape {want}, got {x.shape[1:]}")
        return x

    @torch.no_grad()
    def features_and_probs(self, images: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate-layer features (N, feature_dim) float32 and softmax probabilities (N, K) float64."""
        x = self._check(images)
        self.net.eval()
        feats, probs = [], []
        for i in range(0, len(x), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32))
            f = self.net.features(batch)
            logits = self.net.head(f).double()
            feats.append(f.numpy())
            probs.append(torch.softmax(logits, dim=1).numpy())
        return np.concatenate(feats), np.concatenate(probs)

    def features(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        return self.features_and_probs(images, batch_size)[0]

    def probs(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        return self.features_and_probs(images, batch_size)[1]

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        pred = self.probs(images).argmax(axis=1)
        return float((pred == np.asarray(labels)).mean())


# --------------------------------------------------------------------------- training


def _require_labels(ds: Any) -> None:
    if ds.labels is None or ds.num_classes is None:
        raise NeedsLabelsError(f"dataset {ds.name!r} has no labels: classifier-space FID/IS need a labelled dataset "
                               "(SWD, sharpness and fidelity to the teacher still work)")


def _random_shift(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``shift`` pixels, filling with the background (-1)."""
    if shift == 0:
        return x
    h, w = x.shape[2:]
    padded = F.pad(x, (shift, shift, shift, shift), value=-1.0)
    offsets = torch.randint(0, (2 * shift + 1) ** 2, (x.shape[0],), generator=gen)
    out = torch.empty_like(x)
    for o in offsets.unique().tolist():  # one slice per distinct offset: cheaper than a gather
        sel = offsets == o
        dy, dx = divmod(o, 2 * shift + 1)
        out[sel] = padded[sel, :, dy:dy + h, dx:dx + w]
    return out


def train_classifier(train: Any, test: Any, config: TrainConfig = TrainConfig(), *, width: int = 16,
                     feature_dim: int = 128, progress: bool = True) -> DomainClassifier:
    """Train on ``train`` (an ImageDataset with labels), score on ``test``; nothing is written."""
    from tqdm.auto import tqdm

    _require_labels(train)
    _require_labels(test)
    x = check_images(train.images, f"{train.name} train images", min_count=2)
    if x.shape[2] != x.shape[3]:
        raise MetricError(f"classifier: square images expected, got {x.shape[2]}x{x.shape[3]}")
    args = ClassifierArgs(in_channels=x.shape[1], num_classes=int(train.num_classes), image_size=x.shape[2],
                          width=width, feature_dim=feature_dim)
    steps = config.resolved_steps(len(x))
    y = torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    rng = np.random.default_rng(config.seed)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        net = ClassifierNet(args)
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.15)
        net.train()
        order, pos = rng.permutation(len(x)), 0
        bar = tqdm(range(steps), desc=f"classifier ({train.name})", disable=not progress, file=sys.stderr,
                   leave=False, mininterval=0.5, dynamic_ncols=True)
        for _ in bar:
            if pos + config.batch_size > len(order):
                order, pos = rng.permutation(len(x)), 0
            idx = torch.from_numpy(order[pos:pos + config.batch_size])
            pos += config.batch_size
            loss = F.cross_entropy(net(_random_shift(xt[idx], config.shift, gen)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        net.eval()
    seconds = time.perf_counter() - start
    clf = DomainClassifier(net)
    acc = clf.accuracy(test.images, test.labels)
    clf.record = {"schema": SCHEMA, "created": now_iso(), "args": asdict(args), "train_config": asdict(config),
                  "steps": steps, "train_seconds": round(seconds, 2), "test_accuracy": acc,
                  "train": train.describe(), "test": test.describe(), "torch": torch.__version__}
    log.info("classifier for %s: test accuracy %.4f after %d steps (%.1f s)", train.name, acc, steps, seconds)
    return clf


# --------------------------------------------------------------------------- cache


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$EDGEGAN_CACHE``, else ``~/.cache/edgegan``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "edgegan"


def cache_key(train_sha256: str, test_sha256: str, config: TrainConfig, width: int, feature_dim: int) -> str:
    blob = json.dumps({"train": train_sha256, "test": test_sha256, "config": asdict(config), "width": width,
                       "feature_dim": feature_dim, "schema": SCHEMA}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_classifier(clf: DomainClassifier, folder: str | os.PathLike) -> Path:
    """Weights first, then the JSON record (with their sha256): a folder without a valid JSON is no cache."""
    folder = Path(folder)
    wpath = folder / WEIGHTS_NAME
    save_tensors(wpath, clf.net.state_dict(), metadata={"schema": SCHEMA})
    clf.record = {**clf.record, "weights": WEIGHTS_NAME, "weights_sha256": sha256_file(wpath)}
    atomic_write_json(folder / RECORD_NAME, clf.record)
    clf.path = folder
    return folder


def load_classifier(folder: str | os.PathLike) -> DomainClassifier:
    """Rebuild a cached classifier, checking its record and the sha256 of its weights."""
    folder = Path(folder)
    rpath, wpath = folder / RECORD_NAME, folder / WEIGHTS_NAME
    try:
        record = json.loads(rpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{rpath}: missing or unreadable classifier record ({e})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA or "args" not in record:
        raise CheckpointError(f"{rpath}: not a classifier record (expected schema {SCHEMA!r})")
    if not wpath.exists() or sha256_file(wpath) != record.get("weights_sha256"):
        raise CheckpointError(f"{wpath}: missing, or its sha256 does not match {RECORD_NAME}")
    try:
        net = ClassifierNet(ClassifierArgs(**record["args"]))
        net.load_state_dict(load_tensors(wpath))
    except (TypeError, RuntimeError, MetricError) as e:
        raise CheckpointError(f"{wpath}: weights do not fit the recorded architecture ({e})") from None
    net.eval()
    return DomainClassifier(net, record, folder)


def get_classifier(dataset_name: str, data_dir: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None, config: TrainConfig = TrainConfig(),
                   width: int = 16, feature_dim: int = 128, progress: bool = True,
                   image_size: int = 32) -> DomainClassifier:
    """The cached classifier for a labelled dataset at ``image_size``, trained (and cached) on first use."""
    from edgegan.data import load_dataset

    train = load_dataset(dataset_name, data_dir=data_dir, split="train", image_size=image_size)
    _require_labels(train)
    test = load_dataset(dataset_name, data_dir=data_dir, split="test", image_size=image_size)
    key = cache_key(train.sha256, test.sha256, config, width, feature_dim)
    folder = cache_root(cache_dir) / "classifiers" / key
    if (folder / RECORD_NAME).exists():
        try:
            clf = load_classifier(folder)
            log.info("classifier for %s from cache %s (test accuracy %.4f)", dataset_name, folder, clf.test_accuracy)
            return clf
        except CheckpointError as e:
            log.warning("%s; retraining the classifier", e)
    clf = train_classifier(train, test, config, width=width, feature_dim=feature_dim, progress=progress)
    clf.record["key"] = key
    save_classifier(clf, folder)
    return clf
