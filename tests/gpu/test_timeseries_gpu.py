"""The time-series kernels on CuPy against NumPy (run by benchmarks/gpu_check.sh; skipped
without a CUDA device): the ARIMA likelihood and fit, ETS likelihood, Theta and the baselines,
metrics, ACF, decomposition and anomaly scores, PELT (array engine), GARCH and DCC likelihoods,
and the trajectory filter."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import backend as B
from prism_kernels.timeseries import (
    anomalies,
    arima,
    baselines,
    changepoints,
    correlation,
    diagnostics,
    metrics,
    theta,
    trajectory,
    volatility,
)
from prism_kernels.timeseries.decomposition import decompose
from prism_kernels.timeseries.ets import ets_loglike

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not B._cupy_available(), reason="needs CuPy and a CUDA device"),
]


def _gpu(a):
    return B.asarray(np.asarray(a), backend="cupy")


def _seasonal(n_series=16, n=120, m=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (
        10.0
        + 0.05 * t
        + 2.0 * np.sin(2 * np.pi * t / m)
        + rng.standard_normal((n_series, n)).cumsum(axis=1) * 0.3
    )


def test_arima_likelihood_and_fit_on_the_device():
    y = _seasonal()
    par = np.array([0.4, -0.3, 0.5, 1.2])  # ar.L1, ma.L1, ma.S.L12, sigma2
    kw = dict(order=(1, 1, 1), seasonal_order=(0, 1, 1), season_length=12)
    ll_gpu = B.to_numpy(arima.arima_loglike(_gpu(y), _gpu(par), engine="array", **kw))
    ll_cpu = np.asarray(arima.arima_loglike(y, par, engine="array", **kw))
    np.testing.assert_allclose(ll_gpu, ll_cpu, rtol=1e-10)
    f_gpu = arima.arima(_gpu(y), 12, engine="array", **kw)
    f_cpu = arima.arima(y, 12, engine="array", **kw)
    # the two fits stop at the optimiser's tolerance, not at bit-equal parameters
    np.testing.assert_allclose(B.to_numpy(f_gpu.mean), np.asarray(f_cpu.mean), rtol=1e-4)
    np.testing.assert_allclose(B.to_numpy(f_gpu.upper), np.asarray(f_cpu.upper), rtol=1e-4)


def test_exponential_smoothing_theta_baselines_metrics_on_the_device():
    y = _seasonal(seed=1)
    kw = dict(alpha=0.3, beta=0.05, initial_level=10.0, initial_trend=0.05)
    np.testing.assert_allclose(
        B.to_numpy(ets_loglike(_gpu(y), "AAN", **kw)),
        np.asarray(ets_loglike(y, "AAN", **kw)),
        rtol=1e-10,
    )
    for fn in (theta.theta, baselines.naive, baselines.seasonal_naive, baselines.drift):
        a, b = fn(_gpu(y), 12, season_length=12), fn(y, 12, season_length=12)
        np.testing.assert_allclose(
            B.to_numpy(a.mean), np.asarray(b.mean), rtol=1e-7
        )  # golden-section alpha
        np.testing.assert_allclose(B.to_numpy(a.lower), np.asarray(b.lower), rtol=1e-7)
    p = y[:, -12:] + 0.5
    got = metrics.all_metrics(_gpu(y[:, -12:]), _gpu(p), _gpu(y[:, :-12]), 12)
    ref = metrics.all_metrics(y[:, -12:], p, y[:, :-12], 12)
    for k in ref:
        np.testing.assert_allclose(B.to_numpy(got[k]), np.asarray(ref[k]), rtol=1e-10)


def test_diagnostics_decomposition_anomalies_changepoints_on_the_device():
    y = _seasonal(seed=2)
    np.testing.assert_allclose(
        B.to_numpy(diagnostics.acf(_gpu(y), 24)), np.asarray(diagnostics.acf(y, 24)), rtol=1e-10
    )
    a, b = decompose(_gpu(y), 12, "additive"), decompose(y, 12, "additive")
    np.testing.assert_allclose(B.to_numpy(a["resid"]), np.asarray(b["resid"]), rtol=1e-10)
    for method in ("robust_zscore", "zscore"):
        ga, ca = anomalies.detect(_gpu(y), method), anomalies.detect(y, method)
        np.testing.assert_allclose(B.to_numpy(ga.scores), np.asarray(ca.scores), rtol=1e-9)
    rng = np.random.default_rng(3)
    steps = np.repeat(rng.normal(0, 3, (8, 4)), 50, axis=1) + rng.standard_normal((8, 200))
    for cost in ("l2", "normal"):
        got = changepoints.pelt(_gpu(steps), cost=cost, engine="array")
        assert got == changepoints.pelt(steps, cost=cost)


def test_garch_dcc_and_trajectory_on_the_device():
    rng = np.random.default_rng(4)
    r = rng.standard_normal((8, 500)) * np.sqrt(1.0 + 0.5 * rng.random((8, 1)))
    P = np.tile([0.02, 0.05, 0.08, 0.88], (8, 1))  # mu, omega, alpha, beta
    np.testing.assert_allclose(
        B.to_numpy(volatility.garch_loglike(_gpu(P), _gpu(r))),
        np.asarray(volatility.garch_loglike(P, r)),
        rtol=1e-10,
    )
    z = rng.standard_normal((500, 4))
    np.testing.assert_allclose(
        float(B.to_numpy(correlation.dcc_loglike(_gpu(z), 0.05, 0.9))),
        float(np.asarray(correlation.dcc_loglike(z, 0.05, 0.9))),
        rtol=1e-10,
    )
    t = np.arange(100) * 0.2
    pos = np.stack([100 + 50 * t, -20 + 10 * t, 1000 - 5 * t], axis=1)
    pos = pos + rng.standard_normal(pos.shape)
    a = trajectory.trajectory_forecast(_gpu(pos), _gpu(t), 5.0)
    b = trajectory.trajectory_forecast(pos, t, 5.0)
    np.testing.assert_allclose(B.to_numpy(a.positions), np.asarray(b.positions), rtol=1e-9)
