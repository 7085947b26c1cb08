"""Independent references for the telecom tests: NetworkX graphs of a topology, seeded random
topologies and demands, ECMP fractions computed from ``networkx.all_shortest_paths``."""

from __future__ import annotations

import networkx as nx
import numpy as np

from prism_kernels.telecom.topology import Demands, Topology, random_topology


def to_nx(topo: Topology, metric: str = "latency") -> nx.Graph:
    """The topology as a NetworkX (Di)Graph with ``weight`` (the metric) and ``capacity``;
    parallel links keep their lightest weight and add their capacities."""
    G = nx.DiGraph() if topo.directed else nx.Graph()
    G.add_nodes_from(range(topo.n))
    w = {"latency": topo.latency_ms, "cost": topo.cost, "hops": np.ones(topo.m)}[metric]
    for k in range(topo.m):
        u, v = int(topo.link_src[k]), int(topo.link_dst[k])
        if G.has_edge(u, v):
            G[u][v]["weight"] = min(G[u][v]["weight"], float(w[k]))
            G[u][v]["capacity"] += float(topo.capacity[k])
        else:
            G.add_edge(u, v, weight=float(w[k]), capacity=float(topo.capacity[k]))
    return G


def random_net(seed: int, n: int = 30, m: int = 70) -> Topology:
    return random_topology(n, m, seed=seed)


def random_demands(topo: Topology, k: int, seed: int, priority: bool = False) -> Demands:
    rng = np.random.default_rng(seed)
    s = rng.integers(0, topo.n, k)
    t = (s + rng.integers(1, topo.n, k)) % topo.n
    pri = rng.integers(0, 3, k) if priority else np.zeros(k, dtype=np.int64)
    return Demands(s, t, rng.uniform(0.1, 2.0, k), pri, tuple(str(i) for i in range(k)))


def ecmp_reference(topo: Topology, demands: Demands, metric: str) -> np.ndarray:
    """Dense (demands, arcs) per-hop equal-split fractions from NetworkX's shortest paths."""
    G = to_nx(topo, metric)
    arc = {}
    w = topo.arc_weights(metric)
    for a in np.argsort(w, kind="stable"):
        arc.setdefault((int(topo.arc_src[a]), int(topo.arc_dst[a])), int(a))
    R = np.zeros((len(demands), topo.n_arcs))
    for d in range(len(demands)):
        s, t = int(demands.src[d]), int(demands.dst[d])
        if not nx.has_path(G, s, t):
            continue
        nxt: dict[int, set[int]] = {}
        for p in nx.all_shortest_paths(G, s, t, weight="weight"):
            for u, v in zip(p[:-1], p[1:], strict=True):
                nxt.setdefault(u, set()).add(v)
        dist = nx.single_source_dijkstra_path_length(G, s, weight="weight")
        x = {s: 1.0}
        for u in sorted(nxt, key=lambda u: dist[u]):
            for v in nxt[u]:
                f = x.get(u, 0.0) / len(nxt[u])
                R[d, arc[(u, v)]] += f
                x[v] = x.get(v, 0.0) + f
    return R
