"""Small real models for tests and benchmarks (like ``numpy.testing``): no mocks, real weights.

* ``tiny_student`` — a DCGAN student after a few dozen steps of pixel MSE to a fixed random teacher
  whose weights are N(0, 0.2) (not DCGAN's 0.02) and whose BatchNorm statistics are exact averages
  of three batches: its images span a real part of [-1, 1], so the student has realistic weight and
  BatchNorm scales, unlike an untrained one.
* ``tiny_conditional_student`` — the same with a class label (issue 20): its teacher sees z moved by a
  fixed offset per class.
* ``random_bn_generator`` — an untrained DCGAN with BatchNorm in a non-trivial state (folding tests,
  latency benchmarks: latency does not depend on the values).
* ``make_run`` — a run directory (weights + manifest) around any registered-family generator.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgegan.checkpoint import model_section
from edgegan.manifest import write_manifest
from edgegan.models import build_generator


def tiny_student(d: int = 2, steps: int = 40, seed: int = 0, latent_dim: int = 100, teacher_d: int = 4) -> nn.Module:
    return _tiny(d, steps, seed, latent_dim, teacher_d, None)


def tiny_conditional_student(d: int = 2, num_classes: int = 10, steps: int = 40, seed: int = 0, latent_dim: int = 100,
                             teacher_d: int = 4) -> nn.Module:
    """``tiny_student``'s conditional twin (issue 20): a dcgan generator of ``num_classes`` classes after a few
    dozen steps of pixel MSE to the same kind of random teacher, shown z moved by a fixed random offset per
    class (norm ~8). The label's share of the first layer starts at N(0, 1), not DCGAN's N(0, 0.02): with
    DCGAN's, 40 steps leave the classes 0.005 apart (mean absolute pixel difference), with this ~0.02."""
    return _tiny(d, steps, seed, latent_dim, teacher_d, num_classes)


def _tiny(d: int, steps: int, seed: int, latent_dim: int, teacher_d: int, num_classes: int | None) -> nn.Module:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster, and kind to a shared machine
    try:
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # the teacher's BatchNorm scales start from the global generator: same seed, same model
        teacher = build_generator("dcgan", d=teacher_d, latent_dim=latent_dim)
        for m in teacher.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None  # cumulative average: exact statistics of the batches below
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                with torch.no_grad():
                    m.weight.normal_(0.0, 0.2, generator=g)
        k = num_classes
        shift = torch.randn(k, latent_dim, generator=g) * (8.0 / latent_dim ** 0.5) if k else None

        def shown(z, c):  # what the teacher sees: z, moved by its class's offset when conditional
            return z if c is None else z + shift[c]

        def classes(n: int):
            return None if k is None else torch.randint(0, k, (n,), generator=g)

        teacher.train()
        with torch.no_grad():
            for _ in range(3):
                z = torch.randn(64, latent_dim, generator=g)
                teacher(shown(z, classes(64)))
        teacher.eval()
        torch.manual_seed(seed)
        student = build_generator("dcgan", d=d, latent_dim=latent_dim, **({"num_classes": k} if k else {}))
        if k:
            with torch.no_grad():
                student.net[0].weight[latent_dim:].normal_(0.0, 1.0, generator=g)
        opt = torch.optim.Adam(student.parameters(), 1e-2)
        for _ in range(steps):
            z = torch.randn(32, latent_dim, generator=g)
            c = classes(32)
            with torch.no_grad():
                y = teacher(shown(z, c))
            loss = nn.functional.mse_loss(student(z) if c is None else student(z, c), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return student.eval()
    finally:
        torch.set_num_threads(threads)


def random_bn_generator(d: int = 2, seed: int = 0, family: str = "dcgan", **args: Any) -> nn.Module:
    torch.manual_seed(seed)
    g = build_generator(family, d=d, **args)
    for m in g.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_(1.0, 0.2)
            m.bias.data.normal_(0.0, 0.2)
    return g.eval()


def make_run(run_dir: str | os.PathLike, generator: nn.Module, args: dict[str, Any], family: str = "dcgan",
             kind: str = "student", class_names: list[str] | None = None, task: str | None = None) -> Path:
    """A run directory holding ``generator`` (an image-to-image one records ``task``: ``edgegan.tasks``)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(run_dir, {"schema": "edgegan.manifest/1", "kind": kind,
                             "model": model_section(generator, family, args, run_dir, class_names=class_names,
                                                   task=task)})
    return run_dir


def tiny_i2i_student(images: torch.Tensor, task: str = "sr2x", d: int = 8, steps: int = 40, seed: int = 0,
                     family: str = "mobile_i2i") -> tuple[nn.Module, dict[str, Any]]:
    """An image-to-image student (issue 21) after ``steps`` steps of L1 to the ground truth on ``images`` (real
    images (N, C, H, W) in [-1, 1], e.g. a dataset's), inputs made by ``task`` (``edgegan.tasks``): its
    weights and BatchNorm statistics have realistic scales and its outputs look like the images, unlike an
    untrained one's (near 0). Returns (the generator in eval mode, its args for ``make_run``)."""
    from edgegan.models import image_student_args
    from edgegan.tasks import get_task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = get_task(task)
        out_shape = tuple(int(s) for s in images.shape[1:])
        args = image_student_args(family, d, out_shape, t.input_shape(out_shape))
        torch.manual_seed(seed)
        g = build_generator(family, **args)
        rng = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(g.parameters(), 5e-3)
        g.train()
        for _ in range(steps):
            y = images[torch.randint(0, len(images), (16,), generator=rng)]
            loss = (g(t.input(y, rng)) - y).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return g.eval(), args
    finally:
        torch.set_num_threads(threads)
