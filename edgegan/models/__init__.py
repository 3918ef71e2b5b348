"""Generator families. A family is one file in this package that registers itself in ``FAMILIES``.

A family turns a JSON-able argument dict into a generator (z of shape (N, latent_dim) → images
(N, nc, H, W) in [-1, 1]) and a matching discriminator. Checkpoints store ``family`` + ``args``,
so any stage can rebuild the model from the manifest alone.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from edgegan.registry import Registry


@dataclass(frozen=True)
class Family:
    name: str
    make_args: Callable[..., Any]  # validated frozen dataclass built from keyword arguments
    build_generator: Callable[[Any], Any]
    build_discriminator: Callable[[Any], Any]
    description: str = ""


FAMILIES: Registry[Family] = Registry("generator family")

# Modules that register families; a new family is one new file plus one name here.
_FAMILY_MODULES = ("edgegan.models.dcgan",)
_loaded = False


def _load_families() -> None:
    global _loaded
    if not _loaded:
        for mod in _FAMILY_MODULES:
            importlib.import_module(mod)
        _loaded = True


def get_family(name: str) -> Family:
    _load_families()
    return FAMILIES.get(name)


def family_names() -> list[str]:
    _load_families()
    return FAMILIES.names()


def build_generator(family: str, **args: Any):
    fam = get_family(family)
    return fam.build_generator(fam.make_args(**args))


def build_discriminator(family: str, **args: Any):
    fam = get_family(family)
    return fam.build_discriminator(fam.make_args(**args))


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())
