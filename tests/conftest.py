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


# ------------------------------------------------------------------ a conditional run (issue 20)

CLASS_NAMES = [f"class-{i}" for i in range(10)]


@pytest.fixture(scope="session")
def conditional_run(tmp_path_factory) -> Path:
    """A run of a conditional d=2 student of 10 named classes (``edgegan.testing.tiny_conditional_student``)."""
    pytest.importorskip("torch")
    from edgegan.testing import make_run, tiny_conditional_student

    g = tiny_conditional_student(d=2, num_classes=10, steps=40, seed=0)
    return make_run(tmp_path_factory.mktemp("conditional") / "cstudent", g, {"d": 2, "num_classes": 10},
                    class_names=CLASS_NAMES)


@pytest.fixture(scope="session")
def conditional_export(conditional_run):
    """``get(format, quantize)``: the run's export entry, made on first use (TFLite: signatures batch_1 and
    batch_64); skips where the format's converter is not installed."""
    import warnings

    done: dict[tuple[str, str], dict] = {}

    def get(fmt: str, quantize: str = "none") -> dict:
        for mod in (("onnx", "onnxscript", "onnxruntime") if fmt == "onnx" else
                    ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")):
            pytest.importorskip(mod)
        if (fmt, quantize) not in done:
            from edgegan.export import export_run

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                done[fmt, quantize] = export_run(conditional_run, format=fmt, quantize=quantize,
                                                 batch=[64] if fmt == "tflite" else None)
        return done[fmt, quantize]

    return get
