"""Data-parallel training across processes (torch.distributed): the one place that knows about ranks.

``torchrun --nproc_per_node N -m edgegan train-teacher|distill ...`` starts N processes; each one
calls :func:`setup`, which reads torchrun's variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and joins the process group: gloo on CPU, nccl on CUDA (there
``--device cuda`` means ``cuda:LOCAL_RANK``). Without torchrun (or with one process) nothing here
changes what a run does: :func:`setup` returns a one-process :class:`World` and ``wrap`` returns the
module itself.

The design, so that N processes train what one process trains (issue 14):

* ``--batch-size`` is the **global** batch: every rank draws the same global batch (indices of real
  images, latents) from the same seeded generator and keeps its own slice (:meth:`World.local`), so
  the set of samples per step, the RNG stream and therefore the checkpoints do not depend on the
  number of processes. A batch that the processes cannot split evenly is refused.
* Gradients are averaged by DistributedDataParallel: the mean of per-rank means of equal slices is
  the mean over the global batch, so the loss is the one-process loss.
* BatchNorm layers see the global batch: :func:`sync_batchnorm` makes them reduce their statistics
  across ranks (torch's ``nn.SyncBatchNorm`` runs on GPUs only; this one works with gloo on CPU and
  with nccl). Without it each rank would normalise with its slice's statistics and N processes would
  train a different model from one.
* An EMA of the weights (``distill --ema``) needs no communication: every rank updates it from the
  same weights. The distiller's teacher is frozen and never wrapped.
* Only rank 0 writes (weights, manifest, samples, checkpoints) and shows a progress bar
  (:func:`is_main`); every rank reads a checkpoint on ``--resume``. As the checkpoint holds nothing
  that depends on the number of processes, a run may be resumed with another one.

What is left to float rounding is the order of the reductions (gradients summed per rank then across
ranks, BatchNorm sums split in N parts), so N processes match one within float32 rounding, amplified
by the steps that follow (tests/test_distributed.py states the tolerance).
"""

from __future__ import annotations

import atexit
import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from edgegan.errors import ConfigError

if TYPE_CHECKING:  # torch stays out of `edgegan --help`
    import torch


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"${name} must be an integer (set by torchrun), got {raw!r}") from None


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """True in the process that writes files: rank 0 of a torchrun job, or the only process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if _active():
        import torch.distributed as dist

        dist.barrier()


@dataclass(frozen=True)
class World:
    """The processes of one training run, seen from one of them."""

    rank: int
    size: int
    local_rank: int
    backend: str | None  # None: one process, no process group
    device: "torch.device"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local(self, global_batch: int) -> slice:
        """This rank's part of a global batch of ``global_batch`` items (contiguous, equal parts)."""
        per = global_batch // self.size
        return slice(self.rank * per, (self.rank + 1) * per)

    def wrap(self, module: "torch.nn.Module", extra: Iterable["torch.nn.Parameter"] = ()) -> "torch.nn.Module":
        """``module`` for the training step: with several processes, its BatchNorm layers made to use
        global-batch statistics and the module wrapped in DistributedDataParallel together with
        ``extra`` parameters trained alongside it (a distiller's adaptors), whose gradients are
        averaged with the module's. Save and evaluate ``module`` itself, never the wrapper."""
        if self.size == 1:
            return module
        from torch import nn
        from torch.nn.parallel import DistributedDataParallel

        sync_batchnorm(module)
        extra = list(extra)
        target = _with_extras_class()(module, nn.ParameterList(extra)) if extra else module
        # No buffer broadcast before each forward: the BatchNorm above keeps running statistics equal on
        # every rank (DistributedDataParallel still copies rank 0's parameters and buffers once, here).
        return DistributedDataParallel(target, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                       forward_sync_buffers=False)

    def mean(self, values: Iterable[Any]) -> list[float]:
        """Each value (a number or a one-element tensor) averaged over the ranks: the global-batch value
        of a per-rank mean, for logs. A collective: every rank calls it at the same step."""
        import torch

        vals = [float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for v in values]
        if self.size == 1:
            return vals
        import torch.distributed as dist

        t = torch.tensor(vals, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.size).tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any: a collective, so all ranks take the same
        branch at the same step (a Ctrl-C that reached the ranks at different moments stops them all
        after one step, each having finished it)."""
        if self.size == 1:
            return bool(flag)
        import torch
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def describe(self, global_batch: int) -> dict[str, Any]:
        """The manifest's record of how a run was split (a resumed run records its last segment)."""
        return {"world_size": self.size, "backend": self.backend, "batch_global": global_batch,
                "batch_per_rank": global_batch // self.size}


_OWNED = {"group": False}  # whether this module started the process group (and so ends it)


def setup(device: str, global_batch: int) -> World:
    """The World of this process, joining torchrun's process group on first call. ``device`` as
    the user gave it ("cpu", "cuda", "cuda:N"); ``global_batch`` must split evenly over the ranks.
    Raises ConfigError before any process-group traffic, so every rank fails alike."""
    import torch
    import torch.distributed as dist

    from edgegan.utils import resolve_device

    size, rank, local_rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if dist.is_available() and dist.is_initialized():  # a caller's own process group
        size, rank = dist.get_world_size(), dist.get_rank()
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"$RANK={rank} and $WORLD_SIZE={size} do not describe a process of a torchrun job")
    if size == 1:
        return World(0, 1, 0, None, resolve_device(device))
    if global_batch % size:
        raise ConfigError(f"batch-size {global_batch} is the global batch and must split evenly over the {size} "
                          f"processes (a multiple of {size})")
    if device == "cuda":
        device = f"cuda:{local_rank}"  # one GPU per process on each node
    elif device.startswith("cuda:") and _env_int("LOCAL_WORLD_SIZE", 1) > 1:
        raise ConfigError(f"--device {device} would put every process of this machine on one GPU; with torchrun pass "
                          "--device cuda (each process takes cuda:LOCAL_RANK; CUDA_VISIBLE_DEVICES picks the GPUs)")
    dev = resolve_device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run with one process")
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, init_method="env://")
        _OWNED["group"] = True
        atexit.register(_teardown)
    else:
        backend = dist.get_backend()
    return World(rank, size, local_rank, backend, dev)


def _teardown() -> None:
    import torch.distributed as dist

    if _OWNED["group"] and dist.is_initialized():
        _OWNED["group"] = False
        dist.destroy_process_group()


# ------------------------------------------------------------------------------ modules across ranks


@functools.lru_cache(maxsize=None)
def _with_extras_class() -> type:
    from torch import nn

    class WithExtras(nn.Module):
        """A module plus parameters used outside its forward (adaptors), so that one
        DistributedDataParallel averages the gradients of both."""

        def __init__(self, module: nn.Module, extra: nn.ParameterList):
            super().__init__()
            self.module, self.extra = module, extra

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.module(*args, **kwargs)

    return WithExtras


class _GlobalBatchStats:
    """Mixin over a torch BatchNorm class: in training with several ranks, the batch mean and variance
    are those of the global batch (two all-reduces, differentiable, so the gradient is that of one
    process's BatchNorm over the whole batch); otherwise the class's own forward. Running statistics
    follow torch's rule (momentum, unbiased variance), so they stay equal on every rank."""

    def forward(self, x: "torch.Tensor") -> "torch.Tensor":
        if not (self.training and _active()):
            return super().forward(x)  # type: ignore[misc]
        import torch

        all_reduce = _all_reduce_sum().apply
        self._check_input_dim(x)  # type: ignore[attr-defined]
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        count = torch.full((1,), x.numel() // c, dtype=x.dtype, device=x.device)
        sums = all_reduce(torch.cat([x.sum(dims), count]))
        n = sums[c].detach()
        mean = sums[:c] / n
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n  # two passes: as exact as one process's BatchNorm
        y = centred * torch.rsqrt(var + self.eps).view(shape)  # type: ignore[attr-defined]
        if self.affine:  # type: ignore[attr-defined]
            y = y * self.weight.view(shape) + self.bias.view(shape)  # type: ignore[attr-defined]
        if self.track_running_stats:  # type: ignore[attr-defined]
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[attr-defined]
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)  # type: ignore[attr-defined]
                self.running_mean.lerp_(mean.detach(), m)  # type: ignore[attr-defined]
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp(min=1), m)  # type: ignore[attr-defined]
        return y


@functools.lru_cache(maxsize=None)
def _all_reduce_sum() -> type:
    """An all-reduce (sum) that autograd differentiates: the gradient of a sum over ranks, for each
    rank's input, is the sum over ranks of the incoming gradients (the same collective again).
    Written here on ``dist.all_reduce`` because torch.distributed.nn's version is deprecated and the
    functional collectives that replace it are private."""
    import torch
    import torch.distributed as dist

    class AllReduceSum(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            y = x.clone(memory_format=torch.contiguous_format)
            dist.all_reduce(y)
            return y

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            g = grad.clone(memory_format=torch.contiguous_format)
            dist.all_reduce(g)
            return g

    return AllReduceSum


_SYNC_CLASSES: dict[type, type] = {}


def sync_batchnorm(module: "torch.nn.Module") -> "torch.nn.Module":
    """Make every BatchNorm layer of ``module`` use global-batch statistics, in place. The layers keep
    their identity, parameters, buffers, state-dict keys and hooks (the distiller's feature hooks may
    sit on them) and stay instances of their class: only their class becomes a subclass with
    ``_GlobalBatchStats``'s forward. Unlike ``nn.SyncBatchNorm.convert_sync_batchnorm`` (new modules,
    GPU only)."""
    from torch.nn.modules.batchnorm import _BatchNorm

    for m in module.modules():
        cls = type(m)
        if isinstance(m, _BatchNorm) and not isinstance(m, _GlobalBatchStats):
            if cls not in _SYNC_CLASSES:
                _SYNC_CLASSES[cls] = type(f"Global{cls.__name__}", (_GlobalBatchStats, cls), {"__module__": __name__})
            m.__class__ = _SYNC_CLASSES[cls]
    return module


__all__ = ["World", "barrier", "is_main", "setup", "sync_batchnorm"]
