"""The labels of a conditional distillation (issue 20): which classes each step asks the teacher and the
student for, the balanced labels of evaluation and sample grids, and the classes' names.

Training labels are drawn like z, for the global batch, from the run's own generator: uniform over
the K classes, or in proportion to ``--label-weights``. Evaluation labels are balanced and fixed:
latent i gets class i mod K, so every class is measured on the same number of latents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgegan.distill_config import parse_class_names, parse_label_weights
from edgegan.errors import ConfigError


@dataclass(frozen=True)
class Labels:
    num_classes: int
    weights: tuple[float, ...] | None = None  # None: uniform
    names: tuple[str, ...] | None = None

    @classmethod
    def for_teacher(cls, cfg: Any, teacher: Any) -> "Labels | None":
        """The labels of ``cfg`` (a DistillConfig) for ``teacher``; None for an unconditional teacher,
        where ``--label-weights`` / ``--class-names`` are errors."""
        k = teacher.num_classes
        if k is None:
            for opt in ("label_weights", "class_names"):
                if getattr(cfg, opt, None) is not None:
                    raise ConfigError(f"--{opt.replace('_', '-')} is for a conditional teacher; {teacher.spec} takes z "
                                      "alone (no label)")
            return None
        w = parse_label_weights(cfg.label_weights, k)
        names = parse_class_names(cfg.class_names, k) or teacher.class_names
        return cls(k, None if w is None else tuple(w), None if names is None else tuple(names))

    def draw(self, n: int, rng) -> "Any":
        """int64 (n,) class indices, from ``rng`` (a torch.Generator)."""
        import torch

        if self.weights is None:
            return torch.randint(0, self.num_classes, (n,), generator=rng)
        return torch.multinomial(torch.tensor(self.weights, dtype=torch.float64), n, replacement=True, generator=rng)

    def balanced(self, n: int, device: Any = "cpu"):
        """int64 (n,): latent i gets class i mod K."""
        import torch

        return (torch.arange(n) % self.num_classes).to(device)

    def describe(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "names": None if self.names is None else list(self.names),
                "sampling": "uniform" if self.weights is None else {"weights": list(self.weights)},
                "eval": "balanced: latent i has class i mod K"}


def label_args(labels: "Labels | None", y, part: slice | None = None) -> tuple:
    """The extra positional arguments of a generator's forward: (y,) (or (y[part],)) when conditional,
    () when not."""
    if labels is None or y is None:
        return ()
    return (y if part is None else y[part],)
