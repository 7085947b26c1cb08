"""Shortest distances (Dijkstra on the host, batched Bellman-Ford on the array backend) and
k-shortest paths against NetworkX."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.telecom import paths as P
from prism_kernels.telecom import topology as T
from tests.telecom.refs import random_net, to_nx


def _nx_apsp(topo, metric):
    G = to_nx(topo, metric)
    ref = dict(nx.all_pairs_dijkstra_path_length(G, weight="weight"))
    return np.array([[ref[i].get(j, np.inf) for j in range(topo.n)] for i in range(topo.n)])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("metric", ["latency", "hops", "cost"])
def test_all_pairs_equal_networkx_on_every_backend(xp, seed, metric):
    topo = random_net(seed, n=40, m=90)
    D = to_numpy(P.distances(topo, None, metric, xp=xp))
    np.testing.assert_allclose(D, _nx_apsp(topo, metric), rtol=1e-12, atol=1e-12)


def test_bellman_ford_equals_dijkstra_with_reverse_and_subsets():
    topo = T.from_dict(
        {
            "nodes": [{"id": str(i)} for i in range(5)],
            "links": [
                {"source": "0", "target": "1", "bandwidth": 1, "latency_ms": 1.0},
                {"source": "1", "target": "2", "bandwidth": 1, "latency_ms": 2.0},
                {"source": "0", "target": "2", "bandwidth": 1, "latency_ms": 4.0},
                {"source": "2", "target": "3", "bandwidth": 1, "latency_ms": 1.0},
            ],
            "directed": True,
        }
    )
    for rev in (False, True):
        a = P.distances(topo, [0, 3], reverse=rev)
        b = P.distances(topo, [0, 3], reverse=rev, method="bellman_ford")
        np.testing.assert_array_equal(a, b)
    D = P.distances(topo, [0])
    np.testing.assert_array_equal(D[0], [0, 1, 3, 4, np.inf])  # node 4 is unreachable
    to3 = P.distances(topo, [3], reverse=True)[0]
    np.testing.assert_array_equal(to3, [4, 3, 1, 0, np.inf])
    # per-row weights: each row its own network (a failed arc is an infinite weight)
    W = np.tile(topo.arc_weights("latency"), (2, 1))
    W[1, 1] = np.inf
    rows = P.distances(topo, [0, 0], weights=W)
    np.testing.assert_array_equal(rows[:, 2], [3.0, 4.0])


def test_parallel_links_count_with_their_lightest_weight():
    topo = T.from_dict(
        {
            "nodes": [{"id": "a"}, {"id": "b"}],
            "links": [
                {"source": "a", "target": "b", "bandwidth": 1, "latency_ms": 5.0},
                {"source": "a", "target": "b", "bandwidth": 1, "latency_ms": 2.0},
            ],
        }
    )
    assert P.distances(topo)[0, 1] == 2.0
    assert P.distances(topo, method="bellman_ford")[0, 1] == 2.0


def test_edge_cases():
    one = T.from_dict({"nodes": [{"id": "x"}]})
    np.testing.assert_array_equal(P.distances(one), [[0.0]])
    np.testing.assert_array_equal(P.distances(one, method="bellman_ford"), [[0.0]])
    with pytest.raises(InvalidInput) as e:
        P.distances(one, [3])
    assert e.value.field == "sources"
    with pytest.raises(InvalidInput):
        P.distances(one, metric="distance")
    assert P.shortest_path(T.from_dict({"nodes": ["a", "b"]}), 0, 1) == ([], float("inf"))


@pytest.mark.parametrize("seed", [3, 4])
def test_k_shortest_paths_equal_networkx(seed):
    topo = random_net(seed, n=25, m=60)
    G = to_nx(topo)
    for s, t in [(0, 24), (3, 11)]:
        ours = P.k_shortest_paths(topo, s, t, k=5)
        ref = []
        for p in nx.shortest_simple_paths(G, s, t, weight="weight"):
            ref.append(p)
            if len(ref) == 5:
                break
        assert [p for p, _ in ours] == ref
        for p, length in ours:
            assert length == pytest.approx(nx.path_weight(G, p, "weight"), rel=1e-12)
            assert P.path_latency(topo, p) == pytest.approx(length, rel=1e-12)
