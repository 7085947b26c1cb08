"""Theta method against statsmodels ``ThetaModel`` (two-step fit, the standard method), the
decomposition against ``seasonal_decompose``, the intervals' closed form and coverage,
PyTorch equal to NumPy, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.tsa.forecasting.theta import ThetaModel

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.theta import seasonality_test, theta


def _trend(rng, B=4, n=96):
    t = np.arange(n)
    return np.stack([100 + 0.5 * t + np.cumsum(rng.normal(0, 2, n)) for _ in range(B)])


def _seasonal(rng, B=4, n=96, m=12):
    t = np.arange(n)
    return _trend(rng, B, n) * (1 + 0.2 * np.sin(2 * np.pi * t / m + rng.uniform(0, 6, (B, 1))))


def _sm(y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ThetaModel(y, **kw).fit()


def test_equals_statsmodels_without_season(rng):
    """Point forecasts within 1e-5 relative of statsmodels ThetaModel (alpha within 1e-3:
    statsmodels' optimiser stops at its bound 0.9998... where ours reaches 1), b0 within 1e-10."""
    y = _trend(rng)
    f = theta(y, 12)
    for i in range(y.shape[0]):
        r = _sm(y[i], deseasonalize=False)
        np.testing.assert_allclose(f.mean[i], r.forecast(12), rtol=1e-5)
        assert f.models[i]["alpha"] == pytest.approx(r.params.iloc[1], abs=1e-3)
        assert f.models[i]["b0"] == pytest.approx(r.params.iloc[0], rel=1e-10)
        assert f.models[i]["deseasonalized"] is False


def test_equals_statsmodels_with_season(rng):
    y = _seasonal(rng)
    f = theta(y, 18, season_length=12, deseasonalize=True)
    for i in range(y.shape[0]):
        r = _sm(y[i], period=12, deseasonalize=True, use_test=False)
        np.testing.assert_allclose(f.mean[i], r.forecast(18), rtol=1e-5)
        assert f.models[i]["deseasonalized"] is True


def test_seasonality_test_matches_the_thetaf_formula(rng):
    y = np.concatenate([_seasonal(rng, 3), _trend(rng, 3)])
    got = seasonality_test(y, 12)
    for i in range(y.shape[0]):
        d = y[i] - y[i].mean()
        r = np.array([np.sum(d[k:] * d[: 96 - k]) for k in range(13)]) / np.sum(d * d)
        lim = norm.ppf(0.95) * np.sqrt((1 + 2 * np.sum(r[1:12] ** 2)) / 96)
        assert bool(got[i]) == (abs(r[12]) > lim)
    f = theta(y, 6, season_length=12)
    assert [mm["deseasonalized"] for mm in f.models] == [bool(g) for g in got]


def test_interval_closed_form_and_coverage():
    """Intervals are mean -/+ z sigma sqrt(1 + (h-1) alpha^2); on 1500 seeded random walks with
    drift (ARIMA(0,1,0)+c, the theta model with alpha = 1) 95 % intervals cover 93-97 % of the
    7500 future values."""
    rng = np.random.default_rng(5)
    y = np.cumsum(rng.normal(0.4, 1.0, (1500, 105)), axis=1)
    f = theta(y[:, :100], 5)
    a = np.array([mm["alpha"] for mm in f.models])[:, None]
    s2 = np.array([mm["sigma2"] for mm in f.models])[:, None]
    sd = np.sqrt(s2 * (1 + np.arange(5)[None, :] * a**2))
    np.testing.assert_allclose(f.upper - f.mean, norm.ppf(0.975) * sd, rtol=1e-10)
    np.testing.assert_allclose(s2[:, 0], np.nansum(f.residuals**2, axis=1) / 97, rtol=1e-10)
    inside = (y[:, 100:] >= f.lower) & (y[:, 100:] <= f.upper)
    assert 0.93 <= inside.mean() <= 0.97


def test_torch_equals_numpy(rng, to_xp):
    y = _seasonal(rng, 3, 60)
    a = theta(y, 7, season_length=12)
    b = theta(to_xp(y), 7, season_length=12)
    for k in ("mean", "lower", "upper", "fitted"):
        np.testing.assert_allclose(to_numpy(getattr(b, k)), getattr(a, k), rtol=1e-9)


def test_nonpositive_series_use_additive_decomposition(rng):
    y = _seasonal(rng, 2) - 150.0
    f = theta(y, 4, season_length=12, deseasonalize=True)
    assert f.models[0]["seasonal_method"] == "additive"
    assert np.all(np.isfinite(f.mean))


def test_bad_input():
    y = np.arange(1.0, 30.0)
    for kw, field in [
        (dict(deseasonalize="yes"), "deseasonalize"),
        (dict(theta=0.5), "theta"),
        (dict(season_length=0), "season_length"),
        (dict(season_length=24, deseasonalize=True), "values"),
    ]:
        with pytest.raises(InvalidInput) as e:
            theta(y, 3, **kw)
        assert e.value.field == field
    with pytest.raises(InvalidInput) as e:
        theta([1.0, 2.0, 3.0], 3)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        theta(np.r_[y, np.nan], 3)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        theta(y, -1)
    assert e.value.field == "horizon"
    f = theta(y, 3, season_length=24)  # too short for the season in auto mode: none used
    assert f.models[0]["deseasonalized"] is False
