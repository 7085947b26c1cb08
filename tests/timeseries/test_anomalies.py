"""Anomaly scores against pandas / NumPy / statsmodels references, and injected anomalies.

Injected-anomaly runs: 50 seeded series x 480 points, 5 spikes of 6-8 noise sd per series
(250 anomalies, at least 3 apart, none in the first 40 or last 10 points), threshold 4.
Measured on this seed (recall / precision): rolling z-score 0.916 / 0.966, robust z-score
0.992 / 0.886, residual scores 0.992 / 1.000, seasonal decomposition (trend + season 12 +
noise) 0.984 / 0.984. The asserted floors sit a little below these.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from statsmodels.tsa.seasonal import seasonal_decompose

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import anomalies as A
from prism_kernels.timeseries import generators as G
from prism_kernels.timeseries.decomposition import decompose


def _inject(seed: int, seasonal: bool = False):
    rng = np.random.default_rng(seed)
    B, n = 50, 480
    if seasonal:
        y = G.seasonal_series(
            n, 12, level=20, slope=0.02, amplitude=5, noise_sd=1.0, n_series=B, seed=rng
        )["values"]
    else:
        y = rng.normal(size=(B, n))
    truth = []
    for i in range(B):
        while True:
            pos = np.sort(rng.choice(np.arange(40, n - 10), 5, replace=False))
            if np.all(np.diff(pos) >= 3):
                break
        y[i, pos] += rng.choice([-1.0, 1.0], 5) * rng.uniform(6, 8, 5)
        truth.append(set(pos.tolist()))
    return y, truth


def _recall_precision(found, truth):
    tp = sum(len(set(f) & t) for f, t in zip(found, truth, strict=True))
    fp = sum(len(set(f) - t) for f, t in zip(found, truth, strict=True))
    fn = sum(len(t - set(f)) for f, t in zip(found, truth, strict=True))
    return tp / (tp + fn), tp / max(1, tp + fp)


def test_rolling_zscore_equals_pandas(to_xp):
    rng = np.random.default_rng(1)
    Y = rng.normal(10, 3, size=(3, 200))
    out = A.rolling_zscore(to_xp(Y), window=25, threshold=3.0)
    s = to_numpy(out.scores)
    assert s.shape == (3, 200) and np.isnan(s[:, :25]).all()
    for i in range(3):
        p = pd.Series(Y[i])
        ref = (p - p.rolling(25).mean().shift(1)) / p.rolling(25).std().shift(1)
        np.testing.assert_allclose(s[i, 25:], ref.to_numpy()[25:], rtol=1e-10, atol=1e-12)
        assert out.indices[i] == np.flatnonzero(np.abs(ref.to_numpy()) > 3.0).tolist()


def test_robust_zscore_equals_numpy_median_mad(to_xp):
    rng = np.random.default_rng(2)
    Y = rng.standard_t(3, size=(2, 150))
    for w in (10, 11):
        out = A.robust_zscore(to_xp(Y), window=w, threshold=3.5)
        s = to_numpy(out.scores)
        for i in range(2):
            W = sliding_window_view(Y[i], w)[:-1]
            med = np.median(W, axis=1)
            mad = np.median(np.abs(W - med[:, None]), axis=1)
            np.testing.assert_allclose(s[i, w:], (Y[i, w:] - med) / (1.4826 * mad), rtol=1e-12)
            assert np.isnan(s[i, :w]).all()


@pytest.mark.parametrize("model", ["additive", "multiplicative"])
@pytest.mark.parametrize("s", [12, 7])
def test_decompose_equals_statsmodels(model, s, to_xp):
    out = G.seasonal_series(101, s, level=50, slope=0.3, amplitude=6, n_series=3, seed=s)
    Y = out["values"]
    d = decompose(to_xp(Y), s, model)
    for i in range(3):
        ref = seasonal_decompose(Y[i], model=model, period=s)
        for k in ("trend", "seasonal", "resid"):
            np.testing.assert_allclose(
                to_numpy(d[k])[i], getattr(ref, k), rtol=1e-10, atol=1e-10, equal_nan=True
            )


def test_residual_scores_closed_form(to_xp):
    rng = np.random.default_rng(3)
    R = rng.normal(0, 2, size=(2, 100))
    R[0, :3] = np.nan  # no fit for the first points
    out = A.residual_scores(to_xp(R), threshold=2.5)
    s = to_numpy(out.scores)
    for i in range(2):
        r = R[i][np.isfinite(R[i])]
        mad = np.median(np.abs(r - np.median(r)))
        np.testing.assert_allclose(s[i], R[i] / (1.4826 * mad), rtol=1e-12, equal_nan=True)
    assert np.isnan(s[0, :3]).all() and all(j >= 3 for j in out.indices[0])
    plain = to_numpy(A.residual_scores(to_xp(R), threshold=2.5, robust=False).scores)
    r = R[0][3:]
    np.testing.assert_allclose(plain[0, 3:], (r - r.mean()) / r.std(ddof=1), rtol=1e-12)


def test_injected_anomalies_recall_precision():
    y, truth = _inject(1)
    rec, prec = _recall_precision(A.rolling_zscore(y, 30, 4.0).indices, truth)
    assert rec >= 0.88 and prec >= 0.93, (rec, prec)
    rec, prec = _recall_precision(A.robust_zscore(y, 30, 4.0).indices, truth)
    assert rec >= 0.97 and prec >= 0.85, (rec, prec)
    # the noise itself is the residual of the true model (mean 0)
    rec, prec = _recall_precision(A.residual_scores(y, 4.0).indices, truth)
    assert rec >= 0.97 and prec >= 0.97, (rec, prec)
    ys, ts = _inject(2, seasonal=True)
    rec, prec = _recall_precision(A.seasonal_scores(ys, 12, 4.0).indices, ts)
    assert rec >= 0.96 and prec >= 0.96, (rec, prec)


def test_constant_window_scores_zero_or_inf():
    y = np.r_[np.ones(20), 5.0, 1.0]
    s = to_numpy(A.rolling_zscore(y, 10).scores)[0]
    assert s[19] == 0.0 and s[20] == np.inf and np.isfinite(s[21])
    r = to_numpy(A.robust_zscore(np.r_[np.full(20, 0.1), -3.0], 10).scores)[0]
    assert r[19] == 0.0 and r[20] == -np.inf
    out = A.rolling_zscore(y, 10)
    assert 20 in out.indices[0]


def test_detect_dispatch_and_seasonal_ends_not_scored():
    y = G.seasonal_series(96, 12, n_series=2, seed=4)["values"]
    a = A.detect(y, "seasonal", season_length=12, threshold=3.0)
    b = A.seasonal_scores(y, 12, threshold=3.0)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert np.isnan(a.scores[:, :6]).all() and np.isnan(a.scores[:, -6:]).all()
    assert a.method == "seasonal" and set(a.components) >= {"trend", "seasonal", "resid"}
    with pytest.raises(InvalidInput) as e:
        A.detect(y, "isolation_forest")
    assert e.value.field == "method" and "robust_zscore" in e.value.message


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: A.rolling_zscore([1.0, np.nan, 2.0, 3.0, 4.0], 2), "values"),
        (lambda: A.robust_zscore([1.0, np.inf, 2.0, 3.0, 4.0], 2), "values"),
        (lambda: A.rolling_zscore([], 2), "values"),
        (lambda: A.rolling_zscore(np.zeros((2, 2, 5)), 2), "values"),
        (lambda: A.rolling_zscore(np.arange(10.0), 10), "window"),
        (lambda: A.robust_zscore(np.arange(10.0), 1), "window"),
        (lambda: A.rolling_zscore(np.arange(10.0), 3, threshold=0), "threshold"),
        (lambda: A.rolling_zscore(np.arange(10.0), 3, threshold=np.nan), "threshold"),
        (lambda: A.residual_scores([1.0, np.inf, 0.0]), "residuals"),
        (lambda: A.residual_scores([np.nan, 1.0, np.nan]), "residuals"),
        (lambda: A.seasonal_scores(np.arange(1.0, 20.0), 12), "values"),
        (lambda: A.seasonal_scores(np.arange(1.0, 40.0), 1), "season_length"),
        (lambda: A.seasonal_scores(np.arange(-5.0, 40.0), 12, model="multiplicative"), "values"),
        (lambda: A.seasonal_scores(np.arange(1.0, 40.0), 12, model="log"), "model"),
    ],
)
def test_invalid_input_names_field(call, field):
    with pytest.raises(InvalidInput) as e:
        call()
    assert e.value.field == field
