"""The domain classifier on the embedded digits: training, its cache (keyed by data and settings,
sha256-checked), the numpy API, and the typed error for unlabelled data. MNIST's ≥ 98 % is in
test_metrics.py (slow)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edgegan.data import ImageDataset, load_dataset
from edgegan.metrics import MetricError, NeedsLabelsError
from edgegan.metrics.classifier import (
    RECORD_NAME, WEIGHTS_NAME, ClassifierArgs, TrainConfig, get_classifier, load_classifier, train_classifier,
)

FAST = TrainConfig(steps=40)  # ~3.5 epochs of digits: a few seconds on 2 idle cores
TINY = TrainConfig(steps=3)  # for cache mechanics only


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def digits_clf(digits_cache):
    return get_classifier("digits", cache_dir=digits_cache, config=FAST, progress=False)


def test_digits_classifier_trains_and_records_itself(digits_clf, digits_cache):
    assert digits_clf.test_accuracy >= 0.9
    folder = digits_clf.path
    assert folder.parent == digits_cache / "classifiers"
    assert (folder / WEIGHTS_NAME).is_file() and (folder / RECORD_NAME).is_file()
    rec = digits_clf.record
    assert rec["steps"] == 40 and rec["train"]["name"] == "digits" and rec["test"]["count"] == 299
    assert rec["key"] == folder.name and len(rec["weights_sha256"]) == 64 and rec["train_seconds"] > 0


def test_the_cached_classifier_is_reused(digits_clf, digits_cache, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("the cached classifier should have been reused")

    monkeypatch.setattr("edgegan.metrics.classifier.train_classifier", no_training)
    again = get_classifier("digits", cache_dir=digits_cache, config=FAST, progress=False)
    x = load_dataset("digits", split="test").images[:32]
    np.testing.assert_array_equal(again.features(x), digits_clf.features(x))
    assert again.test_accuracy == digits_clf.test_accuracy


def test_cache_follows_the_env_var_settings_get_their_own_entry_corrupt_weights_retrain(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("EDGEGAN_CACHE", str(tmp_path))
    a = get_classifier("digits", config=TINY, progress=False)
    b = get_classifier("digits", config=TrainConfig(steps=2), progress=False)
    assert a.path.parent == b.path.parent == tmp_path / "classifiers" and a.path != b.path
    (a.path / WEIGHTS_NAME).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="edgegan.metrics.classifier"):
        c = get_classifier("digits", config=TINY, progress=False)
    assert "retraining" in caplog.text and c.path == a.path
    assert c.record["weights_sha256"] == a.record["weights_sha256"]  # same seed, same weights
    assert load_classifier(a.path).test_accuracy == a.test_accuracy


def test_features_and_probs_are_numpy_of_the_documented_shapes(digits_clf):
    x = load_dataset("digits", split="test").images[:7]
    f, p = digits_clf.features_and_probs(x, batch_size=3)
    assert f.shape == (7, 128) and f.dtype == np.float32 and (f >= 0).all()
    assert p.shape == (7, 10) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(digits_clf.features(x), f, rtol=1e-4, atol=1e-5)  # batch size changes float32 rounding
    with pytest.raises(MetricError, match="takes images of shape"):
        digits_clf.features(np.zeros((2, 3, 32, 32), np.float32))
    assert digits_clf.summary()["test_accuracy"] == digits_clf.test_accuracy


def test_evaluate_reports_classifier_fid_and_is(digits_clf):
    from edgegan.metrics import SWDConfig, evaluate

    ref = load_dataset("digits", split="test")
    out = evaluate(ref.images[:100], ref, classifier=digits_clf, inception=False, swd_config=SWDConfig(nhoods_per_image=8))
    m = out["metrics"]
    assert m["classifier_fid"] > 0 and 1 < m["classifier_is"] <= 10 and 1 < m["classifier_is_reference"] <= 10
    assert out["classifier"]["test_accuracy"] == digits_clf.test_accuracy


def test_unlabelled_data_raise_a_typed_error_that_names_the_alternatives():
    faces = ImageDataset("faces", np.zeros((10, 3, 32, 32), np.float32), None, None, "memory", "train")
    with pytest.raises(NeedsLabelsError, match="SWD"):
        train_classifier(faces, faces, FAST, progress=False)


@pytest.mark.parametrize("bad", [dict(in_channels=2), dict(num_classes=1), dict(width=0)])
def test_classifier_args_validate_themselves(bad):
    with pytest.raises(MetricError):
        ClassifierArgs(**bad)


def test_train_config_resolves_steps_from_epochs():
    assert TrainConfig().resolved_steps(1498) == 118  # 10 epochs of digits
    assert TrainConfig().resolved_steps(22_699) == 400  # MNIST: capped
    assert TrainConfig(steps=7).resolved_steps(10) == 7
    with pytest.raises(MetricError):
        TrainConfig(steps=0)
