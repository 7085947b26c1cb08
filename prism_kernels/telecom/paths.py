"""Shortest distances (one source, many sources, all pairs) and k-shortest paths.

Distances run on the array backend of the caller's choice (``xp``):

- NumPy: SciPy's compiled Dijkstra (``scipy.sparse.csgraph.dijkstra``) on the host, one
  call for every source at once; the fastest path on a CPU;
- PyTorch and CuPy: a batched Bellman-Ford on the device in array-API calls only (every row
  is a source; each round relaxes all arcs of all rows with one gather and one minimum over a
  padded in-arc table), with a weight vector per row when scenarios differ (failures). Rounds
  stop when no distance changes (at most ``n - 1``).

Both give the same distances (tests compare them with NetworkX). Parallel arcs between the
same pair of nodes count with their smallest weight; an infinite weight removes an arc.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import scipy.sparse as sp
from array_api_compat import is_cupy_namespace, is_numpy_namespace, is_torch_namespace
from scipy.sparse.csgraph import dijkstra

from prism_kernels import backend
from prism_kernels.arrays import device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.telecom.topology import Topology


def backend_of(xp: Any) -> str:
    """``"numpy"``, ``"torch"`` or ``"cupy"`` for an array namespace."""
    if is_torch_namespace(xp):
        return "torch"
    if is_cupy_namespace(xp):
        return "cupy"
    return "numpy"


def to_xp(xp: Any, a: Any, like: Any = None) -> Any:
    """``a`` as an array of ``xp``: on the device of ``like`` when given; as it is when it is
    already an ``xp`` array; else on the backend's default device
    (:func:`prism_kernels.backend.asarray`: a CUDA PyTorch when one answers)."""
    if like is not None:
        return xp.asarray(
            to_numpy(a) if isinstance(a, (list, tuple)) else a, device=device_of(like)
        )
    if hasattr(a, "shape") and not isinstance(a, np.generic) and get_namespace(a) is xp:
        return a
    return backend.asarray(to_numpy(a), backend=backend_of(xp))


def scatter_add(index: Any, values: Any, size: int) -> Any:
    """``out[i] = sum of values[index == i]``, ``out`` of length ``size``, on the backend of
    ``values`` (the array API has no scatter: ``bincount`` on NumPy and CuPy, ``index_add``
    on PyTorch)."""
    xp = get_namespace(values)
    if is_numpy_namespace(xp):
        return np.bincount(np.asarray(index), weights=np.asarray(values), minlength=size)[:size]
    if is_torch_namespace(xp):
        import torch

        out = torch.zeros(size, dtype=values.dtype, device=values.device)
        return out.index_add_(0, index, values)
    if is_cupy_namespace(xp):
        import cupy

        return cupy.bincount(index, weights=values, minlength=size)[:size]
    raise TypeError(f"scatter_add: unsupported array namespace {xp.__name__}")


class HostGraph:
    """The CSR structure of a set of arcs on the host, built once, for many weight vectors.

    Parallel arcs between the same pair of nodes are collapsed to their smallest weight
    (``inf`` removes an arc); :meth:`csr` makes the ``(n, n)`` adjacency for one weight
    vector in ``O(arcs)`` without sorting again (a failure sweep calls it per scenario).
    """

    def __init__(self, arc_src: np.ndarray, arc_dst: np.ndarray, n: int) -> None:
        self.n = int(n)
        self._arcs = (np.asarray(arc_src, dtype=np.int64), np.asarray(arc_dst, dtype=np.int64))
        self._layouts: dict[bool, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def _layout(self, reverse: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if reverse not in self._layouts:
            s, t = self._arcs[::-1] if reverse else self._arcs
            order = np.lexsort((t, s))
            s_o, t_o = s[order], t[order]
            first = np.ones(s.size, dtype=bool)
            first[1:] = (s_o[1:] != s_o[:-1]) | (t_o[1:] != t_o[:-1])
            starts = np.flatnonzero(first)
            indptr = np.concatenate([[0], np.cumsum(np.bincount(s_o[starts], minlength=self.n))])
            self._layouts[reverse] = (order, starts, t_o[starts], indptr)
        return self._layouts[reverse]

    def csr(self, weights: np.ndarray, reverse: bool = False) -> sp.csr_array:
        """The adjacency for ``weights`` ``(arcs,)`` (heads and tails swapped if ``reverse``)."""
        order, starts, indices, indptr = self._layout(reverse)
        w = np.asarray(weights, dtype=np.float64)[order]
        data = np.minimum.reduceat(w, starts) if starts.size else np.zeros(0)
        return sp.csr_array((data, indices, indptr), shape=(self.n, self.n))


def host_graph(
    arc_src: np.ndarray, arc_dst: np.ndarray, weights: np.ndarray, n: int, reverse: bool = False
) -> sp.csr_array:
    """The ``(n, n)`` CSR adjacency of the arcs (host), parallel arcs collapsed to their
    smallest weight; ``reverse`` swaps heads and tails (distances *to* a node)."""
    return HostGraph(arc_src, arc_dst, n).csr(weights, reverse=reverse)


def _check_weights(w: np.ndarray, metric: str) -> None:
    if np.any(w[np.isfinite(w)] < 0):
        raise InvalidInput("metric", f"{metric} weights must be >= 0 for shortest paths")


def distances(
    topo: Topology,
    sources: Any = None,
    metric: str = "latency",
    *,
    weights: Any = None,
    reverse: bool = False,
    xp: Any = None,
    method: str = "auto",
) -> Any:
    """Shortest distances from ``sources`` to every node.

    Parameters
    ----------
    topo : Topology
    sources : int array ``(B,)`` of node indices, or None for all nodes (all pairs).
    metric : ``latency`` (ms), ``cost`` or ``hops``: the arc weights, unless ``weights``.
    weights : ``(n_arcs,)`` weights shared by every row, or ``(B, n_arcs)`` one row per
        source (Bellman-Ford only); ``inf`` removes an arc.
    reverse : distances *to* the sources (on the reversed arcs).
    xp : the array namespace of the result (default NumPy).
    method : ``auto`` (Dijkstra on NumPy, Bellman-Ford otherwise), ``dijkstra`` (host) or
        ``bellman_ford`` (on ``xp``).

    Returns
    -------
    ``(B, n)`` distances (``inf`` when unreachable), ``D[b, v]`` from ``sources[b]`` to ``v``
    (to ``sources[b]`` from ``v`` when ``reverse``).
    """
    xp = backend.namespace("numpy") if xp is None else xp
    src = np.arange(topo.n) if sources is None else np.asarray(to_numpy(sources), dtype=np.int64)
    if src.ndim != 1:
        raise InvalidInput("sources", "must be a 1-D list of node indices")
    if src.size and (src.min() < 0 or src.max() >= topo.n):
        raise InvalidInput("sources", f"node indices must be within 0..{topo.n - 1}")
    w = topo.arc_weights(metric) if weights is None else weights
    if method == "auto":
        per_row = getattr(w, "ndim", np.ndim(w)) == 2
        method = "dijkstra" if is_numpy_namespace(xp) and not per_row else "bellman_ford"
    if method == "dijkstra":
        w_host = np.asarray(to_numpy(w), dtype=np.float64)
        if w_host.ndim != 1:
            raise InvalidInput("weights", "Dijkstra takes one weight vector shared by all rows")
        _check_weights(w_host, metric)
        if src.size == 0:
            return xp.asarray(np.zeros((0, topo.n)))
        g = host_graph(topo.arc_src, topo.arc_dst, w_host, topo.n, reverse=reverse)
        D = dijkstra(g, directed=True, indices=src)
        return xp.asarray(np.atleast_2d(D))
    if method != "bellman_ford":
        raise InvalidInput("method", f"unknown method {method!r}; choose dijkstra or bellman_ford")
    arc_src, arc_dst = (topo.arc_dst, topo.arc_src) if reverse else (topo.arc_src, topo.arc_dst)
    return bellman_ford(xp, arc_src, arc_dst, w, topo.n, src)


def _in_arc_table(arc_dst: np.ndarray, n: int) -> np.ndarray:
    """``(n, d_max)`` in-arcs of every node, padded with the sentinel arc ``len(arc_dst)``."""
    A = arc_dst.size
    order = np.argsort(arc_dst, kind="stable")
    counts = np.bincount(arc_dst, minlength=n)
    width = max(1, int(counts.max()) if counts.size else 1)
    table = np.full((n, width), A, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(A) - np.repeat(starts, counts)
    table[arc_dst[order], slot] = order
    return table


def bellman_ford(
    xp: Any, arc_src: np.ndarray, arc_dst: np.ndarray, weights: Any, n: int, sources: np.ndarray
) -> Any:
    """Batched Bellman-Ford on ``xp`` (array-API calls only; see the module docstring).

    ``weights`` is ``(A,)`` or ``(B, A)``; returns ``(B, n)`` distances from ``sources``.
    Memory per round is ``B x n x d_max`` (``d_max`` the largest in-degree): rows are done in
    chunks that keep it near 2e7 elements.
    """
    A = int(arc_src.size)
    B = int(sources.size)
    w = to_xp(xp, weights)
    w = xp.astype(w, xp.float64)
    dev = device_of(w)
    table = _in_arc_table(np.asarray(arc_dst, dtype=np.int64), n)
    width = table.shape[1]
    t_flat = xp.asarray(table.reshape(-1), device=dev)
    a_src = xp.asarray(np.asarray(arc_src, dtype=np.int64), device=dev)
    if A and bool(xp.any(w < 0)):
        raise InvalidInput("metric", "weights must be >= 0 for shortest paths")
    inf = xp.asarray(float("inf"), dtype=xp.float64, device=dev)
    chunk = max(1, int(2e7 // max(1, n * width)))
    out = []
    nodes = xp.arange(n, device=dev)
    for lo in range(0, B, chunk):
        hi = min(B, lo + chunk)
        rows = hi - lo
        src = xp.asarray(sources[lo:hi], device=dev)
        D = xp.where(nodes[None, :] == src[:, None], xp.asarray(0.0, device=dev), inf)
        W = w if w.ndim == 1 else w[lo:hi, :]
        pad = xp.full((rows, 1), float("inf"), dtype=xp.float64, device=dev)
        for _ in range(max(1, n)):
            cand = xp.take(D, a_src, axis=1) + W  # (rows, A)
            cand = xp.concat([cand, pad], axis=1)  # the sentinel arc A: +inf
            best = xp.min(xp.reshape(xp.take(cand, t_flat, axis=1), (rows, n, width)), axis=2)
            new = xp.minimum(D, best)
            if bool(xp.all(new == D)):
                break
            D = new
        out.append(D)
    if not out:
        return xp.zeros((0, n), dtype=xp.float64, device=dev)
    return xp.concat(out, axis=0) if len(out) > 1 else out[0]


# ---------------------------------------------------------------- paths


def shortest_path(
    topo: Topology, source: int, target: int, metric: str = "latency", weights: Any = None
) -> tuple[list[int], float]:
    """One shortest path (node indices) from ``source`` to ``target`` and its length; ``([],
    inf)`` when unreachable. Host (csgraph Dijkstra with predecessors)."""
    w = topo.arc_weights(metric) if weights is None else np.asarray(weights, dtype=np.float64)
    g = host_graph(topo.arc_src, topo.arc_dst, w, topo.n)
    dist, pred = dijkstra(g, directed=True, indices=int(source), return_predecessors=True)
    if not np.isfinite(dist[target]):
        return [], float("inf")
    path = [int(target)]
    while path[-1] != source:
        path.append(int(pred[path[-1]]))
    return path[::-1], float(dist[target])


def path_latency(topo: Topology, path: list[int]) -> float:
    """Latency (ms) of a node path: the least-latency link between each consecutive pair."""
    best = _pair_latency(topo)
    return float(sum(best[(u, v)] for u, v in zip(path[:-1], path[1:], strict=True)))


def _pair_latency(topo: Topology) -> dict[tuple[int, int], float]:
    cache = topo.__dict__.get("_pair_latency")
    if cache is None:
        cache = {}
        lat = topo.latency_ms[topo.arc_link]
        for u, v, x in zip(topo.arc_src.tolist(), topo.arc_dst.tolist(), lat.tolist(), strict=True):
            cache[(u, v)] = min(cache.get((u, v), np.inf), x)
        topo.__dict__["_pair_latency"] = cache
    return cache


def path_arcs(topo: Topology, path: list[int], metric: str = "latency") -> list[int]:
    """The arc indices of a node path (the lightest arc between each consecutive pair)."""
    w = topo.arc_weights(metric)
    best: dict[tuple[int, int], int] = {}
    for a in np.argsort(w, kind="stable"):
        key = (int(topo.arc_src[a]), int(topo.arc_dst[a]))
        best.setdefault(key, int(a))
    return [best[(u, v)] for u, v in zip(path[:-1], path[1:], strict=True)]


def k_shortest_paths(
    topo: Topology, source: int, target: int, k: int = 3, metric: str = "latency"
) -> list[tuple[list[int], float]]:
    """The ``k`` shortest loop-free paths from ``source`` to ``target`` (Yen's algorithm),
    shortest first: ``[(node indices, length), ...]`` (fewer when fewer exist). Host."""
    if k < 1:
        raise InvalidInput("k", "must be at least 1")
    w0 = topo.arc_weights(metric)
    first, length = shortest_path(topo, source, target, weights=w0)
    if not first:
        return []
    found: list[tuple[list[int], float]] = [(first, length)]
    heap: list[tuple[float, list[int]]] = []
    seen = {tuple(first)}
    arc_src, arc_dst = topo.arc_src, topo.arc_dst
    while len(found) < k:
        prev = found[-1][0]
        for i in range(len(prev) - 1):
            spur, root = prev[i], prev[: i + 1]
            w = w0.copy()
            for p, _ in found:
                if len(p) > i and p[: i + 1] == root:
                    w[(arc_src == p[i]) & (arc_dst == p[i + 1])] = np.inf
            for v in root[:-1]:  # the root's nodes may not be revisited
                w[(arc_src == v) | (arc_dst == v)] = np.inf
            tail, tail_len = shortest_path(topo, spur, target, weights=w)
            if not tail:
                continue
            cand = root[:-1] + tail
            if tuple(cand) in seen:
                continue
            root_len = sum(
                float(w0[(arc_src == u) & (arc_dst == v)].min())
                for u, v in zip(root[:-1], root[1:], strict=True)
            )
            seen.add(tuple(cand))
            heapq.heappush(heap, (root_len + tail_len, cand))
        if not heap:
            break
        c, p = heapq.heappop(heap)
        found.append((p, c))
    return found
