"""Maximum flow and minimum cut against NetworkX: values, flows, and the cut partition
(NetworkX's convention), with Dinic on integer-scaled capacities and with the LP."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom import flow as F
from prism_kernels.telecom import topology as T


def _graph(seed: int, directed: bool, integer: bool) -> nx.Graph:
    rng = np.random.default_rng(seed)
    G = nx.gnm_random_graph(30, 80, seed=seed, directed=directed)
    for u, v in G.edges:
        c = float(rng.integers(1, 20)) if integer else float(rng.uniform(0.1, 10))
        G[u][v].update(capacity=c, latency_ms=1.0)
    return G


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("integer", [True, False])
def test_max_flow_and_min_cut_equal_networkx(seed, directed, integer):
    G = _graph(seed, directed, integer)
    topo = T.from_networkx(G)
    for s, t in [(0, 29), (3, 17)]:
        value, (S, _) = nx.minimum_cut(G, s, t)
        for method in ("auto", "highs"):
            r = F.max_flow(topo, topo.index[str(s)], topo.index[str(t)], method)
            assert r.value == pytest.approx(value, rel=1e-9, abs=1e-9)
            assert {int(topo.node_ids[i]) for i in np.flatnonzero(r.source_side)} == S
            cut_cap = topo.arc_capacity[r.cut_arcs].sum()
            assert cut_cap == pytest.approx(value, rel=1e-9, abs=1e-9)
            # a feasible flow: within capacity, conserved, worth the value
            assert np.all(r.arc_flow <= topo.arc_capacity * (1 + 1e-9))
            net = np.bincount(topo.arc_src, r.arc_flow, topo.n) - np.bincount(
                topo.arc_dst, r.arc_flow, topo.n
            )
            inner = np.setdiff1d(np.arange(topo.n), [topo.index[str(s)], topo.index[str(t)]])
            np.testing.assert_allclose(net[inner], 0.0, atol=1e-7)
            assert net[topo.index[str(s)]] == pytest.approx(value, abs=1e-7)
        assert F.max_flow(topo, topo.index[str(s)], topo.index[str(t)]).method == (
            "dinic" if integer else "highs"
        )


def test_integer_scale_and_parallel_links():
    assert F.integer_scale(np.array([9.95328, 10.0])) == 1e5
    assert F.integer_scale(np.array([1 / 3])) is None
    topo = T.from_dict(
        {
            "nodes": ["a", "b", "c"],
            "links": [
                {"source": "a", "target": "b", "bandwidth": 2.5, "latency_ms": 1},
                {"source": "a", "target": "b", "bandwidth": 1.5, "latency_ms": 1},
                {"source": "b", "target": "c", "bandwidth": 10, "latency_ms": 1},
            ],
        }
    )
    r = F.max_flow(topo, 0, 2)
    assert r.value == pytest.approx(4.0) and r.method == "dinic"
    np.testing.assert_allclose(r.arc_flow[:2], [2.5, 1.5])
    assert list(r.cut_links) == [0, 1]


def test_disconnected_and_bad_input():
    topo = T.from_dict({"nodes": ["a", "b"], "links": []})
    r = F.max_flow(topo, 0, 1)
    assert r.value == 0.0 and r.cut_arcs.size == 0
    assert list(r.source_side) == [True, False]
    with pytest.raises(InvalidInput) as e:
        F.max_flow(topo, 0, 0)
    assert e.value.field == "target"
    with pytest.raises(InvalidInput):
        F.max_flow(topo, 0, 1, method="push_relabel")
