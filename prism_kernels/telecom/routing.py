"""IGP routing with ECMP: the demand x arc routing matrix, link loads and utilisation.

Each demand follows the shortest paths of the routing metric from its source to its
destination. With ECMP (the default) a router splits the traffic it forwards equally over
all its next hops that lie on a shortest path (per-hop equal split, as routers hash flows);
without it, one path is used (at each node the lowest-numbered next hop). The result is the
routing matrix ``R`` (demands x arcs): ``R[d, a]`` is the fraction of demand ``d`` that crosses
arc ``a``, so the arc loads of any traffic ``v`` (demands,) or ``V`` (T, demands) are one
product, ``v @ R``.

How it is computed, on the array backend of the distances (NumPy, PyTorch, CuPy): an arc
``u -> v`` lies on a shortest ``s -> t`` path iff ``d(s, u) + w(u, v) + d(v, t) = d(s, t)``
(relative tolerance ``rtol`` for floating-point sums). Those (demand, arc) pairs form each
demand's shortest-path DAG; the split fractions are propagated along it, all demands at once,
until they no longer change (at most the DAG's depth in rounds). Only the pairs are stored
(coordinate form), so ten thousand demands on ten thousand arcs fit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from array_api_compat import is_numpy_namespace

from prism_kernels import backend
from prism_kernels.arrays import device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.telecom.paths import distances, scatter_add, to_xp
from prism_kernels.telecom.topology import Demands, Topology

RTOL = 1e-9
"""Relative tolerance of the shortest-path test (equal-cost paths within it are tied)."""


@dataclass(frozen=True, eq=False)
class Routing:
    """A routing matrix in coordinate form (arrays of the backend it was computed on).

    Attributes
    ----------
    rows, arcs : int ``(nnz,)`` demand and arc of each entry.
    frac : ``(nnz,)`` fraction of the demand on the arc (0 < frac <= 1).
    n_demands, n_arcs : the matrix shape.
    reachable : bool ``(n_demands,)``: the destination is reachable from the source.
    latency_ms : ``(n_demands,)`` traffic-weighted mean path latency (ms), NaN if unreachable.
    hops : ``(n_demands,)`` traffic-weighted mean path length in links, NaN if unreachable.
    metric : the routing metric.
    """

    rows: Any
    arcs: Any
    frac: Any
    n_demands: int
    n_arcs: int
    reachable: Any
    latency_ms: Any
    hops: Any
    metric: str

    @property
    def xp(self) -> Any:
        return get_namespace(self.frac)

    def dense(self) -> Any:
        """``(n_demands, n_arcs)`` routing matrix on the backend."""
        xp = self.xp
        flat = scatter_add(
            self.rows * self.n_arcs + self.arcs, self.frac, self.n_demands * self.n_arcs
        )
        return xp.reshape(flat, (self.n_demands, self.n_arcs))

    def sparse(self) -> sp.csr_array:
        """The routing matrix as a SciPy CSR array (host)."""
        return sp.csr_array(
            (to_numpy(self.frac), (to_numpy(self.rows), to_numpy(self.arcs))),
            shape=(self.n_demands, self.n_arcs),
        )

    def loads(self, volumes: Any) -> Any:
        """Arc loads ``(..., n_arcs)`` of the demand volumes ``(..., n_demands)``: ``V @ R``.

        One product for any number of traffic matrices (SciPy's sparse product on NumPy, the
        dense matrix product on other backends).
        """
        xp = self.xp
        if is_numpy_namespace(xp):
            V = np.asarray(to_numpy(volumes), dtype=np.float64)
            if V.shape[-1] != self.n_demands:
                raise InvalidInput(
                    "volumes", f"needs {self.n_demands} values per row; got {V.shape}"
                )
            if self.n_demands == 0:
                return np.zeros(V.shape[:-1] + (self.n_arcs,))
            R = self.sparse()
            out = (R.T @ V.reshape(-1, self.n_demands).T).T
            return out.reshape(V.shape[:-1] + (self.n_arcs,))
        V = to_xp(xp, volumes, like=self.frac)
        V = xp.astype(V, xp.float64)
        return xp.matmul(V, self.dense())

    def uses(self, arcs: Any) -> np.ndarray:
        """bool ``(n_demands,)`` (host): demands with traffic on any of ``arcs``."""
        hit = np.isin(to_numpy(self.arcs), np.asarray(arcs, dtype=np.int64))
        out = np.zeros(self.n_demands, dtype=bool)
        out[to_numpy(self.rows)[hit]] = True
        return out

    def of_demand(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """(arcs, fractions) of demand ``d`` (host)."""
        r = to_numpy(self.rows)
        keep = r == d
        return to_numpy(self.arcs)[keep], to_numpy(self.frac)[keep]


def routing_weights(topo: Topology, metric: str) -> np.ndarray:
    """``(n_arcs,)`` the metric's arc weights for routing: a zero weight (co-located PoPs)
    counts as a thousandth of the smallest positive one, so that zero-weight loops cannot
    form and of two paths equal but for zero-weight links the one with fewer links wins
    (beyond the :data:`RTOL` tie tolerance for paths up to a million times the smallest
    weight)."""
    w = topo.arc_weights(metric)
    zero = w == 0
    if np.any(zero):
        pos = w[w > 0]
        w = np.where(zero, 1e-3 * (pos.min() if pos.size else 1.0), w)
    return w


def route_rows(
    xp: Any,
    arc_src: Any,
    arc_dst: Any,
    w: Any,
    ds: Any,
    dt: Any,
    s: Any,
    t: Any,
    ecmp: bool = True,
    rtol: float = RTOL,
) -> tuple[Any, Any, Any, Any]:
    """Split fractions of ``B`` demands on their shortest-path DAGs (module docstring).

    Parameters
    ----------
    arc_src, arc_dst : int ``(A,)`` arcs; ``w`` ``(A,)`` their weights, or ``(B, A)`` one row
        per demand (inf: the arc is removed, e.g. failed).
    ds : ``(B, n)`` distances from each demand's source; ``dt`` ``(B, n)`` distances from
        every node to each demand's destination.
    s, t : int ``(B,)`` sources and destinations.

    Returns
    -------
    rows, arcs, frac : the non-zero entries (row index within the batch).
    total : ``(B,)`` shortest distance from source to destination (inf: unreachable).
    """
    B, n = int(ds.shape[0]), int(ds.shape[1])
    A = int(arc_src.shape[0])
    dev = device_of(ds)
    rows_idx = xp.arange(B, device=dev)
    total = xp.take(xp.reshape(ds, (-1,)), rows_idx * n + t)
    w2 = w if w.ndim == 2 else w[None, :]
    via = xp.take(ds, arc_src, axis=1) + w2 + xp.take(dt, arc_dst, axis=1)
    on = (via <= total[:, None] * (1.0 + rtol) + 1e-12) & xp.isfinite(total)[:, None]
    on = on & xp.isfinite(w2)
    on = on & (arc_src[None, :] != t[:, None])  # traffic leaves the network at its destination
    r, a = xp.nonzero(on)
    if r.shape[0] == 0:
        return r, a, xp.zeros(0, dtype=xp.float64, device=dev), total
    tail = xp.take(arc_src, a)
    key_tail = r * n + tail
    if not ecmp:  # one next hop per node: the lowest-numbered arc
        order = xp.argsort(key_tail * A + a, stable=True)
        r, a, key_tail = xp.take(r, order), xp.take(a, order), xp.take(key_tail, order)
        first = xp.concat([xp.ones(1, dtype=xp.bool, device=dev), key_tail[1:] != key_tail[:-1]])
        keep = xp.nonzero(first)[0]
        r, a, key_tail = xp.take(r, keep), xp.take(a, keep), xp.take(key_tail, keep)
    key_head = r * n + xp.take(arc_dst, a)
    count = scatter_add(key_tail, xp.ones(r.shape[0], dtype=xp.float64, device=dev), B * n)
    start = scatter_add(rows_idx * n + s, xp.ones(B, dtype=xp.float64, device=dev), B * n)
    x = start
    share = 1.0 / xp.take(count, key_tail)
    for _ in range(n + 1):
        f = xp.take(x, key_tail) * share
        x_new = start + scatter_add(key_head, f, B * n)
        if bool(xp.all(x_new == x)):
            break
        x = x_new
    f = xp.take(x, key_tail) * share
    keep = xp.nonzero(f > 0)[0]
    return xp.take(r, keep), xp.take(a, keep), xp.take(f, keep), total


def igp_routing(
    topo: Topology,
    demands: Demands,
    metric: str = "latency",
    ecmp: bool = True,
    D: Any = None,
    xp: Any = None,
    rtol: float = RTOL,
) -> Routing:
    """Route every demand on its shortest paths (ECMP splits unless ``ecmp=False``).

    Parameters
    ----------
    topo, demands : the network and its demands.
    metric : ``latency``, ``cost`` or ``hops``.
    D : optional ``(n, n)`` all-pairs distances of ``metric`` (reused when given; with
        zero weights, of :func:`routing_weights`).
    xp : array namespace to compute on (default: that of ``D``, else NumPy).

    Returns
    -------
    Routing: the routing matrix, which demands are reachable, their latency and hop count.
    """
    if xp is None:
        xp = get_namespace(D) if D is not None else backend.namespace("numpy")
    k = len(demands)
    w_host = routing_weights(topo, metric)
    src_h, dst_h = demands.src, demands.dst
    if D is not None:
        D = to_xp(xp, D)
        like = D
    else:
        like = None
    w = to_xp(xp, w_host, like=like)
    like = w
    arc_src = to_xp(xp, topo.arc_src, like=like)
    arc_dst = to_xp(xp, topo.arc_dst, like=like)
    lat = to_xp(xp, topo.latency_ms[topo.arc_link], like=like)
    if D is None and k:
        us, inv_s = np.unique(src_h, return_inverse=True)
        ut, inv_t = np.unique(dst_h, return_inverse=True)
        Ds = to_xp(xp, distances(topo, us, metric, weights=w_host, xp=xp), like=like)
        Dt = to_xp(xp, distances(topo, ut, metric, weights=w_host, reverse=True, xp=xp), like=like)
    A = topo.n_arcs
    chunk = max(1, int(2e7 // max(1, A)))
    parts_r, parts_a, parts_f, totals = [], [], [], []
    for lo in range(0, k, chunk):
        hi = min(k, lo + chunk)
        s = to_xp(xp, src_h[lo:hi], like=like)
        t = to_xp(xp, dst_h[lo:hi], like=like)
        if D is not None:
            ds = xp.take(D, s, axis=0)
            dt = xp.permute_dims(xp.take(D, t, axis=1), (1, 0))
        else:
            ds = xp.take(Ds, to_xp(xp, inv_s[lo:hi], like=like), axis=0)
            dt = xp.take(Dt, to_xp(xp, inv_t[lo:hi], like=like), axis=0)
        r, a, f, total = route_rows(xp, arc_src, arc_dst, w, ds, dt, s, t, ecmp=ecmp, rtol=rtol)
        parts_r.append(r + lo)
        parts_a.append(a)
        parts_f.append(f)
        totals.append(total)
    if k == 0:
        z = to_xp(xp, np.zeros(0), like=like)
        zi = to_xp(xp, np.zeros(0, dtype=np.int64), like=like)
        return Routing(zi, zi, z, 0, A, to_xp(xp, np.zeros(0, dtype=bool), like=like), z, z, metric)
    rows = xp.concat(parts_r)
    arcs = xp.concat(parts_a)
    frac = xp.concat(parts_f)
    total = xp.concat(totals)
    reach = xp.isfinite(total)
    lat_d = scatter_add(rows, frac * xp.take(lat, arcs), k)
    hop_d = scatter_add(rows, frac, k)
    nan = xp.asarray(float("nan"), dtype=xp.float64)
    return Routing(
        rows=rows,
        arcs=arcs,
        frac=frac,
        n_demands=k,
        n_arcs=A,
        reachable=reach,
        latency_ms=xp.where(reach, lat_d, nan),
        hops=xp.where(reach, hop_d, nan),
        metric=metric,
    )


# ---------------------------------------------------------------- loads and paths


def link_utilization(topo: Topology, arc_loads: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per link (host): ``(load, utilisation)`` ``(m,)``, both of the busier direction of an
    undirected link (each direction has the link's capacity)."""
    L = np.asarray(to_numpy(arc_loads), dtype=np.float64)
    if topo.directed:
        load = L
    else:
        load = np.maximum(L[: topo.m], L[topo.m :])
    return load, load / topo.capacity


def node_throughput(topo: Topology, arc_loads: Any, demands: Demands | None = None) -> np.ndarray:
    """Traffic handled by each node ``(n,)`` (host): what arrives on its arcs plus what it
    originates (the traffic its switching capacity must carry)."""
    L = np.asarray(to_numpy(arc_loads), dtype=np.float64)
    out = np.bincount(topo.arc_dst, weights=L, minlength=topo.n)
    if demands is not None and len(demands):
        out += np.bincount(demands.src, weights=demands.volume, minlength=topo.n)
    return out


def demand_paths(
    topo: Topology, routing: Routing, d: int, source: int, target: int, max_paths: int = 16
) -> list[tuple[list[int], float]]:
    """The paths of demand ``d`` with their split fractions (host), largest first: ``[(node
    indices, fraction), ...]``; at most ``max_paths`` (ECMP can multiply paths)."""
    arcs, frac = routing.of_demand(d)
    if arcs.size == 0:
        return []
    into = np.zeros(topo.n)
    np.add.at(into, topo.arc_dst[arcs], frac)
    into[source] = 1.0
    out_of: dict[int, list[tuple[int, float]]] = {}
    for a, f in zip(arcs, frac, strict=True):
        u = int(topo.arc_src[a])
        out_of.setdefault(u, []).append((int(topo.arc_dst[a]), f / into[u]))
    paths: list[tuple[list[int], float]] = []
    stack: list[tuple[list[int], float]] = [([source], 1.0)]
    while stack and len(paths) < 4 * max_paths:
        path, p = stack.pop()
        u = path[-1]
        if u == target:
            paths.append((path, p))
            continue
        for v, q in out_of.get(u, []):
            if v not in path:
                stack.append((path + [v], p * q))
    paths.sort(key=lambda x: -x[1])
    return paths[:max_paths]
