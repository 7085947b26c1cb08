"""Maximum flow and minimum cut between two sites.

Two exact methods, both on the host:

- SciPy's Dinic (``scipy.sparse.csgraph.maximum_flow``), which needs integer capacities: the
  capacities are scaled by the smallest power of ten (up to 1e6) that makes them all whole
  numbers, while their total stays within a 32-bit integer (SciPy counts in int32);
- otherwise the max-flow LP solved by HiGHS (exact in floating point to its tolerance).

The minimum cut is read from the residual network of the maximum flow, with NetworkX's
convention (``networkx.minimum_cut``): the sink side is every node that can still reach the
sink through arcs with spare capacity; the source side is the rest. That partition does not
depend on which maximum flow was found. An undirected link is two arcs, each with the link's
capacity (as NetworkX treats an undirected edge).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.sparse.csgraph import maximum_flow

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom.topology import Topology

INT32_MAX = 2**31 - 1


@dataclass
class MaxFlow:
    """A maximum flow and the minimum cut it proves.

    Attributes
    ----------
    value : the maximum flow (capacity unit).
    arc_flow : ``(n_arcs,)`` flow on each arc (>= 0; an undirected link carries flow in one
        direction only).
    source_side : bool ``(n,)`` nodes on the source side of the minimum cut.
    cut_arcs : arcs from the source side to the sink side (all saturated); their capacities
        sum to ``value``.
    cut_links : the links of ``cut_arcs``.
    method : ``"dinic"`` (SciPy, integer-scaled capacities) or ``"highs"`` (LP).
    scale : the capacity scale used by Dinic (1 for the LP).
    """

    value: float
    arc_flow: np.ndarray
    source_side: np.ndarray
    cut_arcs: np.ndarray
    cut_links: np.ndarray
    method: str
    scale: float


def integer_scale(cap: np.ndarray, max_power: int = 6) -> float | None:
    """The least ``10**p`` (``p <= max_power``) making every capacity whole with a total
    within int32, or None."""
    for p in range(max_power + 1):
        s = 10.0**p
        x = cap * s
        r = np.round(x)
        if np.all(np.abs(x - r) <= 1e-9 * np.maximum(1.0, x)) and r.sum() <= INT32_MAX:
            return s
    return None


def max_flow(topo: Topology, source: int, target: int, method: str = "auto") -> MaxFlow:
    """Maximum flow from node ``source`` to node ``target`` (indices) and its minimum cut.

    ``method``: ``auto`` (Dinic when the capacities scale to integers, else the LP),
    ``dinic`` or ``highs``.
    """
    n = topo.n
    s, t = int(source), int(target)
    if not (0 <= s < n and 0 <= t < n):
        raise InvalidInput("source", "node index out of range")
    if s == t:
        raise InvalidInput("target", "equals the source")
    cap = topo.arc_capacity
    scale = integer_scale(cap) if method in ("auto", "dinic") else None
    if method == "dinic" and scale is None:
        raise InvalidInput("method", "dinic needs capacities that scale to int32 integers")
    if method not in ("auto", "dinic", "highs"):
        raise InvalidInput("method", f"unknown method {method!r}; choose auto, dinic or highs")
    if scale is not None:
        flow, value = _dinic(topo, s, t, scale)
        used = "dinic"
    else:
        flow, value = _lp(topo, s, t)
        used, scale = "highs", 1.0
    side = _source_side(topo, flow, t)
    cut = np.flatnonzero(side[topo.arc_src] & ~side[topo.arc_dst])
    return MaxFlow(
        value=value,
        arc_flow=flow,
        source_side=side,
        cut_arcs=cut,
        cut_links=np.unique(topo.arc_link[cut]),
        method=used,
        scale=float(scale),
    )


def _dinic(topo: Topology, s: int, t: int, scale: float) -> tuple[np.ndarray, float]:
    n = topo.n
    if topo.n_arcs == 0:
        return np.zeros(0), 0.0
    cap = np.round(topo.arc_capacity * scale).astype(np.int64)
    # parallel arcs add up; the pair's net flow is shared back in proportion to capacity
    g = sp.coo_array((cap, (topo.arc_src, topo.arc_dst)), shape=(n, n)).tocsr()
    g.sum_duplicates()
    g = sp.csr_array((g.data.astype(np.int32), g.indices, g.indptr), shape=(n, n))
    res = maximum_flow(g, s, t, method="dinic")
    F = res.flow.tocsr()
    pair_flow = np.asarray(F[topo.arc_src, topo.arc_dst]).ravel().astype(np.float64)
    pair_cap = np.asarray(g[topo.arc_src, topo.arc_dst]).ravel().astype(np.float64)
    share = np.where(pair_cap > 0, cap / np.maximum(pair_cap, 1), 0.0)
    flow = np.maximum(pair_flow, 0.0) * share / scale
    return flow, float(res.flow_value) / scale


def _lp(topo: Topology, s: int, t: int) -> tuple[np.ndarray, float]:
    n, A = topo.n, topo.n_arcs
    if A == 0:
        return np.zeros(0), 0.0
    cols = np.arange(A)
    inc = sp.csr_array(
        (
            np.concatenate([np.ones(A), -np.ones(A)]),
            (np.concatenate([topo.arc_src, topo.arc_dst]), np.concatenate([cols, cols])),
        ),
        shape=(n, A),
    )
    keep = np.setdiff1d(np.arange(n), [s, t])
    A_eq = inc[keep] if keep.size else None
    b_eq = np.zeros(keep.size) if keep.size else None
    c = -inc[[s]].toarray().ravel()  # maximise the net flow out of the source
    res = linprog(
        c,
        A_eq=A_eq,
        b_eq=b_eq,
        bounds=list(zip(np.zeros(A), topo.arc_capacity, strict=True)),
        method="highs",
    )
    if res.status != 0:
        raise RuntimeError(f"HiGHS max-flow LP: {res.message}")
    flow = np.clip(res.x, 0.0, topo.arc_capacity)
    # an undirected link carrying flow both ways: keep only the net flow
    if not topo.directed:
        m = topo.m
        net = flow[:m] - flow[m:]
        flow = np.concatenate([np.maximum(net, 0.0), np.maximum(-net, 0.0)])
    return flow, float(-res.fun) + 0.0  # no -0.0


def _source_side(topo: Topology, flow: np.ndarray, t: int) -> np.ndarray:
    """Complement of the nodes that reach ``t`` in the residual network (NetworkX's rule)."""
    cap = topo.arc_capacity
    tol = 1e-9 * max(1.0, float(cap.max()) if cap.size else 1.0)
    # residual arc u->v exists when the arc u->v has spare capacity, or v->u carries flow
    spare = cap - flow > tol
    back = flow > tol
    tails = np.concatenate([topo.arc_src[spare], topo.arc_dst[back]])
    heads = np.concatenate([topo.arc_dst[spare], topo.arc_src[back]])
    # reverse search from t over residual arcs
    into: dict[int, list[int]] = {}
    for u, v in zip(tails.tolist(), heads.tolist(), strict=True):
        into.setdefault(v, []).append(u)
    reach = np.zeros(topo.n, dtype=bool)
    reach[t] = True
    q = deque([t])
    while q:
        v = q.popleft()
        for u in into.get(v, ()):
            if not reach[u]:
                reach[u] = True
                q.append(u)
    return ~reach
