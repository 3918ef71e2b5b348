"""Small shared helpers for the torch-based stages: device choice, seeding, progress bars."""

from __future__ import annotations

import os
import sys

from edgegan.errors import ConfigError

# OpenMP's wait policy for torch's intra-op threads, set before torch loads libgomp (it is read once).
# PASSIVE: a thread that waits at a barrier sleeps instead of spinning, so on a shared machine torch's
# threads do not burn the cores the other work (and the thread being waited for) needs
# (bench/results/threads.md; issue #8). A user's own OMP_WAIT_POLICY wins.
OMP_WAIT_POLICY = "PASSIVE"


def configure_threads(n: int | None = None) -> None:
    """Torch's intra-op threads: ``n`` (None: torch's default, one per core) and the wait policy above.
    Call before torch is imported where possible; the thread count also applies afterwards."""
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ConfigError(f"threads must be an integer >= 1, got {n!r}")
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    if n is not None:
        os.environ["OMP_NUM_THREADS"] = str(n)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(n)


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


class StopRequest:
    """Ctrl-C during training, handled at a step boundary (issue 14).

    The first SIGINT only sets ``requested``; the loop checkpoints the step it just finished and
    raises KeyboardInterrupt, so the checkpoint is exact and a resumed run equals an uninterrupted
    one. A second SIGINT stops at once (KeyboardInterrupt where the code is): the last checkpoint
    stands. Installed only in the main thread, and only over Python's default handler."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def install(self) -> "StopRequest":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        import logging
        import signal

        if self.requested:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a third press must not interrupt the clean-up
            raise KeyboardInterrupt
        self.requested = True
        logging.getLogger("edgegan").warning("interrupt: stopping after this step with a checkpoint "
                                             "(Ctrl-C again to stop now; the last checkpoint stands)")

    def remove(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    __enter__ = install

    def __exit__(self, *exc) -> None:
        self.remove()
