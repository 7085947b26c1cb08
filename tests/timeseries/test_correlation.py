"""EWMA, constant-correlation and DCC(1,1) against closed forms and plain-loop references."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import backend
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import correlation as C
from prism_kernels.timeseries import volatility as V

RBAR = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])


def simulate_dcc(n, a, b, seed, Rbar=RBAR):
    """Seeded DCC(1,1) innovations with unit variances (the target is Rbar)."""
    rng = np.random.default_rng(seed)
    k = Rbar.shape[0]
    Q = Rbar.copy()
    Z = np.empty((n, k))
    for t in range(n):
        d = 1.0 / np.sqrt(np.diag(Q))
        Z[t] = np.linalg.cholesky(Q * np.outer(d, d)) @ rng.standard_normal(k)
        Q = (1 - a - b) * Rbar + a * np.outer(Z[t], Z[t]) + b * Q
    return Z


def loop_dcc_loglike(z, a, b):
    """Reference: the DCC correlation log-likelihood written as a plain loop."""
    n, k = z.shape
    Qbar = sum(np.outer(z[t], z[t]) for t in range(n)) / n
    Q = Qbar.copy()
    ll = 0.0
    for t in range(n):
        R = np.diag(1 / np.sqrt(np.diag(Q))) @ Q @ np.diag(1 / np.sqrt(np.diag(Q)))
        ll += -0.5 * (np.log(np.linalg.det(R)) + z[t] @ np.linalg.inv(R) @ z[t] - z[t] @ z[t])
        Q = (1 - a - b) * Qbar + a * np.outer(z[t], z[t]) + b * Q
    return ll, Q, Qbar


@pytest.fixture(scope="module")
def dcc_data():
    return simulate_dcc(2000, 0.05, 0.90, seed=7)


def test_ewma_closed_form(xp_name, rng):
    r = rng.standard_normal((60, 4)) * [0.01, 0.02, 0.015, 0.03]
    lam = 0.94
    e = C.ewma_covariance(backend.asarray(r, backend=xp_name), lam=lam, keep_path=True)
    n = r.shape[0]
    S0 = r.T @ r / n
    ref = lam**n * S0 + (1 - lam) * sum(
        lam**i * np.outer(r[n - 1 - i], r[n - 1 - i]) for i in range(n)
    )
    np.testing.assert_allclose(backend.to_numpy(e.forecast), ref, rtol=1e-12)
    path = backend.to_numpy(e.path)
    assert path.shape == (n, 4, 4)
    np.testing.assert_allclose(path[0], S0, rtol=1e-12)
    np.testing.assert_allclose(
        path[5], lam * path[4] + (1 - lam) * np.outer(r[4], r[4]), rtol=1e-12
    )
    R = backend.to_numpy(e.correlation())
    np.testing.assert_allclose(np.diag(R), 1.0)
    assert C.half_life(0.94) == pytest.approx(11.2, abs=0.01)


def test_dcc_loglike_equals_loop(dcc_data, xp_name):
    z = dcc_data[:300]
    ref, Qn, _ = loop_dcc_loglike(z, 0.04, 0.93)
    ll = C.dcc_loglike(backend.asarray(z, backend=xp_name), 0.04, 0.93)
    assert float(ll) == pytest.approx(ref, rel=1e-10)
    Qs, R = C.dcc_recursion(backend.asarray(z, backend=xp_name), 0.04, 0.93)
    np.testing.assert_allclose(backend.to_numpy(Qs[-1]), Qn, rtol=1e-10)
    # compiled objective equals the array-API likelihood
    Qbar = z.T @ z / z.shape[0]
    assert -C._dcc_nll(np.array([0.04, 0.93]), z, Qbar) * z.shape[0] == pytest.approx(
        ref, rel=1e-10
    )


def test_dcc_fit_recovers_parameters(dcc_data):
    f = C.dcc_fit(dcc_data)
    assert f.converged
    # 2,000 observations: the QML standard errors are about 0.01 (a) and 0.02 (b)
    assert abs(f.a - 0.05) < 0.03 and abs(f.b - 0.90) < 0.05
    # at the optimum the loglike is no worse than at the true parameters
    ll_true = C.dcc_loglike(f.z, 0.05, 0.90, f.Qbar)
    assert f.loglik >= float(ll_true) - 1e-6
    # DCC beats the constant correlation (a = b = 0)
    assert f.loglik > float(C.dcc_loglike(f.z, 0.0, 0.0, f.Qbar))


def test_dcc_forecast_recursion(dcc_data):
    f = C.dcc_fit(dcc_data[:500])
    R = C.dcc_forecast(f, 30)
    assert R.shape == (30, 3, 3)
    np.testing.assert_allclose(R[0], f.R[-1], rtol=1e-12)
    # reference: Q_{h} = (1-a-b) Qbar + (a+b) Q_{h-1}, normalised
    Q = f.Q_next.copy()
    for h in range(30):
        d = 1 / np.sqrt(np.diag(Q))
        np.testing.assert_allclose(R[h], Q * np.outer(d, d), rtol=1e-10)
        Q = (1 - f.a - f.b) * f.Qbar + (f.a + f.b) * Q
    for h in range(30):
        np.testing.assert_allclose(np.diag(R[h]), 1.0)
        np.testing.assert_allclose(R[h], R[h].T)
        assert np.all(np.linalg.eigvalsh(R[h]) > 0)


def test_constant_correlation_and_covariance(dcc_data):
    c = C.constant_correlation(dcc_data[:400])
    z = c.z
    np.testing.assert_allclose(c.R, np.corrcoef(z.T), rtol=1e-10)
    H = C.covariance_forecast(c.garch, c.R, 4)
    v = V.variance_forecast(c.garch, 4)
    assert H.shape == (4, 3, 3)
    np.testing.assert_allclose(np.diagonal(H, axis1=1, axis2=2), v.T, rtol=1e-12)


def test_bad_input(dcc_data):
    with pytest.raises(InvalidInput) as e:
        C.ewma_covariance(dcc_data, lam=1.0)
    assert e.value.field == "lam"
    with pytest.raises(InvalidInput) as e:
        C.ewma_covariance(np.empty((0, 3)))
    assert e.value.field == "returns"
    bad = dcc_data[:100].copy()
    bad[5, 1] = np.nan
    with pytest.raises(InvalidInput) as e:
        C.ewma_covariance(bad)
    assert e.value.field == "returns"
    with pytest.raises(InvalidInput) as e:
        C.dcc_fit(dcc_data[:, :1])
    assert e.value.field == "returns"
    with pytest.raises(InvalidInput) as e:
        C.dcc_fit(dcc_data[:10])
    assert e.value.field == "returns"
    with pytest.raises(InvalidInput) as e:
        C.ewma_covariance(np.ones((3, 2, 2)))
    assert e.value.field == "returns"
