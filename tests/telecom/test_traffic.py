"""Seeded gravity traffic matrices with daily seasonality."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom import routing as R
from prism_kernels.telecom import topology as T
from prism_kernels.telecom import traffic as Tr


def test_gravity_matrix_is_proportional_to_masses():
    topo = T.load_backbone("geant")
    M = Tr.gravity_matrix(topo, 100.0)
    m = Tr.node_mass(topo)
    assert M.sum() == pytest.approx(100.0) and np.all(np.diag(M) == 0)
    i, j, k, q = 0, 4, 7, 34
    assert M[i, j] / M[k, q] == pytest.approx(m[i] * m[j] / (m[k] * m[q]))
    np.testing.assert_allclose(M, M.T)
    a, b = (
        Tr.gravity_matrix(topo, 5.0, noise=0.3, seed=4),
        Tr.gravity_matrix(topo, 5.0, noise=0.3, seed=4),
    )
    np.testing.assert_array_equal(a, b)
    assert a.sum() == pytest.approx(5.0) and not np.allclose(a, a.T)
    with pytest.raises(InvalidInput):
        Tr.gravity_matrix(topo, -1.0)
    with pytest.raises(InvalidInput) as e:
        Tr.gravity_matrix(topo, 1.0, mass=np.ones(3))
    assert e.value.field == "mass"


def test_daily_profile_follows_local_time():
    topo = T.load_backbone("abilene")
    hours = np.arange(0, 24, 0.25)
    act = Tr.daily_profile(topo, hours, peak_hour=20.0, amplitude=0.5)
    np.testing.assert_allclose(act.mean(axis=0), 1.0, atol=1e-12)
    peak_utc = hours[np.argmax(act, axis=0)]
    local_peak = (peak_utc + topo.lon / 15.0) % 24
    np.testing.assert_allclose(local_peak, 20.0, atol=0.126)  # the quarter-hour grid
    day = Tr.daily_traffic(topo, 10.0, noise=0.0)
    assert day.shape == (24, 11, 11)
    np.testing.assert_allclose(day.mean(axis=0), Tr.gravity_matrix(topo, 10.0), rtol=0.2)
    np.testing.assert_array_equal(
        Tr.daily_traffic(topo, 1.0, seed=9), Tr.daily_traffic(topo, 1.0, seed=9)
    )


def test_scaling_to_a_peak_utilisation():
    topo = T.load_backbone("abilene")
    M = Tr.scale_to_utilization(topo, Tr.gravity_matrix(topo, 1.0), 0.6)
    dem = T.demands_from_matrix(topo, M)
    util = R.link_utilization(topo, R.igp_routing(topo, dem).loads(dem.volume))[1]
    assert util.max() == pytest.approx(0.6)
    V = Tr.seasonal_volumes(topo, dem, noise=0.1, seed=2)
    peaks = Tr.peak_utilization(topo, dem, V)
    for h in (0, 7, 19):
        u = R.link_utilization(topo, R.igp_routing(topo, dem.with_volume(V[h])).loads(V[h]))[1]
        assert peaks[h] == pytest.approx(u.max())
