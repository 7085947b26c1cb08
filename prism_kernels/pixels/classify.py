"""Hotspot signature classification: multinomial logistic regression on named features.

A transparent model: ten named features of a hotspot's time series (see
:data:`FEATURES`), standardised, and one linear score per class; the class probabilities
are the softmax of the scores. Each feature's contribution to the decision is its weight
times its standardised value, so a prediction can be read off term by term.

Training is our own NumPy code (Newton's method on the L2-regularised mean cross-entropy;
the problem is convex and small, 4 x 11 parameters), on signatures drawn from
:mod:`prism_kernels.pixels.signatures`. It is deterministic: the same seed gives the same
weights. ``python -m prism_kernels.pixels.classify --train`` rewrites the shipped weights
(``classifier_weights.json`` next to this file) and prints the held-out accuracy and
confusion matrix. No scikit-learn at run time (the tests cross-check against it).

A feature that cannot be measured (the band ratio of a single-band sensor, the speed of a
hotspot seen in one frame) is passed as ``None``/NaN and imputed with the training mean,
i.e. a standardised value of 0, which contributes nothing to any class score.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.pixels.signatures import CLASSES, DETECTION_THRESHOLD, generate_dataset

#: Standardised feature values are clipped here (standard deviations of the training set).
Z_CLIP = 1e6
WEIGHTS_PATH = Path(__file__).with_name("classifier_weights.json")

#: Feature names, units and meaning (the order of the weight columns).
FEATURES: tuple[str, ...] = (
    "log_peak_intensity",  # log10 of the largest peak (counts above background)
    "growth_rate",  # slope of ln(peak) over the seen frames, 1/s
    "peak_time_fraction",  # when the peak comes, 0 = first seen frame, 1 = last
    "duration",  # seconds with peak above DETECTION_THRESHOLD
    "log_mean_size",  # log10 of the mean area, pixels
    "size_growth",  # slope of ln(area), 1/s
    "band_ratio",  # median MWIR/LWIR ratio
    "speed",  # median centroid speed, pixels/s
    "acceleration",  # slope of the speed, pixels/s^2
    "intensity_cv",  # coefficient of variation of the peak (flicker)
)

DEFAULT_SEED = 2026
DEFAULT_N_PER_CLASS = 1500
DEFAULT_L2 = 1e-3
HELD_OUT_FRACTION = 0.3


# --------------------------------------------------------------------------- features


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    if t.size < 2:
        return float("nan")
    tc = t - t.mean()
    den = float(np.sum(tc * tc))
    return float(np.sum(tc * (y - y.mean())) / den) if den > 0 else float("nan")


def _get(frame: Mapping[str, Any], *names: str) -> float:
    for name in names:
        v = frame.get(name)
        if v is not None:
            return float(v)
    return float("nan")


def track_features(frames: Sequence[Mapping[str, Any]], dt: float = 0.1) -> dict[str, float]:
    """The named features of one hotspot followed over consecutive frames.

    Parameters
    ----------
    frames : sequence of dict
        Per-frame statistics of the same hotspot, oldest first, as
        :func:`prism_kernels.pixels.hotspots.detect_hotspots` gives them: ``peak`` (counts
        above background; ``intensity`` is read when ``peak`` is missing), ``area``
        (pixels; or ``size``), ``x``, ``y`` (pixels), optionally ``band_ratio`` (MWIR/LWIR)
        and ``t`` (seconds; default ``index * dt``). A frame where the hotspot was not
        seen has peak 0 (or ``None``).
    dt : float
        Seconds between frames when ``t`` is not given.

    Returns
    -------
    dict
        One value per name of :data:`FEATURES`; NaN where it cannot be measured
        (e.g. speed from a single frame); :func:`classify` imputes those.
    """
    if len(frames) == 0:
        raise InvalidInput("frames", "need at least one frame of hotspot statistics")
    if not dt > 0:
        raise InvalidInput("dt", "must be > 0")
    n = len(frames)
    peak = np.array([_get(f, "peak", "intensity") for f in frames])
    area = np.array([_get(f, "area", "size") for f in frames])
    ratio = np.array([_get(f, "band_ratio") for f in frames])
    x = np.array([_get(f, "x") for f in frames])
    y = np.array([_get(f, "y") for f in frames])
    t = np.array([_get(f, "t") for f in frames])
    t = np.where(np.isfinite(t), t, np.arange(n) * dt)
    if np.any(np.isinf(peak)) or np.any(np.isinf(area)):
        raise InvalidInput("frames", "peak and area must be finite")
    peak = np.nan_to_num(peak, nan=0.0)
    seen = peak > 0
    out = dict.fromkeys(FEATURES, float("nan"))
    if not seen.any():
        raise InvalidInput("frames", "the hotspot is not seen in any frame (all peaks are 0)")
    ts, ps = t[seen], peak[seen]
    out["log_peak_intensity"] = math.log10(float(ps.max()))
    out["growth_rate"] = _slope(ts, np.log(ps))
    span = ts[-1] - ts[0]
    out["peak_time_fraction"] = (
        float((ts[np.argmax(ps)] - ts[0]) / span) if span > 0 else float("nan")
    )
    out["duration"] = float(
        np.sum(peak > DETECTION_THRESHOLD) * (dt if n < 2 else np.median(np.diff(t)))
    )
    a = area[seen]
    a_ok = np.isfinite(a) & (a > 0)
    if a_ok.any():
        out["log_mean_size"] = math.log10(float(a[a_ok].mean()))
        out["size_growth"] = _slope(ts[a_ok], np.log(a[a_ok]))
    r = ratio[seen]
    if np.isfinite(r).any():
        out["band_ratio"] = float(np.median(r[np.isfinite(r)]))
    pos_ok = seen & np.isfinite(x) & np.isfinite(y)
    if pos_ok.sum() >= 2:
        tp, xp, yp = t[pos_ok], x[pos_ok], y[pos_ok]
        dtp = np.diff(tp)
        good = dtp > 0
        v = np.hypot(np.diff(xp), np.diff(yp))[good] / dtp[good]
        if v.size:
            out["speed"] = float(np.median(v))
            tm = 0.5 * (tp[1:] + tp[:-1])[good]
            if v.size >= 2:
                out["acceleration"] = _slope(tm, v)
    if ps.size >= 2 and ps.mean() > 0:
        out["intensity_cv"] = float(ps.std() / ps.mean())
    return out


def feature_matrix(tracks: Sequence[Sequence[Mapping[str, Any]]], dt: float = 0.1) -> np.ndarray:
    """Stack :func:`track_features` of many tracks into an ``(n, len(FEATURES))`` array."""
    rows = []
    for tr in tracks:
        f = track_features(tr, dt)
        rows.append([f[k] for k in FEATURES])
    return np.array(rows, dtype=float).reshape(-1, len(FEATURES))


# --------------------------------------------------------------------------- model


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_logistic(
    X: np.ndarray, y: np.ndarray, n_classes: int, l2: float = DEFAULT_L2, max_iter: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by Newton's method.

    Minimises ``mean_i -log p(y_i | x_i) + l2/2 * ||W||^2`` (the intercept is not
    penalised) over ``W`` (n_classes, d) and ``b`` (n_classes,). ``X`` should be
    standardised. Deterministic; stops when the Newton step is below 1e-10.
    """
    n, d = X.shape
    Xa = np.hstack([X, np.ones((n, 1))])
    k = n_classes
    theta = np.zeros((k, d + 1))
    Y = np.eye(k)[y]
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(max_iter):
        P = _softmax(Xa @ theta.T)
        grad = (P - Y).T @ Xa / n + reg * theta
        # Hessian blocks: H[(a,i),(b,j)] = mean_n x_i x_j P_a (delta_ab - P_b) + reg
        H = np.zeros((k, d + 1, k, d + 1))
        for a in range(k):
            for b in range(a, k):
                w = P[:, a] * ((a == b) - P[:, b])
                blk = (Xa * w[:, None]).T @ Xa / n
                H[a, :, b, :] = blk
                H[b, :, a, :] = blk.T
        Hm = (
            H.reshape(k * (d + 1), k * (d + 1))
            + np.diag(np.tile(reg, k))
            + 1e-10 * np.eye(k * (d + 1))
        )
        step = np.linalg.solve(Hm, grad.reshape(-1)).reshape(k, d + 1)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta[:, :d], theta[:, d]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of true class ``i`` predicted as ``j``."""
    c = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(c, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return c


def train(
    seed: int = DEFAULT_SEED, n_per_class: int = DEFAULT_N_PER_CLASS, l2: float = DEFAULT_L2
) -> dict[str, Any]:
    """Train on freshly generated signatures; returns the weights document (JSON-able).

    The data are split into training and held-out parts (``HELD_OUT_FRACTION``, by a
    permutation from the same seed); the document records the held-out accuracy and the
    confusion matrix (rows: true class, columns: predicted, in :data:`CLASSES` order).
    """
    sigs, labels = generate_dataset(n_per_class, seed=seed)
    X = feature_matrix([s.frames() for s in sigs], dt=sigs[0].dt)
    perm = np.random.default_rng(seed + 1).permutation(len(labels))
    n_test = int(round(HELD_OUT_FRACTION * len(labels)))
    test, tr = perm[:n_test], perm[n_test:]
    mean = np.nanmean(X[tr], axis=0)
    Xi = np.where(np.isfinite(X), X, mean)
    scale = Xi[tr].std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    Z = (Xi - mean) / scale
    W, b = fit_logistic(Z[tr], labels[tr], len(CLASSES), l2=l2)
    pred = np.argmax(Z[test] @ W.T + b, axis=1)
    cm = confusion_matrix(labels[test], pred, len(CLASSES))
    return {
        "model": "multinomial_logistic_regression",
        "classes": list(CLASSES),
        "features": list(FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": W.tolist(),
        "intercept": b.tolist(),
        "training": {
            "seed": seed,
            "n_per_class": n_per_class,
            "l2": l2,
            "n_train": int(tr.size),
            "n_held_out": int(test.size),
            "held_out_accuracy": float(np.trace(cm) / cm.sum()),
            "confusion_matrix": cm.tolist(),
            "command": "python -m prism_kernels.pixels.classify --train",
        },
    }


class SignatureClassifier:
    """A trained model: standardisation plus one linear score per class."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.classes = tuple(doc["classes"])
        self.features = tuple(doc["features"])
        self.mean = np.asarray(doc["mean"], dtype=float)
        self.scale = np.asarray(doc["scale"], dtype=float)
        self.coef = np.asarray(doc["coef"], dtype=float)
        self.intercept = np.asarray(doc["intercept"], dtype=float)
        self.training = dict(doc.get("training", {}))
        if self.coef.shape != (len(self.classes), len(self.features)):
            raise InvalidInput(
                "weights",
                f"coef has shape {self.coef.shape}, expected {(len(self.classes), len(self.features))}",
            )

    @classmethod
    def load(cls, path: str | Path = WEIGHTS_PATH) -> SignatureClassifier:
        return cls(json.loads(Path(path).read_text()))

    def _vector(
        self, features: Mapping[str, Any] | Sequence[float] | np.ndarray
    ) -> tuple[np.ndarray, list[str]]:
        if isinstance(features, Mapping):
            unknown = set(features) - set(self.features)
            if unknown:
                raise InvalidInput(
                    "features",
                    f"unknown feature(s) {sorted(unknown)}; known: {', '.join(self.features)}",
                )
            vals = [features.get(k) for k in self.features]
            x = np.array([np.nan if v is None else v for v in vals], dtype=float)
        else:
            x = np.asarray(features, dtype=float).reshape(-1)
            if x.size != len(self.features):
                raise InvalidInput(
                    "features",
                    f"expected {len(self.features)} values ({', '.join(self.features)}); got {x.size}",
                )
        if np.any(np.isinf(x)):
            raise InvalidInput(
                "features",
                "values must be finite (use None/NaN for a feature that was not measured)",
            )
        missing = [self.features[i] for i in np.flatnonzero(np.isnan(x))]
        if len(missing) == len(self.features):
            raise InvalidInput("features", "no feature was given")
        return np.where(np.isnan(x), self.mean, x), missing

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities for an ``(n, d)`` feature array (NaN imputed)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        Z = (np.where(np.isnan(X), self.mean, X) - self.mean) / self.scale
        return _softmax(Z @ self.coef.T + self.intercept)

    def classify(
        self, features: Mapping[str, Any] | Sequence[float] | np.ndarray
    ) -> dict[str, Any]:
        """Class, confidence, per-class probabilities and per-feature contributions.

        ``contributions[name]`` is the feature's share of the predicted class's score minus
        the mean score over classes (``(w_c - mean_k w_k) * z``); these plus ``bias`` add up
        to the predicted class's centred score, so positive terms pushed toward the class.
        """
        x, missing = self._vector(features)
        # A feature far outside anything seen in training (1e308) saturates the model instead of
        # overflowing it: standardised values are clipped at +-Z_CLIP standard deviations.
        with np.errstate(over="ignore", invalid="ignore"):
            z = np.clip((x - self.mean) / self.scale, -Z_CLIP, Z_CLIP)
        scores = self.coef @ z + self.intercept
        p = _softmax(scores)
        c = int(np.argmax(p))
        centred = self.coef[c] - self.coef.mean(axis=0)
        contrib = centred * z
        return {
            "class": self.classes[c],
            "confidence": float(p[c]),
            "probabilities": {k: float(v) for k, v in zip(self.classes, p, strict=True)},
            "contributions": {k: float(v) for k, v in zip(self.features, contrib, strict=True)},
            "bias": float(self.intercept[c] - self.intercept.mean()),
            "features": {k: float(v) for k, v in zip(self.features, x, strict=True)},
            "imputed": missing,
            "model": "multinomial_logistic_regression",
        }


@functools.cache
def default_classifier() -> SignatureClassifier:
    """The shipped model (``classifier_weights.json``), loaded once."""
    return SignatureClassifier.load(WEIGHTS_PATH)


def classify(features: Mapping[str, Any] | Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Classify one hotspot from its named features with the shipped model (see :meth:`SignatureClassifier.classify`)."""
    return default_classifier().classify(features)


def classify_track(frames: Sequence[Mapping[str, Any]], dt: float = 0.1) -> dict[str, Any]:
    """Features of one hotspot's per-frame statistics (:func:`track_features`), then :func:`classify`."""
    return classify(track_features(frames, dt))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m prism_kernels.pixels.classify", description=__doc__.splitlines()[0]
    )
    p.add_argument("--train", action="store_true", help="retrain and write the weights file")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--n-per-class", type=int, default=DEFAULT_N_PER_CLASS)
    p.add_argument("--l2", type=float, default=DEFAULT_L2)
    p.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = p.parse_args(argv)
    if args.train:
        doc = train(args.seed, args.n_per_class, args.l2)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")
    else:
        doc = json.loads(args.out.read_text())
    tr = doc["training"]
    print(
        f"held-out accuracy: {tr['held_out_accuracy']:.4f} ({tr['n_held_out']} signatures, seed {tr['seed']})"
    )
    w = max(len(c) for c in doc["classes"])
    print("confusion matrix (rows: true, columns: predicted)")
    print(" " * (w + 1) + " ".join(f"{c[:8]:>8}" for c in doc["classes"]))
    for c, row in zip(doc["classes"], tr["confusion_matrix"], strict=True):
        print(f"{c:<{w}} " + " ".join(f"{v:>8d}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
