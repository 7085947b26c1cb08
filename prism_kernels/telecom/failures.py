"""Failure what-ifs: every single link, node or SRLG failure (N-1) and given scenarios, as
one batch.

The network routes by IGP with ECMP (:mod:`~prism_kernels.telecom.routing`). A failure
removes arcs; only the demands whose traffic crossed a removed arc (or that start or end at a
failed node) change. So the batch routes the baseline once, finds each scenario's affected
demands from the routing matrix, and re-routes only those, with distances recomputed on the
failed network for their sources and destinations alone; each scenario's loads are the
baseline loads minus the affected demands' old contributions plus their new ones. That is
exactly what routing every demand again from scratch gives (an unaffected demand's
shortest-path DAG cannot change when arcs off it are removed), which the tests check
scenario by scenario.

Where it runs: on NumPy, the distances of each scenario are one call of SciPy's compiled
Dijkstra for its affected sources and one for its affected destinations (host); on PyTorch
and CuPy, the affected (scenario, source) rows of many scenarios are solved together by the
batched Bellman-Ford, with one weight row per scenario, and re-routed in one pass. With
``PRISM_DASK_SCHEDULER`` set (NumPy), groups of scenarios are re-routed as Dask tasks
(:mod:`prism_kernels.distributed`), with the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import is_numpy_namespace
from scipy.sparse.csgraph import dijkstra

from prism_kernels import backend, distributed
from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.telecom.paths import HostGraph, bellman_ford, to_xp
from prism_kernels.telecom.routing import Routing, igp_routing, route_rows, routing_weights
from prism_kernels.telecom.topology import Demands, Topology

SCOPES = ("links", "nodes", "srlgs")
"""The element kinds an N-1 sweep fails one at a time."""


@dataclass(frozen=True)
class Scenario:
    """A set of elements failed together.

    Attributes
    ----------
    id : str
    kind : ``link``, ``node``, ``srlg`` (one element) or ``scenario`` (a given set).
    links : failed link indices (the links of failed nodes and SRLGs included).
    nodes : failed node indices.
    elements : the names of what failed (link ids, node ids, SRLG names).
    """

    id: str
    kind: str
    links: np.ndarray
    nodes: np.ndarray
    elements: tuple[str, ...]


def n_minus_1(topo: Topology, scope: Iterable[str] = SCOPES) -> list[Scenario]:
    """One scenario per link, node and/or SRLG of ``topo`` (``scope`` among :data:`SCOPES`)."""
    out: list[Scenario] = []
    scope = list(scope)
    bad = [s for s in scope if s not in SCOPES]
    if bad:
        raise InvalidInput("scope", f"unknown scope {bad[0]!r}; choose {', '.join(SCOPES)}")
    none = np.zeros(0, dtype=np.int64)
    if "links" in scope:
        for k in range(topo.m):
            out.append(
                Scenario(
                    f"link:{topo.link_ids[k]}", "link", np.asarray([k]), none, (topo.link_ids[k],)
                )
            )
    if "nodes" in scope:
        for v in range(topo.n):
            out.append(
                Scenario(
                    f"node:{topo.node_ids[v]}",
                    "node",
                    topo.links_of_nodes([v]),
                    np.asarray([v]),
                    (topo.node_ids[v],),
                )
            )
    if "srlgs" in scope:
        for g, ks in topo.srlg_groups.items():
            out.append(Scenario(f"srlg:{g}", "srlg", ks, none, (g,)))
    return out


def scenario(
    topo: Topology, spec: Mapping[str, Any], i: int = 0, field: str = "scenarios"
) -> Scenario:
    """A given scenario ``{id?, links: [link ids], nodes: [node ids], srlgs: [names]}``;
    unknown names are :class:`InvalidInput` naming the entry."""
    f = f"{field}.{i}"
    links: list[int] = []
    nodes: list[int] = []
    names: list[str] = []
    for j, lid in enumerate(spec.get("links") or []):
        k = topo.link_index.get(str(lid))
        if k is None:
            raise InvalidInput(
                f"{f}.links.{j}", f"unknown link {lid!r}", known=list(topo.link_ids[:20])
            )
        links.append(k)
        names.append(str(lid))
    for j, nid in enumerate(spec.get("nodes") or []):
        nodes.append(topo.node(str(nid), f"{f}.nodes.{j}"))
        names.append(str(nid))
    for j, g in enumerate(spec.get("srlgs") or []):
        ks = topo.srlg_groups.get(str(g))
        if ks is None:
            raise InvalidInput(
                f"{f}.srlgs.{j}", f"unknown SRLG {g!r}", known=list(topo.srlg_groups)[:20]
            )
        links.extend(int(k) for k in ks)
        names.append(str(g))
    if not names:
        raise InvalidInput(f, "names no link, node or SRLG to fail")
    node_arr = np.asarray(sorted(set(nodes)), dtype=np.int64)
    all_links = set(links) | set(topo.links_of_nodes(node_arr).tolist())
    return Scenario(
        str(spec.get("id") or f"scenario:{i}"),
        "scenario",
        np.asarray(sorted(all_links), dtype=np.int64),
        node_arr,
        tuple(names),
    )


@dataclass
class FailureReport:
    """What :func:`what_if` returns (host arrays; ``S`` scenarios).

    Attributes
    ----------
    scenarios : the scenarios, in input order.
    max_utilization : ``(S,)`` the busiest surviving arc's utilisation (0 without traffic).
    worst_arc : ``(S,)`` that arc (-1 without traffic).
    cut : per scenario, the indices of the demands that lose connectivity.
    cut_reason : per scenario, ``{demand index: reason}``.
    cut_volume : ``(S,)`` their total volume.
    rerouted : ``(S,)`` affected demands that still reach their destination.
    baseline : the routing without failures; ``baseline_loads`` ``(n_arcs,)``.
    loads : ``(S, n_arcs)`` per-scenario arc loads when asked for (``keep_loads``).
    """

    scenarios: list[Scenario]
    max_utilization: np.ndarray
    worst_arc: np.ndarray
    cut: list[np.ndarray]
    cut_reason: list[dict[int, str]]
    cut_volume: np.ndarray
    rerouted: np.ndarray
    baseline: Routing
    baseline_loads: np.ndarray
    loads: np.ndarray | None = None
    overloaded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def ranking(self) -> np.ndarray:
        """Scenario indices, most critical first: most traffic cut, then the highest
        surviving utilisation."""
        return np.lexsort((-self.max_utilization, -self.cut_volume))


def what_if(
    topo: Topology,
    demands: Demands,
    scenarios: Sequence[Scenario],
    metric: str = "latency",
    ecmp: bool = True,
    xp: Any = None,
    keep_loads: bool = False,
    chunk_rows: int = 4096,
) -> FailureReport:
    """Route ``demands`` under every scenario (module docstring) and report per scenario the
    demands cut, the worst utilisation and the number of demands re-routed.

    Parameters
    ----------
    topo, demands : the network and its traffic.
    scenarios : from :func:`n_minus_1` and/or :func:`scenario`.
    metric, ecmp : the IGP routing (see :func:`~prism_kernels.telecom.routing.igp_routing`).
    xp : array namespace (NumPy by default: host Dijkstra; PyTorch/CuPy: batched on device).
    keep_loads : also return every scenario's arc loads ``(S, n_arcs)``.
    chunk_rows : (scenario, demand) rows re-routed together on a device backend.
    """
    xp = backend.namespace("numpy") if xp is None else xp
    k, A, S = len(demands), topo.n_arcs, len(scenarios)
    base = igp_routing(topo, demands, metric, ecmp=ecmp, xp=xp)
    vol = demands.volume
    L0 = np.asarray(to_numpy(base.loads(to_xp(xp, vol, like=base.frac))), dtype=np.float64)
    R0 = base.sparse().tocsc()  # (k, A): demands per arc
    R0_rows = base.sparse()
    reach0 = np.asarray(to_numpy(base.reachable), dtype=bool)
    w = routing_weights(topo, metric)
    cap = topo.arc_capacity
    # affected demands per scenario (host)
    failed_arcs: list[np.ndarray] = []
    affected: list[np.ndarray] = []
    ends_cut: list[np.ndarray] = []
    for sc in scenarios:
        fa = topo.arcs_of_links(sc.links) if sc.links.size else np.zeros(0, dtype=np.int64)
        failed_arcs.append(fa)
        hit = np.zeros(k, dtype=bool)
        if fa.size:
            hit[np.unique(R0[:, fa].indices)] = True
        if sc.nodes.size:
            ends = np.isin(demands.src, sc.nodes) | np.isin(demands.dst, sc.nodes)
        else:
            ends = np.zeros(k, dtype=bool)
        affected.append(np.flatnonzero(hit | ends))
        ends_cut.append(np.flatnonzero(ends))
    # re-route the affected, still-possible demands
    jobs = [(i, np.setdiff1d(affected[i], ends_cut[i])) for i in range(S)]
    jobs = [(i, d[reach0[d]]) for i, d in jobs]
    if is_numpy_namespace(xp):
        new = _reroute_sweep(topo, demands, w, failed_arcs, jobs, ecmp)
    else:
        new = _reroute_device(xp, topo, demands, w, failed_arcs, jobs, ecmp, chunk_rows)
    max_u = np.zeros(S)
    worst = np.full(S, -1, dtype=np.int64)
    cut: list[np.ndarray] = []
    reasons: list[dict[int, str]] = []
    cut_volume = np.zeros(S)
    rerouted = np.zeros(S, dtype=np.int64)
    overloaded = np.zeros(S, dtype=np.int64)
    loads = np.zeros((S, A)) if keep_loads else None
    names = topo.node_ids
    for i in range(S):
        rows, arcs, frac, lost = new[i]
        L = L0.copy()
        aff = affected[i]
        if aff.size:
            old = R0_rows[aff]  # (|aff|, A)
            L -= np.asarray(old.T @ vol[aff]).ravel()
        if rows.size:
            L += np.bincount(arcs, weights=vol[rows] * frac, minlength=A)
        np.maximum(L, 0.0, out=L)
        alive = np.ones(A, dtype=bool)
        alive[failed_arcs[i]] = False
        u = np.where(alive, L / cap, -np.inf)
        if A and np.any(alive):
            j = int(np.argmax(u))
            max_u[i] = max(0.0, float(u[j]))
            worst[i] = j if L[j] > 0 else -1
            overloaded[i] = int(np.sum(u > 1.0 + 1e-9))
        why: dict[int, str] = {}
        for d in ends_cut[i]:
            if reach0[d]:
                dead = (
                    names[demands.src[d]]
                    if demands.src[d] in scenarios[i].nodes
                    else names[demands.dst[d]]
                )
                why[int(d)] = f"endpoint node {dead} failed"
        for d in lost:
            why[int(d)] = (
                f"no path from {names[demands.src[d]]} to {names[demands.dst[d]]} after the failure"
            )
        c = np.asarray(sorted(why), dtype=np.int64)
        cut.append(c)
        reasons.append(why)
        cut_volume[i] = float(vol[c].sum()) if c.size else 0.0
        rerouted[i] = int(jobs[i][1].size - len(lost))
        if loads is not None:
            loads[i] = L
    return FailureReport(
        scenarios=list(scenarios),
        max_utilization=max_u,
        worst_arc=worst,
        cut=cut,
        cut_reason=reasons,
        cut_volume=cut_volume,
        rerouted=rerouted,
        baseline=base,
        baseline_loads=L0,
        loads=loads,
        overloaded=overloaded,
    )


def _reroute_sweep(
    topo: Topology,
    demands: Demands,
    w: np.ndarray,
    failed_arcs: list[np.ndarray],
    jobs: list[tuple[int, np.ndarray]],
    ecmp: bool,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`_reroute_host` for every scenario: in one call here, or with
    ``PRISM_DASK_SCHEDULER`` set as Dask tasks over consecutive groups of scenarios (each
    scenario is re-routed on its own, so the grouping does not change a number)."""
    if distributed.scheduler_address() is None or len(jobs) < 2:
        return _reroute_host(topo, demands, w, failed_arcs, jobs, ecmp)
    busy = [j for j, (_, dem) in enumerate(jobs) if dem.size]
    if not busy:
        return _reroute_host(topo, demands, w, failed_arcs, jobs, ecmp)
    # pieces of about equal numbers of re-routed demands, a few per worker thread
    parts = min(len(busy), 4 * distributed.total_threads())
    cum = np.cumsum([jobs[j][1].size for j in busy])
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, parts) / parts, side="left") + 1
    groups = [g.tolist() for g in np.split(np.asarray(busy), np.unique(cuts)) if g.size]
    pieces = distributed.run_calls(
        [
            (_reroute_host, (topo, demands, w, failed_arcs, [jobs[j] for j in g], ecmp), {})
            for g in groups
        ],
        desc="n-1-sweep",
    )
    empty = np.zeros(0, dtype=np.int64)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = [
        (empty, empty, np.zeros(0), empty) for _ in jobs
    ]
    for g, piece in zip(groups, pieces, strict=True):
        for j, r in zip(g, piece, strict=True):
            out[j] = r
    return out


def _reroute_host(
    topo: Topology,
    demands: Demands,
    w: np.ndarray,
    failed_arcs: list[np.ndarray],
    jobs: list[tuple[int, np.ndarray]],
    ecmp: bool,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per scenario: (demand rows, arcs, fractions, demands left without a path), on NumPy
    with SciPy's Dijkstra from the affected sources and to the affected destinations."""
    xp = backend.namespace("numpy")
    graph = HostGraph(topo.arc_src, topo.arc_dst, topo.n)
    out = []
    for i, dem in jobs:
        if dem.size == 0:
            z = np.zeros(0, dtype=np.int64)
            out.append((z, z, np.zeros(0), z))
            continue
        wf = w.copy()
        wf[failed_arcs[i]] = np.inf
        s, t = demands.src[dem], demands.dst[dem]
        if topo.directed:
            us, inv_s = np.unique(s, return_inverse=True)
            ut, inv_t = np.unique(t, return_inverse=True)
            Ds = np.atleast_2d(dijkstra(graph.csr(wf), directed=True, indices=us))
            Dt = np.atleast_2d(dijkstra(graph.csr(wf, reverse=True), directed=True, indices=ut))
        else:  # symmetric arcs: distances to t are distances from t, one call for both
            u, inv = np.unique(np.concatenate([s, t]), return_inverse=True)
            Ds = Dt = np.atleast_2d(dijkstra(graph.csr(wf), directed=True, indices=u))
            inv_s, inv_t = inv[: s.size], inv[s.size :]
        r, a, f, total = route_rows(
            xp, topo.arc_src, topo.arc_dst, wf, Ds[inv_s], Dt[inv_t], s, t, ecmp=ecmp
        )
        out.append((dem[r], a, f, dem[~np.isfinite(total)]))
    return out


def _reroute_device(
    xp: Any,
    topo: Topology,
    demands: Demands,
    w: np.ndarray,
    failed_arcs: list[np.ndarray],
    jobs: list[tuple[int, np.ndarray]],
    ecmp: bool,
    chunk_rows: int,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """As :func:`_reroute_host`, with the rows of many scenarios solved together on ``xp``
    (batched Bellman-Ford with one weight row per (scenario, demand) row)."""
    scen = (
        np.concatenate([np.full(d.size, i, dtype=np.int64) for i, d in jobs])
        if jobs
        else np.zeros(0, np.int64)
    )
    dem = np.concatenate([d for _, d in jobs]) if jobs else np.zeros(0, np.int64)
    A = topo.n_arcs
    w_dev = to_xp(xp, w)
    arc_src = to_xp(xp, topo.arc_src, like=w_dev)
    arc_dst = to_xp(xp, topo.arc_dst, like=w_dev)
    got_r, got_a, got_f, got_lost = [], [], [], []
    for lo in range(0, dem.size, chunk_rows):
        hi = min(dem.size, lo + chunk_rows)
        sc, dd = scen[lo:hi], dem[lo:hi]
        # one weight row per (scenario, demand): the failed arcs removed
        mask = np.zeros((hi - lo, A), dtype=bool)
        for j, i in enumerate(sc):
            mask[j, failed_arcs[i]] = True
        W = xp.where(to_xp(xp, mask, like=w_dev), float("inf"), w_dev[None, :])
        s, t = demands.src[dd], demands.dst[dd]
        ds = bellman_ford(xp, topo.arc_src, topo.arc_dst, W, topo.n, s)
        dt = bellman_ford(xp, topo.arc_dst, topo.arc_src, W, topo.n, t)
        r, a, f, total = route_rows(
            xp,
            arc_src,
            arc_dst,
            W,
            ds,
            dt,
            to_xp(xp, s, like=w_dev),
            to_xp(xp, t, like=w_dev),
            ecmp=ecmp,
        )
        r_h = to_numpy(r) + lo
        got_r.append(r_h)
        got_a.append(to_numpy(a))
        got_f.append(to_numpy(f))
        got_lost.append(lo + np.flatnonzero(~np.isfinite(to_numpy(total))))
    rows = np.concatenate(got_r) if got_r else np.zeros(0, np.int64)
    arcs = np.concatenate(got_a) if got_a else np.zeros(0, np.int64)
    frac = np.concatenate(got_f) if got_f else np.zeros(0)
    lost = np.concatenate(got_lost) if got_lost else np.zeros(0, np.int64)
    # rows and lost come out in increasing row order, so each scenario is one slice
    ids = np.asarray([i for i, _ in jobs], dtype=np.int64)
    r_cut = (
        np.searchsorted(scen[rows], ids, side="left"),
        np.searchsorted(scen[rows], ids, side="right"),
    )
    l_cut = (
        np.searchsorted(scen[lost], ids, side="left"),
        np.searchsorted(scen[lost], ids, side="right"),
    )
    out = []
    for j in range(ids.size):
        a, b = r_cut[0][j], r_cut[1][j]
        c, d = l_cut[0][j], l_cut[1][j]
        out.append((dem[rows[a:b]], arcs[a:b], frac[a:b], dem[lost[c:d]]))
    return out
