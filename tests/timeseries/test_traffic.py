"""Traffic: daily-season utilisation forecasts, capacity risk and M/M/1/K packet loss."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from prism_kernels import backend
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import traffic as T


def ctmc_blocking(rho, K):
    """Reference: stationary law of the M/M/1/K birth-death chain, solved numerically."""
    lam, mu = rho, 1.0
    G = np.zeros((K + 1, K + 1))
    for i in range(K + 1):
        if i < K:
            G[i, i + 1] = lam
        if i > 0:
            G[i, i - 1] = mu
        G[i, i] = -G[i].sum()
    A = np.vstack([G.T, np.ones(K + 1)])
    b = np.zeros(K + 2)
    b[-1] = 1.0
    pi = np.linalg.lstsq(A, b, rcond=None)[0]
    return pi[K]


def test_season_length():
    assert T.season_length_for(300) == 288
    assert T.season_length_for(3600) == 24
    assert T.season_length_for(86400) == 1
    for bad in (7, 0, -5, float("nan"), 2 * 86400):
        with pytest.raises(InvalidInput) as e:
            T.season_length_for(bad)
        assert e.value.field == "interval_seconds"


@pytest.mark.parametrize("K", [1, 5, 40])
def test_mm1k_matches_ctmc(K, xp_name):
    rhos = np.array([0.0, 0.1, 0.5, 0.9, 0.999999, 1.0, 1.2, 3.0, 20.0])
    got = backend.to_numpy(T.mm1k_blocking(backend.asarray(rhos, backend=xp_name), K))
    ref = np.array([ctmc_blocking(r, K) if r > 0 else 0.0 for r in rhos])
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-15)


def test_mm1k_limits():
    assert float(T.mm1k_blocking(np.array(1.0), 9)) == pytest.approx(0.1)
    big = T.mm1k_blocking(np.array([1e8, 1e300]), 10_000)
    assert np.all(np.isfinite(big)) and np.all(big <= 1.0) and big[1] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def links():
    rng = np.random.default_rng(4)
    m, days = 24, 7
    t = np.arange(m * days)
    base = 0.5 + 0.3 * np.sin(2 * np.pi * t / m)
    return np.stack(
        [base + 0.04 * rng.standard_normal(t.size), 0.5 * base + 0.02 * rng.standard_normal(t.size)]
    )


def test_forecast_probability_and_loss(links, xp_name):
    y = backend.asarray(links, backend=xp_name)
    f = T.traffic_forecast(y, 3600, 30, capacity=[0.75, 0.5], buffer_packets=25, level=0.9)
    m = 24
    assert f.season_length == m
    mean = backend.to_numpy(f.forecast.mean)
    # seasonal naive: the last day repeated; sd sigma * sqrt(floor((h-1)/m) + 1)
    idx = [links.shape[1] - m + (j % m) for j in range(30)]
    np.testing.assert_allclose(mean, links[:, idx], rtol=1e-12)
    e = links[:, m:] - links[:, :-m]
    sigma = np.sqrt((e**2).sum(axis=1) / (links.shape[1] - m))
    sd = sigma[:, None] * np.sqrt(np.arange(30) // m + 1)[None, :]
    cap = np.array([[0.75], [0.5]])
    np.testing.assert_allclose(
        backend.to_numpy(f.prob_exceed), 1 - ndtr((cap - mean) / sd), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        backend.to_numpy(f.packet_loss),
        [[ctmc_blocking(max(r, 0.0), 25) for r in row] for row in mean / cap],
        rtol=1e-7,
        atol=1e-12,
    )
    assert np.all(backend.to_numpy(f.packet_loss_upper) >= backend.to_numpy(f.packet_loss))
    np.testing.assert_allclose(backend.to_numpy(f.timestamps), 3600.0 * np.arange(1, 31))


def test_bad_input(links):
    cases = [
        (dict(interval_seconds=7), "interval_seconds"),
        (dict(utilisation=links[:, :20]), "utilisation"),
        (dict(capacity=0.0), "capacity"),
        (dict(capacity=[1.0, 2.0, 3.0]), "capacity"),
        (dict(buffer_packets=0), "buffer_packets"),
        (dict(buffer_packets=2.5), "buffer_packets"),
        (dict(method="prophet"), "method"),
        (dict(horizon=0), "horizon"),
        (dict(utilisation=-links), "utilisation"),
        (dict(utilisation=np.empty((1, 0))), "utilisation"),
    ]
    for kw, field in cases:
        args = dict(utilisation=links, interval_seconds=3600, horizon=5)
        args.update(kw)
        with pytest.raises(InvalidInput) as e:
            T.traffic_forecast(
                args.pop("utilisation"), args.pop("interval_seconds"), args.pop("horizon"), **args
            )
        assert e.value.field == field, kw
    bad = links.copy()
    bad[0, 3] = np.inf
    with pytest.raises(InvalidInput) as e:
        T.traffic_forecast(bad, 3600, 5)
    assert e.value.field == "utilisation"


@pytest.mark.parametrize("method", ["theta", "drift"])
def test_any_named_forecaster(links, method):
    from prism_kernels.timeseries.models import forecast

    f = T.traffic_forecast(links, 3600, 24, method=method, capacity=0.75, buffer_packets=10)
    ref = forecast(links, method, 24, level=0.95, season_length=24)
    np.testing.assert_allclose(f.forecast.mean, ref.mean, rtol=1e-10)
    sd = (ref.upper - ref.lower) / (2 * 1.959963984540054)
    np.testing.assert_allclose(
        f.prob_exceed, 1 - ndtr((0.75 - ref.mean) / sd), rtol=1e-8, atol=1e-12
    )
    assert np.all((f.packet_loss >= 0) & (f.packet_loss <= 1))
