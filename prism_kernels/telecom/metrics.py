"""Topology metrics: degree, betweenness, articulation points, bridges, connectivity, diameter.

Structural metrics (articulation points, bridges, node and edge connectivity, degree) are of
the undirected graph the links form (a directed topology's links taken both ways), as
NetworkX defines them for undirected graphs; parallel links count once for betweenness and
node connectivity and as separate links for edge connectivity and bridges (a doubled link is
never a bridge).

Betweenness is Brandes' algorithm written as array operations over all sources at once: the
shortest-path DAG of every source comes from the all-pairs distances, path counts are
propagated forward along it and dependencies backward, until they stop changing. It equals
``networkx.betweenness_centrality`` (normalised the same way) by hop count or by a link
weight.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, maximum_flow

from prism_kernels.telecom.paths import distances
from prism_kernels.telecom.routing import RTOL
from prism_kernels.telecom.topology import Topology


@dataclass
class TopologyMetrics:
    """Metrics of a topology (host values).

    Attributes
    ----------
    degree : int ``(n,)`` links at each node.
    betweenness : ``(n,)`` normalised betweenness by hop count.
    articulation_points : node indices whose loss disconnects the graph.
    bridges : link indices whose loss disconnects the graph.
    node_connectivity, edge_connectivity : the fewest nodes / links whose loss disconnects it.
    diameter_hops, diameter_ms : longest shortest path in links and in latency (inf when
        the graph is disconnected).
    components : number of connected components.
    """

    degree: np.ndarray
    betweenness: np.ndarray
    articulation_points: list[int]
    bridges: list[int]
    node_connectivity: int
    edge_connectivity: int
    diameter_hops: float
    diameter_ms: float
    components: int


def _simple_undirected(topo: Topology) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected node pairs ``(u < v)`` joined by at least one link."""
    a = np.minimum(topo.link_src, topo.link_dst)
    b = np.maximum(topo.link_src, topo.link_dst)
    pairs = np.unique(np.stack([a, b], axis=1), axis=0) if a.size else np.zeros((0, 2), np.int64)
    return pairs[:, 0], pairs[:, 1]


def betweenness(topo: Topology, metric: str = "hops", normalized: bool = True) -> np.ndarray:
    """Node betweenness centrality ``(n,)`` (module docstring); ``metric`` ``hops``,
    ``latency`` or ``cost``. Undirected topologies count each pair once, as NetworkX does."""
    n = topo.n
    if n == 0:
        return np.zeros(0)
    if topo.directed:
        src, dst = topo.link_src, topo.link_dst
        w_link = _link_weight(topo, metric)
        order = np.lexsort((w_link, dst, src))
        first = np.ones(src.size, dtype=bool)
        first[1:] = (src[order][1:] != src[order][:-1]) | (dst[order][1:] != dst[order][:-1])
        sel = order[first]
        s_arc, t_arc, w = src[sel], dst[sel], w_link[sel]
    else:
        u, v = _simple_undirected(topo)
        w_pair = _pair_weight(topo, metric, u, v)
        s_arc, t_arc, w = (
            np.concatenate([u, v]),
            np.concatenate([v, u]),
            np.concatenate([w_pair, w_pair]),
        )
    A = s_arc.size
    D = np.asarray(distances(topo, None, metric))
    raw = np.zeros(n)
    chunk = max(1, int(2e7 // max(1, A)))
    for lo in range(0, n, chunk):
        S = np.arange(lo, min(n, lo + chunk))
        ds = D[S]  # (B, n)
        tight = np.isfinite(ds[:, s_arc]) & (
            np.abs(ds[:, s_arc] + w[None, :] - ds[:, t_arc])
            <= RTOL * np.maximum(ds[:, t_arc], 1e-300)
        )
        r, a = np.nonzero(tight)
        B = S.size
        tail = r * n + s_arc[a]
        head = r * n + t_arc[a]
        start = np.zeros(B * n)
        start[np.arange(B) * n + S] = 1.0
        sigma = start.copy()
        for _ in range(n + 1):
            new = start + np.bincount(head, weights=sigma[tail], minlength=B * n)
            if np.array_equal(new, sigma):
                break
            sigma = new
        delta = np.zeros(B * n)
        coef = sigma[tail] / np.where(sigma[head] > 0, sigma[head], 1.0)
        for _ in range(n + 1):
            new = np.bincount(tail, weights=coef * (1.0 + delta[head]), minlength=B * n)
            if np.array_equal(new, delta):
                break
            delta = new
        delta = delta.reshape(B, n)
        delta[np.arange(B), S] = 0.0
        raw += delta.sum(axis=0)
    if normalized:
        return raw / ((n - 1) * (n - 2)) if n > 2 else raw
    return raw * 0.5 if not topo.directed else raw


def _link_weight(topo: Topology, metric: str) -> np.ndarray:
    return {"hops": np.ones(topo.m), "latency": topo.latency_ms, "cost": topo.cost}[metric]


def _pair_weight(topo: Topology, metric: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Lightest link weight between each undirected pair."""
    w_link = _link_weight(topo, metric)
    a = np.minimum(topo.link_src, topo.link_dst)
    b = np.maximum(topo.link_src, topo.link_dst)
    best: dict[tuple[int, int], float] = {}
    for x, y, wl in zip(a.tolist(), b.tolist(), w_link.tolist(), strict=True):
        best[(x, y)] = min(best.get((x, y), np.inf), wl)
    return np.asarray([best[(x, y)] for x, y in zip(u.tolist(), v.tolist(), strict=True)])


def articulation_points_and_bridges(topo: Topology) -> tuple[list[int], list[int]]:
    """Articulation points (node indices) and bridges (link indices) of the undirected graph
    (Tarjan's low-link, iterative)."""
    n = topo.n
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for k, (a, b) in enumerate(zip(topo.link_src.tolist(), topo.link_dst.tolist(), strict=True)):
        adj[a].append((b, k))
        adj[b].append((a, k))
    disc = [-1] * n
    low = [0] * n
    timer = 0
    points: set[int] = set()
    bridges: list[int] = []
    for root in range(n):
        if disc[root] >= 0:
            continue
        disc[root] = low[root] = timer
        timer += 1
        children = 0
        stack = [(root, -1, iter(adj[root]))]
        while stack:
            v, via, it = stack[-1]
            advanced = False
            for w, k in it:
                if k == via:
                    continue
                if disc[w] < 0:
                    disc[w] = low[w] = timer
                    timer += 1
                    if v == root:
                        children += 1
                    stack.append((w, k, iter(adj[w])))
                    advanced = True
                    break
                low[v] = min(low[v], disc[w])
            if advanced:
                continue
            stack.pop()
            if stack:
                p = stack[-1][0]
                low[p] = min(low[p], low[v])
                if low[v] > disc[p]:
                    bridges.append(via)
                if p != root and low[v] >= disc[p]:
                    points.add(p)
        if children > 1:
            points.add(root)
    return sorted(points), sorted(bridges)


def _unit_flow(n: int, tails: np.ndarray, heads: np.ndarray, s: int, t: int) -> int:
    if tails.size == 0:
        return 0
    g = sp.coo_array((np.ones(tails.size, dtype=np.int32), (tails, heads)), shape=(n, n)).tocsr()
    g.sum_duplicates()
    g = sp.csr_array((g.data.astype(np.int32), g.indices, g.indptr), shape=(n, n))
    return int(maximum_flow(g, s, t).flow_value)


def edge_connectivity(topo: Topology) -> int:
    """The fewest links whose removal disconnects the undirected graph (0 if disconnected)."""
    n = topo.n
    if n < 2:
        return 0
    tails = np.concatenate([topo.link_src, topo.link_dst])
    heads = np.concatenate([topo.link_dst, topo.link_src])
    return min(_unit_flow(n, tails, heads, 0, v) for v in range(1, n))


def node_connectivity(topo: Topology) -> int:
    """The fewest nodes whose removal disconnects the undirected graph (Esfahanian's scheme,
    as NetworkX: pairs with the least-degree node and pairs of its neighbours; local
    connectivity by unit max flow on the node-split graph)."""
    n = topo.n
    u, v = _simple_undirected(topo)
    if (
        n < 2
        or connected_components(
            sp.coo_array((np.ones(u.size), (u, v)), shape=(n, n)), directed=False
        )[0]
        > 1
    ):
        return 0
    nbr: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(u.tolist(), v.tolist(), strict=True):
        nbr[a].add(b)
        nbr[b].add(a)
    # node split: x_in = x, x_out = x + n; x_in -> x_out capacity 1; link a-b: a_out -> b_in
    split_t = np.concatenate([np.arange(n), u + n, v + n])
    split_h = np.concatenate([np.arange(n) + n, v, u])

    def local(a: int, b: int) -> int:
        return _unit_flow(2 * n, split_t, split_h, a + n, b)

    x = int(np.argmin([len(s) for s in nbr]))
    best = len(nbr[x])
    for w in range(n):
        if w != x and w not in nbr[x]:
            best = min(best, local(x, w))
    for a, b in itertools.combinations(sorted(nbr[x]), 2):
        if b not in nbr[a]:
            best = min(best, local(a, b))
    return int(best)


def topology_metrics(topo: Topology) -> TopologyMetrics:
    """Every metric of :class:`TopologyMetrics` for ``topo``."""
    n = topo.n
    degree = np.bincount(np.concatenate([topo.link_src, topo.link_dst]), minlength=n)
    u, v = _simple_undirected(topo)
    comps = (
        connected_components(sp.coo_array((np.ones(u.size), (u, v)), shape=(n, n)), directed=False)[
            0
        ]
        if n
        else 0
    )
    points, bridges = articulation_points_and_bridges(topo)
    D_h = np.asarray(distances(topo, None, "hops")) if n else np.zeros((0, 0))
    D_l = np.asarray(distances(topo, None, "latency")) if n else np.zeros((0, 0))
    off = ~np.eye(n, dtype=bool)
    return TopologyMetrics(
        degree=degree,
        betweenness=betweenness(topo, "hops"),
        articulation_points=points,
        bridges=bridges,
        node_connectivity=node_connectivity(topo),
        edge_connectivity=edge_connectivity(topo),
        diameter_hops=float(D_h[off].max()) if n > 1 else 0.0,
        diameter_ms=float(D_l[off].max()) if n > 1 else 0.0,
        components=int(comps),
    )
