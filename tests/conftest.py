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


# ------------------------------------------------------------------ image-to-image runs (issue 21)

@pytest.fixture(scope="session")
def cifar_train(shared_data):
    """512 CIFAR-10 training images (N, 3, 32, 32) in [-1, 1], as a torch tensor."""
    pytest.importorskip("torch")
    import torch

    from edgegan.data import load_dataset

    return torch.from_numpy(load_dataset("cifar10", split="train", image_size=32, limit=512).images)


def _i2i_run(root: Path, images, task: str) -> Path:
    from edgegan.testing import make_run, tiny_i2i_student

    g, args = tiny_i2i_student(images, task=task, d=8, steps=60, seed=0)
    return make_run(root / task, g, args, family="mobile_i2i", task=task)


@pytest.fixture(scope="session")
def i2i_run(tmp_path_factory, cifar_train) -> Path:
    """A mobile_i2i d=8 super-resolution student (sr2x: 16x16 -> 32x32 RGB) after 60 steps of L1 on CIFAR-10
    (``edgegan.testing.tiny_i2i_student``); its manifest records no dataset (exports pass --dataset)."""
    return _i2i_run(tmp_path_factory.mktemp("i2i"), cifar_train, "sr2x")


@pytest.fixture(scope="session")
def i2i_colorize_run(tmp_path_factory, cifar_train) -> Path:
    """The same for colorize: grey 32x32 -> RGB 32x32, two stride-2 stages (sides multiples of 4)."""
    return _i2i_run(tmp_path_factory.mktemp("i2i"), cifar_train, "colorize")


def _exports(run: Path):
    done: dict[tuple[str, str], dict] = {}

    def get(fmt: str, quantize: str = "none") -> dict:
        for mod in (("onnx", "onnxscript", "onnxruntime") if fmt == "onnx" else
                    ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")):
            pytest.importorskip(mod)
        if (fmt, quantize) not in done:
            import warnings

            from edgegan.export import export_run

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                done[fmt, quantize] = export_run(run, format=fmt, quantize=quantize, dataset="cifar10",
                                                 batch=[1, 64] if fmt == "tflite" else None)
        return done[fmt, quantize]

    return get


@pytest.fixture(scope="session")
def i2i_export(i2i_run):
    """``get(format, quantize)``: the sr2x run's export entry on CIFAR-10 inputs, made on first use (TFLite:
    signatures batch_1 and batch_64); skips where the format's converter is not installed."""
    return _exports(i2i_run)


@pytest.fixture(scope="session")
def i2i_colorize_export(i2i_colorize_run):
    return _exports(i2i_colorize_run)
