"""Topology metrics against NetworkX on seeded random graphs and the shipped backbones."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from prism_kernels.telecom import metrics as M
from prism_kernels.telecom import topology as T


def _graph(seed: int) -> nx.Graph:
    G = nx.gnm_random_graph(25, 33 + 3 * seed, seed=seed)
    G.remove_nodes_from([v for v in list(G) if G.degree(v) == 0])
    for u, v in G.edges:
        G[u][v].update(
            capacity=1.0, latency_ms=float(1 + (7 * u + 3 * v) % 5), cost=float(1 + (u + v) % 3)
        )
    return G


@pytest.mark.parametrize("seed", range(8))
def test_metrics_equal_networkx(seed):
    G = _graph(seed)
    topo = T.from_networkx(G)
    idx = [int(x) for x in topo.node_ids]
    for metric, w in (("hops", None), ("cost", "cost"), ("latency", "latency_ms")):
        ref = nx.betweenness_centrality(G, weight=w)
        np.testing.assert_allclose(M.betweenness(topo, metric), [ref[i] for i in idx], atol=1e-12)
    raw = nx.betweenness_centrality(G, normalized=False)
    np.testing.assert_allclose(
        M.betweenness(topo, normalized=False), [raw[i] for i in idx], atol=1e-9
    )
    points, bridges = M.articulation_points_and_bridges(topo)
    assert {idx[v] for v in points} == set(nx.articulation_points(G))
    got = {frozenset((idx[topo.link_src[k]], idx[topo.link_dst[k]])) for k in bridges}
    assert got == {frozenset(e) for e in nx.bridges(G)}
    assert M.node_connectivity(topo) == nx.node_connectivity(G)
    assert M.edge_connectivity(topo) == nx.edge_connectivity(G)
    m = M.topology_metrics(topo)
    np.testing.assert_array_equal(m.degree, [G.degree(i) for i in idx])
    assert m.components == nx.number_connected_components(G)
    if nx.is_connected(G):
        assert m.diameter_hops == nx.diameter(G)
        lat = dict(nx.all_pairs_dijkstra_path_length(G, weight="latency_ms"))
        assert m.diameter_ms == pytest.approx(max(max(d.values()) for d in lat.values()))
    else:
        assert m.diameter_hops == np.inf


def test_directed_betweenness_and_backbones():
    D = nx.DiGraph([(0, 1), (1, 2), (2, 0), (2, 3), (3, 1)])
    for u, v in D.edges:
        D[u][v].update(capacity=1.0, latency_ms=1.0)
    ref = nx.betweenness_centrality(D)
    np.testing.assert_allclose(
        M.betweenness(T.from_networkx(D)), [ref[i] for i in range(4)], atol=1e-12
    )
    for name in ("abilene", "geant"):
        topo = T.load_backbone(name)
        G = nx.Graph(list(zip(topo.link_src.tolist(), topo.link_dst.tolist(), strict=True)))
        m = M.topology_metrics(topo)
        assert m.node_connectivity == nx.node_connectivity(G)
        assert {topo.node_ids[v] for v in m.articulation_points} == {
            topo.node_ids[v] for v in nx.articulation_points(G)
        }
    one = M.topology_metrics(T.from_dict({"nodes": ["x"]}))
    assert (
        one.betweenness.tolist() == [0.0]
        and one.node_connectivity == 0
        and one.diameter_hops == 0.0
    )
