"""Seeded generators against theory: autocorrelations, variances, exact recursions.

Tolerances are stated per test, sized at about 5 standard errors of the statistic for the
sample sizes used (given in each test).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.tsa.arima_process import ArmaProcess

from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import generators as G
from prism_kernels.timeseries.changepoints import pelt


def _acf(x: np.ndarray, lags: list[int]) -> np.ndarray:
    """Mean over series of the sample autocorrelation at ``lags``; x (B, n)."""
    z = x - x.mean(axis=1, keepdims=True)
    den = (z * z).sum(axis=1)
    return np.array([((z[:, k:] * z[:, :-k]).sum(axis=1) / den).mean() for k in lags])


def test_ar1_lag1_autocorrelation_and_variance():
    # 8 series x 20,000 points: SE of the mean lag-1 ACF ~ 0.002, of the variance ~ 0.6 %
    phi, sigma = 0.7, 1.0
    out = G.arima_process(20_000, ar=[phi], sigma=sigma, n_series=8, seed=1)
    x = out["values"]
    assert x.shape == (8, 20_000)
    assert abs(_acf(x, [1])[0] - phi) < 0.01
    assert x.var(axis=1).mean() == pytest.approx(sigma**2 / (1 - phi**2), rel=0.03)


def test_ma1_autocorrelation():
    theta = 0.5
    x = G.arima_process(20_000, ma=[theta], n_series=8, seed=2)["values"]
    acf = _acf(x, [1, 2])
    assert abs(acf[0] - theta / (1 + theta**2)) < 0.01
    assert abs(acf[1]) < 0.01


def test_seasonal_arma_acf_matches_statsmodels_theory():
    # ARMA(2,1)(1,0)[12]; 6 series x 30,000 points; tolerance 0.02 on each lag
    out = G.arima_process(
        30_000,
        ar=[0.5, -0.2],
        ma=[0.4],
        seasonal_ar=[0.6],
        season_length=12,
        mean=3.0,
        n_series=6,
        seed=3,
    )
    theory = ArmaProcess(np.array(out["ar_poly"]), np.array(out["ma_poly"])).acf(25)
    lags = [1, 2, 3, 11, 12, 13, 24]
    np.testing.assert_allclose(_acf(out["values"], lags), theory[lags], atol=0.02)
    assert out["values"].mean() == pytest.approx(3.0, abs=0.1)


def test_integration_is_exact():
    out = G.arima_process(300, ar=[0.3], d=1, D=1, season_length=4, n_series=3, seed=4)
    y, x = out["values"], out["stationary"]
    w = y[:, 4:] - y[:, :-4]  # seasonal difference
    np.testing.assert_allclose(np.diff(w, axis=1), x[:, 5:], atol=1e-9)
    out1 = G.arima_process(100, ma=[0.2], d=1, n_series=2, seed=5)
    np.testing.assert_allclose(
        np.diff(out1["values"], axis=1), out1["stationary"][:, 1:], atol=1e-12
    )


def test_seed_reproducible():
    a = G.arima_process(50, ar=[0.5], n_series=2, seed=7)["values"]
    b = G.arima_process(50, ar=[0.5], n_series=2, seed=7)["values"]
    c = G.arima_process(50, ar=[0.5], n_series=2, seed=8)["values"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ar": [1.1]}, "ar"),
        ({"ar": [0.5, 0.6]}, "ar"),
        ({"ma": [1.5]}, "ma"),
        ({"seasonal_ar": [1.0], "season_length": 4}, "seasonal_ar"),
        ({"seasonal_ar": [0.5]}, "season_length"),
        ({"sigma": 0.0}, "sigma"),
        ({"n_series": 0}, "n_series"),
        ({"ar": [np.nan]}, "ar"),
    ],
)
def test_arima_invalid(kwargs, field):
    with pytest.raises(InvalidInput) as e:
        G.arima_process(50, **kwargs)
    assert e.value.field == field


def test_garch_recursion_and_unconditional_variance():
    # GJR: omega=0.05, alpha=0.05, beta=0.85, gamma=0.08 (persistence 0.94);
    # 40 series x 5,000 points: SE of the mean squared return ~ 1.5 %; tolerance 6 %.
    p = {"omega": 0.05, "alpha": 0.05, "beta": 0.85, "gamma": 0.08}
    out = G.garch_process(5000, **p, mu=0.1, n_series=40, seed=11)
    r, v = out["values"], out["variances"]
    eps = r - 0.1
    # the returned variances are exactly the recursion on the returned returns
    rec = np.empty_like(v)
    rec[:, 0] = v[:, 0]
    for t in range(1, r.shape[1]):
        e = eps[:, t - 1]
        rec[:, t] = (
            p["omega"] + (p["alpha"] + p["gamma"] * (e < 0)) * e * e + p["beta"] * rec[:, t - 1]
        )
    np.testing.assert_allclose(v, rec, rtol=1e-12)
    np.testing.assert_allclose(eps / np.sqrt(v), out["innovations"], rtol=1e-12)
    theory = p["omega"] / (1 - p["alpha"] - p["gamma"] / 2 - p["beta"])
    assert out["unconditional_variance"] == pytest.approx(theory)
    assert (eps**2).mean() == pytest.approx(theory, rel=0.06)
    assert v.mean() == pytest.approx(theory, rel=0.06)
    # leverage: variance after a negative shock exceeds that after a positive one by ~gamma*E[e^2|e<0]
    up = v[:, 1:][eps[:, :-1] < 0].mean() - v[:, 1:][eps[:, :-1] > 0].mean()
    assert up > 0


def test_garch_student_t_innovations_have_unit_variance():
    # 20 series x 5,000 points of t(6) scaled to unit variance: SE of the variance ~ 0.6 %
    out = G.garch_process(5000, dist="t", nu=6.0, n_series=20, seed=12)
    z = out["innovations"]
    assert z.var() == pytest.approx(1.0, rel=0.04)
    # tails: P(|z| > 3) of the scaled t(6) is 0.0104; 100,000 draws: SE ~ 3 %, tolerance 15 %
    nu, scale = 6.0, np.sqrt(4.0 / 6.0)
    expected = 2 * stats.t.sf(3.0 / scale, nu)
    assert (np.abs(z) > 3).mean() == pytest.approx(expected, rel=0.15)
    assert (np.abs(z) > 3).mean() > 2 * stats.norm.sf(3.0) * 2  # heavier than normal


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0.2, "beta": 0.85}, "beta"),
        ({"omega": 0.0}, "omega"),
        ({"gamma": -0.2, "alpha": 0.1}, "gamma"),
        ({"dist": "ged"}, "dist"),
        ({"dist": "t", "nu": 2.0}, "nu"),
    ],
)
def test_garch_invalid(kwargs, field):
    with pytest.raises(InvalidInput) as e:
        G.garch_process(100, **kwargs)
    assert e.value.field == field


def test_regime_series_known_change_points():
    out = G.regime_series(600, n_changes=3, min_gap=50, mean_shift=3.0, n_series=10, seed=13)
    y = out["values"]
    found = pelt(y, "bic", "l2", min_size=10, jump=1)
    close = 0
    for i in range(10):
        bk = out["breakpoints"][i]
        assert bk[-1] == 600 and len(bk) == 4
        assert min(np.diff([0, *bk])) >= 50
        starts = [0, *bk[:-1]]
        for j, (a, b) in enumerate(zip(starts, bk, strict=True)):
            # segment means within 5 standard errors of the truth (sd 1)
            assert abs(y[i, a:b].mean() - out["means"][i][j]) < 5 / np.sqrt(b - a)
        # shifts of 1.5-4.5 sd over >= 50 points: PELT (BIC, min_size 10) finds each one
        # within 10 steps, and at least 80 % of the 30 within 3 steps
        assert len(found[i]) == 4
        err = [abs(f - t) for f, t in zip(found[i][:-1], bk[:-1], strict=True)]
        assert max(err) <= 10
        close += sum(e <= 3 for e in err)
    assert close >= 24
    with pytest.raises(InvalidInput) as e:
        G.regime_series(100, n_changes=5, min_gap=20)
    assert e.value.field == "n_changes"


def test_seasonal_series_components():
    out = G.seasonal_series(
        240, season_length=12, level=50, slope=0.2, amplitude=5, n_series=4, seed=14
    )
    y = out["values"]
    np.testing.assert_allclose(y, out["trend"] + out["season"] + out["noise"], atol=1e-12)
    # the seasonal pattern sums to zero over every full period
    np.testing.assert_allclose(out["season"].reshape(4, 20, 12).sum(axis=2), 0.0, atol=1e-9)
    # least squares on t recovers the slope (noise sd 0.5, 240 points: SE ~ 0.0009 + season)
    t = np.arange(240.0)
    slopes = np.polyfit(t, y.T, 1)[0]
    np.testing.assert_allclose(slopes, 0.2, atol=0.01)
    m = G.seasonal_series(120, level=10, amplitude=2, multiplicative=True, noise_sd=0, seed=1)
    np.testing.assert_allclose(m["values"], m["trend"] * (1 + m["season"] / 10), atol=1e-12)
