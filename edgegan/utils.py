"""Small shared helpers for the torch-based stages: device choice, seeding, progress bars."""

from __future__ import annotations

import sys

from edgegan.errors import ConfigError


def resolve_device(name: str):
    import torch

    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device {name!r}; valid: cpu, cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but torch sees no CUDA GPU")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def progress(total: int, desc: str, initial: int = 0, enabled: bool = True):
    """A tqdm bar on stderr; silent when disabled (--quiet) or when stderr is not a terminal (logs, CI)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=None if enabled else True, file=sys.stderr,
                dynamic_ncols=True, leave=False, mininterval=0.5)
