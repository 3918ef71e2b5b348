"""Generator factories for the `module:factory` teacher form, used by the tests."""

import torch

from edgegan.models import build_generator


def dcgan_d16():
    return build_generator("dcgan", d=16)


class _Odd(torch.nn.Module):
    latent_dim = 16

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 3 * 24 * 24)

    def forward(self, z):
        return torch.tanh(self.fc(z.flatten(1))).view(-1, 3, 24, 24)


def odd_size():
    return _Odd()


def nan_teacher():
    """A generator whose images are NaN (a broken or overflowed teacher): distillation must refuse it."""
    g = build_generator("dcgan", d=2)
    with torch.no_grad():
        next(g.parameters()).fill_(float("nan"))
    return g


def not_a_module():
    """A factory that returns a function, not a generator module (issue 25: an internal error before)."""
    return lambda z: z
