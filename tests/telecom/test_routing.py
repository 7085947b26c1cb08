"""IGP routing with ECMP: the routing matrix against fractions computed from NetworkX's
shortest paths, conservation, many traffic matrices in one product, NumPy and PyTorch."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from prism_kernels.backend import to_numpy
from prism_kernels.telecom import routing as R
from prism_kernels.telecom import topology as T
from prism_kernels.telecom.paths import distances
from tests.telecom.refs import ecmp_reference, random_demands, random_net, to_nx


@pytest.mark.parametrize("metric", ["hops", "latency", "cost"])
@pytest.mark.parametrize("seed", [0, 1])
def test_ecmp_fractions_equal_networkx(xp, metric, seed):
    topo = random_net(seed, n=35, m=80)
    dem = random_demands(topo, 120, seed)
    r = R.igp_routing(topo, dem, metric, xp=xp)
    np.testing.assert_allclose(to_numpy(r.dense()), ecmp_reference(topo, dem, metric), atol=1e-12)
    if metric == "hops":  # hop counts tie: real ECMP splits are exercised
        assert np.any((to_numpy(r.frac) > 0) & (to_numpy(r.frac) < 1))


def test_single_path_routing_is_a_shortest_path(xp):
    topo = random_net(5, n=35, m=80)
    dem = random_demands(topo, 80, 5)
    r = R.igp_routing(topo, dem, "hops", ecmp=False, xp=xp)
    G = to_nx(topo, "hops")
    Rd = to_numpy(r.dense())
    assert set(np.unique(Rd)) <= {0.0, 1.0}
    for d in range(len(dem)):
        arcs = np.flatnonzero(Rd[d])
        assert arcs.size == nx.shortest_path_length(G, int(dem.src[d]), int(dem.dst[d]))


def test_routing_conserves_flow_and_reports_latency():
    topo = random_net(7, n=40, m=100)
    dem = random_demands(topo, 150, 7)
    r = R.igp_routing(topo, dem, "latency")
    Rd = r.dense()
    for d in range(len(dem)):
        net = np.bincount(topo.arc_src, Rd[d], topo.n) - np.bincount(topo.arc_dst, Rd[d], topo.n)
        expect = np.zeros(topo.n)
        expect[dem.src[d]] += 1
        expect[dem.dst[d]] -= 1
        np.testing.assert_allclose(net, expect, atol=1e-12)
    D = distances(topo)
    np.testing.assert_allclose(r.latency_ms, D[dem.src, dem.dst], rtol=1e-12)


def test_loads_of_many_traffic_matrices_are_one_product(xp):
    topo = random_net(2, n=30, m=70)
    dem = random_demands(topo, 100, 2)
    r = R.igp_routing(topo, dem, "hops", xp=xp)
    V = np.random.default_rng(0).uniform(0, 3, (24, len(dem)))
    L = to_numpy(r.loads(V))
    ref = V @ ecmp_reference(topo, dem, "hops")
    np.testing.assert_allclose(L, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(r.loads(V[3])), ref[3], rtol=1e-12, atol=1e-12)


def test_given_distances_are_reused_and_unreachable_demands_flagged():
    topo = T.from_dict(
        {
            "nodes": ["a", "b", "c", "d"],
            "links": [
                {"source": "a", "target": "b", "bandwidth": 1, "latency_ms": 1},
                {"source": "c", "target": "d", "bandwidth": 1, "latency_ms": 1},
            ],
        }
    )
    dem = T.demands_from_records(
        topo,
        [
            {"source": "a", "destination": "b", "bandwidth_required": 1},
            {"source": "a", "destination": "d", "bandwidth_required": 1},
        ],
    )
    r = R.igp_routing(topo, dem, D=distances(topo))
    np.testing.assert_array_equal(r.reachable, [True, False])
    assert np.isnan(r.latency_ms[1]) and r.dense()[1].sum() == 0
    assert list(r.uses([0])) == [True, False]
    assert R.demand_paths(topo, r, 0, 0, 1) == [([0, 1], 1.0)]
    load, util = R.link_utilization(topo, r.loads(dem.volume))
    np.testing.assert_array_equal(util, [1.0, 0.0])
    empty = R.igp_routing(topo, dem.subset(np.zeros(2, dtype=bool)))
    assert empty.n_demands == 0 and empty.loads(np.zeros(0)).shape == (topo.n_arcs,)


def test_zero_latency_links_form_no_loops(xp):
    # b and c are co-located (0 ms): equal-cost zero-weight loops must not circulate traffic
    topo = T.from_dict(
        {
            "nodes": ["a", "b", "c", "d"],
            "links": [
                {"source": "a", "target": "b", "bandwidth": 1, "latency_ms": 1.0},
                {"source": "b", "target": "c", "bandwidth": 1, "latency_ms": 0.0},
                {"source": "c", "target": "d", "bandwidth": 1, "latency_ms": 1.0},
                {"source": "b", "target": "d", "bandwidth": 1, "latency_ms": 1.0},
            ],
        }
    )
    dem = T.demands_from_records(
        topo,
        [
            {"source": "a", "destination": "d", "bandwidth_required": 1},
            {"source": "b", "destination": "c", "bandwidth_required": 1},
        ],
    )
    Rd = to_numpy(R.igp_routing(topo, dem, "latency", xp=xp).dense())
    # a -> b -> d (2 links) wins the tie with a -> b -> c -> d (3 links, one of 0 ms)
    assert [topo.arc_name(a) for a in np.flatnonzero(Rd[0])] == ["a->b", "b->d"]
    assert [topo.arc_name(a) for a in np.flatnonzero(Rd[1])] == ["b->c"]
    np.testing.assert_array_equal(Rd[Rd > 0], 1.0)
