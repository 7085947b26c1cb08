"""Traffic engineering: multi-commodity flow LPs solved by HiGHS (``scipy.optimize.linprog``).

Three objectives (:data:`OBJECTIVES`):

``balance_load``
    Carry every routable demand and minimise the maximum link utilisation ``alpha`` (the
    min-max-utilisation multi-commodity flow). If ``alpha <= 1`` the demands fit; if not, the
    answer says so (``fits`` false) and names the links over capacity: nothing is dropped.
    Among the routings that reach ``alpha``, the one with the least priority-weighted
    latency is returned.
``minimize_latency``
    The shortest feasible paths under capacity (times ``max_utilization``): minimise the sum
    over demands of priority weight x traffic x path latency. When the demands do not fit,
    traffic is admitted by priority first (below), then routed on the least latency.
``maximize_throughput``
    Carry as much traffic as capacity (times ``max_utilization``) allows, priority classes
    first; among those routings the one with the most headroom (least maximum utilisation),
    then the least latency. When everything fits this is all the traffic, routed as
    ``balance_load`` routes it; ``concurrent_scale`` (``1 / alpha``) says by how much every
    demand could grow together (the maximum concurrent flow).

Priorities (0..255, higher first). Admission, when the demands do not fit, goes class by
class from the highest: each class first gets the largest common fraction of its demands
(max-min), then as much more traffic as fits, without taking capacity from the classes
admitted before it. In the latency objectives a demand's traffic weighs ``1 + priority``,
so higher-priority traffic gets the shorter paths when capacity forces a choice.

Formulation. Commodities are grouped by (source, priority): aggregating commodities that share
a source loses nothing for these objectives (any such flow splits back into per-demand paths,
which :func:`optimize` recovers by flow decomposition), and keeps the LP at ``groups x arcs``
variables instead of ``demands x arcs``. Each LP is solved to HiGHS's default tolerances
(1e-7); a later stage keeps an earlier optimum within a relative 1e-9. Latency costs add
1e-6 ms per link so that zero-latency links never carry circulating flow. The solve runs on
the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from prism_kernels.errors import InvalidInput
from prism_kernels.telecom.paths import distances, path_latency
from prism_kernels.telecom.topology import Demands, Topology

OBJECTIVES = ("minimize_latency", "maximize_throughput", "balance_load")
KEEP = 1e-9  # relative slack on an earlier stage's optimum
LINK_EPS_MS = 1e-6  # per-link tie-break added to latency costs (no circulations)


class LPFailed(InvalidInput):
    """HiGHS reached no optimum. These LPs are always feasible, so that means numbers beyond
    its tolerances (capacities and volumes many decades apart): the caller's input (a 400)."""


@dataclass
class TEResult:
    """What :func:`optimize` returns (host arrays).

    Attributes
    ----------
    objective : str
    carried : ``(k,)`` traffic carried per demand.
    paths : per demand, ``[(node indices, amount), ...]`` largest first.
    arc_load : ``(n_arcs,)`` traffic on each arc.
    latency_ms : ``(k,)`` carried-traffic-weighted mean path latency (NaN when none carried).
    routable : bool ``(k,)``: a path exists.
    required_utilization : the least maximum utilisation that carries every routable demand
        (``alpha``); None when there is no traffic.
    fits : every routable demand fits within capacity (``alpha <= max_utilization``).
    concurrent_scale : ``max_utilization / alpha``: the factor by which every demand could
        grow together (None without traffic).
    lp_solves : number of LPs solved.
    """

    objective: str
    carried: np.ndarray
    paths: list[list[tuple[list[int], float]]]
    arc_load: np.ndarray
    latency_ms: np.ndarray
    routable: np.ndarray
    required_utilization: float | None
    fits: bool
    concurrent_scale: float | None
    lp_solves: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Problem:
    """The LP skeleton shared by the stages: commodity groups and the conservation matrix."""

    topo: Topology
    group_src: np.ndarray  # (G,)
    group_pri: np.ndarray  # (G,)
    demand_group: np.ndarray  # (k_r,) group of each LP demand
    demand_dst: np.ndarray  # (k_r,)
    volume: np.ndarray  # (k_r,)
    priority: np.ndarray  # (k_r,)
    F: sp.csr_array  # (G n, G A) flow conservation of the arc flows
    Rm: sp.csr_array  # (G n, k_r) where the carried volume r_d enters the conservation rows
    cap_rows: sp.csr_array  # (A, G A): sum over groups of each arc's flow

    @property
    def G(self) -> int:
        return int(self.group_src.size)

    @property
    def A(self) -> int:
        return self.topo.n_arcs

    @property
    def k(self) -> int:
        return int(self.volume.size)


def _problem(
    topo: Topology, src: np.ndarray, dst: np.ndarray, vol: np.ndarray, pri: np.ndarray
) -> _Problem:
    n, A = topo.n, topo.n_arcs
    keys = np.stack([src, pri], axis=1)
    groups, dg = np.unique(keys, axis=0, return_inverse=True)
    dg = dg.reshape(-1)
    G = groups.shape[0]
    # conservation: out - in of group g at node v
    g_idx = np.repeat(np.arange(G), A)
    a_idx = np.tile(np.arange(A), G)
    cols = g_idx * A + a_idx
    rows_out = g_idx * n + topo.arc_src[a_idx]
    rows_in = g_idx * n + topo.arc_dst[a_idx]
    F = sp.csr_array(
        (
            np.concatenate([np.ones(cols.size), -np.ones(cols.size)]),
            (np.concatenate([rows_out, rows_in]), np.concatenate([cols, cols])),
        ),
        shape=(G * n, G * A),
    )
    # out - in = r_d at the source, -r_d at the destination: F f - Rm r = 0
    k = src.size
    Rm = sp.csr_array(
        (
            np.concatenate([np.ones(k), -np.ones(k)]),
            (np.concatenate([dg * n + src, dg * n + dst]), np.concatenate([np.arange(k)] * 2)),
        ),
        shape=(G * n, k),
    )
    cap_rows = sp.csr_array((np.ones(cols.size), (a_idx, cols)), shape=(A, G * A))
    return _Problem(topo, groups[:, 0], groups[:, 1], dg, dst, vol, pri, F, Rm, cap_rows)


def _solve(c, A_ub, b_ub, A_eq, b_eq, bounds) -> np.ndarray:  # noqa: ANN001
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0 or res.x is None:
        raise LPFailed(
            "traffic_demands",
            f"the LP solver (HiGHS) reached no optimum ({res.message}); the bandwidths and "
            "capacities may span too many orders of magnitude for its tolerances",
        )
    return res.x


def _latency_cost(P: _Problem) -> np.ndarray:
    lat = P.topo.latency_ms[P.topo.arc_link] + LINK_EPS_MS
    weight = 1.0 + P.group_pri.astype(np.float64)
    return (weight[:, None] * lat[None, :]).ravel()


def min_max_utilization(P: _Problem) -> tuple[float, np.ndarray]:
    """``alpha = min max_a load_a / capacity_a`` carrying every demand, and the flows."""
    GA = P.G * P.A
    cap = P.topo.arc_capacity
    c = np.zeros(GA + 1)
    c[-1] = 1.0
    A_ub = sp.hstack([P.cap_rows, sp.csr_array(-cap[:, None])], format="csr")
    A_eq = sp.hstack([P.F, sp.csr_array((P.F.shape[0], 1))], format="csr")
    b_eq = P.Rm @ P.volume
    x = _solve(c, A_ub, np.zeros(P.A), A_eq, b_eq, [(0, None)] * (GA + 1))
    return float(x[-1]), x[:GA]


def _route_fixed(P: _Problem, cap_factor: float) -> np.ndarray:
    """Flows carrying every demand in full under ``capacity x cap_factor``, minimising the
    priority-weighted latency."""
    GA = P.G * P.A
    cap = P.topo.arc_capacity * cap_factor
    x = _solve(_latency_cost(P), P.cap_rows, cap, P.F, P.Rm @ P.volume, [(0, None)] * GA)
    return x


def _keep_rows(mem: np.ndarray, GA: int, nv: int) -> sp.csr_array:
    """Rows ``-sum(r_mem) <= -total`` and ``-r_d <= -lam b_d``: a class keeps its admission."""
    m = mem.size
    return sp.csr_array(
        (
            -np.ones(2 * m),
            (
                np.concatenate([np.zeros(m, dtype=np.int64), 1 + np.arange(m)]),
                np.concatenate([GA + mem] * 2),
            ),
        ),
        shape=(1 + m, nv),
    )


def _keep_rhs(P: _Problem, mem: np.ndarray, lam: float, total: float) -> np.ndarray:
    return np.concatenate([[-total * (1 - KEEP)], -lam * P.volume[mem] * (1 - KEEP)])


def _admit(
    P: _Problem, cap_factor: float
) -> tuple[np.ndarray, list[tuple[np.ndarray, float, float]], int]:
    """Admission by priority (module docstring); returns the carried volumes, the class
    constraints ``(members, min fraction, class total)`` and the LP count."""
    GA, k = P.G * P.A, P.k
    cap = P.topo.arc_capacity * cap_factor
    fixed: list[tuple[np.ndarray, float, float]] = []
    solves = 0
    r_best = np.zeros(k)
    for p in sorted(np.unique(P.priority))[::-1]:
        members = np.flatnonzero(P.priority == p)
        active = np.flatnonzero(P.priority >= p)
        # variables: f (GA), r (k), lam (1)
        nv = GA + k + 1
        on = np.zeros(k, dtype=bool)
        on[active] = True
        bounds = [(0, None)] * GA
        bounds += [(0.0, float(v) if ok else 0.0) for v, ok in zip(P.volume, on, strict=True)]
        bounds.append((0.0, 1.0))
        A_eq = sp.hstack([P.F, -P.Rm, sp.csr_array((P.F.shape[0], 1))], format="csr")
        b_eq = np.zeros(P.F.shape[0])
        ub_blocks = [sp.hstack([P.cap_rows, sp.csr_array((P.A, k + 1))], format="csr")]
        b_ub = [cap]
        for mem, lam_q, tot_q in fixed:  # earlier classes keep what they got
            ub_blocks.append(_keep_rows(mem, GA, nv))
            b_ub.append(_keep_rhs(P, mem, lam_q, tot_q))
        # this class: lam b_d - r_d <= 0
        m = members.size
        ub_blocks.append(
            sp.csr_array(
                (
                    np.concatenate([-np.ones(m), P.volume[members]]),
                    (
                        np.concatenate([np.arange(m)] * 2),
                        np.concatenate([GA + members, np.full(m, nv - 1)]),
                    ),
                ),
                shape=(m, nv),
            )
        )
        b_ub.append(np.zeros(m))
        A_ub = sp.vstack(ub_blocks, format="csr")
        b = np.concatenate(b_ub)
        c = np.zeros(nv)
        c[-1] = -1.0  # max lam
        x = _solve(c, A_ub, b, A_eq, b_eq, bounds)
        lam = float(np.clip(x[-1], 0.0, 1.0))
        bounds[-1] = (lam * (1 - KEEP), 1.0)
        c = np.zeros(nv)
        c[GA + members] = -1.0  # then the most traffic of the class
        x = _solve(c, A_ub, b, A_eq, b_eq, bounds)
        solves += 2
        r_best = x[GA : GA + k]
        fixed.append((members, lam, float(r_best[members].sum())))
    return r_best, fixed, solves


def _route_admitted(
    P: _Problem, fixed: list[tuple[np.ndarray, float, float]], cap_factor: float, headroom: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """Flows and carried volumes keeping every class's admission; optionally least maximum
    utilisation first (``headroom``), then least priority-weighted latency."""
    GA, k = P.G * P.A, P.k
    cap = P.topo.arc_capacity * cap_factor
    nv = GA + k + 1  # f, r, alpha (alpha: max utilisation, as a fraction of cap)
    bounds = [(0, None)] * GA + [(0.0, float(v)) for v in P.volume] + [(0.0, 1.0)]
    A_eq = sp.hstack([P.F, -P.Rm, sp.csr_array((P.F.shape[0], 1))], format="csr")
    b_eq = np.zeros(P.F.shape[0])
    blocks = [
        sp.hstack([P.cap_rows, sp.csr_array((P.A, k)), sp.csr_array(-cap[:, None])], format="csr")
    ]
    b_ub = [np.zeros(P.A)]
    for mem, lam_q, tot_q in fixed:
        blocks.append(_keep_rows(mem, GA, nv))
        b_ub.append(_keep_rhs(P, mem, lam_q, tot_q))
    A_ub = sp.vstack(blocks, format="csr")
    b = np.concatenate(b_ub)
    solves = 0
    if headroom:
        c = np.zeros(nv)
        c[-1] = 1.0
        x = _solve(c, A_ub, b, A_eq, b_eq, bounds)
        solves += 1
        bounds[-1] = (0.0, min(1.0, float(x[-1]) * (1 + KEEP) + 1e-12))
    c = np.concatenate([_latency_cost(P), np.zeros(k + 1)])
    x = _solve(c, A_ub, b, A_eq, b_eq, bounds)
    return x[:GA], x[GA : GA + k], solves + 1


def _decompose(
    P: _Problem, flows: np.ndarray, carried: np.ndarray
) -> list[list[tuple[list[int], float]]]:
    """Per LP demand, its paths ``[(nodes, amount)]`` from the group flows (flow decomposition:
    trace back from each destination along the arcs with the most flow)."""
    topo, A = P.topo, P.A
    f = flows.reshape(P.G, A).copy()
    out: list[list[tuple[list[int], float]]] = [[] for _ in range(P.k)]
    scale = max(1.0, float(np.max(P.volume)) if P.k else 1.0)
    tol = 1e-9 * scale
    in_arcs: dict[int, np.ndarray] = {v: np.flatnonzero(topo.arc_dst == v) for v in range(topo.n)}
    for g in range(P.G):
        s = int(P.group_src[g])
        members = np.flatnonzero(P.demand_group == g)
        by_sink: dict[int, list[int]] = {}
        for d in members:
            by_sink.setdefault(int(P.demand_dst[d]), []).append(int(d))
        fg = f[g]
        for t, ds in by_sink.items():
            rem = float(carried[ds].sum())
            found: list[tuple[list[int], float]] = []
            guard = 0
            while rem > tol and guard < 4 * A + 8:
                guard += 1
                path_arcs, v, seen, stuck = [], t, {t}, False
                while v != s:
                    cand = in_arcs[v]
                    a = int(cand[np.argmax(fg[cand])]) if cand.size else -1
                    if a < 0 or fg[a] <= tol:
                        stuck = True  # only numerical residue is left
                        break
                    path_arcs.append(a)
                    v = int(topo.arc_src[a])
                    if v in seen:  # a numerical circulation: cancel it and trace again
                        j = next(i for i, x in enumerate(path_arcs) if topo.arc_dst[x] == v)
                        fg[path_arcs[j:]] -= fg[path_arcs[j:]].min()
                        break
                    seen.add(v)
                if stuck:
                    break
                if v != s:
                    continue
                amount = min(rem, float(fg[path_arcs].min()))
                fg[path_arcs] -= amount
                rem -= amount
                nodes = [s] + [int(topo.arc_dst[a]) for a in reversed(path_arcs)]
                found.append((nodes, amount))
            total = float(carried[ds].sum())
            for d in ds:
                share = float(carried[d]) / total if total > 0 else 0.0
                merged: dict[tuple[int, ...], float] = {}
                for nodes, amt in found:
                    merged[tuple(nodes)] = merged.get(tuple(nodes), 0.0) + amt * share
                out[d] = sorted(
                    ((list(p), a) for p, a in merged.items() if a > tol), key=lambda x: -x[1]
                )
    return out


def _lp_demands(topo: Topology, demands: Demands) -> tuple[np.ndarray, np.ndarray]:
    """(routable mask, indices of the routable demands with traffic)."""
    k = len(demands)
    if k == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    srcs = np.unique(demands.src)
    hop = distances(topo, srcs, "hops")
    row = np.searchsorted(srcs, demands.src)
    routable = np.isfinite(hop[row, demands.dst])
    return routable, np.flatnonzero(routable & (demands.volume > 0))


def required_utilization(topo: Topology, demands: Demands) -> float | None:
    """The least maximum link utilisation that carries every routable demand (one LP), or
    None without traffic."""
    _, lp = _lp_demands(topo, demands)
    if lp.size == 0:
        return None
    P = _problem(topo, demands.src[lp], demands.dst[lp], demands.volume[lp], demands.priority[lp])
    return min_max_utilization(P)[0]


def optimize(
    topo: Topology,
    demands: Demands,
    objective: str = "balance_load",
    max_utilization: float = 1.0,
) -> TEResult:
    """Route ``demands`` on ``topo`` for ``objective`` (module docstring).

    Parameters
    ----------
    topo, demands : the network and the traffic (volumes in the capacity unit).
    objective : one of :data:`OBJECTIVES`.
    max_utilization : the fraction of each capacity the latency and throughput objectives
        may fill (1.0: all of it; 0.8 keeps 20 % headroom).

    Returns
    -------
    TEResult (host arrays): per demand the carried traffic, its paths with amounts and its
    latency; arc loads; ``required_utilization`` (alpha), ``fits``, ``concurrent_scale``.
    Demands without a path are not routable (``routable`` false); a demand carried in part
    has ``carried < volume``.
    """
    if objective not in OBJECTIVES:
        raise InvalidInput(
            "objective", f"unknown objective {objective!r}; choose {', '.join(OBJECTIVES)}"
        )
    if not (0 < max_utilization <= 10) or not np.isfinite(max_utilization):
        raise InvalidInput("max_utilization", "must be within (0, 10]")
    k, A = len(demands), topo.n_arcs
    routable, lp = _lp_demands(topo, demands)
    carried = np.zeros(k)
    paths: list[list[tuple[list[int], float]]] = [[] for _ in range(k)]
    arc_load = np.zeros(A)
    alpha: float | None = None
    fits = True
    solves = 0
    notes: list[str] = []
    if lp.size:
        P = _problem(
            topo, demands.src[lp], demands.dst[lp], demands.volume[lp], demands.priority[lp]
        )
        alpha, _ = min_max_utilization(P)
        solves += 1
        fits = alpha <= max_utilization * (1 + 1e-7)
        if objective == "balance_load" or (fits and objective == "maximize_throughput"):
            # everything carried at the least maximum utilisation (all traffic when it fits)
            flows, r = _route_fixed(P, alpha * (1 + 1e-7)), P.volume.copy()
            solves += 1
            if not fits:
                notes.append(f"the demands do not fit: they need {alpha:.4g} x capacity")
        elif fits:  # minimize_latency
            flows, r = _route_fixed(P, max_utilization), P.volume.copy()
            solves += 1
        else:
            _, fixed, n_adm = _admit(P, max_utilization)
            flows, r, n_route = _route_admitted(
                P, fixed, max_utilization, headroom=objective == "maximize_throughput"
            )
            solves += n_adm + n_route
            r = np.minimum(np.maximum(r, 0.0), P.volume)
            notes.append(
                f"the demands need {alpha:.4g} x capacity; traffic admitted by priority within "
                f"{max_utilization:g} x capacity"
            )
        carried[lp] = r
        arc_load = flows.reshape(P.G, A).sum(axis=0)
        for j, d in enumerate(_decompose(P, flows, r)):
            paths[lp[j]] = d
    latency = np.full(k, np.nan)
    for d in range(k):
        tot = sum(a for _, a in paths[d])
        if tot > 0:
            latency[d] = sum(a * path_latency(topo, nodes) for nodes, a in paths[d]) / tot
    return TEResult(
        objective=objective,
        carried=carried,
        paths=paths,
        arc_load=arc_load,
        latency_ms=latency,
        routable=routable,
        required_utilization=alpha,
        fits=bool(fits),
        concurrent_scale=(max_utilization / alpha) if alpha and alpha > 0 else None,
        lp_solves=solves,
        notes=notes,
    )
