"""Signature generator, features and the shipped logistic-regression classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.pixels import classify as C
from prism_kernels.pixels.signatures import CLASSES, generate_dataset, generate_signature

#: Held-out accuracy the shipped model must reach on fresh signatures.
ACCURACY_FLOOR = 0.90


def test_shipped_weights_reach_floor_on_fresh_data():
    doc = json.loads(C.WEIGHTS_PATH.read_text())
    assert doc["classes"] == list(CLASSES) and doc["features"] == list(C.FEATURES)
    assert doc["training"]["held_out_accuracy"] >= ACCURACY_FLOOR
    # fresh signatures from a seed the model never saw
    sigs, y = generate_dataset(150, seed=777)
    X = C.feature_matrix([s.frames() for s in sigs])
    clf = C.default_classifier()
    pred = np.argmax(clf.predict_proba(X), axis=1)
    cm = C.confusion_matrix(y, pred, len(CLASSES))
    assert cm.sum(axis=1).tolist() == [150] * 4
    acc = np.trace(cm) / cm.sum()
    assert ACCURACY_FLOOR <= acc < 1.0  # good, and the classes do overlap
    assert np.all(np.diag(cm) > cm.sum(axis=1) * 0.8)
    # classify() on single rows agrees with the batch path
    for i in range(0, 40, 7):
        r = clf.classify(dict(zip(C.FEATURES, X[i], strict=True)))
        assert r["class"] == CLASSES[pred[i]]


@pytest.mark.slow
def test_retraining_reproduces_shipped_weights():
    doc = C.train()  # the defaults the weights file was written with (~5 s of CPU)
    ship = json.loads(C.WEIGHTS_PATH.read_text())
    # Reproducible up to the numerics of the installed SciPy/scikit-image (their filters feed the
    # features): a fresh install today differs from the shipping machine by ~1e-5 relative.
    for key in ("mean", "scale", "coef", "intercept"):
        np.testing.assert_allclose(doc[key], ship[key], rtol=1e-4, atol=1e-8)
    assert doc["training"]["confusion_matrix"] == ship["training"]["confusion_matrix"]


def test_training_is_deterministic():
    again = C.train(seed=5, n_per_class=60)
    assert again == C.train(seed=5, n_per_class=60)
    assert again["coef"] != C.train(seed=6, n_per_class=60)["coef"]


def test_newton_fit_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    n, d, k = 600, 5, 4
    X = rng.normal(size=(n, d))
    y = np.argmax(X @ rng.normal(size=(d, k)) + rng.gumbel(size=(n, k)), axis=1)
    l2 = 0.01
    W, b = C.fit_logistic(X, y, k, l2=l2)
    sk = LogisticRegression(C=1.0 / (l2 * n), solver="newton-cg", tol=1e-10, max_iter=1000).fit(
        X, y
    )
    np.testing.assert_allclose(W, sk.coef_, atol=1e-5)
    np.testing.assert_allclose(b - b.mean(), sk.intercept_ - sk.intercept_.mean(), atol=1e-5)


def test_classify_output_is_explained_by_contributions():
    sig = generate_signature("missile_plume", np.random.default_rng(1))
    f = C.track_features(sig.frames())
    r = C.classify(f)
    assert set(r["probabilities"]) == set(CLASSES)
    assert sum(r["probabilities"].values()) == pytest.approx(1.0)
    assert r["confidence"] == max(r["probabilities"].values())
    clf = C.default_classifier()
    z = (np.array([f[k] for k in C.FEATURES]) - clf.mean) / clf.scale
    scores = clf.coef @ z + clf.intercept
    c = CLASSES.index(r["class"])
    centred = scores[c] - scores.mean()
    assert sum(r["contributions"].values()) + r["bias"] == pytest.approx(centred)
    assert r["imputed"] == []


def test_track_features_hand_values():
    t = np.arange(20) * 0.1
    frames = [
        {
            "peak": 100 * np.exp(0.5 * ti),
            "area": 10.0,
            "x": 3 + 10 * ti,
            "y": 5.0,
            "band_ratio": 1.5,
        }
        for ti in t
    ]
    f = C.track_features(frames, dt=0.1)
    assert f["growth_rate"] == pytest.approx(0.5)
    assert f["speed"] == pytest.approx(10.0)
    assert f["acceleration"] == pytest.approx(0.0, abs=1e-9)
    assert f["duration"] == pytest.approx(2.0)
    assert f["peak_time_fraction"] == pytest.approx(1.0)
    assert f["band_ratio"] == 1.5
    assert f["size_growth"] == pytest.approx(0.0)
    assert f["log_peak_intensity"] == pytest.approx(np.log10(100 * np.exp(0.95)))
    # one frame: only what one frame shows; the rest is NaN and imputed by classify
    one = C.track_features([{"peak": 300.0, "area": 12}])
    assert np.isnan(one["speed"]) and np.isnan(one["growth_rate"])
    r = C.classify(one)
    assert "speed" in r["imputed"] and r["contributions"]["speed"] == 0.0


def test_invalid_inputs():
    with pytest.raises(InvalidInput):
        C.track_features([])
    with pytest.raises(InvalidInput):
        C.track_features([{"peak": 0.0, "area": 3}])
    with pytest.raises(InvalidInput):
        C.classify({"not_a_feature": 1.0})
    with pytest.raises(InvalidInput):
        C.classify({})
    with pytest.raises(InvalidInput):
        C.classify({"speed": float("inf")})
    with pytest.raises(InvalidInput):
        C.classify([1.0, 2.0])
    with pytest.raises(InvalidInput):
        generate_signature("balloon", np.random.default_rng(0))


def test_generator_is_seeded_and_physical():
    a, ya = generate_dataset(5, seed=11)
    b, yb = generate_dataset(5, seed=11)
    assert np.array_equal(ya, yb)
    for s, u in zip(a, b, strict=True):
        np.testing.assert_array_equal(s.intensity, u.intensity)
    sigs, y = generate_dataset(200, seed=12)
    X = C.feature_matrix([s.frames() for s in sigs])
    col = {k: i for i, k in enumerate(C.FEATURES)}
    med = {c: np.nanmedian(X[y == i], axis=0) for i, c in enumerate(CLASSES)}
    assert med["missile_plume"][col["growth_rate"]] > med["aircraft"][col["growth_rate"]]
    assert med["flare_decoy"][col["acceleration"]] < 0 < med["missile_plume"][col["acceleration"]]
    assert med["flare_decoy"][col["band_ratio"]] > med["aircraft"][col["band_ratio"]]
    assert med["clutter"][col["speed"]] < med["aircraft"][col["speed"]]
    assert med["flare_decoy"][col["duration"]] < med["aircraft"][col["duration"]]
