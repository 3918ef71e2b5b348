"""Shared fixtures. Real datasets come from $EDGEGAN_DATA (CI: ../shared/datasets beside the clone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path | None:
    env = os.environ.get("EDGEGAN_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "datasets"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if root is None:
        pytest.skip("real datasets not found: set EDGEGAN_DATA to the folder holding mnist/, cifar10/, celeba/")
    return root


def pytest_configure(config):
    # Session-wide (module-scoped fixtures need it too); tests that need it unset use monkeypatch.delenv.
    root = data_root()
    if root is not None:
        os.environ["EDGEGAN_DATA"] = str(root)
    os.environ.setdefault("EDGEGAN_CACHE", str(REPO / ".cache"))
