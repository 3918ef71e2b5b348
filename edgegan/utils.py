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


class Terminated(KeyboardInterrupt):
    """A stop asked for by SIGTERM (``kill``, a batch scheduler, a container's stop): the CLI exits 143."""


class StopRequest:
    """Ctrl-C or SIGTERM during training, handled at a step boundary (issues 14 and 19).

    The first SIGINT (or SIGTERM) only sets ``requested``; the loop checkpoints the step it just
    finished and raises ``stopped()``, so the checkpoint is exact and a resumed run equals an
    uninterrupted one. A second signal stops at once (KeyboardInterrupt where the code is): the last
    checkpoint stands. Installed only in the main thread, and only over Python's default handler of
    each signal: a background job started with SIGINT ignored (``nohup``, ``cmd &``) keeps ignoring
    it, and is stopped cleanly with ``kill`` (SIGTERM), which would otherwise end it with no checkpoint."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.requested = False
        self.by: str | None = None  # the signal that asked
        self._previous: dict = {}

    def install(self) -> "StopRequest":
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        defaults = {"SIGINT": signal.default_int_handler, "SIGTERM": signal.SIG_DFL}
        for name in self.SIGNALS:
            num = getattr(signal, name)
            if signal.getsignal(num) is defaults[name]:
                self._previous[num] = signal.signal(num, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        import logging
        import signal

        if self.requested:
            for num in self._previous:  # a third signal must not interrupt the clean-up
                signal.signal(num, signal.SIG_IGN)
            raise self.stopped()
        self.requested = True
        self.by = signal.Signals(signum).name
        how = "interrupt" if self.by == "SIGINT" else f"{self.by}"
        logging.getLogger("edgegan").warning("%s: stopping after this step with a checkpoint "
                                             "(Ctrl-C or SIGTERM again to stop now; the last checkpoint stands)", how)

    def stopped(self) -> KeyboardInterrupt:
        """What the loop raises once the checkpoint is written."""
        return Terminated() if self.by == "SIGTERM" else KeyboardInterrupt()

    def remove(self) -> None:
        import signal

        for num, prev in self._previous.items():
            signal.signal(num, prev)
        self._previous = {}

    __enter__ = install

    def __exit__(self, *exc) -> None:
        self.remove()
