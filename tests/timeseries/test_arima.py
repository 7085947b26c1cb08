"""Seasonal ARIMA: likelihood and fit against statsmodels' SARIMAX, engines against each other,
forecasts and interval coverage, the order search, and input validation.

References (statsmodels 0.15):
- likelihood without a constant: ``SARIMAX(y, order=(p, d, q), seasonal_order=(P, D, Q, s),
  trend="n", simple_differencing=True).loglike(params)`` (differencing applied first, the
  stationary ARMA part initialised at its stationary covariance);
- likelihood with a constant (the mean of the differenced series ``w``): ``SARIMAX(w,
  exog=ones, order=(p, 0, q), seasonal_order=(P, 0, Q, s)).loglike([mean, ...])``
  (regression on a constant with SARIMA errors);
- fits: ``SARIMAX(y, order=(p, 0, q), trend="n").fit(method="lbfgs", maxiter=1000)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from statsmodels.tsa.arima_process import arma_generate_sample
from statsmodels.tsa.seasonal import seasonal_decompose
from statsmodels.tsa.statespace.sarimax import SARIMAX
from statsmodels.tsa.stattools import kpss

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import _arima_numba as nb
from prism_kernels.timeseries import arima as A
from prism_kernels.timeseries import statespace as ss


def _arma(rng, ar, ma, n, B=1):
    return np.stack(
        [
            arma_generate_sample(
                np.r_[1, -np.asarray(ar)], np.r_[1, ma], n, distrvs=rng.standard_normal
            )
            for _ in range(B)
        ]
    )


def _sarima(rng, n, ar=(0.5,), ma=(-0.3,), sar=(0.3,), sma=(-0.4,), s=12, d=1, D=1, B=1):
    phi = ss.expand_ar(np.asarray([ar], float), np.asarray([sar], float), s)[0]
    theta = ss.expand_ma(np.asarray([ma], float), np.asarray([sma], float), s)[0]
    w = _arma(rng, phi, theta, n + 200, B)[:, 200:]
    y = w
    for _ in range(D):
        y = np.concatenate([rng.normal(0, 3, (B, s)), y], axis=1)
        for t in range(s, y.shape[1]):
            y[:, t] += y[:, t - s]
    for _ in range(d):
        y = np.cumsum(y, axis=1)
    return y[:, -n:] + 50.0


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ----------------------------------------------------------------------------- likelihood

CASES = [
    # order, seasonal_order, s, params (no sigma2), data kind
    ((2, 0, 1), (0, 0, 0), 1, [0.5, -0.2, 0.4], "arma"),
    ((1, 1, 1), (0, 0, 0), 1, [0.3, -0.5], "arima"),
    ((0, 1, 2), (0, 0, 0), 1, [-0.4, 0.2], "arima"),
    ((1, 1, 1), (1, 1, 1), 12, [0.4, -0.3, 0.2, -0.5], "sarima"),
    ((2, 0, 0), (0, 1, 1), 4, [0.3, 0.2, -0.6], "sarima4"),
]


def _data(kind, rng):
    if kind == "arma":
        return _arma(rng, [0.5, -0.2], [0.4], 300)
    if kind == "arima":
        return np.cumsum(_arma(rng, [0.3], [-0.5], 250), axis=1)
    if kind == "sarima":
        return _sarima(rng, 200)
    return _sarima(rng, 160, ar=(0.3, 0.2), ma=(), sar=(), sma=(-0.6,), s=4, d=0, D=1)


@pytest.mark.parametrize("order,sorder,s,par,kind", CASES)
def test_loglike_equals_sarimax(order, sorder, s, par, kind, rng, xp, to_xp):
    y = _data(kind, rng)
    sigma2 = 1.7
    ref = SARIMAX(
        y[0],
        order=order,
        seasonal_order=(*sorder, s) if s > 1 else (0, 0, 0, 0),
        trend="n",
        simple_differencing=True,
    ).loglike(np.r_[par, sigma2])
    ours = A.arima_loglike(to_xp(y), np.r_[par, sigma2], order, sorder, s)
    assert abs(float(to_numpy(ours)[0]) - ref) <= 1e-6 * abs(ref)


@pytest.mark.parametrize("order,sorder,s", [((1, 0, 1), (0, 0, 0), 1), ((1, 1, 0), (1, 1, 1), 12)])
def test_loglike_with_constant_equals_sarimax_regression(order, sorder, s, rng, xp, to_xp):
    y = _sarima(rng, 200) if s > 1 else _arma(rng, [0.6], [0.3], 300) + 4.0
    p, d, q = order
    P, D, Q = sorder
    w = A.difference(y, d, D, s)[0]
    params = np.r_[0.3, [0.4] * p, [0.2] * q, [-0.3] * P, [-0.4] * Q, 2.1]
    ref = SARIMAX(
        w,
        exog=np.ones_like(w),
        order=(p, 0, q),
        seasonal_order=(P, 0, Q, s) if s > 1 else (0, 0, 0, 0),
        trend="n",
    ).loglike(params)
    ours = A.arima_loglike(to_xp(y), params, order, sorder, s, include_constant=True)
    assert abs(float(to_numpy(ours)[0]) - ref) <= 1e-6 * abs(ref)


def test_loglike_batch_and_engines_agree(rng):
    y = _sarima(rng, 150, B=6)
    params = np.array([[0.1 * b, -0.2, 0.3, -0.4, 1.0 + b] for b in range(6)])
    a = A.arima_loglike(y, params, (1, 1, 1), (1, 1, 1), 12, engine="numba")
    b = A.arima_loglike(y, params, (1, 1, 1), (1, 1, 1), 12, engine="array")
    np.testing.assert_allclose(a, b, rtol=1e-11)
    for i in range(6):
        ref = SARIMAX(
            y[i], order=(1, 1, 1), seasonal_order=(1, 1, 1, 12), simple_differencing=True
        ).loglike(params[i])
        assert abs(a[i] - ref) <= 1e-6 * abs(ref)


def test_numba_filter_and_css_equal_array_path(rng):
    B, m = 5, 120
    w = rng.standard_normal((B, m))
    ar = rng.uniform(-0.5, 0.5, (B, 2))
    ma = rng.uniform(-0.5, 0.5, (B, 1))
    sar = rng.uniform(-0.5, 0.5, (B, 1))
    sma = rng.uniform(-0.5, 0.5, (B, 1))
    phi, theta = ss.expand_ar(ar, sar, 12), ss.expand_ma(ma, sma, 12)
    mu = rng.standard_normal(B)
    out_nb = nb.kalman_filter(w, phi, theta, mu, ss.STEADY_TOL)
    out_xp = ss.kalman_filter(w, phi, theta, mu)
    for x, y in zip(out_nb, out_xp, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(
        nb.css_residuals(w, phi, theta, mu, 26),
        ss.css_residuals(w, phi, theta, mu, 26),
        rtol=1e-12,
        atol=1e-12,
    )


def test_stationary_cov_solves_lyapunov(rng):
    phi = ss.expand_ar(np.array([[0.5, -0.3]]), np.array([[0.4]]), 4)
    theta = ss.expand_ma(np.array([[0.3]]), np.array([[-0.5]]), 4)
    r = ss.state_dim(phi.shape[1], theta.shape[1])
    P = ss.stationary_cov(phi, theta, r)[0]
    T = np.zeros((r, r))
    T[: phi.shape[1], 0] = phi[0]
    T[np.arange(r - 1), np.arange(1, r)] = 1.0
    R = np.r_[1.0, theta[0], np.zeros(r - 1 - theta.shape[1])]
    np.testing.assert_allclose(P, T @ P @ T.T + np.outer(R, R), atol=1e-12)


def test_pacf_transform_round_trip(rng):
    x = rng.standard_normal((10, 3))
    a = ss.pacf_to_coefs(x)
    # stationary: every root of 1 - a1 z - a2 z^2 - a3 z^3 outside the unit circle
    for row in a:
        assert np.all(np.abs(np.roots(np.r_[-row[::-1], 1.0])) > 1.0)
    np.testing.assert_allclose(ss.coefs_to_pacf(a), x, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- fitting


@pytest.mark.parametrize(
    "ar,ma,order",
    [([0.6], [0.3], (1, 0, 1)), ([0.5, -0.3], [], (2, 0, 0)), ([], [0.4, 0.3], (0, 0, 2))],
)
def test_fit_matches_sarimax(ar, ma, order, rng):
    y = _arma(rng, ar, ma, 500, B=4)
    fit = A.fit_arima(y, order, include_constant=False)
    assert bool(np.all(fit.converged))
    for b in range(4):
        res = SARIMAX(y[b], order=order, trend="n").fit(
            disp=False, method="lbfgs", maxiter=1000, pgtol=1e-10
        )
        k = order[0] + order[2]
        np.testing.assert_allclose(fit.params[b], res.params[:k], atol=1e-3)
        assert abs(fit.sigma2[b] - res.params[k]) < 1e-3 * res.params[k]
        assert fit.loglik[b] >= res.llf - 1e-6  # our optimum is at least as good


def test_fit_with_mean_matches_sarimax(rng):
    y = _arma(rng, [0.5], [], 400, B=2) + 3.0
    fit = A.fit_arima(y, (1, 0, 0), include_constant=True)
    for b in range(2):
        res = SARIMAX(y[b], exog=np.ones(400), order=(1, 0, 0)).fit(
            disp=False, method="lbfgs", maxiter=1000, pgtol=1e-10
        )
        np.testing.assert_allclose(fit.params[b], res.params[:2], atol=1e-3)


@pytest.mark.parametrize("method", ["css", "css-ml"])
def test_fit_engines_agree_seasonal_with_constant(method, rng):
    y = _sarima(rng, 150, B=3, d=0)
    kw = dict(order=(1, 0, 1), seasonal_order=(1, 1, 0), season_length=12, include_constant=True)
    a = A.fit_arima(y, method=method, engine="numba", **kw)
    b = A.fit_arima(y, method=method, engine="array", **kw)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.loglik, b.loglik, rtol=1e-9)


def test_fit_engines_and_backends_agree(rng, xp, to_xp):
    y = _arma(rng, [0.6], [0.3], 300, B=3)
    ref = A.fit_arima(y, (1, 0, 1), include_constant=False, engine="numba")
    fit = A.fit_arima(to_xp(y), (1, 0, 1), include_constant=False, engine="array")
    np.testing.assert_allclose(to_numpy(fit.params), ref.params, atol=1e-6)
    np.testing.assert_allclose(to_numpy(fit.loglik), ref.loglik, rtol=1e-10)


# ----------------------------------------------------------------------------- forecasts


def test_forecast_equals_sarimax_at_fitted_params(rng):
    y = _sarima(rng, 160)
    f = A.arima(y, 10, order=(1, 1, 1), seasonal_order=(0, 1, 1), season_length=12)
    m = f.models[0]
    assert m["name"] == "ARIMA(1,1,1)(0,1,1)[12]"
    assert set(m["params"]) == {"ar.L1", "ma.L1", "ma.S.L12"}
    par = np.r_[m["params"]["ar.L1"], m["params"]["ma.L1"], m["params"]["ma.S.L12"], m["sigma2"]]
    ref = SARIMAX(y[0], order=(1, 1, 1), seasonal_order=(0, 1, 1, 12)).filter(par).get_forecast(10)
    # SARIMAX integrates inside the state (approximate diffuse start): agreement to ~1e-6
    np.testing.assert_allclose(f.mean[0], ref.predicted_mean, rtol=1e-6, atol=1e-5)
    ci = ref.conf_int(alpha=0.05)
    np.testing.assert_allclose(f.lower[0], ci[:, 0], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(f.upper[0], ci[:, 1], rtol=1e-6, atol=1e-5)
    assert f.fitted.shape == y.shape and np.all(np.isnan(f.fitted[0, :13]))
    np.testing.assert_allclose(f.residuals[0, 13:], y[0, 13:] - f.fitted[0, 13:])


def test_drift_forecast_is_linear_trend(rng):
    y = np.cumsum(0.5 + rng.standard_normal((1, 200)), axis=1)
    f = A.arima(y, 20, order=(0, 1, 0), include_constant=True)
    drift = f.models[0]["params"]["drift"]
    np.testing.assert_allclose(drift, np.mean(np.diff(y[0])), rtol=1e-6)
    np.testing.assert_allclose(f.mean[0], y[0, -1] + drift * np.arange(1, 21), rtol=1e-10)
    # random walk: variance sigma2 * h
    sd = (f.upper[0] - f.mean[0]) / 1.959963984540054
    np.testing.assert_allclose(sd**2, f.models[0]["sigma2"] * np.arange(1, 21), rtol=1e-8)


def test_intervals_cover_seeded_future_paths(rng):
    """400 seeded ARIMA(1,1,1) paths, 150 points fitted, the next 12 held out: the 95 %
    intervals must cover 93-97 % of the 4,800 held-out points (the 80 % ones 77-83 %)."""
    B, n, h = 400, 150, 12
    y = np.cumsum(_arma(rng, [0.5], [0.3], n + h, B=B), axis=1)
    for level, lo, hi in ((0.95, 0.93, 0.97), (0.8, 0.77, 0.83)):
        f = A.arima(y[:, :n], h, level=level, order=(1, 1, 1), include_constant=False)
        inside = (y[:, n:] >= f.lower) & (y[:, n:] <= f.upper)
        assert lo <= inside.mean() <= hi, inside.mean()


def test_arima_on_torch_matches_numpy(rng, xp, to_xp):
    y = _sarima(rng, 120, B=2)
    ref = A.arima(y, 6, order=(1, 1, 0), seasonal_order=(0, 1, 1), season_length=12)
    f = A.arima(to_xp(y), 6, order=(1, 1, 0), seasonal_order=(0, 1, 1), season_length=12)
    np.testing.assert_allclose(to_numpy(f.mean), ref.mean, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(f.upper), ref.upper, rtol=1e-6)


# ----------------------------------------------------------------------------- order search


def test_kpss_and_seasonal_strength_match_statsmodels(rng):
    x = np.cumsum(rng.standard_normal((3, 150)), axis=1)
    lags = int(3 * np.sqrt(150) / 13)
    ref = [kpss(r, regression="c", nlags=lags)[0] for r in x]
    np.testing.assert_allclose(A.kpss_statistic(x), ref, rtol=1e-10)
    y = _sarima(rng, 144, B=2, d=0)
    for b in range(2):
        dec = seasonal_decompose(y[b], period=12)
        ok = ~np.isnan(dec.resid)
        R, S = dec.resid[ok], dec.seasonal[ok]
        want = max(0.0, 1 - np.var(R) / np.var(R + S))
        assert abs(A.seasonal_strength(y[b : b + 1], 12)[0] - want) < 1e-10


def test_choose_differences(rng):
    walk = np.cumsum(rng.standard_normal((1, 200)), axis=1)
    noise = rng.standard_normal((1, 200))
    seas = _sarima(rng, 200, d=0, D=1)
    d, D = A.choose_differences(np.concatenate([walk, noise]), 1)
    assert d.tolist() == [1, 0] and D.tolist() == [0, 0]
    d, D = A.choose_differences(seas, 12)
    assert D.tolist() == [1]


def test_auto_arima_picks_the_minimum_aicc(rng):
    y = np.concatenate([_arma(rng, [0.7], [], 200, B=2), np.cumsum(_arma(rng, [], [0.5], 200), 1)])
    f = A.auto_arima(y, 8, max_p=2, max_q=2)
    names = [m["name"] for m in f.models]
    assert [m["order"][1] for m in f.models] == [0, 0, 1], names
    assert f.models[0]["order"][0] >= 1
    # the chosen model's exact AICc is no worse than an exact fit of the true order
    for b, order in ((0, (1, 0, 0)), (2, (0, 1, 1))):
        m = f.models[b]
        alt = A.fit_arima(y[b], order, include_constant=None)
        assert m["aicc"] <= float(alt.aicc[0]) + 2.0, (m["name"], m["aicc"], float(alt.aicc[0]))
        assert np.isclose(
            m["loglik"],
            float(
                A.arima_loglike(
                    y[b],
                    np.r_[list(m["params"].values()), m["sigma2"]],
                    m["order"],
                    m["seasonal_order"][:3],
                    m["seasonal_order"][3],
                    include_constant=m["include_constant"],
                )[0]
            ),
            rtol=1e-9,
        )
    assert f.mean.shape == (3, 8) and np.all(f.lower < f.mean) and np.all(f.mean < f.upper)


def test_auto_arima_seasonal(rng):
    y = _sarima(rng, 150, B=3, d=0)
    f = A.auto_arima(y, 12, season_length=12, max_p=1, max_q=1)
    for m in f.models:
        assert m["seasonal_order"][1] == 1 and m["seasonal_order"][3] == 12, m["name"]
        assert m["name"].startswith("ARIMA(") and "[12]" in m["name"]
        assert np.isfinite(m["aicc"]) and m["sigma2"] > 0
    assert np.all(np.isfinite(f.upper))


def test_auto_arima_on_torch(rng, xp, to_xp):
    y = _arma(rng, [0.6], [], 120, B=2)
    ref = A.auto_arima(y, 4, max_p=1, max_q=1, n_refit=1)
    f = A.auto_arima(to_xp(y), 4, max_p=1, max_q=1, n_refit=1)
    assert [m["name"] for m in f.models] == [m["name"] for m in ref.models]
    np.testing.assert_allclose(to_numpy(f.mean), ref.mean, rtol=1e-5)


# ----------------------------------------------------------------------------- validation


def test_validation(rng):
    y = rng.standard_normal((2, 40))
    with pytest.raises(InvalidInput) as e:
        A.arima(y[:, :6], 3, order=(2, 1, 2))
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        A.arima(y[:, :30], 3, order=(1, 1, 1), seasonal_order=(1, 1, 1), season_length=12)
    assert e.value.field == "values"
    for bad in [(-1, 0, 0), (1, 0), (1.5, 0, 0), ("a", 0, 0), (1, 3, 0), (13, 0, 0), 5]:
        with pytest.raises(InvalidInput) as e:
            A.arima(y, 3, order=bad)
        assert e.value.field == "order"
    with pytest.raises(InvalidInput) as e:
        A.arima(y, 3, order=(1, 0, 0), seasonal_order=(1, 0, 0))
    assert e.value.field == "seasonal_order"
    for h in (0, -1, 2.5):
        with pytest.raises(InvalidInput) as e:
            A.arima(y, h)
        assert e.value.field == "horizon"
    for v in (np.nan, np.inf):
        z = y.copy()
        z[1, 5] = v
        for fn in (lambda a: A.arima(a, 3), lambda a: A.auto_arima(a, 3)):
            with pytest.raises(InvalidInput) as e:
                fn(z)
            assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        A.arima(np.empty((1, 0)), 3)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        A.auto_arima(y, 3, level=0.0)
    assert e.value.field == "confidence_level"
    with pytest.raises(InvalidInput) as e:
        A.arima_loglike(y, [0.5, 1.0, 2.0], (1, 0, 0))
    assert e.value.field == "params"
    with pytest.raises(InvalidInput) as e:
        A.arima_loglike(y, [0.5, -1.0], (1, 0, 0))
    assert e.value.field == "params"


def test_one_series_and_models_json(rng):
    import json

    f = A.arima(rng.standard_normal(60), 5, order=(1, 0, 0))
    assert f.mean.shape == (1, 5)
    json.dumps(f.models)
    assert f.models[0]["name"] == "ARIMA(1,0,0) with non-zero mean"
    assert set(f.models[0]) >= {
        "name",
        "order",
        "seasonal_order",
        "params",
        "sigma2",
        "loglik",
        "aicc",
    }


def test_auto_arima_constant_and_linear_series():
    y = np.stack([np.full(30, 4.0), np.arange(30.0)])
    f = A.auto_arima(y, 3)
    assert f.models[0]["name"] == "ARIMA(0,0,0) with non-zero mean"
    assert f.models[1]["name"] == "ARIMA(0,1,0) with drift"
    np.testing.assert_allclose(f.mean, [[4.0] * 3, [30.0, 31.0, 32.0]], atol=1e-8)
    np.testing.assert_allclose(f.upper, f.mean, atol=1e-6)
