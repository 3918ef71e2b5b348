"""What ``edgegan bench`` is asked to do, declared once (defaults, help, choices); the CLI is generated
from it. Cheap to import (no numpy, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from edgegan.config import DATASET_NAMES, SEED, Bounds, check_bounds, opt

MODEL_GROUPS = ("teacher", "student", "exports")


@dataclass(frozen=True)
class BenchOptions:
    models: str = opt(",".join(MODEL_GROUPS), "comma-separated model groups to include: " + ", ".join(MODEL_GROUPS))
    baseline: tuple[str, ...] = opt((), "a student-sized GAN trained from scratch (train-teacher --kind baseline) "
                                        "to compare; repeatable")
    teacher: str | None = opt(None, "the teacher to compare with, instead of the one the students' manifests record; "
                                    "needed for a module:factory teacher, which runs only when typed here (a manifest "
                                    "never names code to run)")
    teacher_weights: str | None = opt(None, "weights for a module:factory --teacher: safetensors, or a .pth "
                                                 "state dict (weights_only=True; W.pth#KEY picks one)")
    trust_teacher: bool = opt(False, "run a TorchScript teacher that the students' manifests record (TorchScript is "
                                     "code: without this it runs only when typed with --teacher)")
    samples: int = opt(2000, "images per model for the quality metrics", bounds=Bounds(2, 100_000))
    dataset: str | None = opt(None, "reference images (default: the teacher's dataset)", choices=DATASET_NAMES)
    data_dir: str | None = opt(None, "folder holding the dataset's files (default: $EDGEGAN_DATA/<dataset>)")
    seed: int = opt(0, "random seed", bounds=SEED)
    inception_weights: str | None = opt(None, "pytorch-fid's Inception weights (pt_inception-2015-12-05-6726825d.pth), "
                                              "checked against its pinned sha256; default: torch.hub's cache")
    device_results: tuple[str, ...] = opt((), "JSON written by a bench bundle's script on a board (edgegan bundle): "
                                              "its own columns, labelled with the board's CPU; repeatable")

    def __post_init__(self) -> None:
        check_bounds(self)

    def model_list(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]
