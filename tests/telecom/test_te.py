"""Traffic engineering LPs against an independent per-demand formulation written in cvxpy
(Clarabel, an interior-point solver, not HiGHS): the min-max utilisation and the least
latency within 1e-6 relative; flows conserved per demand; capacity respected unless the
answer says the demands do not fit; priorities honoured."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom import te
from prism_kernels.telecom import topology as T
from prism_kernels.telecom import traffic as Tr
from tests.telecom.refs import random_demands, random_net


def _incidence(topo):
    A = topo.n_arcs
    inc = np.zeros((topo.n, A))
    inc[topo.arc_src, np.arange(A)] += 1
    inc[topo.arc_dst, np.arange(A)] -= 1
    return inc


def _cvx_alpha(topo, dem) -> float:
    """min alpha, one commodity per demand (not grouped by source)."""
    k, A = len(dem), topo.n_arcs
    X = cp.Variable((k, A), nonneg=True)
    alpha = cp.Variable()
    B = np.zeros((topo.n, k))
    B[dem.src, np.arange(k)] += dem.volume
    B[dem.dst, np.arange(k)] -= dem.volume
    cons = [_incidence(topo) @ X.T == B, cp.sum(X, axis=0) <= alpha * topo.arc_capacity]
    cp.Problem(cp.Minimize(alpha), cons).solve(solver="CLARABEL", tol_gap_rel=1e-10, tol_feas=1e-10)
    return float(alpha.value)


def _cvx_latency(topo, dem) -> float:
    """min sum over demands of (1 + priority) x traffic x latency, within capacity."""
    k, A = len(dem), topo.n_arcs
    X = cp.Variable((k, A), nonneg=True)
    B = np.zeros((topo.n, k))
    B[dem.src, np.arange(k)] += dem.volume
    B[dem.dst, np.arange(k)] -= dem.volume
    lat = topo.latency_ms[topo.arc_link] + te.LINK_EPS_MS
    cost = cp.sum(cp.multiply((1.0 + dem.priority)[:, None] * lat[None, :], X))
    cons = [_incidence(topo) @ X.T == B, cp.sum(X, axis=0) <= topo.arc_capacity]
    prob = cp.Problem(cp.Minimize(cost), cons)
    prob.solve(solver="CLARABEL", tol_gap_rel=1e-10, tol_feas=1e-10)
    return float(prob.value)


def _our_latency_cost(topo, dem, res) -> float:
    lat = topo.latency_ms[topo.arc_link] + te.LINK_EPS_MS
    total = 0.0
    pair = {(int(topo.arc_src[a]), int(topo.arc_dst[a])): a for a in range(topo.n_arcs)}
    for d, paths in enumerate(res.paths):
        for nodes, amount in paths:
            arcs = [pair[(u, v)] for u, v in zip(nodes[:-1], nodes[1:], strict=True)]
            total += (1 + dem.priority[d]) * amount * lat[arcs].sum()
    return total


def _check_paths(topo, dem, res):
    """Every path goes from the demand's source to its destination; amounts add up to what
    was carried; the arc loads are the sum of the paths (flow conserved per demand)."""
    pair = {(int(topo.arc_src[a]), int(topo.arc_dst[a])): a for a in range(topo.n_arcs)}
    load = np.zeros(topo.n_arcs)
    for d, paths in enumerate(res.paths):
        got = 0.0
        for nodes, amount in paths:
            assert nodes[0] == dem.src[d] and nodes[-1] == dem.dst[d]
            assert len(set(nodes)) == len(nodes)  # loop-free
            for u, v in zip(nodes[:-1], nodes[1:], strict=True):
                load[pair[(u, v)]] += amount
            got += amount
        assert got == pytest.approx(res.carried[d], rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(load, res.arc_load, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balance_load_reaches_the_lp_optimum(seed):
    topo = random_net(seed, n=14, m=28)
    dem = random_demands(topo, 40, seed, priority=True)
    res = te.optimize(topo, dem, "balance_load")
    ref = _cvx_alpha(topo, dem)
    assert res.required_utilization == pytest.approx(ref, rel=1e-6)
    util = res.arc_load / topo.arc_capacity
    assert util.max() == pytest.approx(ref, rel=1e-6)
    assert res.fits == (ref <= 1)
    np.testing.assert_allclose(res.carried, dem.volume)
    _check_paths(topo, dem, res)
    assert te.required_utilization(topo, dem) == pytest.approx(ref, rel=1e-6)


def test_balance_load_on_abilene_gravity_matrix():
    topo = T.load_backbone("abilene")
    dem = T.demands_from_matrix(topo, Tr.gravity_matrix(topo, 60.0))
    res = te.optimize(topo, dem, "balance_load")
    assert res.required_utilization == pytest.approx(_cvx_alpha(topo, dem), rel=1e-6)
    assert res.concurrent_scale == pytest.approx(1 / res.required_utilization)
    _check_paths(topo, dem, res)


@pytest.mark.parametrize("seed", [3, 4])
def test_minimize_latency_is_the_least_latency_within_capacity(seed):
    topo = random_net(seed, n=14, m=28)
    dem = random_demands(topo, 30, seed, priority=True)
    alpha = te.required_utilization(topo, dem)
    dem = dem.with_volume(dem.volume * 0.9 / alpha)  # fits, with some links near full
    res = te.optimize(topo, dem, "minimize_latency")
    assert res.fits
    assert np.all(res.arc_load <= topo.arc_capacity * (1 + 1e-6))
    assert _our_latency_cost(topo, dem, res) == pytest.approx(_cvx_latency(topo, dem), rel=1e-6)
    _check_paths(topo, dem, res)
    balanced = te.optimize(topo, dem, "balance_load")
    assert np.nansum(res.latency_ms * res.carried) <= np.nansum(
        balanced.latency_ms * balanced.carried
    ) * (1 + 1e-9)
    through = te.optimize(topo, dem, "maximize_throughput")
    assert through.carried.sum() == pytest.approx(dem.volume.sum())
    assert (through.arc_load / topo.arc_capacity).max() == pytest.approx(
        alpha * 0.9 / alpha, rel=1e-6
    )


def _bottleneck() -> T.Topology:
    # a - b - c with a 10-unit bridge b-c
    return T.from_dict(
        {
            "nodes": ["a", "b", "c", "x"],
            "links": [
                {"source": "a", "target": "b", "bandwidth": 100, "latency_ms": 1},
                {"source": "b", "target": "c", "bandwidth": 10, "latency_ms": 1},
            ],
        }
    )


def _demands(topo, rows):
    return T.demands_from_records(
        topo,
        [
            {"source": s, "destination": t, "bandwidth_required": v, "priority": p}
            for s, t, v, p in rows
        ],
    )


def test_priorities_when_the_demands_do_not_fit():
    topo = _bottleneck()
    dem = _demands(
        topo, [("a", "c", 8.0, 0), ("a", "c", 8.0, 5), ("b", "c", 4.0, 5), ("a", "x", 1.0, 9)]
    )
    for objective in ("minimize_latency", "maximize_throughput"):
        res = te.optimize(topo, dem, objective)
        assert not res.fits and res.required_utilization == pytest.approx(2.0)
        # priority 5 first, sharing the bridge max-min (10/12 of each); nothing left for 0
        np.testing.assert_allclose(res.carried, [0.0, 8 * 10 / 12, 4 * 10 / 12, 0.0], atol=1e-6)
        assert list(res.routable) == [True, True, True, False]
        assert np.all(res.arc_load <= topo.arc_capacity * (1 + 1e-6))
        _check_paths(topo, dem, res)
    bal = te.optimize(topo, dem, "balance_load")  # carries everything and says it does not fit
    assert not bal.fits and bal.required_utilization == pytest.approx(2.0)
    np.testing.assert_allclose(bal.carried, [8.0, 8.0, 4.0, 0.0])
    assert (bal.arc_load / topo.arc_capacity).max() == pytest.approx(2.0, rel=1e-6)


def test_equal_priorities_share_fairly_then_fill():
    topo = _bottleneck()
    dem = _demands(topo, [("a", "c", 8.0, 1), ("b", "c", 8.0, 1)])
    res = te.optimize(topo, dem, "maximize_throughput")
    np.testing.assert_allclose(res.carried, [5.0, 5.0], atol=1e-6)  # max-min: 10/16 each
    dem = _demands(topo, [("a", "c", 2.0, 1), ("b", "c", 12.0, 1)])
    res = te.optimize(topo, dem, "maximize_throughput")
    # the common fraction is 10/14; then the rest of the capacity goes to whoever can use it
    assert res.carried.sum() == pytest.approx(10.0, rel=1e-6)
    assert np.all(res.carried >= np.array([2.0, 12.0]) * 10 / 14 * (1 - 1e-6))


def test_headroom_cap_and_edge_cases():
    topo = _bottleneck()
    dem = _demands(topo, [("a", "c", 6.0, 0)])
    res = te.optimize(topo, dem, "minimize_latency", max_utilization=0.5)
    assert not res.fits and res.carried[0] == pytest.approx(5.0)
    empty = te.optimize(topo, dem.with_volume(np.zeros(1)), "balance_load")
    assert empty.required_utilization is None and empty.fits and empty.carried[0] == 0
    with pytest.raises(InvalidInput) as e:
        te.optimize(topo, dem, "cheapest")
    assert e.value.field == "objective"
    with pytest.raises(InvalidInput):
        te.optimize(topo, dem, "balance_load", max_utilization=0.0)
